/* util/str.c formatting (written in place, formatted again only when it does not fit) and util/uuid.c (random bytes
 * drawn in blocks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "util/str.h"
#include "util/uuid.h"

static void test_buf_printf_grows_across_its_capacity(void **state)
{
    (void)state;
    util_buf_t buf;
    util_buf_init(&buf); /* 64 bytes */
    static char expected[32768];
    size_t len = 0;
    /* every length from 0 to 199 characters, so that results end just before, at and after each capacity */
    for (int n = 0; n != 200; ++n) {
        util_buf_printf(&buf, "%0*d|", n, n);
        len += (size_t)snprintf(expected + len, sizeof(expected) - len, "%0*d|", n, n);
        assert_int_equal(buf.len, len);
        assert_string_equal(buf.base, expected);
    }
    util_buf_printf(&buf, "%s", "");
    assert_int_equal(buf.len, len);
    util_buf_dispose(&buf);
}

static void test_asprintf_short_and_long(void **state)
{
    (void)state;
    char *s = util_asprintf("%s-%d", "short", 7);
    assert_string_equal(s, "short-7");
    free(s);
    for (int n = 250; n != 262; ++n) { /* around the stack buffer's size */
        char *long_text = util_asprintf("%0*d", n, 5);
        assert_int_equal(strlen(long_text), (size_t)n);
        assert_int_equal(long_text[n - 1], '5');
        assert_int_equal(long_text[0], '0');
        free(long_text);
    }
}

static bool is_uuid_v4(const char *u)
{
    if (strlen(u) != UTIL_UUID_LEN)
        return false;
    for (int i = 0; i != UTIL_UUID_LEN; ++i) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash != (u[i] == '-') || (!dash && strchr("0123456789abcdef", u[i]) == NULL))
            return false;
    }
    return u[14] == '4' && strchr("89ab", u[19]) != NULL;
}

static int compare(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_uuids_are_v4_and_distinct(void **state)
{
    (void)state;
    enum { N = 5000 }; /* many blocks of random bytes */
    char(*ids)[UTIL_UUID_LEN + 1] = malloc(N * sizeof(*ids));
    for (int i = 0; i != N; ++i) {
        util_uuid_v4(ids[i]);
        if (!is_uuid_v4(ids[i]))
            fail_msg("not a version 4 UUID: %s", ids[i]);
    }
    qsort(ids, N, sizeof(*ids), compare);
    for (int i = 1; i != N; ++i)
        if (strcmp(ids[i - 1], ids[i]) == 0)
            fail_msg("repeated UUID %s", ids[i]);
    /* the bytes are random: each hex digit of the first group turns up */
    int seen[16] = {0};
    for (int i = 0; i != N; ++i)
        for (int k = 0; k != 8; ++k)
            seen[strchr("0123456789abcdef", ids[i][k]) - "0123456789abcdef"]++;
    for (int d = 0; d != 16; ++d)
        assert_true(seen[d] > N * 8 / 16 / 2);
    free(ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_printf_grows_across_its_capacity),
        cmocka_unit_test(test_asprintf_short_and_long),
        cmocka_unit_test(test_uuids_are_v4_and_distinct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
