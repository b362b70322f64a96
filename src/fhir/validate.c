/*
 * Structural validation of FHIR R4 JSON resources. The shape of every resource and datatype comes from the tables that
 * scripts/gen-profiles.mjs generates into schema_gen.c (elements sorted by name, so each property is one binary search);
 * primitive formats and the few scheduling invariants are written by hand here.
 *
 * Issue codes: "structure" (unknown element, wrong JSON type, array/single mismatch, empty value, too many items),
 * "required" (missing element or resourceType), "value" (bad primitive format or range), "code-invalid" (code outside a
 * required binding), "invariant" (a constraint from the definitions), "not-supported" (resource type without tables),
 * "too-costly" (input too deep, or too many problems to list). Diagnostics name elements and types, never string values,
 * which may be patient data; only code values of coded elements are quoted.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fhir/schema_gen.h"
#include "fhir/validate.h"
#include "util/str.h"
#include "util/time.h"

/* Nesting of JSON objects we follow; jansson accepts 2048 levels, far more than any real resource and our stack needs. */
#define VALIDATE_MAX_DEPTH 64
/* A garbage document should not turn into a megabyte of OperationOutcome. */
#define VALIDATE_MAX_ISSUES 100
/* Longest unknown property name copied into an expression. */
#define VALIDATE_NAME_MAX 64
/* Each level adds at most ".name[index]", so this always fits VALIDATE_MAX_DEPTH levels. */
#define VALIDATE_PATH_MAX (VALIDATE_MAX_DEPTH * (VALIDATE_NAME_MAX + 32) + 256)
/* R4: strings SHALL NOT exceed 1 MB (1024*1024 characters). */
#define FHIR_STRING_MAX_CHARS (1024 * 1024)

/* How a resource-valued element is checked. */
typedef enum {
    RESOURCE_FULL,      /* validated like a top-level resource when we have tables for it */
    RESOURCE_CONTAINED, /* the same, plus the rules for contained resources (dom-2, dom-4) */
    RESOURCE_SHALLOW,   /* only an object with a resourceType: Bundle.entry.resource, whose caller validates it */
} resource_mode_t;

typedef struct st_validate_ctx_t {
    fhir_outcome_t *oo;
    size_t issues;
    int stopped;
    unsigned depth;
    size_t path_len;
    char path[VALIDATE_PATH_MAX];
} validate_ctx_t;

/* Parsed date, dateTime or instant. */
typedef enum { DT_YEAR = 1, DT_MONTH, DT_DAY, DT_TIME } dt_precision_t;
typedef struct st_datetime_t {
    int year, month, day, hour, minute, second;
    long nanos;
    int tz_minutes;
    dt_precision_t precision;
} datetime_t;

typedef enum { DT_FORMAT_DATE, DT_FORMAT_DATETIME, DT_FORMAT_INSTANT } dt_format_t;

/* validate_object flags */
#define OBJECT_RESOURCE 0x1      /* a resource: resourceType allowed */
#define OBJECT_PRIMITIVE_EXT 0x2 /* the "_name" of a primitive, whose value lives beside it */

static void validate_object(validate_ctx_t *ctx, uint16_t type, const json_t *obj, int flags);
static void validate_resource_value(validate_ctx_t *ctx, const json_t *value, resource_mode_t mode, int expected_type);

/* ---- reporting and expressions ---- */

static void report(validate_ctx_t *ctx, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void report(validate_ctx_t *ctx, const char *code, const char *fmt, ...)
{
    if (ctx->stopped)
        return;
    if (ctx->issues == VALIDATE_MAX_ISSUES) {
        fhir_outcome_add(ctx->oo, FHIR_SEV_ERROR, "too-costly", NULL, "More than %d problems; validation stopped here",
                         VALIDATE_MAX_ISSUES);
        ctx->stopped = 1;
        return;
    }
    char msg[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(msg, sizeof(msg), fmt, args);
    va_end(args);
    fhir_outcome_add(ctx->oo, FHIR_SEV_ERROR, code, ctx->path_len != 0 ? ctx->path : NULL, "%s", msg);
    ++ctx->issues;
}

/* Appends raw bytes to the expression; returns the previous length for path_pop. */
static size_t path_append(validate_ctx_t *ctx, const char *s, size_t len)
{
    size_t mark = ctx->path_len;
    if (ctx->path_len + len < sizeof(ctx->path)) {
        memcpy(ctx->path + ctx->path_len, s, len);
        ctx->path_len += len;
        ctx->path[ctx->path_len] = '\0';
    }
    return mark;
}

static size_t path_push_name(validate_ctx_t *ctx, const char *name)
{
    size_t mark = path_append(ctx, ".", 1);
    path_append(ctx, name, strlen(name));
    return mark;
}

/* Property names from the input are copied only as identifier characters and only up to a limit. */
static size_t path_push_foreign_name(validate_ctx_t *ctx, const char *name)
{
    char buf[VALIDATE_NAME_MAX + 4];
    size_t n = 0;
    for (; name[n] != '\0' && n != VALIDATE_NAME_MAX; ++n) {
        char c = name[n];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
        buf[n] = ok ? c : '?';
    }
    if (name[n] != '\0') {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    size_t mark = path_append(ctx, ".", 1);
    path_append(ctx, buf, n);
    return mark;
}

static size_t path_push_index(validate_ctx_t *ctx, size_t index)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "[%zu]", index);
    return path_append(ctx, buf, (size_t)n);
}

static void path_pop(validate_ctx_t *ctx, size_t mark)
{
    ctx->path_len = mark;
    ctx->path[mark] = '\0';
}

/* A code value, reduced to printable ASCII and a short length, for diagnostics. */
static const char *clip_code(const char *s, size_t len, char *buf, size_t size)
{
    size_t n = 0;
    for (; n < len && n + 4 < size; ++n)
        buf[n] = s[n] >= 0x20 && s[n] < 0x7f && s[n] != '\'' ? s[n] : '?';
    if (n < len) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

/* ---- table lookups ---- */

static const fhir_schema_element_t *struct_find(const fhir_schema_struct_t *st, const char *name)
{
    size_t lo = 0, hi = st->element_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(name, st->elements[mid].name);
        if (c == 0)
            return &st->elements[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static int resource_type_find(const char *name)
{
    size_t lo = 0, hi = FHIR_SCHEMA_RESOURCE_COUNT;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(name, fhir_schema_resources[mid].name);
        if (c == 0)
            return fhir_schema_resources[mid].type;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return -1;
}

static int resource_type_is_r4(const char *name)
{
    size_t lo = 0, hi = FHIR_SCHEMA_ALL_RESOURCE_TYPE_COUNT;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(name, fhir_schema_all_resource_types[mid]);
        if (c == 0)
            return 1;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return 0;
}

static int valueset_contains(uint16_t valueset, const char *code)
{
    const fhir_schema_valueset_t *vs = &fhir_schema_valuesets[valueset];
    size_t lo = 0, hi = vs->count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(code, vs->codes[mid]);
        if (c == 0)
            return 1;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return 0;
}

static const char *constraint_human(const char *key)
{
    for (size_t i = 0; i != FHIR_SCHEMA_CONSTRAINT_COUNT; ++i)
        if (strcmp(fhir_schema_constraints[i].key, key) == 0)
            return fhir_schema_constraints[i].human;
    return "";
}

static void report_constraint(validate_ctx_t *ctx, const char *key)
{
    report(ctx, "invariant", "Constraint %s failed: %s", key, constraint_human(key));
}

/* ---- primitive formats ---- */

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* \s in the R4 regular expressions */
static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* Reads exactly `n` digits at *p. */
static int read_digits(const char **p, const char *end, int n, int *out)
{
    int v = 0;
    if (end - *p < n)
        return 0;
    for (int i = 0; i != n; ++i) {
        if (!is_digit((*p)[i]))
            return 0;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 1;
}

static int is_leap_year(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap_year(y) ? 29 : days[m - 1];
}

/* hh:mm:ss(.fff)? with hh 00-23, ss up to 60 (leap second), as in the R4 time and dateTime patterns. */
static int parse_clock(const char **p, const char *end, datetime_t *dt)
{
    if (!read_digits(p, end, 2, &dt->hour) || dt->hour > 23 || *p == end || **p != ':')
        return 0;
    ++*p;
    if (!read_digits(p, end, 2, &dt->minute) || dt->minute > 59 || *p == end || **p != ':')
        return 0;
    ++*p;
    if (!read_digits(p, end, 2, &dt->second) || dt->second > 60)
        return 0;
    dt->nanos = 0;
    if (*p != end && **p == '.') {
        ++*p;
        if (*p == end || !is_digit(**p))
            return 0;
        long scale = 100000000;
        for (; *p != end && is_digit(**p); ++*p, scale /= 10)
            dt->nanos += (**p - '0') * scale;
    }
    return 1;
}

/* Z or (+|-)hh:mm with an offset from -14:00 to +14:00 (R4: (0[0-9]|1[0-3]):[0-5][0-9]|14:00). */
static int parse_zone(const char **p, const char *end, datetime_t *dt)
{
    if (*p == end)
        return 0;
    if (**p == 'Z') {
        ++*p;
        dt->tz_minutes = 0;
        return 1;
    }
    if (**p != '+' && **p != '-')
        return 0;
    int sign = **p == '-' ? -1 : 1, h, m;
    ++*p;
    if (!read_digits(p, end, 2, &h) || *p == end || **p != ':')
        return 0;
    ++*p;
    if (!read_digits(p, end, 2, &m) || m > 59 || h > 14 || (h == 14 && m != 0))
        return 0;
    dt->tz_minutes = sign * (h * 60 + m);
    return 1;
}

/* date, dateTime and instant: partial dates where the format allows them, real calendar days, a zone whenever a time is given. */
static int parse_datetime(const char *s, size_t len, dt_format_t format, datetime_t *dt)
{
    const char *p = s, *end = s + len;
    memset(dt, 0, sizeof(*dt));
    if (!read_digits(&p, end, 4, &dt->year) || dt->year == 0)
        return 0;
    dt->precision = DT_YEAR;
    if (p != end && *p == '-') {
        ++p;
        if (!read_digits(&p, end, 2, &dt->month) || dt->month < 1 || dt->month > 12)
            return 0;
        dt->precision = DT_MONTH;
        if (p != end && *p == '-') {
            ++p;
            if (!read_digits(&p, end, 2, &dt->day) || dt->day < 1 || dt->day > days_in_month(dt->year, dt->month))
                return 0;
            dt->precision = DT_DAY;
            if (p != end && *p == 'T' && format != DT_FORMAT_DATE) {
                ++p;
                if (!parse_clock(&p, end, dt) || !parse_zone(&p, end, dt))
                    return 0;
                dt->precision = DT_TIME;
            }
        }
    }
    if (p != end)
        return 0;
    return format != DT_FORMAT_INSTANT || dt->precision == DT_TIME;
}

/* Seconds since the epoch in UTC of a value with a time. */
static int64_t datetime_utc_seconds(const datetime_t *dt)
{
    return util_days_from_civil(dt->year, (unsigned)dt->month, (unsigned)dt->day) * 86400 + dt->hour * 3600 + dt->minute * 60 +
           dt->second - dt->tz_minutes * 60;
}

/*
 * Orders two parsed values as FHIRPath does: -1, 0 or 1, or 2 when the answer is unknown (one value is more precise and
 * they agree on everything the other has). Values with a time are compared as instants; otherwise field by field.
 */
static int datetime_compare(const datetime_t *a, const datetime_t *b)
{
    if (a->precision == DT_TIME && b->precision == DT_TIME) {
        int64_t sa = datetime_utc_seconds(a), sb = datetime_utc_seconds(b);
        if (sa != sb)
            return sa < sb ? -1 : 1;
        return a->nanos == b->nanos ? 0 : a->nanos < b->nanos ? -1 : 1;
    }
    int fa[3] = {a->year, a->month, a->day}, fb[3] = {b->year, b->month, b->day};
    int common = a->precision < b->precision ? a->precision : b->precision;
    if (common > DT_DAY)
        common = DT_DAY;
    for (int i = 0; i != common; ++i)
        if (fa[i] != fb[i])
            return fa[i] < fb[i] ? -1 : 1;
    return a->precision == b->precision ? 0 : 2;
}

/* FHIR strings: not empty or blank, at most 1M characters, no control characters but tab, CR and LF (XML cannot carry them). */
static int text_is_fhir_string(const char *s, size_t len)
{
    int blank = 1;
    size_t chars = 0;
    for (size_t i = 0; i != len; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 && c != '\t' && c != '\r' && c != '\n')
            return 0;
        if (c == 0x7f)
            return 0;
        if (!is_space((char)c))
            blank = 0;
        if ((c & 0xc0) != 0x80)
            ++chars;
    }
    return len != 0 && !blank && chars <= FHIR_STRING_MAX_CHARS;
}

/* code: [^\s]+(\s[^\s]+)* */
static int text_is_code(const char *s, size_t len)
{
    if (len == 0 || is_space(s[0]) || is_space(s[len - 1]))
        return 0;
    for (size_t i = 1; i < len; ++i)
        if (is_space(s[i]) && is_space(s[i - 1]))
            return 0;
    return 1;
}

/* uri, url, canonical: \S* (and, being strings, not empty) */
static int text_is_uri(const char *s, size_t len)
{
    for (size_t i = 0; i != len; ++i)
        if (is_space(s[i]))
            return 0;
    return len != 0;
}

static int text_is_oid(const char *s, size_t len)
{
    static const char prefix[] = "urn:oid:";
    size_t i = sizeof(prefix) - 1;
    if (len < i + 3 || memcmp(s, prefix, i) != 0 || s[i] < '0' || s[i] > '2')
        return 0;
    ++i;
    if (i == len)
        return 0;
    while (i != len) {
        if (s[i++] != '.' || i == len || !is_digit(s[i]))
            return 0;
        if (s[i] == '0' && i + 1 != len && is_digit(s[i + 1]))
            return 0;
        while (i != len && is_digit(s[i]))
            ++i;
    }
    return 1;
}

static int text_is_uuid(const char *s, size_t len)
{
    static const char prefix[] = "urn:uuid:";
    static const int groups[5] = {8, 4, 4, 4, 12};
    size_t i = sizeof(prefix) - 1;
    if (len != i + 36 || memcmp(s, prefix, i) != 0)
        return 0;
    for (int g = 0; g != 5; ++g) {
        if (g != 0 && s[i++] != '-')
            return 0;
        for (int k = 0; k != groups[g]; ++k, ++i)
            if (!is_digit(s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
                return 0;
    }
    return 1;
}

/* Base64 with optional whitespace; '=' only as the final padding of the last group. */
static int text_is_base64(const char *s, size_t len)
{
    size_t count = 0, pad = 0;
    for (size_t i = 0; i != len; ++i) {
        char c = s[i];
        if (is_space(c))
            continue;
        if (c == '=') {
            ++pad;
        } else if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '+' || c == '/') {
            if (pad != 0)
                return 0;
        } else {
            return 0;
        }
        ++count;
    }
    return count != 0 && count % 4 == 0 && pad <= 2;
}

static int text_is_id(const char *s, size_t len)
{
    if (len == 0 || len > 64)
        return 0;
    for (size_t i = 0; i != len; ++i) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

/* Unsigned digits without leading zeros, at most 10 of them (every R4 integer type is 32-bit). */
static int read_uint(const char *s, size_t len, long long *out)
{
    if (len == 0 || len > 10 || (s[0] == '0' && len > 1))
        return 0;
    long long v = 0;
    for (size_t i = 0; i != len; ++i) {
        if (!is_digit(s[i]))
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

/* integer: -?([0]|([1-9][0-9]*)), -2^31 to 2^31-1 */
static int text_is_integer(const char *s, size_t len)
{
    long long v;
    int neg = len != 0 && s[0] == '-';
    return read_uint(s + neg, len - neg, &v) && v <= (neg ? 2147483648LL : 2147483647LL);
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int text_is_decimal(const char *s, size_t len)
{
    size_t i = 0;
    if (i != len && s[i] == '-')
        ++i;
    if (i == len || !is_digit(s[i]))
        return 0;
    if (s[i] == '0')
        ++i;
    else
        while (i != len && is_digit(s[i]))
            ++i;
    if (i != len && s[i] == '.') {
        if (++i == len || !is_digit(s[i]))
            return 0;
        while (i != len && is_digit(s[i]))
            ++i;
    }
    if (i != len && (s[i] == 'e' || s[i] == 'E')) {
        ++i;
        if (i != len && (s[i] == '+' || s[i] == '-'))
            ++i;
        if (i == len || !is_digit(s[i]))
            return 0;
        while (i != len && is_digit(s[i]))
            ++i;
    }
    return i == len;
}

/* Narrative.div: the full XHTML rules are not checked here, only that it is one <div> element. */
static int text_is_xhtml(const char *s, size_t len)
{
    while (len != 0 && is_space(s[0]))
        ++s, --len;
    while (len != 0 && is_space(s[len - 1]))
        --len;
    if (len < 6 || memcmp(s, "<div", 4) != 0 || !(s[4] == '>' || s[4] == '/' || is_space(s[4])))
        return 0;
    return s[len - 1] == '>' && ((len >= 10 && memcmp(s + len - 6, "</div>", 6) == 0) || s[len - 2] == '/');
}

/* The lexical check of one textual primitive (numbers and booleans included, in their JSON text form). */
static int prim_text_is_valid(fhir_schema_prim_t prim, const char *s, size_t len)
{
    datetime_t dt;
    long long v;
    switch (prim) {
    case FHIR_SCHEMA_PRIM_BOOLEAN:
        return util_str_eq(s, len, "true") || util_str_eq(s, len, "false");
    case FHIR_SCHEMA_PRIM_INTEGER:
        return text_is_integer(s, len);
    case FHIR_SCHEMA_PRIM_UNSIGNEDINT:
        return read_uint(s, len, &v) && v <= 2147483647LL;
    case FHIR_SCHEMA_PRIM_POSITIVEINT:
        if (len != 0 && s[0] == '+')
            ++s, --len;
        return read_uint(s, len, &v) && v >= 1 && v <= 2147483647LL;
    case FHIR_SCHEMA_PRIM_DECIMAL:
        return text_is_decimal(s, len);
    case FHIR_SCHEMA_PRIM_DATE:
        return parse_datetime(s, len, DT_FORMAT_DATE, &dt);
    case FHIR_SCHEMA_PRIM_DATETIME:
        return parse_datetime(s, len, DT_FORMAT_DATETIME, &dt);
    case FHIR_SCHEMA_PRIM_INSTANT:
        return parse_datetime(s, len, DT_FORMAT_INSTANT, &dt);
    case FHIR_SCHEMA_PRIM_TIME: {
        const char *p = s;
        return parse_clock(&p, s + len, &dt) && p == s + len;
    }
    case FHIR_SCHEMA_PRIM_ID:
        return text_is_id(s, len);
    case FHIR_SCHEMA_PRIM_CODE:
        return text_is_fhir_string(s, len) && text_is_code(s, len);
    case FHIR_SCHEMA_PRIM_URI:
    case FHIR_SCHEMA_PRIM_URL:
    case FHIR_SCHEMA_PRIM_CANONICAL:
        return text_is_fhir_string(s, len) && text_is_uri(s, len);
    case FHIR_SCHEMA_PRIM_OID:
        return text_is_oid(s, len);
    case FHIR_SCHEMA_PRIM_UUID:
        return text_is_uuid(s, len);
    case FHIR_SCHEMA_PRIM_BASE64BINARY:
        return text_is_base64(s, len);
    case FHIR_SCHEMA_PRIM_STRING:
    case FHIR_SCHEMA_PRIM_MARKDOWN:
        return text_is_fhir_string(s, len);
    case FHIR_SCHEMA_PRIM_XHTML:
        return text_is_fhir_string(s, len) && text_is_xhtml(s, len);
    default:
        return 0;
    }
}

/* A reminder of the expected form, for diagnostics. */
static const char *prim_format_hint(fhir_schema_prim_t prim)
{
    switch (prim) {
    case FHIR_SCHEMA_PRIM_DATE:
        return " (YYYY, YYYY-MM or YYYY-MM-DD, a real calendar date)";
    case FHIR_SCHEMA_PRIM_DATETIME:
        return " (a date, or YYYY-MM-DDThh:mm:ss[.fff] with Z or +hh:mm)";
    case FHIR_SCHEMA_PRIM_INSTANT:
        return " (YYYY-MM-DDThh:mm:ss[.fff] with Z or +hh:mm)";
    case FHIR_SCHEMA_PRIM_TIME:
        return " (hh:mm:ss[.fff])";
    case FHIR_SCHEMA_PRIM_ID:
        return " (1-64 characters of A-Z a-z 0-9 - .)";
    case FHIR_SCHEMA_PRIM_CODE:
        return " (no leading, trailing or repeated whitespace)";
    case FHIR_SCHEMA_PRIM_URI:
    case FHIR_SCHEMA_PRIM_URL:
    case FHIR_SCHEMA_PRIM_CANONICAL:
        return " (no whitespace)";
    case FHIR_SCHEMA_PRIM_OID:
        return " (urn:oid:...)";
    case FHIR_SCHEMA_PRIM_UUID:
        return " (urn:uuid: and lower-case hex)";
    case FHIR_SCHEMA_PRIM_STRING:
    case FHIR_SCHEMA_PRIM_MARKDOWN:
        return " (not blank, at most 1M characters, no control characters)";
    case FHIR_SCHEMA_PRIM_XHTML:
        return " (a single <div> element)";
    default:
        return "";
    }
}

static fhir_schema_prim_t prim_find(const char *name)
{
    for (int i = 1; i != FHIR_SCHEMA_PRIM_COUNT; ++i)
        if (strcmp(fhir_schema_prim_names[i], name) == 0)
            return (fhir_schema_prim_t)i;
    return FHIR_SCHEMA_PRIM_NONE;
}

bool fhir_primitive_is_valid(const char *fhir_type, const char *text, size_t len)
{
    fhir_schema_prim_t prim = prim_find(fhir_type);
    return prim != FHIR_SCHEMA_PRIM_NONE && prim_text_is_valid(prim, text, len);
}

bool fhir_id_is_valid(const char *text, size_t len)
{
    return text_is_id(text, len);
}

/* ---- the walk ---- */

static void validate_primitive(validate_ctx_t *ctx, const fhir_schema_element_t *el, const json_t *value)
{
    fhir_schema_prim_t prim = (fhir_schema_prim_t)el->prim;
    const char *tname = fhir_schema_prim_names[prim];
    switch (prim) {
    case FHIR_SCHEMA_PRIM_BOOLEAN:
        if (!json_is_boolean(value))
            report(ctx, "structure", "Element must be a JSON boolean (FHIR boolean)");
        return;
    case FHIR_SCHEMA_PRIM_INTEGER:
    case FHIR_SCHEMA_PRIM_UNSIGNEDINT:
    case FHIR_SCHEMA_PRIM_POSITIVEINT: {
        if (!json_is_integer(value)) {
            report(ctx, "structure", "Element must be a JSON number without fraction (FHIR %s)", tname);
            return;
        }
        json_int_t v = json_integer_value(value);
        json_int_t lo = prim == FHIR_SCHEMA_PRIM_INTEGER ? -2147483647LL - 1 : prim == FHIR_SCHEMA_PRIM_UNSIGNEDINT ? 0 : 1;
        if (v < lo || v > 2147483647LL)
            report(ctx, "value", "Element is out of range for a FHIR %s (%lld to 2147483647)", tname, (long long)lo);
        return;
    }
    case FHIR_SCHEMA_PRIM_DECIMAL:
        if (!json_is_number(value))
            report(ctx, "structure", "Element must be a JSON number (FHIR decimal)");
        return;
    default:
        break;
    }
    if (!json_is_string(value)) {
        report(ctx, "structure", "Element must be a JSON string (FHIR %s)", tname);
        return;
    }
    const char *s = json_string_value(value);
    size_t len = json_string_length(value);
    if (len == 0) {
        report(ctx, "structure", "Element must not be an empty string");
        return;
    }
    if (!prim_text_is_valid(prim, s, len)) {
        report(ctx, "value", "Element is not a valid FHIR %s%s", tname, prim_format_hint(prim));
        return;
    }
    if (el->valueset != 0 && !valueset_contains(el->valueset, s)) {
        char buf[48];
        report(ctx, "code-invalid", "Code '%s' is not in the required value set %s", clip_code(s, len, buf, sizeof(buf)),
               fhir_schema_valuesets[el->valueset].url);
    }
}

static int array_item_is_object(const json_t *array, size_t index)
{
    return json_is_array(array) && json_is_object(json_array_get(array, index));
}

/* One item (or the single value) of an element of structure `owner`. */
static void validate_item(validate_ctx_t *ctx, uint16_t owner, const fhir_schema_element_t *el, const json_t *value)
{
    switch (el->kind) {
    case FHIR_SCHEMA_K_PRIMITIVE:
        validate_primitive(ctx, el, value);
        break;
    case FHIR_SCHEMA_K_COMPLEX:
        if (!json_is_object(value)) {
            report(ctx, "structure", "Element must be a JSON object (FHIR %s)", fhir_schema_structs[el->type].name);
            break;
        }
        validate_object(ctx, el->type, value, 0);
        break;
    case FHIR_SCHEMA_K_RESOURCE: {
        resource_mode_t mode = RESOURCE_FULL;
        if (owner == FHIR_SCHEMA_T_BUNDLE_ENTRY && strcmp(el->name, "resource") == 0)
            mode = RESOURCE_SHALLOW;
        else if (strcmp(el->name, "contained") == 0)
            mode = RESOURCE_CONTAINED;
        validate_resource_value(ctx, value, mode, el->flags & FHIR_SCHEMA_F_TYPED ? el->type : -1);
        break;
    }
    }
}

/* The value of a property named after an element: array or single value per max cardinality, then each item. */
static void validate_element_value(validate_ctx_t *ctx, uint16_t owner, const json_t *obj, const fhir_schema_element_t *el,
                                   const fhir_schema_slot_t *slot, const json_t *value)
{
    if (slot->max <= 1) {
        if (json_is_array(value))
            report(ctx, "structure", "Element has max cardinality 1, so it must not be a JSON array");
        else if (json_is_null(value))
            report(ctx, "structure", "Element must not be null");
        else
            validate_item(ctx, owner, el, value);
        return;
    }
    if (!json_is_array(value)) {
        report(ctx, "structure", "Element repeats (max cardinality %s), so it must be a JSON array",
               slot->max == FHIR_SCHEMA_UNBOUNDED ? "*" : ">1");
        return;
    }
    size_t n = json_array_size(value);
    if (n == 0) {
        report(ctx, "structure", "Empty arrays are not allowed; omit the element instead");
        return;
    }
    if (slot->max != FHIR_SCHEMA_UNBOUNDED && n > slot->max)
        report(ctx, "structure", "Element has %zu items but at most %u are allowed", n, (unsigned)slot->max);
    else if (n < slot->min)
        report(ctx, "required", "Element has %zu items but at least %u are required", n, (unsigned)slot->min);
    const json_t *ext = NULL;
    for (size_t i = 0; i != n && !ctx->stopped; ++i) {
        size_t mark = path_push_index(ctx, i);
        const json_t *item = json_array_get(value, i);
        if (json_is_null(item)) {
            /* In primitive arrays a null keeps the position of an item that only has extensions in "_name". */
            if (el->kind == FHIR_SCHEMA_K_PRIMITIVE && ext == NULL) {
                char key[VALIDATE_NAME_MAX + 2];
                snprintf(key, sizeof(key), "_%s", el->name);
                ext = json_object_get(obj, key);
            }
            if (el->kind != FHIR_SCHEMA_K_PRIMITIVE || !array_item_is_object(ext, i))
                report(ctx, "structure", "Array item must not be null%s",
                       el->kind == FHIR_SCHEMA_K_PRIMITIVE ? " unless the _ array has extensions at the same position" : "");
        } else {
            validate_item(ctx, owner, el, item);
        }
        path_pop(ctx, mark);
    }
}

/* One "_name" object; without a value beside it, it must carry extensions (ele-1: a value or children). */
static void validate_extension_holder(validate_ctx_t *ctx, const json_t *holder, const json_t *primitive)
{
    validate_object(ctx, FHIR_SCHEMA_T_ELEMENT, holder, OBJECT_PRIMITIVE_EXT);
    if (json_object_size(holder) != 0 && (primitive == NULL || json_is_null(primitive)) &&
        json_object_get(holder, "extension") == NULL)
        report(ctx, "structure", "Element has no value and no extensions (ele-1); omit it instead");
}

/* "_name": the id and extensions of a primitive, an object or an array aligned with the values. */
static void validate_primitive_extension(validate_ctx_t *ctx, const json_t *obj, const fhir_schema_element_t *el,
                                         const fhir_schema_slot_t *slot, const json_t *value)
{
    if (slot->max <= 1) {
        if (!json_is_object(value))
            report(ctx, "structure", "The _%s property must be a JSON object with id and/or extension", el->name);
        else
            validate_extension_holder(ctx, value, json_object_get(obj, el->name));
        return;
    }
    if (!json_is_array(value)) {
        report(ctx, "structure", "The _%s property must be a JSON array, like the element it extends", el->name);
        return;
    }
    const json_t *values = json_object_get(obj, el->name);
    size_t n = json_array_size(value);
    if (n == 0) {
        report(ctx, "structure", "Empty arrays are not allowed; omit the element instead");
        return;
    }
    if (values != NULL && json_is_array(values) && json_array_size(values) != n) {
        report(ctx, "structure", "The _%s array must have as many items as the %s array", el->name, el->name);
        return;
    }
    for (size_t i = 0; i != n && !ctx->stopped; ++i) {
        const json_t *item = json_array_get(value, i);
        size_t mark = path_push_index(ctx, i);
        if (json_is_object(item))
            validate_extension_holder(ctx, item, json_array_get(values, i));
        else if (!json_is_null(item))
            report(ctx, "structure", "Items of _%s must be JSON objects or null", el->name);
        else if (values == NULL)
            report(ctx, "structure", "Array item must not be null: there is no value at this position");
        /* a null facing a null value is reported once, on the value side */
        path_pop(ctx, mark);
    }
}

static const char *get_string(const json_t *obj, const char *key, size_t *len)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        return NULL;
    *len = json_string_length(v);
    return json_string_value(v);
}

/* Parses obj[key] as the given format; 0 when absent or malformed (already reported by the walk). */
static int get_datetime(const json_t *obj, const char *key, dt_format_t format, datetime_t *dt)
{
    size_t len;
    const char *s = get_string(obj, key, &len);
    return s != NULL && parse_datetime(s, len, format, dt);
}

static int has_element(const json_t *obj, const char *name)
{
    char key[VALIDATE_NAME_MAX + 2];
    snprintf(key, sizeof(key), "_%s", name);
    return json_object_get(obj, name) != NULL || json_object_get(obj, key) != NULL;
}

/* end must be later than start when both are given (Appointment, Slot: an empty or negative interval books nothing). */
static void check_end_after_start(validate_ctx_t *ctx, const json_t *obj, const char *type)
{
    datetime_t start, end;
    if (!get_datetime(obj, "start", DT_FORMAT_INSTANT, &start) || !get_datetime(obj, "end", DT_FORMAT_INSTANT, &end))
        return;
    int c = datetime_compare(&start, &end);
    if (c == 0 || c == 1) {
        size_t mark = path_push_name(ctx, "end");
        report(ctx, "invariant", "%s end must be later than its start", type);
        path_pop(ctx, mark);
    }
}

static void check_appointment(validate_ctx_t *ctx, const json_t *obj)
{
    int has_start = has_element(obj, "start"), has_end = has_element(obj, "end");
    if (has_start != has_end)
        report_constraint(ctx, "app-2");
    size_t len;
    const char *status = get_string(obj, "status", &len);
    if (!(has_start && has_end) && status != NULL && !util_str_eq(status, len, "proposed") &&
        !util_str_eq(status, len, "cancelled") && !util_str_eq(status, len, "waitlist"))
        report_constraint(ctx, "app-3");
    check_end_after_start(ctx, obj, "Appointment");
}

static void check_period(validate_ctx_t *ctx, const json_t *obj)
{
    datetime_t start, end;
    if (!get_datetime(obj, "start", DT_FORMAT_DATETIME, &start) || !get_datetime(obj, "end", DT_FORMAT_DATETIME, &end))
        return;
    if (datetime_compare(&start, &end) == 1)
        report_constraint(ctx, "per-1");
}

/* The hand-written constraints, run on an object of the given structure after its elements were walked. */
static void check_invariants(validate_ctx_t *ctx, uint16_t type, const json_t *obj, uint64_t seen)
{
    switch (type) {
    case FHIR_SCHEMA_T_APPOINTMENT:
        check_appointment(ctx, obj);
        break;
    case FHIR_SCHEMA_T_APPOINTMENT_PARTICIPANT:
        if (json_object_get(obj, "type") == NULL && json_object_get(obj, "actor") == NULL)
            report_constraint(ctx, "app-1");
        break;
    case FHIR_SCHEMA_T_SLOT:
        check_end_after_start(ctx, obj, "Slot");
        break;
    case FHIR_SCHEMA_T_PERIOD:
        check_period(ctx, obj);
        break;
    case FHIR_SCHEMA_T_EXTENSION: {
        const fhir_schema_struct_t *st = &fhir_schema_structs[type];
        int has_value = 0, has_extension = json_object_get(obj, "extension") != NULL;
        for (uint16_t i = 0; i != st->slot_count; ++i)
            if (st->slots[i].choice && (seen & ((uint64_t)1 << i)) != 0)
                has_value = 1;
        if (has_value == has_extension)
            report_constraint(ctx, "ext-1");
        break;
    }
    default:
        break;
    }
}

static void validate_object(validate_ctx_t *ctx, uint16_t type, const json_t *obj, int flags)
{
    const fhir_schema_struct_t *st = &fhir_schema_structs[type];
    int is_resource = (flags & OBJECT_RESOURCE) != 0;
    if (ctx->depth == VALIDATE_MAX_DEPTH) {
        report(ctx, "too-costly", "Content is nested more than %d levels deep", VALIDATE_MAX_DEPTH);
        return;
    }
    size_t size = json_object_size(obj);
    if (size == 0 || (flags == 0 && size == 1 && json_object_get(obj, "id") != NULL)) {
        report(ctx, "structure", "Element has no value and no children (ele-1); omit it instead");
        return;
    }
    ++ctx->depth;
    uint64_t seen = 0;
    uint16_t chosen[64]; /* for a choice slot already seen: the element used, to catch valueString + valueCode */
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *)obj, key, value) {
        if (ctx->stopped)
            break;
        if (is_resource && strcmp(key, "resourceType") == 0)
            continue;
        int is_ext = key[0] == '_';
        const fhir_schema_element_t *el = struct_find(st, key + is_ext);
        if (el != NULL && is_ext && (el->kind != FHIR_SCHEMA_K_PRIMITIVE || (el->flags & FHIR_SCHEMA_F_ATTR) != 0))
            el = NULL; /* "_name" exists only for primitives that are not XML attributes */
        if (el == NULL) {
            size_t mark = path_push_foreign_name(ctx, key);
            if (!is_resource && strcmp(key, "resourceType") == 0)
                report(ctx, "structure", "Unknown element 'resourceType' in %s: only resources have a resourceType", st->name);
            else
                report(ctx, "structure", "Unknown element '%s' in %s", ctx->path + mark + 1, st->name);
            path_pop(ctx, mark);
            continue;
        }
        const fhir_schema_slot_t *slot = &st->slots[el->slot];
        uint64_t bit = (uint64_t)1 << el->slot;
        uint16_t index = (uint16_t)(el - st->elements);
        size_t mark = path_push_name(ctx, el->name);
        if (slot->choice && (seen & bit) != 0 && chosen[el->slot] != index) {
            report(ctx, "structure", "Only one of the %s forms may be present (found %s and %s)", slot->name,
                   st->elements[chosen[el->slot]].name, el->name);
        } else {
            seen |= bit;
            chosen[el->slot] = index;
            if (is_ext)
                validate_primitive_extension(ctx, obj, el, slot, value);
            else
                validate_element_value(ctx, type, obj, el, slot, value);
        }
        path_pop(ctx, mark);
    }
    for (uint16_t i = 0; i != st->slot_count && !ctx->stopped; ++i) {
        if (st->slots[i].min != 0 && (seen & ((uint64_t)1 << i)) == 0) {
            size_t mark = path_push_name(ctx, st->slots[i].name);
            report(ctx, "required", "Missing required element %s in %s (min cardinality %u)", st->slots[i].name, st->name,
                   (unsigned)st->slots[i].min);
            path_pop(ctx, mark);
        }
    }
    if (!ctx->stopped)
        check_invariants(ctx, type, obj, seen);
    --ctx->depth;
}

/* A resource inside a resource: contained, Bundle.entry.resource, Parameters.parameter.resource, ... */
static void validate_resource_value(validate_ctx_t *ctx, const json_t *value, resource_mode_t mode, int expected_type)
{
    if (!json_is_object(value)) {
        report(ctx, "structure", "A resource must be a JSON object");
        return;
    }
    const json_t *rt = json_object_get(value, "resourceType");
    if (!json_is_string(rt) || json_string_length(rt) == 0) {
        report(ctx, "required", "The resource has no resourceType");
        return;
    }
    const char *name = json_string_value(rt);
    if (expected_type >= 0 && strcmp(name, fhir_schema_structs[expected_type].name) != 0) {
        report(ctx, "structure", "The resource must be a %s", fhir_schema_structs[expected_type].name);
        return;
    }
    if (mode == RESOURCE_SHALLOW)
        return;
    if (mode == RESOURCE_CONTAINED) {
        if (json_object_get(value, "contained") != NULL)
            report_constraint(ctx, "dom-2");
        const json_t *meta = json_object_get(value, "meta");
        if (json_is_object(meta) && (has_element(meta, "versionId") || has_element(meta, "lastUpdated")))
            report_constraint(ctx, "dom-4");
    }
    int type = resource_type_find(name);
    if (type >= 0)
        validate_object(ctx, (uint16_t)type, value, OBJECT_RESOURCE);
    else if (!resource_type_is_r4(name))
        report(ctx, "structure", "The resourceType is not an R4 resource type");
    /* other R4 types have no tables here: their content is accepted as it is */
}

int fhir_validate_resource(const json_t *resource, fhir_outcome_t *oo)
{
    size_t errors = fhir_outcome_error_count(oo);
    if (!json_is_object(resource)) {
        fhir_outcome_add(oo, FHIR_SEV_ERROR, "structure", NULL, "A resource must be a JSON object");
        return -1;
    }
    const json_t *rt = json_object_get(resource, "resourceType");
    if (!json_is_string(rt) || json_string_length(rt) == 0) {
        fhir_outcome_add(oo, FHIR_SEV_ERROR, "required", NULL, "The resource has no resourceType");
        return -1;
    }
    const char *name = json_string_value(rt);
    int type = resource_type_find(name);
    if (type < 0) {
        /* the name is echoed only when it is a real type name, never arbitrary input */
        if (resource_type_is_r4(name))
            fhir_outcome_add(oo, FHIR_SEV_ERROR, "not-supported", NULL, "Resource type %s is not supported by this server", name);
        else
            fhir_outcome_add(oo, FHIR_SEV_ERROR, "not-supported", NULL, "The resourceType is not an R4 resource type");
        return -1;
    }
    validate_ctx_t *ctx = util_xmalloc(sizeof(*ctx)); /* the expression buffer is too big for small thread stacks */
    ctx->oo = oo;
    ctx->issues = 0;
    ctx->stopped = 0;
    ctx->depth = 0;
    ctx->path_len = 0;
    ctx->path[0] = '\0';
    path_append(ctx, name, strlen(name));
    validate_object(ctx, (uint16_t)type, resource, OBJECT_RESOURCE);
    free(ctx);
    return fhir_outcome_error_count(oo) > errors ? -1 : 0;
}
