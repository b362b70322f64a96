/* Applying one inbound HL7 message (inbound.c); used by the MLLP listener. */
#ifndef HL7V2_INBOUND_H
#define HL7V2_INBOUND_H

#include <stdbool.h>
#include <stddef.h>
#include "hl7v2/hl7.h"

/** Set once by hl7_init. */
typedef struct st_hl7_inbound_settings_t {
    const char *sending_application, *sending_facility; /* ours, when the sender left MSH-5/MSH-6 empty */
    size_t max_message_bytes;
    const sched_tz_t *tz; /* of timestamps without an offset */
} hl7_inbound_settings_t;
extern hl7_inbound_settings_t hl7_inbound_settings;

/** Called once, from the loop, with the ACK to send (ER7, no framing; valid during the call). */
typedef void (*hl7_inbound_cb)(void *data, hl7_ack_code_t code, const char *ack);

/**
 * Applies one message (`raw` is copied) received from `peer`; with `too_large`, `raw` is only the message's first bytes
 * and the answer is AR. `cb` fires once, after the transaction committed or the message was recorded for review.
 */
void hl7_inbound_process(store_pool_t *pool, const char *raw, size_t len, bool too_large, const char *peer, hl7_inbound_cb cb,
                         void *data);

#endif
