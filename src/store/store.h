/*
 * Asynchronous PostgreSQL access inside an h2o event loop: one pool per loop thread, non-blocking libpq, prepared
 * statements prepared once per connection. Callbacks are never invoked from inside the submitting call.
 */
#ifndef STORE_STORE_H
#define STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include <libpq-fe.h>
#include "util/str.h"
#define H2O_USE_LIBUV 0
#include <h2o.h>

/* Error strings passed to callbacks; compare by pointer. NULL means success. */
extern const char store_err_unavailable[]; /* database down or connection lost (HTTP 503) */
extern const char store_err_timeout[];     /* query took longer than database.query_timeout_ms (HTTP 503) */
extern const char store_err_query[];       /* the statement failed; see PQresultErrorField(res, PG_DIAG_SQLSTATE) */
extern const char store_err_not_run[];     /* pipelined behind a query that failed, and skipped */

typedef struct st_store_pool_t store_pool_t;
typedef struct st_store_query_t store_query_t;
typedef struct st_store_session_t store_session_t;

/** Called once per query. `res` (may be NULL on connection errors) is cleared by the pool after the callback returns. */
typedef void (*store_query_cb)(store_query_t *query, PGresult *res, const char *err);
/** Called when a session got its own connection (err NULL) or could not (err set). */
typedef void (*store_session_cb)(store_session_t *session, const char *err);

/** Ad-hoc statements (keep_plan) a connection keeps prepared, at most. */
#define STORE_KEPT_PER_CONN 32

/** A statement prepared on every connection at connect time. */
typedef struct st_store_stmt_t {
    const char *name;
    const char *sql;
} store_stmt_t;

/** BEGIN, as a statement for modules that send catalogue statements and transaction control alike (not prepared). */
extern const store_stmt_t store_begin;

/** A query; embed it in your own context and get back there with H2O_STRUCT_FROM_MEMBER. */
struct st_store_query_t {
    const char *stmt_name;      /* a prepared statement from the catalogue, or NULL */
    const char *sql;            /* ad-hoc parameterised SQL when stmt_name is NULL */
    int nparams;
    const char *const *params;  /* text-format values (NULL = SQL NULL); must stay valid until the callback */
    store_query_cb cb;
    /*
     * Ad-hoc SQL whose best plan does not depend on the values: each connection prepares it on first use (one extra
     * round trip) and runs it by name afterwards, so PostgreSQL can settle on a generic plan instead of planning every
     * execution. Up to STORE_KEPT_PER_CONN texts per connection; later ones run unprepared.
     */
    bool keep_plan;
    /*
     * Batching (optional, pool queries only): a prepared statement that takes one text[] parameter of keys and returns
     * rows whose first column is a key. Queries with the same batch statement that are queued together are answered by
     * one execution of it; each callback gets the shared result with `row` set to the row of its key (-1: none), and
     * stmt_name, sql and params are not used.
     */
    const char *batch_stmt;
    const char *batch_key;
    int row;
    /* private */
    store_query_t *_next;
};

/** A connection reserved for a sequence of queries (transactions). Embed it in your own context. */
struct st_store_session_t {
    store_session_cb cb;
    /* private */
    store_pool_t *_pool;
    struct st_store_conn_t *_conn;
    store_session_t *_next;
};

/**
 * The libpq "options" every pooled connection sends: the server's session settings (jit=off) followed by the DSN's own
 * options, or PGOPTIONS when the DSN has none, so that an operator's setting still wins. Free with free().
 */
char *store_session_options(const char *dsn);

/** Creates a pool of `size` connections on `loop`, which start connecting at once. `stmts` must outlive the pool. */
store_pool_t *store_pool_create(h2o_loop_t *loop, const char *dsn, unsigned size, unsigned queue_limit, unsigned query_timeout_ms,
                                const store_stmt_t *stmts, size_t nstmts);
/** Closes every connection; queued queries fail with store_err_unavailable. */
void store_pool_destroy(store_pool_t *pool);
/** Queues a query on any free connection. Returns -1 when the queue is full (the callback will not be called). */
int store_pool_submit(store_pool_t *pool, store_query_t *query);

/** Asks for a dedicated connection; `session->cb` fires when it is ready. Returns -1 when the queue is full. */
int store_session_begin(store_pool_t *pool, store_session_t *session);
/**
 * Puts the session's connection in libpq's pipeline mode: store_session_query then sends each query at once, also while
 * earlier ones are still running, and the database runs them one after the other, as if each had waited for the one
 * before. Callbacks come in sending order. The queries sent in one turn of the event loop share a Sync: when one of them
 * fails, the rest of them are skipped (store_err_not_run), and inside a transaction the ones sent later fail with 25P02
 * (in_failed_sql_transaction). keep_plan is ignored. Call before the session's first query; -1 if the connection
 * cannot (the session then stays one query at a time).
 */
int store_session_pipeline(store_session_t *session);
/** Runs a query on the session's connection (one at a time unless pipelined). Returns -1 if the session lost its connection. */
int store_session_query(store_session_t *session, store_query_t *query);
/** Gives the connection back; an unfinished transaction on it is rolled back by resetting the connection. */
void store_session_end(store_session_t *session);

/** SQLSTATE of a failed result, or "" */
const char *store_sqlstate(const PGresult *res);

/* migrate.c: blocking, used only before the event loops start and by `fhirsched migrate`. */

/** Number of migrations compiled into this binary. */
int store_migrations_known(void);
/** Applies pending migrations, each in its own transaction. Prints progress to stdout. -1 with `err` on failure. */
int store_migrate_run(const char *dsn, char *err, size_t errlen);
/** Reads the applied schema version (0 when none). -1 with `err` when the database cannot be reached. */
int store_migrate_current(const char *dsn, int *version, char *err, size_t errlen);
/** A PostgreSQL array literal being built, for a text[]/jsonb[] parameter. */
typedef struct st_store_array_t {
    util_buf_t buf;
    size_t n; /* elements so far */
} store_array_t;

/** Starts an empty literal. */
void store_array_init(store_array_t *a);
/** Appends one element, quoted and escaped. */
void store_array_add(store_array_t *a, const char *value);
/** The literal so far, "{...}" (caller frees); more elements may still be added. */
char *store_array_literal(const store_array_t *a);
/** Frees the literal's buffer. */
void store_array_dispose(store_array_t *a);
/** The literal of a JSON array of strings (non-strings become NULL elements); caller frees. */
char *store_array_of_strings(const json_t *strings);

/** Reads the secret every instance on the database shares (blocking; caller frees *secret). 0, or -1 with err. */
int store_server_secret(const char *dsn, char **secret, char *err, size_t errlen);
/** Prepared statement that returns the applied schema version; used by /readyz. */
#define STORE_STMT_SCHEMA_VERSION "schema_version"

#endif
