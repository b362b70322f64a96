/*
 * Structural validation of resources against tables generated from the official R4 StructureDefinitions
 * (fhir/profiles/), plus the primitive formats and the scheduling invariants.
 */
#ifndef FHIR_VALIDATE_H
#define FHIR_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include "fhir/outcome.h"

/**
 * Validates a whole resource. Every problem is appended to `oo` as an issue with a FHIRPath expression such as
 * "Appointment.participant[0].status". Returns 0 when no error-level issue was added, -1 otherwise.
 * Only resource types known to the generated tables are accepted (others: one "not-supported" issue).
 */
int fhir_validate_resource(const json_t *resource, fhir_outcome_t *oo);

/**
 * Checks the lexical form of a FHIR primitive value given as text (id, date, dateTime, instant, time, code, uri, url,
 * canonical, oid, uuid, string, markdown, base64Binary, positiveInt, unsignedInt, integer, decimal, boolean).
 * Returns false for an unknown type name.
 */
bool fhir_primitive_is_valid(const char *fhir_type, const char *text, size_t len);

/** True when `text` is a valid FHIR id ([A-Za-z0-9\-\.]{1,64}). */
bool fhir_id_is_valid(const char *text, size_t len);

#endif
