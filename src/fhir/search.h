/*
 * FHIR search: parses a query string against the table of supported search parameters and produces one parameterised
 * SQL statement (fixed fragments, values only in parameters).
 */
#ifndef FHIR_SEARCH_H
#define FHIR_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include "fhir/outcome.h"
#include "util/str.h"

typedef enum {
    FHIR_SEARCH_TOKEN,
    FHIR_SEARCH_STRING,
    FHIR_SEARCH_REFERENCE,
    FHIR_SEARCH_DATE,
} fhir_search_type_t;

/** What the element at the parameter's path is, which decides how a value is compared. */
typedef enum {
    FHIR_VALUE_PRIMITIVE, /* code, string, boolean, uri: compared as text */
    FHIR_VALUE_CODING,    /* Coding (CodeableConcept paths point at their codings) */
    FHIR_VALUE_IDENTIFIER,
    FHIR_VALUE_CONTACT,   /* ContactPoint: value */
    FHIR_VALUE_REFERENCE,
    FHIR_VALUE_DATE,      /* date, dateTime, instant or Period */
    FHIR_VALUE_STRING,    /* strings inside HumanName/Address or plain strings */
} fhir_value_kind_t;

/** One supported search parameter. `type` NULL means every resource type. */
typedef struct st_fhir_search_param_t {
    const char *type;
    const char *code;
    fhir_search_type_t search_type;
    fhir_value_kind_t value_kind;
    const char *paths[4]; /* SQL/JSON paths into the resource; NULL-terminated */
    const char *definition; /* canonical URL of the SearchParameter */
} fhir_search_param_t;

/** The outcome of parsing a search. */
typedef struct st_fhir_search_t {
    util_buf_t sql;        /* SELECT id, version_id, body, total ... */
    char **params;         /* text values for $1..$n */
    int nparams;
    unsigned count;        /* page size (_count) */
    unsigned offset;       /* rows skipped (from our own next links) */
    bool summary_count;    /* _summary=count: total only */
    util_buf_t used;       /* the parameters that were applied, URL-encoded, for self/next links */
    int _capacity;
} fhir_search_t;

/**
 * Builds the search for `type` (a stored type name) from a raw query string (not yet percent-decoded).
 * Unknown parameters are ignored (reported in `oo` as warnings) unless `strict`; malformed values fail with 400.
 * `max_count` caps _count. Returns 0 or -1 (with issues in `oo`).
 */
int fhir_search_build(fhir_search_t *search, const char *type, const char *query, size_t len, unsigned default_count,
                      unsigned max_count, bool strict, fhir_outcome_t *oo);
/** Frees what fhir_search_build allocated. */
void fhir_search_dispose(fhir_search_t *search);
/** Iterates the parameters supported for `type` (including the all-types ones): returns the i-th or NULL past the end. */
const fhir_search_param_t *fhir_search_param_at(const char *type, size_t i);
/** Percent-decodes `len` bytes into a new string (caller frees); NULL on a malformed escape or embedded NUL. */
char *fhir_url_decode(const char *s, size_t len);
/**
 * Steps through a raw query string ("a=1&b=%20"): returns 1 with the next pair percent-decoded into *name and *value (the
 * caller frees both), 0 at the end, -1 on malformed encoding. Empty pairs are skipped; a pair without '=' has value "".
 */
int fhir_query_next(const char **cursor, const char *end, char **name, char **value);
/** Appends `s` percent-encoded for a query-string value. */
void fhir_url_encode(util_buf_t *buf, const char *s);

#endif
