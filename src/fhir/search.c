#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "fhir/search.h"
#include "fhir/types.h"

#define SP(name) "http://hl7.org/fhir/SearchParameter/" name

/* Paths that select a reference to a given type among participants/actors. */
#define ACTOR_OF(base, t) base " ? (@.reference like_regex \"^(.*/)?" t "/\")"

/* The supported parameters. The all-types ones (_id, _lastUpdated) are handled on columns, see build_clause. */
static const fhir_search_param_t search_params[] = {
    {NULL, "_id", FHIR_SEARCH_TOKEN, FHIR_VALUE_PRIMITIVE, {NULL}, SP("Resource-id")},
    {NULL, "_lastUpdated", FHIR_SEARCH_DATE, FHIR_VALUE_DATE, {NULL}, SP("Resource-lastUpdated")},
    {NULL, "_tag", FHIR_SEARCH_TOKEN, FHIR_VALUE_CODING, {"$.meta.tag[*]"}, SP("Resource-tag")},
    {NULL, "_security", FHIR_SEARCH_TOKEN, FHIR_VALUE_CODING, {"$.meta.security[*]"}, SP("Resource-security")},
    {NULL, "_profile", FHIR_SEARCH_TOKEN, FHIR_VALUE_PRIMITIVE, {"$.meta.profile[*]"}, SP("Resource-profile")},

    {"Appointment", "identifier", FHIR_SEARCH_TOKEN, FHIR_VALUE_IDENTIFIER, {"$.identifier[*]"}, SP("clinical-identifier")},
    {"Appointment", "status", FHIR_SEARCH_TOKEN, FHIR_VALUE_PRIMITIVE, {"$.status"}, SP("Appointment-status")},
    {"Appointment", "date", FHIR_SEARCH_DATE, FHIR_VALUE_DATE, {"$.start"}, SP("Appointment-date")},
    {"Appointment", "actor", FHIR_SEARCH_REFERENCE, FHIR_VALUE_REFERENCE, {"$.participant[*].actor"}, SP("Appointment-actor")},
    {"Appointment", "patient", FHIR_SEARCH_REFERENCE, FHIR_VALUE_REFERENCE, {ACTOR_OF("$.participant[*].actor", "Patient")},
     SP("clinical-patient")},
    {"Appointment", "practitioner", FHIR_SEARCH_REFERENCE, FHIR_VALUE_REFERENCE,
     {ACTOR_OF("$.participant[*].actor", "Practitioner")}, SP("Appointment-practitioner")},
    {"Appointment", "location", FHIR_SEARCH_REFERENCE, FHIR_VALUE_REFERENCE, {ACTOR_OF("$.participant[*].actor", "Location")},
     SP("Appointment-location")},
    {"Appointment", "part-status", FHIR_SEARCH_TOKEN, FHIR_VALUE_PRIMITIVE, {"$.participant[*].status"},
     SP("Appointment-part-status")},
    {"Appointment", "slot", FHIR_SEARCH_REFERENCE, FHIR_VALUE_REFERENCE, {"$.slot[*]"}, SP("Appointment-slot")},
    {"Appointment", "service-type", FHIR_SEARCH_TOKEN, FHIR_VALUE_CODING, {"$.serviceType[*].coding[*]"},
     SP("Appointment-service-type")},
    {"Appointment", "specialty", FHIR_SEARCH_TOKEN, FHIR_VALUE_CODING, {"$.specialty[*].coding[*]"}, SP("Appointment-specialty")},
    {"Appointment", "appointment-type", FHIR_SEARCH_TOKEN, FHIR_VALUE_CODING, {"$.appointmentType.coding[*]"},
     SP("Appointment-appointment-type")},

    {"AppointmentResponse", "identifier", FHIR_SEARCH_TOKEN, FHIR_VALUE_IDENTIFIER, {"$.identifier[*]"},
     SP("AppointmentResponse-identifier")},
    {"AppointmentResponse", "appointment", FHIR_SEARCH_REFERENCE, FHIR_VALUE_REFERENCE, {"$.appointment"},
     SP("AppointmentResponse-appointment")},
    {"AppointmentResponse", "actor", FHIR_SEARCH_REFERENCE, FHIR_VALUE_REFERENCE, {"$.actor"}, SP("AppointmentResponse-actor")},
    {"AppointmentResponse", "part-status", FHIR_SEARCH_TOKEN, FHIR_VALUE_PRIMITIVE, {"$.participantStatus"},
     SP("AppointmentResponse-part-status")},

    {"HealthcareService", "identifier", FHIR_SEARCH_TOKEN, FHIR_VALUE_IDENTIFIER, {"$.identifier[*]"},
     SP("HealthcareService-identifier")},
    {"HealthcareService", "name", FHIR_SEARCH_STRING, FHIR_VALUE_STRING, {"$.name"}, SP("HealthcareService-name")},
    {"HealthcareService", "active", FHIR_SEARCH_TOKEN, FHIR_VALUE_PRIMITIVE, {"$.active"}, SP("HealthcareService-active")},
    {"HealthcareService", "location", FHIR_SEARCH_REFERENCE, FHIR_VALUE_REFERENCE, {"$.location[*]"},
     SP("HealthcareService-location")},
    {"HealthcareService", "service-type", FHIR_SEARCH_TOKEN, FHIR_VALUE_CODING, {"$.type[*].coding[*]"},
     SP("HealthcareService-service-type")},

    {"Location", "identifier", FHIR_SEARCH_TOKEN, FHIR_VALUE_IDENTIFIER, {"$.identifier[*]"}, SP("Location-identifier")},
    {"Location", "name", FHIR_SEARCH_STRING, FHIR_VALUE_STRING, {"$.name", "$.alias[*]"}, SP("Location-name")},
    {"Location", "status", FHIR_SEARCH_TOKEN, FHIR_VALUE_PRIMITIVE, {"$.status"}, SP("Location-status")},
    {"Location", "type", FHIR_SEARCH_TOKEN, FHIR_VALUE_CODING, {"$.type[*].coding[*]"}, SP("Location-type")},
    {"Location", "partof", FHIR_SEARCH_REFERENCE, FHIR_VALUE_REFERENCE, {"$.partOf"}, SP("Location-partof")},
    {"Location", "address-city", FHIR_SEARCH_STRING, FHIR_VALUE_STRING, {"$.address.city"}, SP("Location-address-city")},

    {"Patient", "identifier", FHIR_SEARCH_TOKEN, FHIR_VALUE_IDENTIFIER, {"$.identifier[*]"}, SP("Patient-identifier")},
    {"Patient", "name", FHIR_SEARCH_STRING, FHIR_VALUE_STRING,
     {"$.name[*].family", "$.name[*].given[*]", "$.name[*].text", "$.name[*].prefix[*]"}, SP("Patient-name")},
    {"Patient", "family", FHIR_SEARCH_STRING, FHIR_VALUE_STRING, {"$.name[*].family"}, SP("individual-family")},
    {"Patient", "given", FHIR_SEARCH_STRING, FHIR_VALUE_STRING, {"$.name[*].given[*]"}, SP("individual-given")},
    {"Patient", "birthdate", FHIR_SEARCH_DATE, FHIR_VALUE_DATE, {"$.birthDate"}, SP("individual-birthdate")},
    {"Patient", "gender", FHIR_SEARCH_TOKEN, FHIR_VALUE_PRIMITIVE, {"$.gender"}, SP("individual-gender")},
    {"Patient", "active", FHIR_SEARCH_TOKEN, FHIR_VALUE_PRIMITIVE, {"$.active"}, SP("Patient-active")},
    {"Patient", "telecom", FHIR_SEARCH_TOKEN, FHIR_VALUE_CONTACT, {"$.telecom[*]"}, SP("individual-telecom")},

    {"Practitioner", "identifier", FHIR_SEARCH_TOKEN, FHIR_VALUE_IDENTIFIER, {"$.identifier[*]"}, SP("Practitioner-identifier")},
    {"Practitioner", "name", FHIR_SEARCH_STRING, FHIR_VALUE_STRING,
     {"$.name[*].family", "$.name[*].given[*]", "$.name[*].text", "$.name[*].prefix[*]"}, SP("Practitioner-name")},
    {"Practitioner", "family", FHIR_SEARCH_STRING, FHIR_VALUE_STRING, {"$.name[*].family"}, SP("individual-family")},
    {"Practitioner", "given", FHIR_SEARCH_STRING, FHIR_VALUE_STRING, {"$.name[*].given[*]"}, SP("individual-given")},
    {"Practitioner", "active", FHIR_SEARCH_TOKEN, FHIR_VALUE_PRIMITIVE, {"$.active"}, SP("Practitioner-active")},
    {"Practitioner", "gender", FHIR_SEARCH_TOKEN, FHIR_VALUE_PRIMITIVE, {"$.gender"}, SP("individual-gender")},

    {"PractitionerRole", "identifier", FHIR_SEARCH_TOKEN, FHIR_VALUE_IDENTIFIER, {"$.identifier[*]"},
     SP("PractitionerRole-identifier")},
    {"PractitionerRole", "practitioner", FHIR_SEARCH_REFERENCE, FHIR_VALUE_REFERENCE, {"$.practitioner"},
     SP("PractitionerRole-practitioner")},
    {"PractitionerRole", "location", FHIR_SEARCH_REFERENCE, FHIR_VALUE_REFERENCE, {"$.location[*]"},
     SP("PractitionerRole-location")},
    {"PractitionerRole", "service", FHIR_SEARCH_REFERENCE, FHIR_VALUE_REFERENCE, {"$.healthcareService[*]"},
     SP("PractitionerRole-service")},
    {"PractitionerRole", "specialty", FHIR_SEARCH_TOKEN, FHIR_VALUE_CODING, {"$.specialty[*].coding[*]"},
     SP("PractitionerRole-specialty")},
    {"PractitionerRole", "active", FHIR_SEARCH_TOKEN, FHIR_VALUE_PRIMITIVE, {"$.active"}, SP("PractitionerRole-active")},

    {"Schedule", "identifier", FHIR_SEARCH_TOKEN, FHIR_VALUE_IDENTIFIER, {"$.identifier[*]"}, SP("Schedule-identifier")},
    {"Schedule", "actor", FHIR_SEARCH_REFERENCE, FHIR_VALUE_REFERENCE, {"$.actor[*]"}, SP("Schedule-actor")},
    {"Schedule", "active", FHIR_SEARCH_TOKEN, FHIR_VALUE_PRIMITIVE, {"$.active"}, SP("Schedule-active")},
    {"Schedule", "date", FHIR_SEARCH_DATE, FHIR_VALUE_DATE, {"$.planningHorizon"}, SP("Schedule-date")},

    {"Slot", "identifier", FHIR_SEARCH_TOKEN, FHIR_VALUE_IDENTIFIER, {"$.identifier[*]"}, SP("Slot-identifier")},
    {"Slot", "schedule", FHIR_SEARCH_REFERENCE, FHIR_VALUE_REFERENCE, {"$.schedule"}, SP("Slot-schedule")},
    {"Slot", "status", FHIR_SEARCH_TOKEN, FHIR_VALUE_PRIMITIVE, {"$.status"}, SP("Slot-status")},
    {"Slot", "start", FHIR_SEARCH_DATE, FHIR_VALUE_DATE, {"$.start"}, SP("Slot-start")},

    {"Subscription", "status", FHIR_SEARCH_TOKEN, FHIR_VALUE_PRIMITIVE, {"$.status"}, SP("Subscription-status")},
    {"Subscription", "criteria", FHIR_SEARCH_STRING, FHIR_VALUE_STRING, {"$.criteria"}, SP("Subscription-criteria")},
    {"Subscription", "type", FHIR_SEARCH_TOKEN, FHIR_VALUE_PRIMITIVE, {"$.channel.type"}, SP("Subscription-type")},
    {"Subscription", "url", FHIR_SEARCH_TOKEN, FHIR_VALUE_PRIMITIVE, {"$.channel.endpoint"}, SP("Subscription-url")},
};
#define SEARCH_PARAM_COUNT (sizeof(search_params) / sizeof(search_params[0]))

/* Date prefixes and the fhir_range_match() argument they map to. */
static const char *const date_prefixes[] = {"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"};

const fhir_search_param_t *fhir_search_param_at(const char *type, size_t i)
{
    for (size_t k = 0; k != SEARCH_PARAM_COUNT; ++k) {
        const fhir_search_param_t *p = &search_params[k];
        if (p->type == NULL || strcmp(p->type, type) == 0) {
            if (i-- == 0)
                return p;
        }
    }
    return NULL;
}

static const fhir_search_param_t *find_param(const char *type, const char *code)
{
    for (size_t k = 0; k != SEARCH_PARAM_COUNT; ++k) {
        const fhir_search_param_t *p = &search_params[k];
        if ((p->type == NULL || strcmp(p->type, type) == 0) && strcmp(p->code, code) == 0)
            return p;
    }
    return NULL;
}

/* ---- URL coding ---- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *fhir_url_decode(const char *s, size_t len)
{
    char *out = util_xmalloc(len + 1), *d = out;
    for (size_t i = 0; i < len; ++i) {
        if (s[i] == '%') {
            int hi, lo;
            if (i + 2 >= len || (hi = hexval((unsigned char)s[i + 1])) < 0 || (lo = hexval((unsigned char)s[i + 2])) < 0) {
                free(out);
                return NULL;
            }
            *d = (char)(hi * 16 + lo);
            if (*d == '\0') {
                free(out);
                return NULL;
            }
            ++d;
            i += 2;
        } else {
            *d++ = s[i];
        }
    }
    *d = '\0';
    return out;
}

int fhir_query_next(const char **cursor, const char *end, char **name, char **value)
{
    const char *p = *cursor;
    while (p < end && *p == '&')
        ++p;
    if (p >= end) {
        *cursor = end;
        return 0;
    }
    const char *amp = memchr(p, '&', (size_t)(end - p));
    if (amp == NULL)
        amp = end;
    const char *eq = memchr(p, '=', (size_t)(amp - p));
    *name = fhir_url_decode(p, (size_t)((eq != NULL ? eq : amp) - p));
    *value = eq != NULL ? fhir_url_decode(eq + 1, (size_t)(amp - eq - 1)) : util_xstrdup("");
    *cursor = amp;
    if (*name == NULL || *value == NULL) {
        free(*name);
        free(*value);
        *name = *value = NULL;
        return -1;
    }
    return 1;
}

void fhir_url_encode(util_buf_t *buf, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; ++p) {
        if (isalnum(*p) || strchr("-._~:/|,", *p) != NULL) {
            util_buf_append(buf, (const char *)p, 1);
        } else {
            char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            util_buf_append(buf, esc, 3);
        }
    }
}

/* ---- building ---- */

static int add_param(fhir_search_t *s, const char *value)
{
    if (s->nparams == s->_capacity) {
        s->_capacity = s->_capacity ? s->_capacity * 2 : 8;
        s->params = util_xrealloc(s->params, s->_capacity * sizeof(*s->params));
    }
    s->params[s->nparams++] = util_xstrdup(value);
    return s->nparams;
}

/* Splits a parameter value on unescaped commas into `parts` (FHIR escapes: \, \| \$ \\); returns how many. */
static size_t split_values(const char *value, char ***parts)
{
    size_t n = 0, cap = 4;
    char **out = util_xmalloc(cap * sizeof(*out));
    util_buf_t cur;
    util_buf_init(&cur);
    for (const char *p = value;; ++p) {
        if (*p == '\\' && p[1] != '\0' && strchr(",|$\\", p[1]) != NULL) {
            /* keep the escape for '|' so that token splitting can still tell it apart */
            if (p[1] == '|')
                util_buf_append(&cur, p, 1);
            util_buf_append(&cur, p + 1, 1);
            ++p;
        } else if (*p == ',' || *p == '\0') {
            if (n == cap)
                out = util_xrealloc(out, (cap *= 2) * sizeof(*out));
            out[n++] = util_xstrndup(cur.base, cur.len);
            cur.len = 0;
            if (*p == '\0')
                break;
        } else {
            util_buf_append(&cur, p, 1);
        }
    }
    util_buf_dispose(&cur);
    *parts = out;
    return n;
}

/* Splits a token "system|code" at the first unescaped '|'. system is NULL when there is no bar. */
static void split_token(const char *value, char **system, char **code)
{
    util_buf_t buf;
    util_buf_init(&buf);
    *system = NULL;
    for (const char *p = value; *p != '\0'; ++p) {
        if (*p == '\\' && p[1] == '|') {
            util_buf_append(&buf, "|", 1);
            ++p;
        } else if (*p == '|' && *system == NULL) {
            *system = util_xstrndup(buf.base, buf.len);
            buf.len = 0;
        } else {
            util_buf_append(&buf, p, 1);
        }
    }
    *code = util_xstrndup(buf.base, buf.len);
    util_buf_dispose(&buf);
}

/* LIKE pattern: the value with wildcards escaped. */
static char *like_escape(const char *value)
{
    util_buf_t buf;
    util_buf_init(&buf);
    for (const char *p = value; *p != '\0'; ++p) {
        if (*p == '%' || *p == '_' || *p == '\\')
            util_buf_append(&buf, "\\", 1);
        util_buf_append(&buf, p, 1);
    }
    char *r = util_xstrndup(buf.base, buf.len);
    util_buf_dispose(&buf);
    return r;
}

static bool digits(const char *p, int n)
{
    for (int i = 0; i != n; ++i)
        if (p[i] < '0' || p[i] > '9')
            return false;
    return true;
}

static int number(const char *p, int n)
{
    int v = 0;
    for (int i = 0; i != n; ++i)
        v = v * 10 + (p[i] - '0');
    return v;
}

/*
 * Search values are looser than the dateTime datatype: any precision from a year down to fractions of a second, with the
 * time zone optional (YYYY[-MM[-DD[Thh:mm[:ss[.f+]][Z|(+|-)hh:mm]]]]). fhir_date_range() in SQL reads the same forms.
 */
static bool is_date_value(const char *v)
{
    static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    size_t len = strlen(v);
    if (len < 4 || !digits(v, 4))
        return false;
    if (len == 4)
        return true;
    if (len < 7 || v[4] != '-' || !digits(v + 5, 2) || number(v + 5, 2) < 1 || number(v + 5, 2) > 12)
        return false;
    int month = number(v + 5, 2);
    if (len == 7)
        return true;
    if (len < 10 || v[7] != '-' || !digits(v + 8, 2) || number(v + 8, 2) < 1 || number(v + 8, 2) > days[month - 1])
        return false;
    if (len == 10)
        return true;
    if (len < 16 || v[10] != 'T' || !digits(v + 11, 2) || v[13] != ':' || !digits(v + 14, 2) || number(v + 11, 2) > 23 ||
        number(v + 14, 2) > 59)
        return false;
    const char *p = v + 16;
    if (*p == ':') {
        if (!digits(p + 1, 2) || number(p + 1, 2) > 59)
            return false;
        p += 3;
        if (*p == '.') {
            ++p;
            if (!digits(p, 1))
                return false;
            while (*p >= '0' && *p <= '9')
                ++p;
        }
    }
    if (*p == '\0')
        return true;
    if (*p == 'Z')
        return p[1] == '\0';
    return (*p == '+' || *p == '-') && digits(p + 1, 2) && p[3] == ':' && digits(p + 4, 2) && p[6] == '\0' &&
           number(p + 1, 2) <= 14 && number(p + 4, 2) <= 59;
}

/* Appends the condition for one value of a parameter on one path; `pathref` is the $n holding the path. */
static int build_value_condition(fhir_search_t *s, const fhir_search_param_t *param, const char *modifier, const char *value,
                                 int pathref, fhir_outcome_t *oo)
{
    util_buf_t *sql = &s->sql;
    util_buf_printf(sql, "EXISTS (SELECT 1 FROM jsonb_path_query(r.doc, $%d::jsonpath) v WHERE ", pathref);
    switch (param->search_type) {
    case FHIR_SEARCH_STRING: {
        char *escaped = like_escape(value);
        if (strcmp(modifier, "exact") == 0) {
            util_buf_printf(sql, "v #>> '{}' = $%d", add_param(s, value));
        } else if (strcmp(modifier, "contains") == 0) {
            char *pattern = util_asprintf("%%%s%%", escaped);
            util_buf_printf(sql, "lower(v #>> '{}') LIKE lower($%d)", add_param(s, pattern));
            free(pattern);
        } else {
            char *pattern = util_asprintf("%s%%", escaped);
            util_buf_printf(sql, "lower(v #>> '{}') LIKE lower($%d)", add_param(s, pattern));
            free(pattern);
        }
        free(escaped);
        break;
    }
    case FHIR_SEARCH_TOKEN: {
        char *system, *code;
        split_token(value, &system, &code);
        const char *code_expr = "v #>> '{}'", *system_expr = NULL;
        if (param->value_kind == FHIR_VALUE_CODING) {
            code_expr = "v ->> 'code'";
            system_expr = "v ->> 'system'";
        } else if (param->value_kind == FHIR_VALUE_IDENTIFIER || param->value_kind == FHIR_VALUE_CONTACT) {
            code_expr = "v ->> 'value'";
            system_expr = "v ->> 'system'";
        }
        bool any = false;
        if (code[0] != '\0') {
            util_buf_printf(sql, "%s = $%d", code_expr, add_param(s, code));
            any = true;
        }
        if (system != NULL && system_expr != NULL) {
            if (any)
                util_buf_puts(sql, " AND ");
            if (system[0] == '\0')
                util_buf_printf(sql, "%s IS NULL", system_expr);
            else
                util_buf_printf(sql, "%s = $%d", system_expr, add_param(s, system));
            any = true;
        }
        if (!any)
            util_buf_puts(sql, "true");
        free(system);
        free(code);
        break;
    }
    case FHIR_SEARCH_REFERENCE: {
        /* Stored references may be relative or absolute and may carry /_history/n: compare their "Type/id" tail. */
        const char *tail = "substring(v ->> 'reference' from '([A-Za-z]+/[A-Za-z0-9.\\-]{1,64})(/_history/[^/]*)?$')";
        const char *slash = strchr(value, '/');
        if (modifier[0] != '\0' && strcmp(modifier, "identifier") != 0) {
            if (fhir_resource_type_index(modifier, strlen(modifier)) < 0 && strcmp(modifier, "Organization") != 0 &&
                strcmp(modifier, "Device") != 0 && strcmp(modifier, "RelatedPerson") != 0)
                return fhir_outcome_fail(oo, 400, "value", NULL, "unsupported reference type modifier :%s on %s", modifier,
                                         param->code);
            char *ref = util_asprintf("%s/%s", modifier, value);
            util_buf_printf(sql, "%s = $%d", tail, add_param(s, ref));
            free(ref);
        } else if (strcmp(modifier, "identifier") == 0) {
            char *system, *code;
            split_token(value, &system, &code);
            util_buf_printf(sql, "v -> 'identifier' ->> 'value' = $%d", add_param(s, code));
            if (system != NULL)
                util_buf_printf(sql, " AND v -> 'identifier' ->> 'system' = $%d", add_param(s, system));
            free(system);
            free(code);
        } else if (slash != NULL) {
            /* Absolute URLs on any base compare by their tail too. */
            util_buf_printf(sql, "%s = substring($%d from '([A-Za-z]+/[A-Za-z0-9.\\-]{1,64})(/_history/[^/]*)?$')", tail,
                            add_param(s, value));
        } else {
            util_buf_printf(sql, "split_part(%s, '/', 2) = $%d", tail, add_param(s, value));
        }
        break;
    }
    case FHIR_SEARCH_DATE: {
        const char *prefix = "eq";
        for (size_t i = 0; i != sizeof(date_prefixes) / sizeof(date_prefixes[0]); ++i) {
            if (strncmp(value, date_prefixes[i], 2) == 0) {
                prefix = date_prefixes[i];
                value += 2;
                break;
            }
        }
        if (!is_date_value(value))
            return fhir_outcome_fail(oo, 400, "value", NULL, "search parameter %s: \"%s\" is not a date, dateTime or instant",
                                     param->code, value);
        int p = add_param(s, prefix);
        util_buf_printf(sql, "fhir_range_match(fhir_value_range(v), $%d, fhir_date_range($%d))", p, add_param(s, value));
        break;
    }
    }
    util_buf_puts(sql, ")");
    return 0;
}

/* _id and _lastUpdated live in columns. */
static int build_column_condition(fhir_search_t *s, const fhir_search_param_t *param, const char *value, fhir_outcome_t *oo)
{
    if (strcmp(param->code, "_id") == 0) {
        util_buf_printf(&s->sql, "r.id = $%d", add_param(s, value));
        return 0;
    }
    const char *prefix = "eq";
    for (size_t i = 0; i != sizeof(date_prefixes) / sizeof(date_prefixes[0]); ++i) {
        if (strncmp(value, date_prefixes[i], 2) == 0) {
            prefix = date_prefixes[i];
            value += 2;
            break;
        }
    }
    if (!is_date_value(value))
        return fhir_outcome_fail(oo, 400, "value", NULL, "search parameter _lastUpdated: \"%s\" is not a date, dateTime or instant",
                                 value);
    int p = add_param(s, prefix);
    util_buf_printf(&s->sql,
                    "fhir_range_match(tstzrange(r.last_updated, r.last_updated + interval '1 microsecond'), $%d, "
                    "fhir_date_range($%d))",
                    p, add_param(s, value));
    return 0;
}

/* One `name[:modifier]=v1,v2` pair: an AND-ed clause made of OR-ed values. */
static int build_clause(fhir_search_t *s, const fhir_search_param_t *param, const char *modifier, const char *value,
                        fhir_outcome_t *oo)
{
    if (strcmp(modifier, "missing") == 0) {
        if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
            return fhir_outcome_fail(oo, 400, "value", NULL, "%s:missing takes true or false", param->code);
        if (param->paths[0] == NULL) { /* column parameters are never missing */
            util_buf_puts(&s->sql, strcmp(value, "true") == 0 ? " AND false" : " AND true");
            return 0;
        }
        /* present = any of the parameter's elements is there */
        util_buf_puts(&s->sql, strcmp(value, "true") == 0 ? " AND NOT (" : " AND (");
        for (size_t i = 0; i < 4 && param->paths[i] != NULL; ++i)
            util_buf_printf(&s->sql, "%sjsonb_path_exists(r.doc, $%d::jsonpath)", i == 0 ? "" : " OR ", add_param(s, param->paths[i]));
        util_buf_puts(&s->sql, ")");
        return 0;
    }
    bool negate = false;
    if (strcmp(modifier, "not") == 0 && param->search_type == FHIR_SEARCH_TOKEN) {
        negate = true;
        modifier = "";
    } else if (modifier[0] != '\0' && !(param->search_type == FHIR_SEARCH_STRING &&
                                        (strcmp(modifier, "exact") == 0 || strcmp(modifier, "contains") == 0)) &&
               param->search_type != FHIR_SEARCH_REFERENCE) {
        return fhir_outcome_fail(oo, 400, "not-supported", NULL, "modifier :%s is not supported on search parameter %s", modifier,
                                 param->code);
    }
    char **values;
    size_t n = split_values(value, &values);
    int ret = 0;
    util_buf_puts(&s->sql, negate ? " AND NOT (" : " AND (");
    for (size_t i = 0; i != n && ret == 0; ++i) {
        if (i != 0)
            util_buf_puts(&s->sql, " OR ");
        if (values[i][0] == '\0') {
            ret = fhir_outcome_fail(oo, 400, "value", NULL, "search parameter %s has an empty value", param->code);
            break;
        }
        if (param->paths[0] == NULL) {
            ret = build_column_condition(s, param, values[i], oo);
            continue;
        }
        util_buf_puts(&s->sql, "(");
        for (size_t k = 0; k < 4 && param->paths[k] != NULL && ret == 0; ++k) {
            if (k != 0)
                util_buf_puts(&s->sql, " OR ");
            ret = build_value_condition(s, param, modifier, values[i], add_param(s, param->paths[k]), oo);
        }
        util_buf_puts(&s->sql, ")");
    }
    util_buf_puts(&s->sql, ")");
    for (size_t i = 0; i != n; ++i)
        free(values[i]);
    free(values);
    return ret;
}

static int parse_uint(const char *v, unsigned *out)
{
    if (v[0] == '\0' || strlen(v) > 9)
        return -1;
    for (const char *p = v; *p != '\0'; ++p)
        if (!isdigit((unsigned char)*p))
            return -1;
    *out = (unsigned)atoi(v);
    return 0;
}

static void note_used(fhir_search_t *s, const char *name, const char *value)
{
    if (s->used.len != 0)
        util_buf_puts(&s->used, "&");
    fhir_url_encode(&s->used, name);
    util_buf_puts(&s->used, "=");
    fhir_url_encode(&s->used, value);
}

int fhir_search_build(fhir_search_t *s, const char *type, const char *query, size_t len, unsigned default_count,
                      unsigned max_count, bool strict, fhir_outcome_t *oo)
{
    memset(s, 0, sizeof(*s));
    util_buf_init(&s->sql);
    util_buf_init(&s->used);
    s->count = default_count;
    const char *sort = "r.last_updated DESC, r.id";
    util_buf_t select;
    util_buf_init(&select);
    /* Conditions are built into s->sql first; the SELECT around them is put together at the end. */
    util_buf_printf(&s->sql, " FROM resource r WHERE r.res_type = $%d AND NOT r.deleted", add_param(s, type));
    const char *cursor = query, *end = query + len;
    char *name, *value;
    int more;
    while ((more = fhir_query_next(&cursor, end, &name, &value)) != 0) {
        if (more < 0) {
            util_buf_dispose(&select);
            return fhir_outcome_fail(oo, 400, "invalid", NULL, "malformed percent-encoding in the query string");
        }
        char *modifier = strchr(name, ':');
        if (modifier != NULL)
            *modifier++ = '\0';
        else
            modifier = "";
        int ret = 0;
        if (strcmp(name, "_count") == 0) {
            if (parse_uint(value, &s->count) != 0)
                ret = fhir_outcome_fail(oo, 400, "value", NULL, "_count must be a non-negative whole number");
            else if (s->count > max_count)
                s->count = max_count;
            else if (s->count == 0)
                s->summary_count = true; /* _count=0: the total alone */
        } else if (strcmp(name, "_offset") == 0) {
            if (parse_uint(value, &s->offset) != 0)
                ret = fhir_outcome_fail(oo, 400, "value", NULL, "_offset must be a non-negative whole number");
        } else if (strcmp(name, "_summary") == 0) {
            if (strcmp(value, "count") == 0)
                s->summary_count = true;
            else if (strcmp(value, "false") != 0)
                ret = fhir_outcome_fail(oo, 400, "not-supported", NULL, "_summary=%s is not supported", value);
            else
                note_used(s, "_summary", value);
        } else if (strcmp(name, "_sort") == 0) {
            if (strcmp(value, "_lastUpdated") == 0)
                sort = "r.last_updated, r.id";
            else if (strcmp(value, "-_lastUpdated") == 0)
                sort = "r.last_updated DESC, r.id";
            else if (strcmp(value, "_id") == 0)
                sort = "r.id";
            else if (strcmp(value, "-_id") == 0)
                sort = "r.id DESC";
            else
                ret = fhir_outcome_fail(oo, 400, "not-supported", NULL, "_sort=%s is not supported", value);
            if (ret == 0)
                note_used(s, "_sort", value);
        } else if (strcmp(name, "_format") == 0 || strcmp(name, "_pretty") == 0 || strcmp(name, "_total") == 0) {
            /* presentation parameters, handled by the HTTP layer */
        } else {
            const fhir_search_param_t *param = find_param(type, name);
            if (param == NULL) {
                if (strict)
                    ret = fhir_outcome_fail(oo, 400, "not-supported", NULL, "unknown search parameter %s for %s", name, type);
                else
                    fhir_outcome_add(oo, FHIR_SEV_WARNING, "not-supported", NULL, "search parameter %s is not supported for %s; ignored",
                                     name, type);
            } else {
                ret = build_clause(s, param, modifier, value, oo);
                if (ret == 0) {
                    char *full = modifier[0] != '\0' ? util_asprintf("%s:%s", name, modifier) : util_xstrdup(name);
                    note_used(s, full, value);
                    free(full);
                }
            }
        }
        free(name);
        free(value);
        if (ret != 0) {
            util_buf_dispose(&select);
            return -1;
        }
    }
    if (s->summary_count) {
        util_buf_puts(&select, "SELECT NULL, NULL, NULL, count(*)");
        util_buf_append(&select, s->sql.base, s->sql.len);
    } else {
        util_buf_puts(&select, "SELECT r.id, r.version_id, r.body, count(*) OVER ()");
        util_buf_append(&select, s->sql.base, s->sql.len);
        util_buf_printf(&select, " ORDER BY %s", sort);
        char num[16];
        snprintf(num, sizeof(num), "%u", s->count);
        util_buf_printf(&select, " LIMIT $%d", add_param(s, num));
        snprintf(num, sizeof(num), "%u", s->offset);
        util_buf_printf(&select, " OFFSET $%d", add_param(s, num));
    }
    util_buf_dispose(&s->sql);
    s->sql = select;
    return 0;
}

void fhir_search_dispose(fhir_search_t *s)
{
    for (int i = 0; i != s->nparams; ++i)
        free(s->params[i]);
    free(s->params);
    util_buf_dispose(&s->sql);
    util_buf_dispose(&s->used);
    memset(s, 0, sizeof(*s));
}
