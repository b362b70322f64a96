/* The HTTP front: listeners and loops (server.c), responses (send.c), the FHIR REST router (rest.c). */
#ifndef HTTP_HTTP_H
#define HTTP_HTTP_H

#include <stdbool.h>
#include <pthread.h>
#define H2O_USE_LIBUV 0
#include <h2o.h>
#include "fhir/outcome.h"
#include "fhir/bundle.h"
#include "store/store.h"
#include "util/config.h"

/** One event loop thread: its h2o context, listener and database pool. */
typedef struct st_http_thread_t {
    h2o_context_t ctx;
    h2o_evloop_t *loop;
    store_pool_t *pool;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    int listen_fd;
    int hl7_fd;        /* MLLP listener (hl7v2/listener.c), or -1 */
    unsigned inflight; /* requests waiting for the database */
    bool runs_sweeper; /* cancels expired holds (sched/ops.c) */
    struct st_auth_audit_queue_t *audit; /* AuditEvents of reads and refusals, written in batches */
    h2o_linklist_t parked;               /* requests waiting for a key refresh (unknown kid) */
    h2o_timeout_t park_timeout;
    h2o_timeout_entry_t park_entry;
    pthread_t tid;
} http_thread_t;

/** Per-request state, allocated from the request's pool. */
typedef struct st_http_req_t {
    h2o_req_t *req;
    http_thread_t *thread;
    char request_id[64];
    bool pretty;
    fhir_prefer_t prefer;
    uint64_t started_ms;
    struct st_http_auth_t *auth; /* who asks (rest.c); shared with the jobs that may outlive the request */
} http_req_t;

/** The configuration in force (read-only once the loops run). */
extern const util_config_t *http_config;

/** Serves until SIGTERM/SIGINT; returns the process exit code. */
int http_server_run(const util_config_t *cfg);

/* send.c */
/** Sends a JSON body (copied) with Content-Type application/fhir+json, honouring _pretty. */
void http_send_json(http_req_t *hr, int status, const char *body, size_t len);
/** Sends an OperationOutcome built from `oo` with `status`. */
void http_send_outcome(http_req_t *hr, int status, const fhir_outcome_t *oo);
/** Shorthand for a single-issue error response. */
void http_send_error(http_req_t *hr, int status, const char *code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/** Adds a response header (name must be lowercase; both strings are copied). */
void http_add_header(http_req_t *hr, const char *name, const char *value);

/* cors.c */
/** Parses cors.allowed_origins (comma-separated scheme://host[:port], or "*"); call once before the loops run. 0, or -1
 * with a message naming the setting in `err`. */
int http_cors_init(const util_config_t *cfg, char *err, size_t errlen);
/** Forgets the parsed origins (CORS off). */
void http_cors_dispose(void);
/** Answers a CORS preflight (OPTIONS with Origin and Access-Control-Request-Method): 204 with the allow headers for an allowed origin, 403 OperationOutcome otherwise. Returns 1 when it answered, 0 when the request is not a preflight. */
int http_cors_preflight(http_req_t *hr);
/** Adds Access-Control-Allow-Origin (the origin itself, plus Vary: Origin; "*" only when configured "*"), Access-Control-Expose-Headers to the response when the request's Origin is allowed. Call before any response is sent. */
void http_cors_decorate(http_req_t *hr);

/* rest.c */
/** The h2o request handler for everything (/fhir, /healthz, /readyz, /.well-known/smart-configuration). */
int http_rest_on_req(h2o_handler_t *self, h2o_req_t *req);
/** Per-loop state of the REST layer (the audit queue, parked requests); call in the loop thread once its pool exists. */
void http_rest_thread_init(http_thread_t *thread);
/** Writes what is still queued and releases the per-loop state; runs the loop until the audit queue is written. */
void http_rest_thread_dispose(http_thread_t *thread);
/** Loads the keys and settings of authorization (blocking; before the loops start). 0, or -1 with a message in err. */
int http_auth_init(const util_config_t *cfg, char *err, size_t errlen);

#endif
