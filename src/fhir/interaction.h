/*
 * One FHIR REST interaction (read, create, update, search, ...) executed asynchronously against the store. The same
 * engine serves plain HTTP requests and the entries of batch/transaction Bundles, so the rules live in one place.
 */
#ifndef FHIR_INTERACTION_H
#define FHIR_INTERACTION_H

#include <stdbool.h>
#include <time.h>
#include <jansson.h>
#include "fhir/access.h"
#include "fhir/outcome.h"
#include "fhir/search.h"
#include "store/store.h"

typedef enum {
    FHIR_IX_READ,
    FHIR_IX_VREAD,
    FHIR_IX_SEARCH,
    FHIR_IX_CREATE,
    FHIR_IX_UPDATE,
    FHIR_IX_PATCH,
    FHIR_IX_DELETE,
    FHIR_IX_HISTORY, /* instance, type or system depending on type/id */
    FHIR_IX_CONDITIONAL_UPDATE,
    FHIR_IX_CONDITIONAL_DELETE,
    FHIR_IX_EXISTING, /* a conditional create that matched: answer with the match (set by the resolve phase) */
    FHIR_IX_NOTHING,  /* a conditional delete that matched nothing */
} fhir_ix_kind_t;

typedef enum { FHIR_BODY_NONE, FHIR_BODY_RESOURCE, FHIR_BODY_BUNDLE, FHIR_BODY_OUTCOME } fhir_body_kind_t;

/** What to do, as parsed from an HTTP request or a Bundle entry. Strings and JSON are owned by the interaction. */
typedef struct st_fhir_ix_request_t {
    fhir_ix_kind_t kind;
    const char *type; /* static type name, or NULL for system-level history */
    char *id;         /* NULL when not addressed by id */
    int vid;          /* vread version */
    char *query;      /* raw query string: search, conditional criteria, history _count/_since */
    char *if_none_exist; /* conditional create criteria (raw query string) */
    json_t *resource; /* create/update body */
    json_t *patch;    /* JSON Patch document */
    int if_match;     /* expected version, 0 = none */
    /* the caller read version if_match and it references no Slot: an update that references none either moves no Slot */
    bool replaces_slotless;
    int if_none_match; /* version: answer 304 when current; -1 = "*", 0 = none */
    time_t if_modified_since; /* 0 = none */
} fhir_ix_request_t;

/** The outcome: an HTTP status, headers' material and a body. */
typedef struct st_fhir_ix_result_t {
    int status;
    fhir_body_kind_t body_kind;
    char *body; /* JSON text (malloc'd); for resources exactly as stored */
    size_t body_len;
    char *id;   /* logical id of the resource acted on */
    int version;
    char last_updated[40]; /* FHIR instant of that version */
    fhir_outcome_t oo;     /* issues; turned into the body on failure */
    bool not_run;          /* failed only because an earlier statement of its transaction had failed (pipelined) */
} fhir_ix_result_t;

typedef struct st_fhir_ix_t fhir_ix_t;
typedef struct st_fhir_search_run_t fhir_search_run_t;
typedef void (*fhir_ix_cb)(fhir_ix_t *ix);
/** The AuditEvent to commit in the same transaction as a successful write (caller's context), or NULL for none. */
typedef json_t *(*fhir_ix_audit_fn)(const fhir_ix_t *ix, void *ctx);

/** The execution context; allocate with fhir_ix_create. */
struct st_fhir_ix_t {
    fhir_ix_request_t req;
    fhir_ix_result_t res;
    void *data; /* caller's */
    const fhir_access_t *access; /* what the requester may see and change (borrowed; NULL: everything) */
    fhir_ix_audit_fn audit;      /* writes commit audit(ix, audit_ctx) with them */
    void *audit_ctx;
    /* private */
    store_pool_t *_pool;
    store_session_t *_session; /* run inside this session (a transaction Bundle), or NULL */
    store_session_t _own_session;
    bool _own_tx;
    bool _resolve_only;
    int _retries;
    fhir_ix_cb _cb;
    void (*_next)(fhir_ix_t *ix, PGresult *res);
    store_query_t _query;
    char *_params[8];
    int _nparams;
    fhir_search_t _search;
    bool _search_built;
    struct st_fhir_search_run_t *_run; /* a search in progress */
    unsigned _offset;                  /* history paging */
    json_t *_work; /* parsed current resource (patch) */
    bool _proposal_read; /* a read of an unknown Appointment id also looked among $find proposals */
    json_t *_slots;      /* Slot status changes following an Appointment write: [id, version, body, status] */
    size_t _slot_next;
    bool _audited;        /* the write's AuditEvent is in the transaction */
    void (*_after_check)(fhir_ix_t *ix); /* continues once a row passed the access check */
};

/** Creates an interaction context (zeroed request, empty result). */
fhir_ix_t *fhir_ix_create(void);
/** Frees the context, its request and its result. */
void fhir_ix_destroy(fhir_ix_t *ix);
/**
 * Runs the interaction; `cb` fires exactly once, from the event loop, with ix->res filled in. With a `session` every
 * statement runs on it (the caller owns BEGIN/COMMIT); otherwise statements go to `pool`, and conditional interactions open
 * their own short transaction.
 */
void fhir_ix_run(fhir_ix_t *ix, store_pool_t *pool, store_session_t *session, fhir_ix_cb cb);
/**
 * Runs only the conditional part (matching If-None-Exist / conditional update or delete criteria) inside `session`,
 * rewriting the request into its unconditional form; used by transactions before references are resolved.
 */
void fhir_ix_resolve(fhir_ix_t *ix, store_pool_t *pool, store_session_t *session, fhir_ix_cb cb);
/**
 * Whether, inside a pipelined transaction session (store_session_pipeline), the next entries' statements may be sent
 * before this interaction has finished: its first statement is its write, and what may follow it (its AuditEvent, a
 * check of the written row's access tokens) neither reads nor changes what other entries write. Conditional entries
 * not yet resolved (a transaction resolves them first: then they are plain writes), patches, checked updates and
 * deletes, reads and Appointment writes that move Slots are not.
 */
bool fhir_ix_pipelinable(const fhir_ix_t *ix);
/** Whether the request changes a resource (create, update, patch, delete, and their conditional forms). */
bool fhir_ix_writes(const fhir_ix_request_t *req);
/** Validates and checks a create/update body against the request; fills ix->res on failure. -1 on failure. */
int fhir_ix_check_body(fhir_ix_t *ix);
/** A type's own check of create/update/patch bodies, run after validation; it may rewrite the resource into its stored
 * form. `access` is the writer's (NULL: everything). 0, or -1 with the issue (and status) in `oo`. */
typedef int (*fhir_ix_body_check_fn)(json_t *resource, const fhir_access_t *access, fhir_outcome_t *oo);
/** Registers the body check of `type` (once, before the loops run). */
void fhir_ix_set_body_check(const char *type, fhir_ix_body_check_fn check);
/**
 * Maps a method and a path relative to the FHIR base ("Patient/1/_history/2", "Slot", "_history") plus its raw query
 * string onto `req` (kind, type, id, vid, query). 404/405/400 with an issue in `oo` when no interaction fits.
 */
int fhir_ix_route(fhir_ix_request_t *req, const char *method, const char *path, size_t path_len, const char *query,
                  fhir_outcome_t *oo);
/** Parses a version ETag (W/"3" or "3") to 3; "*" gives -1; anything else (or more than 9 digits) gives -2. */
int fhir_etag_version(const char *value, size_t len);
/** The statements the engine prepares on every connection. */
extern const store_stmt_t fhir_ix_statements[];
extern const size_t fhir_ix_statement_count;
/** The public base URL used in fullUrl, Location and links (set once at start-up). */
extern const char *fhir_base_url;
/** Page sizes and include limits of searches (set once at start-up from search.* settings). */
extern fhir_search_limits_t fhir_search_limits;
/** Absolute URL "<base>/<type>/<id>/_history/<version>" (caller frees). */
char *fhir_ix_location(const char *type, const char *id, int version);

#endif
