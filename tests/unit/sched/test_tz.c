/* Time zones: TZif loading, offsets, footer rules far in the future, DST gap and overlap, names, civil dates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>
#include "sched/sched.h"

#define HOUR 3600

static int64_t utc(int64_t y, unsigned mo, unsigned d, int h, int mi)
{
    return util_days_from_civil(y, mo, d) * 86400 + h * HOUR + mi * 60;
}

/* Local wall time has the same arithmetic as UTC, read on the local calendar. */
static int64_t local(int64_t y, unsigned mo, unsigned d, int h, int mi)
{
    return utc(y, mo, d, h, mi);
}

static sched_tz_t *load(const char *name)
{
    char err[256] = "";
    sched_tz_t *tz = sched_tz_load(name, err, sizeof(err));
    if (tz == NULL)
        fail_msg("loading %s: %s", name, err);
    return tz;
}

static void test_civil_dates(void **state)
{
    assert_int_equal(util_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(util_days_from_civil(2000, 3, 1), 11017);
    assert_int_equal(util_days_from_civil(1969, 12, 31), -1);
    assert_int_equal(util_days_from_civil(1, 1, 1) * 86400, SCHED_TIME_MIN);
    assert_int_equal(util_days_from_civil(10000, 1, 1) * 86400, SCHED_TIME_MAX);
    assert_int_equal(sched_civil_weekday(0), 3);                              /* 1970-01-01: Thursday */
    assert_int_equal(sched_civil_weekday(util_days_from_civil(2026, 3, 8)), 6);   /* Sunday */
    assert_int_equal(sched_civil_weekday(util_days_from_civil(2026, 10, 26)), 0); /* Monday */
    assert_int_equal(sched_civil_weekday(util_days_from_civil(1900, 1, 1)), 0);   /* Monday */
    assert_int_equal(sched_civil_days_in_month(2100, 2), 28);
    assert_int_equal(sched_civil_days_in_month(2000, 2), 29);
    assert_int_equal(sched_civil_days_in_month(2024, 2), 29);
    assert_int_equal(sched_civil_days_in_month(2026, 4), 30);
    assert_int_equal(sched_civil_days_in_month(2026, 13), 0);
    assert_int_equal(sched_civil_day_of(-1), -1);
    assert_int_equal(sched_civil_day_of(86399), 0);
    /* Round trip across four centuries either side of the epoch. */
    for (int64_t days = -146097 * 4; days <= 146097 * 4; days += 13) {
        int64_t y;
        unsigned m, d;
        util_civil_from_days(days, &y, &m, &d);
        assert_true(m >= 1 && m <= 12 && d >= 1 && d <= sched_civil_days_in_month(y, m));
        assert_int_equal(util_days_from_civil(y, m, d), days);
    }
}

static void test_offsets_new_york_and_berlin(void **state)
{
    sched_tz_t *ny = load("America/New_York"), *berlin = load("Europe/Berlin");
    assert_string_equal(sched_tz_name(ny), "America/New_York");
    assert_int_equal(sched_tz_offset_at_utc(ny, utc(2026, 1, 15, 12, 0)), -5 * HOUR);
    assert_int_equal(sched_tz_offset_at_utc(ny, utc(2026, 7, 1, 12, 0)), -4 * HOUR);
    /* 2026-03-08 02:00 EST = 07:00Z springs forward; 2026-11-01 02:00 EDT = 06:00Z falls back. */
    assert_int_equal(sched_tz_offset_at_utc(ny, utc(2026, 3, 8, 7, 0) - 1), -5 * HOUR);
    assert_int_equal(sched_tz_offset_at_utc(ny, utc(2026, 3, 8, 7, 0)), -4 * HOUR);
    assert_int_equal(sched_tz_offset_at_utc(ny, utc(2026, 11, 1, 6, 0) - 1), -4 * HOUR);
    assert_int_equal(sched_tz_offset_at_utc(ny, utc(2026, 11, 1, 6, 0)), -5 * HOUR);
    /* Berlin changes at 01:00Z both ways. */
    assert_int_equal(sched_tz_offset_at_utc(berlin, utc(2026, 3, 29, 1, 0) - 1), HOUR);
    assert_int_equal(sched_tz_offset_at_utc(berlin, utc(2026, 3, 29, 1, 0)), 2 * HOUR);
    assert_int_equal(sched_tz_offset_at_utc(berlin, utc(2026, 10, 25, 1, 0) - 1), 2 * HOUR);
    assert_int_equal(sched_tz_offset_at_utc(berlin, utc(2026, 10, 25, 1, 0)), HOUR);
    /* History from the table: New York kept war time (-4) all year in 1943. */
    assert_int_equal(sched_tz_offset_at_utc(ny, utc(1943, 1, 15, 12, 0)), -4 * HOUR);
    assert_int_equal(sched_tz_offset_at_utc(berlin, utc(1945, 6, 1, 12, 0)), 3 * HOUR); /* Berlin's 1945 double summer time */
    assert_int_equal(sched_tz_utc_to_local(berlin, utc(2026, 7, 1, 10, 0)), local(2026, 7, 1, 12, 0));
    sched_tz_destroy(ny);
    sched_tz_destroy(berlin);
}

static void test_footer_rules_far_future(void **state)
{
    sched_tz_t *ny = load("America/New_York"), *berlin = load("Europe/Berlin");
    /* Beyond the transition table (it stops in 2037): the footer rule decides. */
    assert_int_equal(sched_tz_offset_at_utc(ny, utc(2100, 3, 14, 7, 0) - 1), -5 * HOUR);
    assert_int_equal(sched_tz_offset_at_utc(ny, utc(2100, 3, 14, 7, 0)), -4 * HOUR);
    assert_int_equal(sched_tz_offset_at_utc(ny, utc(2100, 11, 7, 6, 0) - 1), -4 * HOUR);
    assert_int_equal(sched_tz_offset_at_utc(ny, utc(2100, 11, 7, 6, 0)), -5 * HOUR);
    assert_int_equal(sched_tz_offset_at_utc(berlin, utc(2100, 3, 28, 1, 0) - 1), HOUR);
    assert_int_equal(sched_tz_offset_at_utc(berlin, utc(2100, 3, 28, 1, 0)), 2 * HOUR);
    assert_int_equal(sched_tz_offset_at_utc(berlin, utc(2100, 10, 31, 1, 0)), HOUR);
    assert_int_equal(sched_tz_offset_at_utc(berlin, utc(2200, 10, 26, 1, 0) - 1), 2 * HOUR);
    assert_int_equal(sched_tz_offset_at_utc(berlin, utc(9999, 7, 1, 0, 0)), 2 * HOUR);

    int64_t next;
    assert_int_equal(sched_tz_next_transition(ny, utc(2026, 1, 1, 0, 0), &next), 0);
    assert_int_equal(next, utc(2026, 3, 8, 7, 0));
    assert_int_equal(sched_tz_next_transition(ny, next, &next), 0);
    assert_int_equal(next, utc(2026, 11, 1, 6, 0));
    assert_int_equal(sched_tz_next_transition(ny, utc(2100, 1, 1, 0, 0), &next), 0);
    assert_int_equal(next, utc(2100, 3, 14, 7, 0));
    assert_int_equal(sched_tz_next_transition(ny, next, &next), 0);
    assert_int_equal(next, utc(2100, 11, 7, 6, 0));
    /* Crossing from the table into the footer: the last change in the table, then the footer's first. */
    assert_int_equal(sched_tz_next_transition(berlin, utc(2037, 10, 1, 0, 0), &next), 0);
    assert_int_equal(next, utc(2037, 10, 25, 1, 0));
    assert_int_equal(sched_tz_next_transition(berlin, next, &next), 0);
    assert_int_equal(next, utc(2038, 3, 28, 1, 0));

    sched_tz_t *utc_zone = load("UTC");
    assert_int_equal(sched_tz_offset_at_utc(utc_zone, utc(2026, 7, 1, 0, 0)), 0);
    assert_int_equal(sched_tz_next_transition(utc_zone, 0, &next), -1);
    sched_tz_destroy(utc_zone);
    sched_tz_destroy(ny);
    sched_tz_destroy(berlin);
}

/* The demo clinics' zone: Amsterdam changes with Berlin; 08:30 local is 06:30Z in summer and 07:30Z in winter. */
static void test_amsterdam(void **state)
{
    sched_tz_t *ams = load("Europe/Amsterdam");
    int64_t u;
    assert_int_equal(sched_tz_offset_at_utc(ams, utc(2026, 3, 29, 1, 0) - 1), HOUR);
    assert_int_equal(sched_tz_offset_at_utc(ams, utc(2026, 3, 29, 1, 0)), 2 * HOUR);
    assert_int_equal(sched_tz_offset_at_utc(ams, utc(2026, 10, 25, 1, 0) - 1), 2 * HOUR);
    assert_int_equal(sched_tz_offset_at_utc(ams, utc(2026, 10, 25, 1, 0)), HOUR);
    assert_int_equal(sched_tz_local_to_utc(ams, local(2026, 10, 22, 8, 30), &u), 0);
    assert_int_equal(u, utc(2026, 10, 22, 6, 30));
    assert_int_equal(sched_tz_local_to_utc(ams, local(2026, 11, 26, 8, 30), &u), 0);
    assert_int_equal(u, utc(2026, 11, 26, 7, 30));
    /* The demo leave's bounds, midnight local: 2026-12-14 and 2027-01-01 (winter time). */
    assert_int_equal(sched_tz_local_to_utc(ams, local(2026, 12, 14, 0, 0), &u), 0);
    assert_int_equal(u, utc(2026, 12, 13, 23, 0));
    assert_int_equal(sched_tz_local_to_utc(ams, local(2027, 1, 1, 0, 0), &u), 0);
    assert_int_equal(u, utc(2026, 12, 31, 23, 0));
    assert_int_equal(sched_civil_weekday(util_days_from_civil(2027, 1, 1)), 4); /* a Friday */
    sched_tz_destroy(ams);
}

static void test_gap_maps_forward(void **state)
{
    sched_tz_t *ny = load("America/New_York"), *berlin = load("Europe/Berlin");
    sched_tz_local_t r;
    int64_t u;

    assert_int_equal(sched_tz_local_resolve(ny, local(2026, 3, 8, 2, 30), &r), 0);
    assert_int_equal(r.kind, SCHED_TZ_LOCAL_GAP);
    assert_int_equal(r.earlier, utc(2026, 3, 8, 7, 0)); /* 03:00 EDT, where the gap ends */
    assert_int_equal(r.later, utc(2026, 3, 8, 7, 30));  /* 03:30 EDT */
    assert_int_equal(sched_tz_local_to_utc(ny, local(2026, 3, 8, 2, 30), &u), 0);
    assert_int_equal(u, utc(2026, 3, 8, 7, 30));
    assert_int_equal(sched_tz_utc_to_local(ny, u), local(2026, 3, 8, 3, 30));
    /* 02:00 itself is in the gap, 01:59 and 03:00 are not. */
    assert_int_equal(sched_tz_local_resolve(ny, local(2026, 3, 8, 2, 0), &r), 0);
    assert_int_equal(r.kind, SCHED_TZ_LOCAL_GAP);
    assert_int_equal(sched_tz_local_resolve(ny, local(2026, 3, 8, 1, 59), &r), 0);
    assert_int_equal(r.kind, SCHED_TZ_LOCAL_UNIQUE);
    assert_int_equal(r.earlier, utc(2026, 3, 8, 6, 59));
    assert_int_equal(sched_tz_local_resolve(ny, local(2026, 3, 8, 3, 0), &r), 0);
    assert_int_equal(r.kind, SCHED_TZ_LOCAL_UNIQUE);
    assert_int_equal(r.earlier, utc(2026, 3, 8, 7, 0));

    assert_int_equal(sched_tz_local_to_utc(berlin, local(2026, 3, 29, 2, 30), &u), 0);
    assert_int_equal(u, utc(2026, 3, 29, 1, 30)); /* 03:30 CEST */
    assert_int_equal(sched_tz_local_resolve(berlin, local(2026, 3, 29, 2, 30), &r), 0);
    assert_int_equal(r.kind, SCHED_TZ_LOCAL_GAP);
    assert_int_equal(r.earlier, utc(2026, 3, 29, 1, 0));
    /* Far future, from the footer. */
    assert_int_equal(sched_tz_local_to_utc(ny, local(2100, 3, 14, 2, 15), &u), 0);
    assert_int_equal(u, utc(2100, 3, 14, 7, 15));
    sched_tz_destroy(ny);
    sched_tz_destroy(berlin);
}

static void test_overlap_picks_earlier(void **state)
{
    sched_tz_t *ny = load("America/New_York"), *berlin = load("Europe/Berlin");
    sched_tz_local_t r;
    int64_t u;

    assert_int_equal(sched_tz_local_resolve(ny, local(2026, 11, 1, 1, 30), &r), 0);
    assert_int_equal(r.kind, SCHED_TZ_LOCAL_OVERLAP);
    assert_int_equal(r.earlier, utc(2026, 11, 1, 5, 30)); /* 01:30 EDT */
    assert_int_equal(r.later, utc(2026, 11, 1, 6, 30));   /* 01:30 EST */
    assert_int_equal(sched_tz_local_to_utc(ny, local(2026, 11, 1, 1, 30), &u), 0);
    assert_int_equal(u, utc(2026, 11, 1, 5, 30));
    assert_int_equal(sched_tz_local_resolve(ny, local(2026, 11, 1, 2, 0), &r), 0);
    assert_int_equal(r.kind, SCHED_TZ_LOCAL_UNIQUE);
    assert_int_equal(r.earlier, utc(2026, 11, 1, 7, 0));

    assert_int_equal(sched_tz_local_resolve(berlin, local(2026, 10, 25, 2, 30), &r), 0);
    assert_int_equal(r.kind, SCHED_TZ_LOCAL_OVERLAP);
    assert_int_equal(r.earlier, utc(2026, 10, 25, 0, 30));
    assert_int_equal(r.later, utc(2026, 10, 25, 1, 30));
    assert_int_equal(sched_tz_local_to_utc(berlin, local(2100, 10, 31, 2, 0), &u), 0);
    assert_int_equal(u, utc(2100, 10, 31, 0, 0));

    /* Ordinary times round-trip. */
    for (int64_t t = utc(2026, 1, 1, 0, 0); t < utc(2027, 1, 1, 0, 0); t += 3 * HOUR + 17) {
        int64_t l = sched_tz_utc_to_local(berlin, t);
        assert_int_equal(sched_tz_local_resolve(berlin, l, &r), 0);
        assert_true(r.earlier == t || r.later == t);
    }
    assert_int_equal(sched_tz_local_to_utc(ny, SCHED_TIME_MAX + 1, &u), -1);
    assert_int_equal(sched_tz_local_to_utc(ny, SCHED_TIME_MIN - 1, &u), -1);
    sched_tz_destroy(ny);
    sched_tz_destroy(berlin);
}

static void test_bad_zone_names(void **state)
{
    static const char *const bad[] = {
        "",
        "/etc/passwd",
        "../../../etc/passwd",
        "America/../Europe/Berlin",
        "./UTC",
        "America//New_York",
        "America/New_York/",
        ".hidden",
        "Europe/Berlin\n",
        "Europe/Berlin ",
        "America/New York",
        "Europe\\Berlin",
        "Nowhere/City",
        "America",                /* a directory */
        "zone.tab",               /* not TZif */
        "localtime",              /* the machine's setting, not a zone */
        "right/America/New_York", /* leap seconds */
        "Europe/Berlin%n",
    };
    char err[256];
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        err[0] = '\0';
        sched_tz_t *tz = sched_tz_load(bad[i], err, sizeof(err));
        if (tz != NULL)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_true(err[0] != '\0');
    }
    char longname[SCHED_TZ_NAME_MAX + 2];
    memset(longname, 'A', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_null(sched_tz_load(longname, err, sizeof(err)));
    assert_null(sched_tz_load(NULL, NULL, 0));
    assert_null(sched_tz_load("Nowhere/City", NULL, 0));
    /* A small buffer is truncated, not overrun. */
    char tiny[8];
    assert_null(sched_tz_load("Nowhere/City", tiny, sizeof(tiny)));
    assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
}

static void test_links_and_cache(void **state)
{
    sched_tz_t *a = load("US/Eastern"), *b = load("US/Eastern"), *ny = load("America/New_York");
    assert_ptr_equal(a, b);
    assert_int_equal(sched_tz_offset_at_utc(a, utc(2026, 7, 1, 0, 0)), sched_tz_offset_at_utc(ny, utc(2026, 7, 1, 0, 0)));
    sched_tz_t *c = sched_tz_retain(a);
    sched_tz_cache_clear();
    /* Still usable after the cache let go; a new load makes a new copy. */
    assert_int_equal(sched_tz_offset_at_utc(c, utc(2026, 1, 1, 0, 0)), -5 * HOUR);
    sched_tz_t *d = load("US/Eastern");
    assert_ptr_not_equal(d, a);
    sched_tz_destroy(a);
    sched_tz_destroy(b);
    sched_tz_destroy(c);
    sched_tz_destroy(d);
    sched_tz_destroy(ny);
    sched_tz_destroy(NULL);
}

/* ---- hand-made TZif data ---- */

typedef struct {
    uint8_t data[4096];
    size_t len;
} tzif_t;

static void put(tzif_t *t, const void *p, size_t n)
{
    assert_true(t->len + n <= sizeof(t->data));
    if (n == 0)
        return;
    memcpy(t->data + t->len, p, n);
    t->len += n;
}

static void put_be(tzif_t *t, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; --i) {
        uint8_t b = (uint8_t)(v >> (8 * i));
        put(t, &b, 1);
    }
}

static void put_header(tzif_t *t, char version, uint32_t timecnt, uint32_t typecnt, uint32_t leapcnt)
{
    static const uint8_t zero[15];
    put(t, "TZif", 4);
    put(t, &version, 1);
    put(t, zero, 15);
    put_be(t, 0, 4); /* isutcnt */
    put_be(t, 0, 4); /* isstdcnt */
    put_be(t, leapcnt, 4);
    put_be(t, timecnt, 4);
    put_be(t, typecnt, 4);
    put_be(t, 4, 4); /* charcnt: "ABC\0" */
}

static void put_block(tzif_t *t, int timesize, const int64_t *times, const uint8_t *idx, size_t nt, const int32_t *offs,
                      size_t ntypes)
{
    for (size_t i = 0; i != nt; ++i)
        put_be(t, (uint64_t)times[i], timesize);
    put(t, idx, nt);
    for (size_t i = 0; i != ntypes; ++i) {
        put_be(t, (uint32_t)offs[i], 4);
        uint8_t isdst_and_idx[2] = {i != 0, 0};
        put(t, isdst_and_idx, 2);
    }
    put(t, "ABC", 4);
}

/* A version 2 file: the same table in both blocks, then the footer. */
static tzif_t make_v2(const int64_t *times, const uint8_t *idx, size_t nt, const int32_t *offs, size_t ntypes, const char *footer)
{
    tzif_t t = {.len = 0};
    put_header(&t, '2', (uint32_t)nt, (uint32_t)ntypes, 0);
    put_block(&t, 4, times, idx, nt, offs, ntypes);
    put_header(&t, '2', (uint32_t)nt, (uint32_t)ntypes, 0);
    put_block(&t, 8, times, idx, nt, offs, ntypes);
    put(&t, "\n", 1);
    put(&t, footer, strlen(footer));
    put(&t, "\n", 1);
    return t;
}

static sched_tz_t *parse_footer_only(const char *footer)
{
    static const int32_t offs[] = {0};
    tzif_t t = make_v2(NULL, NULL, 0, offs, 1, footer);
    char err[256] = "";
    sched_tz_t *tz = sched_tz_parse(footer, t.data, t.len, err, sizeof(err));
    if (tz == NULL)
        fail_msg("footer \"%s\": %s", footer, err);
    return tz;
}

static void test_version1_file(void **state)
{
    /* Offset +1h until 2000-01-01, then +2h. */
    int64_t times[] = {utc(2000, 1, 1, 0, 0)};
    uint8_t idx[] = {1};
    int32_t offs[] = {HOUR, 2 * HOUR};
    tzif_t t = {.len = 0};
    put_header(&t, 0, 1, 2, 0);
    put_block(&t, 4, times, idx, 1, offs, 2);
    char err[256];
    sched_tz_t *tz = sched_tz_parse("v1", t.data, t.len, err, sizeof(err));
    assert_non_null(tz);
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(1999, 12, 31, 23, 59)), HOUR);
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(2000, 1, 1, 0, 0)), 2 * HOUR);
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(2100, 1, 1, 0, 0)), 2 * HOUR);
    int64_t next;
    assert_int_equal(sched_tz_next_transition(tz, 0, &next), 0);
    assert_int_equal(next, utc(2000, 1, 1, 0, 0));
    assert_int_equal(sched_tz_next_transition(tz, next, &next), -1);
    sched_tz_destroy(tz);
}

static void test_footer_variants(void **state)
{
    int64_t u;
    /* A plain US rule with no table at all. */
    sched_tz_t *tz = parse_footer_only("EST5EDT,M3.2.0,M11.1.0");
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(2026, 3, 8, 7, 0) - 1), -5 * HOUR);
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(2026, 3, 8, 7, 0)), -4 * HOUR);
    sched_tz_destroy(tz);
    /* No rule given: tzcode's default US rule. */
    tz = parse_footer_only("EST5EDT");
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(2026, 11, 1, 6, 0) - 1), -4 * HOUR);
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(2026, 11, 1, 6, 0)), -5 * HOUR);
    sched_tz_destroy(tz);
    /* Quoted names, minutes in the offset, no DST. */
    tz = parse_footer_only("<+0530>-5:30");
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(2026, 6, 1, 0, 0)), 5 * HOUR + 30 * 60);
    assert_int_equal(sched_tz_next_transition(tz, 0, &u), -1);
    sched_tz_destroy(tz);
    /* Ireland: "daylight" time is the winter one (negative DST), the rule wraps the year end. */
    tz = parse_footer_only("IST-1GMT0,M10.5.0,M3.5.0/1");
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(2026, 1, 15, 0, 0)), 0);
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(2026, 7, 15, 0, 0)), HOUR);
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(2026, 3, 29, 1, 0) - 1), 0);
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(2026, 3, 29, 1, 0)), HOUR);
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(2026, 10, 25, 1, 0)), 0);
    sched_tz_destroy(tz);
    /* Southern hemisphere (Sydney): DST from October to April. */
    tz = parse_footer_only("AEST-10AEDT,M10.1.0,M4.1.0/3");
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(2026, 1, 15, 0, 0)), 11 * HOUR);
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(2026, 6, 15, 0, 0)), 10 * HOUR);
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(2026, 4, 4, 16, 0) - 1), 11 * HOUR); /* 03:00 AEDT on 2026-04-05 */
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(2026, 4, 4, 16, 0)), 10 * HOUR);
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(2026, 10, 3, 16, 0)), 11 * HOUR); /* 02:00 AEST on 2026-10-04 */
    sched_tz_destroy(tz);
    /* TZif v3: negative and >24h transition times (Nuuk's rule). */
    tz = parse_footer_only("<-02>2<-01>,M3.5.0/-1,M10.5.0/0");
    /* Last Sunday of March "at -01:00" is Saturday 2026-03-28 23:00 local, 2026-03-29 01:00Z. */
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(2026, 3, 29, 1, 0) - 1), -2 * HOUR);
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(2026, 3, 29, 1, 0)), -HOUR);
    sched_tz_destroy(tz);
    /* DST all year: never changes, stays in DST across year ends. */
    tz = parse_footer_only("EST5EDT,0/0,J365/25");
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(2026, 1, 1, 5, 0)), -4 * HOUR);
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(2026, 12, 31, 23, 0)), -4 * HOUR);
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(2027, 1, 1, 4, 59)), -4 * HOUR);
    assert_int_equal(sched_tz_next_transition(tz, utc(2026, 6, 1, 0, 0), &u), -1);
    sched_tz_destroy(tz);
    /* Julian days without Feb 29 (J60 is always March 1) and zero-based days with it (59 is Feb 29 in a leap year). */
    tz = parse_footer_only("XXX3YYY,J60/0,300/0");
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(2028, 3, 1, 3, 0) - 1), -3 * HOUR);
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(2028, 3, 1, 3, 0)), -2 * HOUR);
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(2028, 10, 27, 2, 0) - 1), -2 * HOUR); /* day 300 of a leap year */
    assert_int_equal(sched_tz_offset_at_utc(tz, utc(2028, 10, 27, 2, 0)), -3 * HOUR);
    sched_tz_destroy(tz);
}

static void test_corrupt_tzif(void **state)
{
    static const char *const bad_footers[] = {
        "EST",                        /* no offset */
        "E5",                         /* name too short */
        "EST5EDT,M3.2.0",             /* one date */
        "EST5EDT,M13.2.0,M11.1.0",    /* month 13 */
        "EST5EDT,M3.6.0,M11.1.0",     /* week 6 */
        "EST5EDT,M3.2.7,M11.1.0",     /* weekday 7 */
        "EST5EDT,J0,J365",            /* J starts at 1 */
        "EST5EDT,M3.2.0/168,M11.1.0", /* beyond 167 hours */
        "EST25",                      /* offset beyond 24 hours */
        "EST5EDT,M3.2.0,M11.1.0x",    /* trailing junk */
        "<AB>5",                      /* quoted name too short */
    };
    int32_t offs[] = {0, HOUR};
    char err[256];
    for (size_t i = 0; i != sizeof(bad_footers) / sizeof(bad_footers[0]); ++i) {
        tzif_t t = make_v2(NULL, NULL, 0, offs, 1, bad_footers[i]);
        if (sched_tz_parse("bad", t.data, t.len, err, sizeof(err)) != NULL)
            fail_msg("accepted footer \"%s\"", bad_footers[i]);
    }

    int64_t times[] = {1000, 2000};
    uint8_t idx[] = {1, 0};
    tzif_t good = make_v2(times, idx, 2, offs, 2, "ABC0");
    sched_tz_t *tz = sched_tz_parse("good", good.data, good.len, err, sizeof(err));
    assert_non_null(tz);
    sched_tz_destroy(tz);
    /* Every truncation fails cleanly. */
    for (size_t len = 0; len < good.len; ++len)
        assert_null(sched_tz_parse("cut", good.data, len, err, sizeof(err)));

    tzif_t t = good;
    t.data[0] = 'X';
    assert_null(sched_tz_parse("magic", t.data, t.len, err, sizeof(err)));
    t = good;
    t.data[4] = '9';
    assert_null(sched_tz_parse("version", t.data, t.len, err, sizeof(err)));
    int64_t backwards[] = {2000, 1000};
    t = make_v2(backwards, idx, 2, offs, 2, "ABC0");
    assert_null(sched_tz_parse("order", t.data, t.len, err, sizeof(err)));
    uint8_t bad_idx[] = {1, 2};
    t = make_v2(times, bad_idx, 2, offs, 2, "ABC0");
    assert_null(sched_tz_parse("index", t.data, t.len, err, sizeof(err)));
    int32_t huge[] = {0, 27 * HOUR};
    t = make_v2(times, idx, 2, huge, 2, "ABC0");
    assert_null(sched_tz_parse("offset", t.data, t.len, err, sizeof(err)));
    t = (tzif_t){.len = 0};
    put_header(&t, '2', 0, 0, 0); /* typecnt 0 */
    assert_null(sched_tz_parse("types", t.data, t.len, err, sizeof(err)));
    t = (tzif_t){.len = 0};
    put_header(&t, '2', 0, 1, 1); /* leap seconds */
    assert_null(sched_tz_parse("leap", t.data, t.len, err, sizeof(err)));
    assert_true(strstr(err, "leap") != NULL);
}

static void *worker(void *arg)
{
    static const char *const zones[] = {"America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Sydney"};
    int64_t sum = 0;
    for (int i = 0; i != 200; ++i) {
        sched_tz_t *tz = sched_tz_load(zones[(i + (intptr_t)arg) % 4], NULL, 0);
        if (tz == NULL)
            return (void *)1;
        int64_t u;
        sched_tz_local_to_utc(tz, local(2026, 3, 8, 2, 30) + i * 86400, &u);
        sum += u + sched_tz_offset_at_utc(tz, u);
        sched_tz_destroy(tz);
        if (i % 50 == 0)
            sched_tz_cache_clear();
    }
    return sum == 0 ? (void *)1 : NULL;
}

static void test_threads_share_zones(void **state)
{
    pthread_t th[4];
    for (intptr_t i = 0; i != 4; ++i)
        assert_int_equal(pthread_create(&th[i], NULL, worker, (void *)i), 0);
    for (int i = 0; i != 4; ++i) {
        void *ret;
        pthread_join(th[i], &ret);
        assert_null(ret);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_civil_dates),
        cmocka_unit_test(test_offsets_new_york_and_berlin),
        cmocka_unit_test(test_footer_rules_far_future),
        cmocka_unit_test(test_amsterdam),
        cmocka_unit_test(test_gap_maps_forward),
        cmocka_unit_test(test_overlap_picks_earlier),
        cmocka_unit_test(test_bad_zone_names),
        cmocka_unit_test(test_links_and_cache),
        cmocka_unit_test(test_version1_file),
        cmocka_unit_test(test_footer_variants),
        cmocka_unit_test(test_corrupt_tzif),
        cmocka_unit_test(test_threads_share_zones),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sched_tz_cache_clear();
    return rc;
}
