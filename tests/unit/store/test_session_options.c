/* store/pool.c: the "options" every pooled connection sends (the server's session settings, then the operator's). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include "store/store.h"

static void expect_options(const char *dsn, const char *expected)
{
    char *options = store_session_options(dsn);
    assert_string_equal(options, expected);
    free(options);
}

static void test_without_options_of_the_operator(void **state)
{
    (void)state;
    unsetenv("PGOPTIONS");
    expect_options("postgresql://postgres@127.0.0.1:5432/fhirsched", "-c jit=off");
    expect_options("host=127.0.0.1 port=5432 dbname=fhirsched", "-c jit=off");
    expect_options("dbname=fhirsched options=''", "-c jit=off");
}

static void test_the_operators_options_come_last_and_so_win(void **state)
{
    (void)state;
    unsetenv("PGOPTIONS");
    expect_options("postgresql://postgres@127.0.0.1/fhirsched?options=-c%20jit%3Don", "-c jit=off -c jit=on");
    expect_options("dbname=fhirsched options='-c search_path=clinic -c statement_timeout=5s'",
                   "-c jit=off -c search_path=clinic -c statement_timeout=5s");
}

static void test_pgoptions_when_the_dsn_has_none(void **state)
{
    (void)state;
    setenv("PGOPTIONS", "-c work_mem=8MB", 1);
    expect_options("dbname=fhirsched", "-c jit=off -c work_mem=8MB");
    expect_options("dbname=fhirsched options='-c work_mem=16MB'", "-c jit=off -c work_mem=16MB");
    unsetenv("PGOPTIONS");
}

static void test_a_bad_dsn_still_gets_ours(void **state)
{
    (void)state;
    unsetenv("PGOPTIONS");
    /* connecting reports what is wrong with it; the options are not the place */
    expect_options("host=127.0.0.1 nonsense", "-c jit=off");
    expect_options("postgresql://[::1", "-c jit=off");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_without_options_of_the_operator),
        cmocka_unit_test(test_the_operators_options_come_last_and_so_win),
        cmocka_unit_test(test_pgoptions_when_the_dsn_has_none),
        cmocka_unit_test(test_a_bad_dsn_still_gets_ours),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
