// Advanced FHIR R4 search (search.html): chaining, reverse chaining (_has), _include/_revinclude (with :iterate),
// _sort, keyset paging while rows are inserted, _total, _count, _summary, _elements, and strict vs lenient
// handling of unknown parameters. Behaviour contract: issue 3. Every test makes its own resources, told apart
// from the rest by unique names, identifiers or references.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
    create,
    expectFhirJson,
    expectOutcome,
    expectStatus,
    fhir,
    link,
    patientWithIdentifier,
    sample,
    sleep,
    startServer,
    uniq,
} from '../lib/harness.mjs';

const SYS = 'http://example.org/fhir/search-advanced';
const SUBSETTED = 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue';

let server;
before(async () => {
    server = await startServer();
});
after(async () => {
    await server?.stop();
});

const enc = encodeURIComponent;
const ref = (r) => `${r.resourceType}/${r.id}`;
/** A unique lower-case word (letters only), usable as a name that no other test's search starts with. */
const word = (prefix) => `${prefix}${uniq('').replace(/[^a-f0-9]/g, '').replace(/[0-9]/g, (d) => 'ghijklmnop'[d])}`;

/** Checks a searchset Bundle and its entries; returns the Bundle. */
function checkSearchset(res, { total = true } = {}) {
    expectStatus(res, 200);
    expectFhirJson(res);
    const b = res.json;
    assert.equal(b.resourceType, 'Bundle', `${res.method} ${res.url}`);
    assert.equal(b.type, 'searchset');
    if (total) assert.ok(Number.isInteger(b.total), `searchset has a total: ${res.url}`);
    assert.ok(link(b, 'self'), 'searchset has a self link');
    let seenInclude = false;
    for (const e of b.entry || []) {
        assert.ok(e.resource, 'entry.resource');
        const mode = e.search?.mode;
        if (mode === 'outcome') {
            assert.equal(e.resource.resourceType, 'OperationOutcome', 'an outcome entry is an OperationOutcome');
            continue;
        }
        assert.ok(mode === 'match' || mode === 'include', `entry.search.mode is ${mode}`);
        if (mode === 'include') seenInclude = true;
        else assert.ok(!seenInclude, `matches come before included entries: ${res.url}`);
        assert.equal(e.fullUrl, `${server.base}/${e.resource.resourceType}/${e.resource.id}`, 'entry.fullUrl');
    }
    return b;
}

async function search(path, { headers = {}, total = true } = {}) {
    return checkSearchset(await fhir(server, 'GET', path, { headers }), { total });
}

const byMode = (b, mode) => (b.entry || []).filter((e) => e.search?.mode === mode);
const matches = (b) => byMode(b, 'match');
/** Ids of the matches, sorted (for set comparisons). */
const ids = (b) => matches(b).map((e) => e.resource.id).sort();
/** Ids of the matches in the order the server gave them. */
const ordered = (b) => matches(b).map((e) => e.resource.id);
/** "Type/id" of the included entries, sorted. */
const included = (b) => byMode(b, 'include').map((e) => ref(e.resource)).sort();
const sorted = (a) => [...a].sort();

function assertNoDuplicateEntries(b) {
    const keys = (b.entry || []).filter((e) => e.search?.mode !== 'outcome').map((e) => ref(e.resource));
    assert.equal(new Set(keys).size, keys.length, `a resource appears more than once: ${JSON.stringify(keys)}`);
}

const slot = (schedule, start, extra = {}) => {
    const s = new Date(start);
    return sample('Slot', {
        schedule: { reference: ref(schedule) },
        start: s.toISOString().replace('.000Z', 'Z'),
        end: new Date(s.getTime() + 10 * 60_000).toISOString().replace('.000Z', 'Z'),
        ...extra,
    });
};

// Each at its own hour: booked Appointments of one practitioner may not overlap.
let appointmentHour = 0;
function appointment(actors, extra = {}) {
    const start = new Date(Date.UTC(2031, 0, 6, 0, 0, 0) + appointmentHour++ * 3600_000);
    return sample('Appointment', {
        start: start.toISOString().replace('.000Z', 'Z'),
        end: new Date(start.getTime() + 1800_000).toISOString().replace('.000Z', 'Z'),
        participant: actors.map((a) => ({ actor: { reference: ref(a) }, status: 'accepted' })),
        ...extra,
    });
}

// ---------------------------------------------------------------------------------------------------------------

describe('chaining', () => {
    it('practitioner.name, practitioner.family, patient.identifier, actor:Patient.family, actor:Practitioner.name', async () => {
        const f1 = word('chp');
        const f2 = word('chp');
        const p1 = word('chq');
        const p2 = word('chq');
        const v1 = uniq('mrn');
        const v2 = uniq('mrn');
        const prac1 = await create(server, sample('Practitioner', { name: [{ family: f1, given: ['Ann'] }] }));
        const prac2 = await create(server, sample('Practitioner', { name: [{ family: f2, given: ['Bob'] }] }));
        const pat1 = await create(server, patientWithIdentifier(SYS, v1, { name: [{ family: p1 }] }));
        const pat2 = await create(server, patientWithIdentifier(SYS, v2, { name: [{ family: p2 }] }));
        const a1 = await create(server, appointment([pat1, prac1]));
        const a2 = await create(server, appointment([pat2, prac2]));
        const a3 = await create(server, appointment([pat1, prac2]));

        assert.deepEqual(ids(await search(`/Appointment?practitioner.name=${f1}`)), [a1.id]);
        assert.deepEqual(ids(await search(`/Appointment?practitioner.name=${f1.toUpperCase()}`)), [a1.id], 'chained string is case-insensitive');
        assert.deepEqual(ids(await search(`/Appointment?practitioner.family=${f2}`)), sorted([a2.id, a3.id]));
        assert.deepEqual(ids(await search(`/Appointment?practitioner.name=${f1},${f2}`)), sorted([a1.id, a2.id, a3.id]), 'OR inside a chain');
        assert.deepEqual(ids(await search(`/Appointment?patient.identifier=${enc(`${SYS}|${v1}`)}`)), sorted([a1.id, a3.id]));
        assert.deepEqual(ids(await search(`/Appointment?patient.identifier=${enc(v2)}`)), [a2.id]);
        assert.deepEqual(ids(await search(`/Appointment?actor:Patient.family=${p2}`)), [a2.id]);
        assert.deepEqual(ids(await search(`/Appointment?actor:Practitioner.name=${f1}`)), [a1.id]);
        // AND of a chain with a chain, and of a chain with a plain parameter
        assert.deepEqual(
            ids(await search(`/Appointment?practitioner.name=${f2}&patient.identifier=${enc(`${SYS}|${v1}`)}`)),
            [a3.id],
        );
        assert.deepEqual(ids(await search(`/Appointment?practitioner.name=${f2}&patient=${ref(pat2)}`)), [a2.id]);

        // no match
        assert.equal((await search(`/Appointment?practitioner.name=${word('nomatch')}`)).total, 0);
        assert.equal((await search(`/Appointment?patient.identifier=${enc(`${SYS}|${uniq('none')}`)}`)).total, 0);
        // the family belongs to a Patient, not a Practitioner
        assert.equal((await search(`/Appointment?actor:Practitioner.family=${p1}`)).total, 0);
        // a patient's identifier value does not match through the practitioner
        assert.equal((await search(`/Appointment?practitioner.identifier=${enc(v1)}`)).total, 0);
    });

    it('a chain without a type modifier searches every target type that has the parameter: actor.name', async () => {
        const name = word('chany');
        const prac = await create(server, sample('Practitioner', { name: [{ family: name }] }));
        const loc = await create(server, sample('Location', { name: `${name} room` }));
        const pat = await create(server, sample('Patient', { name: [{ family: name }] }));
        const other = await create(server, sample('Practitioner', { name: [{ family: word('chany') }] }));
        const a1 = await create(server, appointment([prac]));
        const a2 = await create(server, appointment([loc, other]));
        const a3 = await create(server, appointment([pat]));
        await create(server, appointment([other]));
        assert.deepEqual(ids(await search(`/Appointment?actor.name=${name}`)), sorted([a1.id, a2.id, a3.id]));
        assert.deepEqual(ids(await search(`/Appointment?actor:Location.name=${name}`)), [a2.id]);
        assert.deepEqual(ids(await search(`/Appointment?location.name=${name}`)), [a2.id]);
    });

    it('two levels: Slot?schedule.actor:Practitioner.name, and no match', async () => {
        const fam = word('chtwo');
        const prac = await create(server, sample('Practitioner', { name: [{ family: fam }] }));
        const other = await create(server, sample('Practitioner', { name: [{ family: word('chtwo') }] }));
        const sched = await create(server, sample('Schedule', { actor: [{ reference: ref(prac) }] }));
        const sched2 = await create(server, sample('Schedule', { actor: [{ reference: ref(other) }] }));
        const s1 = await create(server, slot(sched, '2032-02-01T09:00:00Z'));
        const s2 = await create(server, slot(sched, '2032-02-01T09:30:00Z'));
        await create(server, slot(sched2, '2032-02-01T09:00:00Z'));

        assert.deepEqual(ids(await search(`/Slot?schedule.actor:Practitioner.name=${fam}`)), sorted([s1.id, s2.id]));
        assert.deepEqual(ids(await search(`/Slot?schedule.actor:Practitioner.family=${fam}&start=ge2032-02-01T09:15:00Z`)), [s2.id]);
        assert.deepEqual(ids(await search(`/Slot?schedule.actor=${ref(prac)}`)), sorted([s1.id, s2.id]), 'chain ending in a reference');
        assert.equal((await search(`/Slot?schedule.actor:Practitioner.name=${word('nomatch')}`)).total, 0);
        // the Schedule's actor is a Practitioner: no Patient by that name
        assert.equal((await search(`/Slot?schedule.actor:Patient.name=${fam}`)).total, 0);
    });

    it('a chain through a reference to a resource that does not exist matches nothing', async () => {
        const fam = word('chghost');
        const sched = await create(server, sample('Schedule', { actor: [{ reference: `Practitioner/${uniq('ghost')}` }] }));
        await create(server, slot(sched, '2032-02-02T09:00:00Z'));
        assert.equal((await search(`/Slot?schedule.actor:Practitioner.name=${fam}`)).total, 0);
    });

    it('a chain with an unknown parameter at its end: 400 under handling=strict', async () => {
        const res = await fhir(server, 'GET', `/Appointment?practitioner.nosuchparam=x`, { headers: { Prefer: 'handling=strict' } });
        expectOutcome(res, 400);
    });
});

describe('reverse chaining (_has)', () => {
    it('Practitioner?_has:PractitionerRole:practitioner:service=..., OR, and no match', async () => {
        const hs1 = await create(server, sample('HealthcareService', { name: word('hs') }));
        const hs2 = await create(server, sample('HealthcareService', { name: word('hs') }));
        const pa = await create(server, sample('Practitioner'));
        const pb = await create(server, sample('Practitioner'));
        const pc = await create(server, sample('Practitioner'));
        await create(server, sample('PractitionerRole', { practitioner: { reference: ref(pa) }, healthcareService: [{ reference: ref(hs1) }] }));
        await create(server, sample('PractitionerRole', { practitioner: { reference: ref(pb) }, healthcareService: [{ reference: ref(hs2) }] }));
        await create(server, sample('PractitionerRole', { practitioner: { reference: ref(pc) } }));
        // two roles of pa for the same service: pa is still one match
        await create(server, sample('PractitionerRole', { practitioner: { reference: ref(pa) }, healthcareService: [{ reference: ref(hs1) }] }));

        let b = await search(`/Practitioner?_has:PractitionerRole:practitioner:service=${ref(hs1)}`);
        assert.deepEqual(ids(b), [pa.id]);
        assert.equal(b.total, 1);
        b = await search(`/Practitioner?_has:PractitionerRole:practitioner:service=${ref(hs1)},${ref(hs2)}`);
        assert.deepEqual(ids(b), sorted([pa.id, pb.id]));
        assert.equal(b.total, 2);
        assert.deepEqual(ids(await search(`/Practitioner?_has:PractitionerRole:practitioner:service=${hs2.id}`)), [pb.id], 'bare id');
        // combined with a plain parameter
        assert.deepEqual(ids(await search(`/Practitioner?_id=${pb.id},${pc.id}&_has:PractitionerRole:practitioner:service=${ref(hs1)},${ref(hs2)}`)), [pb.id]);
        // no match
        assert.equal((await search(`/Practitioner?_has:PractitionerRole:practitioner:service=HealthcareService/${uniq('none')}`)).total, 0);
    });

    it('_has with a chained parameter inside and on Patient', async () => {
        const fam = word('hasp');
        const pat1 = await create(server, sample('Patient', { name: [{ family: fam }] }));
        const pat2 = await create(server, sample('Patient', { name: [{ family: fam }] }));
        const prac = await create(server, sample('Practitioner'));
        await create(server, appointment([pat1, prac], { status: 'cancelled' }));
        await create(server, appointment([pat2, prac]));
        assert.deepEqual(ids(await search(`/Patient?family=${fam}&_has:Appointment:patient:status=cancelled`)), [pat1.id]);
        assert.deepEqual(ids(await search(`/Patient?family=${fam}&_has:Appointment:patient:status=booked`)), [pat2.id]);
        assert.deepEqual(ids(await search(`/Patient?family=${fam}&_has:Appointment:patient:actor=${ref(prac)}`)), sorted([pat1.id, pat2.id]));
        assert.equal((await search(`/Patient?family=${fam}&_has:Appointment:patient:status=noshow`)).total, 0);
    });

    it('nested _has: Patient?_has:Appointment:patient:_has:AppointmentResponse:appointment:part-status=declined', async () => {
        const fam = word('hasn');
        const pat1 = await create(server, sample('Patient', { name: [{ family: fam }] }));
        const pat2 = await create(server, sample('Patient', { name: [{ family: fam }] }));
        const a1 = await create(server, appointment([pat1], { status: 'proposed', start: undefined, end: undefined }));
        const a2 = await create(server, appointment([pat2], { status: 'proposed', start: undefined, end: undefined }));
        await create(server, sample('AppointmentResponse', { appointment: { reference: ref(a1) }, actor: { reference: ref(pat1) }, participantStatus: 'declined' }));
        await create(server, sample('AppointmentResponse', { appointment: { reference: ref(a2) }, actor: { reference: ref(pat2) }, participantStatus: 'accepted' }));
        const q = (status) => `/Patient?family=${fam}&_has:Appointment:patient:_has:AppointmentResponse:appointment:part-status=${status}`;
        assert.deepEqual(ids(await search(q('declined'))), [pat1.id]);
        assert.deepEqual(ids(await search(q('accepted'))), [pat2.id]);
        assert.deepEqual(ids(await search(q('accepted,declined'))), sorted([pat1.id, pat2.id]));
        assert.equal((await search(q('tentative'))).total, 0);
    });

    it('malformed _has: 400', async () => {
        // too few parts, an unknown type, a parameter that does not point back at the searched type
        for (const p of [
            `_has:PractitionerRole:service=x`,
            `_has:NoSuchType:practitioner:service=x`,
            `_has:PractitionerRole:location:service=x`,
        ]) {
            expectOutcome(await fhir(server, 'GET', `/Practitioner?${p}`), 400, undefined);
        }
    });
});

// ---------------------------------------------------------------------------------------------------------------

describe('_include and _revinclude', () => {
    /** A Practitioner and a Schedule of theirs with three Slots. */
    async function scheduleWithSlots() {
        const prac = await create(server, sample('Practitioner', { name: [{ family: word('inc') }] }));
        const sched = await create(server, sample('Schedule', { actor: [{ reference: ref(prac) }] }));
        const slots = [];
        for (let i = 0; i < 3; i++) slots.push(await create(server, slot(sched, Date.UTC(2032, 2, 1, 9 + i))));
        return { prac, sched, slots };
    }

    it('Slot?_include=Slot:schedule: the Schedule once, mode include, not counted in total', async () => {
        const { sched, slots } = await scheduleWithSlots();
        const b = await search(`/Slot?schedule=${ref(sched)}&_include=Slot:schedule`);
        assert.equal(b.total, 3, 'included resources do not count in total');
        assert.deepEqual(ids(b), sorted(slots.map((s) => s.id)));
        assert.deepEqual(included(b), [ref(sched)]);
        assertNoDuplicateEntries(b);
        // without _include: no include entries
        assert.deepEqual(included(await search(`/Slot?schedule=${ref(sched)}`)), []);
    });

    it('_include:iterate follows the included resources; a plain _include does not', async () => {
        const { prac, sched, slots } = await scheduleWithSlots();
        let b = await search(`/Slot?schedule=${ref(sched)}&_include=Slot:schedule&_include:iterate=Schedule:actor`);
        assert.deepEqual(ids(b), sorted(slots.map((s) => s.id)));
        assert.deepEqual(included(b), sorted([ref(sched), ref(prac)]));
        assert.equal(b.total, 3);
        assertNoDuplicateEntries(b);
        // Schedule:actor without :iterate applies to the matches (Slots) only: nothing to follow. The spec does not
        // say whether such an _include is an error, so a 400 is as good as ignoring it.
        const res = await fhir(server, 'GET', `/Slot?schedule=${ref(sched)}&_include=Slot:schedule&_include=Schedule:actor`);
        if (res.status === 400) {
            expectOutcome(res, 400);
        } else {
            assert.deepEqual(included(checkSearchset(res)), [ref(sched)]);
        }
    });

    it('Appointment?_include=Appointment:patient&_include=Appointment:practitioner, Appointment:*, Appointment:actor:Location', async () => {
        const pat = await create(server, sample('Patient'));
        const prac = await create(server, sample('Practitioner'));
        const loc = await create(server, sample('Location'));
        const { sched } = await scheduleWithSlots();
        const sl = await create(server, slot(sched, '2032-03-02T09:00:00Z', { status: 'busy' }));
        const a1 = await create(server, appointment([pat, prac, loc], { slot: [{ reference: ref(sl) }] }));
        const a2 = await create(server, appointment([pat, loc]));
        const q = `/Appointment?_id=${a1.id},${a2.id}`;

        let b = await search(`${q}&_include=Appointment:patient&_include=Appointment:practitioner`);
        assert.equal(b.total, 2);
        assert.deepEqual(ids(b), sorted([a1.id, a2.id]));
        assert.deepEqual(included(b), sorted([ref(pat), ref(prac)]), 'the shared Patient appears once; no Location');
        assertNoDuplicateEntries(b);

        b = await search(`${q}&_include=Appointment:*`);
        assert.equal(b.total, 2);
        assert.deepEqual(included(b), sorted([ref(pat), ref(prac), ref(loc), ref(sl)]), 'every reference parameter, each resource once');
        assertNoDuplicateEntries(b);

        b = await search(`${q}&_include=Appointment:actor:Location`);
        assert.deepEqual(included(b), [ref(loc)], 'target type restricts the include');

        b = await search(`/Appointment?_id=${a2.id}&_include=Appointment:practitioner`);
        assert.deepEqual(included(b), [], 'nothing to include');
    });

    it('references to missing or deleted resources include nothing', async () => {
        const pat = await create(server, sample('Patient'));
        const gone = await create(server, sample('Practitioner'));
        expectStatus(await fhir(server, 'DELETE', `/Practitioner/${gone.id}`), [200, 204]);
        const a = await create(
            server,
            sample('Appointment', {
                participant: [
                    { actor: { reference: ref(pat) }, status: 'accepted' },
                    { actor: { reference: ref(gone) }, status: 'accepted' },
                    { actor: { reference: `Practitioner/${uniq('never')}` }, status: 'accepted' },
                ],
            }),
        );
        const b = await search(`/Appointment?_id=${a.id}&_include=Appointment:actor`);
        assert.deepEqual(included(b), [ref(pat)]);
    });

    it('a resource that is a match is not repeated as an include', async () => {
        const name = word('incloc');
        const parent = await create(server, sample('Location', { name: `${name} building` }));
        const child = await create(server, sample('Location', { name: `${name} room`, partOf: { reference: ref(parent) } }));
        const b = await search(`/Location?name=${name}&_include=Location:partof`);
        assert.deepEqual(ids(b), sorted([parent.id, child.id]));
        assert.deepEqual(included(b), []);
        assertNoDuplicateEntries(b);
        const only = await search(`/Location?_id=${child.id}&_include=Location:partof`);
        assert.deepEqual(included(only), [ref(parent)]);
    });

    it('Schedule?_revinclude=Slot:schedule, and _revinclude:iterate to the Appointments of those Slots', async () => {
        const { sched, slots } = await scheduleWithSlots();
        const empty = await create(server, sample('Schedule'));
        const pat = await create(server, sample('Patient'));
        const appt = await create(server, appointment([pat], { slot: [{ reference: ref(slots[0]) }] }));
        let b = await search(`/Schedule?_id=${sched.id},${empty.id}&_revinclude=Slot:schedule`);
        assert.equal(b.total, 2, 'revincluded resources do not count in total');
        assert.deepEqual(ids(b), sorted([sched.id, empty.id]));
        assert.deepEqual(included(b), sorted(slots.map(ref)));
        assertNoDuplicateEntries(b);

        b = await search(`/Schedule?_id=${sched.id}&_revinclude=Slot:schedule&_revinclude:iterate=Appointment:slot`);
        assert.deepEqual(included(b), sorted([...slots.map(ref), ref(appt)]));
        // and back out again to the Appointment's patient
        b = await search(
            `/Schedule?_id=${sched.id}&_revinclude=Slot:schedule&_revinclude:iterate=Appointment:slot&_include:iterate=Appointment:patient`,
        );
        assert.deepEqual(included(b), sorted([...slots.map(ref), ref(appt), ref(pat)]));
        assertNoDuplicateEntries(b);
    });

    it('includes follow the page: only the resources the page\'s matches refer to', async () => {
        const p1 = await create(server, sample('Patient'));
        const p2 = await create(server, sample('Patient'));
        const tag = uniq('incpage');
        const mk = (p) => appointment([p], { identifier: [{ system: SYS, value: tag }] });
        const a = [await create(server, mk(p1)), await create(server, mk(p2))];
        const b = await search(`/Appointment?identifier=${enc(`${SYS}|${tag}`)}&_include=Appointment:patient&_count=1`);
        assert.equal(b.total, 2);
        assert.equal(matches(b).length, 1);
        const first = matches(b)[0].resource;
        const wanted = first.id === a[0].id ? p1 : p2;
        assert.deepEqual(included(b), [ref(wanted)]);
        const next = link(b, 'next');
        assert.ok(next, 'next link');
        assert.match(decodeURIComponent(next), /_include=Appointment:patient/, 'next keeps _include');
        const b2 = checkSearchset(await fhir(server, 'GET', next));
        assert.equal(matches(b2).length, 1);
        assert.deepEqual(included(b2), [ref(wanted === p1 ? p2 : p1)]);
    });

    it(':iterate follows a chain to its end and stops on a cycle', async () => {
        // site <- building <- floor <- room, and two Locations that are part of each other
        const site = await create(server, sample('Location', { name: word('itsite') }));
        const building = await create(server, sample('Location', { name: word('itb'), partOf: { reference: ref(site) } }));
        const floor = await create(server, sample('Location', { name: word('itf'), partOf: { reference: ref(building) } }));
        const room = await create(server, sample('Location', { name: word('itr'), partOf: { reference: ref(floor) } }));
        let b = await search(`/Location?_id=${room.id}&_include:iterate=Location:partof`);
        assert.deepEqual(ids(b), [room.id]);
        assert.deepEqual(included(b), sorted([ref(floor), ref(building), ref(site)]));
        b = await search(`/Location?_id=${room.id}&_include=Location:partof`);
        assert.deepEqual(included(b), [ref(floor)], 'without :iterate one step only');
        b = await search(`/Location?_id=${site.id}&_revinclude:iterate=Location:partof`);
        assert.deepEqual(included(b), sorted([ref(building), ref(floor), ref(room)]));

        const x = await create(server, sample('Location', { name: word('itx') }));
        const y = await create(server, sample('Location', { name: word('ity'), partOf: { reference: ref(x) } }));
        expectStatus(await fhir(server, 'PUT', `/Location/${x.id}`, { body: { ...x, meta: undefined, partOf: { reference: ref(y) } } }), 200);
        b = await search(`/Location?_id=${x.id}&_include:iterate=Location:partof`);
        assert.deepEqual(ids(b), [x.id]);
        assert.deepEqual(included(b), [ref(y)], 'a cycle: the match is not included again');
        assertNoDuplicateEntries(b);
    });

    it('_summary=count and _count=0 include nothing; a deleted Slot is not revincluded', async () => {
        const { sched, slots } = await scheduleWithSlots();
        for (const p of ['_summary=count', '_count=0']) {
            const b = await search(`/Slot?schedule=${ref(sched)}&_include=Slot:schedule&${p}`);
            assert.equal(b.total, 3, p);
            assert.equal((b.entry || []).filter((e) => e.search?.mode !== 'outcome').length, 0, `${p}: no entries`);
        }
        expectStatus(await fhir(server, 'DELETE', `/Slot/${slots[1].id}`), [200, 204]);
        const b = await search(`/Schedule?_id=${sched.id}&_revinclude=Slot:schedule`);
        assert.deepEqual(included(b), sorted([ref(slots[0]), ref(slots[2])]));
    });

    it('an unknown include parameter: 400 under handling=strict', async () => {
        const res = await fhir(server, 'GET', `/Slot?_include=Slot:nosuchparam`, { headers: { Prefer: 'handling=strict' } });
        expectOutcome(res, 400);
    });
});

// ---------------------------------------------------------------------------------------------------------------

describe('_sort', () => {
    it('Slot by start ascending and descending; default order is _id', async () => {
        const sched = await create(server, sample('Schedule'));
        const starts = ['2032-04-01T11:00:00Z', '2032-04-01T09:00:00Z', '2032-04-02T08:00:00Z', '2032-03-31T15:00:00Z'];
        const made = [];
        for (const s of starts) made.push(await create(server, slot(sched, s)));
        const byStart = [...made].sort((x, y) => x.start.localeCompare(y.start)).map((s) => s.id);
        const q = `/Slot?schedule=${ref(sched)}`;
        assert.deepEqual(ordered(await search(`${q}&_sort=start`)), byStart);
        assert.deepEqual(ordered(await search(`${q}&_sort=-start`)), [...byStart].reverse());
        const idAsc = made.map((s) => s.id).sort(cmpBytes);
        assert.deepEqual(ordered(await search(q)), idAsc, 'default order: _id ascending');
        assert.deepEqual(ordered(await search(`${q}&_sort=_id`)), idAsc);
        assert.deepEqual(ordered(await search(`${q}&_sort=-_id`)), [...idAsc].reverse());
    });

    it('several keys: Slot by status,-start; Patient by family,-birthdate', async () => {
        const sched = await create(server, sample('Schedule'));
        const rows = [
            ['busy', '2032-05-01T09:00:00Z'],
            ['free', '2032-05-01T09:00:00Z'],
            ['free', '2032-05-01T10:00:00Z'],
            ['busy', '2032-05-01T11:00:00Z'],
            ['free', '2032-05-01T08:00:00Z'],
        ];
        const made = [];
        for (const [status, start] of rows) made.push(await create(server, slot(sched, start, { status })));
        const expected = [...made]
            .sort((x, y) => x.status.localeCompare(y.status) || y.start.localeCompare(x.start))
            .map((s) => s.id);
        assert.deepEqual(ordered(await search(`/Slot?schedule=${ref(sched)}&_sort=status,-start`)), expected);

        const fam = word('srt');
        const people = [
            [`${fam}b`, '1980-01-01'],
            [`${fam}a`, '1970-01-01'],
            [`${fam}b`, '1990-06-15'],
            [`${fam}c`, '1960-01-01'],
            [`${fam}a`, '1975-03-03'],
        ];
        const pats = [];
        for (const [family, birthDate] of people) pats.push(await create(server, sample('Patient', { name: [{ family }], birthDate })));
        const want = [...pats]
            .sort((x, y) => x.name[0].family.localeCompare(y.name[0].family) || y.birthDate.localeCompare(x.birthDate))
            .map((p) => p.id);
        assert.deepEqual(ordered(await search(`/Patient?family=${fam}&_sort=family,-birthdate`)), want);
        const want2 = [...pats]
            .sort((x, y) => y.name[0].family.localeCompare(x.name[0].family) || x.birthDate.localeCompare(y.birthDate))
            .map((p) => p.id);
        assert.deepEqual(ordered(await search(`/Patient?family=${fam}&_sort=-family,birthdate`)), want2);
    });

    it('_lastUpdated: creation order, and an update moves a resource to the end', async () => {
        const v = uniq('srtlu');
        const made = [];
        for (let i = 0; i < 3; i++) {
            made.push(await create(server, patientWithIdentifier(SYS, v)));
            await sleep(15);
        }
        const q = `/Patient?identifier=${enc(`${SYS}|${v}`)}`;
        assert.deepEqual(ordered(await search(`${q}&_sort=_lastUpdated`)), made.map((p) => p.id));
        assert.deepEqual(ordered(await search(`${q}&_sort=-_lastUpdated`)), made.map((p) => p.id).reverse());
        expectStatus(await fhir(server, 'PUT', `/Patient/${made[0].id}`, { body: { ...made[0], gender: 'other', meta: undefined } }), 200);
        assert.deepEqual(ordered(await search(`${q}&_sort=_lastUpdated`)), [made[1].id, made[2].id, made[0].id]);
    });

    it('sorting by a reference and a token parameter', async () => {
        const tag = uniq('srtref');
        const pats = [await create(server, sample('Patient')), await create(server, sample('Patient'))];
        const mk = (p, status) =>
            appointment([p], { status, identifier: [{ system: SYS, value: tag }], ...(status === 'proposed' ? { start: undefined, end: undefined } : {}) });
        const a = [await create(server, mk(pats[0], 'proposed')), await create(server, mk(pats[1], 'booked')), await create(server, mk(pats[0], 'booked'))];
        const q = `/Appointment?identifier=${enc(`${SYS}|${tag}`)}`;
        const byStatus = ordered(await search(`${q}&_sort=status,_id`));
        assert.deepEqual(byStatus, [...[a[1].id, a[2].id].sort(cmpBytes), a[0].id]);
        const byPatient = ordered(await search(`${q}&_sort=patient,_id`));
        const samePatient = [a[0].id, a[2].id].sort(cmpBytes);
        const expectedByPatient = cmpBytes(`Patient/${pats[0].id}`, `Patient/${pats[1].id}`) < 0 ? [...samePatient, a[1].id] : [a[1].id, ...samePatient];
        assert.deepEqual(byPatient, expectedByPatient);
    });

    it('an unknown sort key: 400', async () => {
        for (const s of ['nosuchparam', '-nosuchparam', 'start,nosuchparam', '']) {
            const res = await fhir(server, 'GET', `/Slot?_sort=${s}`);
            expectOutcome(res, 400);
            assert.match(JSON.stringify(res.json), /_sort/, 'the OperationOutcome names _sort');
        }
    });
});

/** Byte-wise string order (PostgreSQL's "C" collation, what _id ascending means on the test clusters). */
function cmpBytes(a, b) {
    const x = Buffer.from(a);
    const y = Buffer.from(b);
    return Buffer.compare(x, y);
}

// ---------------------------------------------------------------------------------------------------------------

describe('keyset paging', () => {
    /** Follows `next` (or `previous`) links from a Bundle; returns the pages, the first included. */
    async function walk(first, relation, { max = 20, between } = {}) {
        const pages = [first];
        let b = first;
        for (let i = 0; i < max; i++) {
            const url = link(b, relation);
            if (!url) return pages;
            if (between) await between(pages.length, b);
            b = checkSearchset(await fhir(server, 'GET', url));
            pages.push(b);
        }
        assert.fail(`more than ${max} pages following ${relation}`);
    }

    function checkLinks(b, params) {
        for (const rel of ['next', 'previous']) {
            const url = link(b, rel);
            if (!url) continue;
            assert.ok(url.startsWith(`${server.base}/`), `${rel} link is absolute on our base: ${url}`);
            const u = new URL(url);
            assert.ok(u.searchParams.get('_cursor'), `${rel} link carries a _cursor: ${url}`);
            for (const [k, v] of Object.entries(params)) {
                assert.ok(u.searchParams.getAll(k).includes(v), `${rel} link keeps ${k}=${v}: ${url}`);
            }
        }
    }

    it('Slot?_sort=start&_count=10 over 25 rows: next to the end and previous back, with rows inserted on both sides of the cursor', async () => {
        const sched = await create(server, sample('Schedule'));
        const base = Date.UTC(2033, 0, 10, 8, 0);
        const minute = 60_000;
        // 25 Slots 10 minutes apart, created in a scrambled order
        const order = Array.from({ length: 25 }, (_, i) => (i * 7) % 25);
        const byIndex = new Map();
        for (const i of order) byIndex.set(i, await create(server, slot(sched, base + i * 10 * minute)));
        const original = Array.from({ length: 25 }, (_, i) => byIndex.get(i).id);
        const q = `/Slot?schedule=${ref(sched)}&_sort=start&_count=10`;
        const params = { schedule: ref(sched), _sort: 'start', _count: '10' };

        const first = await search(q);
        assert.equal(first.total, 25);
        assert.deepEqual(ordered(first), original.slice(0, 10));
        assert.ok(link(first, 'next'), 'next link on page 1');
        assert.equal(link(first, 'previous'), undefined, 'no previous link on page 1');
        checkLinks(first, params);

        const added = [];
        const addAt = async (ms) => {
            const s = await create(server, slot(sched, ms));
            added.push(s.id);
            return s;
        };
        const forward = await walk(first, 'next', {
            async between(n) {
                // n pages (rows 0 .. 10n-1) seen: before the next page add one row before everything, one among the
                // rows already seen, one just after the cursor and one after everything. The first two must never
                // show up on later pages; the last two may.
                await addAt(base - n * 60 * minute);
                await addAt(base + (10 * n - 6) * 10 * minute + 5 * minute);
                await addAt(base + (10 * n + 1) * 10 * minute + 3 * minute);
                await addAt(base + 30 * 10 * minute + n * minute);
            },
        });
        for (const p of forward) checkLinks(p, params);
        assert.ok(forward.length >= 3, `at least 3 pages (got ${forward.length})`);
        const seen = forward.flatMap(ordered);
        assert.equal(new Set(seen).size, seen.length, `no row repeated going forward: ${JSON.stringify(seen)}`);
        assert.deepEqual(
            seen.filter((id) => original.includes(id)),
            original,
            'every row that existed when paging started is seen once, in order, despite inserts',
        );
        // a row inserted before the cursor showing up later would break the start order
        const seenStarts = forward.flatMap((p) => matches(p).map((e) => e.resource.start));
        assert.deepEqual(seenStarts, [...seenStarts].sort(), 'pages follow one another in start order');
        const last = forward[forward.length - 1];
        assert.equal(link(last, 'next'), undefined, 'no next link on the last page');
        assert.ok(link(last, 'previous'), 'previous link on the last page');

        // back from the last page to the first
        const backward = await walk(last, 'previous');
        const back = backward
            .slice(1)
            .reverse()
            .flatMap(ordered);
        assert.equal(new Set(back).size, back.length, 'no row repeated going backward');
        for (const p of backward.slice(1)) {
            const starts = matches(p).map((e) => e.resource.start);
            assert.deepEqual(starts, [...starts].sort(), 'a previous page is still in ascending order');
            assert.ok(matches(p).length <= 10);
        }
        // everything before the last page, now including the rows inserted meanwhile
        const lastFirstStart = matches(last)[0].resource.start;
        const all = await search(`/Slot?schedule=${ref(sched)}&_sort=start&_count=1000`);
        const expectedBefore = matches(all)
            .filter((e) => e.resource.start < lastFirstStart)
            .map((e) => e.resource.id);
        assert.deepEqual(back, expectedBefore, 'walking previous links back covers every row before the last page, in order');
        const firstAgain = backward[backward.length - 1];
        assert.equal(link(firstAgain, 'previous'), undefined, 'no previous link on the first page');
        assert.equal(all.total, 25 + added.length);
    });

    it('default _id order: 25 Patients paged by 10 while ids before and after the cursor are created', async () => {
        const v = uniq('kpid');
        const stem = uniq('kp');
        const put = async (id) => {
            const res = await fhir(server, 'PUT', `/Patient/${id}`, { body: patientWithIdentifier(SYS, v, { id }) });
            expectStatus(res, 201);
            return id;
        };
        const original = [];
        for (let i = 0; i < 25; i++) original.push(await put(`${stem}-m${String(i).padStart(2, '0')}`));
        original.sort(cmpBytes);
        const q = `/Patient?identifier=${enc(`${SYS}|${v}`)}&_count=10`;
        const first = await search(q);
        assert.equal(first.total, 25);
        assert.deepEqual(ordered(first), original.slice(0, 10));
        let n = 0;
        const forward = await walk(first, 'next', {
            async between() {
                n++;
                await put(`${stem}-a${n}`); // sorts before every original id
                await put(`${stem}-m${String(n * 10 - 5).padStart(2, '0')}x`); // inside the pages already seen
                await put(`${stem}-z${n}`); // after every original id
            },
        });
        checkLinks(first, { identifier: `${SYS}|${v}`, _count: '10' });
        const seen = forward.flatMap(ordered);
        assert.equal(new Set(seen).size, seen.length, 'no row repeated');
        assert.deepEqual(seen.filter((id) => original.includes(id)), original, 'no original row skipped or repeated');
        for (const id of seen) assert.ok(!/-a\d+$/.test(id) && !/x$/.test(id), `a row inserted before the cursor appeared: ${id}`);
        assert.deepEqual(seen, [...seen].sort(cmpBytes), '_id ascending across pages');
    });

    it('ties on the sort key across page boundaries: every row once, forwards and backwards', async () => {
        const sched = await create(server, sample('Schedule'));
        const made = [];
        for (let i = 0; i < 12; i++) {
            made.push(await create(server, slot(sched, i < 8 ? '2033-01-20T09:00:00Z' : '2033-01-20T08:00:00Z', { status: i % 3 ? 'free' : 'busy' })));
        }
        for (const sortKey of ['start', '-start', 'status,-start', '-status']) {
            const first = await search(`/Slot?schedule=${ref(sched)}&_sort=${sortKey}&_count=5`);
            const pages = await walk(first, 'next');
            const seen = pages.flatMap(ordered);
            assert.equal(pages.length, 3, `_sort=${sortKey}: 3 pages`);
            assert.equal(new Set(seen).size, 12, `_sort=${sortKey}: every row once (${seen.length} seen)`);
            assert.deepEqual(sorted(seen), sorted(made.map((m) => m.id)));
            const back = await walk(pages[pages.length - 1], 'previous');
            const backSeen = back.slice(1).reverse().flatMap(ordered);
            assert.deepEqual(backSeen, seen.slice(0, backSeen.length), `_sort=${sortKey}: previous pages hold the same rows in the same order`);
            assert.equal(backSeen.length, seen.length - matches(pages[pages.length - 1]).length);
        }
    });

    it('paging on _lastUpdated, on a string key with ties, and on a date some rows lack: every row once', async () => {
        const v = uniq('pgk');
        const fam = word('pgk');
        const made = [];
        for (let i = 0; i < 7; i++) {
            const extra = { name: [{ family: `${fam}${'abc'[i % 3]}` }] };
            if (i % 3 !== 1) extra.birthDate = `19${50 + i}-01-01`;
            made.push(await create(server, patientWithIdentifier(SYS, v, extra)));
        }
        const all = sorted(made.map((p) => p.id));
        for (const key of ['_lastUpdated', '-_lastUpdated', 'family', '-family,_id', 'birthdate', '-birthdate']) {
            const first = await search(`/Patient?identifier=${enc(`${SYS}|${v}`)}&_sort=${key}&_count=2`);
            assert.equal(first.total, 7);
            const pages = await walk(first, 'next');
            const seen = pages.flatMap(ordered);
            assert.equal(pages.length, 4, `_sort=${key}: 4 pages`);
            assert.deepEqual(sorted(seen), all, `_sort=${key}: every row once (${JSON.stringify(seen)})`);
            const one = await search(`/Patient?identifier=${enc(`${SYS}|${v}`)}&_sort=${key}&_count=100`);
            assert.deepEqual(seen, ordered(one), `_sort=${key}: pages follow the order of one big page`);
        }
        const lu = ordered(await search(`/Patient?identifier=${enc(`${SYS}|${v}`)}&_sort=_lastUpdated&_count=100`));
        assert.deepEqual(lu, made.map((p) => p.id), '_lastUpdated ascending is creation order');
    });

    it('a system-level search (_type) pages across types: every resource once', async () => {
        const code = uniq('systag');
        const tag = { meta: { tag: [{ system: SYS, code }] } };
        const made = [];
        for (let i = 0; i < 3; i++) {
            made.push(await create(server, sample('Patient', tag)));
            made.push(await create(server, sample('Practitioner', tag)));
        }
        const want = sorted(made.map(ref));
        for (const extra of ['', '&_sort=-_lastUpdated']) {
            const first = checkSearchset(await fhir(server, 'GET', `?_type=Patient,Practitioner&_tag=${enc(`${SYS}|${code}`)}&_count=4${extra}`));
            assert.equal(first.total, 6);
            const pages = await walk(first, 'next');
            assert.equal(pages.length, 2);
            const seen = pages.flatMap((p) => matches(p).map((e) => ref(e.resource)));
            assert.deepEqual(sorted(seen), want, `every resource once${extra}`);
            if (extra) assert.deepEqual(seen, [...made].reverse().map(ref), 'newest first across types');
            const back = await walk(pages[1], 'previous');
            assert.deepEqual(matches(back[1]).map((e) => ref(e.resource)), seen.slice(0, 4), 'previous gives the first page back');
        }
    });

    it('POST _search pages the same way, and its links are GET-able', async () => {
        const sched = await create(server, sample('Schedule'));
        const made = [];
        for (let i = 0; i < 5; i++) made.push(await create(server, slot(sched, Date.UTC(2033, 1, 1, 9, i * 10))));
        const res = await fhir(server, 'POST', '/Slot/_search?_count=2', {
            body: `schedule=${enc(ref(sched))}&_sort=-start`,
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
        });
        const first = checkSearchset(res);
        assert.equal(first.total, 5);
        const pages = await walk(first, 'next');
        assert.deepEqual(pages.flatMap(ordered), made.map((s) => s.id).reverse());
    });

    it('a garbled, truncated or made-up _cursor: 400', async () => {
        const sched = await create(server, sample('Schedule'));
        for (let i = 0; i < 3; i++) await create(server, slot(sched, Date.UTC(2033, 2, 1, 9 + i)));
        const first = await search(`/Slot?schedule=${ref(sched)}&_sort=start&_count=1`);
        const next = link(first, 'next');
        assert.ok(next);
        const u = new URL(next);
        const cursor = u.searchParams.get('_cursor');
        assert.ok(cursor && cursor.length > 4, `a _cursor in ${next}`);
        const mid = Math.floor(cursor.length / 2);
        // another character whose value differs in the high bit (so that it is not lost in base64's unused bits)
        const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
        const flip = (c) => {
            const i = B64.indexOf(c === '+' ? '-' : c === '/' ? '_' : c);
            return i < 0 ? 'A' : B64[i ^ 32];
        };
        const variants = [
            cursor.slice(0, mid) + flip(cursor[mid]) + cursor.slice(mid + 1),
            flip(cursor[0]) + cursor.slice(1),
            cursor.slice(0, -1) + flip(cursor[cursor.length - 1]),
            cursor.slice(0, mid),
            'garbage',
            '',
        ];
        for (const bad of variants) {
            u.searchParams.set('_cursor', bad);
            const res = await fhir(server, 'GET', u.toString());
            expectOutcome(res, 400);
            assert.match(JSON.stringify(res.json), /_cursor/, `the OperationOutcome names _cursor (cursor ${bad})`);
        }
        // the untouched link still works
        expectStatus(await fhir(server, 'GET', next), 200);
    });

    it('an altered but well-formed _cursor: 400', async () => {
        const sched = await create(server, sample('Schedule'));
        for (let i = 0; i < 3; i++) await create(server, slot(sched, Date.UTC(2033, 2, 2, 9 + i)));
        const first = await search(`/Slot?schedule=${ref(sched)}&_sort=start&_count=1`);
        const u = new URL(link(first, 'next'));
        const cursor = u.searchParams.get('_cursor');
        // one character near the end changed to the next one of its own alphabet (hex or base64), so that the
        // cursor still decodes: only a server that authenticates its cursors can tell
        const HEX = '0123456789abcdef';
        const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
        const alphabet = /^[0-9a-f]+$/.test(cursor) ? HEX : B64;
        const at = cursor.length - 5;
        const c = cursor[at];
        const altered = cursor.slice(0, at) + alphabet[(alphabet.indexOf(c) + 1) % alphabet.length] + cursor.slice(at + 1);
        assert.notEqual(altered, cursor);
        u.searchParams.set('_cursor', altered);
        const res = await fhir(server, 'GET', u.toString());
        expectOutcome(res, 400);
        assert.match(JSON.stringify(res.json), /_cursor/);
    });

    it('a cursor of a search with another _sort: 400', async () => {
        const sched = await create(server, sample('Schedule'));
        for (let i = 0; i < 3; i++) await create(server, slot(sched, Date.UTC(2033, 2, 3, 9 + i)));
        const first = await search(`/Slot?schedule=${ref(sched)}&_sort=start&_count=1`);
        const cursor = new URL(link(first, 'next')).searchParams.get('_cursor');
        for (const q of [`_count=1`, `_sort=start,_lastUpdated&_count=1`]) {
            const other = new URL(`${server.base}/Slot?schedule=${ref(sched)}&${q}`);
            other.searchParams.set('_cursor', cursor);
            const res = await fhir(server, 'GET', other.toString());
            expectOutcome(res, 400);
        }
    });
});

// ---------------------------------------------------------------------------------------------------------------

describe('_total, _count, _summary, _elements', () => {
    async function fivePatients() {
        const v = uniq('tot');
        const made = [];
        for (let i = 0; i < 5; i++) {
            made.push(
                await create(
                    server,
                    patientWithIdentifier(SYS, v, {
                        text: { status: 'generated', div: '<div xmlns="http://www.w3.org/1999/xhtml">A patient</div>' },
                        maritalStatus: { text: 'unknown' },
                        communication: [{ language: { text: 'Dutch' } }],
                    }),
                ),
            );
        }
        return { q: `/Patient?identifier=${enc(`${SYS}|${v}`)}`, made };
    }

    it('_total=none, estimate, accurate (the default)', async () => {
        const { q } = await fivePatients();
        const none = await search(`${q}&_total=none`, { total: false });
        assert.equal(none.total, undefined, '_total=none: no total');
        assert.equal(matches(none).length, 5);
        const est = await search(`${q}&_total=estimate`, { total: false });
        assert.ok(Number.isInteger(est.total) && est.total >= 0, `_total=estimate gives a (possibly inexact) count: ${est.total}`);
        assert.equal(matches(est).length, 5);
        assert.equal((await search(`${q}&_total=accurate`)).total, 5);
        assert.equal((await search(q)).total, 5);
        expectOutcome(await fhir(server, 'GET', `${q}&_total=sometimes`), 400);
    });

    it('_count=0 and _summary=count: the total only', async () => {
        const { q } = await fivePatients();
        for (const p of ['_count=0', '_summary=count']) {
            const b = await search(`${q}&${p}`);
            assert.equal(b.total, 5, p);
            assert.equal(matches(b).length, 0, `${p}: no entries`);
            assert.equal(link(b, 'next'), undefined, `${p}: no next link`);
        }
    });

    it('_count: pages, the maximum is capped (not refused), malformed values are 400', async () => {
        const { q } = await fivePatients();
        const b = await search(`${q}&_count=2`);
        assert.equal(matches(b).length, 2);
        assert.ok(link(b, 'next'));
        const big = await search(`${q}&_count=100000`);
        assert.equal(matches(big).length, 5, '_count above the maximum is capped, not refused');
        for (const bad of ['abc', '-1', '1.5', '']) {
            const res = await fhir(server, 'GET', `${q}&_count=${bad}`);
            expectOutcome(res, 400);
            assert.match(JSON.stringify(res.json), /_count/, `the OperationOutcome names _count (${bad})`);
        }
    });

    it('search.max_count caps _count', async () => {
        const capped = await startServer({ env: { FHIRSCHED_SEARCH_MAX_COUNT: '3' } });
        try {
            const v = uniq('cap');
            for (let i = 0; i < 5; i++) await create(capped, patientWithIdentifier(SYS, v));
            const res = await fhir(capped, 'GET', `/Patient?identifier=${enc(`${SYS}|${v}`)}&_count=50`);
            expectStatus(res, 200);
            const b = res.json;
            assert.equal(b.total, 5);
            assert.equal(b.entry.filter((e) => e.search.mode === 'match').length, 3, 'page size capped at search.max_count');
            assert.ok(link(b, 'next'), 'next link after a capped page');
        } finally {
            await capped.stop();
        }
    });

    const hasSubsetted = (r) => (r.meta?.tag || []).some((t) => t.system === SUBSETTED && t.code === 'SUBSETTED');

    it('_summary=true, text, data, false', async () => {
        const { q } = await fivePatients();
        let b = await search(`${q}&_summary=true`);
        assert.equal(matches(b).length, 5);
        for (const { resource: r } of matches(b)) {
            assert.ok(hasSubsetted(r), '_summary=true: SUBSETTED tag');
            assert.ok(r.id && r.meta?.versionId, 'id and meta stay');
            assert.ok(r.name && r.gender && r.birthDate && r.identifier, 'summary elements stay');
            assert.equal(r.text, undefined, '_summary=true: no text');
            assert.equal(r.maritalStatus, undefined, '_summary=true: maritalStatus is not a summary element');
            assert.equal(r.communication, undefined, '_summary=true: communication is not a summary element');
        }
        b = await search(`${q}&_summary=text`);
        for (const { resource: r } of matches(b)) {
            assert.ok(hasSubsetted(r), '_summary=text: SUBSETTED tag');
            assert.ok(r.text?.div, '_summary=text keeps text');
            assert.ok(r.id && r.meta, 'id and meta stay');
            assert.equal(r.name, undefined, '_summary=text drops name');
            assert.equal(r.gender, undefined, '_summary=text drops gender');
        }
        b = await search(`${q}&_summary=data`);
        for (const { resource: r } of matches(b)) {
            assert.ok(hasSubsetted(r), '_summary=data: SUBSETTED tag');
            assert.equal(r.text, undefined, '_summary=data drops text');
            assert.ok(r.name && r.maritalStatus && r.communication, '_summary=data keeps the data');
        }
        b = await search(`${q}&_summary=false`);
        for (const { resource: r } of matches(b)) {
            assert.ok(!hasSubsetted(r), '_summary=false: not subsetted');
            assert.ok(r.text && r.maritalStatus && r.name);
        }
        expectOutcome(await fhir(server, 'GET', `${q}&_summary=maybe`), 400);
    });

    it('_elements: only the listed top-level elements plus id, meta and mandatory ones, SUBSETTED', async () => {
        const { q } = await fivePatients();
        const b = await search(`${q}&_elements=name,gender`);
        assert.equal(matches(b).length, 5);
        for (const { resource: r } of matches(b)) {
            assert.ok(hasSubsetted(r), 'SUBSETTED tag');
            assert.ok(r.id && r.meta?.versionId, 'id and meta stay');
            assert.ok(r.name && r.gender, 'listed elements stay');
            for (const gone of ['birthDate', 'identifier', 'text', 'maritalStatus', 'communication', 'active']) {
                assert.equal(r[gone], undefined, `${gone} removed`);
            }
        }
        // the next page keeps _elements, _summary and _total
        let page = await search(`${q}&_elements=gender&_count=2&_total=none`, { total: false });
        for (let n = 0; link(page, 'next'); n++) {
            assert.ok(n < 5);
            page = checkSearchset(await fhir(server, 'GET', link(page, 'next')), { total: false });
            assert.equal(page.total, undefined, 'next page keeps _total=none');
            for (const { resource: r } of matches(page)) {
                assert.ok(hasSubsetted(r) && r.gender && r.name === undefined, 'next page keeps _elements');
            }
        }
        page = await search(`${q}&_summary=text&_count=2`);
        page = checkSearchset(await fhir(server, 'GET', link(page, 'next')));
        for (const { resource: r } of matches(page)) assert.ok(hasSubsetted(r) && r.text && r.name === undefined, 'next page keeps _summary');
        // Slot: schedule, status, start and end are mandatory (1..1) and stay
        const sched = await create(server, sample('Schedule'));
        const s = await create(server, slot(sched, '2033-04-01T09:00:00Z', { comment: 'bring forms', serviceType: [{ text: 'x' }] }));
        const sb = await search(`/Slot?_id=${s.id}&_elements=start`);
        const r = matches(sb)[0].resource;
        assert.ok(hasSubsetted(r));
        assert.equal(r.start, '2033-04-01T09:00:00Z');
        assert.ok(r.schedule && r.status && r.end, 'mandatory elements stay');
        assert.equal(r.comment, undefined);
        assert.equal(r.serviceType, undefined);
        // (included resources: the spec leaves open whether they are subsetted too, so that is not checked)
    });
});

// ---------------------------------------------------------------------------------------------------------------

describe('unknown parameters: lenient and strict', () => {
    it('lenient (default and explicit): ignored, left out of self, reported in an outcome entry; strict: 400', async () => {
        const p = await create(server, sample('Patient'));
        for (const headers of [{}, { Prefer: 'handling=lenient' }]) {
            const b = await search(`/Patient?_id=${p.id}&nosuchparam=1`, { headers });
            assert.deepEqual(ids(b), [p.id]);
            assert.doesNotMatch(link(b, 'self'), /nosuchparam/, 'self link leaves the ignored parameter out');
            const oo = byMode(b, 'outcome');
            assert.equal(oo.length, 1, 'one outcome entry');
            const issues = oo[0].resource.issue;
            assert.ok(issues.some((i) => i.severity === 'warning' && /nosuchparam/.test(JSON.stringify(i))), 'a warning names the parameter');
        }
        const strict = await fhir(server, 'GET', `/Patient?_id=${p.id}&nosuchparam=1`, { headers: { Prefer: 'handling=strict' } });
        expectOutcome(strict, 400);
        assert.match(JSON.stringify(strict.json), /nosuchparam/);
    });

    it('malformed values and unknown modifiers are 400 naming the parameter, even when lenient', async () => {
        for (const [q, name] of [
            ['birthdate=notadate', 'birthdate'],
            ['family:sounds-like=x', 'family'],
            ['birthdate=xx2020', 'birthdate'],
            ['gender=', 'gender'],
        ]) {
            const res = await fhir(server, 'GET', `/Patient?${q}`);
            expectOutcome(res, 400);
            assert.match(res.json.issue.map((i) => i.diagnostics || '').join(' '), new RegExp(name), `diagnostics name ${name} for ${q}`);
        }
    });
});
