/*
 * OperationOutcome building: every client-caused failure is collected here and turned into
 * an HTTP status plus an OperationOutcome by the HTTP layer.
 */
#ifndef FHIR_OUTCOME_H
#define FHIR_OUTCOME_H

#include <stddef.h>
#include <jansson.h>

typedef enum {
    FHIR_SEV_FATAL,
    FHIR_SEV_ERROR,
    FHIR_SEV_WARNING,
    FHIR_SEV_INFORMATION,
} fhir_severity_t;

/** One OperationOutcome.issue. Strings are owned by the outcome. */
typedef struct st_fhir_issue_t {
    fhir_severity_t severity;
    char *code;        /* IssueType code: invalid, structure, required, value, invariant, not-found, conflict, ... */
    char *diagnostics; /* human readable; never contains patient data */
    char *expression;  /* FHIRPath of the offending element, or NULL */
} fhir_issue_t;

/** A growable list of issues plus the HTTP status the caller suggests (0 = let the HTTP layer decide). */
typedef struct st_fhir_outcome_t {
    fhir_issue_t *issues;
    size_t count;
    size_t _capacity;
    int status;
} fhir_outcome_t;

/** Initialises an empty outcome. */
void fhir_outcome_init(fhir_outcome_t *oo);
/** Frees every issue; the outcome may be reused after fhir_outcome_init. */
void fhir_outcome_dispose(fhir_outcome_t *oo);
/** Appends an issue; `expression` may be NULL. printf-style diagnostics. */
void fhir_outcome_add(fhir_outcome_t *oo, fhir_severity_t severity, const char *code, const char *expression, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/** Shorthand: sets the suggested status and appends an error issue. Returns -1 so callers can `return fhir_outcome_fail(...)`. */
int fhir_outcome_fail(fhir_outcome_t *oo, int status, const char *code, const char *expression, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/** Number of issues with severity error or fatal. */
size_t fhir_outcome_error_count(const fhir_outcome_t *oo);
/** Builds the OperationOutcome resource (new reference). An empty outcome yields one information issue "All OK". */
json_t *fhir_outcome_to_json(const fhir_outcome_t *oo);
/** The FHIR code for a severity ("error", ...). */
const char *fhir_severity_code(fhir_severity_t severity);

#endif
