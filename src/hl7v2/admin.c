/*
 * What operators see of the bridge: the inbound records ($hl7-messages), the outbound outbox ($hl7-outbox, with
 * $hl7-outbox-retry and $hl7-outbox-discard) as Parameters resources, and the Prometheus lines of /metrics. Asynchronous
 * on the loop's pool; who may ask is the REST layer's decision.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fhir/search.h"
#include "hl7v2/admin.h"
#include "util/log.h"
#include "util/str.h"
#include "util/time.h"

#define MODULE_NAME "hl7v2/admin.c"
#define MAX_COUNT 500

static const char SQL_MESSAGES[] =
    "SELECT id, fhir_instant(received_at), sending_application || '|' || sending_facility, control_id, message_type, status, "
    "ack_code, error, array_to_json(warnings), array_to_json(resources), message FROM hl7_inbound "
    "WHERE ($1::text IS NULL OR status = $1) AND ($2::timestamptz IS NULL OR received_at >= $2::timestamptz) "
    "AND ($3::text IS NULL OR control_id = $3) AND ($4::text IS NULL OR sending_application || '|' || sending_facility = $4) "
    "ORDER BY id DESC LIMIT $5::integer";
static const char SQL_OUTBOX[] =
    "SELECT id, endpoint, appointment_id, version_id, event, state, attempts, fhir_instant(next_attempt), fhir_instant(created_at), "
    "fhir_instant(sent_at), control_id, last_error, ack, message FROM hl7_outbox "
    "WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR endpoint = $2) AND ($3::text IS NULL OR appointment_id = $3) "
    "ORDER BY id DESC LIMIT $4::integer";
static const char SQL_RETRY[] = "WITH u AS (UPDATE hl7_outbox SET state = 'pending', attempts = 0, next_attempt = now(), "
                                "last_error = NULL WHERE id = $1::bigint AND state IN ('parked', 'pending') RETURNING id) "
                                "SELECT id, pg_notify('fhirsched_hl7', '') FROM u";
static const char SQL_DISCARD[] = "WITH u AS (UPDATE hl7_outbox SET state = 'discarded' WHERE id = $1::bigint "
                                  "AND state IN ('parked', 'pending') RETURNING id) SELECT id, pg_notify('fhirsched_hl7', '') FROM u";
static const char SQL_METRICS[] =
    "SELECT endpoint, state, count(*), coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE state = 'pending')), 0) "
    "FROM hl7_outbox GROUP BY endpoint, state ORDER BY endpoint, state";

struct st_hl7_admin_t {
    hl7_admin_kind_t kind;
    store_query_t query;
    char *params[5];
    hl7_admin_cb cb;
    void *data;
    int status;
    char *body;
    size_t body_len;
    fhir_outcome_t oo;
};

int hl7_admin_kind(const char *path, size_t len)
{
    static const char *const names[] = {"$hl7-messages", "$hl7-outbox", "$hl7-outbox-retry", "$hl7-outbox-discard"};
    for (size_t i = 0; i != sizeof(names) / sizeof(names[0]); ++i)
        if (util_str_eq(path, len, names[i]))
            return (int)i;
    return -1;
}

bool hl7_admin_writes(hl7_admin_kind_t kind)
{
    return kind == HL7_ADMIN_RETRY || kind == HL7_ADMIN_DISCARD;
}

int hl7_admin_status(const hl7_admin_t *a)
{
    return a->status;
}

const char *hl7_admin_body(const hl7_admin_t *a, size_t *len)
{
    *len = a->body_len;
    return a->body;
}

const fhir_outcome_t *hl7_admin_outcome(const hl7_admin_t *a)
{
    return &a->oo;
}

void hl7_admin_destroy(hl7_admin_t *a)
{
    for (size_t i = 0; i != sizeof(a->params) / sizeof(a->params[0]); ++i)
        free(a->params[i]);
    free(a->body);
    fhir_outcome_dispose(&a->oo);
    free(a);
}

static void set_body(hl7_admin_t *a, json_t *doc)
{
    a->body = json_dumps(doc, JSON_COMPACT);
    a->body_len = strlen(a->body);
    a->status = 200;
    json_decref(doc);
}

static void part(json_t *parts, const char *name, const char *type, json_t *value)
{
    if (value == NULL || json_is_null(value)) {
        json_decref(value);
        return;
    }
    json_t *p = json_pack("{s:s}", "name", name);
    json_object_set_new(p, type, value);
    json_array_append_new(parts, p);
}

/* An empty Parameters resource; *list is its parameter array. */
static json_t *parameters_new(json_t **list)
{
    json_t *params = json_pack("{s:s,s:[]}", "resourceType", "Parameters", "parameter");
    *list = json_object_get(params, "parameter");
    return params;
}

static json_t *str_or_null(PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : json_string(PQgetvalue(res, row, col));
}

static json_t *messages_json(PGresult *res)
{
    json_t *list, *params = parameters_new(&list);
    for (int r = 0; r != PQntuples(res); ++r) {
        json_t *parts = json_array();
        part(parts, "id", "valueInteger", json_integer(strtoll(PQgetvalue(res, r, 0), NULL, 10)));
        part(parts, "received", "valueInstant", str_or_null(res, r, 1));
        part(parts, "sender", "valueString", str_or_null(res, r, 2));
        if (PQgetvalue(res, r, 3)[0] != '\0')
            part(parts, "controlId", "valueString", str_or_null(res, r, 3));
        if (PQgetvalue(res, r, 4)[0] != '\0' && strcmp(PQgetvalue(res, r, 4), "^") != 0)
            part(parts, "type", "valueString", str_or_null(res, r, 4));
        part(parts, "status", "valueCode", str_or_null(res, r, 5));
        part(parts, "ackCode", "valueCode", str_or_null(res, r, 6));
        part(parts, "error", "valueString", str_or_null(res, r, 7));
        json_t *warnings = json_loads(PQgetvalue(res, r, 8), 0, NULL), *resources = json_loads(PQgetvalue(res, r, 9), 0, NULL), *v;
        size_t i;
        json_array_foreach(warnings, i, v) {
            part(parts, "warning", "valueString", json_incref(v));
        }
        json_array_foreach(resources, i, v) {
            part(parts, "resource", "valueReference", json_pack("{s:O}", "reference", v));
        }
        json_decref(warnings);
        json_decref(resources);
        if (PQgetvalue(res, r, 10)[0] != '\0')
            part(parts, "raw", "valueString", str_or_null(res, r, 10));
        json_array_append_new(list, json_pack("{s:s,s:o}", "name", "message", "part", parts));
    }
    return params;
}

static json_t *outbox_json(PGresult *res)
{
    json_t *list, *params = parameters_new(&list);
    for (int r = 0; r != PQntuples(res); ++r) {
        json_t *parts = json_array();
        part(parts, "id", "valueInteger", json_integer(strtoll(PQgetvalue(res, r, 0), NULL, 10)));
        part(parts, "endpoint", "valueString", str_or_null(res, r, 1));
        char *ref = util_asprintf("Appointment/%s/_history/%s", PQgetvalue(res, r, 2), PQgetvalue(res, r, 3));
        part(parts, "appointment", "valueReference", json_pack("{s:s}", "reference", ref));
        free(ref);
        part(parts, "event", "valueCode", str_or_null(res, r, 4));
        part(parts, "state", "valueCode", str_or_null(res, r, 5));
        part(parts, "attempts", "valueInteger", json_integer(atoi(PQgetvalue(res, r, 6))));
        if (strcmp(PQgetvalue(res, r, 5), "pending") == 0)
            part(parts, "nextAttempt", "valueInstant", str_or_null(res, r, 7));
        part(parts, "created", "valueInstant", str_or_null(res, r, 8));
        part(parts, "sent", "valueInstant", str_or_null(res, r, 9));
        part(parts, "controlId", "valueString", str_or_null(res, r, 10));
        part(parts, "lastError", "valueString", str_or_null(res, r, 11));
        part(parts, "ack", "valueString", str_or_null(res, r, 12));
        part(parts, "raw", "valueString", str_or_null(res, r, 13));
        json_array_append_new(list, json_pack("{s:s,s:o}", "name", "entry", "part", parts));
    }
    return params;
}

/* Prometheus text: this process's counters, then the outbox as the database has it (all instances). */
static void metrics_text(hl7_admin_t *a, PGresult *res)
{
    util_buf_t out;
    util_buf_init(&out);
    hl7_counters_t c = hl7_counters();
    util_buf_puts(&out, "# HELP fhirsched_hl7_inbound_messages_total Inbound HL7 messages answered by this instance, by ACK code.\n"
                        "# TYPE fhirsched_hl7_inbound_messages_total counter\n");
    for (int i = 0; i != 3; ++i)
        util_buf_printf(&out, "fhirsched_hl7_inbound_messages_total{ack=\"%s\"} %llu\n", hl7_ack_code_name((hl7_ack_code_t)i), c.inbound[i]);
    util_buf_printf(&out,
                    "# HELP fhirsched_hl7_inbound_connections Open MLLP connections on this instance.\n"
                    "# TYPE fhirsched_hl7_inbound_connections gauge\nfhirsched_hl7_inbound_connections %ld\n",
                    c.connections);
    util_buf_puts(&out, "# HELP fhirsched_hl7_outbox_messages Outbound HL7 messages by endpoint and state.\n"
                        "# TYPE fhirsched_hl7_outbox_messages gauge\n");
    for (int r = 0; r != PQntuples(res); ++r)
        util_buf_printf(&out, "fhirsched_hl7_outbox_messages{endpoint=\"%s\",state=\"%s\"} %s\n", PQgetvalue(res, r, 0),
                        PQgetvalue(res, r, 1), PQgetvalue(res, r, 2));
    util_buf_puts(&out, "# HELP fhirsched_hl7_outbox_oldest_pending_seconds Age of the oldest message waiting to be sent.\n"
                        "# TYPE fhirsched_hl7_outbox_oldest_pending_seconds gauge\n");
    for (int r = 0; r != PQntuples(res); ++r)
        if (strcmp(PQgetvalue(res, r, 1), "pending") == 0)
            util_buf_printf(&out, "fhirsched_hl7_outbox_oldest_pending_seconds{endpoint=\"%s\"} %.3f\n", PQgetvalue(res, r, 0),
                            atof(PQgetvalue(res, r, 3)));
    a->body = out.base;
    a->body_len = out.len;
    a->status = 200;
}

static void on_query(store_query_t *q, PGresult *res, const char *err)
{
    hl7_admin_t *a = H2O_STRUCT_FROM_MEMBER(hl7_admin_t, query, q);
    if (err != NULL) {
        if (err == store_err_query)
            LOG_ERROR("HL7 admin statement failed (%s): %s", store_sqlstate(res), res != NULL ? PQresultErrorMessage(res) : "");
        fhir_outcome_fail(&a->oo, 503, "transient", NULL, "the database is not available; retry later");
        a->status = 503;
    } else if (a->kind == HL7_ADMIN_MESSAGES) {
        set_body(a, messages_json(res));
    } else if (a->kind == HL7_ADMIN_OUTBOX) {
        set_body(a, outbox_json(res));
    } else if (a->kind == HL7_ADMIN_METRICS) {
        metrics_text(a, res);
    } else if (PQntuples(res) == 0) {
        fhir_outcome_fail(&a->oo, 404, "not-found", NULL, "no parked or pending outbound message has id %s", a->params[0]);
        a->status = 404;
    } else {
        fhir_outcome_t oo;
        fhir_outcome_init(&oo);
        fhir_outcome_add(&oo, FHIR_SEV_INFORMATION, "informational", NULL, "outbound message %s %s", a->params[0],
                         a->kind == HL7_ADMIN_RETRY ? "goes again now" : "was discarded");
        set_body(a, fhir_outcome_to_json(&oo));
        fhir_outcome_dispose(&oo);
    }
    a->cb(a, a->data);
}

/* Reads name=value pairs (query string) and, for POSTs, a Parameters body's valueString/valueInteger/valueCode. */
static int read_inputs(hl7_admin_t *a, const char *query, const json_t *parameters, const char *const *names, size_t n)
{
    const char *cur = query, *end = query != NULL ? query + strlen(query) : NULL;
    char *name, *value;
    int r;
    while (cur != NULL && (r = fhir_query_next(&cur, end, &name, &value)) != 0) {
        if (r < 0)
            return fhir_outcome_fail(&a->oo, 400, "invalid", NULL, "the query string is not well encoded");
        bool known = name[0] == '_' && strcmp(name, "_count") != 0; /* _format, _pretty ... */
        for (size_t i = 0; i != n; ++i)
            if (strcmp(name, names[i]) == 0) {
                free(a->params[i]);
                a->params[i] = value;
                value = NULL;
                known = true;
            }
        if (!known) {
            fhir_outcome_fail(&a->oo, 400, "not-supported", NULL, "unknown parameter %s", name);
            free(name);
            free(value);
            return -1;
        }
        free(name);
        free(value);
    }
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(parameters, "parameter"), i, p) {
        const char *pn = json_string_value(json_object_get(p, "name"));
        json_t *v = json_object_get(p, "valueInteger");
        char buf[32];
        const char *text = json_string_value(json_object_get(p, "valueString"));
        if (text == NULL)
            text = json_string_value(json_object_get(p, "valueCode"));
        if (text == NULL && json_is_integer(v)) {
            snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
            text = buf;
        }
        for (size_t k = 0; pn != NULL && text != NULL && k != n; ++k)
            if (strcmp(pn, names[k]) == 0) {
                free(a->params[k]);
                a->params[k] = util_xstrdup(text);
            }
    }
    return 0;
}

void hl7_admin_run(hl7_admin_kind_t kind, const char *query, const json_t *parameters, store_pool_t *pool, hl7_admin_cb cb, void *data)
{
    hl7_admin_t *a = util_xcalloc(1, sizeof(*a));
    a->kind = kind;
    a->cb = cb;
    a->data = data;
    fhir_outcome_init(&a->oo);
    const char *sql = NULL;
    int nparams = 0;
    int ret = 0;
    switch (kind) {
    case HL7_ADMIN_MESSAGES: {
        static const char *const names[] = {"status", "since", "control-id", "sender", "_count"};
        ret = read_inputs(a, query, parameters, names, 5);
        sql = SQL_MESSAGES;
        nparams = 5;
        break;
    }
    case HL7_ADMIN_OUTBOX: {
        static const char *const names[] = {"state", "endpoint", "appointment", "_count"};
        ret = read_inputs(a, query, parameters, names, 4);
        sql = SQL_OUTBOX;
        nparams = 4;
        break;
    }
    case HL7_ADMIN_RETRY:
    case HL7_ADMIN_DISCARD: {
        static const char *const names[] = {"id"};
        ret = read_inputs(a, query, parameters, names, 1);
        if (ret == 0 && (a->params[0] == NULL || a->params[0][0] == '\0' || strspn(a->params[0], "0123456789") != strlen(a->params[0]) ||
                         strlen(a->params[0]) > 18))
            ret = fhir_outcome_fail(&a->oo, 400, "required", NULL, "id (the outbound message's id, a whole number) is required");
        sql = kind == HL7_ADMIN_RETRY ? SQL_RETRY : SQL_DISCARD;
        nparams = 1;
        break;
    }
    case HL7_ADMIN_METRICS:
        sql = SQL_METRICS;
        break;
    }
    if (ret == 0 && (kind == HL7_ADMIN_MESSAGES || kind == HL7_ADMIN_OUTBOX)) {
        char **count = &a->params[nparams - 1];
        long n = *count != NULL ? strtol(*count, NULL, 10) : 50;
        if (*count != NULL && (strspn(*count, "0123456789") != strlen(*count) || (*count)[0] == '\0'))
            ret = fhir_outcome_fail(&a->oo, 400, "invalid", NULL, "_count must be a whole number");
        free(*count);
        *count = util_asprintf("%ld", n < 1 ? 1 : n > MAX_COUNT ? MAX_COUNT : n);
        if (kind == HL7_ADMIN_MESSAGES && a->params[1] != NULL) {
            time_t t;
            if (util_time_parse_instant(a->params[1], &t) != 0)
                ret = fhir_outcome_fail(&a->oo, 400, "invalid", NULL, "since must be an instant such as 2026-01-01T00:00:00Z");
        }
    }
    if (ret != 0) {
        a->status = a->oo.status;
        cb(a, data);
        return;
    }
    a->query = (store_query_t){.sql = sql, .nparams = nparams, .params = (const char *const *)a->params, .cb = on_query};
    if (store_pool_submit(pool, &a->query) != 0) {
        fhir_outcome_fail(&a->oo, 503, "transient", NULL, "the server is overloaded; retry later");
        a->status = 503;
        cb(a, data);
    }
}
