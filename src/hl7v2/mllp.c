/* MLLP deframing as a byte-at-a-time state machine, so frames split anywhere across reads (even between FS and CR)
 * come out whole. */
#include <string.h>
#include "hl7v2/mllp.h"

enum { BETWEEN, IN_FRAME, AFTER_FS };

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

size_t hl7_mllp_feed(hl7_mllp_t *f, const char *data, size_t len, hl7_mllp_event_t *event, const char **message, size_t *len_out)
{
    *event = HL7_MLLP_NEED_MORE;
    *message = NULL;
    *len_out = 0;
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)data[i++];
        switch (f->_state) {
        case BETWEEN:
            if (c == HL7_MLLP_START) {
                f->_buf.len = 0;
                f->_seen = 0;
                f->_state = IN_FRAME;
            } else if (c != '\r' && c != '\n' && c != ' ' && c != '\t') {
                *event = HL7_MLLP_GARBAGE;
                return i;
            }
            break;
        case IN_FRAME: {
            if (c == HL7_MLLP_END) {
                f->_state = AFTER_FS;
                break;
            }
            if (c == HL7_MLLP_START) {
                *event = HL7_MLLP_GARBAGE;
                return i;
            }
            /* copy the run of ordinary bytes at once */
            size_t run = 1;
            while (i - 1 + run < len && data[i - 1 + run] != (char)HL7_MLLP_END && data[i - 1 + run] != (char)HL7_MLLP_START)
                ++run;
            /* within the limit everything is kept; past it, nothing more (the first bytes address the AR) */
            size_t room = f->_buf.len < HL7_MLLP_KEEP_PREFIX ? HL7_MLLP_KEEP_PREFIX - f->_buf.len : 0;
            size_t keep = f->_seen + run <= f->max_message ? run : run < room ? run : room;
            util_buf_append(&f->_buf, data + i - 1, keep);
            f->_seen += run;
            i += run - 1;
            break;
        }
        case AFTER_FS:
            if (c != HL7_MLLP_CR) {
                *event = HL7_MLLP_GARBAGE;
                return i;
            }
            f->_state = BETWEEN;
            *event = f->_seen > f->max_message ? HL7_MLLP_TOO_LARGE : HL7_MLLP_MESSAGE;
            *message = f->_buf.base != NULL ? f->_buf.base : "";
            *len_out = *event == HL7_MLLP_TOO_LARGE && f->_buf.len > HL7_MLLP_KEEP_PREFIX ? HL7_MLLP_KEEP_PREFIX : f->_buf.len;
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
