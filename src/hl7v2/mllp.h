/*
 * MLLP framing (HL7 v2 over TCP): <VT 0x0B> message <FS 0x1C><CR 0x0D>. An incremental deframer fed with whatever the
 * socket read (a message may arrive byte by byte, or several in one read), and the framing of outgoing messages. Pure
 * code: the listener and the sender own the sockets.
 */
#ifndef HL7V2_MLLP_H
#define HL7V2_MLLP_H

#include <stddef.h>
#include "util/str.h"

#define HL7_MLLP_START 0x0B
#define HL7_MLLP_END 0x1C
#define HL7_MLLP_CR 0x0D
/* An oversized message's first bytes are kept so that its MSH can still address the AR. */
#define HL7_MLLP_KEEP_PREFIX 4096

typedef enum {
    HL7_MLLP_NEED_MORE,  /* everything was consumed; no complete message yet */
    HL7_MLLP_MESSAGE,    /* a complete message: `message`/`len` (without the framing bytes) */
    HL7_MLLP_TOO_LARGE,  /* a complete frame longer than the limit was skipped: `message`/`len` hold its first
                            HL7_MLLP_KEEP_PREFIX bytes */
    HL7_MLLP_GARBAGE,    /* bytes outside a frame (other than CR, LF, space or tab between frames), or a FS not followed
                            by CR, or a VT inside a frame: the stream cannot be trusted any more; close the connection */
} hl7_mllp_event_t;

typedef struct st_hl7_mllp_t {
    size_t max_message; /* limit on a message's length (without framing) */
    /* private */
    util_buf_t _buf;
    size_t _seen;   /* bytes of the current frame so far (may exceed what _buf keeps when too large) */
    int _state;
} hl7_mllp_t;

/** Prepares a deframer for messages of at most `max_message` bytes. */
void hl7_mllp_init(hl7_mllp_t *f, size_t max_message);
/** Frees its buffer. */
void hl7_mllp_dispose(hl7_mllp_t *f);
/**
 * Consumes bytes from `data` up to and including the end of the first complete frame (or all of them) and returns how many
 * it consumed; `*event` says what happened. For HL7_MLLP_MESSAGE and HL7_MLLP_TOO_LARGE, `*message`/`*len` stay valid until
 * the next call. Call again with the rest until everything is consumed. After HL7_MLLP_GARBAGE the deframer must not be
 * fed again.
 */
size_t hl7_mllp_feed(hl7_mllp_t *f, const char *data, size_t len, hl7_mllp_event_t *event, const char **message, size_t *len_out);
/** Appends `message` framed for the wire. */
void hl7_mllp_wrap(util_buf_t *out, const char *message, size_t len);

#endif
