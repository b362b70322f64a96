/*
 * batch and transaction Bundles posted to the base URL. A transaction runs all its entries on one connection inside
 * BEGIN/COMMIT, in the spec's order (DELETE, POST, PUT/PATCH, GET), after resolving conditional entries and rewriting
 * references to other entries' fullUrls (urn:uuid:...). Its connection is pipelined: runs of entries whose statements do
 * not depend on one another (fhir_ix_pipelinable) are sent without waiting for each answer. A batch runs each entry on
 * its own.
 */
#ifndef FHIR_BUNDLE_H
#define FHIR_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "fhir/interaction.h"
#include "fhir/outcome.h"
#include "store/store.h"

typedef enum { FHIR_PREFER_REPRESENTATION, FHIR_PREFER_MINIMAL, FHIR_PREFER_OUTCOME } fhir_prefer_t;

typedef struct st_fhir_bundle_run_t fhir_bundle_run_t;
typedef void (*fhir_bundle_cb)(fhir_bundle_run_t *run);

struct st_fhir_bundle_run_t {
    bool transaction;
    fhir_prefer_t prefer;
    size_t count;
    fhir_ix_t **entries;   /* in Bundle order; NULL where the entry could not be parsed (batch only) */
    fhir_outcome_t *entry_errors; /* per entry: why it could not be parsed */
    char **full_urls;      /* entry.fullUrl or NULL */
    size_t *order;         /* processing order (indexes into entries) */
    /* result */
    int status;            /* HTTP status of the whole */
    fhir_outcome_t oo;     /* why a transaction failed */
    char *body;            /* response Bundle or NULL on failure */
    size_t body_len;
    void *data;            /* caller's */
    /* private */
    store_pool_t *_pool;
    store_session_t _session;
    store_query_t _query;
    fhir_bundle_cb _cb;
    size_t _pos;          /* next position in `order` to start */
    int _phase;
    size_t _running;      /* entries started and not finished */
    fhir_ix_t *_waiting_for; /* an entry the next one must wait for, or NULL */
    bool _pipelined;      /* the session sends entries' statements without waiting (store_session_pipeline) */
    bool _in_dispatch;
    fhir_ix_t *_failed;   /* the entry whose failure fails the transaction, or NULL */
    size_t _failed_pos;
};

/** Processing rank of a method: DELETE 0, POST 1, PUT/PATCH 2, GET/HEAD 3, anything else 4. */
int fhir_bundle_method_rank(const char *method);
/** Fills `order` with 0..n-1 stably sorted by the rank of each entry's method. */
void fhir_bundle_sort(const char *const *methods, size_t n, size_t *order);
/** One entry's fullUrl and the "Type/id" that references to it become. */
typedef struct st_fhir_bundle_ref_t {
    const char *from;
    const char *to;
} fhir_bundle_ref_t;

/** Sorts a mapping for fhir_bundle_rewrite_references. */
void fhir_bundle_sort_refs(fhir_bundle_ref_t *refs, size_t n);
/**
 * Rewrites every string under a "reference" key in `value` that equals some refs[i].from to refs[i].to; `refs` must be sorted
 * with fhir_bundle_sort_refs. Returns how many were rewritten.
 */
size_t fhir_bundle_rewrite_references(json_t *value, const fhir_bundle_ref_t *refs, size_t n);

/** Parses a posted Bundle into a run (the run steals nothing from `bundle`). 400/422 in `oo` when the Bundle itself is bad. */
fhir_bundle_run_t *fhir_bundle_prepare(const json_t *bundle, fhir_prefer_t prefer, fhir_outcome_t *oo);
/** Executes the run; `cb` fires once with status/body (or oo) set. */
void fhir_bundle_execute(fhir_bundle_run_t *run, store_pool_t *pool, fhir_bundle_cb cb);
/** Frees the run and its entries. */
void fhir_bundle_destroy(fhir_bundle_run_t *run);

#endif
