/*
 * The scheduling operations Appointment/$find, $hold and $book (IHE ITI-115/116/117), run asynchronously against the
 * store: load the resources availability comes from, compute or check, then write through the FHIR interaction engine
 * so that validation, versioning, search indexes, Slot status and the sched_busy exclusion constraint apply as for any
 * write. Also the sweeper that cancels expired holds and drops expired proposals.
 */
#ifndef SCHED_OPS_H
#define SCHED_OPS_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include "fhir/interaction.h"
#include "fhir/outcome.h"
#include "store/store.h"

/* SCHED_OP_CHECK is internal (sched_rules_check), never a REST operation. */
typedef enum { SCHED_OP_FIND, SCHED_OP_HOLD, SCHED_OP_BOOK, SCHED_OP_CHECK } sched_op_kind_t;

typedef struct st_sched_op_t sched_op_t;
typedef void (*sched_op_cb)(sched_op_t *op);

/** Names an operation from the path segment after "Appointment/" ("$find" ...); -1 when it is not one of ours. */
int sched_op_kind(const char *segment, size_t len);

/** Creates an operation context. */
sched_op_t *sched_op_create(sched_op_kind_t kind);
/** Frees it. */
void sched_op_destroy(sched_op_t *op);
/**
 * Reads the inputs: `query` (URL query string, may be NULL) and `parameters` (a Parameters resource from a POST body, or
 * NULL). Returns -1 with a 400 in the outcome (sched_op_outcome) on bad input.
 */
int sched_op_parse(sched_op_t *op, const char *query, const json_t *parameters);
/** Runs the operation; `cb` fires once from the event loop when the result is ready. */
void sched_op_run(sched_op_t *op, store_pool_t *pool, sched_op_cb cb, void *data);

/** Applies the requester's row rules and audit hook (fhir_ix_t.access/.audit) to every resource the operation writes. */
void sched_op_set_guard(sched_op_t *op, const fhir_access_t *access, fhir_ix_audit_fn audit, void *audit_ctx);
/** Whether the request asked $book to override the soft rules (override-rules). */
bool sched_op_overrides_rules(const sched_op_t *op);
/** The caller's pointer given to sched_op_run. */
void *sched_op_data(const sched_op_t *op);
/** HTTP status of the result. */
int sched_op_status(const sched_op_t *op);
/** JSON body of a successful result (a Bundle), or NULL when the outcome is the body. */
const char *sched_op_body(const sched_op_t *op, size_t *len);
/** The OperationOutcome of a failed result. */
const fhir_outcome_t *sched_op_outcome(const sched_op_t *op);
/** Expiry of a hold (Unix seconds) for the Expires header, or 0. */
int64_t sched_op_expires(const sched_op_t *op);

/**
 * Checks `appointment` (copied) against the soft rules exactly as $book would: used where those rules only warn (HL7 v2
 * bookings from a system of record). The reads run in the caller's `session` (its transaction stays open: a pool query
 * could wait forever behind sessions that wait for it), or on `pool` when it is NULL. `cb` fires once; the status is
 * 200 with the first broken rule (or NULL) in sched_op_rule_warning, or 5xx when the schedule could not be read.
 * `ignore_id` is the Appointment's own id (its busy time is not in its own way), or NULL.
 */
sched_op_t *sched_rules_check(store_pool_t *pool, store_session_t *session, const json_t *appointment, const char *ignore_id,
                              sched_op_cb cb, void *data);
/** The broken rule found by sched_rules_check, or NULL. */
const char *sched_op_rule_warning(const sched_op_t *op);

/** The statements the operations use, for the connection pool to prepare (store_pool_create). */
extern const store_stmt_t sched_ops_statements[];
extern const size_t sched_ops_statement_count;

/** Releases what the operations keep per loop thread (call on that thread before it ends). */
void sched_ops_thread_dispose(void);

/** Starts the periodic sweep of expired holds and proposals on this loop (one per server instance is enough). */
void sched_sweeper_start(h2o_loop_t *loop, store_pool_t *pool);
/** Stops it (before the pool is destroyed). */
void sched_sweeper_stop(void);

#endif
