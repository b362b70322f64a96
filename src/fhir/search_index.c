/*
 * Extraction of the typed search columns (migrations/0003_search_index.sql) from a resource, driven by the registry:
 * every parameter's expression selects elements, and the element kind decides which entries they give.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "fhir/interaction.h"
#include "fhir/search.h"
#include "util/fold.h"

/* Separates entries in the sp_text column; never part of a stored value (values have it replaced). */
#define TEXT_SEP '\x1e'

/* ---- the FHIRPath subset ---- */

static bool is_type_name(const char *s, size_t len)
{
    if (len == 0 || !isupper((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i != len; ++i)
        if (!isalpha((unsigned char)s[i]))
            return false;
    return true;
}

/* The type named by a reference's tail ("Patient" in "http://x/fhir/Patient/1/_history/2"), or NULL. */
static char *reference_type(const char *ref)
{
    const char *hist = strstr(ref, "/_history/");
    size_t len = hist != NULL ? (size_t)(hist - ref) : strlen(ref);
    const char *id_slash = NULL, *type_slash = NULL;
    for (size_t i = len; i-- > 0;) {
        if (ref[i] == '/') {
            if (id_slash == NULL) {
                id_slash = ref + i;
            } else {
                type_slash = ref + i;
                break;
            }
        }
    }
    if (id_slash == NULL)
        return NULL;
    const char *start = type_slash != NULL ? type_slash + 1 : ref;
    if (!is_type_name(start, (size_t)(id_slash - start)) || id_slash + 1 == ref + len)
        return NULL;
    return util_xstrndup(start, (size_t)(id_slash - start));
}

char *fhir_search_local_reference(const char *ref, const char *base)
{
    size_t blen = base != NULL ? strlen(base) : 0;
    if (blen != 0 && strncmp(ref, base, blen) == 0 && ref[blen] == '/')
        ref += blen + 1;
    const char *hist = strstr(ref, "/_history/");
    size_t len = hist != NULL ? (size_t)(hist - ref) : strlen(ref);
    const char *slash = memchr(ref, '/', len);
    if (slash == NULL || !is_type_name(ref, (size_t)(slash - ref)))
        return NULL;
    const char *id = slash + 1;
    size_t idlen = len - (size_t)(id - ref);
    if (idlen == 0 || idlen > 64)
        return NULL;
    for (size_t i = 0; i != idlen; ++i)
        if (!isalnum((unsigned char)id[i]) && id[i] != '-' && id[i] != '.')
            return NULL;
    return util_xstrndup(ref, len);
}

static void append_node(json_t *out, json_t *v)
{
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach (v, i, e)
            if (!json_is_null(e))
                json_array_append(out, e);
    } else if (v != NULL && !json_is_null(v)) {
        json_array_append(out, v);
    }
}

/* Applies one step ("name", "where(resolve() is T)" or "where(name='v')") to every node of `in`. */
static int eval_step(const char *step, size_t len, json_t *in, json_t *out)
{
    size_t i;
    json_t *node;
    if (len > 7 && strncmp(step, "where(", 6) == 0 && step[len - 1] == ')') {
        const char *arg = step + 6;
        size_t alen = len - 7;
        if (alen > 14 && strncmp(arg, "resolve() is ", 13) == 0) {
            const char *type = arg + 13;
            size_t tlen = alen - 13;
            json_array_foreach (in, i, node) {
                const char *ref = json_string_value(json_object_get(node, "reference"));
                char *t = ref != NULL ? reference_type(ref) : NULL;
                if (t != NULL && strlen(t) == tlen && strncmp(t, type, tlen) == 0)
                    json_array_append(out, node);
                free(t);
            }
            return 0;
        }
        const char *eq = memchr(arg, '=', alen);
        if (eq == NULL || eq + 2 >= arg + alen || eq[1] != '\'' || arg[alen - 1] != '\'')
            return -1;
        char *name = util_xstrndup(arg, (size_t)(eq - arg)), *want = util_xstrndup(eq + 2, (size_t)(arg + alen - eq - 3));
        json_array_foreach (in, i, node) {
            const char *v = json_string_value(json_object_get(node, name));
            if (v != NULL && strcmp(v, want) == 0)
                json_array_append(out, node);
        }
        free(name);
        free(want);
        return 0;
    }
    for (size_t k = 0; k != len; ++k)
        if (!isalnum((unsigned char)step[k]))
            return -1;
    char *name = util_xstrndup(step, len);
    json_array_foreach (in, i, node)
        if (json_is_object(node))
            append_node(out, json_object_get(node, name));
    free(name);
    return 0;
}

/* One branch of a union: "Type.a.b.where(...)". */
static int eval_path(const char *path, size_t len, json_t *resource, json_t *out)
{
    while (len > 0 && path[0] == ' ')
        ++path, --len;
    while (len > 0 && path[len - 1] == ' ')
        --len;
    const char *dot = memchr(path, '.', len);
    if (dot == NULL)
        return -1;
    /* The first step names the type; the registry restricts expressions to the entry's own type or Resource. */
    json_t *cur = json_array();
    json_array_append(cur, resource);
    const char *p = dot + 1, *end = path + len;
    int ret = 0;
    while (p < end && ret == 0) {
        const char *stop = p;
        int depth = 0;
        bool quoted = false;
        for (; stop < end; ++stop) {
            if (*stop == '\'')
                quoted = !quoted;
            else if (!quoted && *stop == '(')
                ++depth;
            else if (!quoted && *stop == ')')
                --depth;
            else if (!quoted && depth == 0 && *stop == '.')
                break;
        }
        json_t *next = json_array();
        ret = stop == p ? -1 : eval_step(p, (size_t)(stop - p), cur, next);
        json_decref(cur);
        cur = next;
        p = stop + 1;
    }
    if (ret == 0)
        json_array_extend(out, cur);
    json_decref(cur);
    return ret;
}

int fhir_search_eval(const char *expression, json_t *resource, json_t *out)
{
    const char *p = expression;
    for (;;) {
        const char *bar = strchr(p, '|');
        size_t len = bar != NULL ? (size_t)(bar - p) : strlen(p);
        if (eval_path(p, len, resource, out) != 0)
            return -1;
        if (bar == NULL)
            return 0;
        p = bar + 1;
    }
}

/* ---- entries ---- */

typedef struct {
    char **tokens;
    size_t ntokens, cap;
    util_buf_t text;
    json_t *sort;
    json_t *date;
    json_t *geo;
} extract_t;

static void add_entry(extract_t *x, char *entry)
{
    if (x->ntokens == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 32;
        x->tokens = util_xrealloc(x->tokens, x->cap * sizeof(*x->tokens));
    }
    x->tokens[x->ntokens++] = entry;
}

/* A token value in the forms a search can name: code, system|code, system| (or |code without a system). */
static void add_token(extract_t *x, const char *code, const char *system, const char *value)
{
    if (value == NULL || value[0] == '\0')
        return;
    add_entry(x, util_asprintf("%s=%s", code, value));
    if (system != NULL && system[0] != '\0') {
        add_entry(x, util_asprintf("%s=%s|%s", code, system, value));
        add_entry(x, util_asprintf("%s=%s|", code, system));
    } else {
        add_entry(x, util_asprintf("%s=|%s", code, value));
    }
}

static void append_clean(util_buf_t *buf, const char *s)
{
    for (const char *p = s; *p != '\0'; ++p) {
        char c = *p == TEXT_SEP ? ' ' : *p;
        util_buf_append(buf, &c, 1);
    }
}

/* A string value: folded for the default and :contains matches, as written for :exact. */
static void add_text(extract_t *x, const char *code, const char *suffix, const char *value, bool exact_too)
{
    if (value == NULL || value[0] == '\0')
        return;
    char *folded = util_fold(value);
    util_buf_printf(&x->text, "%s%s=", code, suffix);
    append_clean(&x->text, folded);
    util_buf_append(&x->text, "\x1e", 1);
    if (exact_too) {
        util_buf_printf(&x->text, "%s:exact=", code);
        append_clean(&x->text, value);
        util_buf_append(&x->text, "\x1e", 1);
    }
    if (json_object_get(x->sort, code) == NULL)
        json_object_set_new(x->sort, code, json_string(folded));
    free(folded);
}

static void set_sort(extract_t *x, const char *code, const char *value)
{
    if (value != NULL && json_object_get(x->sort, code) == NULL)
        json_object_set_new(x->sort, code, json_string(value));
}

static void add_coding(extract_t *x, const char *code, json_t *coding)
{
    const char *c = json_string_value(json_object_get(coding, "code"));
    add_token(x, code, json_string_value(json_object_get(coding, "system")), c);
    set_sort(x, code, c);
    add_text(x, code, ":text", json_string_value(json_object_get(coding, "display")), false);
}

static void add_codeable(extract_t *x, const char *code, json_t *cc)
{
    size_t i;
    json_t *coding;
    json_array_foreach (json_object_get(cc, "coding"), i, coding)
        add_coding(x, code, coding);
    add_text(x, code, ":text", json_string_value(json_object_get(cc, "text")), false);
}

static void add_identifier(extract_t *x, const char *code, json_t *ident)
{
    const char *value = json_string_value(json_object_get(ident, "value"));
    add_token(x, code, json_string_value(json_object_get(ident, "system")), value);
    set_sort(x, code, value);
    json_t *type = json_object_get(ident, "type");
    size_t i;
    json_t *coding;
    json_array_foreach (json_object_get(type, "coding"), i, coding) {
        const char *tsys = json_string_value(json_object_get(coding, "system")), *tcode = json_string_value(json_object_get(coding, "code"));
        if (tcode != NULL && value != NULL)
            add_entry(x, util_asprintf("%s:of-type=%s|%s|%s", code, tsys != NULL ? tsys : "", tcode, value));
    }
    add_text(x, code, ":text", json_string_value(json_object_get(type, "text")), false);
}

static void add_reference(extract_t *x, const fhir_search_param_t *param, json_t *ref)
{
    const char *code = param->code;
    const char *s = json_string_value(json_object_get(ref, "reference"));
    if (s != NULL) {
        char *local = fhir_search_local_reference(s, fhir_base_url);
        if (local != NULL) {
            char *type = util_xstrndup(local, (size_t)(strchr(local, '/') - local));
            if (param->targets == NULL || fhir_search_param_targets(param, type)) {
                add_entry(x, util_asprintf("%s=%s", code, local));
                add_entry(x, util_asprintf("%s=%s", code, strchr(local, '/') + 1));
                set_sort(x, code, local);
            }
            free(type);
            free(local);
        } else if (strstr(s, "://") != NULL || strncmp(s, "urn:", 4) == 0) {
            add_entry(x, util_asprintf("%s=%s", code, s));
            set_sort(x, code, s);
        }
    }
    json_t *ident = json_object_get(ref, "identifier");
    if (json_is_object(ident)) {
        char *prefixed = util_asprintf("%s:identifier", code);
        add_token(x, prefixed, json_string_value(json_object_get(ident, "system")), json_string_value(json_object_get(ident, "value")));
        free(prefixed);
    }
}

static void add_strings(extract_t *x, const char *code, json_t *v)
{
    if (json_is_string(v)) {
        add_text(x, code, "", json_string_value(v), true);
    } else if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach (v, i, e)
            add_strings(x, code, e);
    }
}

static void add_date(extract_t *x, json_t *v, fhir_element_kind_t kind)
{
    if (x->date != NULL) /* one date parameter per type: see fhir_search_param_t */
        return;
    if (kind == FHIR_EL_PERIOD) {
        json_t *start = json_object_get(v, "start"), *end = json_object_get(v, "end");
        if (json_is_string(start) || json_is_string(end))
            x->date = json_pack("[OO]", json_is_string(start) ? start : json_null(), json_is_string(end) ? end : json_null());
    } else if (json_is_string(v)) {
        x->date = json_pack("[OO]", v, v);
    }
}

static void extract_param(extract_t *x, const fhir_search_param_t *param, json_t *resource)
{
    json_t *nodes = json_array();
    if (fhir_search_eval(param->expression, resource, nodes) != 0 || json_array_size(nodes) == 0) {
        json_decref(nodes);
        return;
    }
    const char *code = param->code;
    size_t before_tokens = x->ntokens, before_text = x->text.len;
    bool other = false;
    size_t i;
    json_t *v;
    json_array_foreach (nodes, i, v) {
        switch (param->element) {
        case FHIR_EL_ID:
        case FHIR_EL_LAST_UPDATED:
            break; /* columns */
        case FHIR_EL_CODE:
        case FHIR_EL_URI:
            if (json_is_string(v)) {
                add_token(x, code, param->element == FHIR_EL_CODE ? param->system : NULL, json_string_value(v));
                set_sort(x, code, json_string_value(v));
            }
            break;
        case FHIR_EL_BOOLEAN:
            if (json_is_boolean(v)) {
                add_token(x, code, NULL, json_is_true(v) ? "true" : "false");
                set_sort(x, code, json_is_true(v) ? "true" : "false");
            }
            break;
        case FHIR_EL_CODING:
            add_coding(x, code, v);
            break;
        case FHIR_EL_CODEABLE:
            add_codeable(x, code, v);
            break;
        case FHIR_EL_IDENTIFIER:
            add_identifier(x, code, v);
            break;
        case FHIR_EL_CONTACT: {
            const char *value = json_string_value(json_object_get(v, "value"));
            add_token(x, code, json_string_value(json_object_get(v, "system")), value);
            set_sort(x, code, value);
            break;
        }
        case FHIR_EL_REFERENCE:
            add_reference(x, param, v);
            break;
        case FHIR_EL_STRING:
            add_strings(x, code, v);
            break;
        case FHIR_EL_HUMANNAME: {
            static const char *const parts[] = {"family", "given", "prefix", "suffix", "text"};
            for (size_t k = 0; k != sizeof(parts) / sizeof(parts[0]); ++k)
                add_strings(x, code, json_object_get(v, parts[k]));
            break;
        }
        case FHIR_EL_ADDRESS: {
            static const char *const parts[] = {"line", "city", "district", "state", "postalCode", "country", "text"};
            for (size_t k = 0; k != sizeof(parts) / sizeof(parts[0]); ++k)
                add_strings(x, code, json_object_get(v, parts[k]));
            break;
        }
        case FHIR_EL_DATE:
        case FHIR_EL_INSTANT:
        case FHIR_EL_PERIOD:
            if (i == 0) {
                json_t *had = x->date;
                add_date(x, v, param->element);
                other = other || (had == NULL && x->date != NULL);
            }
            break;
        case FHIR_EL_POSITION: {
            json_t *lat = json_object_get(v, "latitude"), *lon = json_object_get(v, "longitude");
            if (x->geo == NULL && json_is_number(lat) && json_is_number(lon)) {
                x->geo = json_pack("[ff]", json_number_value(lat), json_number_value(lon));
                other = true;
            }
            break;
        }
        }
    }
    json_decref(nodes);
    /* the bare code marks "has a value", for :missing */
    if (other || x->ntokens != before_tokens || x->text.len != before_text)
        add_entry(x, util_xstrdup(code));
}

static int compare_entries(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

json_t *fhir_search_index(const char *type, json_t *resource)
{
    extract_t x = {.sort = json_object()};
    util_buf_init(&x.text);
    util_buf_append(&x.text, "\x1e", 1);
    const fhir_search_param_t *param;
    for (size_t i = 0; (param = fhir_search_param_at(type, i)) != NULL; ++i)
        extract_param(&x, param, resource);
    if (x.ntokens != 0)
        qsort(x.tokens, x.ntokens, sizeof(*x.tokens), compare_entries);
    json_t *tokens = json_array();
    for (size_t i = 0; i != x.ntokens; ++i)
        if (i == 0 || strcmp(x.tokens[i], x.tokens[i - 1]) != 0)
            json_array_append_new(tokens, json_string(x.tokens[i]));
    for (size_t i = 0; i != x.ntokens; ++i)
        free(x.tokens[i]);
    free(x.tokens);
    /* A Slot's end, which no search parameter indexes, for the availability engine's Slot load (src/sched/ops.c):
     * with it that load reads no Slot body. Not a sort key to clients: _sort takes registered parameters only. */
    if (strcmp(type, "Slot") == 0 && json_is_string(json_object_get(resource, "end")))
        json_object_set(x.sort, "_end", json_object_get(resource, "end"));
    json_t *text = json_stringn(x.text.base, x.text.len > 1 ? x.text.len : 0);
    json_t *doc = json_pack("{s:i, s:o, s:o, s:o}", "v", FHIR_SEARCH_INDEX_VERSION, "t", tokens, "s", text != NULL ? text : json_string(""),
                            "o", x.sort);
    if (x.date != NULL)
        json_object_set_new(doc, "d", x.date);
    if (x.geo != NULL)
        json_object_set_new(doc, "g", x.geo);
    util_buf_dispose(&x.text);
    return doc;
}

char *fhir_search_index_text(const char *type, json_t *resource)
{
    json_t *doc = fhir_search_index(type, resource);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}
