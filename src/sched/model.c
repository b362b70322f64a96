#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "sched/model.h"
#include "util/str.h"
#include "util/time.h"

json_t *sched_ext(const json_t *resource, const char *tail)
{
    size_t i;
    json_t *e;
    size_t base_len = strlen(SCHED_EXT_BASE);
    json_array_foreach(json_object_get(resource, "extension"), i, e) {
        const char *url = json_string_value(json_object_get(e, "url"));
        if (url != NULL && strncmp(url, SCHED_EXT_BASE, base_len) == 0 && strcmp(url + base_len, tail) == 0)
            return e;
    }
    return NULL;
}

int64_t sched_duration_seconds(const json_t *d)
{
    json_t *value = json_object_get(d, "value");
    if (!json_is_number(value))
        return -1;
    const char *unit = json_string_value(json_object_get(d, "code"));
    if (unit == NULL)
        unit = json_string_value(json_object_get(d, "unit"));
    if (unit == NULL)
        return -1;
    double v = json_number_value(value), scale;
    if (strcmp(unit, "s") == 0)
        scale = 1;
    else if (strcmp(unit, "min") == 0)
        scale = 60;
    else if (strcmp(unit, "h") == 0)
        scale = 3600;
    else if (strcmp(unit, "d") == 0)
        scale = 86400;
    else
        return -1;
    if (v < 0 || v * scale > 3650.0 * 86400)
        return -1;
    return (int64_t)(v * scale + 0.5);
}

int64_t sched_ext_seconds(const json_t *resource, const char *tail, int64_t dflt)
{
    int64_t s = sched_duration_seconds(json_object_get(sched_ext(resource, tail), "valueDuration"));
    return s >= 0 ? s : dflt;
}

void sched_ext_remove(json_t *resource, const char *tail)
{
    json_t *list = json_object_get(resource, "extension");
    json_t *e = sched_ext(resource, tail);
    if (e == NULL)
        return;
    size_t i;
    json_t *x;
    json_array_foreach(list, i, x) {
        if (x == e) {
            json_array_remove(list, i);
            break;
        }
    }
    if (json_array_size(list) == 0)
        json_object_del(resource, "extension");
}

void sched_ext_set(json_t *resource, const char *tail, const char *value_key, json_t *value)
{
    sched_ext_remove(resource, tail);
    json_t *list = json_object_get(resource, "extension");
    if (!json_is_array(list)) {
        list = json_array();
        json_object_set_new(resource, "extension", list);
    }
    char *url = util_asprintf("%s%s", SCHED_EXT_BASE, tail);
    json_array_append_new(list, json_pack("{s:s, s:o}", "url", url, value_key, value));
    free(url);
}

void sched_ext_set_duration(json_t *resource, const char *tail, int64_t seconds)
{
    if (seconds <= 0) {
        sched_ext_remove(resource, tail);
        return;
    }
    bool minutes = seconds % 60 == 0;
    json_t *d = json_pack("{s:I, s:s, s:s, s:s}", "value", (json_int_t)(minutes ? seconds / 60 : seconds), "unit", minutes ? "min" : "s",
                          "system", "http://unitsofmeasure.org", "code", minutes ? "min" : "s");
    sched_ext_set(resource, tail, "valueDuration", d);
}

const char *sched_ref_key(const char *reference, char *buf, size_t len)
{
    if (reference == NULL)
        return NULL;
    size_t n = strlen(reference);
    const char *hist = strstr(reference, "/_history/");
    if (hist != NULL)
        n = (size_t)(hist - reference);
    /* the last two path segments: Type/id */
    const char *end = reference + n, *slash = NULL, *p;
    for (p = end; p > reference; --p)
        if (p[-1] == '/') {
            slash = p - 1;
            break;
        }
    if (slash == NULL || slash == reference)
        return NULL;
    const char *type = slash;
    while (type > reference && type[-1] != '/')
        --type;
    if (!isupper((unsigned char)*type) || end == slash + 1 || (size_t)(end - type) >= len)
        return NULL;
    for (p = type; p != slash; ++p)
        if (!isalpha((unsigned char)*p))
            return NULL;
    for (p = slash + 1; p != end; ++p)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
            return NULL;
    memcpy(buf, type, (size_t)(end - type));
    buf[end - type] = '\0';
    return buf;
}

const char *sched_reference_key(const json_t *reference, char *buf, size_t len)
{
    return sched_ref_key(json_string_value(json_object_get(reference, "reference")), buf, len);
}

bool sched_refers_to(const json_t *refs, const char *key)
{
    char buf[160];
    if (json_is_object(refs)) {
        const char *k = sched_reference_key(refs, buf, sizeof(buf));
        return k != NULL && strcmp(k, key) == 0;
    }
    size_t i;
    json_t *r;
    json_array_foreach(refs, i, r) {
        if (sched_refers_to(r, key))
            return true;
    }
    return false;
}

static bool coding_matches(const json_t *coding, const char *system, const char *code)
{
    const char *s = json_string_value(json_object_get(coding, "system"));
    const char *c = json_string_value(json_object_get(coding, "code"));
    if (c == NULL || strcmp(c, code) != 0)
        return false;
    return system == NULL || system[0] == '\0' || (s != NULL && strcmp(s, system) == 0);
}

bool sched_concept_matches(const json_t *concepts, const char *system, const char *code)
{
    if (code == NULL)
        return false;
    if (json_is_array(concepts)) {
        size_t i;
        json_t *c;
        json_array_foreach(concepts, i, c) {
            if (sched_concept_matches(c, system, code))
                return true;
        }
        return false;
    }
    if (json_object_get(concepts, "code") != NULL)
        return coding_matches(concepts, system, code);
    size_t i;
    json_t *coding;
    json_array_foreach(json_object_get(concepts, "coding"), i, coding) {
        if (coding_matches(coding, system, code))
            return true;
    }
    return false;
}

bool sched_concept_overlaps(const json_t *concepts, const json_t *wanted)
{
    size_t i;
    json_t *coding;
    json_array_foreach(json_object_get(wanted, "coding"), i, coding) {
        if (sched_concept_matches(concepts, json_string_value(json_object_get(coding, "system")),
                                  json_string_value(json_object_get(coding, "code"))))
            return true;
    }
    return false;
}

/* Exactly `n` ASCII digits at `s` (no sign, no blanks) into *out. */
static bool read_digits(const char *s, int n, unsigned *out)
{
    *out = 0;
    for (int i = 0; i != n; ++i) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        *out = *out * 10 + (unsigned)(s[i] - '0');
    }
    return true;
}

int32_t sched_time_of_day(const char *text)
{
    unsigned h, m, s = 0;
    if (text == NULL || !read_digits(text, 2, &h) || text[2] != ':' || !read_digits(text + 3, 2, &m))
        return -1;
    const char *rest = text + 5;
    if (*rest == ':') {
        if (!read_digits(rest + 1, 2, &s))
            return -1;
        rest += 3;
        /* fractions of a second are ignored, but must be digits */
        if (*rest == '.') {
            if (rest[1] < '0' || rest[1] > '9')
                return -1;
            for (++rest; *rest >= '0' && *rest <= '9'; ++rest)
                ;
        }
    }
    if (*rest != '\0')
        return -1;
    if (h == 24 && m == 0 && s == 0)
        return 86400;
    if (h > 23 || m > 59 || s > 59)
        return -1;
    return (int32_t)(h * 3600 + m * 60 + s);
}

static int day_bit(const char *day)
{
    static const char *const days[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
    for (int i = 0; i != 7; ++i)
        if (day != NULL && strcmp(day, days[i]) == 0)
            return 1 << i;
    return -1;
}

int sched_rules_read(const json_t *array, bool hours, sched_avail_rule_t **out)
{
    *out = NULL;
    size_t n = json_array_size(array), i, j;
    if (n == 0)
        return 0;
    sched_avail_rule_t *rules = calloc(n, sizeof(*rules));
    json_t *entry, *day;
    json_array_foreach(array, i, entry) {
        sched_avail_rule_t *r = &rules[i];
        json_t *days = json_object_get(entry, "daysOfWeek");
        if (json_array_size(days) == 0) {
            r->days = SCHED_DAY_ALL;
        } else {
            json_array_foreach(days, j, day) {
                int bit = day_bit(json_string_value(day));
                if (bit < 0)
                    goto Error;
                r->days |= (unsigned)bit;
            }
        }
        r->all_day = json_is_true(json_object_get(entry, "allDay"));
        const char *from = json_string_value(json_object_get(entry, hours ? "openingTime" : "availableStartTime"));
        const char *to = json_string_value(json_object_get(entry, hours ? "closingTime" : "availableEndTime"));
        r->start = from != NULL ? sched_time_of_day(from) : 0;
        r->end = to != NULL ? sched_time_of_day(to) : 86400;
        if (r->start < 0 || r->end < 0)
            goto Error;
        if (r->start == 86400)
            r->start = 0;
        if (from == NULL && to == NULL)
            r->all_day = true;
    }
    *out = rules;
    return (int)n;
Error:
    free(rules);
    return -1;
}

int sched_fhir_time(const char *text, const sched_tz_t *tz, bool upper, int64_t *out)
{
    if (text == NULL)
        return -1;
    size_t len = strlen(text);
    if (len > 10) {
        time_t t;
        if (util_time_parse_instant(text, &t) != 0)
            return -1;
        /* a period ending at an instant ends there (half-open), whatever the precision */
        *out = (int64_t)t;
        return 0;
    }
    unsigned y, m = 1, d = 1;
    if (len < 4 || !read_digits(text, 4, &y))
        return -1;
    if (len == 4) {
        if (upper)
            ++y;
    } else if (len == 7 && text[4] == '-' && read_digits(text + 5, 2, &m) && m >= 1 && m <= 12) {
        if (upper && ++m == 13)
            m = 1, ++y;
    } else if (len == 10 && text[4] == '-' && read_digits(text + 5, 2, &m) && text[7] == '-' && read_digits(text + 8, 2, &d) && m >= 1 &&
               m <= 12 && d >= 1 && d <= sched_civil_days_in_month(y, m)) {
        if (upper) {
            int64_t days = util_days_from_civil(y, m, d) + 1;
            int64_t yy;
            util_civil_from_days(days, &yy, &m, &d);
            y = (unsigned)yy;
        }
    } else {
        return -1;
    }
    int64_t local = util_days_from_civil(y, m, d) * 86400;
    return sched_tz_local_to_utc(tz, local, out) == 0 ? 0 : -1;
}

int sched_period_read(const json_t *period, const sched_tz_t *tz, int64_t *lo, int64_t *hi)
{
    const char *start = json_string_value(json_object_get(period, "start"));
    const char *end = json_string_value(json_object_get(period, "end"));
    *lo = INT64_MIN;
    *hi = INT64_MAX;
    if (start != NULL && sched_fhir_time(start, tz, false, lo) != 0)
        return -1;
    if (end != NULL && sched_fhir_time(end, tz, true, hi) != 0)
        return -1;
    return 0;
}

int sched_not_available_add(sched_avail_set_t *set, const json_t *not_available, const sched_tz_t *tz)
{
    size_t i;
    json_t *entry;
    json_array_foreach(not_available, i, entry) {
        int64_t lo, hi;
        json_t *during = json_object_get(entry, "during");
        if (during == NULL)
            continue; /* a description alone names no time */
        if (sched_period_read(during, tz, &lo, &hi) != 0)
            return -1;
        if (lo < hi)
            sched_avail_set_add(set, lo, hi);
    }
    return 0;
}

void sched_format_instant(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
