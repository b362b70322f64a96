#include <stdlib.h>
#include <string.h>
#include "fhir/capability.h"
#include "fhir/conformance_res.h"
#include "fhir/json.h"
#include "fhir/search.h"
#include "fhir/types.h"
#include "util/str.h"
#include "util/time.h"

static char *capability_text;
static size_t capability_len;

static const char *const type_interactions[] = {"read", "vread", "update", "patch", "delete", "history-instance", "history-type",
                                                "create", "search-type"};

/* CapabilityStatement.rest.resource.operation of `type`: the embedded OperationDefinitions whose resource lists it. */
static json_t *operations_of(const char *type)
{
    json_t *ops = json_array();
    const fhir_conformance_file_t *f;
    for (size_t i = 0; (f = fhir_conformance_at(i)) != NULL; ++i) {
        if (strcmp(f->type, "OperationDefinition") != 0)
            continue;
        json_t *od = json_loadb(f->json, f->len, 0, NULL), *res;
        const char *code = json_string_value(json_object_get(od, "code"));
        const char *url = json_string_value(json_object_get(od, "url"));
        size_t k;
        json_array_foreach (json_object_get(od, "resource"), k, res) {
            if (code != NULL && url != NULL && json_is_string(res) && strcmp(json_string_value(res), type) == 0) {
                json_array_append_new(ops, json_pack("{s:s, s:s}", "name", code, "definition", url));
                break;
            }
        }
        json_decref(od);
    }
    return ops;
}

static json_t *resource_entry(const char *type)
{
    json_t *interactions = json_array();
    bool append_only = strcmp(type, "AuditEvent") == 0; /* the audit trail is never changed */
    for (size_t i = 0; i != sizeof(type_interactions) / sizeof(type_interactions[0]); ++i)
        if (!append_only || (strcmp(type_interactions[i], "update") != 0 && strcmp(type_interactions[i], "patch") != 0 &&
                             strcmp(type_interactions[i], "delete") != 0))
            json_array_append_new(interactions, json_pack("{s:s}", "code", type_interactions[i]));
    json_t *params = json_array(), *includes = json_array(), *revincludes = json_array();
    const fhir_search_param_t *p;
    for (size_t i = 0; (p = fhir_search_param_at(type, i)) != NULL; ++i) {
        json_array_append_new(params, json_pack("{s:s, s:s, s:s}", "name", p->code, "definition", p->definition, "type",
                                                fhir_search_type_name(p->search_type)));
        if (p->search_type == FHIR_SEARCH_REFERENCE)
            json_array_append_new(includes, json_sprintf("%s:%s", type, p->code));
    }
    json_array_append_new(includes, json_sprintf("%s:*", type));
    /* _revinclude: every reference parameter of any type that can point at this one */
    for (size_t i = 0; (p = fhir_search_registry_at(i)) != NULL; ++i)
        if (p->type != NULL && p->search_type == FHIR_SEARCH_REFERENCE && fhir_search_param_targets(p, type) &&
            strcmp(p->targets, "*") != 0)
            json_array_append_new(revincludes, json_sprintf("%s:%s", p->type, p->code));
    char *profile = util_asprintf("http://hl7.org/fhir/StructureDefinition/%s", type);
    json_t *entry = json_pack("{s:s, s:s, s:o, s:s, s:b, s:b, s:b, s:b, s:s, s:s, s:o, s:o, s:o}", "type", type, "profile",
                              profile, "interaction", interactions, "versioning", "versioned-update", "readHistory", 1,
                              "updateCreate", !append_only, "conditionalCreate", 1, "conditionalUpdate", !append_only,
                              "conditionalRead", "not-supported", "conditionalDelete", append_only ? "not-supported" : "single",
                              "searchInclude", includes, "searchRevInclude",
                              revincludes, "searchParam", params);
    free(profile);
    json_t *ops = operations_of(type);
    if (json_array_size(ops) != 0)
        json_object_set_new(entry, "operation", ops);
    else
        json_decref(ops);
    return entry;
}

fhir_capability_security_t fhir_capability_security;

/* rest.security: SMART on FHIR, with the IdP's endpoints (the oauth-uris extension) when they are known. */
static json_t *security_of(const fhir_capability_security_t *sec)
{
    json_t *security = json_pack("{s:b,s:[{s:[{s:s,s:s,s:s}],s:s}],s:s}", "cors", sec->cors, "service", "coding", "system",
                                 "http://terminology.hl7.org/CodeSystem/restful-security-service", "code", "SMART-on-FHIR", "display",
                                 "SMART-on-FHIR", "text", "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
                                 "description",
                                 "Bearer tokens (JWT) from the clinic's identity provider; SMART v1/v2 scopes, patient context and "
                                 "clinic roles decide access. See /.well-known/smart-configuration.");
    json_t *uris = json_array();
    if (sec->authorize_url != NULL)
        json_array_append_new(uris, json_pack("{s:s,s:s}", "url", "authorize", "valueUri", sec->authorize_url));
    if (sec->token_url != NULL)
        json_array_append_new(uris, json_pack("{s:s,s:s}", "url", "token", "valueUri", sec->token_url));
    if (json_array_size(uris) != 0)
        json_object_set_new(security, "extension",
                            json_pack("[{s:s,s:o}]", "url", "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                                      "extension", uris));
    else
        json_decref(uris);
    return security;
}

void fhir_capability_init(const char *base_url, const char *software_version)
{
    char now[40];
    util_time_format_now(now, sizeof(now));
    json_t *resources = json_array();
    for (int i = 0; i != FHIR_RESOURCE_TYPE_COUNT; ++i)
        json_array_append_new(resources, resource_entry(fhir_resource_types[i]));
    json_t *system = json_pack("[{s:s},{s:s},{s:s},{s:s}]", "code", "transaction", "code", "batch", "code", "history-system", "code",
                               "search-system");
    json_t *cs = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s}, s:s, s:[s,s], s:[s], s:[{s:s, s:o, s:o}]}",
        "resourceType", "CapabilityStatement", "id", "fhirsched", "status", "active", "date", now, "publisher", "fhirsched",
        "kind", "instance", "description", "fhirsched: a FHIR R4 scheduling server", "software", "name", "fhirsched", "version",
        software_version, "implementation", "description", "fhirsched", "url", base_url, "fhirVersion", "4.0.1", "format",
        "application/fhir+json", "json", "patchFormat", "application/json-patch+json", "rest", "mode", "server", "resource",
        resources, "interaction", system);
    json_t *rest = json_array_get(json_object_get(cs, "rest"), 0);
    if (fhir_capability_security.smart)
        json_object_set_new(rest, "security", security_of(&fhir_capability_security));
    /* where the websocket channel of Subscriptions is (ws:// or wss:// beside the base) */
    bool tls = strncmp(base_url, "https:", 6) == 0;
    char *ws = util_asprintf("%s%s/websocket", tls ? "wss" : "ws", base_url + (tls ? 5 : 4));
    json_object_set_new(rest, "extension",
                        json_pack("[{s:s,s:s}]", "url", "http://hl7.org/fhir/StructureDefinition/capabilitystatement-websocket",
                                  "valueUri", ws));
    free(ws);
    capability_text = fhir_json_dump(cs, false, &capability_len);
    json_decref(cs);
}

const char *fhir_capability_json(size_t *len)
{
    *len = capability_len;
    return capability_text;
}

void fhir_capability_dispose(void)
{
    free(capability_text);
    capability_text = NULL;
}
