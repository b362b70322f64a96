// The patient compartment (docs/security.md, "Patient context" and "Scopes"): a token with a `patient` claim and
// `patient/` scopes sees its own Patient, the Appointments it takes part in, its AppointmentResponses and the public
// directory (free Slots only), and nothing else: not by id (403, the same as for an id that does not exist), not in
// searches, counts, _include/_revinclude, _has, chains, history, system search, batch or transaction; it writes
// only inside its compartment (before and after the change) and books only for itself. SMART v1 and v2 scopes are
// checked permission by permission.
//
// Data (seeded by a system-admin token): patients A, B and C; Appointments of A (one with practitioner "shared",
// one shared with C), of B (one with "shared", one with a practitioner only B sees), AppointmentResponses, a
// Schedule with free, busy and busy-unavailable Slots, and a bookable practitioner for $find/$book.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { api, expectForbidden, isEmptyBundle, makeKeys, refsOf, startAuthServer, tempDir, tokenFor } from '../lib/auth.mjs';
import { expectOutcome, expectStatus, uniq } from '../lib/harness.mjs';

const SYS = 'http://fhirsched.org/fhir/test-auth-patient';
const EXT = 'http://fhirsched.org/fhir/StructureDefinition/';
const DIRECTORY = ['Practitioner', 'PractitionerRole', 'Location', 'HealthcareService', 'Device', 'Schedule', 'Slot'];

const A = 'pat-a';
const B = 'pat-b';
const C = 'pat-c';
const FAMILY = { [A]: 'Aalders', [B]: 'Bosman', [C]: 'Claes' };

let server;
let admin; // system-admin, system/*.*
let pa; // patient A, patient/*.read + patient/Appointment.write + patient/AppointmentResponse.write
const seeded = {};

const ref = (r) => `${r.resourceType}/${r.id}`;
function appointment(id, start, actors, extra = {}) {
    const end = new Date(Date.parse(start) + 30 * 60_000).toISOString().replace('.000Z', 'Z');
    return {
        resourceType: 'Appointment',
        ...(id ? { id } : {}),
        status: 'booked',
        description: 'Consultation',
        start,
        end,
        participant: actors.map((a) => ({ actor: { reference: a }, status: 'accepted' })),
        ...extra,
    };
}
const patientsOf = (appt) => (appt.participant || []).map((p) => p.actor?.reference).filter((r) => r?.startsWith('Patient/'));
const isAs = (appt) => patientsOf(appt).includes(`Patient/${A}`);

/** Replaces the given ids by "ID" in the OperationOutcome's text (a refusal may echo the id it was asked for). */
function ooShape(res, ...ids) {
    let text = JSON.stringify(res.json?.issue);
    for (const id of ids) text = text.split(id).join('ID');
    return { status: res.status, text, challenge: res.headers.get('www-authenticate') };
}

/** A 403, or a Bundle that reveals nothing. */
function expectNothing(res, what) {
    if (res.status === 403) {
        expectForbidden(res);
        return;
    }
    expectStatus(res, 200);
    assert.ok(isEmptyBundle(res), `${what} reveals nothing: ${res.text.slice(0, 1500)}`);
}

/** Next date (UTC) with weekday `wd` (0 = Sunday) at least `minDays` ahead. */
function nextWeekday(wd, minDays = 2) {
    const d = new Date(Date.now() + minDays * 86400_000);
    d.setUTCHours(0, 0, 0, 0);
    while (d.getUTCDay() !== wd) d.setUTCDate(d.getUTCDate() + 1);
    return d.toISOString().slice(0, 10);
}

before(async () => {
    const keys = makeKeys(tempDir());
    server = await startAuthServer({ keys });
    admin = api(server, tokenFor('system-admin', { server }));
    pa = api(server, tokenFor({ patient: A }, { server }));

    for (const id of [A, B, C]) {
        await admin.upsert({ resourceType: 'Patient', id, name: [{ family: FAMILY[id], given: ['Test'] }], identifier: [{ system: SYS, value: id }] });
    }
    for (const id of ['dr-shared', 'dr-a-only', 'dr-b-only', 'dr-slots', 'dr-find']) {
        await admin.upsert({ resourceType: 'Practitioner', id, active: true, name: [{ family: id, given: ['Dr'] }] });
    }
    await admin.upsert({ resourceType: 'Location', id: 'clinic-p', status: 'active', name: 'Patient test clinic', mode: 'instance' });
    // a Schedule with Slots of each status
    await admin.upsert({ resourceType: 'Schedule', id: 'sched-slots', active: true, actor: [{ reference: 'Practitioner/dr-slots' }] });
    const slot = (id, status, hh) => ({
        resourceType: 'Slot',
        id,
        schedule: { reference: 'Schedule/sched-slots' },
        status,
        start: `2030-04-01T${hh}:00:00Z`,
        end: `2030-04-01T${hh}:30:00Z`,
    });
    await admin.upsert(slot('slot-free', 'free', '09'));
    await admin.upsert(slot('slot-busy', 'busy', '10'));
    await admin.upsert(slot('slot-blocked', 'busy-unavailable', '11'));

    seeded.a1 = await admin.upsert(appointment('appt-a1', '2030-03-04T09:00:00Z', [`Patient/${A}`, 'Practitioner/dr-shared']));
    seeded.a2 = await admin.upsert(appointment('appt-a2', '2030-03-04T10:00:00Z', [`Patient/${A}`, 'Practitioner/dr-a-only']));
    seeded.ac = await admin.upsert(appointment('appt-ac', '2030-03-05T09:00:00Z', [`Patient/${A}`, `Patient/${C}`, 'Practitioner/dr-a-only']));
    seeded.b1 = await admin.upsert(appointment('appt-b1', '2030-03-04T11:00:00Z', [`Patient/${B}`, 'Practitioner/dr-shared']));
    seeded.b1 = await admin.upsert({ ...seeded.b1, description: 'Consultation (moved room)' }); // a second version
    seeded.b2 = await admin.upsert(
        appointment('appt-b2', '2030-03-04T09:00:00Z', [`Patient/${B}`, 'Practitioner/dr-b-only'], { identifier: [{ system: SYS, value: 'appt-b2' }] }),
    );
    const response = (id, appt, patient) => ({
        resourceType: 'AppointmentResponse',
        id,
        appointment: { reference: `Appointment/${appt}` },
        actor: { reference: `Patient/${patient}` },
        participantStatus: 'accepted',
    });
    await admin.upsert(response('resp-a', 'appt-a1', A));
    await admin.upsert(response('resp-b', 'appt-b1', B));

    // bookable: dr-find at clinic-p, Mondays 09:00-12:00 UTC, a 30-minute visit type of its own
    seeded.visit = uniq('visit');
    await admin.upsert({
        resourceType: 'HealthcareService',
        id: 'svc-p',
        active: true,
        location: [{ reference: 'Location/clinic-p' }],
        type: [{ coding: [{ system: SYS, code: seeded.visit }] }],
        extension: [{ url: `${EXT}service-duration`, valueDuration: { value: 30, unit: 'min', system: 'http://unitsofmeasure.org', code: 'min' } }],
    });
    await admin.upsert({
        resourceType: 'PractitionerRole',
        id: 'role-find',
        active: true,
        practitioner: { reference: 'Practitioner/dr-find' },
        location: [{ reference: 'Location/clinic-p' }],
        healthcareService: [{ reference: 'HealthcareService/svc-p' }],
        availableTime: [{ daysOfWeek: ['mon'], availableStartTime: '09:00:00', availableEndTime: '12:00:00' }],
    });
    await admin.upsert({ resourceType: 'Schedule', id: 'sched-find', active: true, actor: [{ reference: 'Practitioner/dr-find' }] });
});
after(async () => {
    await server?.stop();
});

describe('reads by id', () => {
    it("A reads its own Patient, Appointments and AppointmentResponse", async () => {
        for (const p of [`/Patient/${A}`, '/Appointment/appt-a1', '/Appointment/appt-a2', '/Appointment/appt-ac', '/AppointmentResponse/resp-a']) {
            const res = await pa.get(p);
            expectStatus(res, 200);
        }
        expectStatus(await pa.get('/Appointment/appt-a1/_history'), 200);
        expectStatus(await pa.get('/Appointment/appt-a1/_history/1'), 200);
    });

    it("B's resources are 403, answered exactly as an id that does not exist", async () => {
        const pairs = [
            [`/Patient/${B}`, B, `/Patient/${'nobody-' + uniq('x')}`],
            ['/Patient/' + C, C, `/Patient/${'nobody-' + uniq('x')}`],
            ['/Appointment/appt-b1', 'appt-b1', `/Appointment/${'none-' + uniq('x')}`],
            ['/AppointmentResponse/resp-b', 'resp-b', `/AppointmentResponse/${'none-' + uniq('x')}`],
        ];
        for (const [there, id, missing] of pairs) {
            const a = await pa.get(there);
            expectForbidden(a);
            const b = await pa.get(missing);
            expectForbidden(b);
            assert.deepEqual(ooShape(a, id), ooShape(b, missing.split('/').pop()), `${there} and ${missing} are refused alike`);
        }
    });

    it("history and vread of B's appointment are 403; A's history shows only its own", async () => {
        expectForbidden(await pa.get('/Appointment/appt-b1/_history'));
        expectForbidden(await pa.get('/Appointment/appt-b1/_history/1'));
        expectForbidden(await pa.get('/Appointment/appt-b1/_history/2'));
        expectForbidden(await pa.get(`/Patient/${B}/_history`));
    });

    it('the directory is readable: practitioners, roles, locations, services, schedules, free Slots', async () => {
        for (const p of ['/Practitioner/dr-b-only', '/Practitioner/dr-shared', '/Location/clinic-p', '/HealthcareService/svc-p', '/PractitionerRole/role-find', '/Schedule/sched-slots', '/Slot/slot-free']) {
            expectStatus(await pa.get(p), 200);
        }
    });

    it('Slots that are not free are hidden like other patients\' data', async () => {
        expectForbidden(await pa.get('/Slot/slot-busy'));
        expectForbidden(await pa.get('/Slot/slot-blocked'));
        const res = await pa.get('/Slot?schedule=Schedule/sched-slots');
        expectStatus(res, 200);
        assert.deepEqual(refsOf(res.json, 'match'), ['Slot/slot-free']);
        const count = await pa.get('/Slot?schedule=Schedule/sched-slots&_summary=count');
        assert.equal(count.json.total, 1, 'the count holds only the free Slot');
    });
});

describe('searches show only the compartment', () => {
    it('Appointment search, _summary=count and _total=accurate: only A\'s', async () => {
        const expected = await admin.get(`/Appointment?patient=Patient/${A}&_count=200`);
        const want = refsOf(expected.json, 'match').sort();
        assert.ok(want.includes('Appointment/appt-a1') && want.includes('Appointment/appt-ac'));

        const res = await pa.get('/Appointment?_count=200');
        expectStatus(res, 200);
        assert.deepEqual(refsOf(res.json, 'match').sort(), want);
        for (const e of res.json.entry || []) if (e.resource?.resourceType === 'Appointment') assert.ok(isAs(e.resource), `${ref(e.resource)} is A's`);

        const count = await pa.get('/Appointment?_summary=count');
        expectStatus(count, 200);
        assert.equal(count.json.total, want.length, '_summary=count counts only A\'s');
        const total = await pa.get('/Appointment?_total=accurate&_count=1');
        expectStatus(total, 200);
        assert.equal(total.json.total, want.length, '_total=accurate counts only A\'s');
        const byDate = await pa.get('/Appointment?date=2030-03-04&_summary=count');
        assert.equal(byDate.json.total, 2, 'two of A\'s on 2030-03-04 (B has two more that day)');
    });

    it("searching for B's data finds nothing: patient=, chains, practitioner only B sees, _id", async () => {
        expectNothing(await pa.get(`/Appointment?patient=Patient/${B}`), 'Appointment?patient=B');
        expectNothing(await pa.get(`/Appointment?patient=Patient/${B}&_summary=count`), 'count of B\'s appointments');
        expectNothing(await pa.get(`/Appointment?actor=Patient/${B}`), 'Appointment?actor=B');
        expectNothing(await pa.get(`/Appointment?patient.name=${FAMILY[B]}`), 'chained patient.name');
        expectNothing(await pa.get('/Appointment?practitioner=Practitioner/dr-b-only'), 'appointments of a practitioner only B sees');
        expectNothing(await pa.get('/Appointment?_id=appt-b1,appt-b2'), 'Appointment?_id=B\'s');
        expectNothing(await pa.get(`/Patient?_id=${B}`), 'Patient?_id=B');
        expectNothing(await pa.get(`/Patient?name=${FAMILY[B]}`), 'Patient?name=B');
        expectNothing(await pa.get(`/Patient?identifier=${encodeURIComponent(`${SYS}|${B}`)}`), 'Patient?identifier=B');
        expectNothing(await pa.get(`/AppointmentResponse?actor=Patient/${B}`), 'AppointmentResponse of B');
    });

    it("B's data stays hidden through POST _search, references to B's appointments and chains", async () => {
        const form = (body) => ({ body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
        expectNothing(await pa.req('POST', '/Appointment/_search', form(`patient=Patient/${B}`)), 'POST _search patient=B');
        expectNothing(await pa.req('POST', '/Patient/_search', form(`_id=${B}`)), 'POST _search Patient _id=B');
        expectNothing(await pa.get('/AppointmentResponse?appointment=Appointment/appt-b1'), 'responses to B\'s appointment');
        expectNothing(await pa.get(`/AppointmentResponse?appointment.patient=Patient/${B}`), 'chained appointment.patient=B');
        expectNothing(await pa.get(`/Appointment?identifier=${encodeURIComponent(`${SYS}|appt-b2`)}&_summary=count`), 'count by B\'s identifier');
        expectNothing(await pa.get(`/Patient?_has:AppointmentResponse:actor:appointment=Appointment/appt-b1`), '_has through B\'s response');
    });

    it("conditional interactions do not see B's appointment", async () => {
        const ident = encodeURIComponent(`${SYS}|appt-b2`);
        const before = (await admin.get('/Appointment/appt-b2')).json;
        // If-None-Exist matching only B's appointment: B's is not "found" (no 200 with it), A's is created or refused
        const cc = await pa.post('/Appointment', appointment(null, '2030-05-09T09:00:00Z', [`Patient/${A}`, 'Practitioner/dr-a-only'], { identifier: [{ system: SYS, value: 'appt-b2' }] }), {
            headers: { 'if-none-exist': `identifier=${ident}` },
        });
        if (cc.status === 403) expectForbidden(cc);
        else expectStatus(cc, 201);
        assert.notEqual(cc.json?.id, 'appt-b2', 'the answer is not B\'s appointment');
        // conditional update and delete by B's identifier must not touch B's appointment
        const cu = await pa.put(`/Appointment?identifier=${ident}`, appointment(undefined, '2030-05-09T10:00:00Z', [`Patient/${A}`, 'Practitioner/dr-a-only'], { identifier: [{ system: SYS, value: 'appt-b2' }] }));
        assert.ok([200, 201, 403, 412].includes(cu.status), `conditional update: ${cu.status} ${cu.text.slice(0, 300)}`);
        assert.notEqual(cu.json?.id, 'appt-b2', 'conditional update did not land on B\'s appointment');
        const cd = await pa.del(`/Appointment?identifier=${ident}&patient=Patient/${B}`);
        assert.ok([200, 204, 403, 404, 412].includes(cd.status), `conditional delete: ${cd.status} ${cd.text.slice(0, 300)}`);
        const after = await admin.get('/Appointment/appt-b2');
        expectStatus(after, 200);
        assert.equal(after.json.meta.versionId, before.meta.versionId, "B's appointment is untouched");
    });

    it('Patient and AppointmentResponse searches: only A\'s own', async () => {
        const pats = await pa.get('/Patient?_count=100');
        expectStatus(pats, 200);
        assert.deepEqual(refsOf(pats.json, 'match'), [`Patient/${A}`]);
        const count = await pa.get('/Patient?_summary=count');
        assert.equal(count.json.total, 1);
        const resp = await pa.get('/AppointmentResponse?_count=100');
        expectStatus(resp, 200);
        assert.deepEqual(refsOf(resp.json, 'match'), ['AppointmentResponse/resp-a']);
    });

    it('_include never brings in another patient', async () => {
        const res = await pa.get('/Appointment?_include=Appointment:patient&_include=Appointment:actor&_count=200');
        expectStatus(res, 200);
        const included = refsOf(res.json, 'include');
        assert.ok(included.includes(`Patient/${A}`), `A itself is included: ${included}`);
        for (const other of [`Patient/${B}`, `Patient/${C}`]) assert.ok(!included.includes(other), `${other} is not included: ${included}`);
        const r2 = await pa.get('/AppointmentResponse?_include=AppointmentResponse:appointment&_include=AppointmentResponse:actor');
        expectStatus(r2, 200);
        for (const r of refsOf(r2.json)) assert.ok(!['Appointment/appt-b1', `Patient/${B}`].includes(r), `AppointmentResponse includes ${r}`);
    });

    it("_revinclude of Appointments on practitioners brings in only A's", async () => {
        const res = await pa.get('/Practitioner?_id=dr-shared,dr-b-only&_revinclude=Appointment:practitioner&_revinclude=Appointment:actor');
        expectStatus(res, 200);
        assert.deepEqual(refsOf(res.json, 'match').sort(), ['Practitioner/dr-b-only', 'Practitioner/dr-shared'], 'the practitioners themselves are directory');
        const included = refsOf(res.json, 'include');
        assert.ok(included.includes('Appointment/appt-a1'), `A's appointment with dr-shared is included: ${included}`);
        for (const b of ['Appointment/appt-b1', 'Appointment/appt-b2']) assert.ok(!included.includes(b), `${b} is not included`);
        const pat = await pa.get(`/Patient?_revinclude=Appointment:patient&_revinclude=AppointmentResponse:actor`);
        expectStatus(pat, 200);
        for (const r of refsOf(pat.json)) assert.ok(!['Appointment/appt-b1', 'Appointment/appt-b2', 'AppointmentResponse/resp-b', `Patient/${B}`].includes(r), r);
    });

    it('_has on Appointment reveals nothing about B', async () => {
        expectNothing(await pa.get(`/Practitioner?_has:Appointment:practitioner:patient=Patient/${B}`), '_has:Appointment:practitioner:patient=B');
        expectNothing(await pa.get(`/Patient?_has:Appointment:patient:practitioner=Practitioner/dr-b-only`), '_has on patients of dr-b-only');
        // and the same _has for A works
        const mine = await pa.get(`/Practitioner?_has:Appointment:practitioner:patient=Patient/${A}`);
        if (mine.status === 200) {
            const got = refsOf(mine.json, 'match').sort();
            assert.deepEqual(got, ['Practitioner/dr-a-only', 'Practitioner/dr-shared']);
        } else {
            expectForbidden(mine);
        }
    });

    it('type history of Appointment: 403 or only A\'s versions', async () => {
        const res = await pa.get('/Appointment/_history?_count=200');
        if (res.status === 403) return expectForbidden(res);
        expectStatus(res, 200);
        const ids = (res.json.entry || []).map((e) => e.resource?.id ?? e.request?.url).filter(Boolean);
        for (const e of res.json.entry || []) {
            if (e.resource) assert.ok(isAs(e.resource), `history shows ${ref(e.resource)}`);
        }
        assert.ok(!ids.some((i) => /appt-b/.test(i)), `no B versions: ${ids}`);
    });

    it('system search and system history: 403 or only A\'s compartment and the directory', async () => {
        const visible = (r) => {
            if (DIRECTORY.includes(r.resourceType)) return r.resourceType !== 'Slot' || r.status === 'free';
            if (r.resourceType === 'Patient') return r.id === A;
            if (r.resourceType === 'Appointment') return isAs(r);
            if (r.resourceType === 'AppointmentResponse') return r.actor?.reference === `Patient/${A}`;
            return r.resourceType === 'OperationOutcome';
        };
        for (const p of ['?_type=Patient,Appointment,AppointmentResponse,Slot&_count=500', '/_history?_count=500']) {
            const res = await pa.get(p);
            if (res.status === 403) {
                expectForbidden(res);
                continue;
            }
            expectStatus(res, 200);
            for (const e of res.json.entry || []) {
                if (e.resource) assert.ok(visible(e.resource), `${p} shows ${ref(e.resource)}${e.resource.status ? ` (${e.resource.status})` : ''}`);
            }
        }
    });

    it('AuditEvents and Subscriptions are not in the compartment', async () => {
        expectNothing(await pa.get('/AuditEvent'), 'AuditEvent search');
        expectNothing(await pa.get('/Subscription'), 'Subscription search');
    });
});

describe('batch and transaction', () => {
    it('a batch reading A\'s and B\'s: 200 with 200 and 403 entries', async () => {
        const res = await pa.post('', {
            resourceType: 'Bundle',
            type: 'batch',
            entry: [
                { request: { method: 'GET', url: `Patient/${A}` } },
                { request: { method: 'GET', url: `Patient/${B}` } },
                { request: { method: 'GET', url: 'Appointment/appt-a1' } },
                { request: { method: 'GET', url: 'Appointment/appt-b1' } },
                { request: { method: 'GET', url: `Appointment?patient=Patient/${B}` } },
            ],
        });
        expectStatus(res, 200);
        assert.equal(res.json.type, 'batch-response');
        const statuses = res.json.entry.map((e) => e.response.status.slice(0, 3));
        assert.deepEqual(statuses.slice(0, 4), ['200', '403', '200', '403']);
        assert.equal(res.json.entry[0].resource?.id, A);
        assert.equal(res.json.entry[1].resource, undefined, 'nothing of B in the refused entry');
        assert.equal(res.json.entry[3].resource, undefined);
        const search = res.json.entry[4];
        if (search.response.status.startsWith('200')) {
            assert.equal(refsOf(search.resource).length, 0, 'the search entry finds nothing of B');
        } else {
            assert.match(search.response.status, /^403/);
        }
        const txt = JSON.stringify(res.json);
        assert.ok(!txt.includes(FAMILY[B]), 'B\'s name appears nowhere in the batch response');
    });

    it('a transaction touching B fails whole with 403 and stores nothing', async () => {
        const mark = uniq('tx');
        await admin.upsert({ resourceType: 'Practitioner', id: `dr-${mark}`, active: true, name: [{ family: mark }] });
        const before = await admin.get('/Appointment/appt-b1');
        const res = await pa.post('', {
            resourceType: 'Bundle',
            type: 'transaction',
            entry: [
                {
                    resource: appointment(null, '2030-05-06T09:00:00Z', [`Patient/${A}`, `Practitioner/dr-${mark}`], { identifier: [{ system: SYS, value: mark }] }),
                    request: { method: 'POST', url: 'Appointment' },
                },
                { resource: { ...before.json, description: 'changed by A' }, request: { method: 'PUT', url: 'Appointment/appt-b1' } },
            ],
        });
        expectForbidden(res);
        const stored = await admin.get(`/Appointment?identifier=${encodeURIComponent(`${SYS}|${mark}`)}&_summary=count`);
        assert.equal(stored.json.total, 0, 'the allowed entry was rolled back');
        const afterRead = await admin.get('/Appointment/appt-b1');
        assert.equal(afterRead.json.meta.versionId, before.json.meta.versionId, "B's appointment is unchanged");

        // a transaction only inside the compartment is fine
        const ok = await pa.post('', {
            resourceType: 'Bundle',
            type: 'transaction',
            entry: [
                {
                    resource: appointment(null, '2030-05-06T09:00:00Z', [`Patient/${A}`, `Practitioner/dr-${mark}`], { identifier: [{ system: SYS, value: mark }] }),
                    request: { method: 'POST', url: 'Appointment' },
                },
            ],
        });
        expectStatus(ok, 200);
        assert.equal(ok.json.type, 'transaction-response');
    });
});

describe('writes stay inside the compartment', () => {
    it('A creates an Appointment for A; not for B; cannot change or delete B\'s', async () => {
        const mine = await pa.post('/Appointment', appointment(null, '2030-05-07T09:00:00Z', [`Patient/${A}`, 'Practitioner/dr-a-only']));
        expectStatus(mine, 201);
        const mark = uniq('forb');
        const forB = await pa.post('/Appointment', appointment(null, '2030-05-07T10:00:00Z', [`Patient/${B}`, 'Practitioner/dr-a-only'], { identifier: [{ system: SYS, value: mark }] }));
        expectForbidden(forB);
        const stored = await admin.get(`/Appointment?identifier=${encodeURIComponent(`${SYS}|${mark}`)}&_summary=count`);
        assert.equal(stored.json.total, 0);

        const b1 = (await admin.get('/Appointment/appt-b1')).json;
        expectForbidden(await pa.put('/Appointment/appt-b1', { ...b1, description: 'A was here' }));
        expectForbidden(await pa.patch('/Appointment/appt-b1', [{ op: 'replace', path: '/description', value: 'A was here' }]));
        expectForbidden(await pa.del('/Appointment/appt-b1'));
        expectForbidden(await pa.put('/Appointment/appt-b1', appointment('appt-b1', '2030-03-04T11:00:00Z', [`Patient/${A}`, 'Practitioner/dr-shared'])));
        const after = (await admin.get('/Appointment/appt-b1')).json;
        assert.equal(after.meta.versionId, b1.meta.versionId, "B's appointment is unchanged");
        // a PUT to a new id for B is refused like any write for B
        const newId = uniq('new');
        expectForbidden(await pa.put(`/Appointment/${newId}`, appointment(newId, '2030-05-07T11:00:00Z', [`Patient/${B}`])));
    });

    it('A changes its own Appointment, but cannot hand it over to B', async () => {
        const created = await pa.post('/Appointment', appointment(null, '2030-05-08T09:00:00Z', [`Patient/${A}`, 'Practitioner/dr-a-only']));
        expectStatus(created, 201);
        const appt = created.json;
        expectStatus(await pa.put(`/Appointment/${appt.id}`, { ...appt, comment: 'Running late' }), 200);
        const handover = structuredClone(appt);
        handover.participant[0].actor.reference = `Patient/${B}`;
        expectForbidden(await pa.put(`/Appointment/${appt.id}`, handover));
        expectForbidden(await pa.patch(`/Appointment/${appt.id}`, [{ op: 'replace', path: '/participant/0/actor/reference', value: `Patient/${B}` }]));
        const now = (await pa.get(`/Appointment/${appt.id}`)).json;
        assert.deepEqual(patientsOf(now), [`Patient/${A}`]);
    });

    it('AppointmentResponses: for A only', async () => {
        const mine = await pa.post('/AppointmentResponse', {
            resourceType: 'AppointmentResponse',
            appointment: { reference: 'Appointment/appt-a1' },
            actor: { reference: `Patient/${A}` },
            participantStatus: 'tentative',
        });
        expectStatus(mine, 201);
        expectForbidden(
            await pa.post('/AppointmentResponse', {
                resourceType: 'AppointmentResponse',
                appointment: { reference: 'Appointment/appt-b1' },
                actor: { reference: `Patient/${B}` },
                participantStatus: 'declined',
            }),
        );
    });

    it('no write scope on Patient: updating itself or creating patients is refused (insufficient_scope)', async () => {
        const me = (await pa.get(`/Patient/${A}`)).json;
        expectForbidden(await pa.put(`/Patient/${A}`, { ...me, gender: 'other' }), { scope: true });
        expectForbidden(await pa.post('/Patient', { resourceType: 'Patient', name: [{ family: 'New' }] }), { scope: true });
        expectForbidden(await pa.post('/Practitioner', { resourceType: 'Practitioner', name: [{ family: 'New' }] }), { scope: true });
    });
});

const monday = nextWeekday(1);
const find = (client, patient) =>
    client.get(`/Appointment/$find?start=${monday}&end=${monday}&visit-type=${encodeURIComponent(`${SYS}|${seeded.visit}`)}${patient ? `&patient-reference=${patient}` : ''}&_count=20`);

describe('scheduling operations', () => {
    const proposals = (res) => (res.json.entry || []).map((e) => e.resource).filter((r) => r?.resourceType === 'Appointment');
    const params = (appt) => ({ resourceType: 'Parameters', parameter: [{ name: 'appointment-reference', valueReference: { reference: `Appointment/${appt.id}` } }] });

    it('$find is allowed; A books a proposal for A', async () => {
        const res = await find(pa, `Patient/${A}`);
        expectStatus(res, 200);
        const offers = proposals(res);
        assert.ok(offers.length > 0, 'proposals offered');
        const booked = await pa.post('/Appointment/$book', params(offers[0]));
        expectStatus(booked, 200);
        const appt = proposals(booked)[0];
        assert.equal(appt.status, 'booked');
        assert.ok(isAs(appt));
    });

    it('$hold and $book of a proposal for B are 403, and nothing is stored', async () => {
        const res = await find(admin, `Patient/${B}`);
        expectStatus(res, 200);
        const offers = proposals(res);
        assert.ok(offers.length >= 2, 'proposals for B');
        expectForbidden(await pa.post('/Appointment/$hold', params(offers[0])));
        expectForbidden(await pa.post('/Appointment/$book', params(offers[1])));
        // booking a proposal while naming B as the patient
        const plain = proposals(await find(admin))[2];
        if (plain) {
            const withB = params(plain);
            withB.parameter.push({ name: 'patient-resource', resource: { resourceType: 'Patient', id: B, name: [{ family: FAMILY[B] }] } });
            expectForbidden(await pa.post('/Appointment/$book', withB));
        }
        for (const o of offers.slice(0, 2)) {
            const stored = await admin.get(`/Appointment/${o.id}`);
            assert.equal(stored.json?.status, 'proposed', `${o.id} is still only a proposal`);
        }
    });
});

describe('scopes', () => {
    const token = (scope, over = {}) => api(server, tokenFor({ patient: A }, { server, scope, ...over }));

    it('patient/ scopes without a patient claim grant nothing', async () => {
        const noPatient = api(server, tokenFor(null, { server, scope: 'patient/*.read patient/*.write' }));
        expectForbidden(await noPatient.get(`/Patient/${A}`));
        expectForbidden(await noPatient.get('/Appointment/appt-a1'));
        expectForbidden(await noPatient.get('/Appointment'));
        expectForbidden(await noPatient.post('/Appointment', appointment(null, '2030-06-03T09:00:00Z', [`Patient/${A}`])));
    });

    it('a missing scope is 403 insufficient_scope', async () => {
        const slotsOnly = token('patient/Slot.read');
        expectForbidden(await slotsOnly.get('/Appointment/appt-a1'), { scope: true });
        expectForbidden(await slotsOnly.get(`/Patient/${A}`), { scope: true });
        expectForbidden(await slotsOnly.get('/Appointment'), { scope: true });
        expectStatus(await slotsOnly.get('/Slot?schedule=Schedule/sched-slots'), 200);
        const readOnly = token('patient/*.read');
        expectForbidden(await readOnly.post('/Appointment', appointment(null, '2030-06-04T09:00:00Z', [`Patient/${A}`])), { scope: true });
        const offer = (await find(admin, `Patient/${A}`)).json.entry.map((e) => e.resource).find((r) => r.resourceType === 'Appointment');
        assert.ok(offer, 'a proposal for A');
        const booking = { resourceType: 'Parameters', parameter: [{ name: 'appointment-reference', valueReference: { reference: `Appointment/${offer.id}` } }] };
        expectForbidden(await readOnly.post('/Appointment/$hold', booking), { scope: true });
        expectForbidden(await readOnly.post('/Appointment/$book', booking), { scope: true });
    });

    it('SMART v2: r reads, s searches, c creates, u updates; a restricted or disordered scope grants nothing', async () => {
        const rs = token('patient/*.rs');
        expectStatus(await rs.get('/Appointment/appt-a1'), 200);
        expectStatus(await rs.get('/Appointment'), 200);
        const r = token('patient/Appointment.r');
        expectStatus(await r.get('/Appointment/appt-a1'), 200);
        expectForbidden(await r.get('/Appointment'), { scope: true });
        const s = token('patient/Appointment.s');
        expectStatus(await s.get('/Appointment'), 200);
        expectForbidden(await s.get('/Appointment/appt-a1'), { scope: true });
        const cu = token('patient/Appointment.cru');
        const made = await cu.post('/Appointment', appointment(null, '2030-06-05T09:00:00Z', [`Patient/${A}`, 'Practitioner/dr-a-only']));
        expectStatus(made, 201);
        expectStatus(await cu.put(`/Appointment/${made.json.id}`, { ...made.json, comment: 'v2 update' }), 200);
        expectForbidden(await cu.del(`/Appointment/${made.json.id}`), { scope: true });
        const restricted = token('patient/Appointment.rs?status=booked');
        expectForbidden(await restricted.get('/Appointment/appt-a1'), { scope: true });
        const disordered = token('patient/Appointment.sr');
        expectForbidden(await disordered.get('/Appointment/appt-a1'), { scope: true });
    });

    it('SMART v1 write covers create and update within the compartment', async () => {
        const v1 = token('patient/Appointment.read patient/Appointment.write');
        const made = await v1.post('/Appointment', appointment(null, '2030-06-06T09:00:00Z', [`Patient/${A}`, 'Practitioner/dr-a-only']));
        expectStatus(made, 201);
        expectStatus(await v1.put(`/Appointment/${made.json.id}`, { ...made.json, status: 'cancelled' }), 200);
        // deleting is not named for patients ("create and change"): either allowed, or refused as forbidden
        const del = await v1.del(`/Appointment/${made.json.id}`);
        if (del.status === 403) expectForbidden(del);
        else expectStatus(del, [200, 204]);
    });

    it('a patient token cannot claim another patient through a role or fhirUser', async () => {
        // fhirUser pointing at B does not widen A's compartment
        const confused = api(server, tokenFor({ patient: A }, { server, fhirUser: `Patient/${B}` }));
        expectForbidden(await confused.get(`/Patient/${B}`));
        // a patient-context token with patient scopes only: its compartment, whatever else it claims
        const res = await confused.get('/Appointment?_count=200');
        expectStatus(res, 200);
        for (const e of res.json.entry || []) if (e.resource?.resourceType === 'Appointment') assert.ok(isAs(e.resource));
        expectOutcome(await confused.get('/Appointment/appt-b2'), 403, 'forbidden');
    });
});
