/*
 * test_mpcheck.c — the bounds walk refuses lying counts, deep nesting and
 * cut input before msgpack-c sees any of it.
 */
#include "am_core.h"
#include "mpcheck.h"
#include "../../check.h"

int
main(void)
{
	size_t end = 0;
	/* array32 claiming 2^32-1 elements in 5 bytes */
	const uint8_t huge[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
	const uint8_t ok[] = {0x92, 0x01, 0xa1, 'x', 0xc0};
	const uint8_t cut_str[] = {0xd9, 0x10, 'a'};
	const uint8_t ext[] = {0xd4, 0x01, 0x00};
	const uint8_t reserved[] = {0xc1};
	uint8_t deep[40];

	CHECK_RC(am_mp_check(&end, huge, sizeof(huge), 8, 1000), AM_ETRUNC);
	CHECK_RC(am_mp_check(&end, ok, sizeof(ok), 8, 1000), 0);
	CHECK(end == 4);
	CHECK_RC(am_mp_check(&end, cut_str, sizeof(cut_str), 8, 1000), AM_ETRUNC);
	CHECK_RC(am_mp_check(&end, ext, sizeof(ext), 8, 1000), AM_EMALFORMED);
	CHECK_RC(am_mp_check(&end, reserved, 1, 8, 1000), AM_EMALFORMED);
	CHECK_RC(am_mp_check(&end, ok, 0, 8, 1000), AM_ETRUNC);
	for (size_t i = 0; i < sizeof(deep); i++)
		deep[i] = 0x91;
	deep[sizeof(deep) - 1] = 0x00;
	CHECK_RC(am_mp_check(&end, deep, sizeof(deep), 8, 1000), AM_ELIMIT);
	CHECK_RC(am_mp_check(&end, deep, sizeof(deep), 64, 1000), 0);
	CHECK_RC(am_mp_check(&end, deep, sizeof(deep), 64, 10), AM_ELIMIT);
	return check_done("test_mpcheck");
}
