/*
 * libFuzzer target: the ER7 parser (hl7v2/er7.c). Walks every segment, field, repetition, component and sub-component
 * through the accessors; escapes each value and checks that a message rebuilt from the escaped values parses back to the
 * same MSH-10 and the same value. Also the header peek used for ARs, and timestamps.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "hl7v2/er7.h"

static void round_trip(const char *control_id, const char *value)
{
    util_buf_t b;
    util_buf_init(&b);
    util_buf_puts(&b, "MSH|^~\\&|A|B|C|D|20260101||SIU^S12|");
    hl7_escape(&b, control_id, &hl7_default_delims);
    util_buf_puts(&b, "|P|2.5.1\rNTE|1||");
    hl7_escape(&b, value, &hl7_default_delims);
    util_buf_puts(&b, "\r");
    hl7_parse_error_t perr;
    char why[256];
    hl7_msg_t *m = hl7_parse(b.base, b.len, &perr, why, sizeof(why));
    /* a control id or value with a character we do not write (bytes that are not UTF-8) may not come back */
    if (m != NULL) {
        const char *c = hl7_control_id(m), *v = hl7_get(m, 1, 3, 1, 1, 1);
        if (c == NULL || strcmp(c, control_id) != 0)
            abort();
        if (strchr(value, '\r') == NULL && (v == NULL ? value[0] != '\0' : strcmp(v, value) != 0))
            abort();
        hl7_free(m);
    }
    util_buf_dispose(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hl7_parse_error_t perr;
    char why[256];
    hl7_msg_t *m = hl7_parse((const char *)data, size, &perr, why, sizeof(why));
    hl7_delims_t d;
    char app[64], fac[64], ctrl[64], ver[64];
    hl7_peek_header((const char *)data, size, &d, app, fac, ctrl, ver, sizeof(app));
    if (m == NULL)
        return 0;
    const char *control = hl7_control_id(m);
    for (size_t s = 0; s < hl7_segment_count(m) && s < 64; ++s) {
        for (unsigned f = 1; f <= 40; ++f) {
            unsigned reps = hl7_repetitions(m, s, f);
            hl7_raw_field(m, s, f);
            for (unsigned r = 1; r <= reps && r <= 8; ++r) {
                unsigned comps = hl7_components(m, s, f, r);
                for (unsigned c = 1; c <= comps + 1 && c <= 12; ++c)
                    for (unsigned sub = 1; sub <= 3; ++sub) {
                        const char *v = hl7_get(m, s, f, r, c, sub);
                        if (v != NULL && control != NULL && strlen(v) < 512) {
                            long long t;
                            int precision;
                            hl7_parse_dtm(v, 0, &t, &precision);
                            if (s == 0 && f == 10)
                                round_trip(control, v);
                        }
                    }
            }
        }
    }
    hl7_free(m);
    return 0;
}
