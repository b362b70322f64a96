/*
 * Outbound SIU: the endpoints of hl7.outbound, and an Appointment version rendered as SIU^S12...S26 (docs/hl7v2.md,
 * "Rendered SIU"). Pure.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hl7v2/hl7.h"
#include "util/str.h"
#include "util/time.h"

static const char *const ALL_EVENTS[] = {"S12", "S13", "S14", "S15", "S17", "S26"};

void hl7_endpoints_free(hl7_endpoint_t *endpoints, size_t n)
{
    for (size_t i = 0; i != n; ++i) {
        hl7_endpoint_t *e = &endpoints[i];
        free(e->name);
        free(e->host);
        free(e->sending_application);
        free(e->sending_facility);
        free(e->receiving_application);
        free(e->receiving_facility);
        free(e->version);
    }
    free(endpoints);
}

static char *percent_decode(const char *s, size_t len)
{
    char *out = util_xmalloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; ++i) {
        if (s[i] == '%' && i + 2 < len + 0 && isxdigit((unsigned char)s[i + 1]) && isxdigit((unsigned char)s[i + 2])) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            out[n++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            out[n++] = s[i] == '+' ? ' ' : s[i];
        }
    }
    out[n] = '\0';
    return out;
}

static bool supported_version(const char *v)
{
    static const char *const ok[] = {"2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.1", "2.8.2"};
    for (size_t i = 0; i != sizeof(ok) / sizeof(ok[0]); ++i)
        if (strcmp(v, ok[i]) == 0)
            return true;
    return false;
}

/* Reads one mllp://host:port?k=v&... into `e`. */
static int parse_endpoint(const char *url, hl7_endpoint_t *e, const char *sending_application, const char *sending_facility, char *err,
                          size_t errlen)
{
    if (strncmp(url, "mllp://", 7) != 0) {
        snprintf(err, errlen, "hl7.outbound: \"%s\" is not an mllp://host:port URL", url);
        return -1;
    }
    const char *hostport = url + 7, *q = strchr(hostport, '?');
    char *hp = util_xstrndup(hostport, q != NULL ? (size_t)(q - hostport) : strlen(hostport));
    if (hp[0] != '\0' && hp[strlen(hp) - 1] == '/')
        hp[strlen(hp) - 1] = '\0';
    int ret = util_config_split_hostport(hp, &e->host, &e->port);
    if (ret != 0) {
        snprintf(err, errlen, "hl7.outbound: \"%s\" needs a host and a port (mllp://10.0.0.5:2576)", url);
        free(hp);
        return -1;
    }
    e->name = hp;
    e->sending_application = util_xstrdup(sending_application);
    e->sending_facility = util_xstrdup(sending_facility);
    e->receiving_application = util_xstrdup("");
    e->receiving_facility = util_xstrdup("");
    e->version = util_xstrdup("2.5.1");
    e->nevents = 6;
    for (size_t i = 0; i != 6; ++i)
        memcpy(e->events[i], ALL_EVENTS[i], 4);
    for (const char *p = q != NULL ? q + 1 : NULL; p != NULL && *p != '\0';) {
        const char *amp = strchr(p, '&'), *end = amp != NULL ? amp : p + strlen(p), *eq = memchr(p, '=', (size_t)(end - p));
        if (eq == NULL) {
            snprintf(err, errlen, "hl7.outbound: \"%.*s\" in %s is not name=value", (int)(end - p), p, url);
            return -1;
        }
        char *key = util_xstrndup(p, (size_t)(eq - p)), *value = percent_decode(eq + 1, (size_t)(end - eq - 1));
        char **slot = strcmp(key, "name") == 0                    ? &e->name
                      : strcmp(key, "receiving_application") == 0 ? &e->receiving_application
                      : strcmp(key, "receiving_facility") == 0     ? &e->receiving_facility
                      : strcmp(key, "sending_application") == 0   ? &e->sending_application
                      : strcmp(key, "sending_facility") == 0       ? &e->sending_facility
                      : strcmp(key, "version") == 0                ? &e->version
                                                                   : NULL;
        if (slot != NULL) {
            free(*slot);
            *slot = value;
            value = NULL;
        } else if (strcmp(key, "events") == 0) {
            e->nevents = 0;
            for (char *tok = strtok(value, ","); tok != NULL; tok = strtok(NULL, ",")) {
                bool known = false;
                for (size_t i = 0; i != 6; ++i)
                    known |= strcmp(tok, ALL_EVENTS[i]) == 0;
                if (!known || e->nevents == 8) {
                    snprintf(err, errlen, "hl7.outbound: events of %s must be among S12,S13,S14,S15,S17,S26 (got \"%s\")", url, tok);
                    free(key);
                    free(value);
                    return -1;
                }
                memcpy(e->events[e->nevents++], tok, 4);
            }
        } else {
            snprintf(err, errlen,
                     "hl7.outbound: unknown parameter \"%s\" in %s (name, receiving_application, receiving_facility, "
                     "sending_application, sending_facility, events, version)",
                     key, url);
            free(key);
            free(value);
            return -1;
        }
        free(key);
        free(value);
        p = amp != NULL ? amp + 1 : NULL;
    }
    if (!supported_version(e->version)) {
        snprintf(err, errlen, "hl7.outbound: version of %s must be 2.3 to 2.8 (got \"%s\")", url, e->version);
        return -1;
    }
    if (e->name[0] == '\0') {
        snprintf(err, errlen, "hl7.outbound: the name of %s is empty", url);
        return -1;
    }
    return 0;
}

int hl7_endpoints_parse(const char *text, const char *sending_application, const char *sending_facility, hl7_endpoint_t **out,
                        size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (text == NULL)
        return 0;
    char *copy = util_xstrdup(text), *save = NULL;
    for (char *url = strtok_r(copy, " \t\r\n;", &save); url != NULL; url = strtok_r(NULL, " \t\r\n;", &save)) {
        *out = util_xrealloc(*out, (*n + 1) * sizeof(**out));
        hl7_endpoint_t *e = &(*out)[(*n)++];
        memset(e, 0, sizeof(*e));
        if (parse_endpoint(url, e, sending_application, sending_facility, err, errlen) != 0)
            goto Error;
        for (size_t i = 0; i + 1 < *n; ++i)
            if (strcmp((*out)[i].name, e->name) == 0) {
                snprintf(err, errlen, "hl7.outbound: two endpoints are named \"%s\" (set name=...)", e->name);
                goto Error;
            }
    }
    free(copy);
    return 0;
Error:
    free(copy);
    hl7_endpoints_free(*out, *n);
    *out = NULL;
    *n = 0;
    return -1;
}

/* ---- rendering ---- */

typedef struct st_siu_t {
    util_buf_t out;
    const hl7_delims_t *d;
    bool modern; /* v2.5 and later: TQ1 */
} siu_t;

static void text(siu_t *s, const char *t)
{
    if (t != NULL)
        hl7_escape(&s->out, t, s->d);
}

static void sep(siu_t *s, char c)
{
    util_buf_append(&s->out, &c, 1);
}

static void field(siu_t *s, const char *t)
{
    sep(s, s->d->field);
    text(s, t);
}

static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* Unix seconds of a FHIR instant, rendered as an HL7 DTM in UTC. */
static bool dtm_of(const char *instant, char *buf, size_t len)
{
    time_t t;
    if (instant == NULL || util_time_parse_instant(instant, &t) != 0)
        return false;
    hl7_format_dtm((long long)t, buf, len);
    return true;
}

/* code^text^system of the first coding of a CodeableConcept */
static void concept(siu_t *s, const json_t *cc)
{
    const json_t *coding = json_array_get(json_object_get(cc, "coding"), 0);
    const char *code = jstr(coding, "code"), *display = jstr(coding, "display"), *system = jstr(coding, "system");
    const char *t = jstr(cc, "text");
    static const struct {
        const char *uri, *v2;
    } systems[] = {{"http://snomed.info/sct", "SCT"}, {"http://loinc.org", "LN"}, {"http://hl7.org/fhir/sid/icd-10", "I10"}};
    const char *name = NULL;
    for (size_t i = 0; system != NULL && i != sizeof(systems) / sizeof(systems[0]); ++i)
        if (strcmp(system, systems[i].uri) == 0)
            name = systems[i].v2;
    if (name == NULL && system != NULL && strncmp(system, "http://terminology.hl7.org/CodeSystem/v2-", 41) == 0)
        name = system + 41; /* "0276" -> HL70276 below */
    text(s, code != NULL ? code : t);
    sep(s, s->d->component);
    text(s, display != NULL ? display : t);
    if (name != NULL) {
        sep(s, s->d->component);
        if (isdigit((unsigned char)name[0]))
            util_buf_puts(&s->out, "HL7");
        text(s, name);
    }
}

static const json_t *first_of(const json_t *array)
{
    return json_array_get(array, 0);
}

/* An identifier as CX/EI: value^^^authority (our own urn:fhirsched:hl7v2:X comes back as X). */
static void identifier(siu_t *s, const json_t *id, bool cx)
{
    const char *system = jstr(id, "system"), *value = jstr(id, "value");
    text(s, value);
    if (system == NULL)
        return;
    const char *ns = strncmp(system, "urn:fhirsched:hl7v2:", 20) == 0 ? system + 20 : NULL;
    if (cx) {
        sep(s, s->d->component);
        sep(s, s->d->component);
        sep(s, s->d->component);
    } else {
        sep(s, s->d->component);
    }
    char sub = cx ? (s->d->subcomponent != 0 ? s->d->subcomponent : s->d->component) : s->d->component;
    if (ns != NULL) {
        text(s, ns);
    } else if (strncmp(system, "urn:oid:", 8) == 0) {
        sep(s, sub);
        text(s, system + 8);
        sep(s, sub);
        util_buf_puts(&s->out, "ISO");
    } else {
        sep(s, sub);
        text(s, system);
        sep(s, sub);
        util_buf_puts(&s->out, "URI");
    }
}

static const json_t *typed_identifier(const json_t *resource, const char *type_code)
{
    size_t i;
    const json_t *id;
    json_array_foreach(json_object_get(resource, "identifier"), i, id) {
        const char *code = jstr(first_of(json_object_get(json_object_get(id, "type"), "coding")), "code");
        if (code != NULL && strcmp(code, type_code) == 0)
            return id;
    }
    return NULL;
}

static void timing_and_duration(siu_t *s, const char *start, const char *end, long minutes)
{
    /* start|||duration|units with offsets empty: AIS-4..8, and AIP/AIL-6..10 */
    field(s, start);
    field(s, NULL);
    field(s, NULL);
    sep(s, s->d->field);
    if (minutes > 0)
        util_buf_printf(&s->out, "%ld", minutes);
    field(s, minutes > 0 ? "min" : NULL);
}

static void xpn(siu_t *s, const json_t *name)
{
    text(s, jstr(name, "family"));
    sep(s, s->d->component);
    const json_t *given = json_object_get(name, "given");
    text(s, json_string_value(json_array_get(given, 0)));
    sep(s, s->d->component);
    text(s, json_string_value(json_array_get(given, 1)));
}

char *hl7_render_siu(const hl7_render_in_t *in)
{
    siu_t s = {.d = &hl7_default_delims};
    util_buf_init(&s.out);
    const hl7_endpoint_t *ep = in->endpoint;
    int major = 2, minor = 5;
    sscanf(ep->version, "%d.%d", &major, &minor);
    s.modern = major > 2 || minor >= 5;
    const json_t *a = in->appointment;
    char now[32], start[32] = "", end[32] = "";
    hl7_format_dtm(in->now, now, sizeof(now));
    bool has_start = dtm_of(jstr(a, "start"), start, sizeof(start)), has_end = dtm_of(jstr(a, "end"), end, sizeof(end));
    long minutes = (long)json_integer_value(json_object_get(a, "minutesDuration"));
    if (minutes <= 0 && has_start && has_end) {
        time_t ts, te;
        util_time_parse_instant(jstr(a, "start"), &ts);
        util_time_parse_instant(jstr(a, "end"), &te);
        minutes = (long)((te - ts) / 60);
    }

    /* MSH */
    util_buf_puts(&s.out, "MSH|^~\\&");
    field(&s, ep->sending_application);
    field(&s, ep->sending_facility);
    field(&s, ep->receiving_application);
    field(&s, ep->receiving_facility);
    field(&s, now);
    field(&s, NULL);
    util_buf_printf(&s.out, "|SIU^%s^SIU_S12", in->event);
    field(&s, in->control_id);
    field(&s, "P");
    field(&s, ep->version);
    util_buf_puts(&s.out, "||||||UNICODE UTF-8\r");

    /* SCH */
    util_buf_puts(&s.out, "SCH");
    sep(&s, '|');
    const json_t *placer = typed_identifier(a, "PLAC");
    if (placer != NULL)
        identifier(&s, placer, false);
    sep(&s, '|');
    text(&s, jstr(a, "id"));
    sep(&s, '^');
    text(&s, ep->sending_application);
    field(&s, NULL);
    field(&s, NULL);
    field(&s, NULL);
    sep(&s, '|'); /* SCH-6 event reason */
    if (json_object_get(a, "cancelationReason") != NULL)
        concept(&s, json_object_get(a, "cancelationReason"));
    sep(&s, '|'); /* SCH-7 appointment reason */
    if (first_of(json_object_get(a, "reasonCode")) != NULL)
        concept(&s, first_of(json_object_get(a, "reasonCode")));
    sep(&s, '|'); /* SCH-8 appointment type */
    if (json_object_get(a, "appointmentType") != NULL)
        concept(&s, json_object_get(a, "appointmentType"));
    sep(&s, '|');
    if (minutes > 0)
        util_buf_printf(&s.out, "%ld", minutes);
    field(&s, minutes > 0 ? "min" : NULL);
    sep(&s, '|'); /* SCH-11: ^^duration^start^end */
    if (has_start) {
        util_buf_puts(&s.out, "^^");
        if (minutes > 0)
            util_buf_printf(&s.out, "%ld", minutes);
        util_buf_printf(&s.out, "^%s^%s", start, has_end ? end : "");
    }
    for (int f = 12; f <= 24; ++f)
        field(&s, NULL);
    field(&s, jstr(a, "status")); /* SCH-25 filler status code (FHIR status names) */
    util_buf_puts(&s.out, "\r");

    if (s.modern && has_start) {
        util_buf_printf(&s.out, "TQ1|1||||||%s|%s\r", start, has_end ? end : "");
    }
    if (jstr(a, "comment") != NULL) {
        util_buf_puts(&s.out, "NTE|1|");
        field(&s, jstr(a, "comment"));
        util_buf_puts(&s.out, "\r");
    }

    /* PID for the first Patient participant; AIS, AIP, AIL in one resource group */
    size_t i;
    const json_t *p;
    const json_t *participants = json_object_get(a, "participant");
    json_array_foreach(participants, i, p) {
        const char *ref = jstr(json_object_get(p, "actor"), "reference");
        if (ref == NULL || strncmp(ref, "Patient/", 8) != 0)
            continue;
        const json_t *patient = json_object_get(in->referenced, ref);
        util_buf_puts(&s.out, "PID|1||");
        size_t k;
        const json_t *id;
        bool any = false;
        json_array_foreach(json_object_get(patient, "identifier"), k, id) {
            if (jstr(id, "value") == NULL)
                continue;
            if (any)
                sep(&s, '~');
            identifier(&s, id, true);
            any = true;
        }
        if (!any) {
            text(&s, ref + 8);
            util_buf_puts(&s.out, "^^^");
            text(&s, ep->sending_application);
        }
        field(&s, NULL);
        sep(&s, '|');
        xpn(&s, first_of(json_object_get(patient, "name")));
        field(&s, NULL);
        sep(&s, '|');
        const char *birth = jstr(patient, "birthDate");
        for (const char *c = birth; c != NULL && *c != '\0'; ++c)
            if (isdigit((unsigned char)*c))
                util_buf_append(&s.out, c, 1);
        const char *gender = jstr(patient, "gender");
        field(&s, gender == NULL ? NULL : strcmp(gender, "male") == 0 ? "M" : strcmp(gender, "female") == 0 ? "F" : strcmp(gender, "other") == 0 ? "O" : "U");
        util_buf_puts(&s.out, "\r");
        break;
    }
    util_buf_puts(&s.out, "RGS|1|A\r");
    const json_t *service;
    json_array_foreach(json_object_get(a, "serviceType"), i, service) {
        util_buf_printf(&s.out, "AIS|%zu|A|", i + 1);
        concept(&s, service);
        timing_and_duration(&s, start, end, minutes);
        util_buf_puts(&s.out, "\r");
    }
    size_t nprac = 0, nloc = 0;
    json_array_foreach(participants, i, p) {
        const char *ref = jstr(json_object_get(p, "actor"), "reference");
        if (ref == NULL)
            continue;
        bool prac = strncmp(ref, "Practitioner/", 13) == 0, loc = strncmp(ref, "Location/", 9) == 0;
        if (!prac && !loc)
            continue;
        const json_t *r = json_object_get(in->referenced, ref);
        const json_t *id = first_of(json_object_get(r, "identifier"));
        util_buf_printf(&s.out, "%s|%zu|A|", prac ? "AIP" : "AIL", prac ? ++nprac : ++nloc);
        if (prac) {
            text(&s, id != NULL ? jstr(id, "value") : strchr(ref, '/') + 1);
            sep(&s, '^');
            xpn(&s, first_of(json_object_get(r, "name")));
        } else {
            const char *value = id != NULL ? jstr(id, "value") : strchr(ref, '/') + 1;
            /* our own identifiers of AIL-3 were "point^room": write them back as they came */
            for (const char *v = value != NULL ? value : ""; *v != '\0';) {
                size_t n = strcspn(v, "^");
                char *piece = util_xstrndup(v, n);
                text(&s, piece);
                free(piece);
                v += n;
                if (*v == '^') {
                    sep(&s, '^');
                    ++v;
                }
            }
            util_buf_puts(&s.out, "^^^");
            text(&s, jstr(r, "name"));
        }
        sep(&s, '|');
        const json_t *type = first_of(json_object_get(p, "type"));
        if (type != NULL)
            concept(&s, type);
        field(&s, NULL);
        timing_and_duration(&s, start, end, minutes);
        util_buf_puts(&s.out, "\r");
    }
    return s.out.base;
}
