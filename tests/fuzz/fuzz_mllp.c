/*
 * libFuzzer target: the MLLP deframer (hl7v2/mllp.c). The first byte picks a chunk size, the rest is fed in chunks of
 * that size; the same bytes fed whole must give the same messages in the same order. Consumed counts are checked.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hl7v2/mllp.h"

/* Feeds `data` in chunks of `chunk` bytes; appends each event and message to `log`. */
static void run(const char *data, size_t size, size_t chunk, util_buf_t *log)
{
    hl7_mllp_t f;
    hl7_mllp_init(&f, 512);
    for (size_t off = 0; off < size;) {
        size_t n = size - off < chunk ? size - off : chunk, used = 0;
        while (used < n) {
            hl7_mllp_event_t ev;
            const char *msg;
            size_t len;
            size_t k = hl7_mllp_feed(&f, data + off + used, n - used, &ev, &msg, &len);
            if (k == 0 || k > n - used)
                abort(); /* no progress, or more than it was given */
            used += k;
            if (ev == HL7_MLLP_MESSAGE || ev == HL7_MLLP_TOO_LARGE) {
                if ((ev == HL7_MLLP_MESSAGE && len > 512) || (ev == HL7_MLLP_TOO_LARGE && len > HL7_MLLP_KEEP_PREFIX))
                    abort();
                util_buf_printf(log, "%d:%zu:", (int)ev, len);
                util_buf_append(log, msg, len);
            }
            if (ev == HL7_MLLP_GARBAGE) {
                util_buf_puts(log, "garbage");
                hl7_mllp_dispose(&f);
                return;
            }
        }
        off += n;
    }
    hl7_mllp_dispose(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chunk = (size_t)(data[0] % 17) + 1;
    util_buf_t a, b;
    util_buf_init(&a);
    util_buf_init(&b);
    run((const char *)data + 1, size - 1, chunk, &a);
    run((const char *)data + 1, size - 1, size, &b);
    if (a.len != b.len || (a.len != 0 && memcmp(a.base, b.base, a.len) != 0))
        abort(); /* how bytes are split across reads must not matter */
    util_buf_dispose(&a);
    util_buf_dispose(&b);
    return 0;
}
