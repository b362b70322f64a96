/* The per-client token buckets (http_ratelimit_*): bursts, refill, Retry-After, eviction, the cap, threads. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "http/ratelimit.h"

static int teardown(void **state)
{
    http_ratelimit_dispose();
    return 0;
}

/* Takes `n` tokens for `client` at `now`; returns how many were allowed. */
static unsigned take_n(const char *client, uint64_t now, unsigned n)
{
    unsigned allowed = 0, retry;
    for (unsigned i = 0; i != n; ++i)
        allowed += http_ratelimit_take(client, now, &retry);
    return allowed;
}

static void test_burst_then_refusal(void **state)
{
    http_ratelimit_init(10, 5);
    for (int i = 0; i != 5; ++i)
        assert_true(http_ratelimit_take("client-a", 1000, NULL));
    unsigned retry = 0;
    assert_false(http_ratelimit_take("client-a", 1000, &retry));
    assert_int_equal(retry, 1);
    /* Refusals take nothing: still exactly one token after 100 ms. */
    assert_int_equal(take_n("client-a", 1000, 50), 0);
    assert_int_equal(take_n("client-a", 1100, 3), 1);
}

static void test_refill_over_time(void **state)
{
    http_ratelimit_init(10, 5); /* one token every 100 ms */
    assert_int_equal(take_n("c", 1000, 10), 5);
    assert_false(http_ratelimit_take("c", 1099, NULL));
    assert_true(http_ratelimit_take("c", 1100, NULL));
    assert_false(http_ratelimit_take("c", 1100, NULL));
    /* 250 ms give 2.5 tokens: two now, the half is kept. */
    assert_int_equal(take_n("c", 1350, 5), 2);
    assert_int_equal(take_n("c", 1399, 5), 0);
    assert_int_equal(take_n("c", 1400, 5), 1);
    /* Never more than the burst, however long the client was away. */
    assert_int_equal(take_n("c", 1000000, 100), 5);
    /* A clock reading older than the bucket's (another thread was quicker) adds nothing and does not go back. */
    assert_int_equal(take_n("c", 999000, 5), 0);
    assert_int_equal(take_n("c", 1000100, 5), 1);
    /* A rate that is not a divisor of 1000 ms: 3 a second is one token per 333.3 ms, exactly. */
    http_ratelimit_init(3, 2);
    assert_int_equal(take_n("t", 0, 2), 2);
    assert_false(http_ratelimit_take("t", 333, NULL)); /* 0.999 */
    assert_true(http_ratelimit_take("t", 334, NULL));  /* 1.002, then 0.002 left */
    assert_false(http_ratelimit_take("t", 666, NULL)); /* 0.998 */
    assert_true(http_ratelimit_take("t", 667, NULL));  /* 1.001 */
    /* The bucket never holds more than the burst, fractions included. */
    http_ratelimit_init(3, 1);
    assert_true(http_ratelimit_take("t", 0, NULL));
    assert_true(http_ratelimit_take("t", 334, NULL)); /* 1.002 is capped at 1 */
    assert_false(http_ratelimit_take("t", 667, NULL)); /* 0.999 */
    assert_true(http_ratelimit_take("t", 668, NULL));
}

static void test_retry_after_rounding(void **state)
{
    unsigned retry;
    http_ratelimit_init(1, 1);
    assert_true(http_ratelimit_take("r", 5000, &retry));
    retry = 0;
    assert_false(http_ratelimit_take("r", 5000, &retry));
    assert_int_equal(retry, 1); /* 1000 ms */
    retry = 0;
    assert_false(http_ratelimit_take("r", 5999, &retry));
    assert_int_equal(retry, 1); /* 1 ms, rounded up to a whole second, never 0 */
    assert_true(http_ratelimit_take("r", 6000, &retry));
    /* Fast rates still say at least one second. */
    http_ratelimit_init(1000, 1);
    assert_true(http_ratelimit_take("f", 10, NULL));
    retry = 0;
    assert_false(http_ratelimit_take("f", 10, &retry));
    assert_int_equal(retry, 1);
    assert_true(http_ratelimit_take("f", 11, NULL));
}

static void test_separate_clients(void **state)
{
    http_ratelimit_init(1, 3);
    assert_int_equal(take_n("alice", 0, 10), 3);
    assert_int_equal(take_n("bob", 0, 10), 3);
    assert_int_equal(take_n("alice-2", 0, 10), 3);
    assert_int_equal(take_n("", 0, 10), 3);
    assert_int_equal(take_n(NULL, 0, 10), 0); /* NULL is the empty key */
    assert_int_equal(http_ratelimit__clients(), 4);
    /* Keys are cut to HTTP_RATELIMIT_MAX_KEY bytes: two keys that differ only beyond that are one client. */
    char a[HTTP_RATELIMIT_MAX_KEY + 20], b[HTTP_RATELIMIT_MAX_KEY + 20];
    memset(a, 'k', sizeof(a) - 1);
    a[sizeof(a) - 1] = '\0';
    memcpy(b, a, sizeof(b));
    b[HTTP_RATELIMIT_MAX_KEY + 5] = 'x';
    assert_int_equal(take_n(a, 0, 2), 2);
    assert_int_equal(take_n(b, 0, 2), 1);
    b[HTTP_RATELIMIT_MAX_KEY - 1] = 'x';
    assert_int_equal(take_n(b, 0, 5), 3);
}

static void test_unlimited(void **state)
{
    http_ratelimit_init(0, 1);
    assert_int_equal(take_n("u", 0, 100000), 100000);
    assert_int_equal(http_ratelimit__clients(), 0);
    /* Before any init (and after dispose) nothing is limited either. */
    http_ratelimit_dispose();
    assert_int_equal(take_n("u", 0, 1000), 1000);
}

static void test_eviction_of_full_idle_buckets(void **state)
{
    char key[32];
    http_ratelimit_init(10, 2); /* a used bucket is full again 100 ms later */
    for (int i = 0; i != 1000; ++i) {
        snprintf(key, sizeof(key), "old-%d", i);
        assert_true(http_ratelimit_take(key, 0, NULL));
    }
    assert_int_equal(http_ratelimit__clients(), 1000);
    /* 50 ms later nobody is full yet: sweeps on the way drop nothing. */
    for (int i = 0; i != 32768; ++i) {
        snprintf(key, sizeof(key), "mid-%d", i);
        assert_true(http_ratelimit_take(key, 50, NULL));
    }
    assert_int_equal(http_ratelimit__clients(), 1000 + 32768);
    /* Ten seconds on, every bucket so far is full again: the sweeps drop them all, and keep the new ones. */
    for (int i = 0; i != 32768; ++i) {
        snprintf(key, sizeof(key), "new-%d", i);
        assert_true(http_ratelimit_take(key, 10000, NULL));
    }
    assert_int_equal(http_ratelimit__clients(), 32768);
    /* An evicted client starts over with a full bucket, as if it had been kept. */
    assert_int_equal(take_n("old-7", 10000, 5), 2);
}

static void test_cap_shares_an_overflow_bucket(void **state)
{
    char key[32];
    http_ratelimit_init(1, 1);
    http_ratelimit__set_max_clients(16); /* one bucket per stripe */
    unsigned allowed = 0;
    for (int i = 0; i != 5000; ++i) {
        snprintf(key, sizeof(key), "flood-%d", i);
        allowed += http_ratelimit_take(key, 1000, NULL);
    }
    assert_true(http_ratelimit__clients() <= 16);
    /* At most one own bucket and one overflow bucket per stripe had a token. */
    assert_true(allowed <= 32);
    assert_true(allowed >= 2);
    /* Once the buckets are full again, sweeps make room for newcomers. */
    allowed = 0;
    for (int i = 0; i != 5000; ++i) {
        snprintf(key, sizeof(key), "later-%d", i);
        allowed += http_ratelimit_take(key, 100000, NULL);
    }
    assert_true(http_ratelimit__clients() <= 16);
    assert_true(allowed >= 2 && allowed <= 32);
}

#define MT_THREADS 8
#define MT_SHARED 64
#define MT_ROUNDS 20000
#define MT_BURST 100

typedef struct {
    int id;
    unsigned shared_allowed, own_allowed, own_tried;
} mt_arg_t;

static void *mt_main(void *p)
{
    mt_arg_t *arg = p;
    char key[48];
    for (unsigned i = 0; i != MT_ROUNDS; ++i) {
        snprintf(key, sizeof(key), "shared-%u", (i * 7 + (unsigned)arg->id) % MT_SHARED);
        unsigned retry = 0;
        if (http_ratelimit_take(key, 5000, &retry))
            ++arg->shared_allowed;
        else if (retry < 1)
            return "retry below 1";
        if (i % 4 == 0) {
            /* Fresh clients as well, so stripes grow and sweep while others take. */
            snprintf(key, sizeof(key), "own-%d-%u", arg->id, i);
            arg->own_allowed += http_ratelimit_take(key, 5000, NULL);
            ++arg->own_tried;
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    http_ratelimit_init(1000, MT_BURST);
    pthread_t tids[MT_THREADS];
    mt_arg_t args[MT_THREADS];
    for (int i = 0; i != MT_THREADS; ++i) {
        args[i] = (mt_arg_t){.id = i};
        assert_int_equal(pthread_create(&tids[i], NULL, mt_main, &args[i]), 0);
    }
    unsigned shared = 0, own = 0, own_tried = 0;
    for (int i = 0; i != MT_THREADS; ++i) {
        void *ret;
        pthread_join(tids[i], &ret);
        assert_null(ret);
        shared += args[i].shared_allowed;
        own += args[i].own_allowed;
        own_tried += args[i].own_tried;
    }
    /* The clock stood still: each shared client had exactly its burst, no matter how the threads interleaved. */
    assert_int_equal(shared, MT_SHARED * MT_BURST);
    assert_int_equal(own, own_tried);
    assert_int_equal(http_ratelimit__clients(), MT_SHARED + own_tried);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_burst_then_refusal, teardown),
        cmocka_unit_test_teardown(test_refill_over_time, teardown),
        cmocka_unit_test_teardown(test_retry_after_rounding, teardown),
        cmocka_unit_test_teardown(test_separate_clients, teardown),
        cmocka_unit_test_teardown(test_unlimited, teardown),
        cmocka_unit_test_teardown(test_eviction_of_full_idle_buckets, teardown),
        cmocka_unit_test_teardown(test_cap_shares_an_overflow_bucket, teardown),
        cmocka_unit_test_teardown(test_threads, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
