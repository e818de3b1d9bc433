/*
 * geo.c — geo targets: validation, the text forms users type, and matching
 * a node's position against a target.
 *
 * Matching is on the sphere where it matters (circles: haversine) and in
 * unwrapped lat/lon for polygons, which is what a site engineer drawing a
 * fence on a map means. Rings that cross the antimeridian are unwrapped
 * edge by edge; a ring that winds once around a pole encloses that pole
 * (the one on its mean latitude's side), so polar areas work as drawn.
 */
#define _POSIX_C_SOURCE 200809L
#include "am_core.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char geohash_alphabet[] = "0123456789bcdefghjkmnpqrstuvwxyz";

static double
rad(double deg)
{
	return deg * (M_PI / 180.0);
}

double
am_geo_distance_m(double lat1, double lon1, double lat2, double lon2)
{
	double dlat = rad(lat2 - lat1), dlon = rad(lon2 - lon1);
	double a = sin(dlat / 2) * sin(dlat / 2) +
	    cos(rad(lat1)) * cos(rad(lat2)) * sin(dlon / 2) * sin(dlon / 2);

	if (a > 1.0)
		a = 1.0;
	return 2.0 * AM_EARTH_RADIUS_M * asin(sqrt(a));
}

static int
check_point(double lat, double lon, const char *what)
{
	if (!isfinite(lat) || lat < -90.0 || lat > 90.0)
		return am_error_set(AM_EGEO, "geo: %s latitude %g out of range [-90, 90]", what, lat);
	if (!isfinite(lon) || lon < -180.0 || lon > 180.0)
		return am_error_set(AM_EGEO, "geo: %s longitude %g out of range [-180, 180]", what, lon);
	return 0;
}

int
am_tag_check(const char *what, const char *s, size_t len)
{
	if (len == 0 || len > AM_TAG_MAX)
		return am_error_set(AM_EFIELD, "%s must be 1..%d bytes, got %zu", what, AM_TAG_MAX, len);
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		        (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == ':'))
			return am_error_set(AM_EFIELD, "%s \"%.*s\" has a character outside [A-Za-z0-9._:-]",
			    what, (int) len, s);
	}
	return 0;
}

int
am_geo_check(const am_geo *g)
{
	int rc;

	switch (g->kind) {
	case AM_GEO_NONE:
		return 0;
	case AM_GEO_CIRCLE:
		if ((rc = check_point(g->lat, g->lon, "circle centre")) != 0)
			return rc;
		if (!isfinite(g->radius_m) || g->radius_m <= 0 || g->radius_m > AM_GEO_MAX_RADIUS_M)
			return am_error_set(AM_EGEO, "geo: circle radius %g m out of range (0, %.0f]",
			    g->radius_m, AM_GEO_MAX_RADIUS_M);
		return 0;
	case AM_GEO_POLYGON:
		if (g->npoints < AM_GEO_MIN_POINTS)
			return am_error_set(AM_EGEO, "geo: polygon needs at least %d points, got %u",
			    AM_GEO_MIN_POINTS, g->npoints);
		if (g->npoints > AM_GEO_MAX_POINTS)
			return am_error_set(AM_ELIMIT, "geo: polygon has %u points, limit %d",
			    g->npoints, AM_GEO_MAX_POINTS);
		for (unsigned i = 0; i < g->npoints; i++) {
			char what[32];
			snprintf(what, sizeof(what), "polygon point %u", i + 1);
			if ((rc = check_point(g->points[i][0], g->points[i][1], what)) != 0)
				return rc;
		}
		return 0;
	case AM_GEO_GEOHASH: {
		size_t n = strnlen(g->geohash, sizeof(g->geohash));
		if (n == 0 || n > AM_GEOHASH_MAX)
			return am_error_set(AM_EGEO, "geo: geohash prefix must be 1..%d characters", AM_GEOHASH_MAX);
		for (size_t i = 0; i < n; i++)
			if (strchr(geohash_alphabet, g->geohash[i]) == NULL || g->geohash[i] == '\0')
				return am_error_set(AM_EGEO, "geo: geohash \"%s\" has '%c', not in the geohash alphabet",
				    g->geohash, g->geohash[i]);
		return 0;
	}
	case AM_GEO_ZONE:
		if (g->ntags == 0)
			return am_error_set(AM_EGEO, "geo: zone target needs at least one tag");
		if (g->ntags > AM_GEO_MAX_TAGS)
			return am_error_set(AM_ELIMIT, "geo: %u zone tags, limit %d", g->ntags, AM_GEO_MAX_TAGS);
		for (unsigned i = 0; i < g->ntags; i++)
			if ((rc = am_tag_check("zone tag", g->tags[i], strnlen(g->tags[i], AM_TAG_MAX + 1))) != 0)
				return rc;
		return 0;
	}
	return am_error_set(AM_EGEO, "geo: unknown target kind %d", (int) g->kind);
}

void
am_geohash_encode(char *out, double lat, double lon, int len)
{
	double lat_lo = -90, lat_hi = 90, lon_lo = -180, lon_hi = 180;
	int bit = 0, ch = 0, n = 0;
	bool even = true;

	if (len < 1)
		len = 1;
	if (len > AM_GEOHASH_MAX)
		len = AM_GEOHASH_MAX;
	while (n < len) {
		double mid;
		if (even) {
			mid = (lon_lo + lon_hi) / 2;
			if (lon >= mid) {
				ch = (ch << 1) | 1;
				lon_lo = mid;
			} else {
				ch <<= 1;
				lon_hi = mid;
			}
		} else {
			mid = (lat_lo + lat_hi) / 2;
			if (lat >= mid) {
				ch = (ch << 1) | 1;
				lat_lo = mid;
			} else {
				ch <<= 1;
				lat_hi = mid;
			}
		}
		even = !even;
		if (++bit == 5) {
			out[n++] = geohash_alphabet[ch];
			bit = 0;
			ch = 0;
		}
	}
	out[n] = '\0';
}

/* Shift lon by whole turns so it is within 180 degrees of ref. */
static double
unwrap(double lon, double ref)
{
	while (lon - ref > 180.0)
		lon -= 360.0;
	while (lon - ref < -180.0)
		lon += 360.0;
	return lon;
}

static bool
polygon_contains(const am_geo *g, double lat, double lon)
{
	double ulon[AM_GEO_MAX_POINTS];
	double mean_lat = g->points[0][0], sweep, lo, hi, p;
	unsigned n = g->npoints;
	bool inside = false;

	/* Unwrap the ring so each edge goes the short way round. */
	ulon[0] = g->points[0][1];
	for (unsigned i = 1; i < n; i++) {
		ulon[i] = unwrap(g->points[i][1], ulon[i - 1]);
		mean_lat += g->points[i][0];
	}
	mean_lat /= n;
	/* Total longitude swept by the closed ring: 0, or +-360 around a pole. */
	sweep = unwrap(g->points[0][1], ulon[n - 1]) - ulon[0];

	if (fabs(sweep) > 180.0) {
		/* Inside means on the pole's side of the ring: the meridian
		 * segment from the point to the pole crosses the ring an even
		 * number of times (normally zero). */
		bool north = mean_lat >= 0;
		for (unsigned i = 0; i < n; i++) {
			double a_lon = ulon[i];
			double b_lon = unwrap(g->points[(i + 1) % n][1], a_lon);
			double a_lat = g->points[i][0], b_lat = g->points[(i + 1) % n][0];
			double elo = fmin(a_lon, b_lon), ehi = fmax(a_lon, b_lon);
			double t, edge_lat;
			if (ehi == elo)
				continue;
			p = unwrap(lon, (elo + ehi) / 2);
			if (p < elo || p >= ehi)
				continue;
			t = (p - a_lon) / (b_lon - a_lon);
			edge_lat = a_lat + t * (b_lat - a_lat);
			if (north ? edge_lat > lat : edge_lat < lat)
				inside = !inside; /* toggles per crossing: odd = outside */
		}
		return !inside;
	}

	/* Ordinary ring: even-odd ray cast in unwrapped coordinates, with the
	 * point moved into the ring's longitude window. */
	lo = hi = ulon[0];
	for (unsigned i = 1; i < n; i++) {
		lo = fmin(lo, ulon[i]);
		hi = fmax(hi, ulon[i]);
	}
	p = unwrap(lon, (lo + hi) / 2);
	for (unsigned i = 0, j = n - 1; i < n; j = i++) {
		double yi = g->points[i][0], yj = g->points[j][0];
		double xi = ulon[i], xj = ulon[j];
		if ((yi > lat) != (yj > lat)) {
			double x = xi + (lat - yi) * (xj - xi) / (yj - yi);
			if (p < x)
				inside = !inside;
		}
	}
	return inside;
}

bool
am_geo_matches(const am_geo *g, const am_position *pos)
{
	char gh[AM_GEOHASH_MAX + 1];
	size_t n;

	switch (g->kind) {
	case AM_GEO_NONE:
		return true;
	case AM_GEO_CIRCLE:
		return pos->has_fix &&
		    am_geo_distance_m(g->lat, g->lon, pos->lat, pos->lon) <= g->radius_m;
	case AM_GEO_POLYGON:
		return pos->has_fix && polygon_contains(g, pos->lat, pos->lon);
	case AM_GEO_GEOHASH:
		if (!pos->has_fix)
			return false;
		n = strlen(g->geohash);
		am_geohash_encode(gh, pos->lat, pos->lon, (int) n);
		return strncmp(gh, g->geohash, n) == 0;
	case AM_GEO_ZONE:
		for (unsigned i = 0; i < g->ntags; i++)
			for (unsigned j = 0; j < pos->ntags; j++)
				if (strcmp(g->tags[i], pos->tags[j]) == 0)
					return true;
		return false;
	}
	return false;
}

/* ---------------------------------------------------------- text --- */

static int
parse_double(double *out, const char *s, const char *end, const char *what)
{
	char buf[64];
	char *e = NULL;
	size_t n = (size_t) (end - s);

	if (n == 0 || n >= sizeof(buf))
		return am_error_set(AM_EGEO, "geo: %s is missing or too long", what);
	memcpy(buf, s, n);
	buf[n] = '\0';
	*out = strtod(buf, &e);
	if (e == buf || *e != '\0' || !isfinite(*out))
		return am_error_set(AM_EGEO, "geo: %s \"%s\" is not a number", what, buf);
	return 0;
}

static int
parse_latlon(double *lat, double *lon, const char *s, const char *end, const char *what)
{
	const char *comma = memchr(s, ',', (size_t) (end - s));
	char w[48];
	int rc;

	if (comma == NULL)
		return am_error_set(AM_EGEO, "geo: %s needs LAT,LON", what);
	snprintf(w, sizeof(w), "%s latitude", what);
	if ((rc = parse_double(lat, s, comma, w)) != 0)
		return rc;
	snprintf(w, sizeof(w), "%s longitude", what);
	return parse_double(lon, comma + 1, end, w);
}

int
am_geo_parse(am_geo *g, const char *text)
{
	const char *colon = strchr(text, ':');
	const char *v, *end;
	int rc;

	memset(g, 0, sizeof(*g));
	if (colon == NULL)
		return am_error_set(AM_EGEO, "geo: \"%.60s\" is not circle:LAT,LON,R, polygon:LAT,LON;..., geohash:P or zone:TAG", text);
	v = colon + 1;
	end = v + strlen(v);
	if (strncmp(text, "circle", (size_t) (colon - text)) == 0 && colon - text == 6) {
		const char *c2 = strrchr(v, ',');
		g->kind = AM_GEO_CIRCLE;
		if (c2 == NULL)
			return am_error_set(AM_EGEO, "geo: circle needs LAT,LON,RADIUS_M");
		if ((rc = parse_latlon(&g->lat, &g->lon, v, c2, "circle centre")) != 0)
			return rc;
		if ((rc = parse_double(&g->radius_m, c2 + 1, end, "circle radius")) != 0)
			return rc;
	} else if (strncmp(text, "polygon", 7) == 0 && colon - text == 7) {
		g->kind = AM_GEO_POLYGON;
		while (v < end) {
			const char *semi = memchr(v, ';', (size_t) (end - v));
			char what[32];
			if (semi == NULL)
				semi = end;
			if (g->npoints == AM_GEO_MAX_POINTS)
				return am_error_set(AM_ELIMIT, "geo: polygon has more than %d points", AM_GEO_MAX_POINTS);
			snprintf(what, sizeof(what), "polygon point %u", g->npoints + 1);
			rc = parse_latlon(&g->points[g->npoints][0], &g->points[g->npoints][1], v, semi, what);
			if (rc != 0)
				return rc;
			g->npoints++;
			v = semi + (semi < end);
		}
	} else if (strncmp(text, "geohash", 7) == 0 && colon - text == 7) {
		g->kind = AM_GEO_GEOHASH;
		if (strlen(v) > AM_GEOHASH_MAX)
			return am_error_set(AM_EGEO, "geo: geohash prefix longer than %d", AM_GEOHASH_MAX);
		snprintf(g->geohash, sizeof(g->geohash), "%s", v);
	} else if (strncmp(text, "zone", 4) == 0 && colon - text == 4) {
		g->kind = AM_GEO_ZONE;
		while (v < end) {
			const char *comma = memchr(v, ',', (size_t) (end - v));
			size_t n;
			if (comma == NULL)
				comma = end;
			n = (size_t) (comma - v);
			if (g->ntags == AM_GEO_MAX_TAGS)
				return am_error_set(AM_ELIMIT, "geo: more than %d zone tags", AM_GEO_MAX_TAGS);
			if ((rc = am_tag_check("zone tag", v, n)) != 0)
				return rc;
			memcpy(g->tags[g->ntags], v, n);
			g->tags[g->ntags][n] = '\0';
			g->ntags++;
			v = comma + (comma < end);
		}
	} else {
		return am_error_set(AM_EGEO, "geo: unknown target kind \"%.*s\" (circle, polygon, geohash, zone)",
		    (int) (colon - text), text);
	}
	return am_geo_check(g);
}

void
am_geo_format(char *out, size_t cap, const am_geo *g)
{
	size_t n = 0;

	if (cap == 0)
		return;
	out[0] = '\0';
	switch (g->kind) {
	case AM_GEO_NONE:
		snprintf(out, cap, "none");
		break;
	case AM_GEO_CIRCLE:
		snprintf(out, cap, "circle:%.7g,%.7g,%.7g", g->lat, g->lon, g->radius_m);
		break;
	case AM_GEO_POLYGON:
		n = (size_t) snprintf(out, cap, "polygon:");
		for (unsigned i = 0; i < g->npoints && n < cap; i++)
			n += (size_t) snprintf(out + n, cap - n, "%s%.7g,%.7g", i ? ";" : "",
			    g->points[i][0], g->points[i][1]);
		break;
	case AM_GEO_GEOHASH:
		snprintf(out, cap, "geohash:%s", g->geohash);
		break;
	case AM_GEO_ZONE:
		n = (size_t) snprintf(out, cap, "zone:");
		for (unsigned i = 0; i < g->ntags && n < cap; i++)
			n += (size_t) snprintf(out + n, cap - n, "%s%s", i ? "," : "", g->tags[i]);
		break;
	}
}
