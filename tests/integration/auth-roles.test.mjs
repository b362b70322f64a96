// Clinic roles and locations (docs/security.md, "Clinic roles"): the permission table checked row by row where it
// matters, for users limited to clinic A by `fhirsched_locations`, with `user/*.*` scopes, so that the role and the
// location decide. A resource belongs to clinics through its Locations' partOf chain, roles, services, schedules
// and slots; "own" means linked to the user's fhirUser practitioner.
//
// Data (seeded by a system-admin): Location clinic-a with room-a1 (partOf clinic-a), clinic-b; a service at each
// (svc-b2 at clinic-b has a Slot-based Schedule); doctors dr-a and dr-a2 at A and dr-b at B, each with a role,
// a Schedule (working every day 09:00-12:00 UTC) and a blocking Slot; Appointments linked to clinic A directly,
// through the room only, through a role only, and to clinic B directly and through a Slot only.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { api, expectForbidden, makeKeys, refsOf, startAuthServer, tempDir, tokenFor } from '../lib/auth.mjs';
import { expectStatus, uniq } from '../lib/harness.mjs';

const SYS = 'http://fhirsched.org/fhir/test-auth-roles';
const EXT = 'http://fhirsched.org/fhir/StructureDefinition/';
const LOC_TYPE = 'http://terminology.hl7.org/CodeSystem/location-physical-type';
const CLINIC_A = 'Location/clinic-a';

let server;
let sys;
const as = {}; // api clients by name

const dur = (value) => ({ value, unit: 'min', system: 'http://unitsofmeasure.org', code: 'min' });
function appointment(start, actors, extra = {}) {
    const end = new Date(Date.parse(start) + 30 * 60_000).toISOString().replace('.000Z', 'Z');
    return {
        resourceType: 'Appointment',
        status: 'booked',
        start,
        end,
        participant: actors.map((a) => ({ actor: { reference: a }, status: 'accepted' })),
        ...extra,
    };
}
const DR_A = ['Practitioner/dr-a', 'PractitionerRole/role-dr-a', CLINIC_A];
const DR_A2 = ['Practitioner/dr-a2', 'PractitionerRole/role-dr-a2', CLINIC_A];
const DR_B = ['Practitioner/dr-b', 'PractitionerRole/role-dr-b', 'Location/clinic-b'];

// Each plain-REST booking gets a half hour of its own in 2031 (no rules apply to REST writes).
let bookingCounter = 0;
function freshTime() {
    bookingCounter += 1;
    return new Date(Date.UTC(2031, 0, 1, 0, 0) + bookingCounter * 3600_000).toISOString().replace('.000Z', 'Z');
}
// Each $find looks at a day of its own (every day is a working day here).
let dayCounter = 2;
function freshDay() {
    dayCounter += 1;
    return new Date(Date.now() + dayCounter * 86400_000).toISOString().slice(0, 10);
}

before(async () => {
    const keys = makeKeys(tempDir());
    server = await startAuthServer({ keys });
    sys = api(server, tokenFor('system-admin', { server }));
    const user = (role, opts = {}) => api(server, tokenFor(role, { server, ...opts }));
    const A = { locations: [CLINIC_A] };
    as.recA = user('receptionist', A);
    as.docA = user('doctor', { ...A, fhirUser: 'Practitioner/dr-a' });
    as.adminA = user('clinic-admin', A);
    as.ops = user('operations-manager');
    as.support = user('support');
    as.sys = sys;
    as.janitor = user('janitor');

    const up = (r) => sys.upsert(r);
    await up({ resourceType: 'Location', id: 'clinic-a', status: 'active', name: 'Clinic A', mode: 'instance', physicalType: { coding: [{ system: LOC_TYPE, code: 'bu' }] } });
    await up({
        resourceType: 'Location',
        id: 'room-a1',
        status: 'active',
        name: 'Room A1',
        mode: 'instance',
        physicalType: { coding: [{ system: LOC_TYPE, code: 'ro' }] },
        partOf: { reference: CLINIC_A },
    });
    await up({ resourceType: 'Location', id: 'clinic-b', status: 'active', name: 'Clinic B', mode: 'instance', physicalType: { coding: [{ system: LOC_TYPE, code: 'bu' }] } });
    const svc = (id, loc, code) =>
        up({
            resourceType: 'HealthcareService',
            id,
            active: true,
            location: [{ reference: loc }],
            type: [{ coding: [{ system: SYS, code }] }],
            extension: [{ url: `${EXT}service-duration`, valueDuration: dur(30) }],
        });
    await svc('svc-a', CLINIC_A, 'visit-a');
    await svc('svc-b', 'Location/clinic-b', 'visit-b');
    await svc('svc-b2', 'Location/clinic-b', 'visit-b2');
    for (const [dr, loc, service] of [
        ['dr-a', CLINIC_A, 'svc-a'],
        ['dr-a2', CLINIC_A, 'svc-a'],
        ['dr-b', 'Location/clinic-b', 'svc-b'],
    ]) {
        await up({ resourceType: 'Practitioner', id: dr, active: true, name: [{ family: dr, given: ['Dr'] }] });
        await up({
            resourceType: 'PractitionerRole',
            id: `role-${dr}`,
            active: true,
            practitioner: { reference: `Practitioner/${dr}` },
            location: [{ reference: loc }],
            healthcareService: [{ reference: `HealthcareService/${service}` }],
            availableTime: [{ availableStartTime: '09:00:00', availableEndTime: '12:00:00' }],
        });
        await up({ resourceType: 'Schedule', id: `sched-${dr}`, active: true, actor: [{ reference: `Practitioner/${dr}` }] });
        // a blocked hour far away (busy-unavailable keeps the Schedule rule-based)
        await up({
            resourceType: 'Slot',
            id: `slot-${dr}`,
            schedule: { reference: `Schedule/sched-${dr}` },
            status: 'busy-unavailable',
            start: '2032-01-05T09:00:00Z',
            end: '2032-01-05T10:00:00Z',
        });
    }
    await up({ resourceType: 'Schedule', id: 'sched-svc-b2', active: true, actor: [{ reference: 'HealthcareService/svc-b2' }] });
    await up({ resourceType: 'Slot', id: 'slot-b2', schedule: { reference: 'Schedule/sched-svc-b2' }, status: 'free', start: '2030-02-01T09:00:00Z', end: '2030-02-01T09:30:00Z' });
    for (const id of ['pat-1', 'pat-2']) await up({ resourceType: 'Patient', id, name: [{ family: id }] });

    const appt = (id, start, actors, extra) => up({ ...appointment(start, actors, extra), id });
    await appt('appt-a', '2030-01-07T09:00:00Z', [...DR_A, 'Patient/pat-1']);
    await appt('appt-a2', '2030-01-07T09:00:00Z', [...DR_A2, 'Patient/pat-1']);
    await appt('appt-room', '2030-01-07T10:00:00Z', ['Location/room-a1', 'Patient/pat-2']);
    await appt('appt-role-a', '2030-01-07T11:00:00Z', ['PractitionerRole/role-dr-a2', 'Patient/pat-2']);
    await appt('appt-b', '2030-01-07T09:00:00Z', [...DR_B, 'Patient/pat-2']);
    await appt('appt-slot-b', '2030-02-01T09:00:00Z', ['Patient/pat-1'], { slot: [{ reference: 'Slot/slot-b2' }] });
    const resp = (id, a, actor) => up({ resourceType: 'AppointmentResponse', id, appointment: { reference: `Appointment/${a}` }, actor: { reference: actor }, participantStatus: 'accepted' });
    await resp('resp-a', 'appt-a', 'Practitioner/dr-a');
    await resp('resp-b', 'appt-b', 'Practitioner/dr-b');
    await up({ resourceType: 'Subscription', id: 'sub-1', status: 'off', reason: 'test', criteria: 'Appointment?status=booked', channel: { type: 'rest-hook', endpoint: 'http://127.0.0.1:9/hook', payload: 'application/fhir+json' } });
});
after(async () => {
    await server?.stop();
});

const APPTS_A = ['Appointment/appt-a', 'Appointment/appt-a2', 'Appointment/appt-room', 'Appointment/appt-role-a'];
const APPTS_B = ['Appointment/appt-b', 'Appointment/appt-slot-b'];

async function expectRead(client, p, ok, what) {
    const res = await client.get(p);
    if (ok) expectStatus(res, 200);
    else expectForbidden(res);
    return res;
}
/** PUT the stored resource back with a changed `language` (a harmless change). */
async function touch(client, reference) {
    const current = (await sys.get(`/${reference}`)).json;
    return client.put(`/${reference}`, { ...current, language: current.language === 'nl' ? 'en' : 'nl' });
}

describe('directory and patients', () => {
    it('every known role reads the directory of every clinic; an unknown role reads nothing', async () => {
        const dir = ['Practitioner/dr-b', 'PractitionerRole/role-dr-b', 'Location/clinic-b', 'HealthcareService/svc-b', 'Schedule/sched-dr-b', 'Slot/slot-dr-b'];
        for (const name of ['recA', 'docA', 'adminA', 'ops', 'support', 'sys']) {
            for (const r of dir) await expectRead(as[name], `/${r}`, true, `${name} ${r}`);
            expectStatus(await as[name].get('/Practitioner?_count=5'), 200);
        }
        for (const r of dir) await expectRead(as.janitor, `/${r}`, false);
        expectForbidden(await as.janitor.get('/Practitioner'));
    });

    it('Patient read/search: all but support; create/update: receptionist, clinic-admin, system-admin; delete: system-admin', async () => {
        for (const name of ['recA', 'docA', 'adminA', 'ops', 'sys']) {
            await expectRead(as[name], '/Patient/pat-1', true);
            expectStatus(await as[name].get('/Patient?_count=5'), 200);
        }
        await expectRead(as.support, '/Patient/pat-1', false);
        expectForbidden(await as.support.get('/Patient'));
        await expectRead(as.janitor, '/Patient/pat-1', false);

        for (const name of ['recA', 'adminA', 'sys']) {
            const res = await as[name].post('/Patient', { resourceType: 'Patient', name: [{ family: uniq(name) }] });
            expectStatus(res, 201);
            expectStatus(await touch(as[name], `Patient/${res.json.id}`), 200);
        }
        for (const name of ['docA', 'ops', 'support']) {
            expectForbidden(await as[name].post('/Patient', { resourceType: 'Patient', name: [{ family: uniq(name) }] }));
            expectForbidden(await touch(as[name], 'Patient/pat-1'));
        }
        const victim = await sys.create({ resourceType: 'Patient', name: [{ family: uniq('del') }] });
        for (const name of ['recA', 'adminA', 'docA']) expectForbidden(await as[name].del(`/Patient/${victim.id}`));
        expectStatus(await sys.del(`/Patient/${victim.id}`), [200, 204]);
    });
});

describe('appointments: own clinics', () => {
    it('users of clinic A read A\'s appointments (directly, through the room\'s partOf, through a role), not B\'s', async () => {
        for (const name of ['recA', 'docA', 'adminA']) {
            for (const r of APPTS_A) await expectRead(as[name], `/${r}`, true, `${name} ${r}`);
            for (const r of APPTS_B) await expectRead(as[name], `/${r}`, false, `${name} ${r}`);
            await expectRead(as[name], '/AppointmentResponse/resp-a', true);
            await expectRead(as[name], '/AppointmentResponse/resp-b', false);
            expectForbidden(await as[name].get('/Appointment/appt-b/_history'));
        }
    });

    it('a search of a clinic-A user filters B out, also from counts and includes', async () => {
        const res = await as.recA.get('/Appointment?_count=500');
        expectStatus(res, 200);
        const got = refsOf(res.json, 'match');
        for (const r of APPTS_A) assert.ok(got.includes(r), `${r} is found`);
        for (const r of APPTS_B) assert.ok(!got.includes(r), `${r} is filtered out`);
        const count = await as.recA.get('/Appointment?_summary=count');
        assert.equal(count.json.total, got.length, 'the count agrees with the visible matches');
        const byDate = await as.recA.get('/Appointment?date=2030-01-07&_summary=count');
        assert.equal(byDate.json.total, 4, 'clinic B\'s appointment that day is not counted');
        const inc = await as.recA.get('/AppointmentResponse?_include=AppointmentResponse:appointment&_count=500');
        expectStatus(inc, 200);
        assert.ok(!refsOf(inc.json).some((r) => ['Appointment/appt-b', 'AppointmentResponse/resp-b'].includes(r)), 'nothing of B through includes');
        const rev = await as.recA.get('/Practitioner?_id=dr-b&_revinclude=Appointment:practitioner');
        expectStatus(rev, 200);
        assert.deepEqual(refsOf(rev.json, 'match'), ['Practitioner/dr-b'], 'the practitioner is directory');
        assert.deepEqual(refsOf(rev.json, 'include'), [], 'but B\'s appointments are not revincluded');
        const has = await as.recA.get('/Patient?_has:Appointment:patient:location=Location/clinic-b');
        expectStatus(has, 200);
        assert.deepEqual(refsOf(has.json, 'match'), [], '_has does not look at B\'s appointments');
    });

    it('operations-manager without a locations claim reads every clinic; support reads no appointment', async () => {
        for (const r of [...APPTS_A, ...APPTS_B]) await expectRead(as.ops, `/${r}`, true);
        await expectRead(as.support, '/Appointment/appt-a', false);
        await expectRead(as.support, '/AppointmentResponse/resp-a', false);
        expectForbidden(await as.support.get('/Appointment'));
        for (const r of [...APPTS_A, ...APPTS_B]) await expectRead(as.sys, `/${r}`, true);
    });

    it('receptionist A books at A, not at B, and cannot move an appointment to B', async () => {
        const ok = await as.recA.post('/Appointment', appointment(freshTime(), [...DR_A, 'Patient/pat-1']));
        expectStatus(ok, 201);
        expectForbidden(await as.recA.post('/Appointment', appointment(freshTime(), [...DR_B, 'Patient/pat-1'])));
        // linked to B only through its Slot (proposed: blocks nothing, so only the clinic decides)
        expectForbidden(await as.recA.post('/Appointment', appointment(freshTime(), ['Patient/pat-1'], { status: 'proposed', slot: [{ reference: 'Slot/slot-b2' }] })));
        expectForbidden(await touch(as.recA, 'Appointment/appt-b'));
        expectForbidden(await as.recA.patch('/Appointment/appt-b', [{ op: 'replace', path: '/status', value: 'cancelled' }]));
        // moved to clinic B entirely (doctor, role and clinic): after the change it is no longer A's
        const moved = { ...appointment(ok.json.start, [...DR_B, 'Patient/pat-1']), id: ok.json.id };
        expectForbidden(await as.recA.put(`/Appointment/${ok.json.id}`, moved));
        expectStatus(await as.recA.put(`/Appointment/${ok.json.id}`, { ...ok.json, comment: 'Patient called' }), 200);
        expectForbidden(await as.recA.del(`/Appointment/${ok.json.id}`));
    });

    it('a doctor edits own Appointments only; operations-manager and support write none', async () => {
        expectStatus(await touch(as.docA, 'Appointment/appt-a'), 200);
        expectStatus(await as.docA.patch('/Appointment/appt-a', [{ op: 'add', path: '/comment', value: 'seen' }]), 200);
        expectForbidden(await touch(as.docA, 'Appointment/appt-a2'));
        expectForbidden(await touch(as.docA, 'Appointment/appt-room'));
        expectStatus(await as.docA.post('/Appointment', appointment(freshTime(), [...DR_A, 'Patient/pat-1'])), 201);
        expectForbidden(await as.docA.post('/Appointment', appointment(freshTime(), [...DR_A2, 'Patient/pat-1'])));
        expectForbidden(await as.docA.del('/Appointment/appt-a'));
        expectStatus(await touch(as.docA, 'AppointmentResponse/resp-a'), 200);
        for (const name of ['ops', 'support', 'janitor']) {
            expectForbidden(await as[name].post('/Appointment', appointment(freshTime(), [...DR_A, 'Patient/pat-1'])));
            expectForbidden(await touch(as[name], 'Appointment/appt-a'));
        }
    });

    it('clinic-admin A deletes appointments at A only; system-admin anywhere', async () => {
        const atA = await sys.create(appointment(freshTime(), [...DR_A, 'Patient/pat-1']));
        const atB = await sys.create(appointment(freshTime(), [...DR_B, 'Patient/pat-1']));
        expectStatus(await as.adminA.del(`/Appointment/${atA.id}`), [200, 204]);
        expectForbidden(await as.adminA.del(`/Appointment/${atB.id}`));
        expectForbidden(await touch(as.adminA, `Appointment/${atB.id}`));
        expectStatus(await sys.del(`/Appointment/${atB.id}`), [200, 204]);
    });
});

describe('scheduling operations', () => {
    const find = (client, code, day, extra = '') =>
        client.get(`/Appointment/$find?start=${day}&end=${day}&visit-type=${encodeURIComponent(`${SYS}|${code}`)}&_count=50${extra}`);
    const offers = (res) => (res.json.entry || []).map((e) => e.resource).filter((r) => r?.resourceType === 'Appointment');
    const ref = (appt) => ({ resourceType: 'Parameters', parameter: [{ name: 'appointment-reference', valueReference: { reference: `Appointment/${appt.id}` } }] });
    async function proposals(code, extra = '') {
        const res = await find(sys, code, freshDay(), extra);
        expectStatus(res, 200);
        const list = offers(res);
        assert.ok(list.length >= 6, `proposals for ${code}${extra}: ${res.text.slice(0, 500)}`);
        return list;
    }

    it('$find: every role may; an unknown role may not', async () => {
        const day = freshDay();
        for (const name of ['recA', 'docA', 'adminA', 'ops', 'support', 'sys']) {
            const res = await find(as[name], 'visit-a', day);
            assert.equal(res.status, 200, `$find as ${name}: ${res.text.slice(0, 300)}`);
            assert.ok(offers(res).length > 0, `${name} gets proposals`);
        }
        expectForbidden(await find(as.janitor, 'visit-a', day));
    });

    it('$hold and $book: receptionist at own clinics only; doctor own only; operations-manager and support never', async () => {
        const a = await proposals('visit-a', '&practitioner=Practitioner/dr-a');
        const a2 = await proposals('visit-a', '&practitioner=Practitioner/dr-a2');
        const b = await proposals('visit-b');
        expectForbidden(await as.recA.post('/Appointment/$hold', ref(b[0])));
        expectForbidden(await as.recA.post('/Appointment/$book', ref(b[1])));
        expectForbidden(await as.adminA.post('/Appointment/$book', ref(b[2])));
        expectStatus(await as.recA.post('/Appointment/$hold', ref(a[0])), 200);
        expectStatus(await as.recA.post('/Appointment/$book', ref(a2[0])), 200);

        // proposals are 15 minutes apart and last 30: successes use every other one
        expectStatus(await as.docA.post('/Appointment/$hold', ref(a[2])), 200);
        expectForbidden(await as.docA.post('/Appointment/$hold', ref(a2[2])));
        expectForbidden(await as.docA.post('/Appointment/$book', ref(a2[4])));

        for (const name of ['ops', 'support', 'janitor']) {
            expectForbidden(await as[name].post('/Appointment/$hold', ref(a[4])));
            expectForbidden(await as[name].post('/Appointment/$book', ref(a[5])));
        }
        expectStatus(await sys.post('/Appointment/$book', ref(b[3])), 200);
        // the refused ones are still mere proposals
        for (const p of [b[0], b[1], b[2], a2[2], a2[4], a[4], a[5]]) {
            assert.equal((await sys.get(`/Appointment/${p.id}`)).json?.status, 'proposed', `${p.id} stayed a proposal`);
        }
    });

    it('$book with override-rules: clinic-admin (own clinics) and system-admin only', async () => {
        // 20:00 UTC is outside everybody's 09:00-12:00: a soft rule only override-rules can pass
        const late = (day, actors) => ({
            resourceType: 'Parameters',
            parameter: [
                { name: 'appointment-resource', resource: appointment(`${day}T20:00:00Z`, [...actors, 'Patient/pat-1']) },
                { name: 'override-rules', valueBoolean: true },
            ],
        });
        const d1 = freshDay();
        expectForbidden(await as.recA.post('/Appointment/$book', late(d1, [...DR_A, 'HealthcareService/svc-a'])));
        expectForbidden(await as.docA.post('/Appointment/$book', late(d1, [...DR_A, 'HealthcareService/svc-a'])));
        expectForbidden(await as.adminA.post('/Appointment/$book', late(d1, [...DR_B, 'HealthcareService/svc-b'])));
        const ok = await as.adminA.post('/Appointment/$book', late(d1, [...DR_A, 'HealthcareService/svc-a']));
        expectStatus(ok, 200);
        expectStatus(await sys.post('/Appointment/$book', late(d1, [...DR_B, 'HealthcareService/svc-b'])), 200);
    });
});

describe('availability rules: Slots, Schedules and the directory', () => {
    const blocking = (schedule) => {
        const start = freshTime();
        const end = new Date(Date.parse(start) + 30 * 60_000).toISOString().replace('.000Z', 'Z');
        return { resourceType: 'Slot', schedule: { reference: `Schedule/${schedule}` }, status: 'busy-unavailable', start, end };
    };

    it('a doctor blocks time on own Schedule only; receptionist and operations-manager never', async () => {
        const mine = await as.docA.post('/Slot', blocking('sched-dr-a'));
        expectStatus(mine, 201);
        expectStatus(await as.docA.put(`/Slot/${mine.json.id}`, { ...mine.json, comment: 'Training' }), 200);
        expectStatus(await as.docA.del(`/Slot/${mine.json.id}`), [200, 204]);
        expectForbidden(await as.docA.post('/Slot', blocking('sched-dr-a2')));
        expectForbidden(await touch(as.docA, 'Slot/slot-dr-a2'));
        expectForbidden(await as.docA.del('/Slot/slot-dr-a2'));
        for (const name of ['recA', 'ops', 'support']) {
            expectForbidden(await as[name].post('/Slot', blocking('sched-dr-a')));
            expectForbidden(await touch(as[name], 'Slot/slot-dr-a'));
        }
    });

    it('clinic-admin A manages Slots at A, not at B', async () => {
        expectStatus(await as.adminA.post('/Slot', blocking('sched-dr-a2')), 201);
        expectStatus(await touch(as.adminA, 'Slot/slot-dr-a'), 200);
        expectForbidden(await as.adminA.post('/Slot', blocking('sched-dr-b')));
        expectForbidden(await touch(as.adminA, 'Slot/slot-dr-b'));
    });

    it('receptionist and doctor cannot change Schedule, PractitionerRole, Location, HealthcareService, Practitioner, Device', async () => {
        const targets = ['Schedule/sched-dr-a', 'PractitionerRole/role-dr-a', 'Location/clinic-a', 'Location/room-a1', 'HealthcareService/svc-a', 'Practitioner/dr-a'];
        for (const name of ['recA', 'docA', 'ops', 'support']) {
            for (const t of targets) expectForbidden(await touch(as[name], t));
            expectForbidden(await as[name].post('/Schedule', { resourceType: 'Schedule', active: true, actor: [{ reference: 'Practitioner/dr-a' }] }));
            expectForbidden(await as[name].post('/Device', { resourceType: 'Device', status: 'active', location: { reference: CLINIC_A } }));
        }
    });

    it('clinic-admin A changes A\'s availability rules, not B\'s; sets up a new practitioner; system-admin everywhere', async () => {
        for (const t of ['Schedule/sched-dr-a', 'PractitionerRole/role-dr-a', 'Location/clinic-a', 'Location/room-a1', 'HealthcareService/svc-a', 'Practitioner/dr-a']) {
            expectStatus(await touch(as.adminA, t), 200);
        }
        for (const t of ['Schedule/sched-dr-b', 'PractitionerRole/role-dr-b', 'Location/clinic-b', 'HealthcareService/svc-b', 'Practitioner/dr-b']) {
            expectForbidden(await touch(as.adminA, t));
        }
        // a room at A, a device at A: yes; at B: no
        expectStatus(await as.adminA.post('/Location', { resourceType: 'Location', status: 'active', name: 'Room A2', partOf: { reference: CLINIC_A } }), 201);
        expectForbidden(await as.adminA.post('/Location', { resourceType: 'Location', status: 'active', name: 'Room B2', partOf: { reference: 'Location/clinic-b' } }));
        expectStatus(await as.adminA.post('/Device', { resourceType: 'Device', status: 'active', location: { reference: CLINIC_A } }), 201);
        expectForbidden(await as.adminA.post('/Device', { resourceType: 'Device', status: 'active', location: { reference: 'Location/clinic-b' } }));
        // moving clinic A's role to clinic B is a change at B
        const role = (await sys.get('/PractitionerRole/role-dr-a2')).json;
        expectForbidden(await as.adminA.put('/PractitionerRole/role-dr-a2', { ...role, location: [{ reference: 'Location/clinic-b' }] }));
        // a new practitioner belongs to no clinic yet: theirs to set up, with a role at A
        const dr = await as.adminA.post('/Practitioner', { resourceType: 'Practitioner', active: true, name: [{ family: uniq('New') }] });
        expectStatus(dr, 201);
        expectStatus(
            await as.adminA.post('/PractitionerRole', { resourceType: 'PractitionerRole', active: true, practitioner: { reference: `Practitioner/${dr.json.id}` }, location: [{ reference: CLINIC_A }] }),
            201,
        );
        expectStatus(await touch(as.adminA, `Practitioner/${dr.json.id}`), 200);
        for (const t of ['Location/clinic-b', 'Schedule/sched-dr-b', 'HealthcareService/svc-b', 'PractitionerRole/role-dr-b', 'Practitioner/dr-b']) {
            expectStatus(await touch(sys, t), 200);
        }
    });
});

describe('audit reports and subscriptions', () => {
    it('AuditEvent read/search: clinic-admin, operations-manager, system-admin; not receptionist, doctor, support', async () => {
        for (const name of ['adminA', 'ops', 'sys']) {
            const res = await as[name].get('/AuditEvent?_count=5');
            expectStatus(res, 200);
            assert.equal(res.json.type, 'searchset');
        }
        const some = (await sys.get('/AuditEvent?_count=1')).json.entry?.[0]?.resource;
        for (const name of ['recA', 'docA', 'support', 'janitor']) {
            expectForbidden(await as[name].get('/AuditEvent'));
            if (some) expectForbidden(await as[name].get(`/AuditEvent/${some.id}`));
        }
        if (some) expectStatus(await as.ops.get(`/AuditEvent/${some.id}`), 200);
    });

    it('Subscription read/search: clinic-admin, support, system-admin; write: clinic-admin, system-admin', async () => {
        for (const name of ['adminA', 'support', 'sys']) {
            await expectRead(as[name], '/Subscription/sub-1', true);
            expectStatus(await as[name].get('/Subscription'), 200);
        }
        for (const name of ['recA', 'docA', 'ops']) await expectRead(as[name], '/Subscription/sub-1', false);
        const sub = { resourceType: 'Subscription', status: 'off', reason: 'test', criteria: 'Slot?status=free', channel: { type: 'rest-hook', endpoint: 'http://127.0.0.1:9/hook', payload: 'application/fhir+json' } };
        expectStatus(await as.adminA.post('/Subscription', sub), 201);
        for (const name of ['support', 'recA', 'ops']) expectForbidden(await as[name].post('/Subscription', sub));
    });
});

describe('roles combined with scopes', () => {
    it('a request needs the scope and the role', async () => {
        const narrow = api(server, tokenFor('receptionist', { server, locations: [CLINIC_A], scope: 'user/Appointment.read user/Patient.read' }));
        expectStatus(await narrow.get('/Appointment/appt-a'), 200);
        expectForbidden(await narrow.post('/Appointment', appointment(freshTime(), [...DR_A, 'Patient/pat-1'])), { scope: true });
        expectForbidden(await narrow.get('/Practitioner/dr-a'), { scope: true });
        const readAdmin = api(server, tokenFor('clinic-admin', { server, locations: [CLINIC_A], scope: 'user/*.read' }));
        expectForbidden(await touch(readAdmin, 'Schedule/sched-dr-a'), { scope: true });
    });

    it('a user token without a role is limited by its scopes alone', async () => {
        const engine = api(server, tokenFor(null, { server, scope: 'user/Appointment.read user/Practitioner.read' }));
        for (const r of [...APPTS_A, ...APPTS_B]) await expectRead(engine, `/${r}`, true);
        expectForbidden(await engine.get('/Patient/pat-1'), { scope: true });
        expectForbidden(await engine.post('/Appointment', appointment(freshTime(), [...DR_A])), { scope: true });
        const system = api(server, tokenFor(null, { server, scope: 'system/*.*' }));
        expectStatus(await touch(system, 'Location/clinic-b'), 200);
    });

    it('several roles: the union of what they allow; unknown names add nothing', async () => {
        const both = api(server, tokenFor(null, { server, roles: ['support', 'receptionist', 'janitor'], locations: [CLINIC_A] }));
        await expectRead(both, '/Appointment/appt-a', true);
        await expectRead(both, '/Subscription/sub-1', true);
        await expectRead(both, '/Appointment/appt-b', false);
    });
});
