/*
 * The websocket channel: `bind <id>` / `bound <id>`, then `ping <id>` (and the change as a history Bundle when the
 * Subscription has a payload). Each loop keeps its own connections; a short timer compares the process's outbox head
 * with each binding's place and runs the binding's matcher (criteria plus the token's row rules) on the loop's pool.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <h2o/websocket.h>
#include "fhir/interaction.h"
#include "subs/subs.h"
#include "util/log.h"
#include "util/time.h"

#define MODULE_NAME "subs/websocket.c"

#define TICK_MS 5
#define MAX_COMMAND 256
#define MAX_BINDINGS 64 /* per connection */

typedef struct st_ws_conn_t ws_conn_t;

typedef struct st_ws_binding_t {
    h2o_linklist_t link; /* in ws_conn_t.bindings */
    ws_conn_t *conn;
    char *sub_id;
    bool payload;
    subs_matcher_t matcher;
    char *criteria;
    const fhir_access_t *access; /* the token's row rules (owned by conn->auth) */
    int64_t cursor;
    int64_t end_at; /* Subscription.end (Unix seconds; 0: none) */
    bool busy;     /* a query is out */
    bool unbound;  /* freed when its query returns */
    bool stale;    /* the Subscription may have changed: look again before matching */
    const char *params[1];
    store_query_t q;
} ws_binding_t;

struct st_ws_conn_t {
    h2o_linklist_t link; /* in the loop's list */
    h2o_websocket_conn_t *ws; /* NULL once closed */
    h2o_loop_t *loop;
    store_pool_t *pool;
    subs_ws_auth_t auth;
    h2o_linklist_t bindings;
    size_t nbindings;
    unsigned refs; /* the socket and every query out */
    uint64_t last_heartbeat;
    bool expired; /* closing because the token expired */
};

/* the bind lookup */
typedef struct st_ws_bind_t {
    ws_conn_t *conn;
    char *sub_id;
    const char *params[1];
    store_query_t q;
} ws_bind_t;

/* per loop thread */
static __thread struct {
    h2o_linklist_t conns;
    bool initialised;
    unsigned generation; /* subs_generation() when the bindings were last checked */
    h2o_timeout_t timeout;
    h2o_timeout_entry_t tick;
    h2o_loop_t *loop;
} L;

static void on_tick(h2o_timeout_entry_t *entry);

static void binding_free(ws_binding_t *b)
{
    subs_matcher_dispose(&b->matcher);
    free(b->sub_id);
    free(b->criteria);
    free(b);
}

static void conn_release(ws_conn_t *c)
{
    if (--c->refs != 0)
        return;
    while (!h2o_linklist_is_empty(&c->bindings)) {
        ws_binding_t *b = H2O_STRUCT_FROM_MEMBER(ws_binding_t, link, c->bindings.next);
        h2o_linklist_unlink(&b->link);
        binding_free(b);
    }
    if (c->auth.release != NULL)
        c->auth.release(c->auth.ctx);
    free(c);
}

static void send_text(ws_conn_t *c, const char *text, size_t len)
{
    if (c->ws == NULL)
        return;
    struct wslay_event_msg msg = {WSLAY_TEXT_FRAME, (const uint8_t *)text, len};
    wslay_event_queue_msg(c->ws->ws_ctx, &msg);
}

static void sendf(ws_conn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sendf(ws_conn_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *text = util_vasprintf(fmt, ap);
    va_end(ap);
    send_text(c, text, strlen(text));
    free(text);
}

/* Sends what is queued; may close the connection (and free it): touch nothing after. */
static void flush(ws_conn_t *c)
{
    if (c->ws != NULL && c->ws->sock != NULL)
        h2o_websocket_proceed(c->ws);
}

static void schedule_tick(void)
{
    if (!h2o_timeout_is_linked(&L.tick) && !h2o_linklist_is_empty(&L.conns))
        h2o_timeout_link(L.loop, &L.timeout, &L.tick);
}

static void loop_init(h2o_loop_t *loop)
{
    if (L.initialised)
        return;
    h2o_linklist_init_anchor(&L.conns);
    h2o_timeout_init(loop, &L.timeout, TICK_MS);
    L.tick = (h2o_timeout_entry_t){.cb = on_tick};
    L.loop = loop;
    L.initialised = true;
}

/* ---- notifications ---- */

static void send_change(ws_conn_t *c, ws_binding_t *b, PGresult *res, int row)
{
    sendf(c, "ping %s", b->sub_id);
    if (!b->payload)
        return;
    const char *type = PQgetvalue(res, row, 1), *id = PQgetvalue(res, row, 2), *version = PQgetvalue(res, row, 3),
               *event = PQgetvalue(res, row, 4);
    bool deleted = strcmp(event, "delete") == 0;
    util_buf_t buf;
    util_buf_init(&buf);
    char now[40], bundle_id[40];
    util_time_format_now(now, sizeof(now));
    snprintf(bundle_id, sizeof(bundle_id), "%s-%s", b->sub_id, PQgetvalue(res, row, 0));
    char *full_url = util_asprintf("%s/%s/%s", fhir_base_url, type, id), *url = util_asprintf("%s/%s", type, id),
         *etag = util_asprintf("W/\"%s\"", version);
    json_t *entry = json_pack("{s:s, s:{s:s, s:s}, s:{s:s, s:s}}", "fullUrl", full_url, "request", "method",
                              deleted ? "DELETE" : strcmp(event, "create") == 0 ? "POST" : "PUT", "url", url, "response", "status",
                              deleted ? "204" : strcmp(event, "create") == 0 ? "201" : "200", "etag", etag);
    free(full_url);
    free(url);
    free(etag);
    char *head = json_dumps(entry, JSON_COMPACT);
    json_decref(entry);
    /* the stored body is spliced in as it is (no re-serialisation) */
    util_buf_printf(&buf, "{\"resourceType\":\"Bundle\",\"id\":\"%s\",\"meta\":{\"lastUpdated\":\"%s\"},\"type\":\"history\",\"entry\":[",
                    bundle_id, now);
    /* a change that took the resource out of the listener's sight is announced without its content */
    bool visible = PQgetvalue(res, row, 6)[0] == 't';
    if (!deleted && visible && !PQgetisnull(res, row, 5)) {
        util_buf_append(&buf, head, strlen(head) - 1);
        util_buf_puts(&buf, ",\"resource\":");
        util_buf_puts(&buf, PQgetvalue(res, row, 5));
        util_buf_puts(&buf, "}");
    } else {
        util_buf_puts(&buf, head);
    }
    util_buf_puts(&buf, "]}");
    send_text(c, buf.base, buf.len);
    free(head);
    util_buf_dispose(&buf);
}

/* A binding's query came back: NULL when the binding was unbound meanwhile (it is freed then), else the binding. */
static ws_binding_t *binding_returned(store_query_t *q)
{
    ws_binding_t *b = H2O_STRUCT_FROM_MEMBER(ws_binding_t, q, q);
    b->busy = false;
    if (!b->unbound)
        return b;
    ws_conn_t *c = b->conn;
    binding_free(b);
    conn_release(c);
    return NULL;
}

/* A query of `c` is done: drop its reference and send what it queued (unless that was the last reference). */
static void query_done(ws_conn_t *c)
{
    schedule_tick();
    bool last = c->refs == 1;
    conn_release(c);
    if (!last)
        flush(c);
}

static void on_matched(store_query_t *q, PGresult *res, const char *err)
{
    ws_binding_t *b = binding_returned(q);
    if (b == NULL)
        return;
    ws_conn_t *c = b->conn;
    if (err == NULL && c->ws != NULL) {
        int n = PQntuples(res);
        for (int i = 0; i != n; ++i)
            send_change(c, b, res, i);
        int64_t to = strtoll(b->matcher.params[b->matcher.nparams - 3], NULL, 10);
        b->cursor = n == SUBS_MATCH_BATCH ? strtoll(PQgetvalue(res, n - 1, 0), NULL, 10) : to;
    } else if (err != NULL) {
        LOG_WARN("subscriptions: matching for a websocket binding of Subscription/%s failed: %s", b->sub_id,
                 err == store_err_query ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : err);
    }
    query_done(c);
}

/* Ends a binding the server no longer serves, telling the client why. */
static void binding_drop(ws_conn_t *c, ws_binding_t *b, const char *why)
{
    sendf(c, "error %s %s; unbound", b->sub_id, why);
    h2o_linklist_unlink(&b->link);
    --c->nbindings;
    if (b->busy)
        b->unbound = true;
    else
        binding_free(b);
}

/* A Subscription's state and a delivery position: `head` is the SQL of that position. */
#define LOOKUP_SQL_WITH(head)                                                                                                      \
    "SELECT criteria, status, channel_type, coalesce(payload, ''), " head ","                                                      \
    " coalesce(extract(epoch FROM end_at)::bigint, 0) FROM sub_state WHERE id = $1"
#define LOOKUP_SQL LOOKUP_SQL_WITH("(SELECT pos FROM sub_head)")
/* A bind starts after every change committed before it: those the dispatcher has not sequenced yet are sequenced
 * now (sub_sequence), so that none of them is delivered to the new binding as if it came after. */
#define BIND_SQL LOOKUP_SQL_WITH("sub_sequence()")

/* Why a looked-up Subscription cannot be listened to, or NULL. */
static const char *unservable(PGresult *res, char *buf, size_t len)
{
    if (PQntuples(res) == 0)
        return "no such Subscription";
    if (strcmp(PQgetvalue(res, 0, 2), "websocket") != 0)
        return "not a websocket Subscription";
    if (strcmp(PQgetvalue(res, 0, 1), "active") != 0) {
        snprintf(buf, len, "the Subscription is %s, not active", PQgetvalue(res, 0, 1));
        return buf;
    }
    int64_t end = strtoll(PQgetvalue(res, 0, 5), NULL, 10);
    if (end != 0 && (int64_t)time(NULL) >= end)
        return "the Subscription has ended";
    return NULL;
}

/* The Subscription was written: still servable? New criteria rebuild the matcher (from the same place on). */
static void on_refreshed(store_query_t *q, PGresult *res, const char *err)
{
    ws_binding_t *b = binding_returned(q);
    if (b == NULL)
        return;
    ws_conn_t *c = b->conn;
    if (err == NULL && c->ws != NULL) {
        char buf[96];
        const char *why = unservable(res, buf, sizeof(buf));
        if (why != NULL) {
            binding_drop(c, b, why);
        } else {
            b->stale = false;
            b->payload = PQgetvalue(res, 0, 3)[0] != '\0';
            b->end_at = strtoll(PQgetvalue(res, 0, 5), NULL, 10);
            const char *criteria = PQgetvalue(res, 0, 0);
            if (strcmp(criteria, b->criteria) != 0) {
                subs_matcher_t m;
                fhir_outcome_t oo;
                fhir_outcome_init(&oo);
                if (subs_matcher_init(&m, criteria, b->access, &oo) == 0) {
                    subs_matcher_dispose(&b->matcher);
                    b->matcher = m;
                    free(b->criteria);
                    b->criteria = util_xstrdup(criteria);
                } else {
                    binding_drop(c, b, "its new criteria cannot be used");
                }
                fhir_outcome_dispose(&oo);
            }
        }
    }
    query_done(c);
}

static void refresh_binding(ws_conn_t *c, ws_binding_t *b)
{
    b->params[0] = b->sub_id;
    b->q = (store_query_t){.sql = LOOKUP_SQL, .nparams = 1, .params = b->params, .cb = on_refreshed};
    if (store_pool_submit(c->pool, &b->q) != 0)
        return;
    b->busy = true;
    ++c->refs;
}

static void run_binding(ws_conn_t *c, ws_binding_t *b, int64_t head)
{
    subs_matcher_range(&b->matcher, b->cursor, head, b->payload);
    b->q = (store_query_t){.sql = b->matcher.sql.base, .nparams = b->matcher.nparams,
                           .params = (const char *const *)b->matcher.params, .cb = on_matched};
    if (store_pool_submit(c->pool, &b->q) != 0)
        return; /* the pool is full: the next tick tries again */
    b->busy = true;
    ++c->refs;
}

static void on_tick(h2o_timeout_entry_t *entry)
{
    (void)entry;
    int64_t head = subs_head(), wall = (int64_t)time(NULL);
    uint64_t now = util_time_monotonic_ms();
    unsigned generation = subs_generation();
    bool changed = generation != L.generation;
    L.generation = generation;
    for (h2o_linklist_t *l = L.conns.next; l != &L.conns; l = l->next) {
        ws_conn_t *c = H2O_STRUCT_FROM_MEMBER(ws_conn_t, link, l);
        if (c->auth.expires != 0 && wall >= c->auth.expires && c->ws != NULL && c->ws->sock != NULL && !c->expired) {
            /* what the token allowed ends with it: reconnect with a fresh one (the reason is in the close frame, which
             * wslay would send ahead of any text frame) */
            wslay_event_queue_close(c->ws->ws_ctx, 1008, (const uint8_t *)"token expired", 13);
            c->expired = true;
            continue;
        }
        for (h2o_linklist_t *bl = c->bindings.next; bl != &c->bindings;) {
            ws_binding_t *b = H2O_STRUCT_FROM_MEMBER(ws_binding_t, link, bl);
            bl = bl->next; /* b may be dropped */
            b->stale |= changed;
            if (b->end_at != 0 && wall >= b->end_at)
                binding_drop(c, b, "the Subscription has ended");
            else if (b->busy)
                continue;
            else if (b->stale)
                refresh_binding(c, b);
            else if (b->cursor < head)
                run_binding(c, b, head);
        }
        if (now - c->last_heartbeat >= (uint64_t)subs_settings.heartbeat_seconds * 1000 && c->ws != NULL && c->ws->sock != NULL) {
            struct wslay_event_msg msg = {WSLAY_PING, (const uint8_t *)"", 0};
            wslay_event_queue_msg(c->ws->ws_ctx, &msg);
            c->last_heartbeat = now;
        }
    }
    /* flush after the walk: a flush may close (and unlink) a connection */
    for (h2o_linklist_t *l = L.conns.next; l != &L.conns;) {
        ws_conn_t *c = H2O_STRUCT_FROM_MEMBER(ws_conn_t, link, l);
        l = l->next;
        ++c->refs;
        flush(c);
        conn_release(c);
    }
    schedule_tick();
}

/* ---- commands ---- */

static bool valid_id(const char *s, size_t len)
{
    if (len == 0 || len > 64)
        return false;
    for (size_t i = 0; i != len; ++i)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '.'))
            return false;
    return true;
}

static ws_binding_t *find_binding(ws_conn_t *c, const char *id)
{
    for (h2o_linklist_t *l = c->bindings.next; l != &c->bindings; l = l->next) {
        ws_binding_t *b = H2O_STRUCT_FROM_MEMBER(ws_binding_t, link, l);
        if (strcmp(b->sub_id, id) == 0)
            return b;
    }
    return NULL;
}

static void on_bind_lookup(store_query_t *q, PGresult *res, const char *err)
{
    ws_bind_t *job = H2O_STRUCT_FROM_MEMBER(ws_bind_t, q, q);
    ws_conn_t *c = job->conn;
    if (c->ws == NULL)
        goto Exit;
    char buf[96];
    const char *why = err == NULL ? unservable(res, buf, sizeof(buf)) : NULL;
    if (err != NULL) {
        sendf(c, "error %s the database is not available; try again", job->sub_id);
    } else if (why != NULL) {
        sendf(c, "error %s %s", job->sub_id, why);
    } else if (find_binding(c, job->sub_id) != NULL) {
        sendf(c, "bound %s", job->sub_id);
    } else if (c->nbindings == MAX_BINDINGS) {
        sendf(c, "error %s this connection has %d bindings already", job->sub_id, MAX_BINDINGS);
    } else {
        const char *criteria = PQgetvalue(res, 0, 0), *type_end = criteria + strcspn(criteria, "?");
        char type[64], why[256] = "";
        snprintf(type, sizeof(type), "%.*s", (int)(type_end - criteria < 63 ? type_end - criteria : 63), criteria);
        const fhir_access_t *access = NULL;
        fhir_outcome_t oo;
        fhir_outcome_init(&oo);
        ws_binding_t *b = util_xcalloc(1, sizeof(*b));
        if (c->auth.may_search != NULL && !c->auth.may_search(c->auth.ctx, type, &access, why, sizeof(why))) {
            sendf(c, "error %s forbidden: %s", job->sub_id, why);
            free(b);
        } else if (subs_matcher_init(&b->matcher, criteria, access, &oo) != 0) {
            sendf(c, "error %s criteria: %s", job->sub_id, oo.count != 0 ? oo.issues[0].diagnostics : "not a valid search");
            free(b);
        } else {
            b->conn = c;
            b->sub_id = util_xstrdup(job->sub_id);
            b->criteria = util_xstrdup(criteria);
            b->access = access;
            b->payload = PQgetvalue(res, 0, 3)[0] != '\0';
            b->cursor = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
            b->end_at = strtoll(PQgetvalue(res, 0, 5), NULL, 10);
            h2o_linklist_insert(&c->bindings, &b->link);
            ++c->nbindings;
            sendf(c, "bound %s", job->sub_id);
        }
        fhir_outcome_dispose(&oo);
    }
Exit:
    free(job->sub_id);
    free(job);
    query_done(c);
}

static void command(ws_conn_t *c, const char *text, size_t len)
{
    const char *sp = memchr(text, ' ', len);
    size_t verb = sp != NULL ? (size_t)(sp - text) : len;
    const char *arg = sp != NULL ? sp + 1 : "";
    size_t arglen = sp != NULL ? len - verb - 1 : 0;
    while (arglen != 0 && (arg[arglen - 1] == '\n' || arg[arglen - 1] == '\r' || arg[arglen - 1] == ' '))
        --arglen;
    if (!valid_id(arg, arglen)) {
        sendf(c, "error - expected \"bind <subscription id>\" or \"unbind <subscription id>\"");
        return;
    }
    char *id = util_xstrndup(arg, arglen);
    if (util_str_eq(text, verb, "bind")) {
        ws_bind_t *job = util_xcalloc(1, sizeof(*job));
        job->conn = c;
        job->sub_id = id;
        job->params[0] = job->sub_id;
        job->q = (store_query_t){.sql = BIND_SQL, .nparams = 1, .params = job->params, .cb = on_bind_lookup};
        if (store_pool_submit(c->pool, &job->q) != 0) {
            sendf(c, "error %s the server is busy; try again", id);
            free(id);
            free(job);
            return;
        }
        ++c->refs;
        return;
    }
    if (util_str_eq(text, verb, "unbind")) {
        ws_binding_t *b = find_binding(c, id);
        if (b != NULL) {
            h2o_linklist_unlink(&b->link);
            --c->nbindings;
            if (b->busy)
                b->unbound = true; /* freed when its query returns */
            else
                binding_free(b);
        }
        sendf(c, "unbound %s", id);
    } else {
        sendf(c, "error %s unknown command; use bind or unbind", id);
    }
    free(id);
}

static void on_ws_message(h2o_websocket_conn_t *ws, const struct wslay_event_on_msg_recv_arg *arg)
{
    ws_conn_t *c = ws->data;
    if (arg == NULL) {
        /* closed (by the peer, an error, or after our close frame went out) */
        h2o_websocket_close(ws);
        c->ws = NULL;
        h2o_linklist_unlink(&c->link);
        conn_release(c);
        return;
    }
    if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        /* answer with the peer's own code (wslay's automatic answer carries none) */
        wslay_event_queue_close(ws->ws_ctx, arg->status_code != 0 ? arg->status_code : 1000, NULL, 0);
        return;
    }
    if (arg->opcode != WSLAY_TEXT_FRAME)
        return; /* pongs, binary frames: nothing to do (wslay answers pings itself) */
    if (arg->msg_length > MAX_COMMAND) {
        sendf(c, "error - command too long");
        return;
    }
    command(c, (const char *)arg->msg, arg->msg_length);
}

/* ---- upgrade ---- */

bool subs_ws_is_upgrade(h2o_req_t *req)
{
    const char *key;
    return h2o_is_websocket_handshake(req, &key) == 0 && key != NULL;
}

int subs_ws_accept(h2o_req_t *req, store_pool_t *pool, subs_ws_auth_t *auth)
{
    const char *key;
    if (req->version >= 0x200 || h2o_is_websocket_handshake(req, &key) != 0 || key == NULL)
        return -1;
    loop_init(req->conn->ctx->loop);
    ws_conn_t *c = util_xcalloc(1, sizeof(*c));
    c->loop = req->conn->ctx->loop;
    c->pool = pool;
    c->auth = *auth;
    c->refs = 1;
    c->last_heartbeat = util_time_monotonic_ms();
    h2o_linklist_init_anchor(&c->bindings);
    h2o_linklist_insert(&L.conns, &c->link);
    c->ws = h2o_upgrade_to_websocket(req, key, c, on_ws_message);
    schedule_tick();
    return 0;
}

void subs_ws_loop_shutdown(h2o_loop_t *loop)
{
    if (!L.initialised)
        return;
    for (h2o_linklist_t *l = L.conns.next; l != &L.conns;) {
        ws_conn_t *c = H2O_STRUCT_FROM_MEMBER(ws_conn_t, link, l);
        l = l->next;
        if (c->ws != NULL && c->ws->sock != NULL) {
            wslay_event_queue_close(c->ws->ws_ctx, 1001, (const uint8_t *)"server shutting down", 20);
            ++c->refs;
            flush(c);
            conn_release(c);
        }
    }
    /* give the close frames a moment, then drop what is left */
    uint64_t deadline = util_time_monotonic_ms() + 500;
    while (!h2o_linklist_is_empty(&L.conns) && util_time_monotonic_ms() < deadline)
        h2o_evloop_run(loop, 10);
    while (!h2o_linklist_is_empty(&L.conns)) {
        ws_conn_t *c = H2O_STRUCT_FROM_MEMBER(ws_conn_t, link, L.conns.next);
        h2o_linklist_unlink(&c->link);
        if (c->ws != NULL) {
            h2o_websocket_close(c->ws);
            c->ws = NULL;
        }
        conn_release(c);
    }
    if (h2o_timeout_is_linked(&L.tick))
        h2o_timeout_unlink(&L.tick);
    h2o_timeout_dispose(loop, &L.timeout);
    L.initialised = false;
}
