// The scheduling operations of issue 4 (docs/scheduling-contract.md) over HTTP, against the demo clinic
// (demo/README.md, loaded into a fresh server): $find (GET, POST Parameters and form bodies; every IHE ITI-115
// input; preference order, total and _count; working hours, clinic hours and leave in Europe/Amsterdam local time,
// across a DST change; service durations, rooms, alignment, notice, horizon, buffers, holds, Slot-based schedules;
// empty results and bad input), $hold (success, conflicts, unknown proposals, expiry with a short TTL) and $book
// (proposals, holds, new resources, patients, cancellation, rescheduling, rule refusals and override-rules), plain
// reads of proposals, and the Appointment status lifecycle over PUT.
//
// Dates are computed from today, in Amsterdam: every test looks at days at least two days ahead, inside the demo
// Schedules' planning horizon (2026-01-01 .. 2027-12-31). Tests that need actors of their own (hours, extensions,
// Slots) create a practitioner, role, service and schedule of their own at a demo clinic (makeDoctor), so that no
// test depends on another's bookings. The demo practitioners are only read, except for a booking on a Friday of
// Dr de Jong (who never works Fridays) and one of the ultrasound room in a week of its own.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SOURCE_DIR, create, expectFhirJson, expectOutcome, expectStatus, fhir, put, sleep, startServer, uniq } from '../lib/harness.mjs';

const EXT = 'http://fhirsched.org/fhir/StructureDefinition/';
const UCUM = 'http://unitsofmeasure.org';
const BUNDLE_PROFILE = 'https://profiles.ihe.net/ITI/Scheduling/StructureDefinition/ihe-sched-avail-bundle';
const APPT_PROFILE = 'https://profiles.ihe.net/ITI/Scheduling/StructureDefinition/ihe-sched-appt';
const VT_SYS = 'http://fhirsched.org/fhir/test-visit-type';
const SPEC_SYS = 'http://fhirsched.org/fhir/test-specialty';
const GP_TYPE = 'http://terminology.hl7.org/CodeSystem/service-type|124';
const US_TYPE = 'http://terminology.hl7.org/CodeSystem/service-type|210';
const GP_SPEC = 'http://snomed.info/sct|394814009';
const RAD_SPEC = 'http://snomed.info/sct|394914008';
const MRN = 'urn:oid:2.999.40.1';
const EVA = 'Practitioner/dr-eva-de-jong';
const LUCAS = 'Practitioner/dr-lucas-visser';
const NOOR = 'Practitioner/dr-noor-hendriks';
const MILA = 'Practitioner/dr-mila-vos';
const NORTH = 'Location/clinic-north';
const SOUTH = 'Location/clinic-south';
const US_ROOM = 'Location/room-north-ultrasound';
const FIRST = 'HealthcareService/svc-first-consultation';
const FOLLOW = 'HealthcareService/svc-follow-up';
const US_SVC = 'HealthcareService/svc-ultrasound';
const SANNE = 'Patient/pat-sanne-bakker';
const DAAN = 'Patient/pat-daan-mulder';
const HORIZON_END = '2027-12-31';
const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

// ---------------------------------------------------------------------------
// Amsterdam wall time

const TZ = 'Europe/Amsterdam';
const partsFormat = new Intl.DateTimeFormat('en-GB', {
    timeZone: TZ,
    hourCycle: 'h23',
    weekday: 'short',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
});
const WEEKDAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];

/** Local date, time, minutes after midnight and weekday (0 = Monday) of an instant in Amsterdam. */
function local(t) {
    const p = Object.fromEntries(partsFormat.formatToParts(new Date(t)).map((x) => [x.type, x.value]));
    return {
        date: `${p.year}-${p.month}-${p.day}`,
        time: `${p.hour}:${p.minute}`,
        minutes: Number(p.hour) * 60 + Number(p.minute),
        seconds: Number(p.second),
        weekday: WEEKDAYS.indexOf(p.weekday),
    };
}

/** Epoch ms of local `date` ("YYYY-MM-DD") at `hhmm` in Amsterdam. */
function ams(date, hhmm) {
    const [y, m, d] = date.split('-').map(Number);
    const [hh, mm] = hhmm.split(':').map(Number);
    const wall = Date.UTC(y, m - 1, d, hh, mm);
    for (const offset of [1, 2]) {
        const t = wall - offset * HOUR;
        const l = local(t);
        if (l.date === date && l.time === hhmm) return t;
    }
    throw new Error(`${date} ${hhmm} does not exist in ${TZ}`);
}

function addDays(date, n) {
    const [y, m, d] = date.split('-').map(Number);
    return new Date(Date.UTC(y, m - 1, d + n)).toISOString().slice(0, 10);
}
const weekdayOf = (date) => (new Date(`${date}T00:00:00Z`).getUTCDay() + 6) % 7;
const iso = (t) => new Date(t).toISOString().replace('.000Z', 'Z');
const TODAY = local(Date.now()).date;

/** The first date at least `minDays` after today with weekday `wd` (0 = Monday), plus `weeks` weeks. */
function nextDay(wd, { minDays = 2, weeks = 0 } = {}) {
    let d = addDays(TODAY, minDays);
    while (weekdayOf(d) !== wd) d = addDays(d, 1);
    return addDays(d, 7 * weeks);
}
/** The find window of whole local days [date 00:00, date + days 00:00). */
function win(date, days = 1) {
    return { start: iso(ams(date, '00:00')), end: iso(ams(addDays(date, days), '00:00')), date };
}
const MILA_LEAVE = { start: '2026-12-14', end: '2027-01-01' };
const onMilaLeave = (date) => date >= MILA_LEAVE.start && date < MILA_LEAVE.end;

// Demo weeks: each look at the demo practitioners gets a week of its own (from next week on), skipping the weeks of
// Mila Vos's leave, so that no two of them share a day.
let demoWeeks = 0;
function demoWeekday(wd) {
    for (;;) {
        demoWeeks += 1;
        const monday = nextDay(0, { weeks: demoWeeks });
        if (!onMilaLeave(monday) && !onMilaLeave(addDays(monday, 6))) return addDays(monday, wd);
    }
}
const EVA_WEEK = demoWeekday(0); // a Monday
const PREF_MONDAY = demoWeekday(0);
const ORDER_TUESDAY = demoWeekday(1);
const US_TUESDAY = demoWeekday(1); // the week after is used by the $book rule refusals
demoWeeks += 1;
const PARAM_MONDAY = demoWeekday(0);
const SKIP_DEMO = addDays(PARAM_MONDAY, 14) > HORIZON_END ? `the demo planning horizon ends ${HORIZON_END}` : false;

// ---------------------------------------------------------------------------
// Server and helpers

let server;
before(async () => {
    server = await startDemoServer();
});
after(async () => {
    await server?.stop();
});

async function startDemoServer(env = {}) {
    const s = await startServer({ env });
    const bundle = fs.readFileSync(path.join(SOURCE_DIR, 'demo', 'clinic-bundle.json'), 'utf8');
    const res = await fhir(s, 'POST', '', { body: bundle });
    expectStatus(res, 200);
    return s;
}

const dur = (value, code = 'min') => ({ value, unit: code, system: UCUM, code });
const refs = (appt) => (appt.participant || []).map((p) => p.actor?.reference).filter(Boolean);
const has = (appt, ref) => refs(appt).includes(ref);
const minutesOf = (appt) => (Date.parse(appt.end) - Date.parse(appt.start)) / MIN;
const startsAt = (appt, t) => Date.parse(appt.start) === t;
const ext = (res, tail) => (res.extension || []).find((e) => e.url === `${EXT}${tail}`);

/** The distinct local start times ("HH:MM") of `props`, sorted. */
const startTimes = (props) => [...new Set(props.map((p) => local(Date.parse(p.start)).time))].sort();
/** "HH:MM" every 15 minutes from `from` to `to`, both included. */
function quarterHours(from, to) {
    const m = (s) => Number(s.slice(0, 2)) * 60 + Number(s.slice(3));
    const out = [];
    for (let t = m(from); t <= m(to); t += 15) out.push(`${String(Math.floor(t / 60)).padStart(2, '0')}:${String(t % 60).padStart(2, '0')}`);
    return out;
}

/** Proposals in `props` for actor `ref` that start at instant `t`. */
const offered = (props, ref, t) => props.some((p) => has(p, ref) && startsAt(p, t));

const TYPES = {
    start: 'valueDateTime',
    end: 'valueDateTime',
    specialty: 'valueString',
    'visit-type': 'valueString',
    reason: 'valueString',
    'location-string': 'valueString',
    practitioner: 'valueReference',
    organization: 'valueReference',
    'location-reference': 'valueReference',
    'patient-reference': 'valueReference',
    'insurance-reference': 'valueReference',
    'referral-identifier': 'valueIdentifier',
    _count: 'valueInteger',
};

/** GET-style [name, value] pairs as a Parameters resource (extra: ready-made parameter entries). */
function asParameters(pairs, extra = []) {
    const parameter = pairs.map(([name, value]) => {
        const type = TYPES[name] || 'valueString';
        if (type === 'valueReference') return { name, valueReference: { reference: value } };
        if (type === 'valueInteger') return { name, valueInteger: Number(value) };
        if (type === 'valueIdentifier') {
            const [system, v] = value.split('|');
            return { name, valueIdentifier: { system, value: v } };
        }
        return { name, [type]: value };
    });
    return { resourceType: 'Parameters', parameter: [...parameter, ...extra] };
}
const query = (pairs) => pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
const windowPairs = (w) => [
    ['start', w.start],
    ['end', w.end],
];

async function findRaw(pairs, { method = 'GET', extra = [], s = server } = {}) {
    if (method === 'GET') return fhir(s, 'GET', `/Appointment/$find?${query(pairs)}`);
    if (method === 'FORM') {
        return fhir(s, 'POST', '/Appointment/$find', {
            body: query(pairs),
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
        });
    }
    return fhir(s, 'POST', '/Appointment/$find', { body: asParameters(pairs, extra) });
}

/**
 * Checks a $find/$hold/$book answer: 200, a searchset Bundle with the IHE profile and a total, Appointment entries
 * with search.mode match (claiming the IHE Appointment profile when they are proposals, `apptProfile`) and
 * OperationOutcome entries with mode outcome. Returns { bundle, appts, outcomes }. (Whether booked Appointments claim
 * the profile too is checked in tests/conformance/ihe-scheduling.test.mjs.)
 */
function expectSchedBundle(res, { apptProfile = true } = {}) {
    expectStatus(res, 200);
    expectFhirJson(res);
    const b = res.json;
    assert.equal(b.resourceType, 'Bundle', 'a Bundle');
    assert.equal(b.type, 'searchset');
    assert.ok(b.meta?.profile?.includes(BUNDLE_PROFILE), `Bundle.meta.profile has ${BUNDLE_PROFILE}`);
    assert.ok(Number.isInteger(b.total) && b.total >= 0, 'Bundle.total');
    const appts = [];
    const outcomes = [];
    for (const e of b.entry || []) {
        assert.ok(e.resource, 'entry.resource');
        if (e.resource.resourceType === 'OperationOutcome') {
            assert.equal(e.search?.mode, 'outcome', 'an OperationOutcome entry has search.mode outcome');
            outcomes.push(e.resource);
        } else {
            assert.equal(e.resource.resourceType, 'Appointment', 'entries are Appointments or OperationOutcomes');
            assert.equal(e.search?.mode, 'match', 'an Appointment entry has search.mode match');
            if (apptProfile) assert.ok(e.resource.meta?.profile?.includes(APPT_PROFILE), `Appointment.meta.profile has ${APPT_PROFILE}`);
            appts.push(e.resource);
        }
    }
    return { bundle: b, appts, outcomes };
}

/** One proposal as the contract describes it, inside the request window `w`. */
function checkProposal(p, w) {
    assert.match(p.id, /^prop-[0-9a-f]{32}-\d+$/, 'proposal id prop-<32 hex>-<n>');
    assert.equal(p.status, 'proposed');
    assert.match(p.start, /Z$/, 'start in UTC');
    assert.match(p.end, /Z$/, 'end in UTC');
    assert.ok(Date.parse(p.end) > Date.parse(p.start), 'end after start');
    assert.ok(Date.parse(p.start) >= Date.parse(w.start) && Date.parse(p.start) < Date.parse(w.end), `start ${p.start} in the window`);
    assert.equal(p.requestedPeriod?.length, 1, 'exactly one requestedPeriod');
    assert.equal(Date.parse(p.requestedPeriod[0].start), Date.parse(w.start), 'requestedPeriod.start = the request start');
    assert.ok(p.requestedPeriod[0].end, 'requestedPeriod.end (its value is checked once, in the shape test)');
    assert.ok(p.participant?.length >= 1, 'participants');
    for (const part of p.participant) {
        assert.ok(part.actor?.reference, 'participant.actor.reference');
        assert.equal(part.required, 'required');
        assert.equal(part.status, 'needs-action');
    }
}

/** $find that must succeed; checks every proposal; returns { bundle, props, outcomes }. */
async function find(pairs, opts = {}) {
    const res = await findRaw(pairs, opts);
    const { bundle, appts, outcomes } = expectSchedBundle(res);
    const w = {
        start: pairs.find(([k]) => k === 'start')?.[1],
        end: pairs.find(([k]) => k === 'end')?.[1],
    };
    for (const p of appts) checkProposal(p, w);
    assert.ok(bundle.total >= appts.length, 'total counts at least the entries returned');
    if (bundle.total === 0) expectNothingOutcome(bundle, outcomes);
    return { bundle, props: appts, outcomes };
}

/** total 0: exactly one entry, an OperationOutcome (information, not-found) saying why. */
function expectNothingOutcome(bundle, outcomes) {
    assert.equal(bundle.total, 0);
    assert.equal(bundle.entry?.length, 1, 'one entry when nothing is available');
    assert.equal(outcomes.length, 1);
    const issue = outcomes[0].issue?.[0];
    assert.equal(issue?.severity, 'information');
    assert.equal(issue?.code, 'not-found');
    assert.ok(issue?.diagnostics || issue?.details?.text, 'the outcome explains why');
}

/** A practitioner of the test's own at a demo clinic: service, role (hours, leave) and schedule. */
async function makeDoctor({
    clinic = 'clinic-north',
    minutes = 30,
    serviceExt = [],
    availableTime = [{ daysOfWeek: ['mon', 'tue', 'wed', 'thu', 'fri'], availableStartTime: '09:00:00', availableEndTime: '17:00:00' }],
    notAvailable,
} = {}) {
    const code = uniq('vt');
    const svc = await create(server, {
        resourceType: 'HealthcareService',
        active: true,
        name: `Test service ${code}`,
        extension: [{ url: `${EXT}service-duration`, valueDuration: dur(minutes) }, ...serviceExt],
        type: [{ coding: [{ system: VT_SYS, code }] }],
        specialty: [{ coding: [{ system: SPEC_SYS, code }] }],
        location: [{ reference: `Location/${clinic}` }],
        appointmentRequired: true,
    });
    const dr = await create(server, {
        resourceType: 'Practitioner',
        active: true,
        identifier: [{ system: 'http://fhirsched.org/fhir/practitioner-id', value: code }],
        name: [{ family: code, given: ['Test'], prefix: ['Dr.'] }],
    });
    const role = await create(server, {
        resourceType: 'PractitionerRole',
        active: true,
        practitioner: { reference: `Practitioner/${dr.id}` },
        location: [{ reference: `Location/${clinic}` }],
        healthcareService: [{ reference: `HealthcareService/${svc.id}` }],
        ...(availableTime ? { availableTime } : {}),
        ...(notAvailable ? { notAvailable } : {}),
    });
    const schedule = await create(server, {
        resourceType: 'Schedule',
        active: true,
        actor: [{ reference: `Practitioner/${dr.id}` }, { reference: `Location/${clinic}` }],
        planningHorizon: { start: '2026-01-01T00:00:00+01:00', end: '2027-12-31T23:59:59+01:00' },
    });
    return {
        svc,
        dr,
        role,
        schedule,
        ref: `Practitioner/${dr.id}`,
        roleRef: `PractitionerRole/${role.id}`,
        svcRef: `HealthcareService/${svc.id}`,
        clinicRef: `Location/${clinic}`,
        visitType: `${VT_SYS}|${code}`,
        specialty: `${SPEC_SYS}|${code}`,
    };
}

/** $find for one doctor of makeDoctor over window `w`. */
const findFor = (doc, w, more = [], opts = {}) =>
    find([...windowPairs(w), ['visit-type', doc.visitType], ['_count', '200'], ...more], opts);

/** A booked Appointment stored over plain REST (no rules apply there). */
function restAppt(actors, startMs, minutes, extra = {}) {
    return {
        resourceType: 'Appointment',
        status: 'booked',
        start: iso(startMs),
        end: iso(startMs + minutes * MIN),
        participant: actors.map((a) => ({ actor: { reference: a }, status: 'accepted' })),
        ...extra,
    };
}

const ref = (name, reference) => ({ name, valueReference: { reference } });
const parameters = (...parameter) => ({ resourceType: 'Parameters', parameter });
const hold = (id, s = server) => fhir(s, 'POST', '/Appointment/$hold', { body: parameters(ref('appointment-reference', `Appointment/${id}`)) });
const book = (...parameter) => fhir(server, 'POST', '/Appointment/$book', { body: parameters(...parameter) });
const patientParam = (resource) => ({ name: 'patient-resource', resource: { resourceType: 'Patient', ...resource } });
const apptParam = (resource) => ({ name: 'appointment-resource', resource });

/**
 * A 400 from the operation itself: an OperationOutcome, and not the router's refusal of "$find" as a resource id
 * (which would make a bad-input test pass before the operation exists).
 */
function expectBadRequest(res, code) {
    const oo = expectOutcome(res, 400, code);
    assert.ok(!/not a valid resource id/.test(JSON.stringify(oo)), `the operation itself answered: ${JSON.stringify(oo)}`);
    return oo;
}

/** The one Appointment of a $hold/$book answer, and its OperationOutcome entries. */
function expectOneAppointment(res) {
    const { appts, outcomes, bundle } = expectSchedBundle(res, { apptProfile: false });
    assert.equal(appts.length, 1, 'one Appointment in the answer');
    return { appt: appts[0], outcomes, bundle };
}

async function read(id) {
    const res = await fhir(server, 'GET', `/Appointment/${id}`);
    expectStatus(res, 200);
    return res.json;
}

/** A proposal of `doc` starting at local `hhmm` on `date`. */
async function proposalAt(doc, date, hhmm, more = []) {
    const { props } = await findFor(doc, win(date), more);
    const t = ams(date, hhmm);
    const p = props.find((x) => startsAt(x, t));
    assert.ok(p, `a proposal at ${date} ${hhmm} (got ${props.map((x) => local(Date.parse(x.start)).time).join(' ')})`);
    return p;
}

/** A week of `start`..`end` local hours for every day, all day: only the clinic's hours limit it. */
const ALL_WEEK = [{ daysOfWeek: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], allDay: true }];

// ---------------------------------------------------------------------------

describe('$find: shape and the IHE inputs', { skip: SKIP_DEMO }, () => {
    it('GET: a searchset of proposals for Dr de Jong with the contract shape', async () => {
        const w = win(EVA_WEEK);
        const { bundle, props } = await find([...windowPairs(w), ['practitioner', EVA], ['visit-type', GP_TYPE], ['_count', '200']]);
        assert.ok(props.length > 0, 'proposals');
        assert.equal(bundle.total, props.length, 'total = entries when _count is not reached');
        for (const p of props) {
            assert.ok(has(p, EVA), 'the practitioner');
            assert.ok(has(p, 'PractitionerRole/role-eva-de-jong'), 'her role');
            assert.ok(has(p, NORTH), 'the clinic');
            assert.ok(has(p, FIRST) || has(p, FOLLOW), 'the HealthcareService');
            assert.ok(!refs(p).some((r) => r.startsWith('Patient/')), 'no patient when none was given');
            // serviceType / specialty / serviceCategory come from the HealthcareService.
            assert.ok(JSON.stringify(p.serviceType).includes('"124"'), 'serviceType from the service');
            assert.ok(JSON.stringify(p.specialty).includes('394814009'), 'specialty from the service');
            assert.ok(JSON.stringify(p.serviceCategory).includes('"17"'), 'serviceCategory from the service');
            assert.equal(p.appointmentType, undefined, 'appointmentType untouched');
        }
        for (const p of props) assert.equal(Date.parse(p.requestedPeriod[0].end), Date.parse(w.end), 'requestedPeriod.end = the request end');
        assert.equal(new Set(props.map((p) => p.id)).size, props.length, 'ids are distinct');
        assert.equal(new Set(props.map((p) => p.id.replace(/-\d+$/, ''))).size, 1, 'one proposal set per answer');
    });

    it('POST Parameters and a POST form body give the same proposals as GET', async () => {
        const w = win(EVA_WEEK);
        const pairs = [...windowPairs(w), ['practitioner', EVA], ['visit-type', GP_TYPE], ['_count', '200']];
        const key = (p) => `${p.start}|${p.end}|${refs(p).sort().join(',')}`;
        const viaGet = (await find(pairs)).props.map(key);
        const viaPost = (await find(pairs, { method: 'POST' })).props.map(key);
        const viaForm = (await find(pairs, { method: 'FORM' })).props.map(key);
        assert.deepEqual(viaPost, viaGet);
        assert.deepEqual(viaForm, viaGet);
    });

    it('token parameters may also be valueCoding or valueCodeableConcept in POST', async () => {
        const w = win(US_TUESDAY);
        const coding = { system: 'http://terminology.hl7.org/CodeSystem/service-type', code: '210' };
        const a = await find([...windowPairs(w), ['_count', '200']], { method: 'POST', extra: [{ name: 'visit-type', valueCoding: coding }] });
        const b = await find([...windowPairs(w), ['_count', '200']], {
            method: 'POST',
            extra: [{ name: 'visit-type', valueCodeableConcept: { coding: [coding] } }],
        });
        const c = await find([...windowPairs(w), ['visit-type', US_TYPE], ['_count', '200']]);
        assert.ok(c.props.length > 0);
        assert.deepEqual(a.props.map((p) => p.start), c.props.map((p) => p.start));
        assert.deepEqual(b.props.map((p) => p.start), c.props.map((p) => p.start));
        assert.ok(a.props.every((p) => has(p, US_SVC)));
    });

    const w = () => win(PARAM_MONDAY);
    const base = () => [...windowPairs(w()), ['visit-type', GP_TYPE], ['_count', '200']];
    const each = [
        ['specialty', GP_SPEC],
        ['visit-type', `${VT_SYS}|nothing-like-this`],
        ['practitioner', LUCAS],
        ['organization', 'Organization/org-demo'],
        ['location-string', 'Amsterdam'],
        ['location-reference', NORTH],
        ['patient-reference', SANNE],
        ['reason', 'http://snomed.info/sct|271807003'],
        ['referral-identifier', 'http://fhirsched.org/fhir/referral|REF-1'],
        ['insurance-reference', 'Coverage/cov-demo'],
        ['_count', '3'],
    ];
    for (const [name, value] of each) {
        for (const method of ['GET', 'POST']) {
            it(`${method} accepts ${name}`, async () => {
                await find([...base(), [name, value]], { method });
            });
        }
    }
    it('POST accepts patient-resource and timing, and all parameters at once', async () => {
        const patient = { resourceType: 'Patient', identifier: [{ system: MRN, value: 'MRN-100001' }], name: [{ family: 'Bakker' }] };
        const timing = { repeat: { dayOfWeek: ['mon'], when: ['MORN'] } };
        await find(base(), { method: 'POST', extra: [{ name: 'patient-resource', resource: patient }] });
        await find(base(), { method: 'POST', extra: [{ name: 'timing', valueTiming: timing }] });
        await find(
            [...base(), ...each.filter(([n]) => !['visit-type', '_count'].includes(n))],
            { method: 'POST', extra: [{ name: 'patient-resource', resource: patient }, { name: 'timing', valueTiming: timing }] },
        );
    });

    it('patient-reference and patient-resource: the patient joins every proposal', async () => {
        const pairs = [...base(), ['practitioner', LUCAS], ['patient-reference', SANNE]];
        const { props } = await find(pairs);
        assert.ok(props.length > 0);
        for (const p of props) {
            const part = p.participant.find((x) => x.actor.reference === SANNE);
            assert.ok(part, 'the patient is a participant');
        }
        const viaResource = await find([...base(), ['practitioner', LUCAS]], {
            method: 'POST',
            extra: [{ name: 'patient-resource', resource: { resourceType: 'Patient', id: 'pat-daan-mulder' } }],
        });
        assert.ok(viaResource.props.length > 0);
        for (const p of viaResource.props) assert.ok(has(p, DAAN), 'the existing patient of the resource joins');
    });

    it('reason becomes reasonCode', async () => {
        const { props } = await find([...base(), ['practitioner', LUCAS], ['reason', 'http://snomed.info/sct|271807003']]);
        assert.ok(props.length > 0);
        for (const p of props) {
            const codings = (p.reasonCode || []).flatMap((c) => c.coding || []);
            assert.ok(codings.some((c) => c.system === 'http://snomed.info/sct' && c.code === '271807003'), 'reasonCode');
        }
    });

    it('specialty selects services: radiology gives only the ultrasound examination', async () => {
        const { props } = await find([...windowPairs(win(ORDER_TUESDAY)), ['specialty', RAD_SPEC], ['_count', '200']]);
        assert.ok(props.length > 0);
        for (const p of props) {
            assert.ok(has(p, US_SVC) && has(p, NOOR) && has(p, US_ROOM));
            assert.ok(JSON.stringify(p.specialty).includes('394914008'));
        }
    });

    it('location-string: starts-with on words of the clinic name and address, case- and accent-insensitive', async () => {
        const pairs = [...base()];
        const only = async (value, clinic, method = 'GET') => {
            const { props } = await find([...pairs, ['location-string', value]], { method });
            assert.ok(props.length > 0, `proposals for location-string ${value}`);
            for (const p of props) assert.ok(has(p, clinic), `location-string ${value}: only ${clinic}, got ${refs(p)}`);
        };
        await only('zuiderhof', SOUTH);
        await only('ZUIDERHOF', SOUTH, 'POST');
        await only('Zuid', SOUTH);
        await only('Noorderparkkade', NORTH);
        await only('nöorderpark', NORTH);
        await only('1031', NORTH);
        const none = await find([...pairs, ['location-string', 'Rotterdam']]);
        assert.equal(none.bundle.total, 0);
    });

    it('location-reference: a clinic, or a room', async () => {
        const south = await find([...base(), ['location-reference', SOUTH]]);
        assert.ok(south.props.length > 0);
        for (const p of south.props) assert.ok(has(p, SOUTH) && !has(p, NORTH));
        const room = await find([...windowPairs(win(ORDER_TUESDAY)), ['location-reference', US_ROOM], ['_count', '200']]);
        assert.ok(room.props.length > 0);
        for (const p of room.props) assert.ok(has(p, US_ROOM) && has(p, US_SVC));
    });

    it('timing restricts the starts: dayOfWeek, when, timeOfDay, boundsPeriod', async () => {
        const w = win(PARAM_MONDAY, 7);
        const pairs = [...windowPairs(w), ['practitioner', LUCAS], ['visit-type', GP_TYPE], ['_count', '200']];
        const timed = (repeat) => find(pairs, { method: 'POST', extra: [{ name: 'timing', valueTiming: { repeat } }] });
        let { props } = await timed({ dayOfWeek: ['wed'] });
        assert.ok(props.length > 0);
        for (const p of props) assert.equal(local(Date.parse(p.start)).weekday, 2, 'Wednesdays only');
        ({ props } = await timed({ dayOfWeek: ['fri'], when: ['MORN'] }));
        assert.ok(props.length > 0);
        for (const p of props) {
            const l = local(Date.parse(p.start));
            assert.equal(l.weekday, 4);
            assert.ok(l.minutes < 12 * 60, `a morning start, got ${l.time}`);
        }
        ({ props } = await timed({ timeOfDay: ['10:00:00', '14:30:00'] }));
        assert.ok(props.length > 0);
        for (const p of props) assert.ok(['10:00', '14:30'].includes(local(Date.parse(p.start)).time));
        const bounds = { start: iso(ams(addDays(PARAM_MONDAY, 2), '00:00')), end: iso(ams(addDays(PARAM_MONDAY, 3), '00:00')) };
        ({ props } = await timed({ boundsPeriod: bounds }));
        assert.ok(props.length > 0);
        for (const p of props) assert.equal(local(Date.parse(p.start)).date, addDays(PARAM_MONDAY, 2));
    });

    it('a visit type nobody offers: total 0 with an outcome', async () => {
        const r = await find([...windowPairs(w()), ['visit-type', `${VT_SYS}|nothing-like-this`]]);
        assert.equal(r.bundle.total, 0);
    });
});

describe('$find: preference order, total and _count', { skip: SKIP_DEMO }, () => {
    const w = () => win(PREF_MONDAY);

    it('practitioners in the order given, each soonest first', async () => {
        for (const order of [
            [LUCAS, EVA],
            [EVA, LUCAS],
        ]) {
            const { bundle, props } = await find([
                ...windowPairs(w()),
                ['practitioner', order[0]],
                ['practitioner', order[1]],
                ['visit-type', GP_TYPE],
                ['_count', '200'],
            ]);
            const who = props.map((p) => (has(p, order[0]) ? 0 : has(p, order[1]) ? 1 : -1));
            assert.ok(!who.includes(-1), 'only the practitioners asked for');
            const firstOfSecond = who.indexOf(1);
            assert.ok(who.indexOf(0) === 0 && firstOfSecond > 0, 'both, the first preferred one first');
            assert.ok(who.slice(firstOfSecond).every((x) => x === 1), `every ${order[0]} proposal before every ${order[1]} one`);
            for (const part of [props.slice(0, firstOfSecond), props.slice(firstOfSecond)]) {
                for (let i = 1; i < part.length; i++) assert.ok(Date.parse(part[i].start) >= Date.parse(part[i - 1].start), 'soonest first');
            }
            // Lucas works Mon 08:00-16:30, Eva Mon 08:30-17:00: a 20-minute follow-up fits from 08:00 (08:30) to 16:00 (16:30).
            assert.equal(bundle.total, props.length);
            assert.deepEqual(startTimes(props.filter((p) => has(p, LUCAS))), quarterHours('08:00', '16:00'));
            assert.deepEqual(startTimes(props.filter((p) => has(p, EVA))), quarterHours('08:30', '16:30'));
        }
    });

    it('_count limits the entries, not total; without _count there are 20', async () => {
        const pairs = [...windowPairs(w()), ['practitioner', LUCAS], ['practitioner', EVA], ['visit-type', GP_TYPE]];
        const all = await find([...pairs, ['_count', '200']]);
        const five = await find([...pairs, ['_count', '5']]);
        assert.equal(five.props.length, 5);
        assert.equal(five.bundle.total, all.bundle.total);
        assert.deepEqual(
            five.props.map((p) => `${p.start}|${has(p, LUCAS)}`),
            all.props.slice(0, 5).map((p) => `${p.start}|${has(p, LUCAS)}`),
        );
        const dflt = await find(pairs);
        assert.equal(dflt.props.length, 20);
        assert.equal(dflt.bundle.total, all.bundle.total);
        const post = await find([...pairs, ['_count', '7']], { method: 'POST' });
        assert.equal(post.props.length, 7);
    });

    it('locations, visit types and specialties in the order given', async () => {
        const t = win(ORDER_TUESDAY);
        const check = async (pairs, first, second) => {
            const { props } = await find([...windowPairs(t), ...pairs, ['_count', '200']]);
            const rank = props.map((p) => (first(p) ? 0 : second(p) ? 1 : -1));
            assert.ok(!rank.includes(-1), 'only what was asked for');
            const cut = rank.indexOf(1);
            assert.ok(rank[0] === 0 && cut > 0, 'both kinds, the preferred first');
            assert.ok(rank.slice(cut).every((x) => x === 1), 'every preferred proposal first');
        };
        await check(
            [
                ['location-reference', SOUTH],
                ['location-reference', NORTH],
                ['visit-type', GP_TYPE],
            ],
            (p) => has(p, SOUTH),
            (p) => has(p, NORTH),
        );
        await check(
            [
                ['visit-type', US_TYPE],
                ['visit-type', GP_TYPE],
            ],
            (p) => has(p, US_SVC),
            (p) => has(p, FIRST) || has(p, FOLLOW),
        );
        await check(
            [
                ['specialty', RAD_SPEC],
                ['specialty', GP_SPEC],
            ],
            (p) => has(p, US_SVC),
            (p) => has(p, FIRST) || has(p, FOLLOW),
        );
    });
});

describe('$find: hours, leave, durations, rooms, alignment', { skip: SKIP_DEMO }, () => {
    it('Dr de Jong: Mon-Thu 08:30-17:00 Amsterdam time, never Friday; 40 and 20 minutes on the quarter hour', async () => {
        for (let i = 0; i < 7; i++) {
            const date = addDays(EVA_WEEK, i);
            const { bundle, props } = await find([...windowPairs(win(date)), ['practitioner', EVA], ['visit-type', GP_TYPE], ['_count', '200']]);
            if (i >= 4) {
                assert.equal(bundle.total, 0, `${WEEKDAYS[i]} ${date}: nothing`);
                continue;
            }
            const first = props.filter((p) => has(p, FIRST));
            const follow = props.filter((p) => has(p, FOLLOW));
            assert.ok(first.length > 0 && follow.length > 0, 'both services of visit type 124');
            for (const p of first) assert.equal(minutesOf(p), 40, 'a first consultation is 40 minutes');
            for (const p of follow) assert.equal(minutesOf(p), 20, 'a follow-up is 20 minutes');
            // Every quarter hour from 08:30 to 16:30 is offered (16:30 only as a follow-up, which ends 16:50). Whether
            // both services are offered at one time or only one is left open by the contract.
            assert.deepEqual(startTimes(props), quarterHours('08:30', '16:30'));
            assert.equal(bundle.total, props.length);
            for (const p of props) {
                const s = local(Date.parse(p.start));
                const e = local(Date.parse(p.end));
                assert.equal(s.date, date);
                assert.ok(s.minutes >= 8 * 60 + 30, `not before 08:30 local: ${s.time}`);
                assert.ok(e.minutes <= 17 * 60 && e.date === date, `ends by 17:00 local: ${e.time}`);
                assert.equal(s.minutes % 15, 0, `on the quarter hour: ${s.time}`);
                assert.equal(s.seconds, 0);
            }
            assert.equal(local(Date.parse(props[0].start)).time, '08:30');
        }
    });

    it('across the next DST change the hours stay 08:30-17:00 local', async () => {
        // The next change: last Sunday of March or October, at least 5 days ahead.
        const candidates = [];
        for (const y of [Number(TODAY.slice(0, 4)), Number(TODAY.slice(0, 4)) + 1]) {
            for (const m of [3, 10]) {
                let d = `${y}-${String(m).padStart(2, '0')}-31`;
                while (weekdayOf(d) !== 6) d = addDays(d, -1);
                candidates.push(d);
            }
        }
        const change = candidates.sort().find((d) => d >= addDays(TODAY, 5));
        const thursday = addDays(change, -3);
        const monday = addDays(change, 1);
        if (monday > HORIZON_END) return;
        for (const date of [thursday, monday]) {
            const { props } = await find([...windowPairs(win(date)), ['practitioner', EVA], ['visit-type', GP_TYPE], ['_count', '200']]);
            assert.deepEqual(startTimes(props), quarterHours('08:30', '16:30'), `${date}: a full day`);
            const lastEnd = Math.max(...props.map((p) => Date.parse(p.end)));
            assert.ok(lastEnd <= ams(date, '17:00') && lastEnd >= ams(date, '16:50'), 'the last one ends by 17:00 local');
        }
        const offset = (date) => ams(date, '08:30') - Date.parse(`${date}T08:30:00Z`);
        assert.notEqual(offset(thursday), offset(monday), 'the UTC offset changed in between');
    });

    it('clinic hours limit a practitioner who is available all week', async () => {
        const doc = await makeDoctor({ clinic: 'clinic-south', availableTime: ALL_WEEK });
        const monday = nextDay(0);
        const { bundle, props } = await findFor(doc, win(monday, 7));
        // Zuiderhof is open Mon-Fri 08:00-18:00: 30 minutes on the quarter hour is 08:00 .. 17:30, 39 a day.
        assert.equal(bundle.total, 5 * 39);
        for (const p of props) {
            const s = local(Date.parse(p.start));
            const e = local(Date.parse(p.end));
            assert.ok(s.weekday <= 4, `a weekday: ${s.date}`);
            assert.ok(s.minutes >= 8 * 60 && e.minutes <= 18 * 60 && e.date === s.date, `${s.time}-${e.time}`);
            assert.ok(has(p, doc.ref) && has(p, doc.roleRef) && has(p, SOUTH) && has(p, doc.svcRef));
        }
        // Noorderpark also opens on Saturday 09:00-13:00.
        const north = await makeDoctor({ availableTime: ALL_WEEK });
        const sat = await findFor(north, win(addDays(monday, 5)));
        assert.equal(sat.bundle.total, 15, 'Saturday 09:00 .. 12:30');
        assert.equal(local(Date.parse(sat.props[0].start)).time, '09:00');
    });

    it('leave (notAvailable) is never offered', async () => {
        const day = nextDay(2);
        const doc = await makeDoctor({
            notAvailable: [
                { description: 'Course', during: { start: iso(ams(day, '00:00')), end: iso(ams(addDays(day, 1), '00:00')) } },
                { description: 'Dentist', during: { start: iso(ams(addDays(day, 1), '12:00')), end: iso(ams(addDays(day, 1), '14:00')) } },
            ],
        });
        const off = await findFor(doc, win(day));
        assert.equal(off.bundle.total, 0);
        const next = await findFor(doc, win(addDays(day, 1)));
        assert.ok(next.props.length > 0);
        for (const p of next.props) {
            assert.ok(Date.parse(p.end) <= ams(addDays(day, 1), '12:00') || Date.parse(p.start) >= ams(addDays(day, 1), '14:00'));
        }
        assert.ok(offered(next.props, doc.ref, ams(addDays(day, 1), '11:30')));
        assert.ok(offered(next.props, doc.ref, ams(addDays(day, 1), '14:00')));
    });

    it('Dr Mila Vos is on leave 2026-12-14 .. 2027-01-01: no proposals then', async (t) => {
        if (addDays(TODAY, 1) >= '2026-12-11') return t.skip('the demo leave is (nearly) here');
        const during = { start: iso(ams(MILA_LEAVE.start, '00:00')), end: iso(ams(MILA_LEAVE.end, '00:00')) };
        const none = await find([...windowPairs(during), ['practitioner', MILA], ['visit-type', GP_TYPE]]);
        assert.equal(none.bundle.total, 0);
        // Around it: the Friday before and the Friday it ends (2027-01-01) are offered, nothing in between.
        const around = { start: iso(ams('2026-12-11', '00:00')), end: iso(ams('2027-01-02', '00:00')) };
        const { props } = await find([...windowPairs(around), ['practitioner', MILA], ['visit-type', GP_TYPE], ['_count', '200']]);
        assert.ok(props.length > 0);
        const dates = new Set(props.map((p) => local(Date.parse(p.start)).date));
        assert.deepEqual([...dates].sort(), ['2026-12-11', '2027-01-01']);
    });

    it('the ultrasound examination needs the ultrasound room; a booking of the room takes its time away', async () => {
        const w = win(US_TUESDAY);
        let { props } = await find([...windowPairs(w), ['visit-type', US_TYPE], ['_count', '200']]);
        // Dr Hendriks, Tue 09:00-17:00, 30 minutes: 09:00 .. 16:30.
        assert.equal(props.length, 31);
        for (const p of props) {
            assert.ok(has(p, NOOR) && has(p, 'PractitionerRole/role-noor-hendriks') && has(p, US_SVC) && has(p, NORTH));
            assert.ok(has(p, US_ROOM), 'the ultrasound room');
            assert.ok(!has(p, 'Location/room-north-1') && !has(p, 'Location/room-north-2'));
            assert.equal(minutesOf(p), 30);
        }
        // Somebody else uses the room 10:00-11:00 (plain REST).
        const other = await create(server, { resourceType: 'Practitioner', name: [{ family: uniq('Other') }] });
        await create(server, restAppt([`Practitioner/${other.id}`, US_ROOM], ams(US_TUESDAY, '10:00'), 60));
        ({ props } = await find([...windowPairs(w), ['visit-type', US_TYPE], ['_count', '200']]));
        assert.equal(props.length, 31 - 5, '09:45 .. 10:45 are gone');
        for (const p of props) {
            assert.ok(Date.parse(p.end) <= ams(US_TUESDAY, '10:00') || Date.parse(p.start) >= ams(US_TUESDAY, '11:00'));
        }
        assert.ok(offered(props, NOOR, ams(US_TUESDAY, '09:30')));
        assert.ok(offered(props, NOOR, ams(US_TUESDAY, '11:00')));
    });

    it('required-device-type: a Device of that type joins each proposal; a booked device takes its time away', async () => {
        const typeCode = uniq('dev');
        const devType = { coding: [{ system: 'http://fhirsched.org/fhir/test-device-type', code: typeCode }] };
        const doc = await makeDoctor({ serviceExt: [{ url: `${EXT}required-device-type`, valueCodeableConcept: devType }] });
        const day = nextDay(1, { weeks: 1 });
        const none = await findFor(doc, win(day));
        assert.equal(none.bundle.total, 0, 'no such device yet: nothing');
        const device = await create(server, { resourceType: 'Device', status: 'active', type: devType, location: { reference: NORTH } });
        const devRef = `Device/${device.id}`;
        let { props } = await findFor(doc, win(day));
        assert.ok(props.length > 0);
        for (const p of props) assert.ok(has(p, devRef), 'the device is a participant');
        // Somebody else uses the device 10:00-11:00.
        const other = await create(server, { resourceType: 'Practitioner', name: [{ family: uniq('Other') }] });
        await create(server, restAppt([`Practitioner/${other.id}`, devRef], ams(day, '10:00'), 60));
        ({ props } = await findFor(doc, win(day)));
        for (const p of props) assert.ok(Date.parse(p.end) <= ams(day, '10:00') || Date.parse(p.start) >= ams(day, '11:00'));
        // A second device of the type (without a location: usable anywhere) fills the gap.
        const spare = await create(server, { resourceType: 'Device', status: 'active', type: devType });
        ({ props } = await findFor(doc, win(day)));
        const at10 = props.filter((p) => startsAt(p, ams(day, '10:00')));
        assert.ok(at10.length > 0 && at10.every((p) => has(p, `Device/${spare.id}`)), 'the spare device at 10:00');
        // Booking without a device of the type is refused.
        const bare = restAppt([doc.ref, doc.roleRef, doc.clinicRef, doc.svcRef], ams(day, '14:00'), 30);
        expectOutcome(await book(apptParam(bare)), 422, 'business-rule');
        expectOneAppointment(await book(apptParam(restAppt([doc.ref, doc.roleRef, doc.clinicRef, doc.svcRef, devRef], ams(day, '14:00'), 30))));
    });

    it('slot-alignment on the service: starts on multiples of 20 minutes', async () => {
        const doc = await makeDoctor({ serviceExt: [{ url: `${EXT}slot-alignment`, valueDuration: dur(20) }] });
        const day = nextDay(1);
        const { props } = await findFor(doc, win(day));
        assert.equal(props.length, 23, '09:00, 09:20 .. 16:20');
        for (const p of props) assert.equal(local(Date.parse(p.start)).minutes % 20, 0);
        // A duration in hours: a two-hour service.
        const long = await makeDoctor({ serviceExt: [], minutes: 120 });
        const lp = (await findFor(long, win(day))).props;
        assert.equal(lp.length, 25, '09:00 .. 15:00 on the quarter hour');
        for (const p of lp) assert.equal(minutesOf(p), 120);
    });

    it('minimum-notice and booking-horizon on the service bound the starts', async () => {
        const doc = await makeDoctor({
            availableTime: ALL_WEEK,
            serviceExt: [
                { url: `${EXT}minimum-notice`, valueDuration: dur(3, 'd') },
                { url: `${EXT}booking-horizon`, valueDuration: dur(120, 'h') },
            ],
        });
        const asked = Date.now();
        const w = { start: iso(ams(addDays(TODAY, 1), '00:00')), end: iso(ams(addDays(TODAY, 9), '00:00')) };
        const { props } = await find([...windowPairs(w), ['visit-type', doc.visitType], ['_count', '200']]);
        assert.ok(props.length > 0, 'something between 3 and 5 days ahead');
        const answered = Date.now();
        for (const p of props) {
            const s = Date.parse(p.start);
            assert.ok(s >= asked + 3 * DAY - MIN, `not before now + 3 days: ${p.start}`);
            assert.ok(s <= answered + 5 * DAY + MIN, `not after now + 5 days: ${p.start}`);
        }
    });

    it('buffers: the service needs 10 minutes before and 5 after free; stored buffers block too', async () => {
        const doc = await makeDoctor({
            serviceExt: [
                { url: `${EXT}buffer-before`, valueDuration: dur(10) },
                { url: `${EXT}buffer-after`, valueDuration: dur(5) },
            ],
        });
        const day = nextDay(3);
        await create(server, restAppt([doc.ref], ams(day, '11:00'), 30));
        const { props } = await findFor(doc, win(day));
        const times = props.map((p) => local(Date.parse(p.start)).time);
        // 09:00 needs 08:50 free (outside hours): 09:15 is first; 16:15 + 30 + 5 ends 16:50, 16:30 would need 17:05.
        assert.equal(times[0], '09:15');
        assert.equal(times[times.length - 1], '16:15');
        assert.ok(times.includes('10:15') && !times.includes('10:30'), 'before 11:00: 10:15 (ends 10:45 + 5)');
        assert.ok(!times.includes('11:30') && times.includes('11:45'), 'after 11:30: 11:45 (10 minutes before it)');
        for (const p of props) {
            assert.equal(ext(p, 'buffer-before')?.valueDuration?.value, 10, 'buffer-before on the proposal');
            assert.equal(ext(p, 'buffer-after')?.valueDuration?.value, 5, 'buffer-after on the proposal');
        }

        // A stored appointment's own buffers (20 before, 20 after) block for a service without buffers.
        const plain = await makeDoctor();
        await create(
            server,
            restAppt([plain.ref], ams(day, '13:00'), 30, {
                extension: [
                    { url: `${EXT}buffer-before`, valueDuration: dur(20) },
                    { url: `${EXT}buffer-after`, valueDuration: dur(20) },
                ],
            }),
        );
        const pt = (await findFor(plain, win(day))).props.map((p) => local(Date.parse(p.start)).time);
        assert.ok(pt.includes('12:00') && !pt.includes('12:15'), 'ends by 12:40');
        assert.ok(!pt.includes('13:45') && pt.includes('14:00'), 'starts from 13:50');
        for (const p of (await findFor(plain, win(day))).props) {
            assert.equal(ext(p, 'buffer-before'), undefined, 'no buffer extension when zero');
        }
    });

    it('held times are not offered', async () => {
        const doc = await makeDoctor();
        const day = nextDay(1);
        const p = await proposalAt(doc, day, '10:00');
        expectOneAppointment(await hold(p.id));
        const { props } = await findFor(doc, win(day));
        for (const hhmm of ['09:45', '10:00', '10:15']) assert.ok(!offered(props, doc.ref, ams(day, hhmm)), `${hhmm} is held`);
        assert.ok(offered(props, doc.ref, ams(day, '09:30')));
        assert.ok(offered(props, doc.ref, ams(day, '10:30')));
    });

    it('a Slot-based schedule offers exactly its free Slots', async () => {
        const doc = await makeDoctor({ availableTime: null });
        const day = nextDay(2);
        const slot = (hhmm, status) =>
            create(server, {
                resourceType: 'Slot',
                schedule: { reference: `Schedule/${doc.schedule.id}` },
                status,
                start: iso(ams(day, hhmm)),
                end: iso(ams(day, hhmm) + 30 * MIN),
            });
        const free1 = await slot('10:00', 'free');
        const free2 = await slot('14:00', 'free');
        await slot('11:00', 'busy');
        await slot('12:00', 'busy-unavailable');
        await slot('15:00', 'busy-tentative');
        const { props } = await findFor(doc, win(day));
        assert.equal(props.length, 2, 'two free Slots');
        const bySlot = Object.fromEntries(props.map((p) => [p.slot?.[0]?.reference, p]));
        for (const s of [free1, free2]) {
            const p = bySlot[`Slot/${s.id}`];
            assert.ok(p, `a proposal for Slot/${s.id}`);
            assert.equal(Date.parse(p.start), Date.parse(s.start), 'exactly the Slot start');
            assert.equal(Date.parse(p.end), Date.parse(s.end), 'exactly the Slot end');
            assert.ok(has(p, doc.ref));
        }
        // Booking one makes that Slot busy: one left.
        await create(server, restAppt([doc.ref], Date.parse(free1.start), 30, { slot: [{ reference: `Slot/${free1.id}` }] }));
        const after = await findFor(doc, win(day));
        assert.equal(after.props.length, 1);
        assert.equal(after.props[0].slot[0].reference, `Slot/${free2.id}`);
    });

    it('busy-unavailable Slots block a rule-based schedule', async () => {
        const doc = await makeDoctor();
        const day = nextDay(3);
        await create(server, {
            resourceType: 'Slot',
            schedule: { reference: `Schedule/${doc.schedule.id}` },
            status: 'busy-unavailable',
            start: iso(ams(day, '10:00')),
            end: iso(ams(day, '12:00')),
        });
        const { props } = await findFor(doc, win(day));
        assert.ok(props.length > 0);
        for (const p of props) assert.ok(Date.parse(p.end) <= ams(day, '10:00') || Date.parse(p.start) >= ams(day, '12:00'));
        assert.ok(offered(props, doc.ref, ams(day, '09:30')));
        assert.ok(offered(props, doc.ref, ams(day, '12:00')));
        assert.ok(props.every((p) => !p.slot), 'rule-based proposals reference no Slot');
    });

    it('a booked appointment takes its time away (plain REST)', async () => {
        const doc = await makeDoctor();
        const day = nextDay(0);
        await create(server, restAppt([doc.ref], ams(day, '09:00'), 60));
        const { props } = await findFor(doc, win(day));
        assert.equal(local(Date.parse(props[0].start)).time, '10:00');
    });

    it('nothing is offered before now, even when the window began earlier', async () => {
        const doc = await makeDoctor({ availableTime: ALL_WEEK });
        const asked = Date.now();
        const w = { start: iso(ams(addDays(TODAY, -1), '00:00')), end: iso(ams(addDays(TODAY, 6), '00:00')) };
        const { props } = await find([...windowPairs(w), ['visit-type', doc.visitType], ['_count', '200']]);
        assert.ok(props.length > 0);
        for (const p of props) assert.ok(Date.parse(p.start) >= asked - MIN, `${p.start} is not in the past`);
    });

    it('nothing available: total 0 and one OperationOutcome entry', async () => {
        const sunday = addDays(EVA_WEEK, 6);
        const r = await find([...windowPairs(win(sunday)), ['practitioner', EVA], ['visit-type', GP_TYPE]]);
        assert.equal(r.bundle.total, 0);
        const viaPost = await find([...windowPairs(win(sunday)), ['practitioner', EVA]], { method: 'POST' });
        assert.equal(viaPost.bundle.total, 0);
    });
});

describe('$find: bad input is 400', () => {
    const day = nextDay(0);
    const w = win(day);
    const bad = [
        ['no start', [['end', w.end]]],
        ['no end', [['start', w.start]]],
        ['end equal to start', [['start', w.start], ['end', w.start]]],
        ['end before start', [['start', w.end], ['end', w.start]]],
        ['a window of 94 days', [['start', w.start], ['end', iso(Date.parse(w.start) + 94 * DAY)]]],
        ['a malformed start', [['start', '2026-13-45'], ['end', w.end]]],
        ['a malformed end', [['start', w.start], ['end', 'tomorrow']]],
        ['an unknown parameter', [...windowPairs(w), ['colour', 'blue']]],
        ['a malformed practitioner reference', [...windowPairs(w), ['practitioner', 'dr eva de jong']]],
        ['a malformed location-reference', [...windowPairs(w), ['location-reference', '/']]],
        ['a malformed _count', [...windowPairs(w), ['_count', 'many']]],
        ['a negative _count', [...windowPairs(w), ['_count', '-1']]],
    ];
    for (const [what, pairs] of bad) {
        it(`GET with ${what}`, async () => {
            expectBadRequest(await findRaw(pairs));
        });
    }
    it('a window of exactly 93 days is fine', async () => {
        await find([['start', w.start], ['end', iso(Date.parse(w.start) + 93 * DAY)], ['practitioner', EVA], ['_count', '1']]);
    });
    it('POST: missing start, unknown parameter, wrong value type, not a Parameters body', async () => {
        expectBadRequest(await findRaw([['end', w.end]], { method: 'POST' }));
        expectBadRequest(await findRaw([...windowPairs(w)], { method: 'POST', extra: [{ name: 'colour', valueString: 'blue' }] }));
        expectBadRequest(
            await fhir(server, 'POST', '/Appointment/$find', {
                body: parameters({ name: 'start', valueString: 'soon' }, { name: 'end', valueDateTime: w.end }),
            }),
        );
        expectBadRequest(
            await fhir(server, 'POST', '/Appointment/$find', { body: { resourceType: 'Patient', name: [{ family: 'x' }] } }),
        );
        expectBadRequest(await fhir(server, 'POST', '/Appointment/$find', { body: '{"resourceType":"Parameters",' }));
    });
});

describe('$hold', { skip: SKIP_DEMO }, () => {
    it('holds a proposal: pending, hold-expires, Expires header; a plain read serves the hold', async () => {
        const doc = await makeDoctor();
        const day = nextDay(1);
        const p = await proposalAt(doc, day, '11:00');
        const before = Date.now();
        const res = await hold(p.id);
        const { appt } = expectOneAppointment(res);
        assert.equal(appt.id, p.id, 'the hold keeps the proposal id');
        assert.equal(appt.status, 'pending');
        assert.equal(appt.start, p.start);
        assert.equal(appt.end, p.end);
        const expires = ext(appt, 'hold-expires')?.valueInstant;
        assert.ok(expires, 'hold-expires');
        const t = Date.parse(expires);
        assert.ok(t >= before + 290_000 && t <= Date.now() + 310_000, `the default hold lasts 300 s: ${expires}`);
        const header = res.headers.get('expires');
        assert.ok(header, 'Expires header');
        assert.ok(Math.abs(Date.parse(header) - t) < 1000, `Expires ${header} = hold-expires ${expires}`);
        const stored = await read(p.id);
        assert.equal(stored.status, 'pending');
        assert.ok(stored.meta.versionId, 'a stored Appointment with a version');
    });

    it('hold-ttl on the service sets the hold length', async () => {
        const doc = await makeDoctor({ serviceExt: [{ url: `${EXT}hold-ttl`, valueDuration: dur(45, 's') }] });
        const p = await proposalAt(doc, nextDay(2), '09:00');
        const before = Date.now();
        const { appt } = expectOneAppointment(await hold(p.id));
        const t = Date.parse(ext(appt, 'hold-expires').valueInstant);
        assert.ok(t >= before + 44_000 && t <= Date.now() + 46_000, `45 s: ${new Date(t).toISOString()}`);
    });

    it('holding the same proposal twice, or the same time from another $find: 409', async () => {
        const doc = await makeDoctor();
        const day = nextDay(3);
        const a = await proposalAt(doc, day, '14:00');
        const b = await proposalAt(doc, day, '14:00');
        assert.notEqual(a.id, b.id);
        expectOneAppointment(await hold(a.id));
        expectOutcome(await hold(a.id), 409);
        const oo = expectOutcome(await hold(b.id), 409, 'conflict');
        assert.match(JSON.stringify(oo.issue), /taken/i, 'the time was just taken');
        // Nothing was stored for b.
        const rb = await fhir(server, 'GET', `/Appointment/${b.id}`);
        if (rb.status === 200) assert.equal(rb.json.status, 'proposed', 'b is still only a proposal');
    });

    it('a time booked over REST after $find cannot be held: 409', async () => {
        const doc = await makeDoctor();
        const day = nextDay(4);
        const p = await proposalAt(doc, day, '15:00');
        await create(server, restAppt([doc.ref], ams(day, '15:15'), 30));
        expectOutcome(await hold(p.id), 409, 'conflict');
    });

    it('a rule broken since $find (the service now needs 10 days notice): $hold and $book are 422', async () => {
        const doc = await makeDoctor();
        const day = nextDay(1); // within 10 days
        const p1 = await proposalAt(doc, day, '09:00');
        const p2 = await proposalAt(doc, day, '10:00');
        const svc = { ...doc.svc, extension: [...doc.svc.extension, { url: `${EXT}minimum-notice`, valueDuration: dur(10, 'd') }] };
        expectStatus(await fhir(server, 'PUT', `/HealthcareService/${svc.id}`, { body: svc }), 200);
        expectOutcome(await hold(p1.id), 422, 'business-rule');
        expectOutcome(await book(ref('appointment-reference', `Appointment/${p2.id}`)), 422, 'business-rule');
        // Nothing was stored: both still read as proposals.
        assert.equal((await read(p1.id)).status, 'proposed');
        assert.equal((await read(p2.id)).status, 'proposed');
    });

    it('unknown or malformed proposals: 400', async () => {
        expectBadRequest(await hold('prop-00000000000000000000000000000000-0'), 'not-found');
        expectBadRequest(await fhir(server, 'POST', '/Appointment/$hold', { body: parameters() }));
        expectBadRequest(
            await fhir(server, 'POST', '/Appointment/$hold', { body: parameters({ name: 'appointment-reference', valueString: 'x' }) }),
        );
    });
});

describe('$book', { skip: SKIP_DEMO }, () => {
    it('books a proposal with an existing patient; the time is gone from $find', async () => {
        const doc = await makeDoctor();
        const day = nextDay(0);
        const p = await proposalAt(doc, day, '09:30');
        const { appt } = expectOneAppointment(await book(ref('appointment-reference', `Appointment/${p.id}`), patientParam({ id: 'pat-sanne-bakker' })));
        assert.equal(appt.id, p.id);
        assert.equal(appt.status, 'booked');
        const part = appt.participant.find((x) => x.actor.reference === SANNE);
        assert.equal(part?.status, 'accepted', 'the patient, accepted');
        assert.equal((await read(p.id)).status, 'booked');
        const { props } = await findFor(doc, win(day));
        assert.ok(!offered(props, doc.ref, ams(day, '09:30')));
        // Booked already: neither $book nor $hold again.
        expectOutcome(await book(ref('appointment-reference', `Appointment/${p.id}`)), 409);
        expectOutcome(await hold(p.id), 409);
    });

    it('books a held proposal', async () => {
        const doc = await makeDoctor();
        const p = await proposalAt(doc, nextDay(1), '13:00');
        expectOneAppointment(await hold(p.id));
        const { appt } = expectOneAppointment(await book(ref('appointment-reference', `Appointment/${p.id}`), patientParam({ id: 'pat-daan-mulder' })));
        assert.equal(appt.status, 'booked');
        assert.ok(has(appt, DAAN));
    });

    // The server skips the Slot follow-up only when neither the version read nor the one written references a Slot.
    it('a held Slot proposal: free while held, busy when booked, free again when the booking stops naming it', async () => {
        const doc = await makeDoctor({ availableTime: null });
        const day = nextDay(3);
        const slot = await create(server, {
            resourceType: 'Slot',
            schedule: { reference: `Schedule/${doc.schedule.id}` },
            status: 'free',
            start: iso(ams(day, '10:00')),
            end: iso(ams(day, '10:30')),
        });
        const slotStatus = async () => (await fhir(server, 'GET', `/Slot/${slot.id}`)).json.status;
        const { props } = await findFor(doc, win(day));
        assert.equal(props.length, 1);
        assert.equal(props[0].slot?.[0]?.reference, `Slot/${slot.id}`);
        expectOneAppointment(await hold(props[0].id));
        assert.equal(await slotStatus(), 'free', 'a hold leaves its Slot free');
        const { appt } = expectOneAppointment(await book(ref('appointment-reference', `Appointment/${props[0].id}`), patientParam({ id: 'pat-daan-mulder' })));
        assert.equal(appt.status, 'booked');
        assert.equal(await slotStatus(), 'busy', 'booking the held proposal takes its Slot');
        // Changed into a booking of the same time that names no Slot: the Slot the stored version took is freed.
        const { slot: _dropped, ...withoutSlot } = await read(appt.id);
        const { appt: changed } = expectOneAppointment(await book(apptParam(withoutSlot)));
        assert.equal(changed.slot, undefined);
        assert.equal(await slotStatus(), 'free', 'a booking that no longer names its Slot frees it');
    });

    it('a comment becomes Appointment.comment', async () => {
        const doc = await makeDoctor();
        const p = await proposalAt(doc, nextDay(2), '13:00');
        const { appt } = expectOneAppointment(
            await book(ref('appointment-reference', `Appointment/${p.id}`), { name: 'comment', valueString: 'Wheelchair access' }),
        );
        assert.equal(appt.comment, 'Wheelchair access');
    });

    it('patients: matched by identifier, or created when unknown', async () => {
        const doc = await makeDoctor();
        const day = nextDay(3);
        const p1 = await proposalAt(doc, day, '09:00');
        const r1 = expectOneAppointment(
            await book(ref('appointment-reference', `Appointment/${p1.id}`), patientParam({ identifier: [{ system: MRN, value: 'MRN-100002' }] })),
        );
        assert.ok(has(r1.appt, DAAN), 'MRN-100002 is Daan Mulder');

        const mrn = uniq('MRN');
        const p2 = await proposalAt(doc, day, '10:00');
        const r2 = expectOneAppointment(
            await book(
                ref('appointment-reference', `Appointment/${p2.id}`),
                patientParam({ identifier: [{ system: MRN, value: mrn }], name: [{ family: 'Nieuw', given: ['Noa'] }], birthDate: '2001-02-03' }),
            ),
        );
        const made = await fhir(server, 'GET', `/Patient?identifier=${encodeURIComponent(`${MRN}|${mrn}`)}`);
        expectStatus(made, 200);
        assert.equal(made.json.total, 1, 'the patient was created once');
        const pid = made.json.entry[0].resource.id;
        assert.ok(has(r2.appt, `Patient/${pid}`));
        assert.equal(made.json.entry[0].resource.name[0].family, 'Nieuw');
    });

    it('patients by id: stored ones joined, an unknown or deleted id written as given, all in the one booking', async () => {
        const doc = await makeDoctor();
        const day = nextDay(3);
        const gone = uniq('pat-gone');
        await put(server, { resourceType: 'Patient', id: gone, name: [{ family: 'Weg' }] });
        expectStatus(await fhir(server, 'DELETE', `/Patient/${gone}`), 200);
        const fresh = uniq('pat-new');
        const p = await proposalAt(doc, day, '11:00');
        const { appt } = expectOneAppointment(
            await book(
                ref('appointment-reference', `Appointment/${p.id}`),
                patientParam({ id: 'pat-daan-mulder' }),
                patientParam({ id: fresh, name: [{ family: 'Nieuw' }] }),
                patientParam({ id: gone, name: [{ family: 'Terug' }] }),
            ),
        );
        for (const key of [DAAN, `Patient/${fresh}`, `Patient/${gone}`]) assert.ok(has(appt, key), `${key} takes part`);
        const made = await fhir(server, 'GET', `/Patient/${fresh}`);
        expectStatus(made, 200);
        assert.equal(made.json.name[0].family, 'Nieuw');
        const back = await fhir(server, 'GET', `/Patient/${gone}`);
        expectStatus(back, 200);
        assert.equal(back.json.name[0].family, 'Terug');

        // a patient that cannot be written fails the booking as a whole: the time stays free
        const q = await proposalAt(doc, day, '12:00');
        const refused = await book(
            ref('appointment-reference', `Appointment/${q.id}`),
            patientParam({ id: 'pat-daan-mulder' }),
            patientParam({ id: uniq('pat-bad'), birthDate: 'not-a-date' }),
        );
        assert.ok(refused.status >= 400 && refused.status < 500, `a bad patient is refused (${refused.status})`);
        const again = await book(ref('appointment-reference', `Appointment/${q.id}`), patientParam({ id: 'pat-daan-mulder' }));
        expectOneAppointment(again);
    });

    it('a new booking from appointment-resource (status pending or booked)', async () => {
        const doc = await makeDoctor();
        const day = nextDay(4);
        for (const [status, hhmm] of [
            ['pending', '10:00'],
            ['booked', '11:00'],
        ]) {
            const resource = restAppt([doc.ref, doc.roleRef, doc.clinicRef, doc.svcRef, SANNE], ams(day, hhmm), 30, { status });
            const { appt } = expectOneAppointment(await book(apptParam(resource)));
            assert.equal(appt.status, 'booked');
            assert.ok(appt.id && !appt.id.startsWith('prop-'), 'a new id');
            assert.equal(Date.parse(appt.start), ams(day, hhmm));
            assert.equal((await read(appt.id)).status, 'booked');
        }
        const { props } = await findFor(doc, win(day));
        assert.ok(!offered(props, doc.ref, ams(day, '10:00')) && !offered(props, doc.ref, ams(day, '11:00')));
        // The same time again: 409.
        const again = restAppt([doc.ref, doc.roleRef, doc.clinicRef, doc.svcRef, DAAN], ams(day, '10:00'), 30);
        expectOutcome(await book(apptParam(again)), 409, 'conflict');
    });

    it("somebody else's hold: 409; the holder's patient may book it", async () => {
        const doc = await makeDoctor();
        const day = nextDay(0, { weeks: 1 });
        const p = await proposalAt(doc, day, '10:00', [['patient-reference', SANNE]]);
        assert.ok(has(p, SANNE));
        expectOneAppointment(await hold(p.id));
        expectOutcome(await book(ref('appointment-reference', `Appointment/${p.id}`), patientParam({ id: 'pat-daan-mulder' })), 409);
        assert.equal((await read(p.id)).status, 'pending');
        const { appt } = expectOneAppointment(await book(ref('appointment-reference', `Appointment/${p.id}`), patientParam({ id: 'pat-sanne-bakker' })));
        assert.equal(appt.status, 'booked');
    });

    it('a proposal whose time was taken meanwhile: 409, nothing stored', async () => {
        const doc = await makeDoctor();
        const day = nextDay(1, { weeks: 1 });
        const p = await proposalAt(doc, day, '16:00');
        await create(server, restAppt([doc.ref], ams(day, '16:00'), 30));
        expectOutcome(await book(ref('appointment-reference', `Appointment/${p.id}`)), 409, 'conflict');
        const r = await fhir(server, 'GET', `/Appointment/${p.id}`);
        if (r.status === 200) assert.equal(r.json.status, 'proposed');
    });

    it('cancel: status cancelled with a comment; the time is offered again', async () => {
        const doc = await makeDoctor();
        const day = nextDay(2, { weeks: 1 });
        const p = await proposalAt(doc, day, '10:30');
        const { appt } = expectOneAppointment(await book(ref('appointment-reference', `Appointment/${p.id}`), patientParam({ id: 'pat-sanne-bakker' })));
        const res = await book(apptParam({ ...appt, status: 'cancelled' }), { name: 'comment', valueString: 'Patient called to cancel' });
        const { appt: cancelled, outcomes } = expectOneAppointment(res);
        assert.equal(cancelled.status, 'cancelled');
        assert.equal(cancelled.cancelationReason?.text, 'Patient called to cancel');
        assert.notEqual(ext(cancelled, 'late-cancellation')?.valueBoolean, true, 'in time: not late');
        assert.ok(!outcomes.some((o) => o.issue.some((i) => i.severity === 'warning')), 'no warning');
        assert.equal((await read(p.id)).status, 'cancelled');
        const { props } = await findFor(doc, win(day));
        assert.ok(offered(props, doc.ref, ams(day, '10:30')), 'offered again');
    });

    it('a cancellation inside the cancellation-cutoff is done but flagged late, with a warning', async () => {
        const doc = await makeDoctor({ serviceExt: [{ url: `${EXT}cancellation-cutoff`, valueDuration: dur(60, 'd') }] });
        const day = nextDay(3, { weeks: 1 });
        const p = await proposalAt(doc, day, '10:30');
        const { appt } = expectOneAppointment(await book(ref('appointment-reference', `Appointment/${p.id}`)));
        const res = await book(apptParam({ ...appt, status: 'cancelled', cancelationReason: { text: 'Ill' } }));
        const { appt: cancelled, outcomes } = expectOneAppointment(res);
        assert.equal(cancelled.status, 'cancelled');
        assert.equal(cancelled.cancelationReason?.text, 'Ill');
        assert.equal(ext(cancelled, 'late-cancellation')?.valueBoolean, true, 'late-cancellation');
        assert.ok(outcomes.some((o) => o.issue.some((i) => i.severity === 'warning')), 'a warning issue');
    });

    it('reschedule: onto a taken time 409 and nothing changes; onto a free time the old one is offered again', async () => {
        const doc = await makeDoctor();
        const day = nextDay(4, { weeks: 1 });
        const p = await proposalAt(doc, day, '09:00');
        const { appt } = expectOneAppointment(await book(ref('appointment-reference', `Appointment/${p.id}`), patientParam({ id: 'pat-sanne-bakker' })));
        await create(server, restAppt([doc.ref], ams(day, '11:00'), 30));
        const storedBefore = await read(appt.id);

        const onto = { ...storedBefore, start: iso(ams(day, '11:15')), end: iso(ams(day, '11:45')) };
        expectOutcome(await book(apptParam(onto)), 409, 'conflict');
        const unchanged = await read(appt.id);
        assert.equal(unchanged.meta.versionId, storedBefore.meta.versionId, 'no new version');
        assert.equal(unchanged.start, storedBefore.start);
        let { props } = await findFor(doc, win(day));
        assert.ok(!offered(props, doc.ref, ams(day, '09:00')), 'the old time is still taken');

        // Partly overlapping its own old time is fine (the new time is secured before the old one is released).
        const moved = { ...storedBefore, start: iso(ams(day, '09:15')), end: iso(ams(day, '09:45')) };
        const { appt: r1 } = expectOneAppointment(await book(apptParam(moved)));
        assert.equal(r1.status, 'booked');
        assert.equal(Date.parse(r1.start), ams(day, '09:15'));
        const later = { ...(await read(appt.id)), start: iso(ams(day, '14:00')), end: iso(ams(day, '14:30')) };
        const { appt: r2 } = expectOneAppointment(await book(apptParam(later)));
        assert.equal(r2.id, appt.id);
        assert.equal(Date.parse((await read(appt.id)).start), ams(day, '14:00'));
        ({ props } = await findFor(doc, win(day)));
        assert.ok(offered(props, doc.ref, ams(day, '09:00')), 'the old time is offered again');
        assert.ok(!offered(props, doc.ref, ams(day, '14:00')), 'the new one is taken');
    });

    it('rule refusals: outside working hours, leave, notice, horizon, wrong room type: 422', async () => {
        // Dr de Jong does not work on Fridays.
        const friday = nextDay(4, { weeks: 2 });
        const eva = [EVA, 'PractitionerRole/role-eva-de-jong', NORTH, FOLLOW, SANNE];
        const oo = expectOutcome(await book(apptParam(restAppt(eva, ams(friday, '10:00'), 20))), 422, 'business-rule');
        assert.ok(JSON.stringify(oo.issue).length > 40, 'the outcome names the rule');
        // Before the clinic opens on a Monday.
        expectOutcome(await book(apptParam(restAppt(eva, ams(nextDay(0, { weeks: 2 }), '07:00'), 20))), 422, 'business-rule');

        // Leave.
        const day = nextDay(2, { weeks: 2 });
        const onLeave = await makeDoctor({
            notAvailable: [{ description: 'Leave', during: { start: iso(ams(day, '00:00')), end: iso(ams(addDays(day, 1), '00:00')) } }],
        });
        const leaveAppt = restAppt([onLeave.ref, onLeave.roleRef, onLeave.clinicRef, onLeave.svcRef], ams(day, '10:00'), 30);
        expectOutcome(await book(apptParam(leaveAppt)), 422, 'business-rule');

        // Minimum notice of 10 days; a booking-horizon of 7 days.
        const rules = await makeDoctor({
            serviceExt: [
                { url: `${EXT}minimum-notice`, valueDuration: dur(10, 'd') },
                { url: `${EXT}booking-horizon`, valueDuration: dur(14, 'd') },
            ],
        });
        const rActors = [rules.ref, rules.roleRef, rules.clinicRef, rules.svcRef];
        let soon = addDays(TODAY, 1);
        while (weekdayOf(soon) > 4) soon = addDays(soon, 1);
        expectOutcome(await book(apptParam(restAppt(rActors, ams(soon, '10:00'), 30))), 422, 'business-rule');
        let far = addDays(TODAY, 20);
        while (weekdayOf(far) > 4) far = addDays(far, 1);
        expectOutcome(await book(apptParam(restAppt(rActors, ams(far, '10:00'), 30))), 422, 'business-rule');
        let fine = addDays(TODAY, 11);
        while (weekdayOf(fine) > 4) fine = addDays(fine, 1);
        expectOneAppointment(await book(apptParam(restAppt(rActors, ams(fine, '10:00'), 30))));

        // The ultrasound examination in a consultation room, or without a room.
        const tuesday = addDays(US_TUESDAY, 7);
        const us = [NOOR, 'PractitionerRole/role-noor-hendriks', NORTH, US_SVC, SANNE];
        expectOutcome(await book(apptParam(restAppt([...us, 'Location/room-north-1'], ams(tuesday, '10:00'), 30))), 422, 'business-rule');
        expectOutcome(await book(apptParam(restAppt(us, ams(tuesday, '10:00'), 30))), 422, 'business-rule');
        expectOneAppointment(await book(apptParam(restAppt([...us, US_ROOM], ams(tuesday, '10:00'), 30))));
        // Nothing was stored by the refusals.
        const stored = await fhir(server, 'GET', `/Appointment?practitioner=${EVA}&date=${friday}&_summary=count`);
        assert.equal(stored.json.total, 0);
    });

    it('Dr Mila Vos on leave: a booking then is 422', async (t) => {
        if (addDays(TODAY, 2) >= '2026-12-15') return t.skip('the demo leave has begun');
        const mila = [MILA, 'PractitionerRole/role-mila-vos', SOUTH, FOLLOW, SANNE];
        expectOutcome(await book(apptParam(restAppt(mila, ams('2026-12-15', '10:00'), 20))), 422, 'business-rule');
    });

    it('override-rules books despite soft rules (flagged), never despite an overlap', async () => {
        const friday = nextDay(4, { weeks: 3 });
        const eva = [EVA, 'PractitionerRole/role-eva-de-jong', NORTH, FOLLOW, DAAN];
        const resource = restAppt(eva, ams(friday, '10:00'), 20);
        const { appt } = expectOneAppointment(await book(apptParam(resource), { name: 'override-rules', valueBoolean: true }));
        assert.equal(appt.status, 'booked');
        assert.equal(ext(appt, 'rules-overridden')?.valueBoolean, true, 'rules-overridden');
        const overlap = restAppt(eva, ams(friday, '10:10'), 20);
        expectOutcome(await book(apptParam(overlap), { name: 'override-rules', valueBoolean: true }), 409, 'conflict');
        // override-rules false is the same as none.
        expectOutcome(await book(apptParam(restAppt(eva, ams(friday, '12:00'), 20)), { name: 'override-rules', valueBoolean: false }), 422);
    });

    it('bad input: 400', async () => {
        expectBadRequest(await book());
        expectBadRequest(await book(ref('appointment-reference', 'Appointment/prop-00000000000000000000000000000000-0')));
        expectBadRequest(await book({ name: 'colour', valueString: 'blue' }));
        expectBadRequest(await fhir(server, 'POST', '/Appointment/$book', { body: { resourceType: 'Patient' } }));
    });
});

describe('proposals as resources', { skip: SKIP_DEMO }, () => {
    it('a proposal id reads as the proposed Appointment while it lives; unknown ones are 404', async () => {
        const doc = await makeDoctor();
        const p = await proposalAt(doc, nextDay(0, { weeks: 2 }), '09:00');
        const r = await read(p.id);
        assert.equal(r.resourceType, 'Appointment');
        assert.equal(r.id, p.id);
        assert.equal(r.status, 'proposed');
        assert.equal(r.start, p.start);
        assert.deepEqual(refs(r).sort(), refs(p).sort());
        expectOutcome(await fhir(server, 'GET', '/Appointment/prop-00000000000000000000000000000000-0'), 404);
        // Held: the stored Appointment of that id.
        expectOneAppointment(await hold(p.id));
        assert.equal((await read(p.id)).status, 'pending');
    });
});

describe('status lifecycle over PUT', () => {
    async function appt(status, day, hhmm) {
        const dr = await create(server, { resourceType: 'Practitioner', name: [{ family: uniq('Life') }] });
        return create(server, restAppt([`Practitioner/${dr.id}`], ams(day, hhmm), 30, { status }));
    }
    async function move(a, status) {
        return fhir(server, 'PUT', `/Appointment/${a.id}`, { body: { ...a, status } });
    }
    const day = nextDay(5, { weeks: 2 });

    it('valid transitions', async () => {
        let a = await appt('booked', day, '09:00');
        for (const s of ['arrived', 'checked-in', 'arrived', 'fulfilled', 'entered-in-error']) {
            const res = await move(a, s);
            expectStatus(res, 200);
            a = res.json;
            assert.equal(a.status, s);
        }
        for (const [from, to] of [
            ['proposed', 'pending'],
            ['proposed', 'booked'],
            ['pending', 'booked'],
            ['pending', 'proposed'],
            ['waitlist', 'booked'],
            ['booked', 'noshow'],
            ['booked', 'cancelled'],
            ['cancelled', 'entered-in-error'],
            ['booked', 'booked'],
            ['cancelled', 'cancelled'],
        ]) {
            const b = await appt(from, day, '10:00');
            const res = await move(b, to);
            expectStatus(res, 200);
            assert.equal(res.json.status, to);
        }
    });

    it('invalid transitions are 422 business-rule and change nothing', async () => {
        for (const [from, to] of [
            ['fulfilled', 'booked'],
            ['cancelled', 'booked'],
            ['noshow', 'booked'],
            ['entered-in-error', 'booked'],
            ['entered-in-error', 'cancelled'],
            ['booked', 'proposed'],
            ['booked', 'pending'],
            ['proposed', 'arrived'],
            ['proposed', 'fulfilled'],
            ['arrived', 'booked'],
        ]) {
            const a = await appt(from, day, '11:00');
            expectOutcome(await move(a, to), 422, 'business-rule');
            const now = await read(a.id);
            assert.equal(now.status, from, `${from} -> ${to} refused`);
            assert.equal(now.meta.versionId, a.meta.versionId);
        }
    });

    it('PATCH of the status follows the same rules', async () => {
        const a = await appt('cancelled', day, '12:00');
        const res = await fhir(server, 'PATCH', `/Appointment/${a.id}`, {
            headers: { 'content-type': 'application/json-patch+json' },
            body: JSON.stringify([{ op: 'replace', path: '/status', value: 'booked' }]),
        });
        expectOutcome(res, 422, 'business-rule');
    });
});

describe('hold expiry (hold TTL 2 s, sweeper every 500 ms, proposals live 10 s)', { skip: SKIP_DEMO }, () => {
    let fast;
    before(async () => {
        fast = await startDemoServer({
            FHIRSCHED_SCHEDULING_HOLD_TTL_SECONDS: '2',
            FHIRSCHED_SCHEDULING_SWEEP_INTERVAL_MS: '500',
            FHIRSCHED_SCHEDULING_PROPOSAL_TTL_SECONDS: '10', // the least allowed
        });
    });
    after(async () => {
        await fast?.stop();
    });

    it('after expiry the time is offered again and the Appointment ends up cancelled', async () => {
        const day = nextDay(1, { weeks: 2 });
        const w = win(day);
        const pairs = [...windowPairs(w), ['practitioner', NOOR], ['visit-type', US_TYPE], ['_count', '200']];
        const first = await find(pairs, { s: fast });
        const t = ams(day, '11:00');
        const p = first.props.find((x) => startsAt(x, t));
        assert.ok(p, 'a proposal at 11:00');
        const res = await hold(p.id, fast);
        const { appt } = expectOneAppointment(res);
        const expires = Date.parse(ext(appt, 'hold-expires').valueInstant);
        assert.ok(expires - Date.now() <= 2500, 'a 2-second hold');

        const during = await find(pairs, { s: fast });
        assert.ok(!offered(during.props, NOOR, t), 'held: not offered');
        assert.ok(!offered(during.props, US_ROOM, t), 'the room is held too');

        await sleep(Math.max(0, expires - Date.now()) + 200);
        const afterExpiry = await find(pairs, { s: fast });
        assert.ok(offered(afterExpiry.props, NOOR, t), 'offered again once the hold has expired');

        // The sweeper cancels the expired hold.
        let stored;
        for (let i = 0; i < 40; i++) {
            const r = await fhir(fast, 'GET', `/Appointment/${p.id}`);
            expectStatus(r, 200);
            stored = r.json;
            if (stored.status === 'cancelled') break;
            await sleep(250);
        }
        assert.equal(stored.status, 'cancelled', 'the expired hold was cancelled by the sweeper');
        assert.equal(stored.cancelationReason?.text, 'hold expired');

        // The expired hold cannot be booked any more; a new proposal for the time can be held and booked.
        expectOutcome(await fhir(fast, 'POST', '/Appointment/$book', { body: parameters(ref('appointment-reference', `Appointment/${p.id}`)) }), [
            400, 409, 422,
        ]);
        const again = (await find(pairs, { s: fast })).props.find((x) => startsAt(x, t));
        expectOneAppointment(await hold(again.id, fast));
        const booked = await fhir(fast, 'POST', '/Appointment/$book', {
            body: parameters(ref('appointment-reference', `Appointment/${again.id}`)),
        });
        assert.equal(expectOneAppointment(booked).appt.status, 'booked');
    });

    it('an expired proposal reads as 404 and cannot be held or booked (400 not-found)', async () => {
        const day = nextDay(3, { weeks: 3 }); // a Thursday: Dr Hendriks works Tue and Thu
        const pairs = [...windowPairs(win(day)), ['practitioner', NOOR], ['visit-type', US_TYPE], ['_count', '5']];
        const { props } = await find(pairs, { s: fast });
        assert.ok(props.length >= 2);
        const [a, b] = props;
        expectStatus(await fhir(fast, 'GET', `/Appointment/${a.id}`), 200);
        await sleep(10_500);
        expectOutcome(await fhir(fast, 'GET', `/Appointment/${a.id}`), 404);
        expectBadRequest(await hold(a.id, fast), 'not-found');
        expectBadRequest(
            await fhir(fast, 'POST', '/Appointment/$book', { body: parameters(ref('appointment-reference', `Appointment/${b.id}`)) }),
            'not-found',
        );
    });

    it('an expired hold does not block a plain REST booking', async () => {
        const day = nextDay(3, { weeks: 2 });
        const pairs = [...windowPairs(win(day)), ['practitioner', NOOR], ['visit-type', US_TYPE], ['_count', '200']];
        const t = ams(day, '14:00');
        const p = (await find(pairs, { s: fast })).props.find((x) => startsAt(x, t));
        expectOneAppointment(await hold(p.id, fast));
        await sleep(2300);
        const res = await fhir(fast, 'POST', '/Appointment', { body: restAppt([NOOR, US_ROOM], t, 30) });
        expectStatus(res, 201);
    });
});
