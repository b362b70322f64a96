// IHE ITI Scheduling (ITI-115 $find, ITI-116 $hold, ITI-117 $book) against the demo clinic: the inputs are built
// from the IHE OperationDefinitions themselves (every `in` parameter, typed as the definition says, with values
// adapted to the demo ids) and from the IHE example resources (example-patient.json as patient-resource,
// example-appointment.json as appointment-resource, with the demo's practitioner, clinic, patient and a time the
// clinic is open). The answers are checked against the differentials of the IHE profiles ihe-sched-avail-bundle and
// ihe-sched-appt (cardinalities, fixed codes, the entry slices by resource type and their search.mode), against the
// profiles' claims in meta.profile, and against the R4 JSON schema (assertValidFhir).
//
// Files: conformance/ihe-iti-scheduling/ (IHE/ITI.Scheduling @ 979d4bcd, see conformance/SOURCES.txt).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SOURCE_DIR, assertValidFhir, expectStatus, fhir, startServer } from '../lib/harness.mjs';

const DIR = path.join(SOURCE_DIR, 'conformance', 'ihe-iti-scheduling');
const HORIZON_END = '2027-12-31';
const MIN = 60_000;

// ---------------------------------------------------------------------------
// A small reader for FHIR XML (elements with value attributes; comments dropped)

function parseXml(text) {
    const src = text.replace(/<\?xml[\s\S]*?\?>/, '').replace(/<!--[\s\S]*?-->/g, '');
    const root = { name: '#root', attrs: {}, children: [] };
    const stack = [root];
    const tag = /<(\/?)([A-Za-z][\w:.-]*)((?:\s+[\w:.-]+\s*=\s*"[^"]*")*)\s*(\/?)>/g;
    let m;
    while ((m = tag.exec(src))) {
        const [, closing, name, attrText, selfClosing] = m;
        if (closing) {
            const top = stack.pop();
            assert.equal(top.name, name, `XML: </${name}> closes <${top.name}>`);
            continue;
        }
        const attrs = {};
        for (const a of attrText.matchAll(/([\w:.-]+)\s*=\s*"([^"]*)"/g)) attrs[a[1]] = a[2];
        const node = { name, attrs, children: [] };
        stack[stack.length - 1].children.push(node);
        if (!selfClosing) stack.push(node);
    }
    assert.equal(stack.length, 1, 'XML: unclosed elements');
    return root.children[0];
}
const kids = (node, name) => node.children.filter((c) => c.name === name);
const val = (node, name) => kids(node, name)[0]?.attrs.value;

function loadOperation(file) {
    const od = parseXml(fs.readFileSync(path.join(DIR, file), 'utf8'));
    assert.equal(od.name, 'OperationDefinition');
    return {
        code: val(od, 'code'),
        url: val(od, 'url'),
        params: kids(od, 'parameter').map((p) => ({
            name: val(p, 'name'),
            use: val(p, 'use'),
            min: Number(val(p, 'min')),
            max: val(p, 'max'),
            type: val(p, 'type'),
            searchType: val(p, 'searchType'),
            targetProfile: kids(p, 'targetProfile').map((t) => t.attrs.value),
        })),
    };
}

function loadProfile(file) {
    const sd = parseXml(fs.readFileSync(path.join(DIR, file), 'utf8'));
    assert.equal(sd.name, 'StructureDefinition');
    const diff = kids(sd, 'differential')[0];
    return {
        url: val(sd, 'url'),
        type: val(sd, 'type'),
        elements: kids(diff, 'element').map((e) => ({
            id: e.attrs.id,
            path: val(e, 'path'),
            sliceName: val(e, 'sliceName'),
            min: val(e, 'min') === undefined ? undefined : Number(val(e, 'min')),
            max: val(e, 'max'),
            fixedCode: val(e, 'fixedCode'),
            types: kids(e, 'type').map((t) => ({ code: val(t, 'code'), profiles: kids(t, 'profile').map((p) => p.attrs.value) })),
        })),
    };
}

// ---------------------------------------------------------------------------
// Checking a resource against a profile's differential

/** Values at a dotted path below `node` (arrays flattened). */
function valuesAt(node, segs) {
    let cur = [node];
    for (const s of segs) {
        const next = [];
        for (const c of cur) {
            const v = c?.[s];
            if (v === undefined || v === null) continue;
            if (Array.isArray(v)) next.push(...v);
            else next.push(v);
        }
        cur = next;
    }
    return cur;
}

/** Cardinality and fixed-code checks of `elements` (paths relative to `base`) on `node`; returns problems. */
function checkElements(node, elements, base, where) {
    const problems = [];
    for (const e of elements) {
        if (!e.path.startsWith(`${base}.`)) continue;
        const segs = e.path.slice(base.length + 1).split('.');
        const parents = valuesAt(node, segs.slice(0, -1));
        const last = segs[segs.length - 1];
        for (const [i, parent] of parents.entries()) {
            let children = valuesAt(parent, [last]);
            if (e.sliceName && last === 'extension') {
                const url = e.types.flatMap((t) => t.profiles)[0];
                children = children.filter((x) => x.url === url);
            }
            const what = `${where}: ${e.id}${parents.length > 1 ? ` [${i}]` : ''}`;
            if (e.min !== undefined && children.length < e.min) problems.push(`${what}: ${children.length} < min ${e.min}`);
            if (e.max !== undefined && e.max !== '*' && children.length > Number(e.max)) {
                problems.push(`${what}: ${children.length} > max ${e.max}`);
            }
            if (e.fixedCode !== undefined) {
                for (const c of children) if (c !== e.fixedCode) problems.push(`${what}: ${JSON.stringify(c)} is not the fixed code ${e.fixedCode}`);
            }
        }
    }
    return problems;
}

/**
 * Problems of `resource` against `profile`: plain elements by path; slices of Bundle.entry (discriminated by the type
 * of entry.resource) get their own sub-element constraints applied to the entries of that type, and the entry
 * resources are checked against the profile named in the slice when it is one of `profiles`.
 */
function profileProblems(profile, resource, profiles, where = profile.url.split('/').pop()) {
    const problems = [];
    if (resource.resourceType !== profile.type) return [`${where}: a ${resource.resourceType}, not a ${profile.type}`];
    const inSlice = (e) => profile.elements.some((s) => s.sliceName && s.path === 'Bundle.entry' && e.id.startsWith(`${s.id}.`));
    const plain = profile.elements.filter((e) => !inSlice(e) && !(e.sliceName && e.path === 'Bundle.entry'));
    problems.push(...checkElements(resource, plain, profile.type, where));
    for (const slice of profile.elements.filter((e) => e.sliceName && e.path === 'Bundle.entry')) {
        const own = profile.elements.filter((e) => e.id.startsWith(`${slice.id}.`));
        const resourceEl = own.find((e) => e.id === `${slice.id}.resource`);
        const rtype = resourceEl?.types[0]?.code;
        assert.ok(rtype, `slice ${slice.id} is discriminated by its resource type`);
        const entries = (resource.entry || []).filter((x) => x.resource?.resourceType === rtype);
        const sub = own.map((e) => ({ ...e, path: e.path.replace(/^Bundle\.entry\./, 'Entry.') }));
        for (const [i, entry] of entries.entries()) {
            problems.push(...checkElements(entry, sub, 'Entry', `${where}: entry ${slice.sliceName} [${i}]`));
            for (const url of resourceEl.types[0].profiles) {
                if (profiles[url]) problems.push(...profileProblems(profiles[url], entry.resource, profiles, `${where} > ${rtype}[${i}]`));
            }
        }
    }
    return problems;
}

function assertConforms(profile, resource, profiles) {
    const problems = profileProblems(profile, resource, profiles);
    assert.deepEqual(problems, [], `${resource.resourceType} does not conform to ${profile.url}:\n  ${problems.join('\n  ')}`);
    assert.ok(resource.meta?.profile?.includes(profile.url), `${resource.resourceType}.meta.profile claims ${profile.url}`);
    assertValidFhir(resource, `${resource.resourceType} answer`);
    for (const e of resource.entry || []) assertValidFhir(e.resource, `entry ${e.resource?.resourceType}/${e.resource?.id}`);
}

// ---------------------------------------------------------------------------
// Dates (Amsterdam) and demo values

const TZ = 'Europe/Amsterdam';
const ymd = new Intl.DateTimeFormat('en-CA', { timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit' });
const offsetName = new Intl.DateTimeFormat('en-US', { timeZone: TZ, timeZoneName: 'longOffset' });
function addDays(date, n) {
    const [y, m, d] = date.split('-').map(Number);
    return new Date(Date.UTC(y, m - 1, d + n)).toISOString().slice(0, 10);
}
const weekdayOf = (date) => (new Date(`${date}T00:00:00Z`).getUTCDay() + 6) % 7;
/** Local `date` at `hhmm` in Amsterdam as a dateTime with its offset ("2026-11-30T09:00:00+01:00"). */
function localDateTime(date, hhmm) {
    for (const off of ['+01:00', '+02:00']) {
        const s = `${date}T${hhmm}:00${off}`;
        const name = offsetName.formatToParts(new Date(s)).find((p) => p.type === 'timeZoneName').value;
        if (name === `GMT${off}` && ymd.format(new Date(s)) === date) return s;
    }
    throw new Error(`no ${date} ${hhmm} in ${TZ}`);
}
const TODAY = ymd.format(new Date());
let MONDAY = addDays(TODAY, 2);
while (weekdayOf(MONDAY) !== 0) MONDAY = addDays(MONDAY, 1);
// Keep away from Dr Mila Vos's leave (not needed here, but the demo's south clinic is then short of doctors).
if (MONDAY >= '2026-12-14' && MONDAY < '2027-01-01') MONDAY = '2027-01-04';
const SKIP = addDays(MONDAY, 7) > HORIZON_END ? `the demo planning horizon ends ${HORIZON_END}` : false;
const START = localDateTime(MONDAY, '00:00');
const END = localDateTime(addDays(MONDAY, 1), '00:00');

/** A value for each IHE $find input, adapted to the demo clinic (by parameter name). */
const DEMO_VALUES = {
    start: START,
    end: END,
    specialty: 'http://snomed.info/sct|394814009',
    'visit-type': 'http://terminology.hl7.org/CodeSystem/service-type|124',
    practitioner: 'Practitioner/dr-lucas-visser',
    organization: 'Organization/org-noorderpark',
    'location-string': 'Amsterdam',
    'location-reference': 'Location/clinic-north',
    'patient-reference': 'Patient/pat-sanne-bakker',
    'patient-resource': 'example-patient.json',
    reason: 'http://snomed.info/sct|271807003',
    'referral-identifier': { system: 'http://fhirsched.org/fhir/referral', value: 'REF-2026-0001' },
    timing: { repeat: { dayOfWeek: ['mon'], when: ['MORN', 'AFT'] } },
    'insurance-reference': 'InsurancePlan/plan-demo',
};

function example(file) {
    return JSON.parse(fs.readFileSync(path.join(DIR, file), 'utf8'));
}

/** One Parameters.parameter for an OperationDefinition parameter, typed as the definition says. */
function parameterFor(def, value) {
    switch (def.type) {
        case 'dateTime':
            return { name: def.name, valueDateTime: value };
        case 'string':
            return { name: def.name, valueString: value }; // tokens (searchType token) are "system|code" strings
        case 'Reference':
            return { name: def.name, valueReference: { reference: value } };
        case 'Identifier':
            return { name: def.name, valueIdentifier: value };
        case 'Timing':
            return { name: def.name, valueTiming: value };
        case 'Patient':
            return { name: def.name, resource: example(value) };
        default:
            throw new Error(`no builder for ${def.name} of type ${def.type}`);
    }
}

/** GET form of a parameter (only the simple types). */
function getValue(def, value) {
    if (def.type === 'Identifier') return `${value.system}|${value.value}`;
    if (['dateTime', 'string', 'Reference'].includes(def.type)) return value;
    return undefined;
}

// ---------------------------------------------------------------------------

const FIND = loadOperation('operationdefinition-appointment-find.xml');
const HOLD = loadOperation('operationdefinition-appointment-hold.xml');
const BOOK = loadOperation('operationdefinition-appointment-book.xml');
const APPT = loadProfile('StructureDefinition-iti-sched-appt.xml');
const AVAIL = loadProfile('StructureDefinition-iti-sched-bundle.xml');
const PROFILES = { [APPT.url]: APPT, [AVAIL.url]: AVAIL };

let server;
before(async () => {
    if (SKIP) return;
    server = await startServer();
    const bundle = fs.readFileSync(path.join(SOURCE_DIR, 'demo', 'clinic-bundle.json'), 'utf8');
    expectStatus(await fhir(server, 'POST', '', { body: bundle }), 200);
});
after(async () => {
    await server?.stop();
});

describe('the IHE definitions and the checker', () => {
    it('the three OperationDefinitions and two profiles are there', () => {
        assert.equal(FIND.code, 'find');
        assert.equal(HOLD.code, 'hold');
        assert.equal(BOOK.code, 'book');
        assert.equal(APPT.url, 'https://profiles.ihe.net/ITI/Scheduling/StructureDefinition/ihe-sched-appt');
        assert.equal(AVAIL.url, 'https://profiles.ihe.net/ITI/Scheduling/StructureDefinition/ihe-sched-avail-bundle');
        for (const op of [FIND, HOLD, BOOK]) {
            const out = op.params.find((p) => p.use === 'out');
            assert.equal(out?.type, 'Bundle');
            assert.ok(out.targetProfile.includes(AVAIL.url), `${op.code} returns an ${AVAIL.url}`);
        }
    });

    it('every $find input of ITI-115 has a demo value', () => {
        const inputs = FIND.params.filter((p) => p.use === 'in').map((p) => p.name);
        assert.ok(inputs.length >= 14, `ITI-115 inputs: ${inputs}`);
        assert.deepEqual(inputs.filter((n) => !(n in DEMO_VALUES)), [], 'inputs without a demo value');
    });

    it('the checker passes the IHE example Bundle and Appointment and catches broken copies', () => {
        const bundle = example('example-iti-scheduling-bundle.json');
        assert.deepEqual(profileProblems(AVAIL, bundle, PROFILES), []);
        assert.deepEqual(profileProblems(APPT, example('example-appointment.json'), PROFILES), []);
        const broken = structuredClone(bundle);
        broken.type = 'collection';
        delete broken.total;
        broken.entry[0].search.mode = 'include';
        broken.entry[1].resource.requestedPeriod.push({ start: '2017-07-15T20:00:00Z' });
        delete broken.entry[2].resource.participant[0].actor;
        broken.entry[3].search.mode = 'match';
        const problems = profileProblems(AVAIL, broken, PROFILES).join('\n');
        for (const what of ['Bundle.type', 'Bundle.total', 'search.mode', 'requestedPeriod', 'participant:actor']) {
            assert.ok(problems.includes(what), `the checker reports ${what}:\n${problems}`);
        }
        assert.deepEqual(profileProblems(AVAIL, { resourceType: 'Bundle', type: 'searchset', total: 0 }, PROFILES), [
            'ihe-sched-avail-bundle: Bundle.entry:entry-slices: 0 < min 1',
        ]);
    });
});

describe('ITI-115 $find', { skip: SKIP }, () => {
    const inputs = () => FIND.params.filter((p) => p.use === 'in');
    const build = (skip = []) => ({
        resourceType: 'Parameters',
        parameter: [...inputs().filter((d) => !skip.includes(d.name)).map((d) => parameterFor(d, DEMO_VALUES[d.name])), { name: '_count', valueInteger: 10 }],
    });

    it('every IHE input at once (POST Parameters): a conforming Bundle', async () => {
        const params = build();
        assertValidFhir(params, 'the $find Parameters');
        const res = await fhir(server, 'POST', '/Appointment/$find', { body: params });
        expectStatus(res, 200);
        assertConforms(AVAIL, res.json, PROFILES);
    });

    it('every input but organization and insurance-reference: proposals conforming to ihe-sched-appt', async () => {
        // The demo has no Organization (so a filter on one finds nothing); insurance-reference has its own test.
        const res = await fhir(server, 'POST', '/Appointment/$find', { body: build(['organization', 'insurance-reference']) });
        expectStatus(res, 200);
        assertConforms(AVAIL, res.json, PROFILES);
        const appts = res.json.entry.filter((e) => e.resource.resourceType === 'Appointment').map((e) => e.resource);
        assert.ok(appts.length > 0, 'proposals');
        assert.ok(appts.length <= 10, '_count');
        for (const a of appts) {
            assertConforms(APPT, a, PROFILES);
            assert.equal(a.status, 'proposed');
            assert.ok(a.participant.some((p) => p.actor.reference === 'Practitioner/dr-lucas-visser'));
            assert.ok(a.participant.some((p) => p.actor.reference === 'Patient/pat-sanne-bakker'));
        }
    });

    it('requestedPeriod of a proposal is the window asked for', async () => {
        const res = await fhir(server, 'POST', '/Appointment/$find', { body: build(['organization', 'insurance-reference']) });
        expectStatus(res, 200);
        for (const e of res.json.entry.filter((x) => x.resource.resourceType === 'Appointment')) {
            assert.equal(Date.parse(e.resource.requestedPeriod[0].start), Date.parse(START), 'requestedPeriod.start');
            assert.equal(Date.parse(e.resource.requestedPeriod[0].end), Date.parse(END), 'requestedPeriod.end');
        }
    });

    it('insurance-reference to the target the OperationDefinition names (InsurancePlan) is accepted', async () => {
        const def = FIND.params.find((p) => p.name === 'insurance-reference');
        assert.deepEqual(def.targetProfile, ['http://hl7.org/fhir/StructureDefinition/InsurancePlan']);
        const params = {
            resourceType: 'Parameters',
            parameter: [
                { name: 'start', valueDateTime: START },
                { name: 'end', valueDateTime: END },
                parameterFor(def, DEMO_VALUES['insurance-reference']),
            ],
        };
        const res = await fhir(server, 'POST', '/Appointment/$find', { body: params });
        expectStatus(res, 200);
        assertConforms(AVAIL, res.json, PROFILES);
    });

    it('the GET form of the simple inputs: a conforming Bundle', async () => {
        const q = inputs()
            .filter((d) => !['organization', 'insurance-reference'].includes(d.name))
            .map((d) => [d.name, getValue(d, DEMO_VALUES[d.name])])
            .filter(([, v]) => v !== undefined)
            .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
            .join('&');
        const res = await fhir(server, 'GET', `/Appointment/$find?${q}&_count=5`);
        expectStatus(res, 200);
        assertConforms(AVAIL, res.json, PROFILES);
        const appts = res.json.entry.filter((e) => e.resource.resourceType === 'Appointment');
        assert.ok(appts.length > 0 && appts.length <= 5);
        for (const e of appts) assertConforms(APPT, e.resource, PROFILES);
    });

    it('nothing available: still a conforming Bundle (total 0, an OperationOutcome entry)', async () => {
        const sunday = addDays(MONDAY, 6);
        const params = {
            resourceType: 'Parameters',
            parameter: [
                { name: 'start', valueDateTime: localDateTime(sunday, '00:00') },
                { name: 'end', valueDateTime: localDateTime(addDays(sunday, 1), '00:00') },
                { name: 'practitioner', valueReference: { reference: 'Practitioner/dr-eva-de-jong' } },
            ],
        };
        const res = await fhir(server, 'POST', '/Appointment/$find', { body: params });
        expectStatus(res, 200);
        assertConforms(AVAIL, res.json, PROFILES);
        assert.equal(res.json.total, 0);
        assert.equal(res.json.entry[0].resource.resourceType, 'OperationOutcome');
    });
});

describe('ITI-116 $hold and ITI-117 $book', { skip: SKIP }, () => {
    async function propose(practitioner, patient) {
        const parameter = [
            { name: 'start', valueDateTime: START },
            { name: 'end', valueDateTime: END },
            { name: 'practitioner', valueReference: { reference: practitioner } },
            { name: 'visit-type', valueString: DEMO_VALUES['visit-type'] },
            { name: '_count', valueInteger: 200 },
        ];
        if (patient) parameter.push({ name: 'patient-reference', valueReference: { reference: patient } });
        const res = await fhir(server, 'POST', '/Appointment/$find', { body: { resourceType: 'Parameters', parameter } });
        expectStatus(res, 200);
        return res.json.entry.filter((e) => e.resource.resourceType === 'Appointment').map((e) => e.resource);
    }
    /** Parameters for an operation, checked against its OperationDefinition: known names, cardinality, types. */
    function opParameters(op, parameter) {
        const params = { resourceType: 'Parameters', parameter };
        assertValidFhir(params, `the $${op.code} Parameters`);
        for (const def of op.params.filter((p) => p.use === 'in')) {
            const n = parameter.filter((p) => p.name === def.name).length;
            assert.ok(n >= def.min && (def.max === '*' || n <= Number(def.max)), `$${op.code} ${def.name}: ${n} of ${def.min}..${def.max}`);
        }
        for (const p of parameter) {
            const def = op.params.find((d) => d.name === p.name && d.use === 'in');
            assert.ok(def, `$${op.code} has an input ${p.name}`);
            const key = Object.keys(p).find((k) => k.startsWith('value') || k === 'resource');
            const type = key === 'resource' ? p.resource.resourceType : key.slice(5);
            // valueString for a `string`, valueReference for a `Reference`, a Patient resource for a `Patient`
            assert.equal(type.toLowerCase(), def.type.toLowerCase(), `$${op.code} ${p.name} is a ${def.type}`);
        }
        return params;
    }

    it('$hold of a proposal, then $book with the IHE example patient: conforming Bundles', async () => {
        const proposals = await propose('Practitioner/dr-eva-de-jong');
        const p = proposals[3];
        assert.ok(p, 'proposals for Dr de Jong');
        const held = await fhir(server, 'POST', '/Appointment/$hold', {
            body: opParameters(HOLD, [{ name: 'appointment-reference', valueReference: { reference: `Appointment/${p.id}` } }]),
        });
        expectStatus(held, 200);
        assertConforms(AVAIL, held.json, PROFILES);
        const h = held.json.entry.find((e) => e.resource.resourceType === 'Appointment').resource;
        assertConforms(APPT, h, PROFILES);
        assert.equal(h.status, 'pending');

        const patient = example('example-patient.json');
        const booked = await fhir(server, 'POST', '/Appointment/$book', {
            body: opParameters(BOOK, [
                { name: 'appointment-reference', valueReference: { reference: `Appointment/${p.id}` } },
                { name: 'patient-resource', resource: patient },
                { name: 'comment', valueString: 'Booked through ITI-117 with the IHE example patient' },
            ]),
        });
        expectStatus(booked, 200);
        assertConforms(AVAIL, booked.json, PROFILES);
        const b = booked.json.entry.find((e) => e.resource.resourceType === 'Appointment').resource;
        assertConforms(APPT, b, PROFILES);
        assert.equal(b.status, 'booked');
        // The example patient (id pat1, unknown here) was matched by identifier (none) and so created.
        const id = patient.identifier[0];
        const found = await fhir(server, 'GET', `/Patient?identifier=${encodeURIComponent(`${id.system}|${id.value}`)}`);
        expectStatus(found, 200);
        assert.equal(found.json.total, 1);
        assert.ok(b.participant.some((x) => x.actor.reference === `Patient/${found.json.entry[0].resource.id}`));
    });

    it('$book of the IHE example appointment (adapted to the demo), then its cancellation: conforming Bundles', async () => {
        const appt = example('example-appointment.json');
        delete appt.id;
        appt.status = 'pending'; // ITI-117: a new appointment-resource SHALL be pending
        appt.start = new Date(Date.parse(localDateTime(MONDAY, '11:00'))).toISOString();
        appt.end = new Date(Date.parse(appt.start) + 20 * MIN).toISOString();
        appt.requestedPeriod = [{ start: START, end: END }];
        appt.participant = [
            { actor: { reference: 'Practitioner/dr-lucas-visser', display: 'Dr. Lucas Visser' }, required: 'required', status: 'accepted' },
            { actor: { reference: 'Location/clinic-north', display: 'Noorderpark Clinic' }, required: 'required', status: 'accepted' },
            { actor: { reference: 'HealthcareService/svc-follow-up' }, required: 'required', status: 'accepted' },
            { actor: { reference: 'Patient/pat-daan-mulder', display: 'Daan Mulder' }, required: 'required', status: 'accepted' },
        ];
        const res = await fhir(server, 'POST', '/Appointment/$book', { body: opParameters(BOOK, [{ name: 'appointment-resource', resource: appt }]) });
        expectStatus(res, 200);
        assertConforms(AVAIL, res.json, PROFILES);
        const b = res.json.entry.find((e) => e.resource.resourceType === 'Appointment').resource;
        assertConforms(APPT, b, PROFILES);
        assert.equal(b.status, 'booked');
        assert.equal(b.serviceType[0].coding[0].code, '185389009', 'the example serviceType is kept');

        const cancel = await fhir(server, 'POST', '/Appointment/$book', {
            body: opParameters(BOOK, [
                { name: 'appointment-resource', resource: { ...b, status: 'cancelled' } },
                { name: 'comment', valueString: 'Cancelled through ITI-117' },
            ]),
        });
        expectStatus(cancel, 200);
        assertConforms(AVAIL, cancel.json, PROFILES);
        const c = cancel.json.entry.find((e) => e.resource.resourceType === 'Appointment').resource;
        assertConforms(APPT, c, PROFILES);
        assert.equal(c.status, 'cancelled');
    });

    it('a stored appointment read back still claims and conforms to ihe-sched-appt', async () => {
        const p = (await propose('Practitioner/dr-lucas-visser', 'Patient/pat-sanne-bakker'))[10];
        const booked = await fhir(server, 'POST', '/Appointment/$book', {
            body: opParameters(BOOK, [{ name: 'appointment-reference', valueReference: { reference: `Appointment/${p.id}` } }]),
        });
        expectStatus(booked, 200);
        const read = await fhir(server, 'GET', `/Appointment/${p.id}`);
        expectStatus(read, 200);
        assertConforms(APPT, read.json, PROFILES);
    });
});
