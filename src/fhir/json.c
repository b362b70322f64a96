#include <stdlib.h>
#include <string.h>
#include "fhir/json.h"
#include "fhir/interaction.h"
#include "util/str.h"
#include "util/time.h"
#include "util/uuid.h"

int fhir_json_parse(const char *body, size_t len, json_t **out, fhir_outcome_t *oo)
{
    json_error_t jerr;
    *out = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (*out == NULL)
        return fhir_outcome_fail(oo, 400, "structure", NULL, "the body is not valid JSON: %s (line %d, column %d)", jerr.text,
                                 jerr.line, jerr.column);
    return 0;
}

char *fhir_json_dump(const json_t *value, bool pretty, size_t *len)
{
    size_t flags = pretty ? (JSON_INDENT(2) | JSON_REAL_PRECISION(15)) : FHIR_JSON_DUMP_FLAGS;
    char *text = json_dumps(value, flags);
    if (text == NULL) {
        /* only on allocation failure */
        abort();
    }
    if (len != NULL)
        *len = strlen(text);
    return text;
}

/* Appends the members of an object without its braces, preceded by a comma when there are any. */
static void append_members(util_buf_t *buf, const json_t *obj)
{
    if (json_object_size(obj) == 0)
        return;
    char *text = fhir_json_dump(obj, false, NULL);
    size_t n = strlen(text);
    util_buf_append(buf, ",", 1);
    util_buf_append(buf, text + 1, n - 2);
    free(text);
}

void fhir_json_compose_for_store(const json_t *resource, const char *type, const char *id, char **head, char **tail)
{
    util_buf_t buf;
    util_buf_init(&buf);
    json_t *type_str = json_string(type), *id_str = json_string(id);
    char *type_json = json_dumps(type_str, JSON_ENCODE_ANY), *id_json = json_dumps(id_str, JSON_ENCODE_ANY);
    util_buf_printf(&buf, "{\"resourceType\":%s,\"id\":%s,\"meta\":{\"versionId\":\"", type_json, id_json);
    free(type_json);
    free(id_json);
    json_decref(type_str);
    json_decref(id_str);
    *head = util_xstrndup(buf.base, buf.len);

    buf.len = 0;
    json_t *meta = json_object_get(resource, "meta");
    if (json_is_object(meta)) {
        json_t *rest = json_copy(meta);
        json_object_del(rest, "versionId");
        json_object_del(rest, "lastUpdated");
        append_members(&buf, rest);
        json_decref(rest);
    }
    util_buf_append(&buf, "}", 1);
    json_t *body = json_copy((json_t *)resource);
    json_object_del(body, "resourceType");
    json_object_del(body, "id");
    json_object_del(body, "meta");
    append_members(&buf, body);
    json_decref(body);
    util_buf_append(&buf, "}", 1);
    *tail = util_xstrndup(buf.base, buf.len);
    util_buf_dispose(&buf);
}

/* ---- JSON Patch (RFC 6902) with JSON Pointer (RFC 6901) ---- */

/* Decodes one pointer token (~1 -> /, ~0 -> ~); NULL on a bad escape. */
static char *pointer_token(const char *start, size_t len)
{
    char *out = util_xmalloc(len + 1), *d = out;
    for (size_t i = 0; i < len; ++i) {
        if (start[i] == '~') {
            if (i + 1 >= len || (start[i + 1] != '0' && start[i + 1] != '1')) {
                free(out);
                return NULL;
            }
            *d++ = start[i + 1] == '0' ? '~' : '/';
            ++i;
        } else {
            *d++ = start[i];
        }
    }
    *d = '\0';
    return out;
}

static int array_index(const char *token, size_t size, bool allow_end, size_t *out)
{
    if (allow_end && strcmp(token, "-") == 0) {
        *out = size;
        return 0;
    }
    if (token[0] == '\0' || (token[0] == '0' && token[1] != '\0') || strlen(token) > 9)
        return -1;
    for (const char *p = token; *p; ++p)
        if (*p < '0' || *p > '9')
            return -1;
    size_t idx = (size_t)atol(token);
    if (idx > size || (!allow_end && idx == size))
        return -1;
    *out = idx;
    return 0;
}

/* Resolves all but the last token: returns the parent container and the last token (caller frees). */
static json_t *resolve_parent(json_t *doc, const char *pointer, char **last)
{
    *last = NULL;
    if (pointer[0] != '/')
        return NULL;
    json_t *cur = doc;
    const char *p = pointer + 1;
    for (;;) {
        const char *slash = strchr(p, '/');
        char *token = pointer_token(p, slash != NULL ? (size_t)(slash - p) : strlen(p));
        if (token == NULL)
            return NULL;
        if (slash == NULL) {
            *last = token;
            return cur;
        }
        json_t *next = NULL;
        size_t idx;
        if (json_is_object(cur))
            next = json_object_get(cur, token);
        else if (json_is_array(cur) && array_index(token, json_array_size(cur), false, &idx) == 0)
            next = json_array_get(cur, idx);
        free(token);
        if (next == NULL)
            return NULL;
        cur = next;
        p = slash + 1;
    }
}

static json_t *pointer_get(json_t *doc, const char *pointer)
{
    if (pointer[0] == '\0')
        return doc;
    char *last;
    json_t *parent = resolve_parent(doc, pointer, &last), *found = NULL;
    size_t idx;
    if (parent != NULL) {
        if (json_is_object(parent))
            found = json_object_get(parent, last);
        else if (json_is_array(parent) && array_index(last, json_array_size(parent), false, &idx) == 0)
            found = json_array_get(parent, idx);
    }
    free(last);
    return found;
}

/* Removes and returns (new reference) the value at pointer, or NULL. */
static json_t *pointer_take(json_t *doc, const char *pointer)
{
    char *last;
    json_t *parent = resolve_parent(doc, pointer, &last), *taken = NULL;
    size_t idx;
    if (parent != NULL) {
        if (json_is_object(parent) && (taken = json_object_get(parent, last)) != NULL) {
            json_incref(taken);
            json_object_del(parent, last);
        } else if (json_is_array(parent) && array_index(last, json_array_size(parent), false, &idx) == 0) {
            taken = json_incref(json_array_get(parent, idx));
            json_array_remove(parent, idx);
        }
    }
    free(last);
    return taken;
}

/* Adds (steals `value`); replace=true requires the target to exist. */
static int pointer_put(json_t *doc, const char *pointer, json_t *value, bool replace)
{
    char *last;
    json_t *parent = resolve_parent(doc, pointer, &last);
    int ret = -1;
    size_t idx;
    if (parent != NULL) {
        if (json_is_object(parent)) {
            if (!replace || json_object_get(parent, last) != NULL)
                ret = json_object_set_new(parent, last, value) == 0 ? 0 : -1, value = NULL;
        } else if (json_is_array(parent)) {
            if (replace) {
                if (array_index(last, json_array_size(parent), false, &idx) == 0)
                    ret = json_array_set_new(parent, idx, value) == 0 ? 0 : -1, value = NULL;
            } else if (array_index(last, json_array_size(parent), true, &idx) == 0) {
                ret = json_array_insert_new(parent, idx, value) == 0 ? 0 : -1, value = NULL;
            }
        }
    }
    free(last);
    if (value != NULL)
        json_decref(value);
    return ret;
}

int fhir_json_patch_apply(json_t **doc, const json_t *patch, fhir_outcome_t *oo)
{
    if (!json_is_array(patch))
        return fhir_outcome_fail(oo, 400, "structure", NULL, "a JSON Patch document must be an array of operations");
    json_t *work = json_deep_copy(*doc);
    size_t i;
    json_t *op;
    json_array_foreach(patch, i, op)
    {
        const char *name = json_string_value(json_object_get(op, "op"));
        const char *path = json_string_value(json_object_get(op, "path"));
        json_t *value = json_object_get(op, "value");
        const char *from = json_string_value(json_object_get(op, "from"));
        if (!json_is_object(op) || name == NULL || path == NULL) {
            json_decref(work);
            return fhir_outcome_fail(oo, 400, "structure", NULL, "JSON Patch operation %zu needs \"op\" and \"path\"", i);
        }
        int ok = -1;
        if (path[0] == '\0') {
            ok = -1; /* replacing the whole resource is an update, not a patch */
        } else if (strcmp(name, "add") == 0 && value != NULL) {
            ok = pointer_put(work, path, json_deep_copy(value), false);
        } else if (strcmp(name, "replace") == 0 && value != NULL) {
            ok = pointer_put(work, path, json_deep_copy(value), true);
        } else if (strcmp(name, "remove") == 0) {
            json_t *taken = pointer_take(work, path);
            ok = taken != NULL ? 0 : -1;
            json_decref(taken);
        } else if ((strcmp(name, "move") == 0 || strcmp(name, "copy") == 0) && from != NULL) {
            bool move = name[0] == 'm';
            if (move && strncmp(path, from, strlen(from)) == 0 && (path[strlen(from)] == '/' || path[strlen(from)] == '\0') &&
                strcmp(path, from) != 0) {
                ok = -1; /* a value cannot move into itself */
            } else {
                json_t *v = move ? pointer_take(work, from) : json_deep_copy(pointer_get(work, from));
                ok = v != NULL ? pointer_put(work, path, v, false) : -1;
            }
        } else if (strcmp(name, "test") == 0 && value != NULL) {
            json_t *cur = pointer_get(work, path);
            if (cur == NULL || !json_equal(cur, value)) {
                json_decref(work);
                return fhir_outcome_fail(oo, 422, "processing", NULL, "JSON Patch test operation %zu failed at %s", i, path);
            }
            ok = 0;
        } else {
            json_decref(work);
            return fhir_outcome_fail(oo, 400, "structure", NULL, "JSON Patch operation %zu: unknown op or missing value/from", i);
        }
        if (ok != 0) {
            json_decref(work);
            return fhir_outcome_fail(oo, 422, "processing", NULL, "JSON Patch operation %zu (%s) cannot be applied at %s", i, name,
                                     path);
        }
    }
    json_decref(*doc);
    *doc = work;
    return 0;
}

void fhir_json_bundle_open(util_buf_t *buf, const char *type, const char *profile)
{
    char id[UTIL_UUID_LEN + 1], now[40];
    util_uuid_v4(id);
    util_time_format_now(now, sizeof(now));
    util_buf_printf(buf, "{\"resourceType\":\"Bundle\",\"id\":\"%s\",\"meta\":{\"lastUpdated\":\"%s\"", id, now);
    if (profile != NULL)
        util_buf_printf(buf, ",\"profile\":[\"%s\"]", profile);
    util_buf_printf(buf, "},\"type\":\"%s\"", type);
}

void fhir_json_bundle_entry(util_buf_t *buf, bool first, const char *type, const char *id, const char *resource, size_t len,
                            const char *mode)
{
    util_buf_puts(buf, first ? "{" : ",{");
    if (type != NULL && id != NULL)
        util_buf_printf(buf, "\"fullUrl\":\"%s/%s/%s\",", fhir_base_url, type, id);
    util_buf_puts(buf, "\"resource\":");
    util_buf_append(buf, resource, len);
    util_buf_printf(buf, ",\"search\":{\"mode\":\"%s\"}}", mode);
}
