/* The CapabilityStatement served at /metadata, generated from the tables the server really runs on. */
#ifndef FHIR_CAPABILITY_H
#define FHIR_CAPABILITY_H

#include <stddef.h>

/** Builds the statement once (call before the event loops start). */
void fhir_capability_init(const char *base_url, const char *software_version);
/** The statement as compact JSON; valid until exit. */
const char *fhir_capability_json(size_t *len);
/** Frees it. */
void fhir_capability_dispose(void);

#endif
