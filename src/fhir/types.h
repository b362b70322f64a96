/* The resource types this server stores, in one table shared by the router, the store and /metadata. */
#ifndef FHIR_TYPES_H
#define FHIR_TYPES_H

#include <stddef.h>

/** Number of stored resource types. */
#define FHIR_RESOURCE_TYPE_COUNT 12

/** The stored types as an X-macro, sorted by name, for tables built at compile time (see fhir_resource_types). */
#define FHIR_RESOURCE_TYPES(X)                                                                                                  \
    X(Appointment) X(AppointmentResponse) X(AuditEvent) X(Device) X(HealthcareService) X(Location) X(Patient) X(Practitioner) \
        X(PractitionerRole) X(Schedule) X(Slot) X(Subscription)

/** Stored resource types, sorted by name; each has its partition of the resource table (see migrations/). */
extern const char *const fhir_resource_types[FHIR_RESOURCE_TYPE_COUNT];

/** Index of a stored type by name, or -1. `len` bytes of `name` are compared. */
int fhir_resource_type_index(const char *name, size_t len);

#endif
