/* MLLP framing (hl7v2/mllp.c): any split of the bytes, byte by byte, several frames at once, whitespace between frames,
 * garbage, oversized frames and the limits, wrapping. */
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

/* One byte per call: every call consumes its byte, and the message comes out on the CR after the FS, not before. */
static void test_byte_by_byte(void **state)
{
    const char stream[] = "\r\n\x0bMSH|^~\\&|A\rPID|1\x1c\r \x0b\x1c\r";
    const size_t ends[] = {20, 24}; /* offsets of the CRs that end the two frames */
    hl7_mllp_t f;
    hl7_mllp_init(&f, 100);
    size_t n = 0;
    for (size_t i = 0; i != sizeof(stream) - 1; ++i) {
        hl7_mllp_event_t ev = HL7_MLLP_GARBAGE;
        const char *msg = "x";
        size_t mlen = 99;
        assert_int_equal(hl7_mllp_feed(&f, stream + i, 1, &ev, &msg, &mlen), 1);
        if (n < 2 && i == ends[n]) {
            assert_int_equal(ev, HL7_MLLP_MESSAGE);
            if (n == 0) {
                assert_int_equal(mlen, 16);
                assert_memory_equal(msg, "MSH|^~\\&|A\rPID|1", 16);
            } else {
                assert_int_equal(mlen, 0); /* an empty frame is a message; the parser refuses it */
                assert_string_equal(msg, "");
            }
            ++n;
        } else {
            assert_int_equal(ev, HL7_MLLP_NEED_MORE);
            assert_null(msg);
            assert_int_equal(mlen, 0);
        }
    }
    assert_int_equal(n, 2);
    hl7_mllp_dispose(&f);
}

/* Several frames in one buffer: each call stops right after a frame's CR, and the caller goes on with the rest. */
static void test_several_in_one_buffer(void **state)
{
    const char stream[] = "\x0b"
                          "one\x1c\r"
                          "\x0b"
                          "two\x1c\r\n\t \x0b"
                          "three\x1c\r\r\n";
    hl7_mllp_t f;
    hl7_mllp_init(&f, 100);
    hl7_mllp_event_t ev;
    const char *msg;
    size_t mlen, off = 0, len = sizeof(stream) - 1;
    off += hl7_mllp_feed(&f, stream + off, len - off, &ev, &msg, &mlen);
    assert_int_equal(off, 6);
    assert_int_equal(ev, HL7_MLLP_MESSAGE);
    assert_int_equal(mlen, 3);
    assert_string_equal(msg, "one"); /* NUL-terminated as well */
    off += hl7_mllp_feed(&f, stream + off, len - off, &ev, &msg, &mlen);
    assert_int_equal(off, 12);
    assert_int_equal(ev, HL7_MLLP_MESSAGE);
    assert_string_equal(msg, "two");
    off += hl7_mllp_feed(&f, stream + off, len - off, &ev, &msg, &mlen);
    assert_int_equal(off, 23);
    assert_int_equal(ev, HL7_MLLP_MESSAGE);
    assert_string_equal(msg, "three");
    off += hl7_mllp_feed(&f, stream + off, len - off, &ev, &msg, &mlen);
    assert_int_equal(off, len); /* the trailing line break between frames is fine */
    assert_int_equal(ev, HL7_MLLP_NEED_MORE);
    assert_int_equal(hl7_mllp_feed(&f, stream, 0, &ev, &msg, &mlen), 0);
    assert_int_equal(ev, HL7_MLLP_NEED_MORE);
    hl7_mllp_dispose(&f);
}

/* Where garbage is found, what is consumed, and that the deframer stays broken afterwards. */
static void test_garbage_details(void **state)
{
    hl7_mllp_t f;
    hl7_mllp_event_t ev;
    const char *msg;
    size_t mlen;
    /* a byte outside a frame: consumed up to and including it */
    hl7_mllp_init(&f, 100);
    assert_int_equal(hl7_mllp_feed(&f, "\r\n \tGET / HTTP/1.1\r\n", 20, &ev, &msg, &mlen), 5);
    assert_int_equal(ev, HL7_MLLP_GARBAGE);
    assert_null(msg);
    /* fed again anyway: everything is swallowed and it is still garbage, so a careless loop ends */
    assert_int_equal(hl7_mllp_feed(&f, "\x0bMSH\x1c\r", 6, &ev, &msg, &mlen), 6);
    assert_int_equal(ev, HL7_MLLP_GARBAGE);
    hl7_mllp_dispose(&f);
    /* FS, then something else than CR in the next read */
    hl7_mllp_init(&f, 100);
    assert_int_equal(hl7_mllp_feed(&f, "\x0bMSH\x1c", 5, &ev, &msg, &mlen), 5);
    assert_int_equal(ev, HL7_MLLP_NEED_MORE);
    assert_int_equal(hl7_mllp_feed(&f, "\n\x0b", 2, &ev, &msg, &mlen), 1);
    assert_int_equal(ev, HL7_MLLP_GARBAGE);
    hl7_mllp_dispose(&f);
    /* FS FS */
    hl7_mllp_init(&f, 100);
    assert_int_equal(hl7_mllp_feed(&f, "\x0bMSH\x1c\x1c\r", 7, &ev, &msg, &mlen), 6);
    assert_int_equal(ev, HL7_MLLP_GARBAGE);
    hl7_mllp_dispose(&f);
    /* VT inside a frame */
    hl7_mllp_init(&f, 100);
    assert_int_equal(hl7_mllp_feed(&f, "\x0bMS\x0bH\x1c\r", 7, &ev, &msg, &mlen), 4);
    assert_int_equal(ev, HL7_MLLP_GARBAGE);
    hl7_mllp_dispose(&f);
    /* a CR with no frame before it is a blank, a lone FS is not */
    hl7_mllp_init(&f, 100);
    assert_int_equal(hl7_mllp_feed(&f, "\r\x1c\r", 3, &ev, &msg, &mlen), 2);
    assert_int_equal(ev, HL7_MLLP_GARBAGE);
    hl7_mllp_dispose(&f);
    /* a NUL outside a frame */
    hl7_mllp_init(&f, 100);
    assert_int_equal(hl7_mllp_feed(&f, "\0", 1, &ev, &msg, &mlen), 1);
    assert_int_equal(ev, HL7_MLLP_GARBAGE);
    hl7_mllp_dispose(&f);
}

/* Feeds one frame of `size` bytes ('a' + i % 26) framed, in chunks of `chunk`; returns the event and checks the bytes. */
static hl7_mllp_event_t one_frame(size_t max, size_t size, size_t chunk, size_t *kept)
{
    util_buf_t b;
    util_buf_init(&b);
    util_buf_puts(&b, "\x0b");
    for (size_t i = 0; i != size; ++i) {
        char c = (char)('a' + i % 26);
        util_buf_append(&b, &c, 1);
    }
    util_buf_puts(&b, "\x1c\r");
    hl7_mllp_t f;
    hl7_mllp_init(&f, max);
    hl7_mllp_event_t result = HL7_MLLP_NEED_MORE;
    for (size_t off = 0; off < b.len;) {
        hl7_mllp_event_t ev;
        const char *msg;
        size_t mlen, n = b.len - off < chunk ? b.len - off : chunk;
        size_t k = hl7_mllp_feed(&f, b.base + off, n, &ev, &msg, &mlen);
        assert_true(k >= 1 && k <= n);
        off += k;
        assert_int_not_equal(ev, HL7_MLLP_GARBAGE);
        if (ev == HL7_MLLP_MESSAGE || ev == HL7_MLLP_TOO_LARGE) {
            assert_int_equal(off, b.len);
            assert_memory_equal(msg, b.base + 1, mlen); /* always the first bytes */
            assert_int_equal(msg[mlen], '\0');
            *kept = mlen;
            result = ev;
        }
    }
    hl7_mllp_dispose(&f);
    util_buf_dispose(&b);
    return result;
}

static void test_limits(void **state)
{
    const size_t chunks[] = {1, 7, 4096, 1 << 20};
    for (size_t i = 0; i != sizeof(chunks) / sizeof(chunks[0]); ++i) {
        size_t kept = 0, c = chunks[i];
        /* exactly the limit passes; one byte more does not, and all of it is kept when it is under the prefix */
        assert_int_equal(one_frame(100, 100, c, &kept), HL7_MLLP_MESSAGE);
        assert_int_equal(kept, 100);
        assert_int_equal(one_frame(100, 101, c, &kept), HL7_MLLP_TOO_LARGE);
        assert_int_equal(kept, 101);
        /* far over: the prefix */
        assert_int_equal(one_frame(100, 50000, c, &kept), HL7_MLLP_TOO_LARGE);
        assert_int_equal(kept, HL7_MLLP_KEEP_PREFIX);
        /* a limit above the prefix */
        assert_int_equal(one_frame(8192, 8192, c, &kept), HL7_MLLP_MESSAGE);
        assert_int_equal(kept, 8192);
        assert_int_equal(one_frame(8192, 8193, c, &kept), HL7_MLLP_TOO_LARGE);
        assert_int_equal(kept, HL7_MLLP_KEEP_PREFIX);
        /* a limit of 0: only empty frames pass */
        assert_int_equal(one_frame(0, 0, c, &kept), HL7_MLLP_MESSAGE);
        assert_int_equal(kept, 0);
        assert_int_equal(one_frame(0, 1, c, &kept), HL7_MLLP_TOO_LARGE);
        assert_int_equal(kept, 1);
    }
}

static void test_wrap_empty(void **state)
{
    util_buf_t b;
    util_buf_init(&b);
    hl7_mllp_wrap(&b, "", 0);
    hl7_mllp_wrap(&b, "A\034B", 3); /* not escaped: MLLP has no escaping, HL7 text has no FS */
    assert_int_equal(b.len, 9);
    assert_memory_equal(b.base, "\013\034\r\013A\034B\034\r", 9);
    util_buf_dispose(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_any_split), cmocka_unit_test(test_fs_cr_split), cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_too_large), cmocka_unit_test(test_wrap),        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_several_in_one_buffer), cmocka_unit_test(test_garbage_details), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_wrap_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
