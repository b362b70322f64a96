/*
 * Settings of the bridge, and the outbound sender: one thread per server instance, of which one at a time (an advisory
 * lock) drains hl7_outbox. Per endpoint it keeps one MLLP connection, sends one message at a time and waits for the ACK,
 * so a message is never sent twice at once and the order per appointment holds. Blocking I/O on its own thread keeps
 * the event loops free of legacy systems' latency.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <libpq-fe.h>
#include "hl7v2/hl7.h"
#include "hl7v2/inbound.h"
#include "hl7v2/mllp.h"
#include "store/store.h"
#include "util/log.h"
#include "util/str.h"
#include "util/time.h"

#define MODULE_NAME "hl7v2/outbound.c"
#define BATCH 50
#define PURGE_INTERVAL_MS 60000

static const char SQL_DUE[] =
    "SELECT o.id, o.appointment_id, o.version_id, o.event, o.attempts, o.control_id, o.message FROM hl7_outbox o "
    "WHERE o.endpoint = $1 AND o.state = 'pending' AND o.next_attempt <= now() "
    "AND NOT EXISTS (SELECT 1 FROM hl7_outbox p WHERE p.endpoint = o.endpoint AND p.appointment_id = o.appointment_id "
    "AND p.id < o.id AND p.state IN ('pending', 'parked')) ORDER BY o.id LIMIT 50";
/* The version that caused the message; a delete has no body, so the last version that had one. */
static const char SQL_VERSION[] = "SELECT body FROM resource_history WHERE res_type = 'Appointment' AND id = $1 AND version_id <= $2 "
                                  "AND body IS NOT NULL ORDER BY version_id DESC LIMIT 1";
static const char SQL_REFERENCED[] = "SELECT r.res_type || '/' || r.id, r.body FROM unnest($1::text[]) k JOIN resource r "
                                     "ON r.res_type = split_part(k, '/', 1) AND r.id = split_part(k, '/', 2) WHERE NOT r.deleted";
static const char SQL_RENDERED[] = "UPDATE hl7_outbox SET message = $2, control_id = $3 WHERE id = $1";
static const char SQL_SENT[] = "UPDATE hl7_outbox SET state = 'sent', sent_at = now(), attempts = attempts + 1, ack = $2, "
                               "last_error = NULL WHERE id = $1";
static const char SQL_FAILED[] =
    "UPDATE hl7_outbox SET attempts = attempts + 1, last_error = $2, ack = $3, "
    "state = CASE WHEN $4::boolean OR attempts + 1 >= $5::integer THEN 'parked' ELSE 'pending' END, "
    "next_attempt = now() + least($6::bigint * (2 ^ least(attempts, 30))::bigint, $7::bigint) * interval '1 millisecond' "
    "WHERE id = $1 RETURNING state";
static const char SQL_NEXT_DUE[] = "SELECT extract(epoch FROM min(next_attempt) - now()) * 1000 FROM hl7_outbox "
                                   "WHERE state = 'pending' AND endpoint = ANY($1::text[])";
static const char SQL_PURGE[] =
    "WITH a AS (DELETE FROM hl7_inbound WHERE received_at < now() - $1::integer * interval '1 day'), "
    "b AS (DELETE FROM hl7_outbox WHERE state IN ('sent', 'discarded') AND created_at < now() - $1::integer * interval '1 day') "
    "SELECT 1";

typedef struct st_link_t {
    int fd;
    hl7_mllp_t framer;
} link_t;

static struct {
    hl7_endpoint_t *endpoints;
    size_t nendpoints;
    link_t *links;
    char *dsn;
    unsigned ack_timeout_ms, retry_base_ms, retry_max_ms, max_attempts, retention_days;
    size_t max_message;
    pthread_t thread;
    bool running;
    atomic_bool stop;
    int wake[2];
    sched_tz_t *tz;
    bool published; /* hl7_endpoint already holds our configuration */
} O = {.wake = {-1, -1}};

int hl7_init(const util_config_t *cfg, char *err, size_t errlen)
{
    const char *zone = cfg->hl7_timezone != NULL ? cfg->hl7_timezone : cfg->scheduling_default_timezone;
    char why[200];
    if (O.tz != NULL)
        sched_tz_destroy(O.tz);
    if ((O.tz = sched_tz_load(zone, why, sizeof(why))) == NULL) {
        snprintf(err, errlen, "hl7.timezone: %s", why);
        return -1;
    }
    hl7_inbound_settings = (hl7_inbound_settings_t){cfg->hl7_sending_application, cfg->hl7_sending_facility, cfg->hl7_max_message_bytes, O.tz};
    if (hl7_listener_configure(cfg->hl7_listen, cfg->hl7_tls_cert_file, cfg->hl7_tls_key_file, cfg->hl7_idle_timeout_ms,
                               cfg->hl7_max_message_bytes, err, errlen) != 0)
        return -1;
    hl7_endpoints_free(O.endpoints, O.nendpoints);
    if (hl7_endpoints_parse(cfg->hl7_outbound, cfg->hl7_sending_application, cfg->hl7_sending_facility, &O.endpoints, &O.nendpoints,
                            err, errlen) != 0)
        return -1;
    O.ack_timeout_ms = cfg->hl7_ack_timeout_ms;
    O.retry_base_ms = cfg->hl7_retry_base_ms;
    O.retry_max_ms = cfg->hl7_retry_max_ms;
    O.max_attempts = cfg->hl7_max_attempts;
    O.retention_days = cfg->hl7_retention_days;
    O.max_message = cfg->hl7_max_message_bytes;
    return 0;
}

/* ---- MLLP client ---- */

static void link_close(link_t *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    hl7_mllp_dispose(&l->framer);
}

static int link_open(link_t *l, const hl7_endpoint_t *e, char *err, size_t errlen)
{
    if (l->fd >= 0)
        return 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai;
    char port[8];
    snprintf(port, sizeof(port), "%u", e->port);
    int gai = getaddrinfo(e->host, port, &hints, &ai);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", e->host, gai_strerror(gai));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int ret = fd < 0 ? -1 : connect(fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (ret != 0 && errno == EINPROGRESS) {
        struct pollfd p = {fd, POLLOUT, 0};
        int so = 0;
        socklen_t sl = sizeof(so);
        if (poll(&p, 1, (int)O.ack_timeout_ms) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl) == 0 && so == 0)
            ret = 0;
        else
            errno = so != 0 ? so : ETIMEDOUT;
    }
    if (ret != 0) {
        snprintf(err, errlen, "cannot connect to %s:%u: %s", e->host, e->port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    l->fd = fd;
    hl7_mllp_init(&l->framer, O.max_message);
    return 0;
}

/* Sends one framed message and reads one framed answer within the ACK timeout. The answer (caller frees) or NULL. */
static char *link_exchange(link_t *l, const char *message, char *err, size_t errlen)
{
    util_buf_t out;
    util_buf_init(&out);
    hl7_mllp_wrap(&out, message, strlen(message));
    uint64_t deadline = util_time_monotonic_ms() + O.ack_timeout_ms;
    size_t off = 0;
    char *answer = NULL;
    while (off < out.len) {
        ssize_t n = send(l->fd, out.base + off, out.len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        uint64_t now = util_time_monotonic_ms();
        struct pollfd p = {l->fd, POLLOUT, 0};
        if ((n < 0 && errno != EAGAIN && errno != EINTR) || now >= deadline || poll(&p, 1, (int)(deadline - now)) <= 0) {
            snprintf(err, errlen, "sending failed: %s", n < 0 && errno != EAGAIN ? strerror(errno) : "timed out");
            goto Exit;
        }
    }
    for (;;) {
        uint64_t now = util_time_monotonic_ms();
        struct pollfd p = {l->fd, POLLIN, 0};
        if (now >= deadline || poll(&p, 1, (int)(deadline - now)) <= 0) {
            snprintf(err, errlen, "no ACK within %u ms", O.ack_timeout_ms);
            goto Exit;
        }
        char buf[4096];
        ssize_t n = recv(l->fd, buf, sizeof(buf), 0);
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            snprintf(err, errlen, "the connection was closed before an ACK came");
            goto Exit;
        }
        for (size_t used = 0; used < (size_t)n;) {
            hl7_mllp_event_t ev;
            const char *msg;
            size_t mlen;
            used += hl7_mllp_feed(&l->framer, buf + used, (size_t)n - used, &ev, &msg, &mlen);
            if (ev == HL7_MLLP_GARBAGE || ev == HL7_MLLP_TOO_LARGE) {
                snprintf(err, errlen, "the answer was not an MLLP frame");
                goto Exit;
            }
            if (ev == HL7_MLLP_MESSAGE) {
                answer = util_xstrndup(msg, mlen);
                goto Exit; /* bytes after the ACK would be a protocol error; the next exchange starts clean */
            }
        }
    }
Exit:
    util_buf_dispose(&out);
    return answer;
}

/* ---- the outbox ---- */

static PGresult *exec(PGconn *db, const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams(db, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        LOG_ERROR("HL7 outbox statement failed: %s", PQresultErrorMessage(res));
        PQclear(res);
        return NULL;
    }
    return res;
}

static char *render(PGconn *db, const hl7_endpoint_t *e, const char *id, const char *appointment_id, const char *version,
                    const char *event)
{
    const char *p1[] = {appointment_id, version};
    PGresult *res = exec(db, SQL_VERSION, 2, p1);
    if (res == NULL || PQntuples(res) != 1) {
        PQclear(res);
        return NULL;
    }
    json_t *appointment = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    if (appointment == NULL)
        return NULL;
    store_array_t keys;
    store_array_init(&keys);
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(appointment, "participant"), i, p) {
        const char *ref = json_string_value(json_object_get(json_object_get(p, "actor"), "reference"));
        if (ref != NULL && strchr(ref, '/') != NULL && strstr(ref, "://") == NULL)
            store_array_add(&keys, ref);
    }
    char *lit = store_array_literal(&keys);
    store_array_dispose(&keys);
    const char *p2[] = {lit};
    json_t *referenced = json_object();
    if ((res = exec(db, SQL_REFERENCED, 1, p2)) != NULL) {
        for (int r = 0; r != PQntuples(res); ++r) {
            json_t *body = json_loads(PQgetvalue(res, r, 1), 0, NULL);
            if (body != NULL)
                json_object_set_new(referenced, PQgetvalue(res, r, 0), body);
        }
        PQclear(res);
    }
    free(lit);
    char control[32];
    snprintf(control, sizeof(control), "FS%s", id);
    hl7_render_in_t in = {e, event, control, (long long)time(NULL), appointment, referenced};
    char *message = hl7_render_siu(&in);
    json_decref(appointment);
    json_decref(referenced);
    const char *p3[] = {id, message, control};
    if ((res = exec(db, SQL_RENDERED, 3, p3)) == NULL) {
        free(message);
        return NULL;
    }
    PQclear(res);
    return message;
}

/* MSA-1 of an answer: "AA", "AE", ... or NULL when it is no ACK. */
static const char *ack_code(const char *answer, char *buf, size_t len)
{
    hl7_parse_error_t perr;
    char why[128];
    hl7_msg_t *m = hl7_parse(answer, strlen(answer), &perr, why, sizeof(why));
    long msa = m != NULL ? hl7_find(m, "MSA", 0) : -1;
    const char *code = msa >= 0 ? hl7_val(m, (size_t)msa, 1, 1) : NULL;
    snprintf(buf, len, "%s", code != NULL ? code : "");
    hl7_free(m);
    return buf[0] != '\0' ? buf : NULL;
}

static void record_failure(PGconn *db, const char *id, const char *why, const char *answer, bool park)
{
    char base[16], max[16], attempts[16];
    snprintf(base, sizeof(base), "%u", O.retry_base_ms);
    snprintf(max, sizeof(max), "%u", O.retry_max_ms);
    snprintf(attempts, sizeof(attempts), "%u", O.max_attempts);
    const char *params[] = {id, why, answer, park ? "true" : "false", attempts, base, max};
    PGresult *res = exec(db, SQL_FAILED, 7, params);
    if (res != NULL && PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "parked") == 0)
        LOG_WARN("HL7 outbox message %s parked: %s", id, why);
    PQclear(res);
}

/* Sends what is due to one endpoint; stops at the first failure (the rest would meet the same receiver). */
static void drain(PGconn *db, size_t ei)
{
    const hl7_endpoint_t *e = &O.endpoints[ei];
    link_t *l = &O.links[ei];
    const char *p[] = {e->name};
    PGresult *due = exec(db, SQL_DUE, 1, p);
    if (due == NULL)
        return;
    for (int r = 0; r != PQntuples(due) && !atomic_load(&O.stop); ++r) {
        const char *id = PQgetvalue(due, r, 0);
        char *message = PQgetisnull(due, r, 6) ? render(db, e, id, PQgetvalue(due, r, 1), PQgetvalue(due, r, 2), PQgetvalue(due, r, 3))
                                               : util_xstrdup(PQgetvalue(due, r, 6));
        if (message == NULL) {
            record_failure(db, id, "the Appointment version could not be read", NULL, true);
            continue;
        }
        char err[256] = "", codebuf[8];
        char *answer = link_open(l, e, err, sizeof(err)) == 0 ? link_exchange(l, message, err, sizeof(err)) : NULL;
        free(message);
        const char *code = answer != NULL ? ack_code(answer, codebuf, sizeof(codebuf)) : NULL;
        if (answer == NULL || code == NULL) {
            link_close(l);
            record_failure(db, id, answer == NULL ? err : "the answer was not an ACK (no MSA-1)", answer, false);
            free(answer);
            break;
        }
        if (strcmp(code, "AA") == 0 || strcmp(code, "CA") == 0) {
            const char *ps[] = {id, answer};
            PQclear(exec(db, SQL_SENT, 2, ps));
            free(answer);
            continue;
        }
        bool rejected = strcmp(code, "AR") == 0 || strcmp(code, "CR") == 0;
        char why[64];
        snprintf(why, sizeof(why), "the receiver answered %s", code);
        record_failure(db, id, why, answer, rejected);
        free(answer);
        break;
    }
    PQclear(due);
}

/* Sleeps until the next message is due, a notification arrives or we are woken (at most `ms`). */
static void wait_for(PGconn *db, int ms)
{
    struct pollfd p[2] = {{PQsocket(db), POLLIN, 0}, {O.wake[0], POLLIN, 0}};
    if (ms > 0 && poll(p, 2, ms) > 0 && (p[1].revents & POLLIN)) {
        char buf[16];
        while (read(O.wake[0], buf, sizeof(buf)) > 0) {
        }
    }
    PQconsumeInput(db);
    PGnotify *n;
    while ((n = PQnotifies(db)) != NULL)
        PQfreemem(n);
}

/* Writes this instance's endpoints into hl7_endpoint; the trigger queues for the enabled ones. */
static int publish_endpoints(PGconn *db)
{
    int ret = 0;
    PGresult *res = PQexec(db, "BEGIN; UPDATE hl7_endpoint SET enabled = false");
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        ret = -1;
    PQclear(res);
    for (size_t i = 0; ret == 0 && i != O.nendpoints; ++i) {
        const hl7_endpoint_t *e = &O.endpoints[i];
        store_array_t ev;
        store_array_init(&ev);
        for (size_t k = 0; k != e->nevents; ++k)
            store_array_add(&ev, e->events[k]);
        char *lit = store_array_literal(&ev);
        store_array_dispose(&ev);
        const char *params[] = {e->name, e->receiving_application, e->receiving_facility, lit};
        res = PQexecParams(db,
                           "INSERT INTO hl7_endpoint (name, receiving_application, receiving_facility, events, enabled) "
                           "VALUES ($1, $2, $3, $4::text[], true) ON CONFLICT (name) DO UPDATE SET receiving_application = $2, "
                           "receiving_facility = $3, events = $4::text[], enabled = true",
                           4, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            ret = -1;
        PQclear(res);
        free(lit);
    }
    if (ret != 0)
        LOG_ERROR("cannot publish hl7.outbound: %s", PQerrorMessage(db));
    res = PQexec(db, ret == 0 ? "COMMIT" : "ROLLBACK");
    PQclear(res);
    return ret;
}

static void *sender_main(void *arg)
{
    PGconn *db = NULL;
    bool leader = false, published = O.published;
    uint64_t next_purge = 0;
    store_array_t names;
    store_array_init(&names);
    for (size_t i = 0; i != O.nendpoints; ++i)
        store_array_add(&names, O.endpoints[i].name);
    char *names_lit = store_array_literal(&names);
    store_array_dispose(&names);
    while (!atomic_load(&O.stop)) {
        if (db == NULL || PQstatus(db) != CONNECTION_OK) {
            PQfinish(db);
            leader = false;
            db = PQconnectdb(O.dsn);
            PGresult *res = PQstatus(db) == CONNECTION_OK ? PQexec(db, "LISTEN fhirsched_hl7") : NULL;
            if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
                PQclear(res);
                PQfinish(db);
                db = NULL;
                struct pollfd p = {O.wake[0], POLLIN, 0};
                poll(&p, 1, 1000);
                continue;
            }
            PQclear(res);
        }
        /* Done on the first connection rather than at start-up, so a database that comes up late is no matter.
         * Endpoints dropped from the configuration stop being queued for even when none are left. */
        if (!published && !(published = publish_endpoints(db) == 0)) {
            struct pollfd p = {O.wake[0], POLLIN, 0};
            poll(&p, 1, 1000);
            continue;
        }
        if (O.nendpoints == 0)
            break;
        if (!leader) {
            /* one sender per database: 0x686c3721 is "hl7!" */
            PGresult *res = PQexec(db, "SELECT pg_try_advisory_lock(1752971041)");
            leader = res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
            PQclear(res);
            if (!leader) {
                wait_for(db, 2000);
                continue;
            }
        }
        for (size_t i = 0; i != O.nendpoints && !atomic_load(&O.stop); ++i)
            drain(db, i);
        if (util_time_monotonic_ms() >= next_purge) {
            char days[16];
            snprintf(days, sizeof(days), "%u", O.retention_days);
            const char *p[] = {days};
            PQclear(exec(db, SQL_PURGE, 1, p));
            next_purge = util_time_monotonic_ms() + PURGE_INTERVAL_MS;
        }
        int ms = 5000;
        const char *p[] = {names_lit};
        PGresult *res = exec(db, SQL_NEXT_DUE, 1, p);
        if (res != NULL && !PQgetisnull(res, 0, 0)) {
            double d = atof(PQgetvalue(res, 0, 0));
            ms = d <= 0 ? 0 : d < ms ? (int)d + 1 : ms;
        }
        PQclear(res);
        wait_for(db, ms);
    }
    free(names_lit);
    for (size_t i = 0; i != O.nendpoints; ++i)
        link_close(&O.links[i]);
    PQfinish(db);
    return NULL;
}

int hl7_outbound_start(const char *dsn, char *err, size_t errlen)
{
    /* Published before the loops take requests, so the first booking already finds the endpoints; when the database is
     * not there yet, the sender thread does it once it connects. */
    PGconn *db = PQconnectdb(dsn);
    O.published = PQstatus(db) == CONNECTION_OK && publish_endpoints(db) == 0;
    PQfinish(db);
    if (O.published && O.nendpoints == 0)
        return 0; /* nothing to send, nothing left to publish */
    O.dsn = util_xstrdup(dsn);
    O.links = util_xcalloc(O.nendpoints + 1, sizeof(*O.links));
    for (size_t i = 0; i != O.nendpoints; ++i)
        O.links[i].fd = -1;
    if (pipe2(O.wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        snprintf(err, errlen, "hl7 outbound: pipe: %s", strerror(errno));
        return -1;
    }
    atomic_store(&O.stop, false);
    if (pthread_create(&O.thread, NULL, sender_main, NULL) != 0) {
        snprintf(err, errlen, "hl7 outbound: cannot start the sender thread");
        return -1;
    }
    O.running = true;
    return 0;
}

void hl7_outbound_stop(void)
{
    if (O.running) {
        atomic_store(&O.stop, true);
        if (write(O.wake[1], "x", 1) < 0) {
            /* the sender wakes within its poll interval anyway */
        }
        pthread_join(O.thread, NULL);
        O.running = false;
        close(O.wake[0]);
        close(O.wake[1]);
        O.wake[0] = O.wake[1] = -1;
    }
    free(O.links);
    O.links = NULL;
    free(O.dsn);
    O.dsn = NULL;
    hl7_endpoints_free(O.endpoints, O.nendpoints);
    O.endpoints = NULL;
    O.nendpoints = 0;
    if (O.tz != NULL)
        sched_tz_destroy(O.tz);
    O.tz = NULL;
}
