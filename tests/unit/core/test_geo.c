/*
 * test_geo.c — geo validation and matching, including the antimeridian
 * and the poles.
 */
#include "am_core.h"
#include "../../check.h"

#include <math.h>
#include <string.h>

static am_position
at(double lat, double lon)
{
	am_position p = {.has_fix = true, .lat = lat, .lon = lon};
	return p;
}

static bool
match(const char *target, double lat, double lon)
{
	am_geo g;
	am_position p = at(lat, lon);

	REQUIRE(am_geo_parse(&g, target) == 0);
	return am_geo_matches(&g, &p);
}

int
main(void)
{
	am_geo g;
	am_position p;
	char gh[13];

	/* validation: every bad value named */
	CHECK_RC(am_geo_parse(&g, "circle:91,0,10"), AM_EGEO);
	CHECK(strstr(am_error_detail(), "latitude 91") != NULL);
	CHECK_RC(am_geo_parse(&g, "circle:-90.0001,0,10"), AM_EGEO);
	CHECK_RC(am_geo_parse(&g, "circle:0,180.5,10"), AM_EGEO);
	CHECK_RC(am_geo_parse(&g, "circle:0,0,0"), AM_EGEO);
	CHECK_RC(am_geo_parse(&g, "circle:0,0,-5"), AM_EGEO);
	CHECK_RC(am_geo_parse(&g, "circle:0,0,nan"), AM_EGEO);
	CHECK_RC(am_geo_parse(&g, "circle:0,0"), AM_EGEO);
	CHECK_RC(am_geo_parse(&g, "polygon:"), AM_EGEO);
	CHECK(strstr(am_error_detail(), "at least 3") != NULL);
	CHECK_RC(am_geo_parse(&g, "polygon:1,1;2,2"), AM_EGEO);
	CHECK_RC(am_geo_parse(&g, "polygon:1,1;2,2;3,x"), AM_EGEO);
	CHECK_RC(am_geo_parse(&g, "geohash:u4pa"), AM_EGEO); /* 'a' not in the alphabet */
	CHECK_RC(am_geo_parse(&g, "geohash:"), AM_EGEO);
	CHECK_RC(am_geo_parse(&g, "zone:"), AM_EGEO);
	CHECK_RC(am_geo_parse(&g, "zone:ok,bad tag"), AM_EFIELD);
	CHECK_RC(am_geo_parse(&g, "square:1,2"), AM_EGEO);
	CHECK_RC(am_geo_parse(&g, "nonsense"), AM_EGEO);
	{
		char many[4096] = "polygon:";
		for (int i = 0; i < AM_GEO_MAX_POINTS + 1; i++)
			strcat(many, i ? ";1,1" : "1,1");
		CHECK_RC(am_geo_parse(&g, many), AM_ELIMIT);
	}

	/* distances */
	CHECK(fabs(am_geo_distance_m(0, 0, 0, 1) - 111195) < 10);
	CHECK(fabs(am_geo_distance_m(0, 179.9, 0, -179.9) - 22239) < 10); /* across the antimeridian */
	CHECK(am_geo_distance_m(90, 0, 90, 123) < 1e-6);                   /* every longitude at the pole */

	/* circles */
	CHECK(match("circle:52.52,13.405,1500", 52.525, 13.41));
	CHECK(!match("circle:52.52,13.405,1500", 52.6, 13.41));
	CHECK(match("circle:0,179.99,5000", 0, -179.99));     /* antimeridian */
	CHECK(!match("circle:0,179.99,5000", 0, -179.9));
	CHECK(match("circle:89.99,0,5000", 89.99, 180));       /* near the pole, opposite side */
	CHECK(match("circle:90,0,100000", 89.5, -77));         /* around the pole */
	CHECK(!match("circle:90,0,100000", 88, -77));
	CHECK(match("circle:-90,0,1000", -90, 45));            /* the south pole itself */

	/* polygons */
	CHECK(match("polygon:0,0;0,10;10,10;10,0", 5, 5));
	CHECK(!match("polygon:0,0;0,10;10,10;10,0", 5, 11));
	CHECK(!match("polygon:0,0;0,10;10,10;10,0", -1, 5));
	(void) match("polygon:0,0;10,10;0,10;10,0", 5, 2); /* self-crossing: must simply not crash */
	/* a fence across the antimeridian (Fiji-like) */
	CHECK(match("polygon:-10,179;-10,-179;10,-179;10,179", 0, 179.5));
	CHECK(match("polygon:-10,179;-10,-179;10,-179;10,179", 0, -179.5));
	CHECK(match("polygon:-10,179;-10,-179;10,-179;10,179", 0, 180));
	CHECK(!match("polygon:-10,179;-10,-179;10,-179;10,179", 0, 0));
	CHECK(!match("polygon:-10,179;-10,-179;10,-179;10,179", 0, 178));
	/* a ring around the north pole at 80N encloses the pole side */
	CHECK(match("polygon:80,0;80,90;80,180;80,-90", 85, 33));
	CHECK(match("polygon:80,0;80,90;80,180;80,-90", 89.9, -150));
	CHECK(!match("polygon:80,0;80,90;80,180;80,-90", 75, 33));
	CHECK(!match("polygon:80,0;80,90;80,180;80,-90", -85, 33));
	/* and around the south pole */
	CHECK(match("polygon:-70,0;-70,-90;-70,180;-70,90", -80, 10));
	CHECK(!match("polygon:-70,0;-70,-90;-70,180;-70,90", -60, 10));

	/* geohash */
	am_geohash_encode(gh, 57.64911, 10.40744, 11);
	CHECK(strcmp(gh, "u4pruydqqvj") == 0); /* the classic example */
	CHECK(match("geohash:u4pru", 57.64911, 10.40744));
	CHECK(!match("geohash:u4prv", 57.64911, 10.40744));
	am_geohash_encode(gh, -90, -180, 5);
	CHECK(strcmp(gh, "00000") == 0);
	am_geohash_encode(gh, 90, 180, 5);
	CHECK(strcmp(gh, "zzzzz") == 0);

	/* zones and no-fix nodes */
	REQUIRE(am_geo_parse(&g, "zone:north-gate,crane-3") == 0);
	memset(&p, 0, sizeof(p));
	CHECK(!am_geo_matches(&g, &p));
	strcpy(p.tags[0], "crane-3");
	p.ntags = 1;
	CHECK(am_geo_matches(&g, &p));
	REQUIRE(am_geo_parse(&g, "circle:0,0,1000") == 0);
	CHECK(!am_geo_matches(&g, &p)); /* no fix, no spatial match */
	g.kind = AM_GEO_NONE;
	CHECK(am_geo_matches(&g, &p));

	/* format round trip */
	{
		char buf[256];
		am_geo g2;
		REQUIRE(am_geo_parse(&g, "polygon:1.5,2;3,4;5,-6.25") == 0);
		am_geo_format(buf, sizeof(buf), &g);
		CHECK_RC(am_geo_parse(&g2, buf), 0);
		CHECK(g2.npoints == 3 && g2.points[2][1] == -6.25);
	}
	return check_done("test_geo");
}
