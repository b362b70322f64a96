/* Availability maths: interval sets, weekly rules across DST changes, leave, buffers, alignment, several actors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "sched/sched.h"

#define MIN 60
#define HOUR 3600
#define DAY 86400
#define WEEKDAYS (SCHED_DAY_MON | SCHED_DAY_TUE | SCHED_DAY_WED | SCHED_DAY_THU | SCHED_DAY_FRI)

static int64_t utc(int64_t y, unsigned mo, unsigned d, int h, int mi)
{
    return util_days_from_civil(y, mo, d) * DAY + h * HOUR + mi * MIN;
}

static sched_tz_t *load(const char *name)
{
    char err[256] = "";
    sched_tz_t *tz = sched_tz_load(name, err, sizeof(err));
    if (tz == NULL)
        fail_msg("loading %s: %s", name, err);
    return tz;
}

static sched_avail_rule_t hours(unsigned days, int from_h, int from_m, int to_h, int to_m)
{
    return (sched_avail_rule_t){days, false, from_h * HOUR + from_m * MIN, to_h * HOUR + to_m * MIN};
}

/* Checks that `set` is exactly the intervals given as start, end, start, end, ... */
static void expect_set(const sched_avail_set_t *set, size_t n, const int64_t *bounds)
{
    if (set->count != n) {
        for (size_t i = 0; i != set->count; ++i)
            print_message("  [%lld, %lld)\n", (long long)set->items[i].start, (long long)set->items[i].end);
        fail_msg("expected %zu intervals, got %zu", n, set->count);
    }
    for (size_t i = 0; i != n; ++i) {
        assert_int_equal(set->items[i].start, bounds[2 * i]);
        assert_int_equal(set->items[i].end, bounds[2 * i + 1]);
    }
}

#define EXPECT_SET(set, ...)                                                                                                       \
    do {                                                                                                                           \
        const int64_t b_[] = {__VA_ARGS__};                                                                                        \
        expect_set((set), sizeof(b_) / sizeof(b_[0]) / 2, b_);                                                                     \
    } while (0)

static sched_avail_query_t query(int64_t duration, int align_minutes)
{
    return (sched_avail_query_t){
        .duration = duration, .align_minutes = align_minutes, .now = SCHED_TIME_MIN, .min_notice = 0, .max_horizon = INT64_MAX};
}

static size_t find(const sched_avail_set_t *set, const sched_tz_t *tz, const sched_avail_query_t *q, int64_t *starts, size_t cap)
{
    size_t n = 99;
    assert_int_equal(sched_avail_find_starts(set, tz, q, starts, cap, &n), 0);
    return n;
}

static void test_set_add_merges(void **state)
{
    sched_avail_set_t s;
    sched_avail_set_init(&s);
    assert_int_equal(sched_avail_set_add(&s, 100, 200), 0);
    assert_int_equal(sched_avail_set_add(&s, 300, 400), 0);
    assert_int_equal(sched_avail_set_add(&s, 0, 50), 0);
    EXPECT_SET(&s, 0, 50, 100, 200, 300, 400);
    assert_int_equal(sched_avail_set_add(&s, 200, 300), 0); /* touching both neighbours joins them */
    EXPECT_SET(&s, 0, 50, 100, 400);
    assert_int_equal(sched_avail_set_add(&s, 150, 160), 0); /* inside */
    assert_int_equal(sched_avail_set_add(&s, 70, 70), 0);   /* empty */
    EXPECT_SET(&s, 0, 50, 100, 400);
    assert_int_equal(sched_avail_set_add(&s, 500, 400), -1);
    assert_int_equal(sched_avail_set_add(&s, 40, 110), 0);
    EXPECT_SET(&s, 0, 400);
    assert_int_equal(sched_avail_set_add(&s, 1000, INT64_MAX), 0); /* open-ended: clamped */
    EXPECT_SET(&s, 0, 400, 1000, SCHED_TIME_MAX);
    assert_int_equal(sched_avail_set_add(&s, INT64_MIN, -5), 0);
    EXPECT_SET(&s, SCHED_TIME_MIN, -5, 0, 400, 1000, SCHED_TIME_MAX);
    assert_int_equal(sched_avail_set_total(&s), (-5 - SCHED_TIME_MIN) + 400 + (SCHED_TIME_MAX - 1000));
    /* Many inserts in reverse order stay sorted and merged. */
    sched_avail_set_clear(&s);
    for (int i = 999; i >= 0; --i)
        assert_int_equal(sched_avail_set_add(&s, i * 10, i * 10 + 5), 0);
    assert_int_equal(s.count, 1000);
    for (int i = 0; i != 1000; ++i)
        assert_int_equal(sched_avail_set_add(&s, i * 10 + 5, i * 10 + 10), 0);
    EXPECT_SET(&s, 0, 10000);
    sched_avail_set_dispose(&s);
}

static void test_set_algebra(void **state)
{
    sched_avail_set_t a, b, out;
    sched_avail_set_init(&a);
    sched_avail_set_init(&b);
    sched_avail_set_init(&out);
    sched_avail_set_add(&a, 0, 100);
    sched_avail_set_add(&a, 200, 300);
    sched_avail_set_add(&a, 400, 500);
    sched_avail_set_add(&b, 50, 250);
    sched_avail_set_add(&b, 300, 450);
    sched_avail_set_add(&b, 480, 490);

    sched_avail_set_union(&out, &a, &b);
    EXPECT_SET(&out, 0, 500);
    sched_avail_set_intersect(&out, &a, &b);
    EXPECT_SET(&out, 50, 100, 200, 250, 400, 450, 480, 490);
    sched_avail_set_subtract(&out, &a, &b);
    EXPECT_SET(&out, 0, 50, 250, 300, 450, 480, 490, 500);
    sched_avail_set_subtract(&out, &b, &a);
    EXPECT_SET(&out, 100, 200, 300, 400);

    /* Outputs may alias inputs. */
    sched_avail_set_copy(&out, &a);
    sched_avail_set_intersect(&out, &out, &b);
    EXPECT_SET(&out, 50, 100, 200, 250, 400, 450, 480, 490);
    sched_avail_set_copy(&out, &a);
    sched_avail_set_subtract(&out, &out, &out);
    assert_int_equal(out.count, 0);
    sched_avail_set_copy(&out, &a);
    sched_avail_set_union(&out, &b, &out);
    EXPECT_SET(&out, 0, 500);

    sched_avail_set_copy(&out, &a);
    sched_avail_set_clip(&out, 50, 450);
    EXPECT_SET(&out, 50, 100, 200, 300, 400, 450);
    sched_avail_set_clip(&out, 450, 50);
    assert_int_equal(out.count, 0);

    assert_true(sched_avail_set_contains(&a, 200, 300));
    assert_true(sched_avail_set_contains(&a, 0, 1));
    assert_false(sched_avail_set_contains(&a, 250, 301));
    assert_false(sched_avail_set_contains(&a, 90, 210));
    assert_false(sched_avail_set_contains(&a, 150, 160));
    assert_false(sched_avail_set_contains(&a, 200, 200));
    assert_false(sched_avail_set_contains(&out, 0, 1));

    /* Empty operands. */
    sched_avail_set_clear(&b);
    sched_avail_set_intersect(&out, &a, &b);
    assert_int_equal(out.count, 0);
    sched_avail_set_subtract(&out, &a, &b);
    EXPECT_SET(&out, 0, 100, 200, 300, 400, 500);
    sched_avail_set_union(&out, &b, &b);
    assert_int_equal(out.count, 0);

    sched_avail_set_dispose(&a);
    sched_avail_set_dispose(&b);
    sched_avail_set_dispose(&out);
}

static void test_rule_intersection(void **state)
{
    sched_tz_t *berlin = load("Europe/Berlin");
    /* The practitioner works Mon-Fri 09:00-17:00; the clinic opens Mon-Sat 08:00-12:00 and 13:00-18:00. */
    sched_avail_rule_t practitioner[] = {hours(WEEKDAYS, 9, 0, 17, 0)};
    sched_avail_rule_t clinic[] = {hours(WEEKDAYS | SCHED_DAY_SAT, 8, 0, 12, 0), hours(WEEKDAYS | SCHED_DAY_SAT, 13, 0, 18, 0)};
    sched_avail_set_t p, c, both;
    sched_avail_set_init(&p);
    sched_avail_set_init(&c);
    sched_avail_set_init(&both);
    /* Week of Monday 2026-06-08 (CEST, +2). */
    int64_t from = utc(2026, 6, 8, 0, 0) - 2 * HOUR, to = from + 7 * DAY;
    assert_int_equal(sched_avail_rules_expand(&p, practitioner, 1, berlin, from, to), 0);
    assert_int_equal(sched_avail_rules_expand(&c, clinic, 2, berlin, from, to), 0);
    assert_int_equal(p.count, 5);
    assert_int_equal(c.count, 12);
    sched_avail_set_intersect(&both, &p, &c);
    assert_int_equal(both.count, 10);
    assert_int_equal(sched_avail_set_total(&both), 5 * 7 * HOUR);
    /* Monday: 09:00-12:00 and 13:00-17:00 local = 07:00-10:00Z and 11:00-15:00Z. */
    assert_int_equal(both.items[0].start, utc(2026, 6, 8, 7, 0));
    assert_int_equal(both.items[0].end, utc(2026, 6, 8, 10, 0));
    assert_int_equal(both.items[1].start, utc(2026, 6, 8, 11, 0));
    assert_int_equal(both.items[1].end, utc(2026, 6, 8, 15, 0));
    /* Saturday is clinic-only: nothing in common. */
    assert_true(both.items[9].end <= utc(2026, 6, 13, 0, 0));

    /* Two rules for one actor unite (split shift with a gap, plus an overlapping extra). */
    sched_avail_rule_t split[] = {hours(SCHED_DAY_MON, 8, 0, 12, 0), hours(SCHED_DAY_MON, 14, 0, 18, 0),
                                  hours(SCHED_DAY_MON, 11, 0, 15, 0)};
    assert_int_equal(sched_avail_rules_expand(&p, split, 3, berlin, from, to), 0);
    EXPECT_SET(&p, utc(2026, 6, 8, 6, 0), utc(2026, 6, 8, 16, 0));
    sched_avail_set_dispose(&p);
    sched_avail_set_dispose(&c);
    sched_avail_set_dispose(&both);
    sched_tz_destroy(berlin);
}

static void test_leave_and_busy(void **state)
{
    sched_tz_t *berlin = load("Europe/Berlin");
    sched_avail_rule_t rules[] = {hours(WEEKDAYS, 9, 0, 17, 0)};
    sched_avail_set_t s;
    sched_avail_set_init(&s);
    int64_t mon = utc(2026, 6, 8, 0, 0) - 2 * HOUR; /* local midnight */
    assert_int_equal(sched_avail_rules_expand(&s, rules, 1, berlin, mon, mon + 7 * DAY), 0);
    assert_int_equal(s.count, 5);

    /* notAvailable: all of Wednesday, and Friday from 12:00 local onwards, open-ended. */
    sched_interval_t leave[] = {{mon + 2 * DAY, mon + 3 * DAY}, {mon + 4 * DAY + 12 * HOUR, INT64_MAX}};
    assert_int_equal(sched_avail_set_subtract_busy(&s, leave, 2, 0, 0), 0);
    assert_int_equal(s.count, 4);
    assert_int_equal(s.items[2].start, mon + 3 * DAY + 9 * HOUR); /* Thursday */
    EXPECT_SET(&s, mon + 9 * HOUR, mon + 17 * HOUR, mon + DAY + 9 * HOUR, mon + DAY + 17 * HOUR, mon + 3 * DAY + 9 * HOUR,
               mon + 3 * DAY + 17 * HOUR, mon + 4 * DAY + 9 * HOUR, mon + 4 * DAY + 12 * HOUR);

    /* Appointments stored without buffers, widened by 10 min before and 15 min after; inverted ones are ignored. */
    sched_interval_t busy[] = {{mon + 10 * HOUR, mon + 10 * HOUR + 30 * MIN}, {mon + 16 * HOUR, mon + 15 * HOUR}};
    assert_int_equal(sched_avail_set_subtract_busy(&s, busy, 2, 10 * MIN, 15 * MIN), 0);
    assert_int_equal(s.items[0].end, mon + 9 * HOUR + 50 * MIN);
    assert_int_equal(s.items[1].start, mon + 10 * HOUR + 45 * MIN);
    assert_int_equal(s.count, 5);
    assert_int_equal(sched_avail_set_subtract_busy(&s, busy, 1, -1, 0), -1);
    assert_int_equal(sched_avail_set_subtract_busy(&s, busy, 1, 0, SCHED_AVAIL_MAX_BUFFER + 1), -1);
    assert_int_equal(sched_avail_set_subtract_busy(&s, NULL, 0, 0, 0), 0);
    assert_int_equal(s.count, 5);
    sched_avail_set_dispose(&s);
    sched_tz_destroy(berlin);
}

static void test_buffers(void **state)
{
    sched_tz_t *utc_zone = load("UTC");
    sched_avail_set_t s;
    sched_avail_set_init(&s);
    int64_t day = utc(2026, 6, 8, 0, 0);
    sched_avail_set_add(&s, day + 9 * HOUR, day + 12 * HOUR);
    sched_interval_t busy[] = {{day + 10 * HOUR, day + 10 * HOUR + 30 * MIN}};
    sched_avail_set_subtract_busy(&s, busy, 1, 0, 0);

    /* 30 minutes with 10 before and 5 after on a 15-minute grid: 09:15 is the first start (09:05 must be free), the last
     * before the busy block must end its buffer by 10:00, the first after it starts its buffer at 10:30. */
    sched_avail_query_t q = query(30 * MIN, 15);
    q.buffer_before = 10 * MIN;
    q.buffer_after = 5 * MIN;
    int64_t starts[32];
    size_t n = find(&s, utc_zone, &q, starts, 32);
    int64_t expect[] = {day + 9 * HOUR + 15 * MIN, day + 10 * HOUR + 45 * MIN, day + 11 * HOUR, day + 11 * HOUR + 15 * MIN};
    assert_int_equal(n, 4);
    assert_memory_equal(starts, expect, sizeof(expect));

    /* Without buffers the day offers more. */
    q.buffer_before = q.buffer_after = 0;
    n = find(&s, utc_zone, &q, starts, 32);
    assert_int_equal(n, 3 + 5);
    assert_int_equal(starts[0], day + 9 * HOUR);
    assert_int_equal(starts[2], day + 9 * HOUR + 30 * MIN);
    assert_int_equal(starts[3], day + 10 * HOUR + 30 * MIN);
    assert_int_equal(starts[7], day + 11 * HOUR + 30 * MIN);

    /* Buffers larger than any free stretch leave nothing. */
    q.buffer_before = 3 * HOUR;
    assert_int_equal(find(&s, utc_zone, &q, starts, 32), 0);
    sched_avail_set_dispose(&s);
    sched_tz_destroy(utc_zone);
}

static void test_alignment(void **state)
{
    sched_tz_t *berlin = load("Europe/Berlin"), *kathmandu = load("Asia/Kathmandu");
    sched_avail_set_t s;
    sched_avail_set_init(&s);
    int64_t starts[64];

    /* Free 09:07-10:00 local (Berlin, +2): 30-minute appointments on a 15-minute grid start at 09:15 and 09:30. */
    int64_t day = utc(2026, 6, 8, 0, 0) - 2 * HOUR;
    sched_avail_set_add(&s, day + 9 * HOUR + 7 * MIN, day + 10 * HOUR);
    sched_avail_query_t q = query(30 * MIN, 15);
    assert_int_equal(find(&s, berlin, &q, starts, 64), 2);
    assert_int_equal(starts[0], day + 9 * HOUR + 15 * MIN);
    assert_int_equal(starts[1], day + 9 * HOUR + 30 * MIN);

    /* A 45-minute grid restarts at local midnight: 23:15, then 00:00, 00:45, 01:30. */
    sched_avail_set_clear(&s);
    sched_avail_set_add(&s, day + 23 * HOUR, day + DAY + 2 * HOUR);
    q = query(15 * MIN, 45);
    assert_int_equal(find(&s, berlin, &q, starts, 64), 4);
    assert_int_equal(starts[0], day + 23 * HOUR + 15 * MIN);
    assert_int_equal(starts[1], day + DAY);
    assert_int_equal(starts[2], day + DAY + 45 * MIN);
    assert_int_equal(starts[3], day + DAY + 90 * MIN);

    /* The grid is local wall time: in Kathmandu (+05:45) hourly starts fall at :15 past the UTC hour. */
    sched_avail_set_clear(&s);
    sched_avail_set_add(&s, utc(2026, 6, 8, 3, 0), utc(2026, 6, 8, 6, 0));
    q = query(HOUR, 60);
    assert_int_equal(find(&s, kathmandu, &q, starts, 64), 2);
    assert_int_equal(starts[0], utc(2026, 6, 8, 3, 15)); /* 09:00 local */
    assert_int_equal(starts[1], utc(2026, 6, 8, 4, 15));
    assert_int_equal(sched_tz_utc_to_local(kathmandu, starts[0]) % DAY, 9 * HOUR);

    /* One-minute grid, and the cap. */
    q = query(HOUR, 1);
    assert_int_equal(find(&s, kathmandu, &q, starts, 64), 64);
    assert_int_equal(starts[63] - starts[0], 63 * MIN);
    assert_int_equal(find(&s, kathmandu, &q, starts, 0), 0);
    sched_avail_set_dispose(&s);
    sched_tz_destroy(berlin);
    sched_tz_destroy(kathmandu);
}

static void test_notice_and_horizon(void **state)
{
    sched_tz_t *berlin = load("Europe/Berlin");
    sched_avail_rule_t rules[] = {hours(SCHED_DAY_ALL, 9, 0, 17, 0)};
    sched_avail_set_t s;
    sched_avail_set_init(&s);
    int64_t mon = utc(2026, 6, 8, 0, 0) - 2 * HOUR;
    assert_int_equal(sched_avail_rules_expand(&s, rules, 1, berlin, mon, mon + 14 * DAY), 0);

    int64_t starts[512];
    sched_avail_query_t q = query(HOUR, 60);
    q.now = mon + 8 * HOUR + 50 * MIN;
    q.min_notice = 2 * HOUR; /* earliest 10:50 -> first start 11:00 */
    q.max_horizon = 2 * DAY; /* latest Wednesday 08:50 */
    size_t n = find(&s, berlin, &q, starts, 512);
    assert_int_equal(starts[0], mon + 11 * HOUR);
    assert_int_equal(n, 6 + 8); /* 11:00..16:00 on Monday, 09:00..16:00 on Tuesday */
    assert_int_equal(starts[n - 1], mon + DAY + 16 * HOUR);
    /* The horizon is inclusive: a start exactly at now + horizon is offered. */
    q.max_horizon = 2 * DAY + 10 * MIN;
    assert_int_equal(find(&s, berlin, &q, starts, 512), 6 + 8 + 1);
    /* Notice beyond the horizon, and saturating extremes. */
    q.min_notice = 3 * DAY;
    assert_int_equal(find(&s, berlin, &q, starts, 512), 0);
    q.min_notice = INT64_MAX;
    q.max_horizon = INT64_MAX;
    assert_int_equal(find(&s, berlin, &q, starts, 512), 0);
    q.min_notice = 0;
    assert_int_equal(find(&s, berlin, &q, starts, 512), 14 * 8);
    sched_avail_set_dispose(&s);
    sched_tz_destroy(berlin);
}

static void test_dst_new_york(void **state)
{
    sched_tz_t *ny = load("America/New_York");
    sched_avail_set_t s;
    sched_avail_set_init(&s);
    sched_avail_rule_t office[] = {hours(SCHED_DAY_ALL, 9, 0, 17, 0)};

    /* Spring: Saturday 2026-03-07 is EST, Sunday 2026-03-08 EDT; both stay 09:00-17:00 local, 8 hours. */
    assert_int_equal(sched_avail_rules_expand(&s, office, 1, ny, utc(2026, 3, 7, 0, 0), utc(2026, 3, 9, 12, 0)), 0);
    EXPECT_SET(&s, utc(2026, 3, 7, 14, 0), utc(2026, 3, 7, 22, 0), utc(2026, 3, 8, 13, 0), utc(2026, 3, 8, 21, 0));
    /* Autumn: Saturday 2026-10-31 EDT, Sunday 2026-11-01 EST. */
    assert_int_equal(sched_avail_rules_expand(&s, office, 1, ny, utc(2026, 10, 31, 0, 0), utc(2026, 11, 2, 12, 0)), 0);
    EXPECT_SET(&s, utc(2026, 10, 31, 13, 0), utc(2026, 10, 31, 21, 0), utc(2026, 11, 1, 14, 0), utc(2026, 11, 1, 22, 0));

    /* A night shift 22:00-06:00 spanning the change is 7 real hours in spring and 9 in autumn. */
    sched_avail_rule_t night[] = {hours(SCHED_DAY_SAT, 22, 0, 6, 0)};
    assert_int_equal(sched_avail_rules_expand(&s, night, 1, ny, utc(2026, 3, 7, 0, 0), utc(2026, 3, 9, 0, 0)), 0);
    EXPECT_SET(&s, utc(2026, 3, 8, 3, 0), utc(2026, 3, 8, 10, 0));
    assert_int_equal(sched_avail_rules_expand(&s, night, 1, ny, utc(2026, 10, 31, 0, 0), utc(2026, 11, 2, 0, 0)), 0);
    EXPECT_SET(&s, utc(2026, 11, 1, 2, 0), utc(2026, 11, 1, 11, 0));

    /* Whole days are 23 and 25 hours long. */
    sched_avail_rule_t sunday[] = {{SCHED_DAY_SUN, true, 0, 0}};
    assert_int_equal(sched_avail_rules_expand(&s, sunday, 1, ny, utc(2026, 3, 1, 0, 0), utc(2026, 3, 15, 0, 0)), 0);
    assert_int_equal(s.count, 2);
    assert_int_equal(s.items[0].end - s.items[0].start, 24 * HOUR);
    assert_int_equal(s.items[1].end - s.items[1].start, 23 * HOUR);
    assert_int_equal(sched_avail_rules_expand(&s, sunday, 1, ny, utc(2026, 10, 30, 0, 0), utc(2026, 11, 3, 0, 0)), 0);
    EXPECT_SET(&s, utc(2026, 11, 1, 4, 0), utc(2026, 11, 2, 5, 0));

    /* Half-hour starts in 01:00-05:00 on the spring day: 02:00 and 02:30 do not exist. */
    sched_avail_rule_t early[] = {hours(SCHED_DAY_SUN, 1, 0, 5, 0)};
    assert_int_equal(sched_avail_rules_expand(&s, early, 1, ny, utc(2026, 3, 8, 0, 0), utc(2026, 3, 9, 0, 0)), 0);
    EXPECT_SET(&s, utc(2026, 3, 8, 6, 0), utc(2026, 3, 8, 9, 0));
    int64_t starts[16];
    sched_avail_query_t q = query(30 * MIN, 30);
    assert_int_equal(find(&s, ny, &q, starts, 16), 6);
    static const int wall[] = {60, 90, 180, 210, 240, 270}; /* minutes after local midnight */
    for (int i = 0; i != 6; ++i)
        assert_int_equal(sched_tz_utc_to_local(ny, starts[i]) - utc(2026, 3, 8, 0, 0), wall[i] * MIN);

    /* Hourly starts in 00:00-03:00 on the autumn day: 01:00 comes twice (EDT, then EST). */
    sched_avail_rule_t late[] = {hours(SCHED_DAY_SUN, 0, 0, 3, 0)};
    assert_int_equal(sched_avail_rules_expand(&s, late, 1, ny, utc(2026, 11, 1, 0, 0), utc(2026, 11, 2, 0, 0)), 0);
    EXPECT_SET(&s, utc(2026, 11, 1, 4, 0), utc(2026, 11, 1, 8, 0));
    q = query(HOUR, 60);
    assert_int_equal(find(&s, ny, &q, starts, 16), 4);
    int64_t expect[] = {utc(2026, 11, 1, 4, 0), utc(2026, 11, 1, 5, 0), utc(2026, 11, 1, 6, 0), utc(2026, 11, 1, 7, 0)};
    assert_memory_equal(starts, expect, sizeof(expect));

    /* Far future, from the footer rule: 2100-03-14 is the spring change. */
    assert_int_equal(sched_avail_rules_expand(&s, office, 1, ny, utc(2100, 3, 13, 0, 0), utc(2100, 3, 15, 0, 0)), 0);
    EXPECT_SET(&s, utc(2100, 3, 13, 14, 0), utc(2100, 3, 13, 22, 0), utc(2100, 3, 14, 13, 0), utc(2100, 3, 14, 21, 0));
    sched_avail_set_dispose(&s);
    sched_tz_destroy(ny);
}

static void test_dst_berlin(void **state)
{
    sched_tz_t *berlin = load("Europe/Berlin");
    sched_avail_set_t s;
    sched_avail_set_init(&s);
    sched_avail_rule_t office[] = {hours(SCHED_DAY_SAT | SCHED_DAY_SUN, 9, 0, 17, 0)};

    assert_int_equal(sched_avail_rules_expand(&s, office, 1, berlin, utc(2026, 3, 27, 0, 0), utc(2026, 3, 30, 0, 0)), 0);
    EXPECT_SET(&s, utc(2026, 3, 28, 8, 0), utc(2026, 3, 28, 16, 0), utc(2026, 3, 29, 7, 0), utc(2026, 3, 29, 15, 0));
    assert_int_equal(sched_avail_rules_expand(&s, office, 1, berlin, utc(2026, 10, 23, 0, 0), utc(2026, 10, 26, 0, 0)), 0);
    EXPECT_SET(&s, utc(2026, 10, 24, 7, 0), utc(2026, 10, 24, 15, 0), utc(2026, 10, 25, 8, 0), utc(2026, 10, 25, 16, 0));

    /* Period bounds inside the gap (02:00-03:00 local on 2026-03-29) move to the end of the gap, 01:00Z: the period keeps
     * exactly the instants whose wall time lies inside it. */
    sched_avail_rule_t into_gap[] = {hours(SCHED_DAY_SUN, 1, 0, 2, 30)};
    assert_int_equal(sched_avail_rules_expand(&s, into_gap, 1, berlin, utc(2026, 3, 28, 0, 0), utc(2026, 3, 30, 0, 0)), 0);
    EXPECT_SET(&s, utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 1, 0));
    sched_avail_rule_t from_gap[] = {hours(SCHED_DAY_SUN, 2, 30, 4, 0)};
    assert_int_equal(sched_avail_rules_expand(&s, from_gap, 1, berlin, utc(2026, 3, 28, 0, 0), utc(2026, 3, 30, 0, 0)), 0);
    EXPECT_SET(&s, utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 2, 0));
    sched_avail_rule_t in_gap[] = {hours(SCHED_DAY_SUN, 2, 10, 2, 50)};
    assert_int_equal(sched_avail_rules_expand(&s, in_gap, 1, berlin, utc(2026, 3, 28, 0, 0), utc(2026, 3, 30, 0, 0)), 0);
    assert_int_equal(s.count, 0);

    /* Autumn night 22:00-06:00 from Saturday 2026-10-24: 9 real hours. */
    sched_avail_rule_t night[] = {hours(SCHED_DAY_SAT, 22, 0, 6, 0)};
    assert_int_equal(sched_avail_rules_expand(&s, night, 1, berlin, utc(2026, 10, 24, 0, 0), utc(2026, 10, 26, 0, 0)), 0);
    EXPECT_SET(&s, utc(2026, 10, 24, 20, 0), utc(2026, 10, 25, 5, 0));
    /* 15-minute starts for 30 minutes in the repeated hour: 02:00..02:45 CEST then 02:00..02:45 CET, all distinct. */
    sched_avail_set_clear(&s);
    sched_avail_set_add(&s, utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 2, 0));
    int64_t starts[16];
    sched_avail_query_t q = query(15 * MIN, 15);
    assert_int_equal(find(&s, berlin, &q, starts, 16), 8);
    for (int i = 0; i != 8; ++i) {
        assert_int_equal(starts[i], utc(2026, 10, 25, 0, 0) + i * 15 * MIN);
        assert_int_equal(sched_tz_utc_to_local(berlin, starts[i]) - utc(2026, 10, 25, 2, 0), (i % 4) * 15 * MIN);
    }
    sched_avail_set_dispose(&s);
    sched_tz_destroy(berlin);
}

static void test_crossing_midnight(void **state)
{
    sched_tz_t *berlin = load("Europe/Berlin");
    sched_avail_set_t s;
    sched_avail_set_init(&s);
    int64_t fri = utc(2026, 6, 12, 0, 0) - 2 * HOUR; /* Friday, local midnight */

    /* Friday 20:00 to Saturday 02:00; a window starting on Saturday still sees Friday's tail. */
    sched_avail_rule_t late[] = {hours(SCHED_DAY_FRI, 20, 0, 2, 0)};
    assert_int_equal(sched_avail_rules_expand(&s, late, 1, berlin, fri + DAY, fri + 2 * DAY), 0);
    EXPECT_SET(&s, fri + DAY, fri + DAY + 2 * HOUR);
    assert_int_equal(sched_avail_rules_expand(&s, late, 1, berlin, fri, fri + 2 * DAY), 0);
    EXPECT_SET(&s, fri + 20 * HOUR, fri + DAY + 2 * HOUR);

    /* A 90-minute appointment may run over midnight: 23:00-01:00 free gives 23:00 and 23:30. */
    sched_avail_rule_t short_night[] = {hours(SCHED_DAY_FRI, 23, 0, 1, 0)};
    assert_int_equal(sched_avail_rules_expand(&s, short_night, 1, berlin, fri, fri + 2 * DAY), 0);
    int64_t starts[8];
    sched_avail_query_t q = query(90 * MIN, 30);
    assert_int_equal(find(&s, berlin, &q, starts, 8), 2);
    assert_int_equal(starts[0], fri + 23 * HOUR);
    assert_int_equal(starts[1], fri + 23 * HOUR + 30 * MIN);

    /* Two rules meeting at midnight ("until 24:00" and "from 00:00") make one stretch. */
    sched_avail_rule_t evening_and_morning[] = {hours(SCHED_DAY_FRI, 18, 0, 24, 0), hours(SCHED_DAY_SAT, 0, 0, 6, 0)};
    assert_int_equal(sched_avail_rules_expand(&s, evening_and_morning, 2, berlin, fri, fri + 2 * DAY), 0);
    EXPECT_SET(&s, fri + 18 * HOUR, fri + DAY + 6 * HOUR);

    /* start == end is a 24-hour period; every day of it joins into one stretch. */
    sched_avail_rule_t round_the_clock[] = {hours(SCHED_DAY_ALL, 8, 0, 8, 0)};
    assert_int_equal(sched_avail_rules_expand(&s, round_the_clock, 1, berlin, fri, fri + 3 * DAY), 0);
    EXPECT_SET(&s, fri, fri + 3 * DAY);
    sched_avail_rule_t friday_only[] = {hours(SCHED_DAY_FRI, 8, 0, 8, 0)};
    assert_int_equal(sched_avail_rules_expand(&s, friday_only, 1, berlin, fri, fri + 3 * DAY), 0);
    EXPECT_SET(&s, fri + 8 * HOUR, fri + DAY + 8 * HOUR);
    sched_avail_set_dispose(&s);
    sched_tz_destroy(berlin);
}

static void test_degenerate_input(void **state)
{
    sched_tz_t *berlin = load("Europe/Berlin");
    sched_avail_set_t s;
    sched_avail_set_init(&s);
    sched_avail_set_add(&s, 1, 2); /* expansion replaces whatever was there, even on failure */
    int64_t from = utc(2026, 6, 8, 0, 0), to = from + 7 * DAY;
    sched_avail_rule_t ok = hours(WEEKDAYS, 9, 0, 17, 0);

    assert_int_equal(sched_avail_rules_expand(&s, NULL, 0, berlin, from, to), 0);
    assert_int_equal(s.count, 0);
    sched_avail_rule_t no_days = hours(0, 9, 0, 17, 0);
    assert_int_equal(sched_avail_rules_expand(&s, &no_days, 1, berlin, from, to), 0);
    assert_int_equal(s.count, 0);
    assert_int_equal(sched_avail_rules_expand(&s, &ok, 1, berlin, from, from), 0);
    assert_int_equal(s.count, 0);
    sched_avail_set_add(&s, 1, 2);
    assert_int_equal(sched_avail_rules_expand(&s, &ok, 1, berlin, to, from), -1);
    assert_int_equal(s.count, 0);

    sched_avail_rule_t bad[] = {
        hours(0x80, 9, 0, 17, 0),       /* a day bit beyond Sunday */
        {WEEKDAYS, false, -1, 3600},    /* negative start */
        {WEEKDAYS, false, 86400, 3600}, /* start at 24:00 */
        {WEEKDAYS, false, 3600, 86401}, /* end beyond 24:00 */
        {WEEKDAYS, false, 3600, -5},    /* negative end */
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        sched_avail_rule_t pair[] = {ok, bad[i]};
        assert_int_equal(sched_avail_rules_expand(&s, pair, 2, berlin, from, to), -1);
        assert_int_equal(s.count, 0);
    }
    /* An all-day rule ignores its times. */
    sched_avail_rule_t all_day = {SCHED_DAY_MON, true, -7, 999999};
    assert_int_equal(sched_avail_rules_expand(&s, &all_day, 1, berlin, from - 2 * HOUR, from + 5 * DAY), 0);
    EXPECT_SET(&s, from - 2 * HOUR, from + 22 * HOUR);

    /* The window is bounded: two years pass, longer fails; so do windows outside the supported range. */
    assert_int_equal(sched_avail_rules_expand(&s, &ok, 1, berlin, from, from + SCHED_AVAIL_MAX_DAYS * (int64_t)DAY), 0);
    assert_true(s.count >= 520 && s.count <= 525);
    assert_int_equal(sched_avail_rules_expand(&s, &ok, 1, berlin, from, from + SCHED_AVAIL_MAX_DAYS * (int64_t)DAY + 1), -1);
    assert_int_equal(sched_avail_rules_expand(&s, &ok, 1, berlin, INT64_MIN, from), -1);
    assert_int_equal(sched_avail_rules_expand(&s, &ok, 1, berlin, from, INT64_MAX), -1);
    /* Expansion at both ends of the range works without overflow. */
    assert_int_equal(sched_avail_rules_expand(&s, &ok, 1, berlin, SCHED_TIME_MIN, SCHED_TIME_MIN + 10 * DAY), 0);
    assert_true(s.count >= 6 && s.count <= 8);
    assert_int_equal(sched_avail_rules_expand(&s, &ok, 1, berlin, SCHED_TIME_MAX - 10 * DAY, SCHED_TIME_MAX), 0);
    assert_true(s.count >= 6 && s.count <= 8);

    /* Queries. */
    int64_t starts[4];
    size_t n = 77;
    sched_avail_set_clear(&s);
    sched_avail_set_add(&s, from, to);
    sched_avail_query_t q = query(30 * MIN, 15);
    sched_avail_query_t bad_q[] = {q, q, q, q, q, q, q, q, q, q};
    bad_q[0].duration = 0;
    bad_q[1].duration = -30;
    bad_q[2].duration = SCHED_AVAIL_MAX_DURATION + 1;
    bad_q[3].align_minutes = 0;
    bad_q[4].align_minutes = 1441;
    bad_q[5].buffer_before = -1;
    bad_q[6].buffer_after = SCHED_AVAIL_MAX_BUFFER + 1;
    bad_q[7].min_notice = -1;
    bad_q[8].max_horizon = -1;
    bad_q[9].now = INT64_MIN;
    for (size_t i = 0; i != sizeof(bad_q) / sizeof(bad_q[0]); ++i) {
        n = 77;
        assert_int_equal(sched_avail_find_starts(&s, berlin, &bad_q[i], starts, 4, &n), -1);
        assert_int_equal(n, 0);
    }
    /* Nothing fits: an empty set, or a free stretch shorter than the appointment. */
    sched_avail_set_t empty;
    sched_avail_set_init(&empty);
    assert_int_equal(find(&empty, berlin, &q, starts, 4), 0);
    sched_avail_set_clear(&s);
    sched_avail_set_add(&s, from, from + 29 * MIN);
    assert_int_equal(find(&s, berlin, &q, starts, 4), 0);
    /* A stretch as long as the whole supported range stops at the cap. */
    sched_avail_set_add(&s, INT64_MIN, INT64_MAX);
    q = query(SCHED_AVAIL_MAX_DURATION, 1);
    q.buffer_before = q.buffer_after = SCHED_AVAIL_MAX_BUFFER;
    assert_int_equal(find(&s, berlin, &q, starts, 4), 4);
    /* Berlin's LMT is +00:53:28, so the local minute grid sits 32 s after the UTC one. */
    assert_int_equal(starts[0], SCHED_TIME_MIN + SCHED_AVAIL_MAX_BUFFER + 32);
    assert_int_equal(starts[3] - starts[0], 3 * MIN);

    /* No actors is an error, not "always free". */
    sched_avail_set_add(&s, 0, 10);
    assert_int_equal(sched_avail_set_intersect_all(&s, NULL, 0), -1);
    assert_int_equal(s.count, 0);
    sched_avail_set_dispose(&s);
    sched_tz_destroy(berlin);
}

static void test_several_actors(void **state)
{
    sched_tz_t *berlin = load("Europe/Berlin");
    int64_t day = utc(2026, 6, 8, 0, 0) - 2 * HOUR;
    sched_avail_set_t practitioner, room, device, common;
    sched_avail_set_init(&practitioner);
    sched_avail_set_init(&room);
    sched_avail_set_init(&device);
    sched_avail_set_init(&common);
    sched_avail_set_add(&practitioner, day + 9 * HOUR, day + 12 * HOUR);
    sched_avail_set_add(&room, day + 10 * HOUR, day + 13 * HOUR);
    sched_avail_set_add(&device, day + 9 * HOUR, day + 11 * HOUR + 30 * MIN);
    /* The room is taken 10:30-10:45 (with no extension). */
    sched_interval_t room_busy[] = {{day + 10 * HOUR + 30 * MIN, day + 10 * HOUR + 45 * MIN}};
    sched_avail_set_subtract_busy(&room, room_busy, 1, 0, 0);

    const sched_avail_set_t *actors[] = {&practitioner, &room, &device};
    assert_int_equal(sched_avail_set_intersect_all(&common, actors, 3), 0);
    EXPECT_SET(&common, day + 10 * HOUR, day + 10 * HOUR + 30 * MIN, day + 10 * HOUR + 45 * MIN, day + 11 * HOUR + 30 * MIN);

    /* 20 minutes plus 10 after, on a 15-minute grid: 10:00 (ends with buffer at 10:30), then 10:45 and 11:00. */
    sched_avail_query_t q = query(20 * MIN, 15);
    q.buffer_after = 10 * MIN;
    int64_t starts[8];
    assert_int_equal(find(&common, berlin, &q, starts, 8), 3);
    assert_int_equal(starts[0], day + 10 * HOUR);
    assert_int_equal(starts[1], day + 10 * HOUR + 45 * MIN);
    assert_int_equal(starts[2], day + 11 * HOUR);
    /* A proposed time is bookable only if every actor holds it. */
    assert_true(sched_avail_set_contains(&common, starts[1], starts[1] + 30 * MIN));
    assert_false(sched_avail_set_contains(&common, day + 10 * HOUR + 15 * MIN, day + 10 * HOUR + 45 * MIN));

    /* The output may be one of the inputs; one actor alone is its own free set. */
    assert_int_equal(sched_avail_set_intersect_all(&practitioner, actors, 3), 0);
    assert_int_equal(sched_avail_set_total(&practitioner), sched_avail_set_total(&common));
    const sched_avail_set_t *one[] = {&device};
    assert_int_equal(sched_avail_set_intersect_all(&common, one, 1), 0);
    EXPECT_SET(&common, day + 9 * HOUR, day + 11 * HOUR + 30 * MIN);
    sched_avail_set_dispose(&practitioner);
    sched_avail_set_dispose(&room);
    sched_avail_set_dispose(&device);
    sched_avail_set_dispose(&common);
    sched_tz_destroy(berlin);
}

/* The demo clinic (demo/README.md): Dr Eva de Jong works Mon-Thu 08:30-17:00 at a clinic open Mon-Fri 08:00-18:00 and
 * Sat 09:00-13:00, Amsterdam time; a first consultation is 40 minutes on the default 15-minute grid. */
static void test_demo_clinic_week(void **state)
{
    sched_tz_t *ams = load("Europe/Amsterdam");
    sched_avail_rule_t eva[] = {hours(SCHED_DAY_MON | SCHED_DAY_TUE | SCHED_DAY_WED | SCHED_DAY_THU, 8, 30, 17, 0)};
    sched_avail_rule_t clinic[] = {hours(WEEKDAYS, 8, 0, 18, 0), hours(SCHED_DAY_SAT, 9, 0, 13, 0)};
    sched_avail_set_t p, c;
    sched_avail_set_init(&p);
    sched_avail_set_init(&c);
    /* Monday 2026-11-23 (CET, +1), a full week. */
    int64_t mon = utc(2026, 11, 23, 0, 0) - HOUR, sun_end = mon + 7 * DAY;
    assert_int_equal(sched_avail_rules_expand(&p, eva, 1, ams, mon, sun_end), 0);
    assert_int_equal(sched_avail_rules_expand(&c, clinic, 2, ams, mon, sun_end), 0);
    const sched_avail_set_t *actors[] = {&p, &c};
    assert_int_equal(sched_avail_set_intersect_all(&p, actors, 2), 0);
    assert_int_equal(p.count, 4);
    assert_int_equal(sched_avail_set_total(&p), 4 * (8 * HOUR + 30 * MIN));

    int64_t starts[256];
    sched_avail_query_t q = query(40 * MIN, 15);
    size_t n = find(&p, ams, &q, starts, 256);
    /* 08:30, 08:45, ... 16:15 (ends 16:55; 16:30 would end 17:10): 32 a day, four days. */
    assert_int_equal(n, 4 * 32);
    for (size_t i = 0; i != n; ++i) {
        int64_t l = sched_tz_utc_to_local(ams, starts[i]);
        int64_t wall = ((l % DAY) + DAY) % DAY;
        int wd = sched_civil_weekday(sched_civil_day_of(l));
        assert_true(wd <= 3); /* Monday .. Thursday, never Friday or Saturday */
        assert_true(wall >= 8 * HOUR + 30 * MIN);
        assert_true(wall + 40 * MIN <= 17 * HOUR);
        assert_int_equal(wall % (15 * MIN), 0);
        if (i > 0)
            assert_true(starts[i] > starts[i - 1]);
    }
    assert_int_equal(starts[0], utc(2026, 11, 23, 7, 30));
    assert_int_equal(starts[31], utc(2026, 11, 23, 15, 15));
    assert_int_equal(starts[n - 1], utc(2026, 11, 26, 15, 15));

    /* The week across the autumn change (Sunday 2026-10-25): the local hours are the same on both sides. */
    int64_t before = utc(2026, 10, 19, 0, 0) - 2 * HOUR, after = utc(2026, 10, 26, 0, 0) - HOUR;
    assert_int_equal(sched_avail_rules_expand(&p, eva, 1, ams, before, after + 7 * DAY), 0);
    assert_int_equal(sched_avail_rules_expand(&c, clinic, 2, ams, before, after + 7 * DAY), 0);
    assert_int_equal(sched_avail_set_intersect_all(&p, actors, 2), 0);
    n = find(&p, ams, &q, starts, 256);
    assert_int_equal(n, 8 * 32);
    assert_int_equal(starts[0], utc(2026, 10, 19, 6, 30));  /* 08:30 CEST */
    assert_int_equal(starts[128], utc(2026, 10, 26, 7, 30)); /* 08:30 CET */
    for (size_t i = 0; i != 128; ++i)
        assert_int_equal(starts[128 + i] - starts[i], 7 * DAY + HOUR);
    sched_avail_set_dispose(&p);
    sched_avail_set_dispose(&c);
    sched_tz_destroy(ams);
}

/* Dr Mila Vos (Mon, Tue, Thu, Fri 08:30-17:00 at a clinic open Mon-Fri 08:00-18:00) is on leave from 2026-12-14 00:00
 * to 2027-01-01 00:00 Amsterdam time: nothing in between, and the leave's end is exclusive. */
static void test_demo_leave(void **state)
{
    sched_tz_t *ams = load("Europe/Amsterdam");
    sched_avail_rule_t mila[] = {hours(SCHED_DAY_MON | SCHED_DAY_TUE | SCHED_DAY_THU | SCHED_DAY_FRI, 8, 30, 17, 0)};
    sched_avail_rule_t clinic[] = {hours(WEEKDAYS, 8, 0, 18, 0)};
    sched_avail_set_t p, c;
    sched_avail_set_init(&p);
    sched_avail_set_init(&c);
    int64_t from = utc(2026, 12, 7, 0, 0) - HOUR, to = utc(2027, 1, 9, 0, 0) - HOUR;
    assert_int_equal(sched_avail_rules_expand(&p, mila, 1, ams, from, to), 0);
    assert_int_equal(sched_avail_rules_expand(&c, clinic, 1, ams, from, to), 0);
    sched_avail_set_intersect(&p, &p, &c);
    sched_interval_t leave[] = {{utc(2026, 12, 14, 0, 0) - HOUR, utc(2027, 1, 1, 0, 0) - HOUR}};
    assert_int_equal(sched_avail_set_subtract_busy(&p, leave, 1, 0, 0), 0);

    int64_t starts[512];
    sched_avail_query_t q = query(20 * MIN, 15);
    size_t n = find(&p, ams, &q, starts, 512);
    size_t last_before = SIZE_MAX;
    for (size_t i = 0; i != n; ++i) {
        assert_false(starts[i] + 20 * MIN > leave[0].start && starts[i] < leave[0].end);
        if (starts[i] < leave[0].start)
            last_before = i;
    }
    assert_true(last_before != SIZE_MAX && last_before + 1 < n);
    assert_int_equal(starts[last_before], utc(2026, 12, 11, 15, 30));    /* Friday 16:30 local, ends 16:50 */
    assert_int_equal(starts[last_before + 1], utc(2027, 1, 1, 7, 30));   /* Friday 08:30 local, the day the leave ends */
    /* Week 1 (Mon 7 .. Fri 11): 4 days; week 5 (Fri 1 Jan), week 6 (Mon 4 .. Fri 8): 1 + 4 days; 08:30 .. 16:30 is 33
     * starts a day. */
    assert_int_equal(n, 9 * 33);

    /* Leave that spans the autumn change, from Saturday 2026-10-24 00:00 to Tuesday 2026-10-27 00:00 local. */
    sched_avail_rule_t office[] = {hours(WEEKDAYS, 9, 0, 17, 0)};
    assert_int_equal(sched_avail_rules_expand(&p, office, 1, ams, utc(2026, 10, 22, 0, 0), utc(2026, 10, 29, 0, 0)), 0);
    sched_interval_t autumn[] = {{utc(2026, 10, 23, 22, 0), utc(2026, 10, 26, 23, 0)}};
    assert_int_equal(sched_avail_set_subtract_busy(&p, autumn, 1, 0, 0), 0);
    EXPECT_SET(&p, utc(2026, 10, 22, 7, 0), utc(2026, 10, 22, 15, 0), utc(2026, 10, 23, 7, 0), utc(2026, 10, 23, 15, 0),
               utc(2026, 10, 27, 8, 0), utc(2026, 10, 27, 16, 0), utc(2026, 10, 28, 8, 0), utc(2026, 10, 28, 16, 0));
    sched_avail_set_dispose(&p);
    sched_avail_set_dispose(&c);
    sched_tz_destroy(ams);
}

/* On both DST change days of New York and Berlin (and the days around them) a 09:00-17:00 day offers exactly the local
 * starts 09:00, 09:30, ... 16:30. */
static void test_dst_change_day_starts(void **state)
{
    static const struct {
        const char *zone;
        int64_t y;
        unsigned m, d;
    } days[] = {
        {"America/New_York", 2026, 3, 7},  {"America/New_York", 2026, 3, 8},  {"America/New_York", 2026, 3, 9},
        {"America/New_York", 2026, 10, 31}, {"America/New_York", 2026, 11, 1}, {"America/New_York", 2026, 11, 2},
        {"Europe/Berlin", 2026, 3, 28},     {"Europe/Berlin", 2026, 3, 29},     {"Europe/Berlin", 2026, 3, 30},
        {"Europe/Berlin", 2026, 10, 24},    {"Europe/Berlin", 2026, 10, 25},    {"Europe/Berlin", 2026, 10, 26},
    };
    sched_avail_rule_t office[] = {hours(SCHED_DAY_ALL, 9, 0, 17, 0)};
    sched_avail_set_t s;
    sched_avail_set_init(&s);
    for (size_t k = 0; k != sizeof(days) / sizeof(days[0]); ++k) {
        sched_tz_t *tz = load(days[k].zone);
        int64_t local_midnight = utc(days[k].y, days[k].m, days[k].d, 0, 0);
        /* A window of the whole UTC day plus a margin either side, clipped to the local date below. */
        assert_int_equal(sched_avail_rules_expand(&s, office, 1, tz, local_midnight - DAY, local_midnight + 2 * DAY), 0);
        int64_t starts[128];
        sched_avail_query_t q = query(30 * MIN, 30);
        size_t n = find(&s, tz, &q, starts, 128), on_day = 0;
        for (size_t i = 0; i != n; ++i) {
            int64_t l = sched_tz_utc_to_local(tz, starts[i]);
            if (l < local_midnight || l >= local_midnight + DAY)
                continue;
            if (l != local_midnight + 9 * HOUR + (int64_t)on_day * 30 * MIN)
                fail_msg("%s %lld-%02u-%02u: start %zu is local %lld s after midnight", days[k].zone, (long long)days[k].y,
                         days[k].m, days[k].d, on_day, (long long)(l - local_midnight));
            /* Each appointment lasts 30 real minutes and ends by 17:00 local. */
            assert_true(sched_tz_utc_to_local(tz, starts[i] + 30 * MIN) <= local_midnight + 17 * HOUR);
            ++on_day;
        }
        if (on_day != 16)
            fail_msg("%s %lld-%02u-%02u: %zu starts, expected 16", days[k].zone, (long long)days[k].y, days[k].m, days[k].d,
                     on_day);
        sched_tz_destroy(tz);
    }
    sched_avail_set_dispose(&s);
}

/* Long appointments over midnight on the nights the clocks change: a 22:00-06:00 shift is 9 real hours in autumn, 7 in
 * spring. A 45-minute grid on the spring day skips the wall times that do not exist. */
static void test_midnight_across_dst(void **state)
{
    sched_tz_t *berlin = load("Europe/Berlin");
    sched_avail_set_t s;
    sched_avail_set_init(&s);
    sched_avail_rule_t night[] = {hours(SCHED_DAY_SAT, 22, 0, 6, 0)};
    int64_t starts[16];

    /* Autumn (Saturday 2026-10-24): 20:00Z-05:00Z. Eight hours on the hour: 22:00 and 23:00 CEST. */
    assert_int_equal(sched_avail_rules_expand(&s, night, 1, berlin, utc(2026, 10, 24, 0, 0), utc(2026, 10, 26, 0, 0)), 0);
    sched_avail_query_t q = query(8 * HOUR, 60);
    assert_int_equal(find(&s, berlin, &q, starts, 16), 2);
    assert_int_equal(starts[0], utc(2026, 10, 24, 20, 0));
    assert_int_equal(starts[1], utc(2026, 10, 24, 21, 0));
    /* Spring (Saturday 2026-03-28): 21:00Z-04:00Z; eight hours do not fit, six fit twice (22:00 and 23:00 CET). */
    assert_int_equal(sched_avail_rules_expand(&s, night, 1, berlin, utc(2026, 3, 28, 0, 0), utc(2026, 3, 30, 0, 0)), 0);
    EXPECT_SET(&s, utc(2026, 3, 28, 21, 0), utc(2026, 3, 29, 4, 0));
    assert_int_equal(find(&s, berlin, &q, starts, 16), 0);
    q = query(6 * HOUR, 60);
    assert_int_equal(find(&s, berlin, &q, starts, 16), 2);
    assert_int_equal(starts[0], utc(2026, 3, 28, 21, 0));
    assert_int_equal(starts[1], utc(2026, 3, 28, 22, 0));
    /* An appointment crossing midnight with buffers on both sides: 5 h plus 30 min before and after. */
    q = query(5 * HOUR, 60);
    q.buffer_before = q.buffer_after = 30 * MIN;
    assert_int_equal(find(&s, berlin, &q, starts, 16), 1);
    assert_int_equal(starts[0], utc(2026, 3, 28, 22, 0)); /* 23:00 CET; buffer from 22:30 CET, until 05:30 CEST */

    /* 45-minute grid from local midnight on 2026-03-29: 00:00, 00:45, 01:30, (02:15 does not exist), 03:00, 03:45, 04:30. */
    sched_avail_set_clear(&s);
    sched_avail_set_add(&s, utc(2026, 3, 28, 23, 0), utc(2026, 3, 29, 3, 0));
    q = query(15 * MIN, 45);
    assert_int_equal(find(&s, berlin, &q, starts, 16), 6);
    int64_t expect[] = {utc(2026, 3, 28, 23, 0), utc(2026, 3, 28, 23, 45), utc(2026, 3, 29, 0, 30),
                        utc(2026, 3, 29, 1, 0),  utc(2026, 3, 29, 1, 45),  utc(2026, 3, 29, 2, 30)};
    assert_memory_equal(starts, expect, sizeof(expect));
    sched_avail_set_dispose(&s);
    sched_tz_destroy(berlin);
}

/* Buffers of neighbouring appointments add up; an appointment with its buffers that exactly fills a gap fits. */
static void test_buffers_between_appointments(void **state)
{
    sched_tz_t *utc_zone = load("UTC");
    sched_avail_set_t s;
    sched_avail_set_init(&s);
    int64_t day = utc(2026, 6, 8, 0, 0);
    sched_avail_set_add(&s, day + 9 * HOUR, day + 12 * HOUR);
    /* Two bookings 10:00-10:30 and 11:00-11:30, stored without buffers, whose service has 10 before and 5 after. */
    sched_interval_t busy[] = {{day + 10 * HOUR, day + 10 * HOUR + 30 * MIN}, {day + 11 * HOUR, day + 11 * HOUR + 30 * MIN}};
    assert_int_equal(sched_avail_set_subtract_busy(&s, busy, 2, 10 * MIN, 5 * MIN), 0);
    EXPECT_SET(&s, day + 9 * HOUR, day + 9 * HOUR + 50 * MIN, day + 10 * HOUR + 35 * MIN, day + 10 * HOUR + 50 * MIN,
               day + 11 * HOUR + 35 * MIN, day + 12 * HOUR);
    int64_t starts[32];
    sched_avail_query_t q = query(20 * MIN, 5);
    size_t n = find(&s, utc_zone, &q, starts, 32);
    /* 09:00..09:30 (7), nothing in the 15-minute gap, 11:35 and 11:40. */
    assert_int_equal(n, 9);
    assert_int_equal(starts[6], day + 9 * HOUR + 30 * MIN);
    assert_int_equal(starts[7], day + 11 * HOUR + 35 * MIN);
    assert_int_equal(starts[8], day + 11 * HOUR + 40 * MIN);
    /* The new appointment's own buffers: 15 free minutes hold 5 + 5 + 5 exactly, once. */
    q = query(5 * MIN, 5);
    q.buffer_before = 5 * MIN;
    q.buffer_after = 5 * MIN;
    n = find(&s, utc_zone, &q, starts, 32);
    assert_true(n >= 1);
    size_t in_gap = 0;
    for (size_t i = 0; i != n; ++i) {
        if (starts[i] > day + 10 * HOUR && starts[i] < day + 11 * HOUR) {
            assert_int_equal(starts[i], day + 10 * HOUR + 40 * MIN);
            ++in_gap;
        }
    }
    assert_int_equal(in_gap, 1);
    /* One more minute of buffer and the gap is lost. */
    q.buffer_after = 6 * MIN;
    n = find(&s, utc_zone, &q, starts, 32);
    for (size_t i = 0; i != n; ++i)
        assert_false(starts[i] > day + 10 * HOUR && starts[i] < day + 11 * HOUR);
    sched_avail_set_dispose(&s);
    sched_tz_destroy(utc_zone);
}

/* Rules and busy lists that leave nothing, or change nothing. */
static void test_empty_results(void **state)
{
    sched_tz_t *berlin = load("Europe/Berlin");
    sched_avail_set_t s;
    sched_avail_set_init(&s);
    int64_t mon = utc(2026, 6, 8, 0, 0) - 2 * HOUR;
    /* A Sunday-only rule over a Monday-Friday window. */
    sched_avail_rule_t sunday[] = {hours(SCHED_DAY_SUN, 9, 0, 17, 0)};
    assert_int_equal(sched_avail_rules_expand(&s, sunday, 1, berlin, mon, mon + 5 * DAY), 0);
    assert_int_equal(s.count, 0);
    /* A window that ends before the day's hours begin, and one that starts after they end. */
    sched_avail_rule_t office[] = {hours(WEEKDAYS, 9, 0, 17, 0)};
    assert_int_equal(sched_avail_rules_expand(&s, office, 1, berlin, mon, mon + 9 * HOUR), 0);
    assert_int_equal(s.count, 0);
    assert_int_equal(sched_avail_rules_expand(&s, office, 1, berlin, mon + 17 * HOUR, mon + DAY), 0);
    assert_int_equal(s.count, 0);
    /* A window inside the hours is clipped to itself. */
    assert_int_equal(sched_avail_rules_expand(&s, office, 1, berlin, mon + 10 * HOUR, mon + 11 * HOUR), 0);
    EXPECT_SET(&s, mon + 10 * HOUR, mon + 11 * HOUR);
    /* Busy intervals: empty ones change nothing, an open-ended one covering everything leaves nothing. */
    assert_int_equal(sched_avail_rules_expand(&s, office, 1, berlin, mon, mon + 5 * DAY), 0);
    sched_interval_t nothing[] = {{mon + 10 * HOUR, mon + 10 * HOUR}};
    assert_int_equal(sched_avail_set_subtract_busy(&s, nothing, 1, 0, 0), 0);
    assert_int_equal(s.count, 5);
    sched_interval_t everything[] = {{INT64_MIN, INT64_MAX}};
    assert_int_equal(sched_avail_set_subtract_busy(&s, everything, 1, 0, 0), 0);
    assert_int_equal(s.count, 0);
    /* Intersection with an actor that has no hours at all is empty. */
    sched_avail_set_t none;
    sched_avail_set_init(&none);
    assert_int_equal(sched_avail_rules_expand(&s, office, 1, berlin, mon, mon + 5 * DAY), 0);
    const sched_avail_set_t *actors[] = {&s, &none};
    assert_int_equal(sched_avail_set_intersect_all(&s, actors, 2), 0);
    assert_int_equal(s.count, 0);
    /* Rules that touch but do not overlap across actors give nothing either. */
    sched_avail_rule_t morning[] = {hours(WEEKDAYS, 8, 0, 12, 0)}, afternoon[] = {hours(WEEKDAYS, 12, 0, 17, 0)};
    assert_int_equal(sched_avail_rules_expand(&s, morning, 1, berlin, mon, mon + 5 * DAY), 0);
    assert_int_equal(sched_avail_rules_expand(&none, afternoon, 1, berlin, mon, mon + 5 * DAY), 0);
    sched_avail_set_intersect(&s, &s, &none);
    assert_int_equal(s.count, 0);
    sched_avail_set_dispose(&none);
    sched_avail_set_dispose(&s);
    sched_tz_destroy(berlin);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_add_merges),
        cmocka_unit_test(test_set_algebra),
        cmocka_unit_test(test_rule_intersection),
        cmocka_unit_test(test_leave_and_busy),
        cmocka_unit_test(test_buffers),
        cmocka_unit_test(test_alignment),
        cmocka_unit_test(test_notice_and_horizon),
        cmocka_unit_test(test_dst_new_york),
        cmocka_unit_test(test_dst_berlin),
        cmocka_unit_test(test_crossing_midnight),
        cmocka_unit_test(test_degenerate_input),
        cmocka_unit_test(test_several_actors),
        cmocka_unit_test(test_demo_clinic_week),
        cmocka_unit_test(test_demo_leave),
        cmocka_unit_test(test_dst_change_day_starts),
        cmocka_unit_test(test_midnight_across_dst),
        cmocka_unit_test(test_buffers_between_appointments),
        cmocka_unit_test(test_empty_results),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sched_tz_cache_clear();
    return rc;
}
