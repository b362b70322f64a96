#include <stdbool.h>
#include <string.h>
#include "fhir/schema_gen.h"
#include "fhir/subset.h"

/* The structure of a resource type with generated tables, or NULL. */
static const fhir_schema_struct_t *resource_struct(const char *type)
{
    size_t lo = 0, hi = FHIR_SCHEMA_RESOURCE_COUNT;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(type, fhir_schema_resources[mid].name);
        if (c == 0)
            return &fhir_schema_structs[fhir_schema_resources[mid].type];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* The element with JSON name `name` (elements are sorted by strcmp), or NULL. */
static const fhir_schema_element_t *element_find(const fhir_schema_struct_t *st, const char *name)
{
    size_t lo = 0, hi = st->element_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, st->elements[mid].name);
        if (c == 0)
            return &st->elements[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* True when one of the _elements names designates `el`: its JSON name, its slot's name, or a choice slot's stem. */
static bool element_listed(const fhir_schema_element_t *el, const fhir_schema_slot_t *slot, const char *const *elements,
                           size_t nelements)
{
    size_t stem = slot->choice ? strlen(slot->name) - 3 : 0; /* "value[x]" -> "value" */
    for (size_t i = 0; i != nelements; ++i) {
        const char *e = elements[i];
        if (e == NULL)
            continue;
        if (strcmp(e, el->name) == 0 || strcmp(e, slot->name) == 0)
            return true;
        if (slot->choice && strlen(e) == stem && memcmp(e, slot->name, stem) == 0)
            return true;
    }
    return false;
}

static bool keep_member(const fhir_schema_struct_t *st, const char *key, fhir_summary_t summary, const char *const *elements,
                        size_t nelements)
{
    const char *name = key[0] == '_' ? key + 1 : key; /* "_status" carries status's id and extensions */
    if (strcmp(key, "resourceType") == 0 || strcmp(name, "id") == 0 || strcmp(name, "meta") == 0)
        return true;
    const fhir_schema_element_t *el = element_find(st, name);
    const fhir_schema_slot_t *slot = el != NULL ? &st->slots[el->slot] : NULL;
    bool mandatory = slot != NULL && slot->min > 0;
    bool is_text = strcmp(name, "text") == 0;

    switch (summary) {
    case FHIR_SUMMARY_FALSE:
        break;
    case FHIR_SUMMARY_TRUE:
        if (slot == NULL || !slot->is_summary)
            return false;
        break;
    case FHIR_SUMMARY_TEXT:
        if (!is_text && !mandatory)
            return false;
        break;
    case FHIR_SUMMARY_DATA:
        if (is_text)
            return false;
        break;
    }
    if (nelements == 0)
        return true;
    return mandatory || (slot != NULL && element_listed(el, slot, elements, nelements));
}

/* Re-inserts every member but resourceType and id after a new `meta`, so meta sits where stored resources have it. */
static void set_meta_in_front(json_t *resource, json_t *meta)
{
    json_t *rest = json_object();
    const char *key;
    json_t *value;
    void *tmp;
    json_object_foreach_safe(resource, tmp, key, value)
    {
        if (strcmp(key, "resourceType") != 0 && strcmp(key, "id") != 0) {
            json_object_set(rest, key, value);
            json_object_del(resource, key);
        }
    }
    json_object_set_new(resource, "meta", meta);
    json_object_update(resource, rest);
    json_decref(rest);
}

static void add_subsetted_tag(json_t *resource)
{
    json_t *meta = json_object_get(resource, "meta");
    if (meta == NULL) {
        meta = json_object();
        set_meta_in_front(resource, meta);
    }
    json_t *tags = json_object_get(meta, "tag");
    if (tags == NULL) {
        tags = json_array();
        json_object_set_new(meta, "tag", tags);
    }
    size_t i;
    json_t *coding;
    json_array_foreach(tags, i, coding)
    {
        const char *system = json_string_value(json_object_get(coding, "system"));
        const char *code = json_string_value(json_object_get(coding, "code"));
        if (system != NULL && code != NULL && strcmp(system, FHIR_SUBSET_TAG_SYSTEM) == 0 &&
            strcmp(code, FHIR_SUBSET_TAG_CODE) == 0)
            return;
    }
    json_array_append_new(tags, json_pack("{s:s, s:s, s:s}", "system", FHIR_SUBSET_TAG_SYSTEM, "code", FHIR_SUBSET_TAG_CODE,
                                          "display", FHIR_SUBSET_TAG_DISPLAY));
}

int fhir_subset_apply(json_t *resource, fhir_summary_t summary, const char *const *elements, size_t nelements)
{
    if (!json_is_object(resource) || (int)summary < (int)FHIR_SUMMARY_FALSE || (int)summary > (int)FHIR_SUMMARY_DATA ||
        (elements == NULL && nelements != 0))
        return -1;
    const char *type = json_string_value(json_object_get(resource, "resourceType"));
    const fhir_schema_struct_t *st = type != NULL ? resource_struct(type) : NULL;
    if (st == NULL)
        return -1;
    /* Checked before anything is removed, so a failure leaves the resource as it was. */
    json_t *meta = json_object_get(resource, "meta");
    json_t *tags = json_is_object(meta) ? json_object_get(meta, "tag") : NULL;
    if ((meta != NULL && !json_is_object(meta)) || (tags != NULL && !json_is_array(tags)))
        return -1;
    if (summary == FHIR_SUMMARY_FALSE && nelements == 0)
        return 0;

    const char *key;
    json_t *value;
    void *tmp;
    json_object_foreach_safe(resource, tmp, key, value)
    {
        if (!keep_member(st, key, summary, elements, nelements))
            json_object_del(resource, key);
    }
    add_subsetted_tag(resource);
    return 0;
}
