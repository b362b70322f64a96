/* MLLP deframing as a byte-at-a-time state machine, so frames split anywhere across reads (even between FS and CR)
 * come out whole. Runs of ordinary bytes inside a frame are copied at once. */
#include <string.h>
#include "hl7v2/mllp.h"

enum {
    BETWEEN,  /* outside a frame: only line breaks and blanks may come */
    IN_FRAME, /* after VT */
    AFTER_FS, /* after FS: CR must come */
    BROKEN,   /* after garbage: nothing is read any more */
};

void hl7_mllp_init(hl7_mllp_t *f, size_t max_message)
{
    memset(f, 0, sizeof(*f));
    f->max_message = max_message;
    util_buf_init(&f->_buf);
    f->_state = BETWEEN;
}

void hl7_mllp_dispose(hl7_mllp_t *f)
{
    util_buf_dispose(&f->_buf);
}

/* Appends the bytes of a frame, keeping all of them while the frame is within the limit and, past it, no more than the
 * prefix that addresses the AR. */
static void keep(hl7_mllp_t *f, const char *p, size_t n)
{
    size_t k = n;
    if (f->_seen + n > f->max_message) {
        size_t room = f->_buf.len < HL7_MLLP_KEEP_PREFIX ? HL7_MLLP_KEEP_PREFIX - f->_buf.len : 0;
        k = n < room ? n : room;
    }
    if (k != 0)
        util_buf_append(&f->_buf, p, k);
    f->_seen += n;
}

size_t hl7_mllp_feed(hl7_mllp_t *f, const char *data, size_t len, hl7_mllp_event_t *event, const char **message, size_t *len_out)
{
    *event = HL7_MLLP_NEED_MORE;
    *message = NULL;
    *len_out = 0;
    if (f->_state == BROKEN) { /* fed again against the contract: swallow everything rather than loop */
        *event = HL7_MLLP_GARBAGE;
        return len;
    }
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)data[i];
        switch (f->_state) {
        case BETWEEN:
            ++i;
            if (c == HL7_MLLP_START) {
                f->_buf.len = 0;
                f->_seen = 0;
                f->_state = IN_FRAME;
            } else if (c != '\r' && c != '\n' && c != ' ' && c != '\t') {
                f->_state = BROKEN;
                *event = HL7_MLLP_GARBAGE;
                return i;
            }
            break;
        case IN_FRAME: {
            if (c == HL7_MLLP_END) {
                ++i;
                f->_state = AFTER_FS;
                break;
            }
            if (c == HL7_MLLP_START) {
                f->_state = BROKEN;
                *event = HL7_MLLP_GARBAGE;
                return i + 1;
            }
            size_t run = 1;
            while (i + run < len && data[i + run] != (char)HL7_MLLP_END && data[i + run] != (char)HL7_MLLP_START)
                ++run;
            keep(f, data + i, run);
            i += run;
            break;
        }
        case AFTER_FS:
            ++i;
            if (c != HL7_MLLP_CR) {
                f->_state = BROKEN;
                *event = HL7_MLLP_GARBAGE;
                return i;
            }
            f->_state = BETWEEN;
            *event = f->_seen > f->max_message ? HL7_MLLP_TOO_LARGE : HL7_MLLP_MESSAGE;
            if (*event == HL7_MLLP_TOO_LARGE && f->_buf.len > HL7_MLLP_KEEP_PREFIX)
                f->_buf.len = HL7_MLLP_KEEP_PREFIX;
            f->_buf.base[f->_buf.len] = '\0'; /* callers may read the message as a C string */
            *message = f->_buf.base;
            *len_out = f->_buf.len;
            return i;
        }
    }
    return i;
}

void hl7_mllp_wrap(util_buf_t *out, const char *message, size_t len)
{
    char start = HL7_MLLP_START, end[2] = {HL7_MLLP_END, HL7_MLLP_CR};
    util_buf_append(out, &start, 1);
    util_buf_append(out, message, len);
    util_buf_append(out, end, 2);
}
