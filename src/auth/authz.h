/*
 * Authorization: a verified token's claims (SMART scopes, patient context, clinic roles and locations, fhirUser) turned
 * into what the request may do per resource type, and into row-level rules (fhir/access.h) the engine enforces.
 * docs/security.md is the contract.
 */
#ifndef AUTH_AUTHZ_H
#define AUTH_AUTHZ_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>
#include "fhir/access.h"
#include "fhir/interaction.h"
#include "fhir/outcome.h"

/* SMART v2 permission letters; v1 read = R|S, write = C|U|D. */
#define AUTH_PERM_C 0x01u
#define AUTH_PERM_R 0x02u
#define AUTH_PERM_U 0x04u
#define AUTH_PERM_D 0x08u
#define AUTH_PERM_S 0x10u
#define AUTH_PERM_READ (AUTH_PERM_R | AUTH_PERM_S)
#define AUTH_PERM_WRITE (AUTH_PERM_C | AUTH_PERM_U | AUTH_PERM_D)

/* Clinic roles (bits). */
#define AUTH_ROLE_RECEPTIONIST 0x01u
#define AUTH_ROLE_DOCTOR 0x02u
#define AUTH_ROLE_CLINIC_ADMIN 0x04u
#define AUTH_ROLE_OPERATIONS_MANAGER 0x08u
#define AUTH_ROLE_SUPPORT 0x10u
#define AUTH_ROLE_SYSTEM_ADMIN 0x20u
#define AUTH_ROLE_COUNT 6

/** Where the clinic claims are (set once at start-up; dotted paths such as "realm_access.roles" descend objects). */
typedef struct st_auth_settings_t {
    const char *role_claim;
    const char *locations_claim;
} auth_settings_t;
extern auth_settings_t auth_settings;

/** Who is asking and what they may do. */
typedef struct st_auth_principal_t {
    char *issuer;
    char *subject;   /* sub */
    char *client_id; /* client_id, else azp, else sub */
    char *fhir_user; /* "Practitioner/1" (the tail of the fhirUser claim), or NULL */
    char *patient;   /* patient context (id), or NULL */
    char *token_id;  /* jti, or NULL */
    int64_t expires; /* exp (Unix seconds), 0 when absent */
    unsigned roles;  /* AUTH_ROLE_* */
    bool has_role_claim;
    char **locations; /* "Location/<id>" the user is limited to */
    size_t nlocations;
    unsigned char scope_perms[FHIR_RESOURCE_TYPE_COUNT]; /* what the scopes grant, whatever the role says */
    unsigned char perms[FHIR_RESOURCE_TYPE_COUNT];       /* what is granted: scopes, limited by roles / the compartment */
    fhir_access_t access;                                /* which rows */
} auth_principal_t;

/** Reads a verified token's claims into `p` (never fails: what cannot be read grants nothing). */
void auth_principal_init(auth_principal_t *p, const json_t *claims);
/** Frees what auth_principal_init allocated. */
void auth_principal_dispose(auth_principal_t *p);
/**
 * Whether `p` holds every permission in `perms` on `type`: 0, or -1 with a 403 "forbidden" issue in `oo`;
 * *scope_short is set when the scopes (rather than the role) fall short (WWW-Authenticate insufficient_scope).
 */
int auth_check(const auth_principal_t *p, const char *type, unsigned perms, fhir_outcome_t *oo, bool *scope_short);
/** auth_check for a routed interaction (system search needs search on some type, system history on every type). */
int auth_check_interaction(const auth_principal_t *p, const fhir_ix_request_t *req, fhir_outcome_t *oo, bool *scope_short);
/** Whether `p` may book with override-rules (clinic and system admins). */
bool auth_may_override_rules(const auth_principal_t *p);
/** The role's name as in tokens ("clinic-admin"), for one AUTH_ROLE_* bit. */
const char *auth_role_name(unsigned role);
/** Parses one scope ("user/Appointment.rs", "patient/Slot.read"): context 0 patient, 1 user, 2 system; -1 when not a resource scope. */
int auth_scope_parse(const char *scope, size_t len, int *context, int *type_index, unsigned *perms);

#endif
