/* The JSON wire format: parsing bodies, composing stored resources, JSON Patch. */
#ifndef FHIR_JSON_H
#define FHIR_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "fhir/outcome.h"
#include "util/str.h"

/** Flags used for every JSON we write: compact, insertion order, decimals without binary noise. */
#define FHIR_JSON_DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/** Parses a request body (not NUL-terminated). Duplicate keys are rejected. 400 with line/column on failure. */
int fhir_json_parse(const char *body, size_t len, json_t **out, fhir_outcome_t *oo);
/** Serialises to a malloc'd string; `pretty` indents by 2. */
char *fhir_json_dump(const json_t *value, bool pretty, size_t *len);
/**
 * Splits a resource for storage around the server-managed meta.versionId and meta.lastUpdated (see fhir_write() in
 * migrations/0001_resources.sql): stored = head + version + "\",\"lastUpdated\":\"" + instant + "\"" + tail.
 * resourceType, id and meta come first; client-sent versionId/lastUpdated are dropped. Caller frees both strings.
 */
void fhir_json_compose_for_store(const json_t *resource, const char *type, const char *id, char **head, char **tail);
/**
 * Starts a Bundle's JSON text: resourceType, a new id, meta (lastUpdated now, and `profile` when not NULL) and `type`.
 * Callers go on with their own members (total, link, entry) and close it.
 */
void fhir_json_bundle_open(util_buf_t *buf, const char *type, const char *profile);
/**
 * Appends one entry whose resource is JSON text already (stored bytes, served as they are): fullUrl from `type` and
 * `id` when both are given, then search.mode. `first` leaves out the separating comma.
 */
void fhir_json_bundle_entry(util_buf_t *buf, bool first, const char *type, const char *id, const char *resource, size_t len,
                            const char *mode);
/** Applies an RFC 6902 JSON Patch document to *doc (replaced in place). 422 on a failed op or bad patch. */
int fhir_json_patch_apply(json_t **doc, const json_t *patch, fhir_outcome_t *oo);

#endif
