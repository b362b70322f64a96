/*
 * SIU and ADT to FHIR (docs/hl7v2.md has the field-by-field table). Pure: the message in, JSON out; finding and writing
 * the resources is inbound.c's.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fhir/search.h"
#include "hl7v2/hl7.h"
#include "sched/model.h"
#include "util/str.h"

#define V2_TABLE(n) "http://terminology.hl7.org/CodeSystem/v2-" n
#define OUR_SYSTEM_PREFIX "urn:fhirsched:hl7v2:"

void hl7_issue_set(hl7_issue_t *issue, int code, const char *where, const char *fmt, ...)
{
    issue->code = code;
    issue->warning = false;
    snprintf(issue->where, sizeof(issue->where), "%s", where != NULL ? where : "");
    va_list args;
    va_start(args, fmt);
    vsnprintf(issue->text, sizeof(issue->text), fmt, args);
    va_end(args);
}

/* A value, with HL7's explicit null ("") read as absent. */
static const char *get(const hl7_msg_t *msg, size_t seg, unsigned field, unsigned rep, unsigned comp, unsigned sub)
{
    const char *v = hl7_get(msg, seg, field, rep, comp, sub);
    return v != NULL && strcmp(v, "\"\"") != 0 ? v : NULL;
}

static void set_str(json_t *obj, const char *key, const char *value)
{
    if (value != NULL && value[0] != '\0')
        json_object_set_new(obj, key, json_string(value));
}

/* Percent-encodes what a URN may not carry as is. */
static void append_urn_part(util_buf_t *out, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; ++p) {
        if (isalnum(*p) || strchr("-._~!$&'()*+,;=:@/", *p) != NULL)
            util_buf_append(out, (const char *)p, 1);
        else
            util_buf_printf(out, "%%%02X", *p);
    }
}

char *hl7_system_uri(const char *namespace_id, const char *universal_id, const char *universal_id_type, const char *fallback)
{
    util_buf_t out;
    util_buf_init(&out);
    if (universal_id != NULL && universal_id_type != NULL && strcasecmp(universal_id_type, "ISO") == 0) {
        util_buf_puts(&out, "urn:oid:");
        append_urn_part(&out, universal_id);
    } else if (universal_id != NULL && universal_id_type != NULL &&
               (strcasecmp(universal_id_type, "URI") == 0 || strcasecmp(universal_id_type, "URL") == 0)) {
        util_buf_puts(&out, universal_id);
    } else {
        util_buf_puts(&out, OUR_SYSTEM_PREFIX);
        append_urn_part(&out, namespace_id != NULL ? namespace_id : fallback != NULL ? fallback : "unknown");
    }
    return out.base;
}

/* The sender's own namespace: identifiers without an assigning authority are local to it. */
static const char *sender_namespace(const hl7_msg_t *msg)
{
    const char *fac = hl7_sending_facility(msg);
    if (fac != NULL)
        return fac;
    const char *app = hl7_sending_application(msg);
    return app != NULL ? app : "unknown";
}

static json_t *type_concept(const char *system, const char *code)
{
    return json_pack("{s:[{s:s,s:s}]}", "coding", "system", system, "code", code);
}

/* An identifier from a CX (PID-3), EI (SCH-1) or XCN (AIP-3); `hd` is the component holding the assigning authority (an
 * HD in sub-components) or, for an EI, 0 with the HD spread over components 2-4. */
static json_t *identifier_at(const hl7_msg_t *msg, size_t seg, unsigned field, unsigned rep, unsigned hd, unsigned type_comp,
                             const char *type_code)
{
    const char *value = get(msg, seg, field, rep, 1, 1);
    if (value == NULL)
        return NULL;
    const char *ns, *uid, *uid_type;
    if (hd == 0) {
        ns = get(msg, seg, field, rep, 2, 1);
        uid = get(msg, seg, field, rep, 3, 1);
        uid_type = get(msg, seg, field, rep, 4, 1);
    } else {
        ns = get(msg, seg, field, rep, hd, 1);
        uid = get(msg, seg, field, rep, hd, 2);
        uid_type = get(msg, seg, field, rep, hd, 3);
    }
    char *system = hl7_system_uri(ns, uid, uid_type, sender_namespace(msg));
    json_t *id = json_object();
    const char *code = type_code != NULL ? type_code : type_comp != 0 ? get(msg, seg, field, rep, type_comp, 1) : NULL;
    if (code != NULL)
        json_object_set_new(id, "type", type_concept(V2_TABLE("0203"), code));
    json_object_set_new(id, "system", json_string(system));
    json_object_set_new(id, "value", json_string(value));
    free(system);
    return id;
}

static bool same_identifier(const json_t *a, const json_t *b)
{
    const char *sa = json_string_value(json_object_get(a, "system")), *sb = json_string_value(json_object_get(b, "system"));
    const char *va = json_string_value(json_object_get(a, "value")), *vb = json_string_value(json_object_get(b, "value"));
    return va != NULL && vb != NULL && strcmp(va, vb) == 0 && (sa == NULL ? sb == NULL : sb != NULL && strcmp(sa, sb) == 0);
}

/* Appends the identifiers of `add` that `list` does not have yet. */
static void merge_identifiers(json_t *list, const json_t *add)
{
    size_t i, j;
    json_t *a, *l;
    json_array_foreach(add, i, a) {
        bool have = false;
        json_array_foreach(list, j, l) {
            if (same_identifier(a, l))
                have = true;
        }
        if (!have)
            json_array_append(list, a);
    }
}

/* The FHIR URI of a v2 coding system name (table 0396), or NULL to leave the coding without one. */
static const char *coding_system_uri(const char *name, char *buf, size_t len)
{
    static const struct {
        const char *v2, *fhir;
    } known[] = {
        {"SCT", "http://snomed.info/sct"},          {"SNM", "http://snomed.info/sct"},
        {"LN", "http://loinc.org"},                 {"I10", "http://hl7.org/fhir/sid/icd-10"},
        {"I9C", "http://hl7.org/fhir/sid/icd-9-cm"}, {"CPT", "http://www.ama-assn.org/go/cpt"},
        {"C4", "http://www.ama-assn.org/go/cpt"},   {"UCUM", "http://unitsofmeasure.org"},
    };
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i != sizeof(known) / sizeof(known[0]); ++i)
        if (strcasecmp(name, known[i].v2) == 0)
            return known[i].fhir;
    if (strncasecmp(name, "HL7", 3) == 0 && strlen(name) == 7 && strspn(name + 3, "0123456789") == 4) {
        snprintf(buf, len, V2_TABLE("%s"), name + 3);
        return buf;
    }
    return NULL;
}

static void add_coding(json_t *codings, const char *code, const char *display, const char *system_name, const char *default_system)
{
    if (code == NULL)
        return;
    char buf[80];
    const char *system = coding_system_uri(system_name, buf, sizeof(buf));
    json_t *c = json_object();
    set_str(c, "system", system != NULL ? system : default_system);
    json_object_set_new(c, "code", json_string(code));
    set_str(c, "display", display);
    json_array_append_new(codings, c);
}

/* A CodeableConcept from a CE/CWE (code^text^system^alt code^alt text^alt system); NULL when empty. `default_system`
 * applies to codes without a system name (a table the field is bound to), or NULL. */
static json_t *concept_at(const hl7_msg_t *msg, size_t seg, unsigned field, unsigned rep, const char *default_system)
{
    const char *code = get(msg, seg, field, rep, 1, 1), *text = get(msg, seg, field, rep, 2, 1);
    const char *alt = get(msg, seg, field, rep, 4, 1);
    if (code == NULL && text == NULL && alt == NULL)
        return NULL;
    json_t *cc = json_object(), *codings = json_array();
    add_coding(codings, code, text, get(msg, seg, field, rep, 3, 1), default_system);
    add_coding(codings, alt, get(msg, seg, field, rep, 5, 1), get(msg, seg, field, rep, 6, 1), NULL);
    if (json_array_size(codings) != 0)
        json_object_set(cc, "coding", codings);
    json_decref(codings);
    set_str(cc, "text", text != NULL ? text : code);
    return cc;
}

/* ---- times ---- */

/* An HL7 timestamp as Unix seconds; one without an offset is local to ctx->tz. 0, or -1. */
static int read_time(const hl7_map_ctx_t *ctx, const char *text, long long *out)
{
    long long t;
    int precision;
    if (text == NULL || hl7_parse_dtm(text, 0, &t, &precision) != 0)
        return -1;
    if (strpbrk(text, "+-") == NULL && ctx->tz != NULL) {
        int64_t utc;
        if (sched_tz_local_to_utc(ctx->tz, t, &utc) != 0)
            return -1;
        t = utc;
    }
    *out = t;
    return 0;
}

/* A duration with its units (a CE such as "min^Minutes^ISO+", or "m", "s", "h"), in seconds; -1 when absent. */
static long long duration_seconds(const char *amount, const char *units)
{
    if (amount == NULL)
        return -1;
    char *end;
    double n = strtod(amount, &end);
    if (end == amount || n <= 0 || n > 1e6)
        return -1;
    long long unit = 60;
    if (units != NULL) {
        if (strcasecmp(units, "s") == 0 || strcasecmp(units, "sec") == 0 || strncasecmp(units, "second", 6) == 0)
            unit = 1;
        else if (strcasecmp(units, "h") == 0 || strcasecmp(units, "hr") == 0 || strncasecmp(units, "hour", 4) == 0)
            unit = 3600;
        else if (strcasecmp(units, "d") == 0 || strncasecmp(units, "day", 3) == 0)
            unit = 86400;
    }
    return (long long)(n * (double)unit);
}

/* Start and end: TQ1-7/8, else SCH-11.4/5, else the first AIS/AIL/AIP start with its duration (or SCH-9/10). */
static int read_timing(const hl7_msg_t *msg, const hl7_map_ctx_t *ctx, size_t sch, long long *start, long long *end, hl7_issue_t *issue)
{
    *start = *end = -1;
    long tq1 = hl7_find(msg, "TQ1", 0);
    if (tq1 >= 0) {
        const char *s = get(msg, (size_t)tq1, 7, 1, 1, 1), *e = get(msg, (size_t)tq1, 8, 1, 1, 1);
        if (s != NULL && read_time(ctx, s, start) != 0) {
            hl7_issue_set(issue, 102, "TQ1^1^7", "TQ1-7 (start date/time) is not a timestamp: %s", s);
            return -1;
        }
        if (e != NULL && read_time(ctx, e, end) != 0) {
            hl7_issue_set(issue, 102, "TQ1^1^8", "TQ1-8 (end date/time) is not a timestamp: %s", e);
            return -1;
        }
        if (*start >= 0 && *end < 0) {
            long long d = duration_seconds(get(msg, (size_t)tq1, 6, 1, 1, 1), get(msg, (size_t)tq1, 6, 1, 2, 1));
            if (d > 0)
                *end = *start + d;
        }
    }
    if (*start < 0) {
        const char *s = get(msg, sch, 11, 1, 4, 1), *e = get(msg, sch, 11, 1, 5, 1);
        if (s != NULL && read_time(ctx, s, start) != 0) {
            hl7_issue_set(issue, 102, "SCH^1^11", "SCH-11.4 (start date/time) is not a timestamp: %s", s);
            return -1;
        }
        if (*start >= 0 && e != NULL && read_time(ctx, e, end) != 0) {
            hl7_issue_set(issue, 102, "SCH^1^11", "SCH-11.5 (end date/time) is not a timestamp: %s", e);
            return -1;
        }
        if (*start >= 0 && *end < 0) {
            long long d = duration_seconds(get(msg, sch, 11, 1, 3, 1), NULL);
            if (d > 0)
                *end = *start + d;
        }
    }
    /* resource segments: start field, duration field, units field */
    static const struct {
        const char *name;
        unsigned start, duration, units;
    } res[] = {{"AIS", 4, 7, 8}, {"AIL", 6, 9, 10}, {"AIP", 6, 9, 10}, {"AIG", 8, 11, 12}};
    for (size_t i = 0; *start < 0 && i != sizeof(res) / sizeof(res[0]); ++i) {
        long seg = hl7_find(msg, res[i].name, 0);
        const char *s = seg >= 0 ? get(msg, (size_t)seg, res[i].start, 1, 1, 1) : NULL;
        if (s == NULL)
            continue;
        if (read_time(ctx, s, start) != 0) {
            hl7_issue_set(issue, 102, "", "%s-%u (start date/time) is not a timestamp: %s", res[i].name, res[i].start, s);
            return -1;
        }
        long long d = duration_seconds(get(msg, (size_t)seg, res[i].duration, 1, 1, 1), get(msg, (size_t)seg, res[i].units, 1, 1, 1));
        if (d > 0)
            *end = *start + d;
    }
    if (*start >= 0 && *end < 0) {
        long long d = duration_seconds(get(msg, sch, 9, 1, 1, 1), get(msg, sch, 10, 1, 1, 1));
        if (d > 0)
            *end = *start + d;
    }
    return 0;
}

/* ---- Patient (PID) ---- */

static json_t *human_name(const hl7_msg_t *msg, size_t seg, unsigned field, unsigned rep, unsigned first)
{
    /* XPN from `first`: family (FN: surname in sub-component 1), given, middle, suffix, prefix, degree, type; an XCN
     * carries the same after its id (first = 2). */
    const char *family = get(msg, seg, field, rep, first, 1), *given = get(msg, seg, field, rep, first + 1, 1);
    const char *middle = get(msg, seg, field, rep, first + 2, 1), *suffix = get(msg, seg, field, rep, first + 3, 1);
    const char *prefix = get(msg, seg, field, rep, first + 4, 1);
    if (family == NULL && given == NULL)
        return NULL;
    json_t *name = json_object();
    if (first == 1) {
        const char *type = get(msg, seg, field, rep, 7, 1);
        static const struct {
            const char *code, *use;
        } uses[] = {{"L", "official"}, {"M", "maiden"}, {"N", "nickname"}, {"A", "usual"}, {"D", "usual"}};
        for (size_t i = 0; type != NULL && i != sizeof(uses) / sizeof(uses[0]); ++i)
            if (strcmp(type, uses[i].code) == 0)
                json_object_set_new(name, "use", json_string(uses[i].use));
    }
    set_str(name, "family", family);
    json_t *givens = json_array();
    if (given != NULL)
        json_array_append_new(givens, json_string(given));
    if (middle != NULL)
        json_array_append_new(givens, json_string(middle));
    if (json_array_size(givens) != 0)
        json_object_set(name, "given", givens);
    json_decref(givens);
    if (prefix != NULL)
        json_object_set_new(name, "prefix", json_pack("[s]", prefix));
    if (suffix != NULL)
        json_object_set_new(name, "suffix", json_pack("[s]", suffix));
    return name;
}

/* YYYY, YYYY-MM or YYYY-MM-DD from the digits of a DTM (time of day ignored: a birth date is a date). */
static int fhir_date(const char *dtm, char *out, size_t len)
{
    long long t;
    int precision;
    if (dtm == NULL || hl7_parse_dtm(dtm, 0, &t, &precision) != 0)
        return -1;
    if (precision >= 8)
        snprintf(out, len, "%.4s-%.2s-%.2s", dtm, dtm + 4, dtm + 6);
    else if (precision >= 6)
        snprintf(out, len, "%.4s-%.2s", dtm, dtm + 4);
    else
        snprintf(out, len, "%.4s", dtm);
    return 0;
}

static json_t *address_at(const hl7_msg_t *msg, size_t seg, unsigned field, unsigned rep)
{
    const char *street = get(msg, seg, field, rep, 1, 1), *other = get(msg, seg, field, rep, 2, 1);
    const char *city = get(msg, seg, field, rep, 3, 1), *state = get(msg, seg, field, rep, 4, 1);
    const char *zip = get(msg, seg, field, rep, 5, 1), *country = get(msg, seg, field, rep, 6, 1);
    const char *type = get(msg, seg, field, rep, 7, 1);
    if (street == NULL && other == NULL && city == NULL && state == NULL && zip == NULL && country == NULL)
        return NULL;
    json_t *a = json_object(), *lines = json_array();
    if (type != NULL && (strcmp(type, "H") == 0 || strcmp(type, "P") == 0))
        json_object_set_new(a, "use", json_string("home"));
    else if (type != NULL && (strcmp(type, "B") == 0 || strcmp(type, "O") == 0))
        json_object_set_new(a, "use", json_string("work"));
    else if (type != NULL && strcmp(type, "C") == 0)
        json_object_set_new(a, "use", json_string("temp"));
    else if (type != NULL && strcmp(type, "M") == 0)
        json_object_set_new(a, "type", json_string("postal"));
    if (street != NULL)
        json_array_append_new(lines, json_string(street));
    if (other != NULL)
        json_array_append_new(lines, json_string(other));
    if (json_array_size(lines) != 0)
        json_object_set(a, "line", lines);
    json_decref(lines);
    set_str(a, "city", city);
    set_str(a, "state", state);
    set_str(a, "postalCode", zip);
    set_str(a, "country", country);
    return a;
}

/* The ContactPoints of one XTN (v2-to-FHIR IG): the number from XTN.1 (or XTN.5-7 and the XTN.8 extension), unless the
 * equipment type says Internet/X.400; the address XTN.4 when the equipment type says so, or when it holds an e-mail address
 * next to a number (older senders put both in one repetition). */
static void telecoms_at(json_t *out, const hl7_msg_t *msg, size_t seg, unsigned field, unsigned rep, const char *use)
{
    const char *number = get(msg, seg, field, rep, 1, 1), *equipment = get(msg, seg, field, rep, 3, 1);
    const char *address = get(msg, seg, field, rep, 4, 1), *country = get(msg, seg, field, rep, 5, 1);
    const char *area = get(msg, seg, field, rep, 6, 1), *local = get(msg, seg, field, rep, 7, 1), *ext = get(msg, seg, field, rep, 8, 1);
    bool internet = equipment != NULL && (strcasecmp(equipment, "Internet") == 0 || strcasecmp(equipment, "X.400") == 0);
    if (!internet) {
        char built[160];
        if (local != NULL) {
            snprintf(built, sizeof(built), "%s%s%s%s%s%s%s%s", country != NULL ? "+" : "", country != NULL ? country : "",
                     country != NULL ? " " : "", area != NULL ? "(" : "", area != NULL ? area : "", area != NULL ? ")" : "", local,
                     ext != NULL ? "" : "");
            if (ext != NULL)
                snprintf(built + strlen(built), sizeof(built) - strlen(built), " ext. %s", ext);
            if (number == NULL)
                number = built;
        }
        if (number != NULL) {
            const char *system = equipment != NULL && strcmp(equipment, "FX") == 0 ? "fax" : equipment != NULL && strcmp(equipment, "BP") == 0 ? "pager" : "phone";
            json_array_append_new(out, json_pack("{s:s,s:s,s:s}", "system", system, "value", number, "use",
                                                 equipment != NULL && strcmp(equipment, "CP") == 0 ? "mobile" : use));
        }
    }
    if (address != NULL && (internet || strchr(address, '@') != NULL))
        json_array_append_new(out, json_pack("{s:s,s:s,s:s}", "system", "email", "value", address, "use", use));
}

static json_t *patient_from_pid(const hl7_msg_t *msg, size_t pid, json_t **identifiers_out)
{
    json_t *p = json_pack("{s:s}", "resourceType", "Patient"), *ids = json_array(), *names = json_array();
    const char *version = hl7_version(msg);
    bool old = version != NULL && (strncmp(version, "2.3", 3) == 0 || strncmp(version, "2.4", 3) == 0);
    /* PID-3 is the patient identifier list; v2.3/2.4 also had PID-2 (external id) and PID-4 (alternate id). */
    unsigned fields[] = {3, 2, 4};
    for (size_t f = 0; f != (old ? 3u : 1u); ++f) {
        for (unsigned r = 1; r <= hl7_repetitions(msg, pid, fields[f]); ++r) {
            json_t *id = identifier_at(msg, pid, fields[f], r, 4, 5, NULL);
            if (id != NULL) {
                json_t *one = json_pack("[o]", id);
                merge_identifiers(ids, one);
                json_decref(one);
            }
        }
    }
    if (json_array_size(ids) != 0)
        json_object_set(p, "identifier", ids);
    for (unsigned r = 1; r <= hl7_repetitions(msg, pid, 5); ++r) {
        json_t *n = human_name(msg, pid, 5, r, 1);
        if (n != NULL)
            json_array_append_new(names, n);
    }
    if (json_array_size(names) != 0)
        json_object_set(p, "name", names);
    json_decref(names);
    const char *sex = get(msg, pid, 8, 1, 1, 1);
    if (sex != NULL) {
        const char *g = strcmp(sex, "M") == 0 ? "male" : strcmp(sex, "F") == 0 ? "female" : strcmp(sex, "O") == 0 || strcmp(sex, "A") == 0 ? "other" : "unknown";
        json_object_set_new(p, "gender", json_string(g));
    }
    char date[16];
    if (fhir_date(get(msg, pid, 7, 1, 1, 1), date, sizeof(date)) == 0)
        json_object_set_new(p, "birthDate", json_string(date));
    json_t *addresses = json_array(), *telecoms = json_array();
    for (unsigned r = 1; r <= hl7_repetitions(msg, pid, 11); ++r) {
        json_t *a = address_at(msg, pid, 11, r);
        if (a != NULL)
            json_array_append_new(addresses, a);
    }
    for (unsigned f = 13; f <= 14; ++f)
        for (unsigned r = 1; r <= hl7_repetitions(msg, pid, f); ++r)
            telecoms_at(telecoms, msg, pid, f, r, f == 13 ? "home" : "work");
    if (json_array_size(addresses) != 0)
        json_object_set(p, "address", addresses);
    if (json_array_size(telecoms) != 0)
        json_object_set(p, "telecom", telecoms);
    json_decref(addresses);
    json_decref(telecoms);
    const char *marital = get(msg, pid, 16, 1, 1, 1);
    if (marital != NULL) {
        bool v3 = strlen(marital) == 1 && strchr("ADILMPSTUW", marital[0]) != NULL;
        json_t *cc = json_object();
        if (v3)
            json_object_set_new(cc, "coding", json_pack("[{s:s,s:s}]", "system", "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                                                        "code", marital));
        set_str(cc, "text", get(msg, pid, 16, 1, 2, 1) != NULL ? get(msg, pid, 16, 1, 2, 1) : marital);
        json_object_set_new(p, "maritalStatus", cc);
    }
    long long died;
    const char *death = get(msg, pid, 29, 1, 1, 1), *dead = get(msg, pid, 30, 1, 1, 1);
    if (death != NULL && hl7_parse_dtm(death, 0, &died, &(int){0}) == 0 && fhir_date(death, date, sizeof(date)) == 0)
        json_object_set_new(p, "deceasedDateTime", json_string(date));
    else if (dead != NULL && (strcmp(dead, "Y") == 0 || strcmp(dead, "N") == 0))
        json_object_set_new(p, "deceasedBoolean", json_boolean(strcmp(dead, "Y") == 0));
    *identifiers_out = ids;
    return p;
}

json_t *hl7_patient_merge(const json_t *existing, const json_t *incoming)
{
    json_t *out = json_deep_copy(existing);
    static const char *const replaced[] = {"name", "gender", "birthDate", "address", "telecom", "maritalStatus"};
    for (size_t i = 0; i != sizeof(replaced) / sizeof(replaced[0]); ++i) {
        json_t *v = json_object_get(incoming, replaced[i]);
        if (v != NULL)
            json_object_set(out, replaced[i], v);
    }
    json_t *died = json_object_get(incoming, "deceasedDateTime"), *dead = json_object_get(incoming, "deceasedBoolean");
    if (died != NULL || dead != NULL) {
        json_object_del(out, "deceasedDateTime");
        json_object_del(out, "deceasedBoolean");
        json_object_set(out, died != NULL ? "deceasedDateTime" : "deceasedBoolean", died != NULL ? died : dead);
    }
    json_t *ids = json_object_get(out, "identifier");
    if (!json_is_array(ids)) {
        ids = json_array();
        json_object_set_new(out, "identifier", ids);
    }
    merge_identifiers(ids, json_object_get(incoming, "identifier"));
    if (json_array_size(ids) == 0)
        json_object_del(out, "identifier");
    return out;
}

/* ---- SIU parties (AIP, AIL) ---- */

static void party_dispose(hl7_party_t *p)
{
    json_decref(p->identifiers);
    json_decref(p->resource);
    json_decref(p->participant_type);
    memset(p, 0, sizeof(*p));
}

static hl7_party_t *party_add(hl7_plan_t *plan)
{
    plan->parties = util_xrealloc(plan->parties, (plan->nparties + 1) * sizeof(*plan->parties));
    hl7_party_t *p = &plan->parties[plan->nparties++];
    memset(p, 0, sizeof(*p));
    return p;
}

static bool deleted_action(const hl7_msg_t *msg, size_t seg)
{
    const char *action = get(msg, seg, 2, 1, 1, 1);
    return action != NULL && strcmp(action, "D") == 0;
}

static void read_practitioner(hl7_plan_t *plan, const hl7_msg_t *msg, size_t seg, json_t *warnings)
{
    json_t *id = identifier_at(msg, seg, 3, 1, 9, 13, NULL);
    if (id == NULL) {
        json_array_append_new(warnings, json_string("an AIP without a personnel id (AIP-3.1) was not mapped"));
        return;
    }
    hl7_party_t *p = party_add(plan);
    p->type = "Practitioner";
    p->identifiers = json_pack("[o]", id);
    p->resource = json_pack("{s:s,s:O}", "resourceType", "Practitioner", "identifier", p->identifiers);
    json_t *name = human_name(msg, seg, 3, 1, 2);
    if (name != NULL)
        json_object_set_new(p->resource, "name", json_pack("[o]", name));
    json_t *role = concept_at(msg, seg, 4, 1, NULL);
    if (role != NULL)
        p->participant_type = json_pack("[o]", role);
    p->remove = deleted_action(msg, seg);
}

static void read_location(hl7_plan_t *plan, const hl7_msg_t *msg, size_t seg, json_t *warnings)
{
    const char *point = get(msg, seg, 3, 1, 1, 1), *room = get(msg, seg, 3, 1, 2, 1), *facility = get(msg, seg, 3, 1, 4, 1);
    const char *description = get(msg, seg, 3, 1, 9, 1);
    if (point == NULL && room == NULL) {
        json_array_append_new(warnings, json_string("an AIL without a point of care or room (AIL-3.1, AIL-3.2) was not mapped"));
        return;
    }
    char *value = util_asprintf("%s%s%s", point != NULL ? point : "", room != NULL ? "^" : "", room != NULL ? room : "");
    char *system = hl7_system_uri(NULL, NULL, NULL, sender_namespace(msg));
    hl7_party_t *p = party_add(plan);
    p->type = "Location";
    p->identifiers = json_pack("[{s:s,s:s}]", "system", system, "value", value);
    const char *name = description != NULL ? description : room != NULL ? room : point != NULL ? point : facility;
    p->resource = json_pack("{s:s,s:O,s:s,s:s}", "resourceType", "Location", "identifier", p->identifiers, "status", "active", "name", name);
    json_t *type = concept_at(msg, seg, 4, 1, NULL);
    if (type != NULL)
        p->participant_type = json_pack("[o]", type);
    p->remove = deleted_action(msg, seg);
    free(value);
    free(system);
}

/* ---- the plan ---- */

void hl7_plan_dispose(hl7_plan_t *plan)
{
    party_dispose(&plan->patient);
    party_dispose(&plan->merged);
    for (size_t i = 0; i != plan->nparties; ++i)
        party_dispose(&plan->parties[i]);
    free(plan->parties);
    json_decref(plan->appointment);
    json_decref(plan->appointment_ids);
    json_decref(plan->warnings);
    memset(plan, 0, sizeof(*plan));
}

static const char *const SIU_EVENTS[] = {"S12", "S13", "S14", "S15", "S17", "S26"};
static const char *const ADT_EVENTS[] = {"A04", "A08", "A28", "A31", "A40"};

static bool one_of(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; s != NULL && i != n; ++i)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

static hl7_ack_code_t read_patient(hl7_plan_t *plan, const hl7_msg_t *msg, hl7_issue_t *issue, bool required)
{
    long pid = hl7_find(msg, "PID", 0);
    if (pid < 0) {
        if (!required)
            return HL7_ACK_AA;
        hl7_issue_set(issue, 100, "PID", "the message has no PID segment");
        return HL7_ACK_AE;
    }
    json_t *ids;
    plan->patient.type = "Patient";
    plan->patient.resource = patient_from_pid(msg, (size_t)pid, &ids);
    plan->patient.identifiers = ids;
    if (json_array_size(ids) == 0) {
        hl7_issue_set(issue, 101, "PID^1^3", "PID-3 (patient identifier list) is empty: the patient cannot be found or kept apart");
        return HL7_ACK_AE;
    }
    plan->has_patient = true;
    return HL7_ACK_AA;
}

static hl7_ack_code_t read_siu(hl7_plan_t *plan, const hl7_msg_t *msg, const hl7_map_ctx_t *ctx, hl7_issue_t *issue)
{
    long sch_at = hl7_find(msg, "SCH", 0);
    if (sch_at < 0) {
        hl7_issue_set(issue, 100, "SCH", "an SIU message needs an SCH segment");
        return HL7_ACK_AE;
    }
    size_t sch = (size_t)sch_at;
    plan->appointment_ids = json_array();
    json_t *filler = identifier_at(msg, sch, 2, 1, 0, 0, "FILL"), *placer = identifier_at(msg, sch, 1, 1, 0, 0, "PLAC");
    if (filler != NULL)
        json_array_append_new(plan->appointment_ids, filler);
    if (placer != NULL)
        json_array_append_new(plan->appointment_ids, placer);
    if (json_array_size(plan->appointment_ids) == 0) {
        hl7_issue_set(issue, 101, "SCH^1^1", "SCH-1 (placer appointment id) and SCH-2 (filler appointment id) are both empty");
        return HL7_ACK_AE;
    }
    hl7_ack_code_t code = read_patient(plan, msg, issue, false);
    if (code != HL7_ACK_AA)
        return code;

    json_t *a = plan->appointment = json_object(), *warnings = plan->warnings;
    long long start, end;
    if (read_timing(msg, ctx, sch, &start, &end, issue) != 0)
        return HL7_ACK_AE;
    if (start >= 0 && end > start) {
        char s[40], e[40];
        sched_format_instant(start, s, sizeof(s));
        sched_format_instant(end, e, sizeof(e));
        json_object_set_new(a, "start", json_string(s));
        json_object_set_new(a, "end", json_string(e));
        json_object_set_new(a, "minutesDuration", json_integer((end - start + 59) / 60));
    } else if (start >= 0) {
        hl7_issue_set(issue, 101, "SCH^1^11", "the appointment has a start but no end or duration (TQ1-8, SCH-11.5, SCH-9)");
        return HL7_ACK_AE;
    }
    json_t *reason = concept_at(msg, sch, 7, 1, NULL);
    if (reason != NULL)
        json_object_set_new(a, "reasonCode", json_pack("[o]", reason));
    json_t *type = concept_at(msg, sch, 8, 1, NULL);
    if (type != NULL) {
        static const char *const table0276[] = {"CHECKUP", "EMERGENCY", "FOLLOWUP", "ROUTINE", "WALKIN"};
        json_t *coding = json_array_get(json_object_get(type, "coding"), 0);
        const char *c = json_string_value(json_object_get(coding, "code"));
        if (coding != NULL && json_object_get(coding, "system") == NULL && one_of(c, table0276, 5))
            json_object_set_new(coding, "system", json_string(V2_TABLE("0276")));
        json_object_set_new(a, "appointmentType", type);
    }
    json_t *event_reason = concept_at(msg, sch, 6, 1, NULL);
    if (event_reason != NULL && strcmp(plan->event, "S15") == 0)
        json_object_set_new(a, "cancelationReason", event_reason);
    else
        json_decref(event_reason);
    util_buf_t comment;
    util_buf_init(&comment);
    /* the SCH group's notes: NTE segments after SCH and its TQ1s */
    for (size_t s = sch + 1; s < hl7_segment_count(msg); ++s) {
        const char *seg = hl7_segment_name(msg, s);
        if (strcmp(seg, "TQ1") == 0)
            continue;
        if (strcmp(seg, "NTE") != 0)
            break;
        const char *text = get(msg, s, 3, 1, 1, 1), *source = get(msg, s, 2, 1, 1, 1);
        /* "NTE||text": a sender that dropped the set id puts the comment where the source code (table 0105) belongs */
        if (text == NULL && source != NULL && strlen(source) > 1)
            text = source;
        if (text == NULL)
            continue;
        if (comment.len != 0)
            util_buf_puts(&comment, "\n");
        util_buf_puts(&comment, text);
    }
    if (comment.len != 0)
        json_object_set_new(a, "comment", json_string(comment.base));
    util_buf_dispose(&comment);
    json_t *services = json_array();
    for (size_t s = 0; s != hl7_segment_count(msg); ++s) {
        const char *name = hl7_segment_name(msg, s);
        if (strcmp(name, "AIS") == 0 && !deleted_action(msg, s)) {
            json_t *svc = concept_at(msg, s, 3, 1, NULL);
            if (svc != NULL)
                json_array_append_new(services, svc);
        } else if (strcmp(name, "AIP") == 0) {
            read_practitioner(plan, msg, s, warnings);
        } else if (strcmp(name, "AIL") == 0) {
            read_location(plan, msg, s, warnings);
        }
    }
    if (json_array_size(services) != 0)
        json_object_set(a, "serviceType", services);
    json_decref(services);
    return HL7_ACK_AA;
}

hl7_ack_code_t hl7_plan_build(hl7_plan_t *plan, const hl7_msg_t *msg, const hl7_map_ctx_t *ctx, hl7_issue_t *issue)
{
    memset(plan, 0, sizeof(*plan));
    plan->warnings = json_array();
    const char *code = hl7_message_code(msg), *event = hl7_trigger_event(msg);
    if (code == NULL || (strcmp(code, "SIU") != 0 && strcmp(code, "ADT") != 0)) {
        hl7_issue_set(issue, 200, "MSH^1^9", "message type %s is not supported (SIU and ADT are)", code != NULL ? code : "(empty)");
        return HL7_ACK_AR;
    }
    bool siu = strcmp(code, "SIU") == 0;
    if (!(siu ? one_of(event, SIU_EVENTS, 6) : one_of(event, ADT_EVENTS, 5))) {
        hl7_issue_set(issue, 201, "MSH^1^9", "event %s^%s is not supported (%s)", code, event != NULL ? event : "(empty)",
                      siu ? "S12, S13, S14, S15, S17, S26" : "A04, A08, A28, A31, A40");
        return HL7_ACK_AR;
    }
    snprintf(plan->event, sizeof(plan->event), "%s", event);
    if (siu) {
        plan->kind = HL7_KIND_SIU;
        return read_siu(plan, msg, ctx, issue);
    }
    hl7_ack_code_t ret = read_patient(plan, msg, issue, true);
    if (ret != HL7_ACK_AA || strcmp(event, "A40") != 0) {
        plan->kind = HL7_KIND_ADT_PATIENT;
        return ret;
    }
    plan->kind = HL7_KIND_ADT_MERGE;
    long mrg = hl7_find(msg, "MRG", 0);
    json_t *ids = json_array();
    for (unsigned r = 1; mrg >= 0 && r <= hl7_repetitions(msg, (size_t)mrg, 1); ++r) {
        json_t *id = identifier_at(msg, (size_t)mrg, 1, r, 4, 5, NULL);
        if (id != NULL)
            json_array_append_new(ids, id);
    }
    plan->merged.type = "Patient";
    plan->merged.identifiers = ids;
    if (json_array_size(ids) == 0) {
        hl7_issue_set(issue, 101, "MRG^1^1", "A40 needs MRG-1 (the prior patient identifier list)");
        return HL7_ACK_AE;
    }
    return HL7_ACK_AA;
}

/* ---- the Appointment after an SIU ---- */

static const char *status_for(const char *event, const json_t *existing)
{
    if (strcmp(event, "S15") == 0)
        return "cancelled";
    if (strcmp(event, "S17") == 0)
        return "entered-in-error";
    if (strcmp(event, "S26") == 0)
        return "noshow";
    const char *current = json_string_value(json_object_get(existing, "status"));
    if (strcmp(event, "S14") == 0 && current != NULL)
        return current;
    return "booked";
}

static bool participant_is(const json_t *participant, const char *type)
{
    const char *ref = json_string_value(json_object_get(json_object_get(participant, "actor"), "reference"));
    size_t n = strlen(type);
    return ref != NULL && strncmp(ref, type, n) == 0 && ref[n] == '/';
}

static bool participant_refers(const json_t *participant, const char *ref)
{
    const char *r = json_string_value(json_object_get(json_object_get(participant, "actor"), "reference"));
    return r != NULL && strcmp(r, ref) == 0;
}

json_t *hl7_appointment_apply(const json_t *existing, const hl7_plan_t *plan, const char *patient_ref, char *const *party_refs,
                              hl7_issue_t *issue)
{
    json_t *a = existing != NULL ? json_deep_copy(existing) : json_pack("{s:s}", "resourceType", "Appointment");
    const char *key;
    json_t *v;
    json_object_foreach(plan->appointment, key, v) {
        json_object_set(a, key, v);
    }
    json_object_set_new(a, "status", json_string(status_for(plan->event, existing)));
    json_t *ids = json_object_get(a, "identifier");
    if (!json_is_array(ids)) {
        ids = json_array();
        json_object_set_new(a, "identifier", ids);
    }
    merge_identifiers(ids, plan->appointment_ids);

    /* Participants: the message's replace the stored ones of the same kind; a D action removes one. */
    json_t *old = json_object_get(a, "participant"), *parts = json_array();
    bool has_prac = false, has_loc = false;
    for (size_t i = 0; i != plan->nparties; ++i) {
        has_prac |= strcmp(plan->parties[i].type, "Practitioner") == 0;
        has_loc |= strcmp(plan->parties[i].type, "Location") == 0;
    }
    size_t i;
    json_t *p;
    json_array_foreach(old, i, p) {
        if ((patient_ref != NULL && participant_is(p, "Patient")) || (has_prac && participant_is(p, "Practitioner")) ||
            (has_loc && participant_is(p, "Location")))
            continue;
        json_array_append(parts, p);
    }
    if (patient_ref != NULL)
        json_array_append_new(parts, json_pack("{s:{s:s},s:s,s:s}", "actor", "reference", patient_ref, "required", "required", "status",
                                               "accepted"));
    for (size_t k = 0; k != plan->nparties; ++k) {
        if (plan->parties[k].remove || party_refs[k] == NULL)
            continue;
        bool dup = false;
        json_array_foreach(parts, i, p) {
            dup |= participant_refers(p, party_refs[k]);
        }
        if (dup)
            continue;
        json_t *np = json_pack("{s:{s:s},s:s,s:s}", "actor", "reference", party_refs[k], "required", "required", "status", "accepted");
        if (plan->parties[k].participant_type != NULL)
            json_object_set(np, "type", plan->parties[k].participant_type);
        json_array_append_new(parts, np);
    }
    json_object_set_new(a, "participant", parts);
    if (json_array_size(parts) == 0) {
        hl7_issue_set(issue, 101, "PID", "the appointment has no participant (no PID, AIP or AIL that could be mapped)");
        json_decref(a);
        return NULL;
    }
    const char *status = json_string_value(json_object_get(a, "status"));
    bool needs_times = status != NULL && strcmp(status, "cancelled") != 0 && strcmp(status, "entered-in-error") != 0 &&
                       strcmp(status, "noshow") != 0;
    if (needs_times && (json_object_get(a, "start") == NULL || json_object_get(a, "end") == NULL)) {
        hl7_issue_set(issue, 101, "SCH^1^11", "no start and end could be read (TQ1-7/8, SCH-11.4/5, or AIS/AIL/AIP start with a duration)");
        json_decref(a);
        return NULL;
    }
    return a;
}

char *hl7_identifier_query(const json_t *identifiers)
{
    util_buf_t token, out;
    util_buf_init(&out);
    util_buf_puts(&out, "identifier=");
    size_t i;
    json_t *id;
    json_array_foreach(identifiers, i, id) {
        util_buf_init(&token);
        /* FHIR search escapes: \ , $ | inside a token's parts */
        const char *parts[2] = {json_string_value(json_object_get(id, "system")), json_string_value(json_object_get(id, "value"))};
        for (int k = 0; k != 2; ++k) {
            if (k == 1)
                util_buf_puts(&token, "|");
            for (const char *c = parts[k] != NULL ? parts[k] : ""; *c != '\0'; ++c) {
                if (strchr("\\,$|", *c) != NULL)
                    util_buf_puts(&token, "\\");
                util_buf_append(&token, c, 1);
            }
        }
        if (i != 0)
            util_buf_puts(&out, ",");
        fhir_url_encode(&out, token.base);
        util_buf_dispose(&token);
    }
    return out.base;
}
