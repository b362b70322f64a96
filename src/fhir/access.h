/*
 * Row-level access: which stored resources of each type a request may see (read, search, includes, history) and change
 * (the resource before and after a write). auth/ decides the rules from the token; the engine enforces them in SQL, so a
 * search cannot return, include or count a row the rule hides.
 */
#ifndef FHIR_ACCESS_H
#define FHIR_ACCESS_H

#include <stdbool.h>
#include "fhir/types.h"
#include "util/str.h"

typedef enum {
    FHIR_ACCESS_ALL,  /* every row of the type */
    FHIR_ACCESS_NONE, /* no row */
    FHIR_ACCESS_SOME, /* rows whose id is in `ids` or whose search tokens overlap `tokens` */
} fhir_access_level_t;

/** One type's rule. The arrays are PostgreSQL array literals ("{a,b}"), NULL for empty. */
typedef struct st_fhir_access_rule_t {
    fhir_access_level_t level;
    char *ids;
    char *tokens;
} fhir_access_rule_t;

/** The rules of one request, indexed like fhir_resource_types. */
typedef struct st_fhir_access_t {
    fhir_access_rule_t read[FHIR_RESOURCE_TYPE_COUNT];
    fhir_access_rule_t write[FHIR_RESOURCE_TYPE_COUNT];
} fhir_access_t;

/** The read (or write) rule of `type` under `access`; NULL access or an unknown type means everything is allowed. */
const fhir_access_rule_t *fhir_access_rule(const fhir_access_t *access, const char *type, bool write);
/**
 * Writes the SQL condition "a row with this id and these search tokens (SQL expressions) passes `rule`" into `out`
 * ("true"/"false" for ALL/NONE); a SOME rule uses parameters $first (ids) and $first+1 (tokens), whose values are put
 * in values[0..1] (borrowed from the rule). Returns how many parameters it used (0 or 2).
 */
int fhir_access_sql(util_buf_t *out, const fhir_access_rule_t *rule, const char *id_expr, const char *tokens_expr, int first,
                    const char *values[2]);

#endif
