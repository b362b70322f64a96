/* Authorization decisions: SMART scopes, patient context, clinic roles and the row rules they produce. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "auth/audit.h"
#include "auth/authz.h"

static int type_index(const char *type)
{
    return fhir_resource_type_index(type, strlen(type));
}

static unsigned perms_of(const auth_principal_t *p, const char *type)
{
    return p->perms[type_index(type)];
}

static const fhir_access_rule_t *read_rule(const auth_principal_t *p, const char *type)
{
    return fhir_access_rule(&p->access, type, false);
}

static const fhir_access_rule_t *write_rule(const auth_principal_t *p, const char *type)
{
    return fhir_access_rule(&p->access, type, true);
}

static void principal(auth_principal_t *p, const char *claims_json)
{
    json_t *claims = json_loads(claims_json, 0, NULL);
    assert_non_null(claims);
    auth_principal_init(p, claims);
    json_decref(claims);
}

static void test_scope_parsing(void **state)
{
    int context, type;
    unsigned perms;
    assert_int_equal(auth_scope_parse("patient/*.read", 14, &context, &type, &perms), 0);
    assert_int_equal(context, 0);
    assert_int_equal(type, -1);
    assert_int_equal(perms, AUTH_PERM_R | AUTH_PERM_S);
    assert_int_equal(auth_scope_parse("user/Appointment.write", 22, &context, &type, &perms), 0);
    assert_int_equal(context, 1);
    assert_int_equal(type, type_index("Appointment"));
    assert_int_equal(perms, AUTH_PERM_C | AUTH_PERM_U | AUTH_PERM_D);
    assert_int_equal(auth_scope_parse("system/Slot.cruds", 17, &context, &type, &perms), 0);
    assert_int_equal(context, 2);
    assert_int_equal(perms, AUTH_PERM_READ | AUTH_PERM_WRITE);
    assert_int_equal(auth_scope_parse("system/*.*", 10, &context, &type, &perms), 0);
    assert_int_equal(perms, AUTH_PERM_READ | AUTH_PERM_WRITE);
    assert_int_equal(auth_scope_parse("user/Patient.rs", 15, &context, &type, &perms), 0);
    assert_int_equal(perms, AUTH_PERM_R | AUTH_PERM_S);
    /* out of order, repeated, unknown letters, restrictions, unknown types, other scopes: nothing */
    assert_int_equal(auth_scope_parse("user/Patient.sr", 15, &context, &type, &perms), -1);
    assert_int_equal(auth_scope_parse("user/Patient.rr", 15, &context, &type, &perms), -1);
    assert_int_equal(auth_scope_parse("user/Patient.rx", 15, &context, &type, &perms), -1);
    assert_int_equal(auth_scope_parse("patient/Appointment.rs?status=booked", 36, &context, &type, &perms), -1);
    assert_int_equal(auth_scope_parse("user/Observation.read", 21, &context, &type, &perms), -1);
    assert_int_equal(auth_scope_parse("openid", 6, &context, &type, &perms), -1);
    assert_int_equal(auth_scope_parse("launch/patient", 14, &context, &type, &perms), -1);
    assert_int_equal(auth_scope_parse("user/.read", 10, &context, &type, &perms), -1);
}

static void test_integration_client_without_role_is_limited_by_scopes(void **state)
{
    auth_principal_t p;
    principal(&p, "{\"sub\":\"engine\",\"azp\":\"hl7-engine\",\"scope\":\"system/Appointment.cru system/Patient.read openid\"}");
    assert_string_equal(p.client_id, "hl7-engine");
    assert_int_equal(perms_of(&p, "Appointment"), AUTH_PERM_C | AUTH_PERM_R | AUTH_PERM_U);
    assert_int_equal(perms_of(&p, "Patient"), AUTH_PERM_READ);
    assert_int_equal(perms_of(&p, "Schedule"), 0);
    assert_int_equal(read_rule(&p, "Appointment")->level, FHIR_ACCESS_ALL);
    assert_int_equal(read_rule(&p, "Schedule")->level, FHIR_ACCESS_NONE);
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    bool scope_short = false;
    assert_int_equal(auth_check(&p, "Appointment", AUTH_PERM_D, &oo, &scope_short), -1);
    assert_true(scope_short);
    assert_int_equal(oo.status, 403);
    fhir_outcome_dispose(&oo);
    assert_true(auth_may_override_rules(&p));
    auth_principal_dispose(&p);
}

static void test_patient_context_sees_its_compartment_and_the_directory(void **state)
{
    auth_principal_t p;
    principal(&p, "{\"sub\":\"s\",\"patient\":\"pat-1\",\"scope\":\"patient/*.read patient/Appointment.write\"}");
    assert_int_equal(read_rule(&p, "Patient")->level, FHIR_ACCESS_SOME);
    assert_string_equal(read_rule(&p, "Patient")->ids, "{\"pat-1\"}");
    assert_string_equal(read_rule(&p, "Appointment")->tokens, "{\"patient=Patient/pat-1\"}");
    assert_string_equal(read_rule(&p, "AppointmentResponse")->tokens, "{\"patient=Patient/pat-1\"}");
    assert_string_equal(read_rule(&p, "Slot")->tokens, "{\"status=free\"}");
    assert_int_equal(read_rule(&p, "Practitioner")->level, FHIR_ACCESS_ALL);
    assert_int_equal(read_rule(&p, "AuditEvent")->level, FHIR_ACCESS_NONE);
    assert_int_equal(read_rule(&p, "Subscription")->level, FHIR_ACCESS_NONE);
    /* writes: own appointments only, never the directory even with a wide scope */
    assert_int_equal(perms_of(&p, "Appointment") & AUTH_PERM_WRITE, AUTH_PERM_C | AUTH_PERM_U);
    assert_string_equal(write_rule(&p, "Appointment")->tokens, "{\"patient=Patient/pat-1\"}");
    assert_int_equal(perms_of(&p, "Schedule") & AUTH_PERM_WRITE, 0);
    assert_false(auth_may_override_rules(&p));
    auth_principal_dispose(&p);

    /* patient/ scopes without a patient claim grant nothing */
    principal(&p, "{\"sub\":\"s\",\"scope\":\"patient/*.read\"}");
    assert_int_equal(perms_of(&p, "Appointment"), 0);
    assert_int_equal(read_rule(&p, "Practitioner")->level, FHIR_ACCESS_NONE);
    auth_principal_dispose(&p);
}

static void test_receptionist_is_limited_to_their_clinics(void **state)
{
    auth_principal_t p;
    principal(&p, "{\"sub\":\"r\",\"scope\":\"user/*.*\",\"fhirsched_role\":\"receptionist\","
                  "\"fhirsched_locations\":[\"Location/clinic-a\",\"https://x.test/fhir/Location/clinic-c\"]}");
    assert_int_equal(p.roles, AUTH_ROLE_RECEPTIONIST);
    assert_int_equal(p.nlocations, 2);
    assert_string_equal(read_rule(&p, "Appointment")->tokens, "{\"_site=Location/clinic-a\",\"_site=Location/clinic-c\"}");
    assert_string_equal(write_rule(&p, "Appointment")->tokens, "{\"_site=Location/clinic-a\",\"_site=Location/clinic-c\"}");
    assert_int_equal(perms_of(&p, "Appointment") & AUTH_PERM_D, 0);
    assert_int_equal(perms_of(&p, "Schedule"), AUTH_PERM_READ);
    assert_int_equal(perms_of(&p, "AuditEvent"), 0);
    assert_int_equal(read_rule(&p, "Patient")->level, FHIR_ACCESS_ALL);
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    bool scope_short = true;
    assert_int_equal(auth_check(&p, "Schedule", AUTH_PERM_U, &oo, &scope_short), -1);
    assert_false(scope_short); /* the scope allows it, the role does not */
    fhir_outcome_dispose(&oo);
    assert_false(auth_may_override_rules(&p));
    auth_principal_dispose(&p);
}

static void test_doctor_writes_only_their_own_schedule(void **state)
{
    auth_principal_t p;
    principal(&p, "{\"sub\":\"d\",\"scope\":\"user/*.cruds\",\"fhirsched_role\":[\"doctor\"],"
                  "\"fhirUser\":\"https://x.test/fhir/Practitioner/dr-1\"}");
    assert_string_equal(p.fhir_user, "Practitioner/dr-1");
    assert_int_equal(read_rule(&p, "Appointment")->level, FHIR_ACCESS_ALL); /* no clinic limit in the token */
    assert_string_equal(write_rule(&p, "Appointment")->tokens, "{\"_owner=Practitioner/dr-1\"}");
    assert_string_equal(write_rule(&p, "Slot")->tokens, "{\"_owner=Practitioner/dr-1\"}");
    assert_int_equal(perms_of(&p, "PractitionerRole") & AUTH_PERM_WRITE, 0);
    auth_principal_dispose(&p);

    /* without fhirUser a doctor owns nothing */
    principal(&p, "{\"sub\":\"d\",\"scope\":\"user/*.cruds\",\"fhirsched_role\":\"doctor\"}");
    assert_int_equal(write_rule(&p, "Slot")->level, FHIR_ACCESS_SOME);
    assert_string_equal(write_rule(&p, "Slot")->tokens, "{}");
    auth_principal_dispose(&p);
}

static void test_admin_roles_and_unknown_roles(void **state)
{
    auth_principal_t p;
    principal(&p, "{\"sub\":\"a\",\"scope\":\"user/*.*\",\"fhirsched_role\":\"clinic-admin\","
                  "\"fhirsched_locations\":[\"Location/clinic-a\"]}");
    assert_string_equal(write_rule(&p, "Schedule")->tokens, "{\"_site=Location/clinic-a\",\"_site=none\"}");
    assert_int_equal(read_rule(&p, "AuditEvent")->level, FHIR_ACCESS_ALL);
    assert_int_equal(perms_of(&p, "AuditEvent"), AUTH_PERM_READ);
    assert_true(auth_may_override_rules(&p));
    auth_principal_dispose(&p);

    principal(&p, "{\"sub\":\"m\",\"scope\":\"user/*.*\",\"fhirsched_role\":\"operations-manager\"}");
    assert_int_equal(perms_of(&p, "AuditEvent"), AUTH_PERM_READ);
    assert_int_equal(perms_of(&p, "Appointment"), AUTH_PERM_READ);
    auth_principal_dispose(&p);

    principal(&p, "{\"sub\":\"s\",\"scope\":\"user/*.*\",\"fhirsched_role\":\"support\"}");
    assert_int_equal(perms_of(&p, "Patient"), 0);
    assert_int_equal(perms_of(&p, "Subscription"), AUTH_PERM_READ);
    auth_principal_dispose(&p);

    principal(&p, "{\"sub\":\"x\",\"scope\":\"user/*.*\",\"fhirsched_role\":\"janitor\"}");
    for (int t = 0; t != FHIR_RESOURCE_TYPE_COUNT; ++t)
        assert_int_equal(p.perms[t], 0);
    auth_principal_dispose(&p);

    /* a role claim by dotted path, as Keycloak nests realm roles */
    auth_settings.role_claim = "realm_access.roles";
    principal(&p, "{\"sub\":\"k\",\"scope\":\"user/*.*\",\"realm_access\":{\"roles\":[\"offline_access\",\"system-admin\"]}}");
    assert_int_equal(p.roles, AUTH_ROLE_SYSTEM_ADMIN);
    assert_int_equal(perms_of(&p, "Patient"), AUTH_PERM_READ | AUTH_PERM_WRITE);
    auth_principal_dispose(&p);
    auth_settings.role_claim = "fhirsched_role";
}

static void test_interactions_map_to_permissions(void **state)
{
    auth_principal_t p;
    principal(&p, "{\"sub\":\"c\",\"scope\":\"system/Appointment.r system/Slot.s\"}");
    fhir_ix_request_t req = {.kind = FHIR_IX_READ, .type = "Appointment"};
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    bool short_ = false;
    assert_int_equal(auth_check_interaction(&p, &req, &oo, &short_), 0);
    req.kind = FHIR_IX_SEARCH;
    assert_int_equal(auth_check_interaction(&p, &req, &oo, &short_), -1);
    req.type = NULL; /* a system search covers what can be searched */
    assert_int_equal(auth_check_interaction(&p, &req, &oo, &short_), 0);
    req.kind = FHIR_IX_HISTORY; /* system history needs every type */
    assert_int_equal(auth_check_interaction(&p, &req, &oo, &short_), -1);
    req = (fhir_ix_request_t){.kind = FHIR_IX_PATCH, .type = "Appointment", .id = "a"};
    assert_int_equal(auth_check_interaction(&p, &req, &oo, &short_), -1);
    fhir_outcome_dispose(&oo);
    auth_principal_dispose(&p);
}

static void test_audit_event_content(void **state)
{
    auth_principal_t p;
    principal(&p, "{\"iss\":\"https://idp\",\"sub\":\"u1\",\"client_id\":\"portal\",\"jti\":\"t1\",\"scope\":\"user/*.*\","
                  "\"fhirsched_role\":\"receptionist\"}");
    auth_audit_info_t info = {.subtype = "search-type", .action = 'E', .type = "Appointment", .query = "date=ge2026",
                              .patient = "pat-1", .status = 403, .outcome_text = "no", .request_id = "rid-1", .peer = "10.0.0.1"};
    json_t *e = auth_audit_event(&p, &info);
    assert_string_equal(json_string_value(json_object_get(e, "outcome")), "4");
    assert_string_equal(json_string_value(json_object_get(e, "action")), "E");
    json_t *agent = json_array_get(json_object_get(e, "agent"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(agent, "who"), "identifier"), "value")), "u1");
    assert_string_equal(json_string_value(json_object_get(agent, "altId")), "portal");
    json_t *entities = json_object_get(e, "entity");
    assert_int_equal(json_array_size(entities), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(entities, 0), "query")), "ZGF0ZT1nZTIwMjY=");
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(entities, 1), "what"), "reference")),
                        "Patient/pat-1");
    json_decref(e);
    auth_principal_dispose(&p);
    /* authorization off: an anonymous agent, still recorded */
    info.status = 200;
    e = auth_audit_event(NULL, &info);
    assert_string_equal(json_string_value(json_object_get(e, "outcome")), "0");
    json_decref(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scope_parsing),
        cmocka_unit_test(test_integration_client_without_role_is_limited_by_scopes),
        cmocka_unit_test(test_patient_context_sees_its_compartment_and_the_directory),
        cmocka_unit_test(test_receptionist_is_limited_to_their_clinics),
        cmocka_unit_test(test_doctor_writes_only_their_own_schedule),
        cmocka_unit_test(test_admin_roles_and_unknown_roles),
        cmocka_unit_test(test_interactions_map_to_permissions),
        cmocka_unit_test(test_audit_event_content),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
