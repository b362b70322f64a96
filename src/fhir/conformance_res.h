/*
 * fhirsched's own conformance resources (the StructureDefinitions of its extensions, its CodeSystems and the
 * OperationDefinitions of $find/$hold/$book), kept as JSON in fhir/profiles/ and compiled into the binary by
 * cmake/embed_conformance.cmake. They are served read-only: GET [base]/<type>/<id>.
 */
#ifndef FHIR_CONFORMANCE_RES_H
#define FHIR_CONFORMANCE_RES_H

#include <stdbool.h>
#include <stddef.h>
#include "fhir/outcome.h"

/** Canonical base of fhirsched's definitions: <base>/<type>/<id> is a resource's url. */
#define FHIR_CONFORMANCE_BASE "http://fhirsched.org/fhir"

/** One embedded file, fhir/profiles/<type>-<id>.json, byte for byte. */
typedef struct st_fhir_conformance_file_t {
    const char *type; /* "StructureDefinition", "CodeSystem", "OperationDefinition" */
    const char *id;
    const char *json; /* NUL-terminated */
    size_t len;
} fhir_conformance_file_t;

/** The embedded files (generated), in the order CMakeLists.txt lists them. */
extern const fhir_conformance_file_t fhir_conformance_files[];
extern const size_t fhir_conformance_file_count;

/** Whether `type` is a resource type served from the embedded files (read-only). */
bool fhir_conformance_type(const char *type);
/** The JSON of `type`/`id` and its length, or NULL when there is no such embedded resource. */
const char *fhir_conformance_resource(const char *type, const char *id, size_t *len);
/** The i-th embedded file, or NULL past the end. */
const fhir_conformance_file_t *fhir_conformance_at(size_t i);
/**
 * Routes a request for [base]/<path> (no leading '/', no query string). Returns false when the first segment is not a
 * conformance type, so the caller routes the request as usual. Otherwise returns true and sets either `*body`/`*len`
 * (200: the stored JSON, valid until exit) or `*body` = NULL with an issue and `oo->status` (404 for an unknown id or
 * an interaction other than read, 405 for a method other than GET or HEAD).
 */
bool fhir_conformance_route(const char *method, const char *path, size_t path_len, const char **body, size_t *len,
                            fhir_outcome_t *oo);

#endif
