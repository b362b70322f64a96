/*
 * Search queries: a query string parsed against the registry into one parameterised SQL statement over the typed
 * search columns (migrations/0003_search_index.sql). SQL text is made only of the fixed fragments below; every value
 * from the URL travels as a parameter.
 */
#include <ctype.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include "fhir/interaction.h"
#include "fhir/search.h"
#include "fhir/types.h"
#include "store/store.h"
#include "util/fold.h"
#include "util/time.h"

/* Chains and _has nest subqueries; this bounds how deep a URL can make them. */
#define MAX_NESTING 4

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

/* ---- small helpers ---- */

static int add_param(fhir_search_t *s, const char *value)
{
    if (s->nparams == s->_capacity) {
        s->_capacity = s->_capacity ? s->_capacity * 2 : 16;
        s->params = util_xrealloc(s->params, s->_capacity * sizeof(*s->params));
    }
    s->params[s->nparams++] = util_xstrdup(value);
    return s->nparams;
}

static int add_param_owned(fhir_search_t *s, char *value)
{
    int n = add_param(s, value);
    free(value);
    return n;
}

/* Finishes an array literal into a parameter and returns its number. */
static int array_param(fhir_search_t *s, store_array_t *a)
{
    char *literal = store_array_literal(a);
    store_array_dispose(a);
    return add_param_owned(s, literal);
}

/* Splits a parameter value on unescaped commas (FHIR escapes: \, \| \$ \\); '\|' stays escaped for split_token. */
static size_t split_values(const char *value, char ***parts)
{
    size_t n = 0, cap = 4;
    char **out = util_xmalloc(cap * sizeof(*out));
    util_buf_t cur;
    util_buf_init(&cur);
    for (const char *p = value;; ++p) {
        if (*p == '\\' && p[1] != '\0' && strchr(",|$\\", p[1]) != NULL) {
            if (p[1] == '|')
                util_buf_append(&cur, p, 1);
            util_buf_append(&cur, p + 1, 1);
            ++p;
        } else if (*p == ',' || *p == '\0') {
            if (n == cap)
                out = util_xrealloc(out, (cap *= 2) * sizeof(*out));
            out[n++] = util_xstrndup(cur.base != NULL ? cur.base : "", cur.len);
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

/* split_values keeps "\|" for token splitting; string and uri values mean a plain '|'. */
static void unescape_bars(char *v)
{
    char *d = v;
    for (const char *p = v; *p != '\0'; ++p) {
        if (*p == '\\' && p[1] == '|')
            ++p;
        *d++ = *p;
    }
    *d = '\0';
}

static void free_values(char **values, size_t n)
{
    for (size_t i = 0; i != n; ++i)
        free(values[i]);
    free(values);
}

/* Splits "system|code" at the first unescaped '|'; *system is NULL without a bar. */
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
            *system = util_xstrndup(buf.base != NULL ? buf.base : "", buf.len);
            buf.len = 0;
        } else {
            util_buf_append(&buf, p, 1);
        }
    }
    *code = util_xstrndup(buf.base != NULL ? buf.base : "", buf.len);
    util_buf_dispose(&buf);
}

static void like_escape(util_buf_t *buf, const char *value)
{
    for (const char *p = value; *p != '\0'; ++p) {
        if (*p == '%' || *p == '_' || *p == '\\')
            util_buf_append(buf, "\\", 1);
        util_buf_append(buf, p, 1);
    }
}

/* Escapes for a PostgreSQL ARE: every ASCII punctuation character is taken literally when backslashed. */
static void regex_escape(util_buf_t *buf, const char *value)
{
    for (const char *p = value; *p != '\0'; ++p) {
        if ((unsigned char)*p < 0x80 && !isalnum((unsigned char)*p) && *p != ' ')
            util_buf_append(buf, "\\", 1);
        util_buf_append(buf, p, 1);
    }
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
 * time zone optional (YYYY[-MM[-DD[Thh:mm[:ss[.f+]][Z|(+|-)hh:mm]]]]).
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

/* Microseconds since 1970 as a timestamptz literal in UTC ("2027-01-10 09:00:00.000000+00", "... BC" before year 1). */
static void format_micros(int64_t us, char *out, size_t len)
{
    int64_t secs = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000), frac = us - secs * 1000000;
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400), sod = secs - days * 86400, y;
    unsigned m, d;
    util_civil_from_days(days, &y, &m, &d);
    snprintf(out, len, "%04lld-%02u-%02u %02lld:%02lld:%02lld.%06lld+00%s", (long long)(y > 0 ? y : 1 - y), m, d, (long long)(sod / 3600),
             (long long)(sod / 60 % 60), (long long)(sod % 60), (long long)frac, y > 0 ? "" : " BC");
}

/*
 * The range [lo, hi) a date search value stands for, in microseconds since 1970: the value's start (UTC when it has no
 * zone) and its precision's width, a calendar year, month or day (in UTC), a minute, second or millisecond. Computed
 * here rather than by fhir_date_range() in SQL, which the planner called for every mention of the value (half the
 * database's time in a one-day Slot search), and whose day was a day in the session's time zone. is_date_value(v).
 */
static void date_value_bounds(const char *v, int64_t *lo_us, int64_t *hi_us)
{
    size_t len = strlen(v);
    int64_t year = number(v, 4);
    unsigned month = len >= 7 ? (unsigned)number(v + 5, 2) : 1, day = len >= 10 ? (unsigned)number(v + 8, 2) : 1;
    int64_t day_us = util_days_from_civil(year, month, day) * 86400 * INT64_C(1000000), lo = day_us, hi;
    if (len == 4) {
        hi = util_days_from_civil(year + 1, 1, 1) * 86400 * INT64_C(1000000);
    } else if (len == 7) {
        hi = util_days_from_civil(month == 12 ? year + 1 : year, month == 12 ? 1 : month + 1, 1) * 86400 * INT64_C(1000000);
    } else if (len == 10) {
        hi = lo + 86400 * INT64_C(1000000);
    } else {
        lo += (number(v + 11, 2) * 3600 + number(v + 14, 2) * 60) * INT64_C(1000000);
        int64_t width = 60 * INT64_C(1000000);
        const char *p = v + 16;
        if (*p == ':') {
            lo += number(p + 1, 2) * INT64_C(1000000);
            width = 1000000;
            p += 3;
            if (*p == '.') {
                /* microseconds, rounded half up from the seventh digit as PostgreSQL reads the value */
                int64_t us = 0;
                int digits_read = 0;
                for (++p; *p >= '0' && *p <= '9'; ++p, ++digits_read)
                    if (digits_read < 6)
                        us = us * 10 + (*p - '0');
                    else if (digits_read == 6 && *p >= '5')
                        us += 1;
                for (int k = digits_read; k < 6; ++k)
                    us *= 10;
                lo += us;
                width = 1000;
            }
        }
        if (*p == '+' || *p == '-')
            lo -= (*p == '+' ? 1 : -1) * (number(p + 1, 2) * 3600 + number(p + 4, 2) * 60) * INT64_C(1000000);
        hi = lo + width;
    }
    *lo_us = lo;
    *hi_us = hi;
}

/* [lo, hi) as a tstzrange literal. */
static char *range_literal(int64_t lo_us, int64_t hi_us)
{
    char a[80], b[80];
    format_micros(lo_us, a, sizeof(a));
    format_micros(hi_us, b, sizeof(b));
    return util_asprintf("[\"%s\",\"%s\")", a, b);
}

static char *date_value_range(const char *v)
{
    int64_t lo, hi;
    date_value_bounds(v, &lo, &hi);
    return range_literal(lo, hi);
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

static bool parse_double(const char *v, double *out)
{
    char *end;
    if (v[0] == '\0')
        return false;
    *out = strtod(v, &end);
    return *end == '\0' && isfinite(*out);
}

static const char *stored_type(const char *name)
{
    int i = fhir_resource_type_index(name, strlen(name));
    return i < 0 ? NULL : fhir_resource_types[i];
}

/* ---- conditions ---- */

/* What parsing one parameter gives: applied, unknown (ignored unless strict), or an error in oo. */
enum { COND_OK = 0, COND_ERROR = -1, COND_UNKNOWN = 1 };

typedef struct {
    fhir_search_t *s;
    fhir_outcome_t *oo;
    int aliases; /* subquery aliases made so far */
    const char *unknown; /* the parameter that was not understood (for the warning) */
} builder_t;

static bool is_column(const fhir_search_param_t *p)
{
    return p->element == FHIR_EL_ID || p->element == FHIR_EL_LAST_UPDATED;
}

/*
 * The parameter `code` as every one of `types` defines it, all of the same search type; NULL if any lacks it. The
 * element kinds may differ (Practitioner.name is a HumanName, Location.name a string): both are searched the same way.
 */
static const fhir_search_param_t *param_for(const char *const *types, size_t ntypes, const char *code)
{
    const fhir_search_param_t *first = NULL;
    for (size_t i = 0; i != ntypes; ++i) {
        const fhir_search_param_t *p = fhir_search_param_find(types[i], code);
        if (p == NULL || (first != NULL && (p->search_type != first->search_type || is_column(p) != is_column(first))))
            return NULL;
        if (first == NULL)
            first = p;
    }
    return first;
}

/* The date prefix of a value; advances *value past it. */
static const char *date_prefix(const char **value)
{
    static const char *const prefixes[] = {"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"};
    for (size_t i = 0; i != sizeof(prefixes) / sizeof(prefixes[0]); ++i) {
        if (strncmp(*value, prefixes[i], 2) == 0) {
            *value += 2;
            return prefixes[i];
        }
    }
    return "eq";
}

/*
 * One date value against a stored range (`col` is a tstzrange) or a stored instant (`point`), with the search value
 * R = $n, the value's range (date_value_range). Written with range operators so that the GiST/btree indexes serve them.
 */
static void date_condition(util_buf_t *out, const char *col, bool point, const char *prefix, int n)
{
    char r[48];
    snprintf(r, sizeof(r), "$%d::tstzrange", n);
    if (point) {
        if (strcmp(prefix, "eq") == 0)
            util_buf_printf(out, "(%s >= lower(%s) AND %s < upper(%s))", col, r, col, r);
        else if (strcmp(prefix, "ne") == 0)
            util_buf_printf(out, "NOT (%s >= lower(%s) AND %s < upper(%s))", col, r, col, r);
        else if (strcmp(prefix, "gt") == 0 || strcmp(prefix, "sa") == 0)
            util_buf_printf(out, "%s >= upper(%s)", col, r);
        else if (strcmp(prefix, "lt") == 0 || strcmp(prefix, "eb") == 0)
            util_buf_printf(out, "%s < lower(%s)", col, r);
        else if (strcmp(prefix, "ge") == 0)
            util_buf_printf(out, "%s >= lower(%s)", col, r);
        else if (strcmp(prefix, "le") == 0)
            util_buf_printf(out, "%s < upper(%s)", col, r);
        else
            util_buf_printf(out, "%s <@ fhir_approx_range(%s)", col, r);
        return;
    }
    if (strcmp(prefix, "eq") == 0)
        util_buf_printf(out, "%s <@ %s", col, r);
    else if (strcmp(prefix, "ne") == 0)
        util_buf_printf(out, "NOT (%s <@ %s)", col, r);
    else if (strcmp(prefix, "gt") == 0)
        util_buf_printf(out, "%s && tstzrange(upper(%s), NULL)", col, r);
    else if (strcmp(prefix, "lt") == 0)
        util_buf_printf(out, "%s && tstzrange(NULL, lower(%s))", col, r);
    else if (strcmp(prefix, "ge") == 0)
        util_buf_printf(out, "(%s && tstzrange(upper(%s), NULL) OR %s <@ %s)", col, r, col, r);
    else if (strcmp(prefix, "le") == 0)
        util_buf_printf(out, "(%s && tstzrange(NULL, lower(%s)) OR %s <@ %s)", col, r, col, r);
    else if (strcmp(prefix, "sa") == 0)
        util_buf_printf(out, "%s >> tstzrange(NULL, upper(%s))", col, r);
    else if (strcmp(prefix, "eb") == 0)
        util_buf_printf(out, "%s << tstzrange(lower(%s), NULL)", col, r);
    else
        util_buf_printf(out, "%s && fhir_approx_range(%s)", col, r);
}

/* The sp_tokens entries a token value stands for ("code=v", "code=sys|v", "code=|v", "code=sys|"). */
static void token_entry(store_array_t *a, const char *code, const char *value)
{
    char *system, *c;
    split_token(value, &system, &c);
    char *entry = system == NULL ? util_asprintf("%s=%s", code, c) : util_asprintf("%s=%s|%s", code, system, c);
    store_array_add(a, entry);
    free(entry);
    free(system);
    free(c);
}

/* The sp_tokens entry a reference value stands for, or -1 when the value cannot name a target of `param`. */
static int reference_entry(builder_t *b, store_array_t *a, const fhir_search_param_t *param, const char *type_modifier, const char *value)
{
    char *entry = NULL;
    if (type_modifier != NULL) {
        if (strchr(value, '/') != NULL) {
            char *local = fhir_search_local_reference(value, fhir_base_url);
            if (local == NULL || strncmp(local, type_modifier, strlen(type_modifier)) != 0 || local[strlen(type_modifier)] != '/') {
                free(local);
                return fhir_outcome_fail(b->oo, 400, "value", NULL, "search parameter %s:%s: \"%s\" is not a %s reference",
                                         param->code, type_modifier, value, type_modifier);
            }
            entry = util_asprintf("%s=%s", param->code, local);
            free(local);
        } else {
            entry = util_asprintf("%s=%s/%s", param->code, type_modifier, value);
        }
    } else {
        char *local = fhir_search_local_reference(value, fhir_base_url);
        entry = util_asprintf("%s=%s", param->code, local != NULL ? local : value);
        free(local);
    }
    store_array_add(a, entry);
    free(entry);
    return 0;
}

static int cond_for(builder_t *b, util_buf_t *out, const char *alias, const char *const *types, size_t ntypes, const char *name,
                    const char *value, int depth);

/* `name` is "code[:modifier]"; a missing modifier gives "". Returns the code (caller frees) and the modifier in *mod. */
static char *split_modifier(const char *name, const char **mod)
{
    const char *colon = strchr(name, ':');
    *mod = colon != NULL ? colon + 1 : "";
    return util_xstrndup(name, colon != NULL ? (size_t)(colon - name) : strlen(name));
}

static int missing_condition(builder_t *b, util_buf_t *out, const char *alias, const fhir_search_param_t *param, const char *value)
{
    if (strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
        return fhir_outcome_fail(b->oo, 400, "value", NULL, "search parameter %s:missing takes true or false", param->code);
    bool missing = strcmp(value, "true") == 0;
    if (param->element == FHIR_EL_ID || param->element == FHIR_EL_LAST_UPDATED) {
        util_buf_puts(out, missing ? "false" : "true");
        return COND_OK;
    }
    store_array_t a;
    store_array_init(&a);
    store_array_add(&a, param->code);
    util_buf_printf(out, "%s(%s.sp_tokens @> $%d::text[])", missing ? "NOT " : "", alias, array_param(b->s, &a));
    return COND_OK;
}

/* A string-like match against sp_text: starts-with (default), :exact, :contains, or a token's :text. */
static void text_condition(builder_t *b, util_buf_t *out, const char *alias, const char *code, const char *mod, const char *value)
{
    util_buf_t pat;
    util_buf_init(&pat);
    if (strcmp(mod, "contains") == 0) {
        char *folded = util_fold(value);
        util_buf_puts(&pat, "\x1e");
        regex_escape(&pat, code);
        util_buf_puts(&pat, "=[^\x1e]*");
        regex_escape(&pat, folded);
        free(folded);
        util_buf_printf(out, "%s.sp_text ~ $%d::text", alias, add_param(b->s, pat.base));
    } else if (strcmp(mod, "exact") == 0) {
        util_buf_puts(&pat, "%\x1e");
        like_escape(&pat, code);
        util_buf_puts(&pat, ":exact=");
        like_escape(&pat, value);
        util_buf_puts(&pat, "\x1e%");
        util_buf_printf(out, "%s.sp_text LIKE $%d::text", alias, add_param(b->s, pat.base));
    } else {
        char *folded = util_fold(value);
        util_buf_puts(&pat, "%\x1e");
        like_escape(&pat, code);
        util_buf_puts(&pat, strcmp(mod, "text") == 0 ? ":text=" : "=");
        like_escape(&pat, folded);
        util_buf_puts(&pat, "%");
        free(folded);
        util_buf_printf(out, "%s.sp_text LIKE $%d::text", alias, add_param(b->s, pat.base));
    }
    util_buf_dispose(&pat);
}

/* `near=latitude|longitude|distance|units` (distance defaults to 50 km; units km, m, mi or [mi_i]). */
static int near_condition(builder_t *b, util_buf_t *out, const char *alias, const char *value)
{
    char *parts[4] = {NULL, NULL, NULL, NULL}, *copy = util_xstrdup(value);
    size_t n = 0;
    for (char *p = copy; n < 4;) {
        char *bar = strchr(p, '|');
        parts[n++] = p;
        if (bar == NULL)
            break;
        *bar = '\0';
        p = bar + 1;
    }
    double lat, lon, dist = 50, factor = 1;
    bool ok = n >= 2 && parse_double(parts[0], &lat) && parse_double(parts[1], &lon) && lat >= -90 && lat <= 90 && lon >= -180 &&
              lon <= 180 && strchr(parts[n - 1], '|') == NULL;
    if (ok && n >= 3 && parts[2][0] != '\0')
        ok = parse_double(parts[2], &dist) && dist >= 0;
    if (ok && n >= 4) {
        const char *u = parts[3];
        if (strcmp(u, "m") == 0)
            factor = 0.001;
        else if (strcmp(u, "mi") == 0 || strcmp(u, "[mi_i]") == 0)
            factor = 1.609344;
        else if (strcmp(u, "km") != 0 && u[0] != '\0')
            ok = false;
    }
    free(copy);
    if (!ok)
        return fhir_outcome_fail(b->oo, 400, "value", NULL,
                                 "search parameter near: \"%s\" is not latitude|longitude|distance|units (units km, m, mi)", value);
    char num[3][40];
    snprintf(num[0], sizeof(num[0]), "%.10g", lat);
    snprintf(num[1], sizeof(num[1]), "%.10g", lon);
    snprintf(num[2], sizeof(num[2]), "%.10g", dist * factor);
    int p0 = add_param(b->s, num[0]), p1 = add_param(b->s, num[1]), p2 = add_param(b->s, num[2]);
    util_buf_printf(out, "(%s.sp_geo IS NOT NULL AND fhir_distance_km(%s.sp_geo, $%d::float8, $%d::float8) <= $%d::float8)", alias,
                    alias, p0, p1, p2);
    return COND_OK;
}

/* One "code[:modifier]=v1,v2" on `alias`, OR over the values. */
static int value_condition(builder_t *b, util_buf_t *out, const char *alias, const fhir_search_param_t *param, const char *mod,
                           const char *value)
{
    if (strcmp(mod, "missing") == 0)
        return missing_condition(b, out, alias, param, value);
    char **values;
    size_t n = split_values(value, &values);
    for (size_t i = 0; i != n; ++i) {
        if (values[i][0] == '\0') {
            free_values(values, n);
            return fhir_outcome_fail(b->oo, 400, "value", NULL, "search parameter %s has an empty value", param->code);
        }
    }
    if (param->search_type == FHIR_SEARCH_STRING || param->search_type == FHIR_SEARCH_URI)
        for (size_t i = 0; i != n; ++i)
            unescape_bars(values[i]);
    int ret = COND_OK;
    const char *type_modifier = NULL;
    switch (param->search_type) {
    case FHIR_SEARCH_TOKEN:
    case FHIR_SEARCH_URI:
        if (mod[0] != '\0' && strcmp(mod, "not") != 0 &&
            !(strcmp(mod, "text") == 0 && param->search_type == FHIR_SEARCH_TOKEN && param->element != FHIR_EL_ID) &&
            !(strcmp(mod, "of-type") == 0 && param->element == FHIR_EL_IDENTIFIER))
            goto BadModifier;
        if (strcmp(mod, "text") == 0) {
            util_buf_puts(out, "(");
            for (size_t i = 0; i != n; ++i) {
                util_buf_puts(out, i == 0 ? "" : " OR ");
                text_condition(b, out, alias, param->code, "text", values[i]);
            }
            util_buf_puts(out, ")");
            break;
        }
        if (param->element == FHIR_EL_ID) {
            store_array_t a;
            store_array_init(&a);
            for (size_t i = 0; i != n; ++i)
                store_array_add(&a, values[i]);
            util_buf_printf(out, "%s(%s.id = ANY($%d::text[]))", strcmp(mod, "not") == 0 ? "NOT " : "", alias, array_param(b->s, &a));
            break;
        }
        store_array_t a;
        store_array_init(&a);
        for (size_t i = 0; i != n; ++i) {
            if (param->search_type == FHIR_SEARCH_URI) {
                char *entry = util_asprintf("%s=%s", param->code, values[i]);
                store_array_add(&a, entry);
                free(entry);
            } else if (strcmp(mod, "of-type") == 0) {
                /* typeSystem|typeCode|value, stored as written */
                char *entry = util_asprintf("%s:of-type=%s", param->code, values[i]);
                if (strchr(values[i], '|') == NULL || strchr(strchr(values[i], '|') + 1, '|') == NULL) {
                    free(entry);
                    store_array_dispose(&a);
                    free_values(values, n);
                    return fhir_outcome_fail(b->oo, 400, "value", NULL, "search parameter %s:of-type takes system|code|value",
                                             param->code);
                }
                store_array_add(&a, entry);
                free(entry);
            } else {
                token_entry(&a, param->code, values[i]);
            }
        }
        util_buf_printf(out, "%s(%s.sp_tokens && $%d::text[])", strcmp(mod, "not") == 0 ? "NOT " : "", alias, array_param(b->s, &a));
        break;
    case FHIR_SEARCH_STRING:
        if (mod[0] != '\0' && strcmp(mod, "exact") != 0 && strcmp(mod, "contains") != 0)
            goto BadModifier;
        util_buf_puts(out, "(");
        for (size_t i = 0; i != n; ++i) {
            util_buf_puts(out, i == 0 ? "" : " OR ");
            text_condition(b, out, alias, param->code, mod, values[i]);
        }
        util_buf_puts(out, ")");
        break;
    case FHIR_SEARCH_REFERENCE: {
        if (strcmp(mod, "identifier") == 0) {
            store_array_t a;
            store_array_init(&a);
            char *code = util_asprintf("%s:identifier", param->code);
            for (size_t i = 0; i != n; ++i)
                token_entry(&a, code, values[i]);
            free(code);
            util_buf_printf(out, "%s.sp_tokens && $%d::text[]", alias, array_param(b->s, &a));
            break;
        }
        if (mod[0] != '\0') {
            type_modifier = stored_type(mod);
            if (type_modifier == NULL && fhir_search_param_targets(param, mod))
                type_modifier = mod; /* a target type we do not store (Organization, Device ...): matches by reference */
            if (type_modifier == NULL || !fhir_search_param_targets(param, mod))
                goto BadModifier;
        }
        store_array_t a;
        store_array_init(&a);
        for (size_t i = 0; i != n && ret == COND_OK; ++i)
            ret = reference_entry(b, &a, param, type_modifier, values[i]);
        if (ret != COND_OK) {
            store_array_dispose(&a);
            break;
        }
        util_buf_printf(out, "%s.sp_tokens && $%d::text[]", alias, array_param(b->s, &a));
        break;
    }
    case FHIR_SEARCH_DATE:
        if (mod[0] != '\0')
            goto BadModifier;
        util_buf_puts(out, "(");
        for (size_t i = 0; i != n; ++i) {
            const char *v = values[i];
            const char *prefix = date_prefix(&v);
            if (!is_date_value(v)) {
                ret = fhir_outcome_fail(b->oo, 400, "value", NULL, "search parameter %s: \"%s\" is not a date, dateTime or instant (with an optional prefix eq, ne, gt, lt, ge, le, sa, eb, ap)",
                                        param->code, values[i]);
                break;
            }
            util_buf_puts(out, i == 0 ? "" : " OR ");
            bool point = param->element == FHIR_EL_LAST_UPDATED;
            char col[40];
            snprintf(col, sizeof(col), "%s.%s", alias, point ? "last_updated" : "sp_date");
            date_condition(out, col, point, prefix, add_param_owned(b->s, date_value_range(v)));
        }
        util_buf_puts(out, ")");
        break;
    case FHIR_SEARCH_SPECIAL:
        if (mod[0] != '\0')
            goto BadModifier;
        util_buf_puts(out, "(");
        for (size_t i = 0; i != n && ret == COND_OK; ++i) {
            util_buf_puts(out, i == 0 ? "" : " OR ");
            ret = near_condition(b, out, alias, values[i]);
        }
        util_buf_puts(out, ")");
        break;
    }
    free_values(values, n);
    return ret;
BadModifier:
    free_values(values, n);
    return fhir_outcome_fail(b->oo, 400, "not-supported", NULL, "modifier :%s is not supported on search parameter %s (%s)", mod,
                             param->code, fhir_search_type_name(param->search_type));
}

/* Appends " AND ..." hiding the rows of `types` (all stored types when ntypes is 0) that the requester may not read. */
static void access_condition(fhir_search_t *s, util_buf_t *out, const char *alias, const char *const *types, size_t ntypes)
{
    if (s->access == NULL)
        return;
    size_t n = ntypes != 0 ? ntypes : FHIR_RESOURCE_TYPE_COUNT;
    for (size_t i = 0; i != n; ++i) {
        const char *type = ntypes != 0 ? types[i] : fhir_resource_types[i];
        const fhir_access_rule_t *rule = fhir_access_rule(s->access, type, false);
        if (rule->level == FHIR_ACCESS_ALL)
            continue;
        int pt = add_param(s, type);
        if (rule->level == FHIR_ACCESS_NONE) {
            util_buf_printf(out, " AND %s.res_type <> $%d::text", alias, pt);
            continue;
        }
        char id_expr[32], tokens_expr[32];
        snprintf(id_expr, sizeof(id_expr), "%s.id", alias);
        snprintf(tokens_expr, sizeof(tokens_expr), "%s.sp_tokens", alias);
        const char *values[2];
        util_buf_printf(out, " AND (%s.res_type <> $%d::text OR ", alias, pt);
        fhir_access_sql(out, rule, id_expr, tokens_expr, s->nparams + 1, values);
        add_param(s, values[0]);
        add_param(s, values[1]);
        util_buf_puts(out, ")");
    }
}

/* `_has:Type:ref:rest=value`: resources of `types[0]` that a matching Type points at through `ref`. */
static int has_condition(builder_t *b, util_buf_t *out, const char *alias, const char *const *types, size_t ntypes, const char *name,
                         const char *value, int depth)
{
    const char *p = name + 5, *c1 = strchr(p, ':'), *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
    if (c1 == NULL || c2 == NULL || c2[1] == '\0')
        return fhir_outcome_fail(b->oo, 400, "invalid", NULL, "%s: _has takes _has:Type:reference:parameter", name);
    char *type_name = util_xstrndup(p, (size_t)(c1 - p)), *ref = util_xstrndup(c1 + 1, (size_t)(c2 - c1 - 1));
    const char *type = stored_type(type_name);
    const fhir_search_param_t *param = type != NULL ? fhir_search_param_find(type, ref) : NULL;
    int ret = COND_OK;
    if (ntypes != 1) {
        ret = fhir_outcome_fail(b->oo, 400, "not-supported", NULL, "%s: _has needs a search on one resource type", name);
    } else if (param == NULL || param->search_type != FHIR_SEARCH_REFERENCE || !fhir_search_param_targets(param, types[0])) {
        ret = fhir_outcome_fail(b->oo, 400, "invalid", NULL, "%s: %s is not a %s reference parameter pointing at %s", name, ref,
                                type != NULL ? type : type_name, types[0]);
    } else {
        int alias_no = ++b->aliases;
        char sub[16];
        snprintf(sub, sizeof(sub), "h%d", alias_no);
        char *prefix = util_asprintf("%s=%s/", ref, types[0]);
        int pp = add_param_owned(b->s, prefix), pt = add_param(b->s, type);
        util_buf_printf(out,
                        "%s.id IN (SELECT substr(e, length($%d::text) + 1) FROM resource %s, unnest(%s.sp_tokens) e WHERE %s.res_type = "
                        "$%d::text AND NOT %s.deleted AND starts_with(e, $%d::text) AND ",
                        alias, pp, sub, sub, sub, pt, sub, pp);
        const char *sub_types[1] = {type};
        ret = cond_for(b, out, sub, sub_types, 1, c2 + 1, value, depth + 1);
        access_condition(b->s, out, sub, sub_types, 1);
        util_buf_puts(out, ")");
    }
    free(type_name);
    free(ref);
    return ret;
}

/* `ref[:Type].rest=value`: resources whose reference `ref` points at a resource matching `rest`. */
static int chain_condition(builder_t *b, util_buf_t *out, const char *alias, const char *const *types, size_t ntypes, const char *name,
                           const char *dot, const char *value, int depth)
{
    char *head = util_xstrndup(name, (size_t)(dot - name));
    const char *mod;
    char *code = split_modifier(head, &mod);
    const fhir_search_param_t *param = param_for(types, ntypes, code);
    int ret = COND_OK;
    const char *targets[FHIR_RESOURCE_TYPE_COUNT];
    size_t ntargets = 0;
    if (param == NULL) {
        ret = COND_UNKNOWN;
    } else if (param->search_type != FHIR_SEARCH_REFERENCE) {
        ret = fhir_outcome_fail(b->oo, 400, "invalid", NULL, "search parameter %s: only reference parameters can be chained", code);
    } else {
        /* the chained parameter's own code decides which target types can answer it */
        const char *rest = dot + 1;
        size_t rlen = strcspn(rest, ".:");
        char *next_code = util_xstrndup(rest, rlen);
        for (int i = 0; i != FHIR_RESOURCE_TYPE_COUNT; ++i) {
            const char *t = fhir_resource_types[i];
            if ((mod[0] == '\0' || strcmp(mod, t) == 0) && fhir_search_param_targets(param, t) &&
                (fhir_search_param_find(t, next_code) != NULL || strncmp(rest, "_has:", 5) == 0))
                targets[ntargets++] = t;
        }
        free(next_code);
        if (ntargets == 0) {
            ret = fhir_outcome_fail(b->oo, 400, "invalid", NULL,
                                    "search parameter %s: no target type of %s%s%s can be searched by %s", name, code,
                                    mod[0] != '\0' ? ":" : "", mod, rest);
        } else {
            int alias_no = ++b->aliases;
            char sub[16];
            snprintf(sub, sizeof(sub), "c%d", alias_no);
            store_array_t a;
            store_array_init(&a);
            for (size_t i = 0; i != ntargets; ++i)
                store_array_add(&a, targets[i]);
            int pt = array_param(b->s, &a);
            char *prefix = util_asprintf("%s=", code);
            int pp = add_param_owned(b->s, prefix);
            util_buf_printf(out,
                            "%s.sp_tokens && ARRAY(SELECT $%d::text || %s.res_type || '/' || %s.id FROM resource %s WHERE %s.res_type = "
                            "ANY($%d::text[]) AND NOT %s.deleted AND ",
                            alias, pp, sub, sub, sub, sub, pt, sub);
            ret = cond_for(b, out, sub, targets, ntargets, rest, value, depth + 1);
            access_condition(b->s, out, sub, targets, ntargets);
            util_buf_puts(out, ")");
        }
    }
    free(code);
    free(head);
    return ret;
}

static int cond_for(builder_t *b, util_buf_t *out, const char *alias, const char *const *types, size_t ntypes, const char *name,
                    const char *value, int depth)
{
    if (depth > MAX_NESTING)
        return fhir_outcome_fail(b->oo, 400, "too-costly", NULL, "search parameter %s: chains and _has nest at most %d deep", name,
                                 MAX_NESTING);
    if (strncmp(name, "_has:", 5) == 0)
        return has_condition(b, out, alias, types, ntypes, name, value, depth);
    const char *dot = strchr(name, '.');
    if (dot != NULL)
        return chain_condition(b, out, alias, types, ntypes, name, dot, value, depth);
    const char *mod;
    char *code = split_modifier(name, &mod);
    const fhir_search_param_t *param = param_for(types, ntypes, code);
    int ret = param == NULL ? COND_UNKNOWN : value_condition(b, out, alias, param, mod, value);
    free(code);
    return ret;
}

/* ---- sort keys and the cursor ---- */

typedef struct {
    char expr[80];
    bool desc;
    bool ts; /* compared as timestamptz, otherwise as text */
} sort_key_t;

/* A _sort key onto an expression over the search columns; -1 (400) when the key cannot be sorted on. */
static int sort_key(fhir_search_t *s, const char *key, sort_key_t *out, fhir_outcome_t *oo)
{
    out->desc = key[0] == '-';
    const char *code = key + out->desc;
    const fhir_search_param_t *param = param_for(s->types, s->ntypes, code);
    if (param == NULL || param->search_type == FHIR_SEARCH_SPECIAL)
        return fhir_outcome_fail(oo, 400, "not-supported", NULL, "_sort: %s is not a sortable search parameter of %s", code,
                                 s->ntypes == 1 ? s->types[0] : "every searched type");
    out->ts = param->search_type == FHIR_SEARCH_DATE;
    if (param->element == FHIR_EL_ID)
        snprintf(out->expr, sizeof(out->expr), "r.id");
    else if (param->element == FHIR_EL_LAST_UPDATED)
        snprintf(out->expr, sizeof(out->expr), "r.last_updated");
    else if (out->ts)
        snprintf(out->expr, sizeof(out->expr), "coalesce(lower(r.sp_date), '-infinity'::timestamptz)");
    else
        snprintf(out->expr, sizeof(out->expr), "coalesce(r.sp_sort ->> $%d::text, '')", add_param(s, code));
    return 0;
}

static const char hex_digits[] = "0123456789abcdef";

/* Cursors are JSON, hex-encoded (URL-safe without another escaping layer), followed by an HMAC tag. */
#define CURSOR_TAG_BYTES 16
static char *cursor_key;

void fhir_search_set_cursor_key(const char *key)
{
    free(cursor_key);
    cursor_key = key != NULL ? util_xstrdup(key) : NULL;
}

static void hex_append(util_buf_t *out, const unsigned char *bytes, size_t len)
{
    for (size_t i = 0; i != len; ++i) {
        char pair[2] = {hex_digits[bytes[i] >> 4], hex_digits[bytes[i] & 15]};
        util_buf_append(out, pair, 2);
    }
}

/* The tag of `text`: HMAC-SHA256 under the server secret, truncated. Without a key (unit tests) a fixed one. */
static void cursor_tag(const char *text, size_t len, unsigned char tag[CURSOR_TAG_BYTES])
{
    const char *key = cursor_key != NULL ? cursor_key : "fhirsched-unkeyed";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)text, len, mac, &maclen);
    memcpy(tag, mac, CURSOR_TAG_BYTES);
}

char *fhir_search_cursor(const fhir_search_t *s, bool backward, const char *const *keys)
{
    json_t *arr = json_array();
    json_array_append_new(arr, json_string(backward ? "p" : "n"));
    for (size_t i = 0; i != s->nsort + 2; ++i)
        json_array_append_new(arr, json_string(keys[i]));
    char *text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    unsigned char tag[CURSOR_TAG_BYTES];
    cursor_tag(text, strlen(text), tag);
    util_buf_t out;
    util_buf_init(&out);
    hex_append(&out, (const unsigned char *)text, strlen(text));
    hex_append(&out, tag, sizeof(tag));
    free(text);
    char *cursor = util_xstrndup(out.base, out.len);
    util_buf_dispose(&out);
    return cursor;
}

/* Decodes a _cursor into its values (dir, keys..., res_type, id); NULL when it is not one of ours, or was altered. */
static json_t *decode_cursor(const char *cursor, size_t nkeys)
{
    size_t len = strlen(cursor);
    if (len <= 2 * CURSOR_TAG_BYTES || len % 2 != 0 || len > 8192)
        return NULL;
    size_t nbytes = len / 2;
    unsigned char *bytes = util_xmalloc(nbytes + 1);
    for (size_t i = 0; i != nbytes; ++i) {
        const char *h1 = strchr(hex_digits, cursor[2 * i]), *h2 = strchr(hex_digits, cursor[2 * i + 1]);
        if (h1 == NULL || h2 == NULL || cursor[2 * i] == '\0' || cursor[2 * i + 1] == '\0') {
            free(bytes);
            return NULL;
        }
        bytes[i] = (unsigned char)((h1 - hex_digits) * 16 + (h2 - hex_digits));
    }
    size_t textlen = nbytes - CURSOR_TAG_BYTES;
    unsigned char tag[CURSOR_TAG_BYTES];
    cursor_tag((const char *)bytes, textlen, tag);
    json_t *arr = CRYPTO_memcmp(tag, bytes + textlen, CURSOR_TAG_BYTES) == 0 ? json_loadb((const char *)bytes, textlen, 0, NULL) : NULL;
    free(bytes);
    bool ok = json_is_array(arr) && json_array_size(arr) == nkeys + 3;
    size_t i;
    json_t *v;
    json_array_foreach (arr, i, v)
        ok = ok && json_is_string(v) && json_string_length(v) <= 1024;
    if (ok) {
        const char *dir = json_string_value(json_array_get(arr, 0));
        ok = strcmp(dir, "n") == 0 || strcmp(dir, "p") == 0;
    }
    if (!ok) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

/* A timestamptz cursor value must be what PostgreSQL printed: digits, separators and "infinity". */
static bool is_timestamp_text(const char *v)
{
    if (strcmp(v, "-infinity") == 0 || strcmp(v, "infinity") == 0)
        return true;
    if (strlen(v) < 19 || !digits(v, 4))
        return false;
    for (const char *p = v; *p != '\0'; ++p)
        if (!isdigit((unsigned char)*p) && strchr("-:+. T", *p) == NULL)
            return false;
    return true;
}

/* ---- includes ---- */

/* `Type:param[:Target]` of _include/_revinclude; "*" expands to every reference parameter of Type. */
static int parse_include(fhir_search_t *s, const char *value, bool reverse, bool iterate, fhir_outcome_t *oo)
{
    const char *what = reverse ? "_revinclude" : "_include";
    const char *c1 = strchr(value, ':');
    if (c1 == NULL)
        return fhir_outcome_fail(oo, 400, "value", NULL, "%s takes Type:parameter[:targetType], not \"%s\"", what, value);
    const char *c2 = strchr(c1 + 1, ':');
    char *type_name = util_xstrndup(value, (size_t)(c1 - value));
    char *code = c2 != NULL ? util_xstrndup(c1 + 1, (size_t)(c2 - c1 - 1)) : util_xstrdup(c1 + 1);
    const char *source = stored_type(type_name), *target = NULL;
    int ret = 0;
    if (c2 != NULL && (target = stored_type(c2 + 1)) == NULL) {
        ret = fhir_outcome_fail(oo, 400, "value", NULL, "%s=%s: %s is not a resource type of this server", what, value, c2 + 1);
        goto Exit;
    }
    if (source == NULL) {
        ret = fhir_outcome_fail(oo, 400, "value", NULL, "%s=%s: %s is not a resource type of this server", what, value, type_name);
        goto Exit;
    }
    if (!reverse && !iterate) {
        bool searched = false;
        for (size_t i = 0; i != s->ntypes; ++i)
            searched = searched || strcmp(s->types[i], source) == 0;
        if (!searched) {
            ret = fhir_outcome_fail(oo, 400, "value", NULL, "%s=%s: the search is not on %s (use %s:iterate to include from included resources)",
                                    what, value, source, what);
            goto Exit;
        }
    }
    const fhir_search_param_t *param;
    for (size_t i = 0; (param = fhir_search_param_at(source, i)) != NULL; ++i) {
        if (param->search_type != FHIR_SEARCH_REFERENCE || (strcmp(code, "*") != 0 && strcmp(code, param->code) != 0))
            continue;
        if (target != NULL && !fhir_search_param_targets(param, target))
            continue;
        if (s->nincludes == FHIR_SEARCH_MAX_INCLUDES) {
            ret = fhir_outcome_fail(oo, 400, "too-costly", NULL, "at most %d _include/_revinclude parameters", FHIR_SEARCH_MAX_INCLUDES);
            goto Exit;
        }
        s->includes[s->nincludes++] = (fhir_search_include_t){param->type, param->code, target, reverse, iterate};
        if (strcmp(code, "*") != 0)
            goto Exit;
    }
    if (strcmp(code, "*") != 0 || reverse)
        ret = fhir_outcome_fail(oo, 400, "value", NULL, "%s=%s: %s is not a reference search parameter of %s%s%s", what, value, code,
                                source, target != NULL ? " that can point at " : "", target != NULL ? target : "");
Exit:
    free(type_name);
    free(code);
    return ret;
}

int fhir_search_include_sql(const fhir_search_t *s, bool first_round, const char *types, const char *ids, unsigned limit,
                            util_buf_t *sql, char ***params)
{
    fhir_search_t p = {0}; /* only its parameter list is used */
    add_param(&p, types);
    add_param(&p, ids);
    size_t parts = 0;
    util_buf_puts(sql, "SELECT i.res_type, i.id, i.version_id, i.body FROM resource i WHERE NOT i.deleted AND (");
    for (size_t k = 0; k != s->nincludes; ++k) {
        const fhir_search_include_t *inc = &s->includes[k];
        if (!first_round && !inc->iterate)
            continue;
        util_buf_puts(sql, parts++ == 0 ? "" : " OR ");
        char *prefix = util_asprintf("%s=", inc->code);
        int pp = add_param_owned(&p, prefix), ps = add_param(&p, inc->source);
        if (!inc->reverse) {
            /* the seeds' references through the parameter, as "Type/id" */
            util_buf_printf(sql,
                            "(i.res_type, i.id) IN (SELECT split_part(x, '/', 1), split_part(x, '/', 2) FROM (SELECT "
                            "substr(e, length($%d::text) + 1) AS x FROM resource s, unnest(s.sp_tokens) e WHERE (s.res_type, s.id) IN "
                            "(SELECT * FROM unnest($1::text[], $2::text[])) AND s.res_type = $%d::text AND starts_with(e, $%d::text)) q "
                            "WHERE x ~ '^[A-Z][A-Za-z]+/[A-Za-z0-9.-]{1,64}$'",
                            pp, ps, pp);
            if (inc->target != NULL)
                util_buf_printf(sql, " AND starts_with(x, $%d::text || '/')", add_param(&p, inc->target));
            util_buf_puts(sql, ")");
        } else {
            /* resources of the source type whose parameter points at a seed */
            util_buf_printf(sql,
                            "(i.res_type = $%d::text AND i.sp_tokens && ARRAY(SELECT $%d::text || u.t || '/' || u.d FROM "
                            "unnest($1::text[], $2::text[]) AS u(t, d)",
                            ps, pp);
            if (inc->target != NULL)
                util_buf_printf(sql, " WHERE u.t = $%d::text", add_param(&p, inc->target));
            util_buf_puts(sql, "))");
        }
    }
    util_buf_puts(sql, ")");
    p.access = s->access;
    access_condition(&p, sql, "i", NULL, 0);
    char num[16];
    snprintf(num, sizeof(num), "%u", limit);
    util_buf_printf(sql, " ORDER BY i.res_type, i.id LIMIT $%d::integer", add_param(&p, num));
    if (parts == 0) {
        for (int i = 0; i != p.nparams; ++i)
            free(p.params[i]);
        free(p.params);
        sql->len = 0;
        *params = NULL;
        return 0;
    }
    *params = p.params;
    return p.nparams;
}

/* ---- building ---- */

static void note_used(fhir_search_t *s, const char *name, const char *value)
{
    if (s->used.len != 0)
        util_buf_puts(&s->used, "&");
    fhir_url_encode(&s->used, name);
    util_buf_puts(&s->used, "=");
    fhir_url_encode(&s->used, value);
}

/* Drops the parameters added after `mark` (a clause that was not applied must leave no untyped parameter behind). */
static void rollback_params(fhir_search_t *s, int mark)
{
    while (s->nparams > mark)
        free(s->params[--s->nparams]);
}

typedef struct {
    char *name, *value;
} pair_t;

static int parse_control(fhir_search_t *s, const char *name, const char *value, const fhir_search_limits_t *limits, char **sort,
                         char **cursor, fhir_outcome_t *oo)
{
    if (strcmp(name, "_count") == 0) {
        if (parse_uint(value, &s->count) != 0)
            return fhir_outcome_fail(oo, 400, "value", NULL, "_count must be a non-negative whole number, not \"%s\"", value);
        if (s->count > limits->max_count)
            s->count = limits->max_count;
        if (s->count == 0)
            s->count_only = true;
    } else if (strcmp(name, "_cursor") == 0) {
        free(*cursor);
        *cursor = util_xstrdup(value);
    } else if (strcmp(name, "_sort") == 0) {
        size_t n = strlen(value);
        if (n == 0 || value[0] == ',' || value[n - 1] == ',' || strstr(value, ",,") != NULL)
            return fhir_outcome_fail(oo, 400, "value", NULL, "_sort takes a comma-separated list of parameters, not \"%s\"", value);
        free(*sort);
        *sort = util_xstrdup(value);
    } else if (strcmp(name, "_total") == 0) {
        if (strcmp(value, "none") == 0)
            s->total = FHIR_TOTAL_NONE;
        else if (strcmp(value, "estimate") == 0)
            s->total = FHIR_TOTAL_ESTIMATE;
        else if (strcmp(value, "accurate") == 0)
            s->total = FHIR_TOTAL_ACCURATE;
        else
            return fhir_outcome_fail(oo, 400, "value", NULL, "_total takes none, estimate or accurate, not \"%s\"", value);
        note_used(s, name, value);
    } else if (strcmp(name, "_summary") == 0) {
        if (strcmp(value, "count") == 0)
            s->count_only = true;
        else if (strcmp(value, "true") == 0)
            s->summary = FHIR_SUMMARY_TRUE;
        else if (strcmp(value, "text") == 0)
            s->summary = FHIR_SUMMARY_TEXT;
        else if (strcmp(value, "data") == 0)
            s->summary = FHIR_SUMMARY_DATA;
        else if (strcmp(value, "false") == 0)
            s->summary = FHIR_SUMMARY_FALSE;
        else
            return fhir_outcome_fail(oo, 400, "value", NULL, "_summary takes true, text, data, count or false, not \"%s\"", value);
        note_used(s, name, value);
    } else if (strcmp(name, "_elements") == 0) {
        free(s->_element_store);
        s->_element_store = util_xstrdup(value);
        s->nelements = 0;
        char *save = NULL;
        for (char *tok = strtok_r(s->_element_store, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ')
                ++tok;
            /* "Patient.name" names the element name */
            const char *dot = strrchr(tok, '.');
            if (s->nelements == FHIR_SEARCH_MAX_ELEMENTS)
                return fhir_outcome_fail(oo, 400, "too-costly", NULL, "_elements lists at most %d elements", FHIR_SEARCH_MAX_ELEMENTS);
            s->elements[s->nelements++] = dot != NULL ? dot + 1 : tok;
        }
        note_used(s, name, value);
    } else if (strncmp(name, "_include", 8) == 0 || strncmp(name, "_revinclude", 11) == 0) {
        bool reverse = name[1] == 'r';
        const char *mod = name + (reverse ? 11 : 8);
        bool iterate = strcmp(mod, ":iterate") == 0 || strcmp(mod, ":recurse") == 0;
        if (mod[0] != '\0' && !iterate)
            return fhir_outcome_fail(oo, 400, "not-supported", NULL, "%s: the only modifier is :iterate", name);
        if (parse_include(s, value, reverse, iterate, oo) != 0)
            return -1;
        note_used(s, name, value);
    }
    return 0;
}

static bool is_control(const char *name)
{
    static const char *const names[] = {"_count", "_cursor", "_sort", "_total", "_summary", "_elements", "_format", "_pretty"};
    for (size_t i = 0; i != sizeof(names) / sizeof(names[0]); ++i)
        if (strcmp(name, names[i]) == 0)
            return true;
    return strncmp(name, "_include", 8) == 0 || strncmp(name, "_revinclude", 11) == 0;
}

/* The search's types: the one in the URL, or _type's list (every type when absent) for a system search. */
static int parse_types(fhir_search_t *s, const char *type, pair_t *pairs, size_t npairs, fhir_outcome_t *oo)
{
    if (type != NULL) {
        s->types[s->ntypes++] = type;
        return 0;
    }
    for (size_t i = 0; i != npairs; ++i) {
        if (strcmp(pairs[i].name, "_type") != 0)
            continue;
        char **values;
        size_t n = split_values(pairs[i].value, &values);
        for (size_t k = 0; k != n; ++k) {
            const char *t = stored_type(values[k]);
            if (t == NULL) {
                fhir_outcome_fail(oo, 400, "value", NULL, "_type: %s is not a resource type of this server", values[k]);
                free_values(values, n);
                return -1;
            }
            bool seen = false;
            for (size_t j = 0; j != s->ntypes; ++j)
                seen = seen || s->types[j] == t;
            if (!seen)
                s->types[s->ntypes++] = t;
        }
        free_values(values, n);
        note_used(s, "_type", pairs[i].value);
    }
    if (s->ntypes == 0)
        for (int i = 0; i != FHIR_RESOURCE_TYPE_COUNT; ++i)
            s->types[s->ntypes++] = fhir_resource_types[i];
    return 0;
}

/* The keyset condition "after the cursor row in output order", one OR branch per key (row comparisons cannot mix directions). */
static void keyset_condition(fhir_search_t *s, util_buf_t *sql, const sort_key_t *keys, size_t nkeys, json_t *cursor)
{
    int refs[FHIR_SEARCH_MAX_SORT + 2];
    for (size_t i = 0; i != nkeys; ++i)
        refs[i] = add_param(s, json_string_value(json_array_get(cursor, i + 1)));
    util_buf_puts(sql, " AND (");
    for (size_t i = 0; i != nkeys; ++i) {
        util_buf_puts(sql, i == 0 ? "(" : " OR (");
        for (size_t j = 0; j != i; ++j)
            util_buf_printf(sql, "%s = $%d::%s AND ", keys[j].expr, refs[j], keys[j].ts ? "timestamptz" : "text");
        bool descending = keys[i].desc != s->backward;
        util_buf_printf(sql, "%s %c $%d::%s)", keys[i].expr, descending ? '<' : '>', refs[i], keys[i].ts ? "timestamptz" : "text");
    }
    util_buf_puts(sql, ")");
}

/*
 * Types whose partition has a btree on (one reference's sort key, start of the date column): slot_schedule_start,
 * migrations/0010. The reference is one the type holds at most once, so its sort key is that reference.
 */
static const struct {
    const char *type, *reference;
} ordered_by_reference[] = {{"Slot", "schedule"}};

/* The sort key a one-valued, unmodified search on such a reference stands for; NULL when it has none or may differ. */
static char *ordered_reference_key(const char *type, const fhir_search_param_t *param, const char *name, const char *value)
{
    if (param == NULL || param->search_type != FHIR_SEARCH_REFERENCE || strcmp(name, param->code) != 0 || strchr(value, ',') != NULL)
        return NULL;
    bool listed = false;
    for (size_t i = 0; i != sizeof(ordered_by_reference) / sizeof(ordered_by_reference[0]); ++i)
        listed = listed || (strcmp(ordered_by_reference[i].type, type) == 0 && strcmp(ordered_by_reference[i].reference, param->code) == 0);
    if (!listed)
        return NULL;
    if (strchr(value, '/') != NULL)
        return fhir_search_local_reference(value, fhir_base_url);
    /* a bare id names a resource of the one target type (the token index holds both forms) */
    if (param->targets == NULL || strcmp(param->targets, "*") == 0 || strchr(param->targets, '|') != NULL || value[0] == '\0')
        return NULL;
    return util_asprintf("%s/%s", param->targets, value);
}

/*
 * The restated search's date conditions, written on an expression equal to r.sp_date that no index is on (the
 * intersection with the unbounded range): they only filter the btree's rows. At a million Slots the plan for unknown
 * values took them to the GiST range index and ANDed every Slot of the day with the btree's rows (0.2-0.4 ms instead
 * of 0.1). Until the btree conditions follow, every r.sp_date in `where` is one of those conditions.
 */
static void hide_dates_from_indexes(util_buf_t *where)
{
    static const char column[] = "r.sp_date";
    util_buf_t out;
    util_buf_init(&out);
    const char *p = where->base, *hit;
    while ((hit = strstr(p, column)) != NULL) {
        util_buf_append(&out, p, (size_t)(hit - p));
        util_buf_puts(&out, "(r.sp_date * '(,)'::tstzrange)");
        p = hit + sizeof(column) - 1;
    }
    util_buf_puts(&out, p);
    util_buf_dispose(where);
    *where = out;
}

int fhir_search_build(fhir_search_t *s, const char *type, const char *query, size_t len, const fhir_search_limits_t *limits,
                      bool strict, fhir_outcome_t *oo)
{
    return fhir_search_build_for(s, type, query, len, limits, strict, NULL, oo);
}

int fhir_search_build_for(fhir_search_t *s, const char *type, const char *query, size_t len, const fhir_search_limits_t *limits,
                          bool strict, const fhir_access_t *access, fhir_outcome_t *oo)
{
    memset(s, 0, sizeof(*s));
    s->access = access;
    util_buf_init(&s->sql);
    util_buf_init(&s->count_sql);
    util_buf_init(&s->where);
    util_buf_init(&s->used);
    s->count = limits->default_count;
    s->total = FHIR_TOTAL_ACCURATE;
    pair_t *pairs = NULL;
    size_t npairs = 0, cap = 0;
    char *sort = NULL, *cursor_text = NULL, *ordered_key = NULL; /* ordered_key: see ordered_reference_key */
    json_t *cursor = NULL;
    util_buf_t where, clause;
    util_buf_init(&where);
    util_buf_init(&clause);
    int ret = -1;

    const char *qp = query, *end = query + len;
    char *name, *value;
    int more;
    while ((more = fhir_query_next(&qp, end, &name, &value)) != 0) {
        if (more < 0) {
            fhir_outcome_fail(oo, 400, "invalid", NULL, "malformed percent-encoding in the query string");
            goto Exit;
        }
        if (npairs == cap)
            pairs = util_xrealloc(pairs, (cap = cap ? cap * 2 : 16) * sizeof(*pairs));
        pairs[npairs++] = (pair_t){name, value};
    }
    if (parse_types(s, type, pairs, npairs, oo) != 0)
        goto Exit;
    for (size_t i = 0; i != npairs; ++i)
        if (is_control(pairs[i].name) && parse_control(s, pairs[i].name, pairs[i].value, limits, &sort, &cursor_text, oo) != 0)
            goto Exit;

    /*
     * The type: one of our own table's names is written out, so that a plan made for any values (a kept statement's
     * generic plan, store.h) is still confined to the type's partition at planning time.
     */
    const char *known_type = s->ntypes == 1 ? stored_type(s->types[0]) : NULL;
    if (known_type != NULL) {
        util_buf_printf(&where, "r.res_type = '%s' AND NOT r.deleted", known_type);
    } else if (s->ntypes == 1) {
        util_buf_printf(&where, "r.res_type = $%d::text AND NOT r.deleted", add_param(s, s->types[0]));
    } else {
        store_array_t a;
        store_array_init(&a);
        for (size_t i = 0; i != s->ntypes; ++i)
            store_array_add(&a, s->types[i]);
        util_buf_printf(&where, "r.res_type = ANY($%d::text[]) AND NOT r.deleted", array_param(s, &a));
    }
    builder_t b = {.s = s, .oo = oo};
    /* the lower (ge/gt/sa) and upper (le/lt/eb) bound given as one value each on the type's date parameter, see below */
    bool has_window_lo = false, has_window_hi = false;
    int64_t window_lo = 0, window_hi = 0;
    const fhir_search_param_t *window_param = NULL;
    const char *ordered_code = NULL;
    for (size_t i = 0; i != npairs; ++i) {
        const char *n = pairs[i].name;
        if (is_control(n) || (type == NULL && strcmp(n, "_type") == 0))
            continue;
        clause.len = 0;
        int mark = s->nparams;
        int r = cond_for(&b, &clause, "r", s->types, s->ntypes, n, pairs[i].value, 0);
        if (r == COND_ERROR)
            goto Exit;
        if (r == COND_UNKNOWN) {
            rollback_params(s, mark);
            const char *where_text = s->ntypes == 1 ? s->types[0] : "every searched type";
            if (strict) {
                fhir_outcome_fail(oo, 400, "not-supported", NULL, "unknown search parameter %s for %s", n, where_text);
                goto Exit;
            }
            fhir_outcome_add(oo, FHIR_SEV_WARNING, "not-supported", NULL, "search parameter %s is not supported for %s; ignored", n,
                             where_text);
            continue;
        }
        util_buf_puts(&where, " AND ");
        util_buf_append(&where, clause.base, clause.len);
        note_used(s, n, pairs[i].value);
        /* a plain token/reference clause, "(r.sp_tokens && $k::text[])" as cond_for writes it, is a necessary condition */
        int k, end = 0;
        if (s->ntoken_filters != FHIR_SEARCH_MAX_TOKEN_FILTERS &&
            (sscanf(clause.base, "(r.sp_tokens && $%d::text[])%n", &k, &end) == 1 || sscanf(clause.base, "r.sp_tokens && $%d::text[]%n", &k, &end) == 1) &&
            (size_t)end == clause.len && k >= 1 && k <= s->nparams)
            s->token_filters[s->ntoken_filters++] = k - 1;
        /* remember a lower (ge/gt/sa) and an upper (le/lt/eb) bound given as one value on the type's date parameter */
        const fhir_search_param_t *param = param_for(s->types, s->ntypes, n);
        if (param != NULL && param->search_type == FHIR_SEARCH_DATE && !is_column(param) && strchr(pairs[i].value, ',') == NULL &&
            (window_param == NULL || strcmp(window_param->code, param->code) == 0)) {
            const char *v = pairs[i].value, *prefix = date_prefix(&v);
            int64_t lo, hi;
            date_value_bounds(v, &lo, &hi); /* cond_for accepted v */
            window_param = param;
            if (strcmp(prefix, "ge") == 0 || strcmp(prefix, "gt") == 0 || strcmp(prefix, "sa") == 0) {
                has_window_lo = true;
                window_lo = strcmp(prefix, "ge") == 0 ? lo : hi;
            } else if (strcmp(prefix, "le") == 0 || strcmp(prefix, "lt") == 0 || strcmp(prefix, "eb") == 0) {
                has_window_hi = true;
                window_hi = strcmp(prefix, "le") == 0 ? hi : lo;
            }
        }
        char *key = s->ntypes == 1 && ordered_key == NULL ? ordered_reference_key(s->types[0], param, n, pairs[i].value) : NULL;
        if (key != NULL) {
            ordered_code = param->code;
            ordered_key = key;
        }
    }
    /*
     * start=ge..&start=lt.. : both half-lines imply overlapping the window between them. Stated once more as one
     * range, it lets the planner estimate a day of Slots as a day, not as the product of two independent halves
     * (which made it walk the primary key in id order, filtering, instead of using the GIN/GiST indexes).
     */
    bool window = has_window_lo && has_window_hi && window_lo < window_hi; /* crossed bounds: a long period can match both */
    /*
     * schedule=…&start=ge…&start=lt… restated in the terms of the type's (reference, start) btree, which finds the
     * day's rows directly; the token and range indexes found every row of the schedule and every row of the day, and
     * intersected them. Overlapping the window bounds the start from below too, because a stored instant is at most a
     * second wide (validation requires seconds). Whatever the values, that btree finds the page's rows best: the plan
     * may be kept. The window's range is then left out, and the date conditions are kept from the range index
     * (hide_dates_from_indexes): a plan for unknown values would take them there.
     */
    bool restated = ordered_key != NULL && window && window_param->element == FHIR_EL_INSTANT;
    if (window && !restated)
        util_buf_printf(&where, " AND r.sp_date && $%d::tstzrange", add_param_owned(s, range_literal(window_lo, window_hi)));
    if (ordered_key != NULL) {
        util_buf_printf(&where, " AND (r.sp_sort ->> '%s') = $%d::text", ordered_code, add_param_owned(s, ordered_key));
        ordered_key = NULL;
    }
    if (restated) {
        hide_dates_from_indexes(&where);
        char after[80], before[80];
        format_micros(window_lo - 1000000, after, sizeof(after));
        format_micros(window_hi, before, sizeof(before));
        util_buf_printf(&where, " AND lower(r.sp_date) > $%d::timestamptz", add_param(s, after));
        util_buf_printf(&where, " AND lower(r.sp_date) < $%d::timestamptz", add_param(s, before));
        s->plan_reusable = true;
    }
    access_condition(s, &where, "r", s->types, s->ntypes);
    s->nparams_where = s->nparams;
    util_buf_puts(&s->count_sql, "SELECT count(*) FROM resource r WHERE ");
    util_buf_append(&s->count_sql, where.base, where.len);
    util_buf_append(&s->where, where.base, where.len);

    /* sort keys: the requested ones, then res_type and id so that every row has its own place */
    sort_key_t keys[FHIR_SEARCH_MAX_SORT + 2];
    size_t nkeys = 0;
    if (sort != NULL) {
        char *save = NULL;
        for (char *tok = strtok_r(sort, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
            if (nkeys == FHIR_SEARCH_MAX_SORT) {
                fhir_outcome_fail(oo, 400, "too-costly", NULL, "_sort takes at most %d keys", FHIR_SEARCH_MAX_SORT);
                goto Exit;
            }
            if (sort_key(s, tok, &keys[nkeys++], oo) != 0)
                goto Exit;
        }
        /* strtok_r cut `sort`; the used form is rebuilt from the pairs */
        for (size_t i = 0; i != npairs; ++i)
            if (strcmp(pairs[i].name, "_sort") == 0)
                note_used(s, "_sort", pairs[i].value);
    }
    s->nsort = nkeys;
    keys[nkeys++] = (sort_key_t){"r.res_type", false, false};
    keys[nkeys++] = (sort_key_t){"r.id", false, false};

    if (cursor_text != NULL) {
        cursor = decode_cursor(cursor_text, s->nsort);
        for (size_t i = 0; cursor != NULL && i != nkeys; ++i)
            if (keys[i].ts && !is_timestamp_text(json_string_value(json_array_get(cursor, i + 1)))) {
                json_decref(cursor);
                cursor = NULL;
            }
        if (cursor == NULL) {
            fhir_outcome_fail(oo, 400, "value", NULL, "_cursor is not a paging cursor of this search (follow the Bundle's links)");
            goto Exit;
        }
        s->has_cursor = true;
        s->cursor = util_xstrdup(cursor_text);
        s->backward = strcmp(json_string_value(json_array_get(cursor, 0)), "p") == 0;
    }

    util_buf_puts(&s->sql, "SELECT r.res_type, r.id, r.version_id, r.body");
    for (size_t i = 0; i != s->nsort; ++i)
        util_buf_printf(&s->sql, ", (%s)::text", keys[i].expr);
    util_buf_puts(&s->sql, " FROM resource r WHERE ");
    util_buf_append(&s->sql, where.base, where.len);
    if (cursor != NULL)
        keyset_condition(s, &s->sql, keys, nkeys, cursor);
    util_buf_puts(&s->sql, " ORDER BY ");
    for (size_t i = 0; i != nkeys; ++i)
        util_buf_printf(&s->sql, "%s%s%s", i == 0 ? "" : ", ", keys[i].expr, keys[i].desc != s->backward ? " DESC" : "");
    char num[16];
    snprintf(num, sizeof(num), "%u", s->count + 1);
    util_buf_printf(&s->sql, " LIMIT $%d::integer", add_param(s, num));
    ret = 0;
Exit:
    for (size_t i = 0; i != npairs; ++i) {
        free(pairs[i].name);
        free(pairs[i].value);
    }
    free(pairs);
    free(sort);
    free(cursor_text);
    free(ordered_key);
    json_decref(cursor);
    util_buf_dispose(&where);
    util_buf_dispose(&clause);
    return ret;
}

void fhir_search_dispose(fhir_search_t *s)
{
    for (int i = 0; i != s->nparams; ++i)
        free(s->params[i]);
    free(s->params);
    util_buf_dispose(&s->sql);
    util_buf_dispose(&s->count_sql);
    util_buf_dispose(&s->where);
    util_buf_dispose(&s->used);
    free(s->_element_store);
    free(s->cursor);
    memset(s, 0, sizeof(*s));
}
