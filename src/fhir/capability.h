/* The CapabilityStatement served at /metadata, generated from the tables the server really runs on. */
#ifndef FHIR_CAPABILITY_H
#define FHIR_CAPABILITY_H

#include <stdbool.h>

#include <stddef.h>

/** How clients authenticate, for rest.security (set before fhir_capability_init). */
typedef struct st_fhir_capability_security_t {
    bool smart;                /* SMART on FHIR bearer tokens are required */
    bool cors;                 /* CORS is answered */
    const char *authorize_url; /* the identity provider's endpoints, or NULL */
    const char *token_url;
} fhir_capability_security_t;
extern fhir_capability_security_t fhir_capability_security;

/** Builds the statement once (call before the event loops start). */
void fhir_capability_init(const char *base_url, const char *software_version);
/** The statement as compact JSON; valid until exit. */
const char *fhir_capability_json(size_t *len);
/** Frees it. */
void fhir_capability_dispose(void);

#endif
