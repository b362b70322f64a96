/*
 * The registry of supported search parameters: the single table that drives extraction (search_index.c), query
 * building (search.c), /metadata and docs/search.md. Each entry mirrors the official R4 SearchParameter named in
 * `definition` (tests/unit/fhir/test_search_registry.c checks code, type, expression and targets against
 * fhir/profiles/SearchParameter-subset.json), restricted to the entry's type.
 */
#include <string.h>
#include "fhir/search.h"

#define SP(name) "http://hl7.org/fhir/SearchParameter/" name
#define EL(kind) FHIR_EL_##kind
#define TOKEN FHIR_SEARCH_TOKEN
#define STRING FHIR_SEARCH_STRING
#define REFERENCE FHIR_SEARCH_REFERENCE
#define DATE FHIR_SEARCH_DATE
#define URI FHIR_SEARCH_URI
#define SPECIAL FHIR_SEARCH_SPECIAL

/* Everything a Schedule, Appointment or AppointmentResponse actor may be. */
#define ACTORS "Practitioner|Device|Patient|HealthcareService|PractitionerRole|RelatedPerson|Location"
/* Everything an AuditEvent agent or source observer may be. */
#define AUDIT_AGENTS "Practitioner|Organization|Device|Patient|PractitionerRole|RelatedPerson"

static const fhir_search_param_t registry[] = {
    {NULL, "_id", TOKEN, "Resource.id", EL(ID), NULL, NULL, SP("Resource-id")},
    {NULL, "_lastUpdated", DATE, "Resource.meta.lastUpdated", EL(LAST_UPDATED), NULL, NULL, SP("Resource-lastUpdated")},
    {NULL, "_tag", TOKEN, "Resource.meta.tag", EL(CODING), NULL, NULL, SP("Resource-tag")},
    {NULL, "_profile", URI, "Resource.meta.profile", EL(URI), NULL, NULL, SP("Resource-profile")},
    {NULL, "_security", TOKEN, "Resource.meta.security", EL(CODING), NULL, NULL, SP("Resource-security")},

    {"Schedule", "actor", REFERENCE, "Schedule.actor", EL(REFERENCE), ACTORS, NULL, SP("Schedule-actor")},
    {"Schedule", "active", TOKEN, "Schedule.active", EL(BOOLEAN), NULL, NULL, SP("Schedule-active")},
    {"Schedule", "date", DATE, "Schedule.planningHorizon", EL(PERIOD), NULL, NULL, SP("Schedule-date")},
    {"Schedule", "service-category", TOKEN, "Schedule.serviceCategory", EL(CODEABLE), NULL, NULL, SP("Schedule-service-category")},
    {"Schedule", "service-type", TOKEN, "Schedule.serviceType", EL(CODEABLE), NULL, NULL, SP("Schedule-service-type")},
    {"Schedule", "specialty", TOKEN, "Schedule.specialty", EL(CODEABLE), NULL, NULL, SP("Schedule-specialty")},
    {"Schedule", "identifier", TOKEN, "Schedule.identifier", EL(IDENTIFIER), NULL, NULL, SP("Schedule-identifier")},
    {"Slot", "schedule", REFERENCE, "Slot.schedule", EL(REFERENCE), "Schedule", NULL, SP("Slot-schedule")},
    {"Slot", "start", DATE, "Slot.start", EL(INSTANT), NULL, NULL, SP("Slot-start")},
    {"Slot", "status", TOKEN, "Slot.status", EL(CODE), NULL, "http://hl7.org/fhir/slotstatus", SP("Slot-status")},
    {"Slot", "service-category", TOKEN, "Slot.serviceCategory", EL(CODEABLE), NULL, NULL, SP("Slot-service-category")},
    {"Slot", "service-type", TOKEN, "Slot.serviceType", EL(CODEABLE), NULL, NULL, SP("Slot-service-type")},
    {"Slot", "specialty", TOKEN, "Slot.specialty", EL(CODEABLE), NULL, NULL, SP("Slot-specialty")},
    {"Slot", "appointment-type", TOKEN, "Slot.appointmentType", EL(CODEABLE), NULL, NULL, SP("Slot-appointment-type")},
    {"Slot", "identifier", TOKEN, "Slot.identifier", EL(IDENTIFIER), NULL, NULL, SP("Slot-identifier")},
    {"Appointment", "actor", REFERENCE, "Appointment.participant.actor", EL(REFERENCE), ACTORS, NULL, SP("Appointment-actor")},
    {"Appointment", "practitioner", REFERENCE, "Appointment.participant.actor.where(resolve() is Practitioner)", EL(REFERENCE), "Practitioner", NULL, SP("Appointment-practitioner")},
    {"Appointment", "patient", REFERENCE, "Appointment.participant.actor.where(resolve() is Patient)", EL(REFERENCE), "Patient", NULL, SP("Appointment-patient")},
    {"Appointment", "location", REFERENCE, "Appointment.participant.actor.where(resolve() is Location)", EL(REFERENCE), "Location", NULL, SP("Appointment-location")},
    {"Appointment", "date", DATE, "Appointment.start", EL(INSTANT), NULL, NULL, SP("Appointment-date")},
    {"Appointment", "status", TOKEN, "Appointment.status", EL(CODE), NULL, "http://hl7.org/fhir/appointmentstatus", SP("Appointment-status")},
    {"Appointment", "part-status", TOKEN, "Appointment.participant.status", EL(CODE), NULL, "http://hl7.org/fhir/participationstatus", SP("Appointment-part-status")},
    {"Appointment", "slot", REFERENCE, "Appointment.slot", EL(REFERENCE), "Slot", NULL, SP("Appointment-slot")},
    {"Appointment", "service-category", TOKEN, "Appointment.serviceCategory", EL(CODEABLE), NULL, NULL, SP("Appointment-service-category")},
    {"Appointment", "service-type", TOKEN, "Appointment.serviceType", EL(CODEABLE), NULL, NULL, SP("Appointment-service-type")},
    {"Appointment", "specialty", TOKEN, "Appointment.specialty", EL(CODEABLE), NULL, NULL, SP("Appointment-specialty")},
    {"Appointment", "appointment-type", TOKEN, "Appointment.appointmentType", EL(CODEABLE), NULL, NULL, SP("Appointment-appointment-type")},
    {"Appointment", "reason-code", TOKEN, "Appointment.reasonCode", EL(CODEABLE), NULL, NULL, SP("Appointment-reason-code")},
    {"Appointment", "reason-reference", REFERENCE, "Appointment.reasonReference", EL(REFERENCE), "Condition|Observation|Procedure|ImmunizationRecommendation", NULL, SP("Appointment-reason-reference")},
    {"Appointment", "based-on", REFERENCE, "Appointment.basedOn", EL(REFERENCE), "ServiceRequest", NULL, SP("Appointment-based-on")},
    {"Appointment", "supporting-info", REFERENCE, "Appointment.supportingInformation", EL(REFERENCE), "*", NULL, SP("Appointment-supporting-info")},
    {"Appointment", "identifier", TOKEN, "Appointment.identifier", EL(IDENTIFIER), NULL, NULL, SP("Appointment-identifier")},
    {"AppointmentResponse", "appointment", REFERENCE, "AppointmentResponse.appointment", EL(REFERENCE), "Appointment", NULL, SP("AppointmentResponse-appointment")},
    {"AppointmentResponse", "actor", REFERENCE, "AppointmentResponse.actor", EL(REFERENCE), ACTORS, NULL, SP("AppointmentResponse-actor")},
    {"AppointmentResponse", "practitioner", REFERENCE, "AppointmentResponse.actor.where(resolve() is Practitioner)", EL(REFERENCE), "Practitioner", NULL, SP("AppointmentResponse-practitioner")},
    {"AppointmentResponse", "patient", REFERENCE, "AppointmentResponse.actor.where(resolve() is Patient)", EL(REFERENCE), "Patient", NULL, SP("AppointmentResponse-patient")},
    {"AppointmentResponse", "location", REFERENCE, "AppointmentResponse.actor.where(resolve() is Location)", EL(REFERENCE), "Location", NULL, SP("AppointmentResponse-location")},
    {"AppointmentResponse", "part-status", TOKEN, "AppointmentResponse.participantStatus", EL(CODE), NULL, "http://hl7.org/fhir/participationstatus", SP("AppointmentResponse-part-status")},
    {"AppointmentResponse", "identifier", TOKEN, "AppointmentResponse.identifier", EL(IDENTIFIER), NULL, NULL, SP("AppointmentResponse-identifier")},
    /* altId and source.site are plain strings searched as tokens: code only, no system */
    {"AuditEvent", "date", DATE, "AuditEvent.recorded", EL(INSTANT), NULL, NULL, SP("AuditEvent-date")},
    {"AuditEvent", "agent", REFERENCE, "AuditEvent.agent.who", EL(REFERENCE), AUDIT_AGENTS, NULL, SP("AuditEvent-agent")},
    {"AuditEvent", "entity", REFERENCE, "AuditEvent.entity.what", EL(REFERENCE), "*", NULL, SP("AuditEvent-entity")},
    {"AuditEvent", "patient", REFERENCE, "AuditEvent.agent.who.where(resolve() is Patient) | AuditEvent.entity.what.where(resolve() is Patient)", EL(REFERENCE), "Patient", NULL, SP("AuditEvent-patient")},
    {"AuditEvent", "type", TOKEN, "AuditEvent.type", EL(CODING), NULL, NULL, SP("AuditEvent-type")},
    {"AuditEvent", "subtype", TOKEN, "AuditEvent.subtype", EL(CODING), NULL, NULL, SP("AuditEvent-subtype")},
    {"AuditEvent", "action", TOKEN, "AuditEvent.action", EL(CODE), NULL, "http://hl7.org/fhir/audit-event-action", SP("AuditEvent-action")},
    {"AuditEvent", "outcome", TOKEN, "AuditEvent.outcome", EL(CODE), NULL, "http://hl7.org/fhir/audit-event-outcome", SP("AuditEvent-outcome")},
    {"AuditEvent", "source", REFERENCE, "AuditEvent.source.observer", EL(REFERENCE), AUDIT_AGENTS, NULL, SP("AuditEvent-source")},
    {"AuditEvent", "site", TOKEN, "AuditEvent.source.site", EL(CODE), NULL, NULL, SP("AuditEvent-site")},
    {"AuditEvent", "altid", TOKEN, "AuditEvent.agent.altId", EL(CODE), NULL, NULL, SP("AuditEvent-altid")},
    {"AuditEvent", "policy", URI, "AuditEvent.agent.policy", EL(URI), NULL, NULL, SP("AuditEvent-policy")},
    {"AuditEvent", "address", STRING, "AuditEvent.agent.network.address", EL(STRING), NULL, NULL, SP("AuditEvent-address")},
    {"AuditEvent", "agent-name", STRING, "AuditEvent.agent.name", EL(STRING), NULL, NULL, SP("AuditEvent-agent-name")},
    {"AuditEvent", "agent-role", TOKEN, "AuditEvent.agent.role", EL(CODEABLE), NULL, NULL, SP("AuditEvent-agent-role")},
    {"AuditEvent", "entity-type", TOKEN, "AuditEvent.entity.type", EL(CODING), NULL, NULL, SP("AuditEvent-entity-type")},
    {"AuditEvent", "entity-role", TOKEN, "AuditEvent.entity.role", EL(CODING), NULL, NULL, SP("AuditEvent-entity-role")},
    {"AuditEvent", "entity-name", STRING, "AuditEvent.entity.name", EL(STRING), NULL, NULL, SP("AuditEvent-entity-name")},
    {"Device", "identifier", TOKEN, "Device.identifier", EL(IDENTIFIER), NULL, NULL, SP("Device-identifier")},
    {"Device", "type", TOKEN, "Device.type", EL(CODEABLE), NULL, NULL, SP("Device-type")},
    {"Device", "status", TOKEN, "Device.status", EL(CODE), NULL, "http://hl7.org/fhir/device-status", SP("Device-status")},
    {"Device", "location", REFERENCE, "Device.location", EL(REFERENCE), "Location", NULL, SP("Device-location")},
    {"Device", "organization", REFERENCE, "Device.owner", EL(REFERENCE), "Organization", NULL, SP("Device-organization")},
    {"Device", "patient", REFERENCE, "Device.patient", EL(REFERENCE), "Patient", NULL, SP("Device-patient")},
    {"Device", "url", URI, "Device.url", EL(URI), NULL, NULL, SP("Device-url")},
    {"Device", "device-name", STRING, "Device.deviceName.name | Device.type.coding.display | Device.type.text", EL(STRING), NULL, NULL, SP("Device-device-name")},
    {"Device", "manufacturer", STRING, "Device.manufacturer", EL(STRING), NULL, NULL, SP("Device-manufacturer")},
    {"Device", "model", STRING, "Device.modelNumber", EL(STRING), NULL, NULL, SP("Device-model")},
    {"Device", "udi-carrier", STRING, "Device.udiCarrier.carrierHRF", EL(STRING), NULL, NULL, SP("Device-udi-carrier")},
    {"Device", "udi-di", STRING, "Device.udiCarrier.deviceIdentifier", EL(STRING), NULL, NULL, SP("Device-udi-di")},
    {"Practitioner", "name", STRING, "Practitioner.name", EL(HUMANNAME), NULL, NULL, SP("Practitioner-name")},
    {"Practitioner", "family", STRING, "Practitioner.name.family", EL(STRING), NULL, NULL, SP("individual-family")},
    {"Practitioner", "given", STRING, "Practitioner.name.given", EL(STRING), NULL, NULL, SP("individual-given")},
    {"Practitioner", "active", TOKEN, "Practitioner.active", EL(BOOLEAN), NULL, NULL, SP("Practitioner-active")},
    {"Practitioner", "telecom", TOKEN, "Practitioner.telecom", EL(CONTACT), NULL, NULL, SP("individual-telecom")},
    {"Practitioner", "phone", TOKEN, "Practitioner.telecom.where(system='phone')", EL(CONTACT), NULL, NULL, SP("individual-phone")},
    {"Practitioner", "email", TOKEN, "Practitioner.telecom.where(system='email')", EL(CONTACT), NULL, NULL, SP("individual-email")},
    {"Practitioner", "address", STRING, "Practitioner.address", EL(ADDRESS), NULL, NULL, SP("individual-address")},
    {"Practitioner", "address-city", STRING, "Practitioner.address.city", EL(STRING), NULL, NULL, SP("individual-address-city")},
    {"Practitioner", "gender", TOKEN, "Practitioner.gender", EL(CODE), NULL, "http://hl7.org/fhir/administrative-gender", SP("individual-gender")},
    {"Practitioner", "communication", TOKEN, "Practitioner.communication", EL(CODEABLE), NULL, NULL, SP("Practitioner-communication")},
    {"Practitioner", "identifier", TOKEN, "Practitioner.identifier", EL(IDENTIFIER), NULL, NULL, SP("Practitioner-identifier")},
    {"PractitionerRole", "practitioner", REFERENCE, "PractitionerRole.practitioner", EL(REFERENCE), "Practitioner", NULL, SP("PractitionerRole-practitioner")},
    {"PractitionerRole", "location", REFERENCE, "PractitionerRole.location", EL(REFERENCE), "Location", NULL, SP("PractitionerRole-location")},
    {"PractitionerRole", "service", REFERENCE, "PractitionerRole.healthcareService", EL(REFERENCE), "HealthcareService", NULL, SP("PractitionerRole-service")},
    {"PractitionerRole", "specialty", TOKEN, "PractitionerRole.specialty", EL(CODEABLE), NULL, NULL, SP("PractitionerRole-specialty")},
    {"PractitionerRole", "role", TOKEN, "PractitionerRole.code", EL(CODEABLE), NULL, NULL, SP("PractitionerRole-role")},
    {"PractitionerRole", "organization", REFERENCE, "PractitionerRole.organization", EL(REFERENCE), "Organization", NULL, SP("PractitionerRole-organization")},
    {"PractitionerRole", "active", TOKEN, "PractitionerRole.active", EL(BOOLEAN), NULL, NULL, SP("PractitionerRole-active")},
    {"PractitionerRole", "date", DATE, "PractitionerRole.period", EL(PERIOD), NULL, NULL, SP("PractitionerRole-date")},
    {"PractitionerRole", "identifier", TOKEN, "PractitionerRole.identifier", EL(IDENTIFIER), NULL, NULL, SP("PractitionerRole-identifier")},
    {"Location", "name", STRING, "Location.name | Location.alias", EL(STRING), NULL, NULL, SP("Location-name")},
    {"Location", "address", STRING, "Location.address", EL(ADDRESS), NULL, NULL, SP("Location-address")},
    {"Location", "address-city", STRING, "Location.address.city", EL(STRING), NULL, NULL, SP("Location-address-city")},
    {"Location", "address-postalcode", STRING, "Location.address.postalCode", EL(STRING), NULL, NULL, SP("Location-address-postalcode")},
    {"Location", "status", TOKEN, "Location.status", EL(CODE), NULL, "http://hl7.org/fhir/location-status", SP("Location-status")},
    {"Location", "type", TOKEN, "Location.type", EL(CODEABLE), NULL, NULL, SP("Location-type")},
    {"Location", "operational-status", TOKEN, "Location.operationalStatus", EL(CODING), NULL, NULL, SP("Location-operational-status")},
    {"Location", "partof", REFERENCE, "Location.partOf", EL(REFERENCE), "Location", NULL, SP("Location-partof")},
    {"Location", "near", SPECIAL, "Location.position", EL(POSITION), NULL, NULL, SP("Location-near")},
    {"Location", "identifier", TOKEN, "Location.identifier", EL(IDENTIFIER), NULL, NULL, SP("Location-identifier")},
    {"HealthcareService", "name", STRING, "HealthcareService.name", EL(STRING), NULL, NULL, SP("HealthcareService-name")},
    {"HealthcareService", "location", REFERENCE, "HealthcareService.location", EL(REFERENCE), "Location", NULL, SP("HealthcareService-location")},
    {"HealthcareService", "service-type", TOKEN, "HealthcareService.type", EL(CODEABLE), NULL, NULL, SP("HealthcareService-service-type")},
    {"HealthcareService", "service-category", TOKEN, "HealthcareService.category", EL(CODEABLE), NULL, NULL, SP("HealthcareService-service-category")},
    {"HealthcareService", "specialty", TOKEN, "HealthcareService.specialty", EL(CODEABLE), NULL, NULL, SP("HealthcareService-specialty")},
    {"HealthcareService", "active", TOKEN, "HealthcareService.active", EL(BOOLEAN), NULL, NULL, SP("HealthcareService-active")},
    {"HealthcareService", "organization", REFERENCE, "HealthcareService.providedBy", EL(REFERENCE), "Organization", NULL, SP("HealthcareService-organization")},
    {"HealthcareService", "identifier", TOKEN, "HealthcareService.identifier", EL(IDENTIFIER), NULL, NULL, SP("HealthcareService-identifier")},
    {"Patient", "name", STRING, "Patient.name", EL(HUMANNAME), NULL, NULL, SP("Patient-name")},
    {"Patient", "family", STRING, "Patient.name.family", EL(STRING), NULL, NULL, SP("individual-family")},
    {"Patient", "given", STRING, "Patient.name.given", EL(STRING), NULL, NULL, SP("individual-given")},
    {"Patient", "birthdate", DATE, "Patient.birthDate", EL(DATE), NULL, NULL, SP("individual-birthdate")},
    {"Patient", "gender", TOKEN, "Patient.gender", EL(CODE), NULL, "http://hl7.org/fhir/administrative-gender", SP("individual-gender")},
    {"Patient", "telecom", TOKEN, "Patient.telecom", EL(CONTACT), NULL, NULL, SP("individual-telecom")},
    {"Patient", "phone", TOKEN, "Patient.telecom.where(system='phone')", EL(CONTACT), NULL, NULL, SP("individual-phone")},
    {"Patient", "email", TOKEN, "Patient.telecom.where(system='email')", EL(CONTACT), NULL, NULL, SP("individual-email")},
    {"Patient", "address", STRING, "Patient.address", EL(ADDRESS), NULL, NULL, SP("individual-address")},
    {"Patient", "address-postalcode", STRING, "Patient.address.postalCode", EL(STRING), NULL, NULL, SP("individual-address-postalcode")},
    {"Patient", "general-practitioner", REFERENCE, "Patient.generalPractitioner", EL(REFERENCE), "Practitioner|Organization|PractitionerRole", NULL, SP("Patient-general-practitioner")},
    {"Patient", "identifier", TOKEN, "Patient.identifier", EL(IDENTIFIER), NULL, NULL, SP("Patient-identifier")},
    {"Patient", "active", TOKEN, "Patient.active", EL(BOOLEAN), NULL, NULL, SP("Patient-active")},
    {"Subscription", "status", TOKEN, "Subscription.status", EL(CODE), NULL, "http://hl7.org/fhir/subscription-status", SP("Subscription-status")},
    {"Subscription", "criteria", STRING, "Subscription.criteria", EL(STRING), NULL, NULL, SP("Subscription-criteria")},
    {"Subscription", "type", TOKEN, "Subscription.channel.type", EL(CODE), NULL, "http://hl7.org/fhir/subscription-channel-type", SP("Subscription-type")},
    {"Subscription", "url", URI, "Subscription.channel.endpoint", EL(URI), NULL, NULL, SP("Subscription-url")},
};
#define REGISTRY_SIZE (sizeof(registry) / sizeof(registry[0]))

static const char *const search_type_names[] = {"token", "string", "reference", "date", "uri", "special"};

const char *fhir_search_type_name(fhir_search_type_t type)
{
    return search_type_names[type];
}

const fhir_search_param_t *fhir_search_registry_at(size_t i)
{
    return i < REGISTRY_SIZE ? &registry[i] : NULL;
}

const fhir_search_param_t *fhir_search_param_at(const char *type, size_t i)
{
    for (size_t k = 0; k != REGISTRY_SIZE; ++k) {
        const fhir_search_param_t *p = &registry[k];
        if (p->type == NULL || (type != NULL && strcmp(p->type, type) == 0)) {
            if (i-- == 0)
                return p;
        }
    }
    return NULL;
}

const fhir_search_param_t *fhir_search_param_find(const char *type, const char *code)
{
    for (size_t k = 0; k != REGISTRY_SIZE; ++k) {
        const fhir_search_param_t *p = &registry[k];
        if ((p->type == NULL || (type != NULL && strcmp(p->type, type) == 0)) && strcmp(p->code, code) == 0)
            return p;
    }
    return NULL;
}

bool fhir_search_param_targets(const fhir_search_param_t *param, const char *target)
{
    if (param->targets == NULL)
        return false;
    if (strcmp(param->targets, "*") == 0)
        return true;
    size_t len = strlen(target);
    for (const char *p = param->targets; *p != '\0';) {
        const char *bar = strchr(p, '|');
        size_t n = bar != NULL ? (size_t)(bar - p) : strlen(p);
        if (n == len && strncmp(p, target, len) == 0)
            return true;
        p += n + (bar != NULL);
    }
    return false;
}

/* ---- docs/search.md ---- */

static const char *modifiers_of(const fhir_search_param_t *p)
{
    switch (p->search_type) {
    case FHIR_SEARCH_TOKEN:
        if (p->element == FHIR_EL_ID)
            return "`:not`";
        return p->element == FHIR_EL_IDENTIFIER ? "`:missing` `:not` `:text` `:of-type`" : "`:missing` `:not` `:text`";
    case FHIR_SEARCH_STRING:
        return "`:missing` `:exact` `:contains`";
    case FHIR_SEARCH_REFERENCE:
        return "`:missing` `:[type]` `:identifier`, chaining";
    case FHIR_SEARCH_DATE:
        return p->element == FHIR_EL_LAST_UPDATED ? "prefixes" : "`:missing`, prefixes";
    case FHIR_SEARCH_URI:
        return "`:missing` `:not`";
    case FHIR_SEARCH_SPECIAL:
        return "`lat\\|long\\|distance\\|units`";
    }
    return "";
}

/* A table cell: '|' would end the cell even inside backticks, so it is escaped (or turned into `sep`). */
static void markdown_cell(util_buf_t *out, const char *text, const char *bar)
{
    for (const char *p = text; *p != '\0'; ++p) {
        if (*p == '|')
            util_buf_puts(out, bar);
        else
            util_buf_append(out, p, 1);
    }
}

static void markdown_row(util_buf_t *out, const fhir_search_param_t *p)
{
    util_buf_printf(out, "| `%s` | %s | `", p->code, fhir_search_type_name(p->search_type));
    markdown_cell(out, p->expression, "\\|");
    util_buf_puts(out, "` | ");
    markdown_cell(out, p->targets == NULL ? "" : strcmp(p->targets, "*") == 0 ? "any" : p->targets, ", ");
    util_buf_printf(out, " | %s | [%s](%s) |\n", modifiers_of(p), p->definition + strlen("http://hl7.org/fhir/SearchParameter/"),
                    p->definition);
}

void fhir_search_registry_markdown(util_buf_t *out)
{
    util_buf_puts(out,
                  "# Search parameters\n"
                  "\n"
                  "<!-- Generated from the registry in src/fhir/search_registry.c by `fhirsched search-params`; do not edit.\n"
                  "     Regenerate with `make docs`. tests/unit/fhir/test_search.c fails when this file is out of date. -->\n"
                  "\n"
                  "Every parameter below is the official FHIR R4 SearchParameter it links to, restricted to the resource type. "
                  "How values, prefixes, modifiers, chaining, `_has`, `_include`, sorting and paging behave is described in "
                  "[api.md](api.md#search).\n"
                  "\n"
                  "Modifiers by parameter type:\n"
                  "\n"
                  "- **token**: `code`, `system|code`, `|code`, `system|`; `:not`, `:text` (starts-with on the display/text, "
                  "case- and accent-insensitive), `:of-type` (identifiers: `typeSystem|typeCode|value`), `:missing`.\n"
                  "- **string**: case- and accent-insensitive starts-with; `:exact`, `:contains`, `:missing`.\n"
                  "- **reference**: `Type/id`, `id`, an absolute URL on this server's base; `:[type]` (e.g. `:Patient`), "
                  "`:identifier` (`system|value` of Reference.identifier), `:missing`; chaining (`param.param`, "
                  "`param:Type.param`).\n"
                  "- **date**: prefixes `eq ne gt lt ge le sa eb ap` on any precision; `:missing`.\n"
                  "- **uri**: exact match; `:not`, `:missing`.\n"
                  "- **special** (`near`): `latitude|longitude|distance|units`, units `km` (default), `m`, `mi`; distance "
                  "defaults to 50 km.\n"
                  "\n"
                  "Result parameters on every type: `_count`, `_sort`, `_total`, `_summary`, `_elements`, `_include`, "
                  "`_revinclude` (both with `:iterate`), `_has`; system search: `_type`.\n");
    util_buf_puts(out, "\n## All types\n\n| Parameter | Type | Expression | Targets | Modifiers | Definition |\n|---|---|---|---|---|---|\n");
    for (size_t i = 0; i != REGISTRY_SIZE; ++i)
        if (registry[i].type == NULL)
            markdown_row(out, &registry[i]);
    for (int t = 0; t != FHIR_RESOURCE_TYPE_COUNT; ++t) {
        const char *type = fhir_resource_types[t];
        util_buf_printf(out, "\n## %s\n\n| Parameter | Type | Expression | Targets | Modifiers | Definition |\n|---|---|---|---|---|---|\n",
                        type);
        for (size_t i = 0; i != REGISTRY_SIZE; ++i)
            if (registry[i].type != NULL && strcmp(registry[i].type, type) == 0)
                markdown_row(out, &registry[i]);
    }
}
