/*
 * FHIR search. Three parts share this header:
 *   - the registry of supported search parameters (search_registry.c): type, code, FHIRPath expression, element
 *     type, reference targets; everything else is driven by it;
 *   - extraction (search_index.c): the typed search columns of a resource, computed from the registry on every write;
 *   - the query (search.c): a query string parsed into parameterised SQL over those columns (fixed fragments, values
 *     only in parameters), keyset paging, _include/_revinclude, chaining and _has.
 */
#ifndef FHIR_SEARCH_H
#define FHIR_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "fhir/access.h"
#include "fhir/outcome.h"
#include "fhir/subset.h"
#include "fhir/types.h"
#include "util/str.h"

/** Bump when extraction changes: `fhirsched migrate` then re-extracts every row indexed by an older version. */
#define FHIR_SEARCH_INDEX_VERSION 2

typedef enum {
    FHIR_SEARCH_TOKEN,
    FHIR_SEARCH_STRING,
    FHIR_SEARCH_REFERENCE,
    FHIR_SEARCH_DATE,
    FHIR_SEARCH_URI,
    FHIR_SEARCH_SPECIAL,
} fhir_search_type_t;

/** The FHIR datatype an expression selects, which decides what is extracted from it. */
typedef enum {
    FHIR_EL_ID,           /* Resource.id (the id column) */
    FHIR_EL_LAST_UPDATED, /* meta.lastUpdated (the last_updated column) */
    FHIR_EL_CODE,         /* code: a token with the registry's implicit system */
    FHIR_EL_BOOLEAN,
    FHIR_EL_URI,
    FHIR_EL_STRING,
    FHIR_EL_CODING,
    FHIR_EL_CODEABLE, /* CodeableConcept */
    FHIR_EL_IDENTIFIER,
    FHIR_EL_CONTACT, /* ContactPoint */
    FHIR_EL_HUMANNAME,
    FHIR_EL_ADDRESS,
    FHIR_EL_REFERENCE,
    FHIR_EL_DATE,    /* date */
    FHIR_EL_INSTANT, /* dateTime or instant */
    FHIR_EL_PERIOD,
    FHIR_EL_POSITION, /* Location.position */
} fhir_element_kind_t;

/** One supported search parameter. */
typedef struct st_fhir_search_param_t {
    const char *type; /* resource type, or NULL for every type */
    const char *code;
    fhir_search_type_t search_type;
    const char *expression; /* the official FHIRPath expression, restricted to `type` */
    fhir_element_kind_t element;
    const char *targets; /* reference target types separated by '|', "*" for any; NULL otherwise */
    const char *system;  /* implicit code system of FHIR_EL_CODE elements, or NULL */
    const char *definition; /* canonical URL of the SearchParameter */
} fhir_search_param_t;

/* ---- registry ---- */

/** The i-th parameter supported for `type` (the all-types ones first), or NULL past the end. */
const fhir_search_param_t *fhir_search_param_at(const char *type, size_t i);
/** The parameter `code` of `type` (or of every type), or NULL. */
const fhir_search_param_t *fhir_search_param_find(const char *type, const char *code);
/** The i-th registry entry (all types), or NULL past the end. */
const fhir_search_param_t *fhir_search_registry_at(size_t i);
/** Name of a search type as in SearchParameter.type ("token", ...). */
const char *fhir_search_type_name(fhir_search_type_t type);
/** docs/search.md: every parameter with its type, expression, targets and modifiers, from the registry. */
void fhir_search_registry_markdown(util_buf_t *out);
/** Whether `target` is a possible target type of reference parameter `param`. */
bool fhir_search_param_targets(const fhir_search_param_t *param, const char *target);

/* ---- extraction ---- */

/**
 * The search index document of `resource` (of `type`), as handed to fhir_write()/fhir_reindex() in SQL:
 * {"v":version,"t":[tokens],"s":"text","d":["lo","hi"],"o":{sort keys},"g":[lat,lon]}. Never fails on odd content:
 * what cannot be read is not indexed. The caller decrefs.
 */
json_t *fhir_search_index(const char *type, json_t *resource);
/** The same, serialised (caller frees). */
char *fhir_search_index_text(const char *type, json_t *resource);
/**
 * Evaluates a registry expression (the FHIRPath subset: paths, "|", where(resolve() is T), where(e='v')) on a
 * resource; the selected nodes are appended to `out` (borrowed references). -1 when the expression is outside the subset.
 */
int fhir_search_eval(const char *expression, json_t *resource, json_t *out);
/** The "Type/id" of a reference string relative to our base (`base` is fhir_base_url), or NULL (caller frees). */
char *fhir_search_local_reference(const char *reference, const char *base);

/* ---- re-extraction (blocking; `fhirsched migrate` and the start-up check) ---- */

/** Re-extracts every row indexed by an older extraction version; *done counts them. 0, or -1 with a message in err. */
int fhir_search_reindex(const char *dsn, long *done, char *err, size_t errlen);
/** Counts the rows whose search index is older than FHIR_SEARCH_INDEX_VERSION. 0, or -1 with a message in err. */
int fhir_search_stale_count(const char *dsn, long *count, char *err, size_t errlen);

/* ---- queries ---- */

typedef enum { FHIR_TOTAL_ACCURATE, FHIR_TOTAL_ESTIMATE, FHIR_TOTAL_NONE } fhir_total_mode_t;

#define FHIR_SEARCH_MAX_SORT 6
#define FHIR_SEARCH_MAX_INCLUDES 16
#define FHIR_SEARCH_MAX_ELEMENTS 32
#define FHIR_SEARCH_MAX_TOKEN_FILTERS 8

/** One _include or _revinclude. */
typedef struct st_fhir_search_include_t {
    const char *source; /* the type holding the reference parameter (static string) */
    const char *code;   /* the reference parameter, or "*" for every one (forward includes only) */
    const char *target; /* restrict to this target type, or NULL */
    bool reverse;
    bool iterate;
} fhir_search_include_t;

/** A parsed search, ready to run. */
typedef struct st_fhir_search_t {
    const char *types[FHIR_RESOURCE_TYPE_COUNT]; /* the searched types (one, or several for a system search) */
    size_t ntypes;
    util_buf_t sql;       /* the page: res_type, id, version_id, body, then the sort keys as text; count + 1 rows */
    util_buf_t count_sql; /* SELECT count(*) over the same conditions; its parameters are the first `nparams_where` */
    util_buf_t where;     /* those conditions alone, on the columns of `resource` aliased r (Subscription matching) */
    /* parameters (0-based indexes into `params`, text[] literals) of the conditions "sp_tokens overlaps this array"
     * that the WHERE requires: every matching row has a search token from each (a cheap pre-filter for Subscriptions) */
    int token_filters[FHIR_SEARCH_MAX_TOKEN_FILTERS];
    size_t ntoken_filters;
    char **params;
    int nparams;
    int nparams_where;
    unsigned count;     /* page size */
    bool count_only;    /* _summary=count or _count=0 */
    bool backward;      /* the cursor pages backwards: rows come in reverse order */
    bool has_cursor;
    bool plan_reusable; /* the best plan of the page and of the count does not depend on the values (store_query_t.keep_plan) */
    char *cursor;       /* the _cursor this page continues from (for the self link), or NULL */
    size_t nsort;       /* sort keys in `sql` after the 4 fixed columns (the last two are res_type and id) */
    fhir_total_mode_t total;
    fhir_summary_t summary;
    const char *elements[FHIR_SEARCH_MAX_ELEMENTS];
    size_t nelements;
    fhir_search_include_t includes[FHIR_SEARCH_MAX_INCLUDES];
    size_t nincludes;
    util_buf_t used; /* the applied parameters, URL-encoded, for self/next/previous links (no _count/_cursor) */
    const fhir_access_t *access; /* rows hidden from the requester never match, count or get included (NULL: all visible) */
    int _capacity;
    char *_element_store; /* owns the strings in `elements` */
} fhir_search_t;

/** Limits and defaults a search is built with. */
typedef struct st_fhir_search_limits_t {
    unsigned default_count;
    unsigned max_count;
    unsigned max_includes; /* included resources per page */
} fhir_search_limits_t;

/**
 * Builds the search over `type`, or a system search over every type (`type` NULL, narrowed by _type), from a raw
 * query string (not yet percent-decoded). Unknown parameters are ignored with a warning in `oo` unless `strict`;
 * malformed values, unknown modifiers and bad cursors fail with 400. Returns 0 or -1 (with the issue in `oo`).
 */
int fhir_search_build(fhir_search_t *search, const char *type, const char *query, size_t len, const fhir_search_limits_t *limits,
                      bool strict, fhir_outcome_t *oo);
/** fhir_search_build for a requester limited by `access` (borrowed; must outlive the search): hidden rows never match,
 * count, or get included, also through chains and _has. */
int fhir_search_build_for(fhir_search_t *search, const char *type, const char *query, size_t len, const fhir_search_limits_t *limits,
                          bool strict, const fhir_access_t *access, fhir_outcome_t *oo);
/** Frees what fhir_search_build allocated. */
void fhir_search_dispose(fhir_search_t *search);
/**
 * The query for one round of includes, seeded with the resources `types[i]/ids[i]` (PostgreSQL array literals, see
 * store_array_literal): the first round applies every _include/_revinclude, later rounds only the :iterate ones.
 * Rows: res_type, id, version_id, body. Returns the number of parameters (0: nothing to include); `params` are
 * malloc'd (free each and the array).
 */
int fhir_search_include_sql(const fhir_search_t *search, bool first_round, const char *types, const char *ids, unsigned limit,
                            util_buf_t *sql, char ***params);
/** Sets the key that authenticates paging cursors (the database's shared server secret; set once at start-up). */
void fhir_search_set_cursor_key(const char *key);
/** The `_cursor` value that continues after (forward) or before (backward) a row's sort keys (caller frees). */
char *fhir_search_cursor(const fhir_search_t *search, bool backward, const char *const *keys);

/* ---- URL coding ---- */

/** Percent-decodes `len` bytes into a new string (caller frees); NULL on a malformed escape or embedded NUL. '+' is kept. */
char *fhir_url_decode(const char *s, size_t len);
/**
 * Steps through a raw query string ("a=1&b=%20"): returns 1 with the next pair percent-decoded into *name and *value (the
 * caller frees both), 0 at the end, -1 on malformed encoding. Empty pairs are skipped; a pair without '=' has value "".
 */
int fhir_query_next(const char **cursor, const char *end, char **name, char **value);
/** Appends `s` percent-encoded for a query-string value. */
void fhir_url_encode(util_buf_t *buf, const char *s);

#endif
