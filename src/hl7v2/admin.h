/* Operators' view of the HL7 bridge (admin.c): $hl7-messages, $hl7-outbox, $hl7-outbox-retry/-discard, /metrics. */
#ifndef HL7V2_ADMIN_H
#define HL7V2_ADMIN_H

#include <stdbool.h>
#include <jansson.h>
#include "fhir/outcome.h"
#include "hl7v2/hl7.h"

typedef enum { HL7_ADMIN_MESSAGES, HL7_ADMIN_OUTBOX, HL7_ADMIN_RETRY, HL7_ADMIN_DISCARD, HL7_ADMIN_METRICS } hl7_admin_kind_t;
typedef struct st_hl7_admin_t hl7_admin_t;
typedef void (*hl7_admin_cb)(hl7_admin_t *a, void *data);

/** The operation a path below the FHIR base names ("$hl7-messages", ...), or -1. */
int hl7_admin_kind(const char *path, size_t len);
/** Whether it changes the outbox (POST only). */
bool hl7_admin_writes(hl7_admin_kind_t kind);
/**
 * Runs an operation with the inputs of `query` (raw query string, may be NULL) and `parameters` (a POSTed Parameters
 * resource, or NULL). `cb` fires once (possibly before this returns, on bad input); destroy `a` there or later.
 */
void hl7_admin_run(hl7_admin_kind_t kind, const char *query, const json_t *parameters, store_pool_t *pool, hl7_admin_cb cb, void *data);
/** HTTP status of the result. */
int hl7_admin_status(const hl7_admin_t *a);
/** The body of a success: a Parameters or OperationOutcome (JSON), or Prometheus text for HL7_ADMIN_METRICS. */
const char *hl7_admin_body(const hl7_admin_t *a, size_t *len);
/** The outcome of a failure. */
const fhir_outcome_t *hl7_admin_outcome(const hl7_admin_t *a);
void hl7_admin_destroy(hl7_admin_t *a);

#endif
