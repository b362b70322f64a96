/*
 * fhirsched's own conformance resources: every embedded file parses and names itself, every extension of the
 * scheduling contract has a profile, the OperationDefinitions keep IHE's parameters, the router answers read-only,
 * and the CapabilityStatement lists the operations and every stored type.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cmocka.h>
#include <jansson.h>
#include "fhir/capability.h"
#include "fhir/conformance_res.h"
#include "fhir/types.h"
#include "util/str.h"

#ifndef FHIRSCHED_SOURCE_DIR
#define FHIRSCHED_SOURCE_DIR "."
#endif

#define IHE_OPERATION_BASE "https://profiles.ihe.net/ITI/Scheduling/OperationDefinition/"

/* The whole file at `relative` (NUL-terminated; *len without the NUL), or NULL when it is missing. */
static char *read_source_file(const char *relative, size_t *len)
{
    char *path = util_asprintf("%s/%s", FHIRSCHED_SOURCE_DIR, relative);
    FILE *fp = fopen(path, "rb");
    free(path);
    if (fp == NULL)
        return NULL;
    util_buf_t buf;
    util_buf_init(&buf);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) != 0)
        util_buf_append(&buf, chunk, n);
    fclose(fp);
    if (buf.base == NULL)
        util_buf_append(&buf, "", 0);
    if (len != NULL)
        *len = buf.len;
    return buf.base;
}

/* The embedded resource type/id parsed, or a failed test. */
static json_t *load(const char *type, const char *id)
{
    size_t len;
    const char *text = fhir_conformance_resource(type, id, &len);
    if (text == NULL)
        fail_msg("%s/%s is not embedded", type, id);
    json_error_t err;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (j == NULL)
        fail_msg("%s/%s: %s (line %d)", type, id, err.text, err.line);
    return j;
}

static const char *str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* ---- the embedded files ---- */

static void test_every_file_parses_and_names_itself(void **state)
{
    const fhir_conformance_file_t *f, *g;
    size_t count = 0;
    for (size_t i = 0; (f = fhir_conformance_at(i)) != NULL; ++i, ++count) {
        assert_true(fhir_conformance_type(f->type));
        assert_int_equal(strlen(f->json), f->len); /* no NUL inside */
        json_error_t err;
        json_t *j = json_loadb(f->json, f->len, JSON_REJECT_DUPLICATES, &err);
        if (j == NULL)
            fail_msg("%s-%s.json: %s (line %d)", f->type, f->id, err.text, err.line);
        assert_string_equal(str(j, "resourceType"), f->type);
        assert_string_equal(str(j, "id"), f->id);
        char *url = util_asprintf("%s/%s/%s", FHIR_CONFORMANCE_BASE, f->type, f->id);
        assert_string_equal(str(j, "url"), url);
        free(url);
        assert_string_equal(str(j, "status"), "active");
        assert_non_null(str(j, "name"));
        assert_non_null(str(j, "description"));
        json_decref(j);
        /* the binary carries the file as it is in the source tree (a stale build would differ) */
        char *rel = util_asprintf("fhir/profiles/%s-%s.json", f->type, f->id);
        size_t len;
        char *disk = read_source_file(rel, &len);
        if (disk == NULL)
            fail_msg("%s is missing", rel);
        assert_int_equal(len, f->len);
        assert_memory_equal(disk, f->json, len);
        free(disk);
        free(rel);
        /* one file per type and id */
        for (size_t k = i + 1; (g = fhir_conformance_at(k)) != NULL; ++k)
            assert_false(strcmp(f->type, g->type) == 0 && strcmp(f->id, g->id) == 0);
    }
    assert_int_equal(count, fhir_conformance_file_count);
    assert_true(count >= 17); /* 13 extensions, 1 CodeSystem, 3 OperationDefinitions */
}

/* Every file of ours in fhir/profiles (not the official ones, which start with an upper-case type name) is compiled in. */
static void test_every_file_in_profiles_is_embedded(void **state)
{
    static const char *const prefixes[] = {"CodeSystem-", "OperationDefinition-", "StructureDefinition-"};
    char *path = util_asprintf("%s/fhir/profiles", FHIRSCHED_SOURCE_DIR);
    DIR *dir = opendir(path);
    assert_non_null(dir);
    struct dirent *de;
    int seen = 0;
    while ((de = readdir(dir)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 5 || strcmp(de->d_name + n - 5, ".json") != 0)
            continue;
        for (size_t p = 0; p != sizeof(prefixes) / sizeof(prefixes[0]); ++p) {
            size_t plen = strlen(prefixes[p]);
            if (strncmp(de->d_name, prefixes[p], plen) != 0)
                continue;
            const char *id = de->d_name + plen;
            if (p == 2 && !(id[0] >= 'a' && id[0] <= 'z'))
                continue; /* StructureDefinition-Appointment.json and the like: official R4, not served */
            char *type = util_xstrndup(prefixes[p], plen - 1), *bare = util_xstrndup(id, strlen(id) - 5);
            size_t len;
            if (fhir_conformance_resource(type, bare, &len) == NULL)
                fail_msg("fhir/profiles/%s is not in CONFORMANCE_RESOURCES (CMakeLists.txt)", de->d_name);
            free(type);
            free(bare);
            ++seen;
        }
    }
    closedir(dir);
    free(path);
    assert_int_equal(seen, fhir_conformance_file_count);
}

/* ---- extensions ---- */

/* The differential element with `id`, or NULL. */
static json_t *diff_element(json_t *sd, const char *id)
{
    size_t i;
    json_t *el;
    json_array_foreach (json_object_get(json_object_get(sd, "differential"), "element"), i, el)
        if (strcmp(str(el, "id"), id) == 0)
            return el;
    return NULL;
}

/* The extension profile `tail` is an R4 Extension constraint used on `contexts` (", "-separated) with one value type. */
static void check_extension(const char *tail, const char *contexts, const char *value_type, bool repeats)
{
    json_t *sd = load("StructureDefinition", tail);
    assert_string_equal(str(sd, "fhirVersion"), "4.0.1");
    assert_string_equal(str(sd, "kind"), "complex-type");
    assert_string_equal(str(sd, "derivation"), "constraint");
    assert_string_equal(str(sd, "type"), "Extension");
    assert_string_equal(str(sd, "baseDefinition"), "http://hl7.org/fhir/StructureDefinition/Extension");
    assert_true(json_is_false(json_object_get(sd, "abstract")));
    /* context: exactly the resources the contract names, as element contexts (sdf-5) */
    json_t *ctx = json_object_get(sd, "context");
    char *copy = util_xstrdup(contexts), *save = NULL;
    size_t n = 0;
    for (char *c = strtok_r(copy, ", ", &save); c != NULL; c = strtok_r(NULL, ", ", &save), ++n) {
        json_t *entry = json_array_get(ctx, n);
        if (entry == NULL)
            fail_msg("%s: no context %s", tail, c);
        assert_string_equal(str(entry, "type"), "element");
        assert_string_equal(str(entry, "expression"), c);
    }
    free(copy);
    assert_int_equal(json_array_size(ctx), n);
    /* differential: no sub-extensions, fixed url, one value type, required value */
    json_t *root = diff_element(sd, "Extension"), *sub = diff_element(sd, "Extension.extension");
    json_t *url = diff_element(sd, "Extension.url"), *value = diff_element(sd, "Extension.value[x]");
    assert_non_null(root);
    assert_string_equal(str(root, "max"), repeats ? "*" : "1");
    assert_non_null(str(root, "definition"));
    assert_non_null(sub);
    assert_string_equal(str(sub, "max"), "0");
    assert_non_null(url);
    assert_string_equal(str(url, "fixedUri"), str(sd, "url"));
    assert_non_null(value);
    assert_int_equal(json_integer_value(json_object_get(value, "min")), 1);
    json_t *types = json_object_get(value, "type");
    assert_int_equal(json_array_size(types), 1);
    if (strcasecmp(str(json_array_get(types, 0), "code"), value_type) != 0)
        fail_msg("%s: value type %s, the contract says %s", tail, str(json_array_get(types, 0), "code"), value_type);
    json_decref(sd);
}

/* The extensions table of the scheduling contract, docs/scheduling.md: "| `tail` | on | value | meaning |". */
static void test_every_contract_extension_has_a_profile(void **state)
{
    char *doc = read_source_file("docs/scheduling.md", NULL);
    if (doc == NULL)
        fail_msg("docs/scheduling.md is missing");
    const char *section = strstr(doc, "## Extensions");
    assert_non_null(section);
    const char *end = strstr(section + 3, "\n## ");
    if (end == NULL)
        end = section + strlen(section);
    size_t found = 0;
    for (const char *line = section; line != NULL && line < end; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        if (strncmp(line, "| `", 3) != 0)
            continue;
        char tail[64], on[128], value[128];
        if (sscanf(line, "| `%63[a-z-]` | %127[^|]| %127[^|]|", tail, on, value) != 3)
            fail_msg("cannot read the extension row %.60s", line);
        for (char *c = on + strlen(on); c > on && c[-1] == ' '; *--c = '\0')
            ;
        /* "valueDuration (UCUM s/min/h/d)", "valueCodeableConcept (0..*)", "valueInstant" */
        char type[64];
        assert_int_equal(sscanf(value, "value%63[A-Za-z]", type), 1);
        check_extension(tail, on, type, strstr(value, "0..*") != NULL);
        ++found;
    }
    assert_true(found >= 13);
    /* and no profile the contract does not list */
    const fhir_conformance_file_t *f;
    size_t profiles = 0;
    for (size_t i = 0; (f = fhir_conformance_at(i)) != NULL; ++i)
        profiles += strcmp(f->type, "StructureDefinition") == 0;
    assert_int_equal(profiles, found);
    free(doc);
}

/* Every fhirsched extension url and fhirsched code system in `node` is ours and known. */
static void check_demo_node(json_t *node, int *extensions, int *codes)
{
    static const char ext_base[] = FHIR_CONFORMANCE_BASE "/StructureDefinition/", cs_base[] = FHIR_CONFORMANCE_BASE "/CodeSystem/";
    size_t i;
    const char *key;
    json_t *child;
    if (json_is_array(node)) {
        json_array_foreach (node, i, child)
            check_demo_node(child, extensions, codes);
        return;
    }
    if (!json_is_object(node))
        return;
    const char *url = str(node, "url"), *system = str(node, "system"), *code = str(node, "code");
    if (url != NULL && strncmp(url, ext_base, sizeof(ext_base) - 1) == 0 && json_object_get(node, "resourceType") == NULL) {
        json_decref(load("StructureDefinition", url + sizeof(ext_base) - 1));
        ++*extensions;
    }
    if (system != NULL && code != NULL && strncmp(system, cs_base, sizeof(cs_base) - 1) == 0) {
        json_t *cs = load("CodeSystem", system + sizeof(cs_base) - 1), *concept;
        bool known = false;
        json_array_foreach (json_object_get(cs, "concept"), i, concept)
            known |= strcmp(str(concept, "code"), code) == 0;
        if (!known)
            fail_msg("%s|%s is not a code of the CodeSystem", system, code);
        json_decref(cs);
        ++*codes;
    }
    json_object_foreach (node, key, child)
        check_demo_node(child, extensions, codes);
}

static void test_demo_uses_known_definitions(void **state)
{
    size_t len;
    char *text = read_source_file("demo/clinic-bundle.json", &len);
    assert_non_null(text);
    json_t *bundle = json_loadb(text, len, 0, NULL);
    assert_non_null(bundle);
    int extensions = 0, codes = 0;
    check_demo_node(bundle, &extensions, &codes);
    assert_true(extensions > 0);
    assert_true(codes > 0);
    json_decref(bundle);
    free(text);
}

static void test_room_type_code_system(void **state)
{
    json_t *cs = load("CodeSystem", "room-type"), *concept;
    static const char *const expected[] = {"consultation-room", "ultrasound-room", "treatment-room"};
    size_t i;
    assert_string_equal(str(cs, "content"), "complete");
    assert_true(json_is_true(json_object_get(cs, "caseSensitive")));
    assert_int_equal(json_integer_value(json_object_get(cs, "count")), json_array_size(json_object_get(cs, "concept")));
    for (size_t k = 0; k != sizeof(expected) / sizeof(expected[0]); ++k) {
        bool found = false;
        json_array_foreach (json_object_get(cs, "concept"), i, concept)
            found |= strcmp(str(concept, "code"), expected[k]) == 0 && str(concept, "display") != NULL;
        if (!found)
            fail_msg("room-type has no code %s", expected[k]);
    }
    json_decref(cs);
}

/* ---- OperationDefinitions ---- */

/* The parameter `name` of an OperationDefinition, or NULL. */
static json_t *parameter(json_t *od, const char *name)
{
    size_t i;
    json_t *p;
    json_array_foreach (json_object_get(od, "parameter"), i, p)
        if (strcmp(str(p, "name"), name) == 0)
            return p;
    return NULL;
}

/* Every <parameter><name value="..."> of the IHE XML source is a parameter of ours with the same use, min, max, type. */
static void check_ihe_parameters(json_t *od, const char *code)
{
    char *rel = util_asprintf("conformance/ihe-iti-scheduling/operationdefinition-appointment-%s.xml", code);
    char *xml = read_source_file(rel, NULL);
    if (xml == NULL)
        fail_msg("%s is missing", rel);
    int count = 0;
    for (const char *p = strstr(xml, "<parameter>"); p != NULL; p = strstr(p + 1, "<parameter>"), ++count) {
        const char *close = strstr(p, "</parameter>");
        assert_non_null(close);
        char field[5][256];
        static const char *const tags[] = {"<name value=\"", "<use value=\"", "<min value=\"", "<max value=\"", "<type value=\""};
        for (int t = 0; t != 5; ++t) {
            const char *v = strstr(p, tags[t]);
            assert_true(v != NULL && v < close);
            v += strlen(tags[t]);
            const char *q = strchr(v, '"');
            assert_true(q - v < 256);
            memcpy(field[t], v, q - v);
            field[t][q - v] = '\0';
        }
        json_t *ours = parameter(od, field[0]);
        if (ours == NULL)
            fail_msg("$%s: IHE parameter %s is missing", code, field[0]);
        assert_string_equal(str(ours, "use"), field[1]);
        assert_int_equal(json_integer_value(json_object_get(ours, "min")), atoi(field[2]));
        assert_string_equal(str(ours, "max"), field[3]);
        assert_string_equal(str(ours, "type"), field[4]);
    }
    assert_true(count >= 2);
    assert_int_equal(json_array_size(json_object_get(od, "parameter")), count + (strcmp(code, "hold") != 0)); /* + ours */
    free(xml);
    free(rel);
}

static void check_operation(const char *code, bool affects_state, const char *extra, const char *extra_type)
{
    char *id = util_asprintf("appointment-%s", code);
    json_t *od = load("OperationDefinition", id);
    assert_string_equal(str(od, "kind"), "operation");
    assert_string_equal(str(od, "code"), code);
    char *base = util_asprintf(IHE_OPERATION_BASE "%s", id);
    assert_string_equal(str(od, "base"), base);
    free(base);
    assert_int_equal(json_array_size(json_object_get(od, "resource")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(od, "resource"), 0)), "Appointment");
    assert_true(json_is_false(json_object_get(od, "system")));
    assert_true(json_is_true(json_object_get(od, "type")));
    assert_true(json_is_false(json_object_get(od, "instance")));
    assert_true(json_is_boolean(json_object_get(od, "affectsState")));
    assert_int_equal(json_is_true(json_object_get(od, "affectsState")), affects_state);
    if (extra != NULL) {
        json_t *p = parameter(od, extra);
        if (p == NULL)
            fail_msg("$%s has no parameter %s", code, extra);
        assert_string_equal(str(p, "use"), "in");
        assert_string_equal(str(p, "type"), extra_type);
        assert_string_equal(str(p, "max"), "1");
    }
    /* R4 invariants on every parameter */
    size_t i;
    json_t *p;
    json_array_foreach (json_object_get(od, "parameter"), i, p) {
        const char *type = str(p, "type");
        assert_non_null(type); /* opd-1: no parts here */
        if (json_object_get(p, "searchType") != NULL)
            assert_string_equal(type, "string"); /* opd-2 */
        if (json_object_get(p, "targetProfile") != NULL)
            assert_true(strcmp(type, "Reference") == 0 || strcmp(type, "canonical") == 0); /* opd-3 */
        assert_non_null(str(p, "documentation"));
    }
    check_ihe_parameters(od, code);
    json_decref(od);
    free(id);
}

static void test_operation_definitions(void **state)
{
    check_operation("find", false, "_count", "integer");
    check_operation("hold", true, NULL, NULL);
    check_operation("book", true, "override-rules", "boolean");
}

/* ---- routing ---- */

static int route(const char *method, const char *path, const char **body, size_t *len, const char *code)
{
    fhir_outcome_t oo;
    fhir_outcome_init(&oo);
    bool mine = fhir_conformance_route(method, path, strlen(path), body, len, &oo);
    int status = !mine ? 0 : *body != NULL ? 200 : oo.status;
    if (code != NULL) {
        assert_int_equal(oo.count, 1);
        assert_string_equal(oo.issues[0].code, code);
    } else {
        assert_int_equal(oo.count, 0);
    }
    fhir_outcome_dispose(&oo);
    return status;
}

static void test_route(void **state)
{
    const char *body;
    size_t len, len2;
    assert_int_equal(route("GET", "OperationDefinition/appointment-find", &body, &len, NULL), 200);
    assert_ptr_equal(body, fhir_conformance_resource("OperationDefinition", "appointment-find", &len2));
    assert_int_equal(len, len2);
    assert_int_equal(route("HEAD", "StructureDefinition/hold-expires", &body, &len, NULL), 200);
    assert_int_equal(route("GET", "CodeSystem/room-type", &body, &len, NULL), 200);
    /* unknown ids, other types' ids, other interactions */
    assert_int_equal(route("GET", "CodeSystem/appointment-find", &body, &len, "not-found"), 404);
    assert_int_equal(route("GET", "StructureDefinition/Appointment", &body, &len, "not-found"), 404);
    assert_int_equal(route("GET", "StructureDefinition/hold-expire", &body, &len, "not-found"), 404);
    assert_int_equal(route("GET", "StructureDefinition/hold-expiress", &body, &len, "not-found"), 404);
    assert_int_equal(route("GET", "StructureDefinition", &body, &len, "not-supported"), 404);
    assert_int_equal(route("GET", "StructureDefinition/", &body, &len, "not-supported"), 404);
    assert_int_equal(route("GET", "StructureDefinition/hold-expires/_history/1", &body, &len, "not-supported"), 404);
    assert_int_equal(route("GET", "OperationDefinition/$validate", &body, &len, "not-supported"), 404);
    assert_int_equal(route("GET", "OperationDefinition/_history", &body, &len, "not-supported"), 404);
    /* writes */
    assert_int_equal(route("PUT", "CodeSystem/room-type", &body, &len, "not-supported"), 405);
    assert_int_equal(route("DELETE", "CodeSystem/room-type", &body, &len, "not-supported"), 405);
    assert_int_equal(route("PATCH", "StructureDefinition/hold-expires", &body, &len, "not-supported"), 405);
    assert_int_equal(route("POST", "OperationDefinition", &body, &len, "not-supported"), 405);
    /* not ours */
    assert_int_equal(route("GET", "Patient/x", &body, &len, NULL), 0);
    assert_int_equal(route("GET", "StructureDefinitions/x", &body, &len, NULL), 0);
    assert_int_equal(route("GET", "Code", &body, &len, NULL), 0);
    assert_int_equal(route("GET", "", &body, &len, NULL), 0);
    assert_int_equal(route("POST", "Appointment/$find", &body, &len, NULL), 0);
    /* the plain lookups */
    assert_true(fhir_conformance_type("OperationDefinition"));
    assert_false(fhir_conformance_type("Patient"));
    assert_false(fhir_conformance_type(NULL));
    assert_null(fhir_conformance_resource("OperationDefinition", "nope", &len));
    assert_null(fhir_conformance_resource("ValueSet", "room-type", &len));
    assert_null(fhir_conformance_at(fhir_conformance_file_count));
}

/* ---- CapabilityStatement ---- */

static void test_capability_lists_operations_and_types(void **state)
{
    fhir_capability_init("http://example.org/fhir", "0.0.0");
    size_t len;
    const char *text = fhir_capability_json(&len);
    json_t *cs = json_loadb(text, len, 0, NULL);
    assert_non_null(cs);
    json_t *resources = json_object_get(json_array_get(json_object_get(cs, "rest"), 0), "resource"), *r;
    assert_int_equal(json_array_size(resources), FHIR_RESOURCE_TYPE_COUNT);
    size_t i, k;
    bool device = false;
    json_array_foreach (resources, i, r) {
        const char *type = str(r, "type");
        assert_int_not_equal(fhir_resource_type_index(type, strlen(type)), -1);
        json_t *ops = json_object_get(r, "operation"), *op;
        if (strcmp(type, "Device") == 0) {
            device = true;
            assert_true(json_array_size(json_object_get(r, "searchParam")) > 5);
        }
        if (strcmp(type, "Appointment") != 0) {
            assert_null(ops);
            continue;
        }
        static const char *const codes[] = {"find", "hold", "book"};
        assert_int_equal(json_array_size(ops), 3);
        for (size_t c = 0; c != 3; ++c) {
            bool found = false;
            json_array_foreach (ops, k, op) {
                if (strcmp(str(op, "name"), codes[c]) != 0)
                    continue;
                found = true;
                char *url = util_asprintf(FHIR_CONFORMANCE_BASE "/OperationDefinition/appointment-%s", codes[c]);
                assert_string_equal(str(op, "definition"), url);
                free(url);
            }
            if (!found)
                fail_msg("Appointment has no operation %s", codes[c]);
        }
    }
    assert_true(device);
    json_decref(cs);
    fhir_capability_dispose();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_file_parses_and_names_itself),
        cmocka_unit_test(test_every_file_in_profiles_is_embedded),
        cmocka_unit_test(test_every_contract_extension_has_a_profile),
        cmocka_unit_test(test_demo_uses_known_definitions),
        cmocka_unit_test(test_room_type_code_system),
        cmocka_unit_test(test_operation_definitions),
        cmocka_unit_test(test_route),
        cmocka_unit_test(test_capability_lists_operations_and_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
