/*
 * Per-thread pool of non-blocking libpq connections driven by h2o's event loop (the TechEmpower C/h2o shape, on h2o 2.2.5):
 * PQconnectStart/PQconnectPoll from socket readiness, one query in flight per connection, a bounded FIFO of waiting
 * queries, a timer per connection, and reconnection with a pause when the database goes away. A session may ask for
 * libpq's pipeline mode: then its queries go out as they come, answered in order, with one Sync for all those sent in
 * the same turn of the event loop (each Sync makes the database flush its answers: one send and one wake-up).
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "store/store.h"
#include "util/log.h"
#include "util/str.h"

#define MODULE_NAME "store/pool.c"
#define RECONNECT_DELAY_MS 500
#define BATCH_MAX 64 /* queries answered by one execution of a batch statement */
#define KEPT_NAME_FORMAT "kept_%d" /* no catalogue statement is named like this */

const char store_err_unavailable[] = "database unavailable";
const char store_err_timeout[] = "database query timed out";
const char store_err_query[] = "database query failed";
const char store_err_not_run[] = "not run: an earlier query of the pipeline failed";
const store_stmt_t store_begin = {NULL, "BEGIN"};

typedef enum {
    CONN_DOWN,       /* waiting for the reconnect timer */
    CONN_CONNECTING, /* PQconnectPoll in progress */
    CONN_PREPARING,  /* connected, preparing the statement catalogue */
    CONN_IDLE,
    CONN_BUSY,
} conn_state_t;

typedef struct st_store_conn_t {
    store_pool_t *pool;
    PGconn *pg;
    h2o_socket_t *sock;
    int pg_fd;                /* PQsocket() the h2o socket was made from (h2o owns a dup of it) */
    conn_state_t state;
    bool write_pending;       /* h2o_socket_notify_write armed */
    size_t prepared;          /* statements of the catalogue prepared so far */
    store_query_t *current;   /* query in flight (NULL while preparing) */
    /* pipeline mode (store_session_pipeline): queries sent after `current`, answered after it, in order */
    bool pipeline;
    store_query_t *sent_head, **sent_tail;
    h2o_timeout_entry_t sync_due; /* queries went out since the last Sync: one follows at the end of this turn */
    PGresult *result;         /* last result of the query in flight */
    store_session_t *session; /* reserving session, if any */
    /* ad-hoc statements kept prepared (store_query_t.keep_plan), named KEPT_NAME_FORMAT with their index */
    char *kept_sql[STORE_KEPT_PER_CONN];
    size_t kept_len[STORE_KEPT_PER_CONN];
    int nkept;
    int preparing_kept; /* the index being prepared for `current`, or -1 */
    h2o_timeout_entry_t query_timer;
    h2o_timeout_entry_t reconnect_timer;
} store_conn_t;

struct st_store_pool_t {
    h2o_loop_t *loop;
    char *dsn;
    char *options; /* the server's session settings, then the DSN's own options (which win): store_session_options() */
    store_conn_t *conns;
    unsigned size;
    unsigned queue_limit;
    const store_stmt_t *stmts;
    size_t nstmts;
    /* waiting work, FIFO */
    store_query_t *queue_head, **queue_tail;
    unsigned waiting; /* queued queries plus sessions waiting for a connection: both count against queue_limit */
    store_session_t *sessions_head, **sessions_tail;
    h2o_timeout_t query_timeout;
    h2o_timeout_t reconnect_timeout;
    h2o_timeout_t zero_timeout;
    h2o_timeout_entry_t deferred;
    bool destroying;
    bool outage; /* connecting failed since the last success: further failures are logged at debug level only */
};

static void conn_connect(store_conn_t *c);
static void conn_drop(store_conn_t *c, const char *err);
static bool conn_release(store_conn_t *c);
static void conn_flush(store_conn_t *c);
static void on_readable(h2o_socket_t *sock, const char *err);
static void pool_dispatch(store_pool_t *pool);
static void pool_defer(store_pool_t *pool);

static void timer_stop(h2o_timeout_entry_t *entry)
{
    if (h2o_timeout_is_linked(entry))
        h2o_timeout_unlink(entry);
}

const char *store_sqlstate(const PGresult *res)
{
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return state != NULL ? state : "";
}

static bool pool_any_alive(store_pool_t *pool)
{
    for (unsigned i = 0; i != pool->size; ++i)
        if (pool->conns[i].state != CONN_DOWN)
            return true;
    return false;
}

/* ---- socket plumbing ---- */

static void conn_close_socket(store_conn_t *c)
{
    if (c->sock != NULL) {
        h2o_socket_read_stop(c->sock);
        /* h2o_socket_close frees the socket; a pending notify_write callback is dropped with it. */
        h2o_socket_close(c->sock);
        c->sock = NULL;
    }
    c->write_pending = false;
    c->pg_fd = -1;
}

/* (Re)wraps libpq's socket: h2o closes what it wraps, so it gets a dup and libpq keeps its own fd. */
static int conn_wrap_socket(store_conn_t *c)
{
    int fd = PQsocket(c->pg);
    if (fd < 0)
        return -1;
    if (c->sock != NULL && fd == c->pg_fd)
        return 0;
    conn_close_socket(c);
    int dupfd = dup(fd);
    if (dupfd < 0)
        return -1;
    c->sock = h2o_evloop_socket_create(c->pool->loop, dupfd, H2O_SOCKET_FLAG_DONT_READ);
    c->sock->data = c;
    c->pg_fd = fd;
    h2o_socket_read_start(c->sock, on_readable);
    return 0;
}

static void on_writable(h2o_socket_t *sock, const char *err)
{
    store_conn_t *c = sock->data;
    c->write_pending = false;
    if (err != NULL) {
        conn_drop(c, store_err_unavailable);
        return;
    }
    if (c->state == CONN_CONNECTING)
        on_readable(sock, NULL); /* PQconnectPoll decides what it needs next */
    else
        conn_flush(c);
}

static void conn_want_write(store_conn_t *c)
{
    if (!c->write_pending && c->sock != NULL) {
        c->write_pending = true;
        h2o_socket_notify_write(c->sock, on_writable);
    }
}

static void conn_flush(store_conn_t *c)
{
    int r = PQflush(c->pg);
    if (r < 0)
        conn_drop(c, store_err_unavailable);
    else if (r > 0)
        conn_want_write(c);
}

/* ---- completing work ---- */

/*
 * An idle connection no session holds goes back to the pool: out of pipeline mode (where plans are kept again) once the
 * answer to its last Sync is in, and never inside a transaction, whose locks would leak into the next user. False while
 * that answer is still to come (on_readable calls again) or when the connection had to be dropped.
 */
static bool conn_release(store_conn_t *c)
{
    if (c->pipeline) {
        PGresult *res;
        while (!PQisBusy(c->pg) && (res = PQgetResult(c->pg)) != NULL) {
            bool sync = PQresultStatus(res) == PGRES_PIPELINE_SYNC;
            PQclear(res);
            if (!sync) {
                LOG_ERROR("an answer came for no query of the pipeline; resetting the connection");
                conn_drop(c, store_err_unavailable);
                return false;
            }
        }
        if (!PQexitPipelineMode(c->pg)) {
            if (PQisBusy(c->pg) && PQstatus(c->pg) != CONNECTION_BAD)
                return false;
            LOG_ERROR("leaving pipeline mode failed: %s", PQerrorMessage(c->pg));
            conn_drop(c, store_err_unavailable);
            return false;
        }
        c->pipeline = false;
    }
    if (PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        LOG_WARN("session ended inside a transaction; resetting the connection");
        conn_drop(c, store_err_unavailable);
        return false;
    }
    return true;
}

static void on_sync_due(h2o_timeout_entry_t *entry)
{
    store_conn_t *c = H2O_STRUCT_FROM_MEMBER(store_conn_t, sync_due, entry);
    int flushed = PQpipelineSync(c->pg) ? PQflush(c->pg) : -1;
    if (flushed < 0) {
        LOG_ERROR("sending a query failed: %s", PQerrorMessage(c->pg));
        conn_drop(c, store_err_unavailable);
    } else if (flushed > 0) {
        conn_want_write(c);
    }
}

static void finish_query(store_query_t *q, PGresult *res, const char *err)
{
    q->cb(q, res, err);
    if (res != NULL)
        PQclear(res);
}

/* Connection-level failures surface as results with these SQLSTATE classes: report them as "unavailable". */
static bool is_connection_sqlstate(const char *state)
{
    return strncmp(state, "08", 2) == 0 || strcmp(state, "57P01") == 0 || strcmp(state, "57P02") == 0 ||
           strcmp(state, "57P03") == 0;
}

static void conn_complete_current(store_conn_t *c)
{
    store_query_t *q = c->current;
    PGresult *res = c->result;
    c->current = NULL;
    c->result = NULL;
    timer_stop(&c->query_timer);
    const char *err = NULL;
    if (res == NULL) {
        err = store_err_unavailable;
    } else if (PQresultStatus(res) == PGRES_PIPELINE_ABORTED) {
        err = store_err_not_run;
    } else {
        ExecStatusType st = PQresultStatus(res);
        if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
            err = is_connection_sqlstate(store_sqlstate(res)) || PQstatus(c->pg) == CONNECTION_BAD ? store_err_unavailable
                                                                                                  : store_err_query;
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        finish_query(q, res, err != NULL ? err : NULL);
        conn_drop(c, store_err_unavailable);
        return;
    }
    /* Before the callback, so that what it sends goes behind the queries already sent. */
    if (c->sent_head != NULL) {
        c->current = c->sent_head;
        if ((c->sent_head = c->current->_next) == NULL)
            c->sent_tail = &c->sent_head;
        h2o_timeout_link(c->pool->loop, &c->pool->query_timeout, &c->query_timer);
    } else {
        c->state = CONN_IDLE;
    }
    /* The callback may start the next query of its session on this very connection. */
    finish_query(q, res, err);
    if (c->state == CONN_IDLE && c->session == NULL && c->pg != NULL && conn_release(c))
        pool_dispatch(c->pool);
}

/* ---- ad-hoc statements kept prepared ---- */

/* The index under which the connection keeps `sql` prepared, or -1. */
static int kept_find(const store_conn_t *c, const char *sql)
{
    size_t len = strlen(sql);
    for (int i = 0; i != c->nkept; ++i)
        if (c->kept_len[i] == len && memcmp(c->kept_sql[i], sql, len) == 0)
            return i;
    return -1;
}

/* The server forgets a connection's prepared statements with the connection. */
static void kept_forget(store_conn_t *c)
{
    for (int i = 0; i != c->nkept; ++i)
        free(c->kept_sql[i]);
    c->nkept = 0;
    c->preparing_kept = -1;
}

/* The current query's statement was prepared (or failed to be): run it, or report the failure as the query's. */
static void conn_kept_prepared(store_conn_t *c)
{
    int i = c->preparing_kept;
    store_query_t *q = c->current;
    c->preparing_kept = -1;
    if (c->result == NULL || PQresultStatus(c->result) != PGRES_COMMAND_OK || PQstatus(c->pg) == CONNECTION_BAD) {
        conn_complete_current(c);
        return;
    }
    PQclear(c->result);
    c->result = NULL;
    c->kept_len[i] = strlen(q->sql);
    c->kept_sql[i] = util_xstrdup(q->sql);
    c->nkept = i + 1;
    char name[32];
    snprintf(name, sizeof(name), KEPT_NAME_FORMAT, i);
    int flushed = PQsendQueryPrepared(c->pg, name, q->nparams, q->params, NULL, NULL, 0) ? PQflush(c->pg) : -1;
    if (flushed < 0) {
        LOG_ERROR("sending a query failed: %s", PQerrorMessage(c->pg));
        conn_drop(c, store_err_unavailable);
    } else if (flushed > 0) {
        conn_want_write(c);
    }
}

/* ---- sending ---- */

static int conn_send_prepare(store_conn_t *c)
{
    const store_stmt_t *s = &c->pool->stmts[c->prepared];
    if (!PQsendPrepare(c->pg, s->name, s->sql, 0, NULL))
        return -1;
    h2o_timeout_link(c->pool->loop, &c->pool->query_timeout, &c->query_timer);
    conn_flush(c);
    return 0;
}

/*
 * Returns -1 (and drops the connection) when the query could not be handed to libpq; its callback is then NOT called.
 * In pipeline mode the query may go out while others are in flight; plans are not kept there, because preparing one
 * takes a round trip before the query can be sent.
 */
static int conn_send_query(store_conn_t *c, store_query_t *q)
{
    assert(c->state == CONN_IDLE ? c->current == NULL : c->pipeline && c->state == CONN_BUSY && c->preparing_kept < 0);
    bool keep = q->keep_plan && q->stmt_name == NULL && !c->pipeline;
    int kept = keep ? kept_find(c, q->sql) : -1;
    char name[32];
    int ok;
    if (kept >= 0) {
        snprintf(name, sizeof(name), KEPT_NAME_FORMAT, kept);
        ok = PQsendQueryPrepared(c->pg, name, q->nparams, q->params, NULL, NULL, 0);
    } else if (keep && c->nkept != STORE_KEPT_PER_CONN) {
        /* prepared first; on_readable runs it once the server has it (conn_kept_prepared) */
        c->preparing_kept = c->nkept;
        snprintf(name, sizeof(name), KEPT_NAME_FORMAT, c->nkept);
        ok = PQsendPrepare(c->pg, name, q->sql, q->nparams, NULL);
    } else {
        ok = q->stmt_name != NULL ? PQsendQueryPrepared(c->pg, q->stmt_name, q->nparams, q->params, NULL, NULL, 0)
                                  : PQsendQueryParams(c->pg, q->sql, q->nparams, NULL, q->params, NULL, NULL, 0);
    }
    int flushed = !ok ? -1 : c->pipeline ? 0 : PQflush(c->pg); /* pipelined: on_sync_due flushes */
    if (ok && c->pipeline && !h2o_timeout_is_linked(&c->sync_due))
        h2o_timeout_link(c->pool->loop, &c->pool->zero_timeout, &c->sync_due);
    if (flushed < 0) {
        LOG_ERROR("sending a query failed: %s", PQerrorMessage(c->pg));
        conn_drop(c, store_err_unavailable);
        return -1;
    }
    if (c->state == CONN_BUSY) {
        q->_next = NULL;
        *c->sent_tail = q;
        c->sent_tail = &q->_next;
    } else {
        c->current = q;
        c->state = CONN_BUSY;
        h2o_timeout_link(c->pool->loop, &c->pool->query_timeout, &c->query_timer);
    }
    if (flushed > 0)
        conn_want_write(c);
    return 0;
}

/* ---- batches: queued lookups of the same statement answered by one execution ---- */

typedef struct st_store_batch_t {
    store_query_t carrier; /* what goes to the connection */
    store_query_t *members[BATCH_MAX];
    size_t n;
    char *keys; /* the text[] literal */
} store_batch_t;

static void on_batch_done(store_query_t *carrier, PGresult *res, const char *err)
{
    store_batch_t *b = H2O_STRUCT_FROM_MEMBER(store_batch_t, carrier, carrier);
    int rows = err == NULL && res != NULL ? PQntuples(res) : 0;
    for (size_t i = 0; i != b->n; ++i) {
        store_query_t *q = b->members[i];
        q->row = -1;
        for (int r = 0; r != rows && q->row < 0; ++r)
            if (strcmp(PQgetvalue(res, r, 0), q->batch_key) == 0)
                q->row = r;
        q->cb(q, res, err);
    }
    free(b->keys);
    free(b);
}

/* Takes the queued queries that share `first`'s batch statement (up to BATCH_MAX) into one carrier query. */
static store_query_t *batch_gather(store_pool_t *pool, store_query_t *first)
{
    store_batch_t *b = util_xcalloc(1, sizeof(*b));
    store_array_t keys;
    store_array_init(&keys);
    b->members[b->n++] = first;
    store_array_add(&keys, first->batch_key);
    for (store_query_t **link = &pool->queue_head; *link != NULL && b->n != BATCH_MAX;) {
        store_query_t *q = *link;
        if (q->batch_stmt == NULL || strcmp(q->batch_stmt, first->batch_stmt) != 0) {
            link = &q->_next;
            continue;
        }
        if ((*link = q->_next) == NULL)
            pool->queue_tail = link;
        q->_next = NULL;
        --pool->waiting;
        b->members[b->n++] = q;
        store_array_add(&keys, q->batch_key);
    }
    b->keys = store_array_literal(&keys);
    store_array_dispose(&keys);
    b->carrier = (store_query_t){.stmt_name = first->batch_stmt, .nparams = 1, .params = (const char *const *)&b->keys,
                                 .cb = on_batch_done};
    return &b->carrier;
}

/* A carrier that can no longer be sent gives its members back to the head of the queue. */
static void batch_requeue(store_pool_t *pool, store_query_t *carrier)
{
    store_batch_t *b = H2O_STRUCT_FROM_MEMBER(store_batch_t, carrier, carrier);
    for (size_t i = b->n; i-- != 0;) {
        store_query_t *q = b->members[i];
        if ((q->_next = pool->queue_head) == NULL)
            pool->queue_tail = &q->_next;
        pool->queue_head = q;
        ++pool->waiting;
    }
    free(b->keys);
    free(b);
}

/* ---- connection lifecycle ---- */

static void on_reconnect_timer(h2o_timeout_entry_t *entry)
{
    store_conn_t *c = H2O_STRUCT_FROM_MEMBER(store_conn_t, reconnect_timer, entry);
    conn_connect(c);
}

/* Fails what the connection was doing, closes it and schedules a reconnect. */
static void conn_drop(store_conn_t *c, const char *err)
{
    store_pool_t *pool = c->pool;
    bool was_up = c->state == CONN_IDLE || c->state == CONN_BUSY;
    timer_stop(&c->query_timer);
    timer_stop(&c->sync_due);
    conn_close_socket(c);
    if (c->pg != NULL) {
        if (was_up && !pool->destroying)
            LOG_WARN("database connection lost: %s", PQerrorMessage(c->pg));
        PQfinish(c->pg);
        c->pg = NULL;
    }
    c->state = CONN_DOWN;
    c->prepared = 0;
    kept_forget(c);
    store_query_t *q = c->current, *sent = c->sent_head;
    PGresult *res = c->result;
    c->current = NULL;
    c->result = NULL;
    c->pipeline = false;
    c->sent_head = NULL;
    c->sent_tail = &c->sent_head;
    store_session_t *s = c->session;
    if (s != NULL) {
        /* The session keeps running on nothing: its next query is refused and its end is a no-op. */
        s->_conn = NULL;
        c->session = NULL;
    }
    if (pool->destroying) {
        if (q != NULL && q->cb == on_batch_done) {
            /* like any query in flight at destruction, its members get no callback */
            store_batch_t *b = H2O_STRUCT_FROM_MEMBER(store_batch_t, carrier, q);
            free(b->keys);
            free(b);
        }
        if (res != NULL)
            PQclear(res);
        return;
    }
    if (q != NULL)
        finish_query(q, res, err);
    else if (res != NULL)
        PQclear(res);
    while (sent != NULL) {
        store_query_t *next = sent->_next;
        finish_query(sent, NULL, err);
        sent = next;
    }
    if (!h2o_timeout_is_linked(&c->reconnect_timer))
        h2o_timeout_link(pool->loop, &pool->reconnect_timeout, &c->reconnect_timer);
    /* Nothing left to carry the queue: fail it now rather than let clients wait for a database that is gone. */
    if (!pool_any_alive(pool))
        pool_defer(pool);
}

/* One warning when the database becomes unreachable, not one per connection per retry. */
static void note_connect_failure(store_pool_t *pool, const char *why)
{
    if (!pool->outage) {
        LOG_WARN("cannot connect to the database (retrying every %d ms): %s", RECONNECT_DELAY_MS, why);
        pool->outage = true;
    } else {
        LOG_DEBUG("cannot connect to the database: %s", why);
    }
}

static void conn_connected(store_conn_t *c)
{
    if (c->pool->outage) {
        LOG_INFO("database connection restored");
        c->pool->outage = false;
    }
    PQsetnonblocking(c->pg, 1);
    c->state = CONN_PREPARING;
    c->prepared = 0;
    if (c->pool->nstmts == 0) {
        c->state = CONN_IDLE;
        pool_dispatch(c->pool);
    } else if (conn_send_prepare(c) != 0) {
        conn_drop(c, store_err_unavailable);
    }
}

static void conn_poll_connect(store_conn_t *c)
{
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_OK:
        if (conn_wrap_socket(c) != 0) {
            conn_drop(c, store_err_unavailable);
            return;
        }
        conn_connected(c);
        return;
    case PGRES_POLLING_FAILED:
        note_connect_failure(c->pool, PQerrorMessage(c->pg));
        conn_drop(c, store_err_unavailable);
        return;
    case PGRES_POLLING_WRITING:
        if (conn_wrap_socket(c) != 0) {
            conn_drop(c, store_err_unavailable);
            return;
        }
        conn_want_write(c);
        return;
    default: /* reading: the read callback is already armed */
        if (conn_wrap_socket(c) != 0)
            conn_drop(c, store_err_unavailable);
        return;
    }
}

static void conn_connect(store_conn_t *c)
{
    const char *const keywords[] = {"dbname", "options", NULL};
    const char *const values[] = {c->pool->dsn, c->pool->options, NULL};
    /* expand_dbname: the DSN is a connection string; "options" after it replaces the DSN's (kept in pool->options) */
    c->pg = PQconnectStartParams(keywords, values, 1);
    if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD) {
        note_connect_failure(c->pool, c->pg != NULL ? PQerrorMessage(c->pg) : "out of memory");
        conn_drop(c, store_err_unavailable);
        return;
    }
    c->state = CONN_CONNECTING;
    conn_poll_connect(c);
}

static void on_readable(h2o_socket_t *sock, const char *err)
{
    store_conn_t *c = sock->data;
    if (err != NULL) {
        conn_drop(c, store_err_unavailable);
        return;
    }
    if (c->state == CONN_CONNECTING) {
        conn_poll_connect(c);
        return;
    }
    if (!PQconsumeInput(c->pg)) {
        conn_drop(c, store_err_unavailable);
        return;
    }
    /* Drain complete results; a NULL result ends the current command. */
    while (c->state == CONN_BUSY || c->state == CONN_PREPARING) {
        if (PQisBusy(c->pg))
            break;
        PGresult *res = PQgetResult(c->pg);
        if (res != NULL && c->pipeline && PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
            PQclear(res); /* the end of a group of queries, not an answer to one */
            continue;
        }
        if (res != NULL) {
            if (c->state == CONN_PREPARING) {
                if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                    LOG_ERROR("preparing statement %s failed: %s", c->pool->stmts[c->prepared].name, PQresultErrorMessage(res));
                    PQclear(res);
                    conn_drop(c, store_err_unavailable);
                    return;
                }
                PQclear(res);
            } else {
                if (c->result != NULL)
                    PQclear(c->result);
                c->result = res;
            }
            continue;
        }
        if (c->state == CONN_PREPARING) {
            timer_stop(&c->query_timer);
            if (++c->prepared < c->pool->nstmts) {
                if (conn_send_prepare(c) != 0) {
                    conn_drop(c, store_err_unavailable);
                    return;
                }
            } else {
                c->state = CONN_IDLE;
                pool_dispatch(c->pool);
            }
        } else if (c->preparing_kept >= 0) {
            conn_kept_prepared(c);
        } else {
            conn_complete_current(c);
        }
        /* conn_complete_current may have dropped or reused the connection: re-check its state. */
        if (c->pg == NULL)
            return;
    }
    /* A pipelined connection whose session ended waited for its last Sync's answer. */
    if (c->pg != NULL && c->pipeline && c->state == CONN_IDLE && c->session == NULL && conn_release(c))
        pool_dispatch(c->pool);
    /* Idle connections only hear from the server when it is closing them. */
    if (c->pg != NULL) {
        PGnotify *n;
        while ((n = PQnotifies(c->pg)) != NULL)
            PQfreemem(n);
        if (PQstatus(c->pg) == CONNECTION_BAD)
            conn_drop(c, store_err_unavailable);
    }
}

static void on_query_timer(h2o_timeout_entry_t *entry)
{
    store_conn_t *c = H2O_STRUCT_FROM_MEMBER(store_conn_t, query_timer, entry);
    LOG_WARN("database query timed out; resetting the connection");
    conn_drop(c, store_err_timeout);
}

/* ---- the queue ---- */

static store_conn_t *pool_idle_conn(store_pool_t *pool)
{
    for (unsigned i = 0; i != pool->size; ++i)
        if (pool->conns[i].state == CONN_IDLE && pool->conns[i].session == NULL && !pool->conns[i].pipeline)
            return &pool->conns[i];
    return NULL;
}

/* Takes the oldest waiting query, or NULL. */
static store_query_t *queue_pop(store_pool_t *pool)
{
    store_query_t *q = pool->queue_head;
    if (q != NULL) {
        if ((pool->queue_head = q->_next) == NULL)
            pool->queue_tail = &pool->queue_head;
        q->_next = NULL;
        --pool->waiting;
    }
    return q;
}

/* Takes the oldest session waiting for a connection, or NULL. */
static store_session_t *sessions_pop(store_pool_t *pool)
{
    store_session_t *s = pool->sessions_head;
    if (s != NULL) {
        if ((pool->sessions_head = s->_next) == NULL)
            pool->sessions_tail = &pool->sessions_head;
        s->_next = NULL;
        --pool->waiting;
    }
    return s;
}

static void pool_dispatch(store_pool_t *pool)
{
    store_conn_t *c;
    while ((c = pool_idle_conn(pool)) != NULL) {
        store_session_t *s;
        store_query_t *q;
        /* Sessions first: a transaction holds locks, so it should not wait behind plain reads. */
        if ((s = sessions_pop(pool)) != NULL) {
            s->_conn = c;
            c->session = s;
            s->cb(s, NULL);
        } else if ((q = queue_pop(pool)) != NULL) {
            if (q->batch_stmt != NULL)
                q = batch_gather(pool, q);
            if (conn_send_query(c, q) != 0) {
                /* back to the head of the queue: another connection, or the outage handling, takes it */
                if (q->cb == on_batch_done) {
                    batch_requeue(pool, q);
                    continue;
                }
                if ((q->_next = pool->queue_head) == NULL)
                    pool->queue_tail = &q->_next;
                pool->queue_head = q;
                ++pool->waiting;
            }
        } else {
            break;
        }
    }
}

/* Runs on the next loop iteration: reports work that failed before reaching a connection. */
static void on_deferred(h2o_timeout_entry_t *entry)
{
    store_pool_t *pool = H2O_STRUCT_FROM_MEMBER(store_pool_t, deferred, entry);
    if (!pool_any_alive(pool)) {
        /* Everything waiting now fails: the database is down. */
        store_query_t *q;
        store_session_t *s;
        while ((q = queue_pop(pool)) != NULL)
            finish_query(q, NULL, store_err_unavailable);
        while ((s = sessions_pop(pool)) != NULL) {
            s->_pool = NULL;
            s->cb(s, store_err_unavailable);
        }
    }
    pool_dispatch(pool);
}

static void pool_defer(store_pool_t *pool)
{
    if (!h2o_timeout_is_linked(&pool->deferred))
        h2o_timeout_link(pool->loop, &pool->zero_timeout, &pool->deferred);
}

int store_pool_submit(store_pool_t *pool, store_query_t *query)
{
    if (pool->waiting >= pool->queue_limit)
        return -1;
    query->_next = NULL;
    *pool->queue_tail = query;
    pool->queue_tail = &query->_next;
    ++pool->waiting;
    pool_defer(pool);
    return 0;
}

int store_session_begin(store_pool_t *pool, store_session_t *session)
{
    if (pool->waiting >= pool->queue_limit)
        return -1;
    session->_pool = pool;
    session->_conn = NULL;
    session->_next = NULL;
    *pool->sessions_tail = session;
    pool->sessions_tail = &session->_next;
    ++pool->waiting;
    pool_defer(pool);
    return 0;
}

int store_session_pipeline(store_session_t *session)
{
    store_conn_t *c = session->_conn;
    if (c == NULL || c->state != CONN_IDLE || !PQenterPipelineMode(c->pg))
        return -1;
    c->pipeline = true;
    return 0;
}

int store_session_query(store_session_t *session, store_query_t *query)
{
    store_conn_t *c = session->_conn;
    if (c == NULL || (c->state != CONN_IDLE && !(c->pipeline && c->state == CONN_BUSY)))
        return -1;
    query->_next = NULL;
    return conn_send_query(c, query);
}

void store_session_end(store_session_t *session)
{
    store_conn_t *c = session->_conn;
    session->_conn = NULL;
    if (c == NULL)
        return;
    c->session = NULL;
    if (c->state == CONN_IDLE && !conn_release(c))
        return;
    pool_defer(c->pool);
}

/* ---- creation ---- */

/*
 * jit=off: our statements are index-bounded OLTP, and once a table is large enough for a generic
 * plan's estimate to pass jit_above_cost, PostgreSQL compiles it again at every execution (about 17 ms per sched_load
 * call at a million Slots and Appointments, for a statement that runs in 1 ms: docs/performance.md).
 */
char *store_session_options(const char *dsn)
{
    static const char ours[] = "-c jit=off";
    const char *theirs = getenv("PGOPTIONS");
    PQconninfoOption *parsed = PQconninfoParse(dsn, NULL); /* NULL for a bad DSN: connecting will say what is wrong */
    for (PQconninfoOption *o = parsed; o != NULL && o->keyword != NULL; ++o)
        if (strcmp(o->keyword, "options") == 0 && o->val != NULL)
            theirs = o->val;
    char *options = theirs != NULL && *theirs != '\0' ? util_asprintf("%s %s", ours, theirs) : util_xstrdup(ours);
    PQconninfoFree(parsed);
    return options;
}

store_pool_t *store_pool_create(h2o_loop_t *loop, const char *dsn, unsigned size, unsigned queue_limit, unsigned query_timeout_ms,
                                const store_stmt_t *stmts, size_t nstmts)
{
    store_pool_t *pool = util_xcalloc(1, sizeof(*pool));
    pool->loop = loop;
    pool->dsn = util_xstrdup(dsn);
    pool->options = store_session_options(dsn);
    pool->size = size;
    pool->queue_limit = queue_limit;
    pool->stmts = stmts;
    pool->nstmts = nstmts;
    pool->queue_tail = &pool->queue_head;
    pool->sessions_tail = &pool->sessions_head;
    h2o_timeout_init(loop, &pool->query_timeout, query_timeout_ms);
    h2o_timeout_init(loop, &pool->reconnect_timeout, RECONNECT_DELAY_MS);
    h2o_timeout_init(loop, &pool->zero_timeout, 0);
    pool->deferred.cb = on_deferred;
    pool->conns = util_xcalloc(size, sizeof(*pool->conns));
    for (unsigned i = 0; i != size; ++i) {
        store_conn_t *c = &pool->conns[i];
        c->pool = pool;
        c->pg_fd = -1;
        c->preparing_kept = -1;
        c->sent_tail = &c->sent_head;
        c->sync_due.cb = on_sync_due;
        c->query_timer.cb = on_query_timer;
        c->reconnect_timer.cb = on_reconnect_timer;
        conn_connect(c);
    }
    return pool;
}

void store_pool_destroy(store_pool_t *pool)
{
    pool->destroying = true;
    for (unsigned i = 0; i != pool->size; ++i) {
        store_conn_t *c = &pool->conns[i];
        timer_stop(&c->reconnect_timer);
        conn_drop(c, store_err_unavailable);
    }
    timer_stop(&pool->deferred);
    h2o_timeout_dispose(pool->loop, &pool->query_timeout);
    h2o_timeout_dispose(pool->loop, &pool->reconnect_timeout);
    h2o_timeout_dispose(pool->loop, &pool->zero_timeout);
    free(pool->conns);
    free(pool->dsn);
    free(pool->options);
    free(pool);
}
