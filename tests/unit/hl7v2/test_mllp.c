/* MLLP framing (hl7v2/mllp.c): any split of the bytes, several frames at once, garbage, oversized frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "hl7v2/mllp.h"

typedef struct {
    char messages[8][256];
    size_t lens[8];
    hl7_mllp_event_t events[8];
    size_t n;
    bool garbage;
} seen_t;

/* Feeds `data` in chunks of `chunk` bytes, collecting what comes out. */
static void feed(hl7_mllp_t *f, const char *data, size_t len, size_t chunk, seen_t *out)
{
    for (size_t off = 0; off < len && !out->garbage;) {
        size_t n = len - off < chunk ? len - off : chunk, used = 0;
        while (used < n) {
            hl7_mllp_event_t ev;
            const char *msg;
            size_t mlen;
            size_t k = hl7_mllp_feed(f, data + off + used, n - used, &ev, &msg, &mlen);
            assert_true(k >= 1 && k <= n - used);
            used += k;
            if (ev == HL7_MLLP_GARBAGE) {
                out->garbage = true;
                return;
            }
            if (ev == HL7_MLLP_MESSAGE || ev == HL7_MLLP_TOO_LARGE) {
                assert_true(out->n < 8 && mlen < 256);
                memcpy(out->messages[out->n], msg, mlen);
                out->messages[out->n][mlen] = '\0';
                out->lens[out->n] = mlen;
                out->events[out->n++] = ev;
            }
        }
        off += n;
    }
}

static void test_any_split(void **state)
{
    const char stream[] = "\x0bMSH|one\rPID|1\x1c\r\r\n \x0bMSH|two\x1c\r";
    for (size_t chunk = 1; chunk <= sizeof(stream); ++chunk) {
        hl7_mllp_t f;
        hl7_mllp_init(&f, 1024);
        seen_t s = {0};
        feed(&f, stream, sizeof(stream) - 1, chunk, &s);
        assert_false(s.garbage);
        assert_int_equal(s.n, 2);
        assert_string_equal(s.messages[0], "MSH|one\rPID|1");
        assert_string_equal(s.messages[1], "MSH|two");
        assert_int_equal(s.events[0], HL7_MLLP_MESSAGE);
        hl7_mllp_dispose(&f);
    }
}

static void test_fs_cr_split(void **state)
{
    hl7_mllp_t f;
    hl7_mllp_init(&f, 1024);
    seen_t s = {0};
    feed(&f, "\x0bMSH|x\x1c", 7, 64, &s);
    assert_int_equal(s.n, 0);
    feed(&f, "\r", 1, 64, &s);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.messages[0], "MSH|x");
    hl7_mllp_dispose(&f);
}

static void test_garbage(void **state)
{
    const char *streams[] = {"hello\x0bMSH|x\x1c\r", "\x0bMSH|x\x1cX", "\x0bMSH|\x0bx\x1c\r", "\x0bMSH|x\x1c\r!"};
    const size_t complete[] = {0, 0, 0, 1};
    for (size_t i = 0; i != sizeof(streams) / sizeof(streams[0]); ++i) {
        hl7_mllp_t f;
        hl7_mllp_init(&f, 1024);
        seen_t s = {0};
        feed(&f, streams[i], strlen(streams[i]), 3, &s);
        assert_true(s.garbage);
        assert_int_equal(s.n, complete[i]);
        hl7_mllp_dispose(&f);
    }
}

static void test_too_large(void **state)
{
    /* a frame over the limit is skipped to its end and reported with its first bytes; the next one is fine */
    util_buf_t b;
    util_buf_init(&b);
    util_buf_puts(&b, "\x0bMSH|^~\\&|BIG|");
    for (int i = 0; i != 10000; ++i)
        util_buf_puts(&b, "x");
    util_buf_puts(&b, "\x1c\r\x0bMSH|small\x1c\r");
    for (size_t chunk = 1; chunk <= 4096; chunk *= 8) {
        hl7_mllp_t f;
        hl7_mllp_init(&f, 2000);
        seen_t s = {0};
        /* messages[] holds 255 bytes: only look at the start of the kept prefix */
        size_t off = 0;
        while (off < b.len) {
            hl7_mllp_event_t ev;
            const char *msg;
            size_t mlen;
            size_t n = b.len - off < chunk ? b.len - off : chunk;
            off += hl7_mllp_feed(&f, b.base + off, n, &ev, &msg, &mlen);
            assert_true(ev != HL7_MLLP_GARBAGE);
            if (ev == HL7_MLLP_TOO_LARGE) {
                assert_int_equal(mlen, HL7_MLLP_KEEP_PREFIX);
                assert_memory_equal(msg, "MSH|^~\\&|BIG|", 13);
                s.events[s.n++] = ev;
            } else if (ev == HL7_MLLP_MESSAGE) {
                assert_int_equal(mlen, 9);
                assert_memory_equal(msg, "MSH|small", 9);
                s.events[s.n++] = ev;
            }
        }
        assert_int_equal(s.n, 2);
        assert_int_equal(s.events[0], HL7_MLLP_TOO_LARGE);
        assert_int_equal(s.events[1], HL7_MLLP_MESSAGE);
        hl7_mllp_dispose(&f);
    }
    util_buf_dispose(&b);
}

static void test_wrap(void **state)
{
    util_buf_t b;
    util_buf_init(&b);
    hl7_mllp_wrap(&b, "MSH|a", 5);
    assert_int_equal(b.len, 8);
    assert_memory_equal(b.base, "\x0bMSH|a\x1c\r", 8);
    hl7_mllp_t f;
    hl7_mllp_init(&f, 100);
    seen_t s = {0};
    feed(&f, b.base, b.len, 100, &s);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.messages[0], "MSH|a");
    hl7_mllp_dispose(&f);
    util_buf_dispose(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_any_split), cmocka_unit_test(test_fs_cr_split), cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_too_large), cmocka_unit_test(test_wrap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
