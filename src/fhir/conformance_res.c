#include <string.h>
#include "fhir/conformance_res.h"
#include "util/str.h"

/* The types whose every instance on this server is an embedded file; none of them is stored in the database. */
static const char *const conformance_types[] = {"CodeSystem", "OperationDefinition", "StructureDefinition"};
#define CONFORMANCE_TYPE_COUNT (sizeof(conformance_types) / sizeof(conformance_types[0]))

/* The static name of a conformance type given by `len` bytes of `name`, or NULL. */
static const char *type_named(const char *name, size_t len)
{
    for (size_t i = 0; i != CONFORMANCE_TYPE_COUNT; ++i)
        if (util_str_eq(name, len, conformance_types[i]))
            return conformance_types[i];
    return NULL;
}

bool fhir_conformance_type(const char *type)
{
    return type != NULL && type_named(type, strlen(type)) != NULL;
}

const fhir_conformance_file_t *fhir_conformance_at(size_t i)
{
    return i < fhir_conformance_file_count ? &fhir_conformance_files[i] : NULL;
}

/* The embedded file of `type` and `id_len` bytes of `id`, or NULL. */
static const fhir_conformance_file_t *file_find(const char *type, const char *id, size_t id_len)
{
    for (size_t i = 0; i != fhir_conformance_file_count; ++i) {
        const fhir_conformance_file_t *f = &fhir_conformance_files[i];
        if (strcmp(f->type, type) == 0 && util_str_eq(id, id_len, f->id))
            return f;
    }
    return NULL;
}

const char *fhir_conformance_resource(const char *type, const char *id, size_t *len)
{
    const fhir_conformance_file_t *f = type != NULL && id != NULL ? file_find(type, id, strlen(id)) : NULL;
    if (f == NULL)
        return NULL;
    *len = f->len;
    return f->json;
}

bool fhir_conformance_route(const char *method, const char *path, size_t path_len, const char **body, size_t *len,
                            fhir_outcome_t *oo)
{
    const char *slash = memchr(path, '/', path_len);
    size_t type_len = slash != NULL ? (size_t)(slash - path) : path_len;
    const char *type = type_named(path, type_len);
    if (type == NULL)
        return false;
    *body = NULL;
    *len = 0;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        fhir_outcome_fail(oo, 405, "not-supported", NULL, "%s resources are read-only on this server", type);
        return true;
    }
    const char *id = slash != NULL ? slash + 1 : NULL;
    size_t id_len = slash != NULL ? path_len - type_len - 1 : 0;
    if (id == NULL || id_len == 0 || memchr(id, '/', id_len) != NULL || id[0] == '$' || id[0] == '_') {
        /* search, history, operations: only read is offered */
        fhir_outcome_fail(oo, 404, "not-supported", NULL, "only read (GET [base]/%s/[id]) is supported for %s", type, type);
        return true;
    }
    const fhir_conformance_file_t *f = file_find(type, id, id_len);
    if (f == NULL) {
        /* the id comes from the URL: it is not echoed */
        fhir_outcome_fail(oo, 404, "not-found", NULL, "this %s is not known", type);
        return true;
    }
    *body = f->json;
    *len = f->len;
    return true;
}
