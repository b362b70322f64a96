/*
 * The audit trail: R4 AuditEvents describing who did what to which resource with what outcome. Writes commit theirs in
 * their own transaction (fhir_ix_t.audit); reads, operations and refusals are queued per loop thread and written in
 * batches shortly after the answer. The sweeper deletes AuditEvents older than the retention period.
 */
#ifndef AUTH_AUDIT_H
#define AUTH_AUDIT_H

#include <stdbool.h>
#include <jansson.h>
#define H2O_USE_LIBUV 0
#include <h2o.h>
#include "auth/authz.h"
#include "store/store.h"

/** What happened, as the HTTP layer knows it. Strings are borrowed. */
typedef struct st_auth_audit_info_t {
    const char *subtype; /* restful-interaction code: read, vread, history-instance, search-type, create, update, patch, ... */
    char action;         /* C, R, U, D or E */
    const char *type;    /* resource type acted on, or NULL */
    const char *id;      /* its id, or NULL */
    int version;         /* its version, or 0 */
    const char *query;   /* raw query string of a search, or NULL */
    const char *patient; /* id of the patient concerned, or NULL */
    int status;          /* HTTP status of the answer */
    const char *outcome_text; /* why it failed, or NULL */
    const char *request_id;
    const char *peer;    /* client address, or NULL */
    const char *agent;   /* who acted when no token did (e.g. an HL7 v2 sender), or NULL */
} auth_audit_info_t;

/** Settings (set once at start-up). */
typedef struct st_auth_audit_settings_t {
    bool enabled;
    unsigned retention_days; /* 0: kept forever */
    unsigned purge_interval_ms;
    const char *site;        /* our base URL */
} auth_audit_settings_t;
extern auth_audit_settings_t auth_audit_settings;

/** Builds the AuditEvent (caller decrefs). `p` is NULL when authorization is off. */
json_t *auth_audit_event(const auth_principal_t *p, const auth_audit_info_t *info);

typedef struct st_auth_audit_queue_t auth_audit_queue_t;
/** A per-loop queue writing batches through `pool`. */
auth_audit_queue_t *auth_audit_queue_create(h2o_loop_t *loop, store_pool_t *pool);
/** Queues an AuditEvent (the reference is taken). */
void auth_audit_queue_push(auth_audit_queue_t *q, json_t *event);
/** Writes what is queued now; true while a batch is still being written. */
bool auth_audit_queue_flush(auth_audit_queue_t *q);
/** Frees the queue (flush and wait for it first); events not yet written are logged as lost. */
void auth_audit_queue_destroy(auth_audit_queue_t *q);

/** Starts deleting expired AuditEvents on this loop (one instance-wide is enough). */
void auth_audit_purge_start(h2o_loop_t *loop, store_pool_t *pool);
/** Stops it (before the pool is destroyed). */
void auth_audit_purge_stop(void);

#endif
