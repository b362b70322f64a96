/*
 * _summary and _elements (R4 search.html#summary, #elements): cut one resource down to a subset of its top-level
 * elements, using isSummary and the minimum cardinality from the generated tables (schema_gen.h), and mark it SUBSETTED.
 */
#ifndef FHIR_SUBSET_H
#define FHIR_SUBSET_H

#include <stddef.h>
#include <jansson.h>

/** The _summary values that shape a resource (_summary=count returns no resources, so the caller handles it). */
typedef enum {
    FHIR_SUMMARY_FALSE, /* the whole resource */
    FHIR_SUMMARY_TRUE,  /* the elements marked isSummary */
    FHIR_SUMMARY_TEXT,  /* text, id, meta and the mandatory top-level elements */
    FHIR_SUMMARY_DATA,  /* everything but text */
} fhir_summary_t;

/** meta.tag Coding added to every resource the two parameters may have shortened. */
#define FHIR_SUBSET_TAG_SYSTEM "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
#define FHIR_SUBSET_TAG_CODE "SUBSETTED"
#define FHIR_SUBSET_TAG_DISPLAY "Resource encoded in summary mode"

/**
 * Applies `_summary` and `_elements` to `resource` (a FHIR resource as a JSON object), in place.
 *
 * `resourceType`, `id` and `meta` are always kept. `summary` keeps, among the other top-level elements: everything
 * (FALSE), those whose ElementDefinition has isSummary (TRUE), `text` and the mandatory ones (min > 0) (TEXT), all but
 * `text` (DATA); kept elements keep their whole content. With `nelements` > 0, an element is kept only if it is also
 * mandatory or named in `elements`: a name is a top-level element ("status"), a choice element without its type
 * ("value" keeps valueString, valueQuantity, ...) or one JSON form of it ("valueString"); other names are ignored.
 * Both parameters together keep what both keep. A primitive's extension sibling ("_status") follows its element.
 *
 * Unless summary is FALSE and `nelements` is 0, the SUBSETTED Coding (FHIR_SUBSET_TAG_*) is added to meta.tag if not
 * already there, creating meta and meta.tag as needed.
 *
 * Returns 0, or -1 with `resource` untouched when it is not an object, its resourceType is missing or not one of the
 * types in fhir_schema_resources, its meta is not an object or meta.tag not an array, or `summary` is out of range.
 */
int fhir_subset_apply(json_t *resource, fhir_summary_t summary, const char *const *elements, size_t nelements);

#endif
