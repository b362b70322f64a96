/*
 * libFuzzer target: the MLLP deframer (hl7v2/mllp.c). Input: byte 0 picks the message limit, bytes 1-4 a cycle of chunk
 * sizes (1 to 64, or 0 for "everything left"); the rest is the byte stream. The stream is fed in those chunks, calling
 * again with the rest after every event as a listener does, and also byte by byte; both must give exactly what a naive
 * reference deframer written here gives. On the way: every call consumes at least one byte and no more than it was given,
 * NEED_MORE means everything was consumed, a frame ends on the byte just consumed, messages are NUL-terminated and within
 * the limits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hl7v2/mllp.h"

static const size_t limits[] = {0, 1, 16, 100, 512, 4096, 4097, 10000};

/* Appends "event:length:bytes" to `log`. */
static void record(util_buf_t *log, hl7_mllp_event_t ev, const char *msg, size_t len)
{
    util_buf_printf(log, "%d:%zu:", (int)ev, len);
    util_buf_append(log, msg, len);
}

/* The reference: the whole stream at once, frames kept whole and cut afterwards. */
static void reference(const uint8_t *data, size_t size, size_t max, util_buf_t *log)
{
    util_buf_t frame;
    util_buf_init(&frame);
    enum { OUT, IN, FS } state = OUT;
    for (size_t i = 0; i != size; ++i) {
        uint8_t c = data[i];
        if (state == OUT) {
            if (c == HL7_MLLP_START) {
                frame.len = 0;
                state = IN;
            } else if (c != '\r' && c != '\n' && c != ' ' && c != '\t') {
                break;
            }
        } else if (state == IN) {
            if (c == HL7_MLLP_START)
                break;
            if (c == HL7_MLLP_END)
                state = FS;
            else
                util_buf_append(&frame, (const char *)&c, 1);
        } else {
            if (c != HL7_MLLP_CR)
                break;
            if (frame.len > max)
                record(log, HL7_MLLP_TOO_LARGE, frame.base, frame.len < HL7_MLLP_KEEP_PREFIX ? frame.len : HL7_MLLP_KEEP_PREFIX);
            else
                record(log, HL7_MLLP_MESSAGE, frame.base, frame.len);
            state = OUT;
        }
    }
    util_buf_dispose(&frame);
}

/* Feeds `data` in chunks from `sizes` (cycled), logging every message; stops at garbage. */
static void run(const uint8_t *data, size_t size, size_t max, const uint8_t *sizes, util_buf_t *log)
{
    hl7_mllp_t f;
    hl7_mllp_init(&f, max);
    for (size_t off = 0, turn = 0; off < size; ++turn) {
        size_t want = sizes[turn % 4] == 0 ? size - off : sizes[turn % 4];
        size_t n = size - off < want ? size - off : want, used = 0;
        while (used < n) {
            hl7_mllp_event_t ev;
            const char *msg;
            size_t len;
            size_t k = hl7_mllp_feed(&f, (const char *)data + off + used, n - used, &ev, &msg, &len);
            if (k == 0 || k > n - used)
                abort(); /* no progress, or more than it was given */
            used += k;
            switch (ev) {
            case HL7_MLLP_NEED_MORE:
                if (used != n || msg != NULL || len != 0)
                    abort();
                break;
            case HL7_MLLP_MESSAGE:
            case HL7_MLLP_TOO_LARGE:
                if (data[off + used - 1] != HL7_MLLP_CR || msg == NULL || msg[len] != '\0' || len > HL7_MLLP_KEEP_PREFIX + max)
                    abort();
                if (ev == HL7_MLLP_MESSAGE ? len > max : len > HL7_MLLP_KEEP_PREFIX || (len <= max && len != HL7_MLLP_KEEP_PREFIX))
                    abort();
                if (memchr(msg, HL7_MLLP_START, len) != NULL || memchr(msg, HL7_MLLP_END, len) != NULL)
                    abort();
                record(log, ev, msg, len);
                break;
            case HL7_MLLP_GARBAGE:
                hl7_mllp_dispose(&f);
                return;
            default:
                abort();
            }
        }
        off += n;
    }
    hl7_mllp_dispose(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    size_t max = limits[data[0] % (sizeof(limits) / sizeof(limits[0]))];
    uint8_t sizes[4], ones[4] = {1, 1, 1, 1};
    for (int i = 0; i != 4; ++i)
        sizes[i] = data[1 + i] == 0xFF ? 0 : (uint8_t)(data[1 + i] % 64 + 1);
    data += 5;
    size -= 5;
    util_buf_t want, chunked, bytes;
    util_buf_init(&want);
    util_buf_init(&chunked);
    util_buf_init(&bytes);
    reference(data, size, max, &want);
    run(data, size, max, sizes, &chunked);
    run(data, size, max, ones, &bytes);
    /* how the bytes are split across reads must not matter */
    if (chunked.len != want.len || memcmp(chunked.base, want.base, want.len) != 0)
        abort();
    if (bytes.len != want.len || memcmp(bytes.base, want.base, want.len) != 0)
        abort();
    util_buf_dispose(&want);
    util_buf_dispose(&chunked);
    util_buf_dispose(&bytes);
    return 0;
}
