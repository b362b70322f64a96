/*
 * Outbox sequencing and rest-hook delivery, on threads of their own with blocking connections (the event loops never
 * wait for an endpoint).
 *
 * The listener thread LISTENs for commits that recorded changes, gives them their positions (sub_sequence()) and
 * publishes the newest position to this process: websocket listeners in the loops poll subs_head(), the delivery
 * threads wait on a condition variable. Every instance does this; the sub_head row lock makes them take turns.
 *
 * Rest-hook subscriptions are split into SHARDS by a hash of their id. Each delivery thread owns one shard while it
 * holds that shard's advisory lock, so one instance at a time delivers a subscription (in order) and another takes over
 * when it dies. Per subscription the thread runs the criteria over the outbox from its cursor (pipelined, prepared),
 * POSTs what matched one by one, and moves the cursor; a failure is retried with backoff, and after max_failures in a
 * row the Subscription is written with status error.
 */
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libpq-fe.h>
#include "fhir/interaction.h"
#include "fhir/json.h"
#include "fhir/search.h"
#include "subs/subs.h"
#include "util/httpc.h"
#include "util/log.h"
#include "util/time.h"

#define MODULE_NAME "subs/dispatch.c"

#define SHARDS 4
#define LOCK_CLASS 0x73756273 /* "subs": first key of the shards' advisory locks */
#define IDLE_POLL_MS 1000     /* a missed notification costs at most this */
#define LOCK_RETRY_MS 2000
#define RECONNECT_MS 1000
#define PRUNE_EVERY_MS 60000
#define CURSOR_SAVE_EVERY_MS 5000
#define RELOAD_EVERY_MS 10000 /* also without a notification (one may be lost while the listener reconnects) */
#define PIPELINE_MAX 64
#define MAX_ERROR_TEXT 300

static struct {
    pthread_t listener, shards[SHARDS];
    bool started;
    atomic_bool stop;
    atomic_int_fast64_t head;
    atomic_uint generation; /* bumped whenever a Subscription changed */
    pthread_mutex_t lock;
    pthread_cond_t cond;
} D = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

int64_t subs_head(void)
{
    return atomic_load(&D.head);
}

unsigned subs_generation(void)
{
    return atomic_load(&D.generation);
}

static void wake_all(void)
{
    pthread_mutex_lock(&D.lock);
    pthread_cond_broadcast(&D.cond);
    pthread_mutex_unlock(&D.lock);
}

#define ANY_HEAD INT64_MIN /* wait_for_news: a moving head does not end the wait */

/* Sleeps up to `ms` unless the head (unless ANY_HEAD) or the subscriptions change, or stop is asked. */
static void wait_for_news(int64_t head_seen, unsigned gen_seen, unsigned ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec += 1;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&D.lock);
    while (!atomic_load(&D.stop) && (head_seen == ANY_HEAD || atomic_load(&D.head) == head_seen) &&
           atomic_load(&D.generation) == gen_seen)
        if (pthread_cond_timedwait(&D.cond, &D.lock, &until) != 0)
            break;
    pthread_mutex_unlock(&D.lock);
}

static void publish_head(int64_t pos)
{
    int64_t cur = atomic_load(&D.head);
    while (pos > cur && !atomic_compare_exchange_weak(&D.head, &cur, pos))
        ;
    if (pos > cur)
        wake_all();
}

static PGconn *connect_db(void)
{
    while (!atomic_load(&D.stop)) {
        PGconn *c = PQconnectdb(subs_settings.dsn);
        if (PQstatus(c) == CONNECTION_OK) {
            /* a lost cursor update means a repeated notification, which at-least-once allows */
            PQclear(PQexec(c, "SET synchronous_commit TO off"));
            return c;
        }
        LOG_WARN("subscriptions: cannot connect to the database; retrying");
        PQfinish(c);
        wait_for_news(ANY_HEAD, atomic_load(&D.generation), RECONNECT_MS);
    }
    return NULL;
}

/* A one-value query; NULL on failure (logged). The caller PQclears. */
static PGresult *query(PGconn *c, const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        LOG_WARN("subscriptions: %s", PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                                                                                       : PQerrorMessage(c));
        PQclear(res);
        return NULL;
    }
    return res;
}

/* ---- the listener / sequencer ---- */

static void *listener_main(void *arg)
{
    (void)arg;
    PGconn *c = NULL;
    uint64_t last_prune = 0;
    while (!atomic_load(&D.stop)) {
        if (c == NULL || PQstatus(c) != CONNECTION_OK) {
            if (c != NULL)
                PQfinish(c);
            if ((c = connect_db()) == NULL)
                break;
            PQclear(PQexec(c, "LISTEN fhirsched_change"));
            PQclear(PQexec(c, "LISTEN fhirsched_head"));
            PQclear(PQexec(c, "LISTEN fhirsched_subs"));
            atomic_fetch_add(&D.generation, 1);
            wake_all();
        }
        PGresult *res = query(c, "SELECT sub_sequence()", 0, NULL);
        if (res != NULL) {
            publish_head(strtoll(PQgetvalue(res, 0, 0), NULL, 10));
            PQclear(res);
        }
        uint64_t now = util_time_monotonic_ms();
        if (now - last_prune >= PRUNE_EVERY_MS) {
            char hours[16];
            snprintf(hours, sizeof(hours), "%u", subs_settings.retention_hours);
            const char *params[] = {hours};
            res = query(c, "SELECT sub_prune(make_interval(hours => $1::integer), interval '10 minutes')", 1, params);
            if (res != NULL)
                PQclear(res);
            last_prune = now;
        }
        /* wait for a notification; sequencing again after a quiet second also covers a lost one */
        bool changed = false;
        while (!changed && !atomic_load(&D.stop) && PQstatus(c) == CONNECTION_OK) {
            struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
            int r = poll(&p, 1, IDLE_POLL_MS);
            if (r <= 0)
                break;
            if (!PQconsumeInput(c))
                break;
            PGnotify *n;
            while ((n = PQnotifies(c)) != NULL) {
                if (strcmp(n->relname, "fhirsched_change") == 0) {
                    changed = true;
                } else if (strcmp(n->relname, "fhirsched_head") == 0) {
                    publish_head(strtoll(n->extra, NULL, 10));
                } else if (strcmp(n->relname, "fhirsched_subs") == 0) {
                    atomic_fetch_add(&D.generation, 1);
                    wake_all();
                }
                PQfreemem(n);
            }
        }
    }
    if (c != NULL)
        PQfinish(c);
    return NULL;
}

/* ---- rest-hook delivery ---- */

typedef struct st_sub_t {
    char *id;
    int version;
    char *criteria, *endpoint, *status;
    bool payload;
    char **headers; /* stored form */
    size_t nheaders;
    int64_t cursor, saved_cursor;
    unsigned failures;
    uint64_t due; /* monotonic ms of the next attempt */
    int64_t end_at; /* Subscription.end (Unix seconds; 0: none) */
    subs_matcher_t matcher;
    bool compiled;  /* matcher built; when false, `problem` says why */
    char *problem;
    char stmt[32];  /* prepared on the shard's connection ("" when not) */
    PGresult *pending; /* matched rows waiting for delivery */
} sub_t;

typedef struct st_shard_t {
    int index;
    PGconn *c;
    bool locked;
    sub_t *subs;
    size_t nsubs;
    unsigned stmt_counter;
    uint64_t last_cursor_save;
    uint64_t loaded_at;
} shard_t;

static void sub_dispose(shard_t *sh, sub_t *s, bool deallocate)
{
    if (deallocate && s->stmt[0] != '\0' && sh->c != NULL) {
        char *sql = util_asprintf("DEALLOCATE %s", s->stmt); /* our own generated name, not user input */
        PQclear(PQexec(sh->c, sql));
        free(sql);
    }
    if (s->compiled)
        subs_matcher_dispose(&s->matcher);
    for (size_t i = 0; i != s->nheaders; ++i)
        free(s->headers[i]);
    free(s->headers);
    free(s->id);
    free(s->criteria);
    free(s->endpoint);
    free(s->status);
    free(s->problem);
    if (s->pending != NULL)
        PQclear(s->pending);
    memset(s, 0, sizeof(*s));
}

static void shard_forget(shard_t *sh, bool deallocate)
{
    for (size_t i = 0; i != sh->nsubs; ++i)
        sub_dispose(sh, &sh->subs[i], deallocate);
    free(sh->subs);
    sh->subs = NULL;
    sh->nsubs = 0;
}

/* Reloads the shard's subscriptions, keeping prepared matchers whose criteria did not change. */
static int shard_load(shard_t *sh)
{
    char shard[8], shards[8];
    snprintf(shard, sizeof(shard), "%d", sh->index);
    snprintf(shards, sizeof(shards), "%d", SHARDS);
    const char *params[] = {shard, shards};
    PGresult *res = query(sh->c,
                          "SELECT id, version_id, criteria, status, endpoint, coalesce(payload, ''), headers, cursor, failures,"
                          " greatest(0, extract(epoch FROM next_attempt - now()) * 1000)::bigint,"
                          " coalesce(extract(epoch FROM end_at)::bigint, 0)"
                          " FROM sub_state WHERE channel_type = 'rest-hook' AND status IN ('requested', 'active')"
                          " AND mod(abs(hashtext(id)::bigint), $2::bigint) = $1::bigint"
                          " ORDER BY id",
                          2, params);
    if (res == NULL)
        return -1;
    int n = PQntuples(res);
    sub_t *subs = util_xcalloc((size_t)n + 1, sizeof(*subs));
    uint64_t now = util_time_monotonic_ms();
    for (int i = 0; i != n; ++i) {
        sub_t *s = &subs[i];
        const char *criteria = PQgetvalue(res, i, 2);
        /* keep a prepared matcher of the same criteria */
        for (size_t j = 0; j != sh->nsubs; ++j) {
            sub_t *old = &sh->subs[j];
            if (old->id != NULL && strcmp(old->id, PQgetvalue(res, i, 0)) == 0 && old->criteria != NULL && strcmp(old->criteria, criteria) == 0) {
                s->matcher = old->matcher;
                s->compiled = old->compiled;
                s->problem = old->problem;
                memcpy(s->stmt, old->stmt, sizeof(s->stmt));
                old->compiled = false;
                old->problem = NULL;
                old->stmt[0] = '\0';
                break;
            }
        }
        s->id = util_xstrdup(PQgetvalue(res, i, 0));
        s->version = atoi(PQgetvalue(res, i, 1));
        s->criteria = util_xstrdup(criteria);
        s->status = util_xstrdup(PQgetvalue(res, i, 3));
        s->endpoint = PQgetisnull(res, i, 4) ? NULL : util_xstrdup(PQgetvalue(res, i, 4));
        s->payload = PQgetvalue(res, i, 5)[0] != '\0';
        subs_text_array_parse(PQgetvalue(res, i, 6), &s->headers, &s->nheaders);
        s->cursor = s->saved_cursor = strtoll(PQgetvalue(res, i, 7), NULL, 10);
        s->failures = (unsigned)atoi(PQgetvalue(res, i, 8));
        s->due = now + (uint64_t)strtoll(PQgetvalue(res, i, 9), NULL, 10);
        s->end_at = strtoll(PQgetvalue(res, i, 10), NULL, 10);
        if (!s->compiled && s->problem == NULL) {
            fhir_outcome_t oo;
            fhir_outcome_init(&oo);
            if (subs_matcher_init(&s->matcher, criteria, NULL, &oo) == 0) {
                s->compiled = true;
            } else {
                s->problem = util_asprintf("criteria: %s", oo.count != 0 ? oo.issues[0].diagnostics : "not a valid search");
            }
            fhir_outcome_dispose(&oo);
        }
        if (s->compiled && s->stmt[0] == '\0') {
            snprintf(s->stmt, sizeof(s->stmt), "subs_m%u", ++sh->stmt_counter);
            PGresult *p = PQprepare(sh->c, s->stmt, s->matcher.sql.base, s->matcher.nparams, NULL);
            if (PQresultStatus(p) != PGRES_COMMAND_OK) {
                LOG_WARN("subscriptions: cannot prepare the matcher of Subscription/%s: %s", s->id,
                         PQresultErrorField(p, PG_DIAG_MESSAGE_PRIMARY));
                s->stmt[0] = '\0';
            }
            PQclear(p);
        }
    }
    PQclear(res);
    shard_forget(sh, true);
    sh->subs = subs;
    sh->nsubs = (size_t)n;
    return 0;
}

/* Writes a new version of the Subscription with `status` (and `error` text, or none). */
/* Writes a new version of the Subscription with `status` (and `error` text, or none). 0, or -1 when it was not written:
 * the attempt waits a while (a reload after a client's change decides what happens next). */
static int write_status(shard_t *sh, sub_t *s, const char *status, const char *error)
{
    int ret = -1;
    s->due = util_time_monotonic_ms() + RECONNECT_MS;
    const char *params[] = {s->id};
    PGresult *res = query(sh->c, "SELECT version_id, body FROM resource WHERE res_type = 'Subscription' AND id = $1 AND NOT deleted", 1,
                          params);
    if (res == NULL)
        return -1;
    json_t *doc = NULL;
    if (PQntuples(res) == 1 && atoi(PQgetvalue(res, 0, 0)) == s->version)
        doc = json_loads(PQgetvalue(res, 0, 1), 0, NULL);
    PQclear(res);
    if (doc == NULL)
        return -1; /* changed (or gone) meanwhile: the reload that follows decides */
    json_object_set_new(doc, "status", json_string(status));
    if (error != NULL)
        json_object_set_new(doc, "error", json_string(error));
    else
        json_object_del(doc, "error");
    char *head, *tail, version[16];
    fhir_json_compose_for_store(doc, "Subscription", s->id, &head, &tail);
    char *index = fhir_search_index_text("Subscription", doc);
    snprintf(version, sizeof(version), "%d", s->version);
    const char *wparams[] = {"Subscription", s->id, head, tail, version, "update", index};
    res = query(sh->c, "SELECT version_id FROM fhir_write($1, $2, $3, $4, $5::integer, $6, $7::jsonb)", 7, wparams);
    if (res != NULL) {
        s->version = atoi(PQgetvalue(res, 0, 0));
        free(s->status);
        s->status = util_xstrdup(status);
        PQclear(res);
        LOG_INFO("Subscription/%s is now %s", s->id, status);
        s->due = 0;
        ret = 0;
    }
    free(head);
    free(tail);
    free(index);
    json_decref(doc);
    return ret;
}

static void save_cursor(shard_t *sh, sub_t *s)
{
    char cursor[24], failures[16];
    snprintf(cursor, sizeof(cursor), "%" PRId64, s->cursor);
    snprintf(failures, sizeof(failures), "%u", s->failures);
    const char *params[] = {s->id, cursor, failures};
    PGresult *res = query(sh->c,
                          "UPDATE sub_state SET cursor = greatest(cursor, $2::bigint), failures = $3::integer,"
                          " last_error = CASE WHEN $3::integer = 0 THEN NULL ELSE last_error END WHERE id = $1",
                          3, params);
    if (res != NULL) {
        s->saved_cursor = s->cursor;
        PQclear(res);
    }
}

static void record_failure(shard_t *sh, sub_t *s, const char *why)
{
    s->failures++;
    uint64_t delay = subs_settings.retry_base_ms;
    for (unsigned i = 1; i < s->failures && delay < subs_settings.retry_max_ms; ++i)
        delay *= 2;
    if (delay > subs_settings.retry_max_ms)
        delay = subs_settings.retry_max_ms;
    s->due = util_time_monotonic_ms() + delay;
    char failures[16], ms[24];
    snprintf(failures, sizeof(failures), "%u", s->failures);
    snprintf(ms, sizeof(ms), "%" PRIu64, delay);
    const char *params[] = {s->id, failures, ms, why};
    PGresult *res = query(sh->c,
                          "UPDATE sub_state SET failures = $2::integer, next_attempt = now() + make_interval(secs => $3::bigint / 1000.0),"
                          " last_error = $4 WHERE id = $1",
                          4, params);
    if (res != NULL)
        PQclear(res);
    LOG_WARN("Subscription/%s: delivery failed (%u in a row): %s", s->id, s->failures, why);
    if (s->failures >= subs_settings.max_failures) {
        char *text = util_asprintf("%s failed %u times in a row; last: %.*s", strcmp(s->status, "requested") == 0 ? "the handshake" : "delivery",
                                   s->failures, MAX_ERROR_TEXT, why);
        write_status(sh, s, "error", text);
        free(text);
    }
}

#define POST_REFUSED -2 /* post(): the endpoint may not be called at all (no retry helps) */

/* One POST to the endpoint. 0 on a 2xx; -1 with the reason in `why`, or POST_REFUSED. */
static int post(sub_t *s, const char *event, const char *type, const char *id, const char *version, const char *body, char *why,
                size_t whylen)
{
    if (!subs_endpoint_allowed(s->endpoint)) {
        snprintf(why, whylen, "channel.endpoint is not on this server's allowlist (subscriptions.endpoint_allowlist)");
        return POST_REFUSED;
    }
    const char **lines = util_xcalloc(s->nheaders + 4, sizeof(char *));
    char **owned = util_xcalloc(s->nheaders + 4, sizeof(char *));
    size_t n = 0, nowned = 0;
    int ret = -1;
    for (size_t i = 0; i != s->nheaders; ++i) {
        char *line = subs_header_line(s->endpoint, s->headers[i]);
        if (line == NULL) {
            snprintf(why, whylen, "channel.header[%zu] cannot be opened; store the header again", i);
            goto Exit;
        }
        lines[n++] = owned[nowned++] = line;
    }
    lines[n++] = owned[nowned++] = util_asprintf("X-FHIR-Subscription: Subscription/%s", s->id);
    lines[n++] = owned[nowned++] = util_asprintf("X-FHIR-Event: %s", event);
    if (type != NULL)
        lines[n++] = owned[nowned++] = util_asprintf("Content-Location: %s/%s/%s/_history/%s", fhir_base_url, type, id, version);
    if (body != NULL)
        lines[n++] = "Content-Type: application/fhir+json";
    util_httpc_request_t req = {.method = "POST",
                                .url = s->endpoint,
                                .headers = lines,
                                .nheaders = n,
                                .body = body,
                                .body_len = body != NULL ? strlen(body) : 0,
                                .ca_file = subs_settings.ca_file,
                                .io_timeout_ms = subs_settings.timeout_ms,
                                .total_timeout_ms = subs_settings.timeout_ms,
                                .max_body = 64 * 1024};
    util_httpc_response_t res;
    char err[512];
    if (util_httpc_exchange(&req, &res, NULL, err, sizeof(err)) != 0)
        snprintf(why, whylen, "%s", err);
    else if (res.status < 200 || res.status > 299)
        snprintf(why, whylen, "the endpoint answered HTTP %d", res.status);
    else
        ret = 0;
Exit:
    for (size_t i = 0; i != nowned; ++i)
        free(owned[i]);
    free(owned);
    free(lines);
    return ret;
}

static void handshake(shard_t *sh, sub_t *s)
{
    char why[600];
    if (!s->compiled) {
        write_status(sh, s, "error", s->problem);
        return;
    }
    int r = post(s, "handshake", NULL, NULL, NULL, NULL, why, sizeof(why));
    if (r == POST_REFUSED) {
        write_status(sh, s, "error", why);
        return;
    }
    if (r != 0) {
        record_failure(sh, s, why);
        return;
    }
    s->failures = 0;
    save_cursor(sh, s);
    write_status(sh, s, "active", NULL);
}

/* Delivers the matched rows in order; stops at the first failure. */
static void deliver(shard_t *sh, sub_t *s, int64_t head)
{
    PGresult *res = s->pending;
    s->pending = NULL;
    int n = PQntuples(res);
    char why[600];
    for (int i = 0; i != n && !atomic_load(&D.stop); ++i) {
        const char *body = s->payload && !PQgetisnull(res, i, 5) ? PQgetvalue(res, i, 5) : NULL;
        int r = post(s, PQgetvalue(res, i, 4), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3), body, why, sizeof(why));
        if (r != 0) {
            if (r == POST_REFUSED)
                write_status(sh, s, "error", why);
            else
                record_failure(sh, s, why);
            PQclear(res);
            return;
        }
        s->cursor = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        s->failures = 0;
        save_cursor(sh, s);
    }
    /* a short batch covered everything up to the head */
    if (n < SUBS_MATCH_BATCH && !atomic_load(&D.stop))
        s->cursor = head;
    PQclear(res);
}

/* An outbox row's search tokens, before and after, for the pre-filter. */
typedef struct st_change_t {
    int64_t pos;
    char *type;
    subs_tokens_t after, before;
    bool has_after, has_before;
} change_t;

#define PREFILTER_MAX_ROWS 2000

static void changes_free(change_t *changes, size_t n)
{
    for (size_t i = 0; i != n; ++i) {
        free(changes[i].type);
        subs_tokens_dispose(&changes[i].after);
        subs_tokens_dispose(&changes[i].before);
    }
    free(changes);
}

/* The rows (from, head], read once for every matcher; -1 when they are too many to be worth it (every matcher runs). */
static int changes_load(shard_t *sh, int64_t from, int64_t head, change_t **out, size_t *count)
{
    char a[24], b[24], limit[16];
    snprintf(a, sizeof(a), "%" PRId64, from);
    snprintf(b, sizeof(b), "%" PRId64, head);
    snprintf(limit, sizeof(limit), "%d", PREFILTER_MAX_ROWS + 1);
    const char *params[] = {a, b, limit};
    PGresult *res = query(sh->c,
                          "SELECT pos, res_type, n_deleted, n_tokens, o_deleted, o_tokens FROM sub_change"
                          " WHERE pos > $1::bigint AND pos <= $2::bigint ORDER BY pos LIMIT $3::integer",
                          3, params);
    if (res == NULL)
        return -1;
    int n = PQntuples(res);
    if (n > PREFILTER_MAX_ROWS) {
        PQclear(res);
        return -1;
    }
    change_t *changes = util_xcalloc((size_t)n + 1, sizeof(*changes));
    for (int i = 0; i != n; ++i) {
        change_t *c = &changes[i];
        c->pos = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        c->type = util_xstrdup(PQgetvalue(res, i, 1));
        c->has_after = PQgetvalue(res, i, 2)[0] == 'f';
        c->has_before = PQgetvalue(res, i, 4)[0] == 'f';
        if (c->has_after)
            subs_tokens_parse(&c->after, PQgetvalue(res, i, 3));
        if (c->has_before)
            subs_tokens_parse(&c->before, PQgetvalue(res, i, 5));
    }
    PQclear(res);
    *out = changes;
    *count = (size_t)n;
    return 0;
}

/* Whether some change after the subscription's cursor may match it (the SQL matcher decides). */
static bool may_match(const sub_t *s, const change_t *changes, size_t n)
{
    for (size_t i = 0; i != n; ++i) {
        const change_t *c = &changes[i];
        if (c->pos <= s->cursor || strcmp(c->type, s->matcher.type) != 0)
            continue;
        if ((c->has_after && subs_matcher_may_match(&s->matcher, &c->after)) ||
            (c->has_before && subs_matcher_may_match(&s->matcher, &c->before)))
            return true;
    }
    return false;
}

static bool ended(const sub_t *s)
{
    return s->end_at != 0 && (int64_t)time(NULL) >= s->end_at;
}

static bool runnable(const sub_t *s, int64_t head, uint64_t now)
{
    return strcmp(s->status, "active") == 0 && s->compiled && s->stmt[0] != '\0' && s->cursor < head && s->due <= now && !ended(s);
}

/*
 * Runs the matchers of every subscription that is behind `head`, pipelined; results wait in sub->pending. The outbox
 * rows are read once first: a subscription none of whose required tokens appear in them is moved to the head without
 * running its matcher.
 */
static int match_pending(shard_t *sh, int64_t head, uint64_t now)
{
    int64_t from = head;
    for (size_t i = 0; i != sh->nsubs; ++i)
        if (runnable(&sh->subs[i], head, now) && sh->subs[i].cursor < from)
            from = sh->subs[i].cursor;
    if (from == head)
        return 0;
    change_t *changes = NULL;
    size_t nchanges = 0;
    bool prefilter = changes_load(sh, from, head, &changes, &nchanges) == 0;
    size_t i = 0;
    while (i < sh->nsubs) {
        size_t batch[PIPELINE_MAX], nb = 0;
        for (; i < sh->nsubs && nb != PIPELINE_MAX; ++i) {
            sub_t *s = &sh->subs[i];
            if (!runnable(s, head, now))
                continue;
            if (prefilter && !may_match(s, changes, nchanges))
                s->cursor = head;
            else
                batch[nb++] = i;
        }
        if (nb == 0)
            break;
        if (PQenterPipelineMode(sh->c) != 1) {
            changes_free(changes, nchanges);
            return -1;
        }
        for (size_t b = 0; b != nb; ++b) {
            sub_t *s = &sh->subs[batch[b]];
            subs_matcher_range(&s->matcher, s->cursor, head, s->payload);
            PQsendQueryPrepared(sh->c, s->stmt, s->matcher.nparams, (const char *const *)s->matcher.params, NULL, NULL, 0);
        }
        PQpipelineSync(sh->c);
        for (size_t b = 0; b != nb; ++b) {
            sub_t *s = &sh->subs[batch[b]];
            PGresult *res = PQgetResult(sh->c);
            if (PQresultStatus(res) == PGRES_TUPLES_OK) {
                s->pending = res;
            } else {
                LOG_WARN("subscriptions: matching Subscription/%s failed: %s", s->id,
                         res != NULL && PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                                                                                        : PQerrorMessage(sh->c));
                PQclear(res);
                s->due = util_time_monotonic_ms() + RECONNECT_MS;
            }
            PGresult *end = PQgetResult(sh->c); /* NULL closes each query's results */
            if (end != NULL)
                PQclear(end);
        }
        PGresult *sync;
        while ((sync = PQgetResult(sh->c)) != NULL) {
            bool done = PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
            PQclear(sync);
            if (done)
                break;
        }
        PQexitPipelineMode(sh->c);
    }
    changes_free(changes, nchanges);
    return 0;
}

/* Persists cursors that moved without deliveries (so that pruning can proceed), in one statement. */
static void save_idle_cursors(shard_t *sh)
{
    store_array_t ids, cursors;
    store_array_init(&ids);
    store_array_init(&cursors);
    for (size_t i = 0; i != sh->nsubs; ++i) {
        sub_t *s = &sh->subs[i];
        if (s->cursor > s->saved_cursor) {
            char c[24];
            snprintf(c, sizeof(c), "%" PRId64, s->cursor);
            store_array_add(&ids, s->id);
            store_array_add(&cursors, c);
            s->saved_cursor = s->cursor;
        }
    }
    if (ids.n != 0) {
        char *a = store_array_literal(&ids), *b = store_array_literal(&cursors);
        const char *params[] = {a, b};
        PGresult *res = query(sh->c,
                              "UPDATE sub_state s SET cursor = greatest(s.cursor, x.c) FROM unnest($1::text[], $2::bigint[]) AS x(i, c)"
                              " WHERE s.id = x.i",
                              2, params);
        if (res != NULL)
            PQclear(res);
        free(a);
        free(b);
    }
    store_array_dispose(&ids);
    store_array_dispose(&cursors);
}

static void *shard_main(void *arg)
{
    shard_t sh = {.index = (int)(intptr_t)arg};
    unsigned gen_seen = 0;
    bool loaded = false;
    while (!atomic_load(&D.stop)) {
        if (sh.c == NULL || PQstatus(sh.c) != CONNECTION_OK) {
            shard_forget(&sh, false);
            if (sh.c != NULL)
                PQfinish(sh.c);
            sh.locked = false;
            loaded = false;
            if ((sh.c = connect_db()) == NULL)
                break;
        }
        int64_t head = atomic_load(&D.head);
        unsigned gen = atomic_load(&D.generation);
        if (!sh.locked) {
            char shard[8];
            snprintf(shard, sizeof(shard), "%d", sh.index);
            char lock_class[16];
            snprintf(lock_class, sizeof(lock_class), "%d", LOCK_CLASS);
            const char *params[] = {lock_class, shard};
            PGresult *res = query(sh.c, "SELECT pg_try_advisory_lock($1::integer, $2::integer)", 2, params);
            sh.locked = res != NULL && PQgetvalue(res, 0, 0)[0] == 't';
            if (res != NULL)
                PQclear(res);
            if (!sh.locked) {
                wait_for_news(ANY_HEAD, gen, LOCK_RETRY_MS); /* another instance delivers this shard */
                continue;
            }
            loaded = false;
        }
        if (!loaded || gen != gen_seen || util_time_monotonic_ms() - sh.loaded_at >= RELOAD_EVERY_MS) {
            sh.loaded_at = util_time_monotonic_ms();
            if (loaded)
                save_idle_cursors(&sh); /* the reload reads cursors back */
            if (shard_load(&sh) != 0) {
                wait_for_news(ANY_HEAD, gen, RECONNECT_MS);
                continue;
            }
            loaded = true;
            gen_seen = gen;
        }
        uint64_t now = util_time_monotonic_ms(), next = now + IDLE_POLL_MS;
        for (size_t i = 0; i != sh.nsubs && !atomic_load(&D.stop); ++i) {
            sub_t *s = &sh.subs[i];
            if (ended(s) && s->due <= now)
                write_status(&sh, s, "off", NULL); /* R4: the server turns a Subscription off at its end */
            else if (strcmp(s->status, "requested") == 0 && s->due <= now)
                handshake(&sh, s);
            else if (strcmp(s->status, "active") == 0 && !s->compiled)
                write_status(&sh, s, "error", s->problem);
        }
        if (match_pending(&sh, head, now) != 0)
            LOG_WARN("subscriptions: cannot enter pipeline mode");
        for (size_t i = 0; i != sh.nsubs && !atomic_load(&D.stop); ++i)
            if (sh.subs[i].pending != NULL)
                deliver(&sh, &sh.subs[i], head);
        now = util_time_monotonic_ms();
        if (now - sh.last_cursor_save >= CURSOR_SAVE_EVERY_MS) {
            save_idle_cursors(&sh);
            sh.last_cursor_save = now;
        }
        bool behind = false;
        for (size_t i = 0; i != sh.nsubs; ++i) {
            sub_t *s = &sh.subs[i];
            bool waiting = strcmp(s->status, "requested") == 0 || (strcmp(s->status, "active") == 0 && s->cursor < head);
            if (waiting && s->due > now && s->due < next)
                next = s->due;
            behind |= waiting && s->due <= now && s->compiled && s->stmt[0] != '\0';
        }
        if (!behind && atomic_load(&D.generation) == gen_seen)
            wait_for_news(head, gen_seen, (unsigned)(next > now ? next - now : 1));
    }
    if (sh.c != NULL) {
        save_idle_cursors(&sh);
        shard_forget(&sh, false);
        PQfinish(sh.c); /* also releases the advisory lock */
    }
    return NULL;
}

int subs_dispatch_start(char *err, size_t errlen)
{
    if (subs_settings.dsn == NULL) {
        snprintf(err, errlen, "subscriptions: no database configured");
        return -1;
    }
    atomic_store(&D.stop, false);
    atomic_store(&D.head, 0);
    if (pthread_create(&D.listener, NULL, listener_main, NULL) != 0) {
        snprintf(err, errlen, "subscriptions: cannot start the listener thread");
        return -1;
    }
    for (int i = 0; i != SHARDS; ++i)
        pthread_create(&D.shards[i], NULL, shard_main, (void *)(intptr_t)i);
    D.started = true;
    return 0;
}

void subs_dispatch_stop(void)
{
    if (!D.started)
        return;
    atomic_store(&D.stop, true);
    wake_all();
    pthread_join(D.listener, NULL);
    for (int i = 0; i != SHARDS; ++i)
        pthread_join(D.shards[i], NULL);
    D.started = false;
}
