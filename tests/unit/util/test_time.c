#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <time.h>
#include "util/time.h"

static time_t parsed(const char *text)
{
    time_t t = -12345;
    assert_int_equal(util_time_parse_instant(text, &t), 0);
    return t;
}

static void test_instants(void **state)
{
    (void)state;
    assert_int_equal(parsed("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(parsed("2027-01-04T08:30:00Z"), 1799051400);
    assert_int_equal(parsed("2027-01-04T09:30:00+01:00"), 1799051400);
    assert_int_equal(parsed("2027-01-04T03:30:00-05:00"), 1799051400);
    assert_int_equal(parsed("2027-01-04T08:30:00.123456Z"), 1799051400);
    assert_int_equal(parsed("2024-02-29T00:00:00Z"), 1709164800); /* leap day */
    assert_int_equal(parsed("2000-03-01T00:00:00Z"), 951868800);   /* after the 400-year leap day */
    assert_int_equal(parsed("1969-12-31T23:59:59Z"), -1);
    /* agrees with timegm over a range of dates */
    for (int64_t t = -86400LL * 365 * 80; t < 86400LL * 365 * 200; t += 86400LL * 37 + 3599) {
        time_t tt = (time_t)t;
        struct tm tm;
        gmtime_r(&tt, &tm);
        char buf[40];
        strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
        assert_int_equal(parsed(buf), t);
    }
}

static void test_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "2027", "2027-01-04", "2027-01-04T08:30Z", "2027-01-04T08:30:00", "2027-1-04T08:30:00Z", "2027-01-04 08:30:00Z",
        "2027-13-04T08:30:00Z", "2027-00-04T08:30:00Z", "2027-02-30T08:30:00Z", "2023-02-29T00:00:00Z", "2027-01-04T24:00:00Z",
        "2027-01-04T08:60:00Z", "2027-01-04T08:30:00.Z", "2027-01-04T08:30:00+01", "2027-01-04T08:30:00+01:0",
        "2027-01-04T08:30:00+0100", "2027-01-04T08:30:00Zx", "2027-01-04T08:30:00+15:00", "x027-01-04T08:30:00Z",
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        time_t t;
        if (util_time_parse_instant(bad[i], &t) != -1)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    time_t t;
    assert_int_equal(util_time_parse_instant(NULL, &t), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_instants),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
