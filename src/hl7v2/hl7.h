/*
 * The HL7 v2 bridge (docs/hl7v2.md): SIU and ADT in over MLLP, applied through the FHIR interaction engine in one
 * transaction per message and acknowledged after commit; SIU out through the hl7_outbox table
 * (migrations/0007_hl7v2.sql). The pure parts: ER7 (er7.h), MLLP framing (mllp.h), the mapping to FHIR (map.c), ACKs
 * (ack.c) and outbound rendering (render.c).
 */
#ifndef HL7V2_HL7_H
#define HL7V2_HL7_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "hl7v2/er7.h"
#include "sched/tz.h"
#include "store/store.h"
#include "util/config.h"

/* ---- acknowledgement codes and issues ---- */

typedef enum { HL7_ACK_AA, HL7_ACK_AE, HL7_ACK_AR } hl7_ack_code_t;

/** One ERR segment's worth: an HL7 table 0357 code, where (e.g. "SCH^1^11", may be empty) and a message for people. */
typedef struct st_hl7_issue_t {
    int code;
    bool warning; /* severity W (in an AA) rather than E */
    char where[32];
    char text[400];
} hl7_issue_t;

/** Sets an issue (printf-style text). */
void hl7_issue_set(hl7_issue_t *issue, int code, const char *where, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- mapping (map.c, pure) ---- */

typedef enum { HL7_KIND_SIU, HL7_KIND_ADT_PATIENT, HL7_KIND_ADT_MERGE } hl7_kind_t;

/** A resource found by identifier, or created from `resource` when none matches. */
typedef struct st_hl7_party_t {
    const char *type;        /* "Patient", "Practitioner", "Location" */
    json_t *identifiers;     /* FHIR Identifier array (searched by any of them) */
    json_t *resource;        /* the resource as the message describes it (no id) */
    json_t *participant_type; /* CodeableConcept array for Appointment.participant.type, or NULL */
    bool remove;             /* an AIS/AIP/AIL with action code D: the participant goes */
} hl7_party_t;

/** What a message asks for. */
typedef struct st_hl7_plan_t {
    hl7_kind_t kind;
    char event[4];          /* "S12", "A04", ... */
    bool has_patient;
    hl7_party_t patient;    /* PID */
    hl7_party_t merged;     /* A40: MRG-1 */
    hl7_party_t *parties;   /* SIU: practitioners (AIP) and locations (AIL), in message order */
    size_t nparties;
    json_t *appointment;    /* SIU: the elements the message sets (start, end, minutesDuration, serviceType, ...) */
    json_t *appointment_ids; /* SIU: filler id first, then placer id */
    json_t *warnings;       /* strings: what was read but could not be mapped */
} hl7_plan_t;

/** What mapping needs besides the message. */
typedef struct st_hl7_map_ctx_t {
    const sched_tz_t *tz; /* zone of timestamps without an offset */
} hl7_map_ctx_t;

/**
 * Reads a parsed message into `plan`. Returns HL7_ACK_AA when it can be applied, or HL7_ACK_AR (unsupported type or
 * event) / HL7_ACK_AE (required data missing or unreadable) with the reason in `issue`. Dispose the plan either way.
 */
hl7_ack_code_t hl7_plan_build(hl7_plan_t *plan, const hl7_msg_t *msg, const hl7_map_ctx_t *ctx, hl7_issue_t *issue);
/** Frees what a plan holds. */
void hl7_plan_dispose(hl7_plan_t *plan);
/**
 * The Appointment after an SIU: `existing` (NULL for a new one) with the plan's elements, status for the event,
 * identifiers merged and the participants given as references (`patient_ref` may be NULL; party_refs[i] for
 * plan->parties[i]). Returns a new object; *issue set and NULL when the result cannot be booked (no start or end).
 */
json_t *hl7_appointment_apply(const json_t *existing, const hl7_plan_t *plan, const char *patient_ref, char *const *party_refs,
                              hl7_issue_t *issue);
/** A Patient updated from an ADT: the elements the message carries replace the stored ones; identifiers are merged. */
json_t *hl7_patient_merge(const json_t *existing, const json_t *incoming);
/** The search query (raw, percent-encoded) finding any of `identifiers`: "identifier=s%7Cv,s2%7Cv2". */
char *hl7_identifier_query(const json_t *identifiers);
/** The FHIR system URI of an assigning authority (namespace id, universal id, universal id type), or of the sender's
 * facility `fallback` when there is none (caller frees). */
char *hl7_system_uri(const char *namespace_id, const char *universal_id, const char *universal_id_type, const char *fallback);

/* ---- acknowledgements (ack.c, pure) ---- */

/**
 * The ACK (ER7, segments ending in \r, no framing) of a parsed message, or of unparseable bytes when `msg` is NULL
 * (header fields from hl7_peek_header, which may be empty). `issues` (n of them) become ERR segments. `control_id`
 * is our MSH-10. Caller frees.
 */
char *hl7_ack_build(const hl7_msg_t *msg, const char *raw, size_t rawlen, hl7_ack_code_t code, const hl7_issue_t *issues,
                    size_t nissues, const char *our_application, const char *our_facility, const char *control_id);
/** "AA", "AE", "AR". */
const char *hl7_ack_code_name(hl7_ack_code_t code);

/* ---- outbound rendering (render.c, pure) ---- */

/** One configured legacy endpoint (hl7.outbound). */
typedef struct st_hl7_endpoint_t {
    char *name;
    char *host;
    unsigned short port;
    char *sending_application, *sending_facility;
    char *receiving_application, *receiving_facility;
    char *version;   /* MSH-12 */
    char events[8][4]; /* "S12", ... */
    size_t nevents;
} hl7_endpoint_t;

/**
 * Parses hl7.outbound (URLs separated by spaces, newlines or ";") into endpoints. 0, or -1 with a message naming the
 * bad part in `err`.
 */
int hl7_endpoints_parse(const char *text, const char *sending_application, const char *sending_facility, hl7_endpoint_t **out,
                        size_t *n, char *err, size_t errlen);
void hl7_endpoints_free(hl7_endpoint_t *endpoints, size_t n);

/** What an outbound SIU is made of: the Appointment version and the resources it refers to (by "Type/id"). */
typedef struct st_hl7_render_in_t {
    const hl7_endpoint_t *endpoint;
    const char *event;      /* "S12" ... */
    const char *control_id;
    long long now;
    const json_t *appointment;
    const json_t *referenced; /* object: "Patient/x" -> resource, ... (missing ones are rendered from the reference) */
} hl7_render_in_t;

/** Renders the SIU message (ER7, segments ending in \r). Caller frees. */
char *hl7_render_siu(const hl7_render_in_t *in);

/* ---- the server side (listener.c, inbound.c, outbound.c, admin.c) ---- */

/** Reads the hl7.* settings, loads the time zone, parses hl7.outbound (blocking; before the loops start). 0, or -1 with
 * a message naming the setting in err. */
int hl7_init(const util_config_t *cfg, char *err, size_t errlen);
/** Sets up the listener's settings (hl7_init calls it). 0, or -1 with err. */
int hl7_listener_configure(const char *listen, const char *cert_file, const char *key_file, unsigned idle_ms, size_t max_message,
                           char *err, size_t errlen);
/** Closes what is left on this loop (after the loop stopped running). */
void hl7_listener_dispose(h2o_loop_t *loop);
/** Whether the MLLP listener is configured. */
bool hl7_listener_enabled(void);
/** Opens the listening socket for one loop thread (SO_REUSEPORT); -1 with err. */
int hl7_listener_open(char *err, size_t errlen);
/** Starts accepting on `fd` in the calling loop thread, which owns `pool`. */
void hl7_listener_start(h2o_loop_t *loop, int fd, store_pool_t *pool);
/** The statements inbound processing uses, for the connection pool to prepare (store_pool_create). */
extern const store_stmt_t hl7_inbound_statements[];
extern const size_t hl7_inbound_statement_count;
/** Stops accepting on this loop; connections finish their message in progress and close. */
void hl7_listener_stop(h2o_loop_t *loop);
/** Whether this loop still has HL7 connections with a message in progress. */
bool hl7_listener_busy(h2o_loop_t *loop);

/** Starts the sender thread, which first writes the configured endpoints into hl7_endpoint (and, with none, stops
 * there). 0, or -1 with err. */
int hl7_outbound_start(const char *dsn, char *err, size_t errlen);
/** Stops the sender thread. */
void hl7_outbound_stop(void);

/** Per-process counters for /metrics. */
typedef struct st_hl7_counters_t {
    unsigned long long inbound[3]; /* by hl7_ack_code_t */
    long connections;
} hl7_counters_t;
/** A snapshot of the counters. */
hl7_counters_t hl7_counters(void);

#endif
