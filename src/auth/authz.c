#include <stdlib.h>
#include <string.h>
#include "auth/authz.h"
#include "fhir/validate.h"
#include "store/store.h"
#include "util/str.h"

auth_settings_t auth_settings = {"fhirsched_role", "fhirsched_locations"};

static const char *const role_names[AUTH_ROLE_COUNT] = {"receptionist", "doctor", "clinic-admin", "operations-manager", "support",
                                                        "system-admin"};

const char *auth_role_name(unsigned role)
{
    for (int i = 0; i != AUTH_ROLE_COUNT; ++i)
        if (role == 1u << i)
            return role_names[i];
    return "unknown";
}

/* ---- the role table (docs/security.md) ---- */

typedef enum { ROWS_ALL, ROWS_SITE, ROWS_SITE_OR_NONE, ROWS_OWNER } rows_t;

typedef struct {
    unsigned perms;
    rows_t read_rows, write_rows;
} role_grant_t;

typedef enum { GROUP_DIRECTORY, GROUP_SLOT, GROUP_PATIENT, GROUP_APPOINTMENTS, GROUP_AUDIT, GROUP_SUBSCRIPTION, GROUP_COUNT } group_t;

static group_t group_of(const char *type)
{
    if (strcmp(type, "Slot") == 0)
        return GROUP_SLOT;
    if (strcmp(type, "Patient") == 0)
        return GROUP_PATIENT;
    if (strcmp(type, "Appointment") == 0 || strcmp(type, "AppointmentResponse") == 0)
        return GROUP_APPOINTMENTS;
    if (strcmp(type, "AuditEvent") == 0)
        return GROUP_AUDIT;
    if (strcmp(type, "Subscription") == 0)
        return GROUP_SUBSCRIPTION;
    return GROUP_DIRECTORY;
}

#define RS AUTH_PERM_READ
#define CRUDS (AUTH_PERM_READ | AUTH_PERM_WRITE)
static const role_grant_t role_table[AUTH_ROLE_COUNT][GROUP_COUNT] = {
    /* receptionist */
    {[GROUP_DIRECTORY] = {RS, ROWS_ALL, ROWS_ALL},
     [GROUP_SLOT] = {RS, ROWS_ALL, ROWS_ALL},
     [GROUP_PATIENT] = {RS | AUTH_PERM_C | AUTH_PERM_U, ROWS_ALL, ROWS_ALL},
     [GROUP_APPOINTMENTS] = {RS | AUTH_PERM_C | AUTH_PERM_U, ROWS_SITE, ROWS_SITE}},
    /* doctor */
    {[GROUP_DIRECTORY] = {RS, ROWS_ALL, ROWS_ALL},
     [GROUP_SLOT] = {CRUDS, ROWS_ALL, ROWS_OWNER},
     [GROUP_PATIENT] = {RS, ROWS_ALL, ROWS_ALL},
     [GROUP_APPOINTMENTS] = {RS | AUTH_PERM_C | AUTH_PERM_U, ROWS_SITE, ROWS_OWNER}},
    /* clinic-admin */
    {[GROUP_DIRECTORY] = {CRUDS, ROWS_ALL, ROWS_SITE_OR_NONE},
     [GROUP_SLOT] = {CRUDS, ROWS_ALL, ROWS_SITE_OR_NONE},
     [GROUP_PATIENT] = {RS | AUTH_PERM_C | AUTH_PERM_U, ROWS_ALL, ROWS_ALL},
     [GROUP_APPOINTMENTS] = {CRUDS, ROWS_SITE, ROWS_SITE},
     [GROUP_AUDIT] = {RS, ROWS_ALL, ROWS_ALL},
     [GROUP_SUBSCRIPTION] = {CRUDS, ROWS_ALL, ROWS_ALL}},
    /* operations-manager */
    {[GROUP_DIRECTORY] = {RS, ROWS_ALL, ROWS_ALL},
     [GROUP_SLOT] = {RS, ROWS_ALL, ROWS_ALL},
     [GROUP_PATIENT] = {RS, ROWS_ALL, ROWS_ALL},
     [GROUP_APPOINTMENTS] = {RS, ROWS_SITE, ROWS_SITE},
     [GROUP_AUDIT] = {RS, ROWS_ALL, ROWS_ALL}},
    /* support */
    {[GROUP_DIRECTORY] = {RS, ROWS_ALL, ROWS_ALL}, [GROUP_SLOT] = {RS, ROWS_ALL, ROWS_ALL}, [GROUP_SUBSCRIPTION] = {RS, ROWS_ALL, ROWS_ALL}},
    /* system-admin */
    {[GROUP_DIRECTORY] = {CRUDS, ROWS_ALL, ROWS_ALL},
     [GROUP_SLOT] = {CRUDS, ROWS_ALL, ROWS_ALL},
     [GROUP_PATIENT] = {CRUDS, ROWS_ALL, ROWS_ALL},
     [GROUP_APPOINTMENTS] = {CRUDS, ROWS_ALL, ROWS_ALL},
     [GROUP_AUDIT] = {RS | AUTH_PERM_C, ROWS_ALL, ROWS_ALL},
     [GROUP_SUBSCRIPTION] = {CRUDS, ROWS_ALL, ROWS_ALL}},
};

/* ---- scopes ---- */

int auth_scope_parse(const char *scope, size_t len, int *context, int *type_index, unsigned *perms)
{
    static const char *const contexts[] = {"patient/", "user/", "system/"};
    *context = -1;
    for (int i = 0; i != 3; ++i)
        if (len > strlen(contexts[i]) && memcmp(scope, contexts[i], strlen(contexts[i])) == 0)
            *context = i;
    if (*context < 0)
        return -1;
    const char *p = scope + strlen(contexts[*context]), *end = scope + len;
    /* a v2 restriction (".rs?status=booked") would narrow the grant; not honoured, so it grants nothing rather than more */
    if (memchr(p, '?', (size_t)(end - p)) != NULL)
        return -1;
    const char *dot = memchr(p, '.', (size_t)(end - p));
    if (dot == NULL || dot == p || dot + 1 == end)
        return -1;
    if (dot - p == 1 && *p == '*') {
        *type_index = -1;
    } else if ((*type_index = fhir_resource_type_index(p, (size_t)(dot - p))) < 0) {
        return -1;
    }
    const char *perm = dot + 1;
    size_t plen = (size_t)(end - perm);
    if (util_str_eq(perm, plen, "read")) {
        *perms = AUTH_PERM_READ;
    } else if (util_str_eq(perm, plen, "write")) {
        *perms = AUTH_PERM_WRITE;
    } else if (util_str_eq(perm, plen, "*")) {
        *perms = AUTH_PERM_READ | AUTH_PERM_WRITE;
    } else {
        /* v2: letters of "cruds", each at most once, in that order */
        static const char order[] = "cruds";
        static const unsigned bits[] = {AUTH_PERM_C, AUTH_PERM_R, AUTH_PERM_U, AUTH_PERM_D, AUTH_PERM_S};
        size_t at = 0;
        *perms = 0;
        for (size_t i = 0; i != plen; ++i) {
            const char *hit = memchr(order + at, perm[i], sizeof(order) - 1 - at);
            if (hit == NULL)
                return -1;
            at = (size_t)(hit - order) + 1;
            *perms |= bits[hit - order];
        }
    }
    return 0;
}

/* ---- claims ---- */

/* A claim by dotted path ("realm_access.roles"). */
static const json_t *claim_at(const json_t *claims, const char *path)
{
    const json_t *node = claims;
    const char *p = path;
    while (node != NULL && *p != '\0') {
        size_t n = strcspn(p, ".");
        char *key = util_xstrndup(p, n);
        node = json_is_object(node) ? json_object_get(node, key) : NULL;
        free(key);
        p += n + (p[n] == '.');
    }
    return node;
}

static char *claim_string(const json_t *claims, const char *name)
{
    const char *v = json_string_value(json_object_get(claims, name));
    return v != NULL && v[0] != '\0' ? util_xstrdup(v) : NULL;
}

/* "https://x/fhir/Practitioner/1" or "Practitioner/1" -> "Practitioner/1" */
static char *reference_tail(const char *ref)
{
    if (ref == NULL)
        return NULL;
    const char *end = ref + strlen(ref), *slash = end;
    int seen = 0;
    while (slash > ref && seen < 2)
        if (*--slash == '/')
            ++seen;
    const char *start = seen == 2 ? slash + 1 : ref;
    const char *mid = strchr(start, '/');
    if (mid == NULL || mid == start || mid[1] == '\0' || fhir_resource_type_index(start, (size_t)(mid - start)) < 0)
        return NULL;
    return util_xstrdup(start);
}

static void each_string(const json_t *v, void (*fn)(auth_principal_t *, const char *), auth_principal_t *p)
{
    if (json_is_string(v)) {
        fn(p, json_string_value(v));
    } else if (json_is_array(v)) {
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e) {
            if (json_is_string(e))
                fn(p, json_string_value(e));
        }
    }
}

static void add_role(auth_principal_t *p, const char *name)
{
    for (int i = 0; i != AUTH_ROLE_COUNT; ++i)
        if (strcmp(name, role_names[i]) == 0)
            p->roles |= 1u << i;
}

static void add_location(auth_principal_t *p, const char *ref)
{
    char *tail = reference_tail(ref);
    if (tail == NULL || strncmp(tail, "Location/", 9) != 0) {
        /* an unreadable entry still limits the user (to nothing more) rather than lifting the limit */
        free(tail);
        tail = util_xstrdup("Location/-");
    }
    p->locations = util_xrealloc(p->locations, (p->nlocations + 1) * sizeof(*p->locations));
    p->locations[p->nlocations++] = tail;
}

/* scope_grants[context][type] */
static void read_scopes(const json_t *claims, unsigned char grants[3][FHIR_RESOURCE_TYPE_COUNT])
{
    util_buf_t all;
    util_buf_init(&all);
    const json_t *scope = json_object_get(claims, "scope"), *scp = json_object_get(claims, "scp");
    if (json_is_string(scope))
        util_buf_printf(&all, "%s ", json_string_value(scope));
    if (json_is_string(scp))
        util_buf_printf(&all, "%s ", json_string_value(scp));
    size_t i;
    const json_t *e;
    json_array_foreach(scp, i, e) {
        if (json_is_string(e))
            util_buf_printf(&all, "%s ", json_string_value(e));
    }
    const char *p = all.base != NULL ? all.base : "", *end = p + all.len;
    while (p < end) {
        size_t n = strcspn(p, " ");
        int context, type;
        unsigned perms;
        if (n != 0 && auth_scope_parse(p, n, &context, &type, &perms) == 0) {
            for (int t = 0; t != FHIR_RESOURCE_TYPE_COUNT; ++t)
                if (type < 0 || type == t)
                    grants[context][t] |= (unsigned char)perms;
        }
        p += n + 1;
    }
    util_buf_dispose(&all);
}

/* ---- rules ---- */

typedef struct {
    fhir_access_level_t level;
    store_array_t ids, tokens;
} rule_builder_t;

static void rule_merge_all(rule_builder_t *r)
{
    r->level = FHIR_ACCESS_ALL;
}

static void rule_merge_some(rule_builder_t *r, const char *id, const char *token)
{
    if (r->level == FHIR_ACCESS_ALL)
        return;
    r->level = FHIR_ACCESS_SOME;
    if (id != NULL)
        store_array_add(&r->ids, id);
    if (token != NULL)
        store_array_add(&r->tokens, token);
}

/* The rows a role's grant covers: every one, or those of the user's clinics, or the user's own. */
static void rule_merge_rows(rule_builder_t *r, const auth_principal_t *p, rows_t rows)
{
    if (rows == ROWS_ALL || ((rows == ROWS_SITE || rows == ROWS_SITE_OR_NONE) && p->nlocations == 0)) {
        rule_merge_all(r);
        return;
    }
    if (rows == ROWS_OWNER) {
        char *token = p->fhir_user != NULL && strncmp(p->fhir_user, "Practitioner/", 13) == 0 ? util_asprintf("_owner=%s", p->fhir_user)
                                                                                                : NULL;
        rule_merge_some(r, NULL, token);
        free(token);
        return;
    }
    for (size_t i = 0; i != p->nlocations; ++i) {
        char *token = util_asprintf("_site=%s", p->locations[i]);
        rule_merge_some(r, NULL, token);
        free(token);
    }
    if (rows == ROWS_SITE_OR_NONE)
        rule_merge_some(r, NULL, "_site=none");
}

/* The patient compartment (and the public directory) of a patient-context token. */
static unsigned patient_allowed(const char *type)
{
    switch (group_of(type)) {
    case GROUP_PATIENT:
        return AUTH_PERM_READ | AUTH_PERM_U;
    case GROUP_APPOINTMENTS:
        return AUTH_PERM_READ | AUTH_PERM_C | AUTH_PERM_U;
    case GROUP_DIRECTORY:
    case GROUP_SLOT:
        return AUTH_PERM_READ;
    default:
        return 0;
    }
}

static void rule_merge_compartment(rule_builder_t *r, const auth_principal_t *p, const char *type)
{
    char *ref = util_asprintf("patient=Patient/%s", p->patient);
    switch (group_of(type)) {
    case GROUP_PATIENT:
        rule_merge_some(r, p->patient, NULL);
        break;
    case GROUP_APPOINTMENTS:
        rule_merge_some(r, NULL, ref);
        break;
    case GROUP_SLOT:
        rule_merge_some(r, NULL, "status=free");
        break;
    default:
        rule_merge_all(r);
    }
    free(ref);
}

static void rule_finish(rule_builder_t *r, fhir_access_rule_t *out)
{
    out->level = r->level;
    out->ids = r->level == FHIR_ACCESS_SOME ? store_array_literal(&r->ids) : NULL;
    out->tokens = r->level == FHIR_ACCESS_SOME ? store_array_literal(&r->tokens) : NULL;
    store_array_dispose(&r->ids);
    store_array_dispose(&r->tokens);
}

void auth_principal_init(auth_principal_t *p, const json_t *claims)
{
    memset(p, 0, sizeof(*p));
    p->issuer = claim_string(claims, "iss");
    p->subject = claim_string(claims, "sub");
    p->client_id = claim_string(claims, "client_id");
    if (p->client_id == NULL)
        p->client_id = claim_string(claims, "azp");
    if (p->client_id == NULL && p->subject != NULL)
        p->client_id = util_xstrdup(p->subject);
    p->token_id = claim_string(claims, "jti");
    json_t *exp = json_object_get(claims, "exp");
    p->expires = json_is_integer(exp) ? (int64_t)json_integer_value(exp) : json_is_real(exp) ? (int64_t)json_real_value(exp) : 0;
    p->fhir_user = reference_tail(json_string_value(json_object_get(claims, "fhirUser")));
    p->patient = claim_string(claims, "patient");
    if (p->patient != NULL && !fhir_id_is_valid(p->patient, strlen(p->patient))) {
        free(p->patient);
        p->patient = util_xstrdup("-"); /* a context that matches nothing */
    }
    const json_t *roles = claim_at(claims, auth_settings.role_claim);
    p->has_role_claim = roles != NULL && !json_is_null(roles);
    each_string(roles, add_role, p);
    each_string(claim_at(claims, auth_settings.locations_claim), add_location, p);

    unsigned char grants[3][FHIR_RESOURCE_TYPE_COUNT] = {{0}};
    read_scopes(claims, grants);
    for (int t = 0; t != FHIR_RESOURCE_TYPE_COUNT; ++t) {
        const char *type = fhir_resource_types[t];
        group_t group = group_of(type);
        unsigned staff = grants[1][t] | grants[2][t], role_perms = 0;
        rule_builder_t read = {FHIR_ACCESS_NONE}, write = {FHIR_ACCESS_NONE};
        store_array_init(&read.ids), store_array_init(&read.tokens), store_array_init(&write.ids), store_array_init(&write.tokens);
        if (p->has_role_claim) {
            for (int r = 0; r != AUTH_ROLE_COUNT; ++r) {
                if (!(p->roles & (1u << r)))
                    continue;
                const role_grant_t *g = &role_table[r][group];
                unsigned granted = staff & g->perms;
                role_perms |= granted;
                if (granted & AUTH_PERM_READ)
                    rule_merge_rows(&read, p, g->read_rows);
                if (granted & AUTH_PERM_WRITE)
                    rule_merge_rows(&write, p, g->write_rows);
            }
        } else {
            role_perms = staff;
            if (staff & AUTH_PERM_READ)
                rule_merge_all(&read);
            if (staff & AUTH_PERM_WRITE)
                rule_merge_all(&write);
        }
        unsigned patient_perms = p->patient != NULL ? grants[0][t] & patient_allowed(type) : 0;
        if (patient_perms & AUTH_PERM_READ)
            rule_merge_compartment(&read, p, type);
        if (patient_perms & AUTH_PERM_WRITE)
            rule_merge_compartment(&write, p, type);
        p->scope_perms[t] = (unsigned char)(staff | (p->patient != NULL ? grants[0][t] : 0));
        p->perms[t] = (unsigned char)(role_perms | patient_perms);
        rule_finish(&read, &p->access.read[t]);
        rule_finish(&write, &p->access.write[t]);
    }
}

void auth_principal_dispose(auth_principal_t *p)
{
    free(p->issuer);
    free(p->subject);
    free(p->client_id);
    free(p->fhir_user);
    free(p->patient);
    free(p->token_id);
    for (size_t i = 0; i != p->nlocations; ++i)
        free(p->locations[i]);
    free(p->locations);
    for (int t = 0; t != FHIR_RESOURCE_TYPE_COUNT; ++t) {
        free(p->access.read[t].ids);
        free(p->access.read[t].tokens);
        free(p->access.write[t].ids);
        free(p->access.write[t].tokens);
    }
    memset(p, 0, sizeof(*p));
}

/* ---- decisions ---- */

static const char *perm_words(unsigned perms)
{
    if (perms & AUTH_PERM_D)
        return "delete";
    if ((perms & (AUTH_PERM_C | AUTH_PERM_U)) == (AUTH_PERM_C | AUTH_PERM_U))
        return "create and update";
    if (perms & AUTH_PERM_C)
        return "create";
    if (perms & AUTH_PERM_U)
        return "update";
    if (perms & AUTH_PERM_S)
        return "search";
    return "read";
}

int auth_check(const auth_principal_t *p, const char *type, unsigned perms, fhir_outcome_t *oo, bool *scope_short)
{
    int t = type != NULL ? fhir_resource_type_index(type, strlen(type)) : -1;
    if (t < 0 || (p->perms[t] & perms) == perms)
        return 0;
    *scope_short = (p->scope_perms[t] & perms) != perms;
    if (*scope_short)
        return fhir_outcome_fail(oo, 403, "forbidden", NULL, "the token's scopes do not allow to %s %s resources", perm_words(perms), type);
    if (p->patient != NULL && !p->has_role_claim)
        return fhir_outcome_fail(oo, 403, "forbidden", NULL, "a patient may not %s %s resources", perm_words(perms), type);
    return fhir_outcome_fail(oo, 403, "forbidden", NULL, "the user's clinic role does not allow to %s %s resources", perm_words(perms),
                             type);
}

int auth_check_interaction(const auth_principal_t *p, const fhir_ix_request_t *req, fhir_outcome_t *oo, bool *scope_short)
{
    switch (req->kind) {
    case FHIR_IX_READ:
    case FHIR_IX_VREAD:
        return auth_check(p, req->type, AUTH_PERM_R, oo, scope_short);
    case FHIR_IX_HISTORY:
        if (req->type == NULL) {
            for (int t = 0; t != FHIR_RESOURCE_TYPE_COUNT; ++t)
                if (auth_check(p, fhir_resource_types[t], AUTH_PERM_S, oo, scope_short) != 0)
                    return -1;
            return 0;
        }
        return auth_check(p, req->type, req->id != NULL ? AUTH_PERM_R : AUTH_PERM_S, oo, scope_short);
    case FHIR_IX_SEARCH:
        if (req->type == NULL) {
            /* the types the token cannot search are left out row by row */
            for (int t = 0; t != FHIR_RESOURCE_TYPE_COUNT; ++t)
                if (p->perms[t] & AUTH_PERM_S)
                    return 0;
            *scope_short = true;
            return fhir_outcome_fail(oo, 403, "forbidden", NULL, "the token may not search any resource type");
        }
        return auth_check(p, req->type, AUTH_PERM_S, oo, scope_short);
    case FHIR_IX_CREATE:
        return auth_check(p, req->type, AUTH_PERM_C, oo, scope_short);
    case FHIR_IX_UPDATE:
    case FHIR_IX_PATCH:
    case FHIR_IX_CONDITIONAL_UPDATE:
        return auth_check(p, req->type, AUTH_PERM_U, oo, scope_short);
    case FHIR_IX_DELETE:
    case FHIR_IX_CONDITIONAL_DELETE:
        return auth_check(p, req->type, AUTH_PERM_D, oo, scope_short);
    case FHIR_IX_EXISTING:
    case FHIR_IX_NOTHING:
        return 0;
    }
    return 0;
}

bool auth_may_override_rules(const auth_principal_t *p)
{
    if (!p->has_role_claim)
        return p->patient == NULL; /* an integration client limited by its scopes only */
    return (p->roles & (AUTH_ROLE_CLINIC_ADMIN | AUTH_ROLE_SYSTEM_ADMIN)) != 0;
}
