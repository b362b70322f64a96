// Type-level search (FHIR R4 search.html, http.html#search): searchset
// Bundles, _id, _lastUpdated, identifier, _count and basic token, string,
// reference and date parameters of the scheduling resources.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
    allPages,
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

const SYS = 'http://example.org/fhir/search-mrn';

let server;
before(async () => {
    server = await startServer();
});
after(async () => {
    await server?.stop();
});

async function search(path) {
    const res = await fhir(server, 'GET', path);
    expectStatus(res, 200);
    expectFhirJson(res);
    const b = res.json;
    assert.equal(b.resourceType, 'Bundle');
    assert.equal(b.type, 'searchset');
    assert.ok(Number.isInteger(b.total), 'searchset has total');
    assert.ok(link(b, 'self'), 'searchset has a self link');
    for (const e of b.entry || []) {
        assert.ok(e.resource, 'entry.resource');
        // An OperationOutcome about the search itself (e.g. an ignored parameter) has mode "outcome".
        if (e.search?.mode === 'outcome') {
            assert.equal(e.resource.resourceType, 'OperationOutcome', 'an outcome entry is an OperationOutcome');
            continue;
        }
        assert.equal(e.search?.mode, 'match', 'entry.search.mode');
        assert.equal(e.fullUrl, `${server.base}/${e.resource.resourceType}/${e.resource.id}`, 'entry.fullUrl');
    }
    return b;
}

const matches = (b) => (b.entry || []).filter((e) => e.search?.mode === 'match');
const ids = (b) => matches(b).map((e) => e.resource.id).sort();
const enc = encodeURIComponent;

describe('common parameters', () => {
    it('_id, and a comma-separated list of ids', async () => {
        const a = await create(server, sample('Patient'));
        const b = await create(server, sample('Patient'));
        await create(server, sample('Patient'));
        let r = await search(`/Patient?_id=${a.id}`);
        assert.equal(r.total, 1);
        assert.deepEqual(ids(r), [a.id]);
        r = await search(`/Patient?_id=${a.id},${b.id}`);
        assert.equal(r.total, 2);
        assert.deepEqual(ids(r), [a.id, b.id].sort());
        r = await search(`/Patient?_id=${uniq('none')}`);
        assert.equal(r.total, 0);
        assert.equal(matches(r).length, 0);
    });

    it('identifier: system|value, value alone, system| alone', async () => {
        const v = uniq('id');
        const sys2 = `${SYS}-2`;
        const a = await create(server, patientWithIdentifier(SYS, v));
        const b = await create(server, patientWithIdentifier(sys2, v));
        const c = await create(server, patientWithIdentifier(sys2, uniq('id')));
        assert.deepEqual(ids(await search(`/Patient?identifier=${enc(`${SYS}|${v}`)}`)), [a.id]);
        assert.deepEqual(ids(await search(`/Patient?identifier=${enc(v)}`)), [a.id, b.id].sort());
        assert.deepEqual(ids(await search(`/Patient?identifier=${enc(`${sys2}|`)}`)), [b.id, c.id].sort());
    });

    it('_lastUpdated with ge / lt prefixes', async () => {
        const v = uniq('lu');
        const a = await create(server, patientWithIdentifier(SYS, v));
        await sleep(30);
        const b = await create(server, patientWithIdentifier(SYS, v));
        const mark = enc(b.meta.lastUpdated);
        const idq = `identifier=${enc(`${SYS}|${v}`)}`;
        assert.deepEqual(ids(await search(`/Patient?${idq}&_lastUpdated=ge${mark}`)), [b.id]);
        assert.deepEqual(ids(await search(`/Patient?${idq}&_lastUpdated=lt${mark}`)), [a.id]);
        assert.equal((await search(`/Patient?${idq}&_lastUpdated=gt2999-01-01`)).total, 0);
        assert.equal((await search(`/Patient?${idq}&_lastUpdated=ge2000-01-01`)).total, 2);
    });

    it('_count pages with next links; total counts every match', async () => {
        const v = uniq('count');
        const made = [];
        for (let i = 0; i < 5; i++) made.push((await create(server, patientWithIdentifier(SYS, v))).id);
        const q = `/Patient?identifier=${enc(`${SYS}|${v}`)}&_count=2`;
        const first = await search(q);
        assert.equal(first.total, 5);
        assert.equal(matches(first).length, 2);
        assert.ok(link(first, 'next'), 'next link');
        const all = await allPages(server, q);
        const got = all.filter((e) => e.search?.mode === 'match').map((e) => e.resource.id);
        assert.equal(new Set(got).size, got.length, 'no duplicates across pages');
        assert.deepEqual(got.sort(), made.sort());
    });

    it('deleted resources are not found', async () => {
        const v = uniq('del');
        const a = await create(server, patientWithIdentifier(SYS, v));
        expectStatus(await fhir(server, 'DELETE', `/Patient/${a.id}`), [200, 204]);
        assert.equal((await search(`/Patient?identifier=${enc(`${SYS}|${v}`)}`)).total, 0);
        assert.equal((await search(`/Patient?_id=${a.id}`)).total, 0);
    });

    it('only the current version matches', async () => {
        const v1 = uniq('cur1');
        const v2 = uniq('cur2');
        const a = await create(server, patientWithIdentifier(SYS, v1));
        const res = await fhir(server, 'PUT', `/Patient/${a.id}`, { body: patientWithIdentifier(SYS, v2, { id: a.id }) });
        expectStatus(res, 200);
        assert.equal((await search(`/Patient?identifier=${enc(`${SYS}|${v1}`)}`)).total, 0);
        assert.deepEqual(ids(await search(`/Patient?identifier=${enc(`${SYS}|${v2}`)}`)), [a.id]);
    });

    it('unknown parameters are ignored by default and refused with Prefer: handling=strict', async () => {
        const a = await create(server, sample('Patient'));
        const lenient = await search(`/Patient?_id=${a.id}&no-such-param=1`);
        assert.deepEqual(ids(lenient), [a.id]);
        const strict = await fhir(server, 'GET', `/Patient?_id=${a.id}&no-such-param=1`, { headers: { Prefer: 'handling=strict' } });
        expectOutcome(strict, 400);
    });

    it('a malformed value: 400', async () => {
        expectOutcome(await fhir(server, 'GET', '/Patient?_lastUpdated=notadate'), 400);
        expectOutcome(await fhir(server, 'GET', '/Patient?_count=-1'), 400);
    });
});

describe('basic parameters of the scheduling resources', () => {
    it('string: Patient name and family (case-insensitive, starts-with), :exact', async () => {
        const family = `Zzyx${uniq('f').replace(/-/g, '')}`;
        const a = await create(server, sample('Patient', { name: [{ family, given: ['Ada'] }] }));
        assert.deepEqual(ids(await search(`/Patient?family=${family}`)), [a.id]);
        assert.deepEqual(ids(await search(`/Patient?family=${family.toLowerCase().slice(0, 10)}`)), [a.id]);
        assert.deepEqual(ids(await search(`/Patient?name=${family.toUpperCase()}`)), [a.id]);
        assert.deepEqual(ids(await search(`/Patient?family:exact=${family}`)), [a.id]);
        assert.equal((await search(`/Patient?family:exact=${family.toLowerCase()}`)).total, 0);
    });

    it('token: Patient gender, Appointment status, Slot status', async () => {
        const v = uniq('tok');
        const idq = `identifier=${enc(`${SYS}|${v}`)}`;
        const m = await create(server, patientWithIdentifier(SYS, v, { gender: 'male' }));
        await create(server, patientWithIdentifier(SYS, v, { gender: 'female' }));
        assert.deepEqual(ids(await search(`/Patient?${idq}&gender=male`)), [m.id]);

        const actor = `Practitioner/${uniq('prac')}`;
        const booked = await create(server, sample('Appointment', { participant: [{ actor: { reference: actor }, status: 'accepted' }] }));
        const proposed = await create(server, { resourceType: 'Appointment', status: 'proposed', participant: [{ actor: { reference: actor }, status: 'needs-action' }] });
        assert.deepEqual(ids(await search(`/Appointment?actor=${actor}&status=booked`)), [booked.id]);
        assert.deepEqual(ids(await search(`/Appointment?actor=${actor}&status=proposed`)), [proposed.id]);
        assert.deepEqual(ids(await search(`/Appointment?actor=${actor}&status=booked,proposed`)), [booked.id, proposed.id].sort());
    });

    it('reference: Appointment actor / patient / practitioner, Slot schedule, AppointmentResponse appointment', async () => {
        const pat = await create(server, sample('Patient'));
        const prac = await create(server, sample('Practitioner'));
        const appt = await create(
            server,
            sample('Appointment', {
                participant: [
                    { actor: { reference: `Patient/${pat.id}` }, status: 'accepted' },
                    { actor: { reference: `Practitioner/${prac.id}` }, status: 'accepted' },
                ],
            }),
        );
        assert.deepEqual(ids(await search(`/Appointment?actor=Patient/${pat.id}`)), [appt.id]);
        assert.deepEqual(ids(await search(`/Appointment?patient=Patient/${pat.id}`)), [appt.id]);
        assert.deepEqual(ids(await search(`/Appointment?patient=${pat.id}`)), [appt.id]);
        assert.deepEqual(ids(await search(`/Appointment?practitioner=${prac.id}`)), [appt.id]);
        assert.deepEqual(ids(await search(`/Appointment?actor=${enc(`${server.base}/Practitioner/${prac.id}`)}`)), [appt.id]);

        const sched = await create(server, sample('Schedule', { actor: [{ reference: `Practitioner/${prac.id}` }] }));
        const slot = await create(server, sample('Slot', { schedule: { reference: `Schedule/${sched.id}` } }));
        assert.deepEqual(ids(await search(`/Slot?schedule=Schedule/${sched.id}`)), [slot.id]);
        assert.deepEqual(ids(await search(`/Schedule?actor=Practitioner/${prac.id}`)), [sched.id]);

        const ar = await create(server, sample('AppointmentResponse', { appointment: { reference: `Appointment/${appt.id}` } }));
        assert.deepEqual(ids(await search(`/AppointmentResponse?appointment=Appointment/${appt.id}`)), [ar.id]);
    });

    it('date: Appointment date, Slot start, Patient birthdate', async () => {
        const sched = await create(server, sample('Schedule'));
        const sref = { reference: `Schedule/${sched.id}` };
        const early = await create(server, sample('Slot', { schedule: sref, start: '2031-03-02T09:00:00Z', end: '2031-03-02T09:30:00Z' }));
        const late = await create(server, sample('Slot', { schedule: sref, start: '2031-03-04T09:00:00Z', end: '2031-03-04T09:30:00Z' }));
        const q = `/Slot?schedule=Schedule/${sched.id}`;
        assert.deepEqual(ids(await search(`${q}&start=ge2031-03-03`)), [late.id]);
        assert.deepEqual(ids(await search(`${q}&start=lt2031-03-03`)), [early.id]);
        assert.deepEqual(ids(await search(`${q}&start=2031-03-02`)), [early.id]);
        assert.deepEqual(ids(await search(`${q}&start=ge2031-03-01&start=lt2031-03-05`)), [early.id, late.id].sort());

        const actor = `Practitioner/${uniq('dp')}`;
        const appt = await create(
            server,
            sample('Appointment', {
                start: '2031-05-10T14:00:00Z',
                end: '2031-05-10T14:30:00Z',
                participant: [{ actor: { reference: actor }, status: 'accepted' }],
            }),
        );
        assert.deepEqual(ids(await search(`/Appointment?actor=${actor}&date=2031-05-10`)), [appt.id]);
        assert.deepEqual(ids(await search(`/Appointment?actor=${actor}&date=ge${enc('2031-05-10T13:00:00Z')}`)), [appt.id]);
        assert.equal((await search(`/Appointment?actor=${actor}&date=gt2031-05-11`)).total, 0);

        const v = uniq('bd');
        const p = await create(server, patientWithIdentifier(SYS, v, { birthDate: '1975-07-14' }));
        await create(server, patientWithIdentifier(SYS, v, { birthDate: '1990-01-01' }));
        const idq = `identifier=${enc(`${SYS}|${v}`)}`;
        assert.deepEqual(ids(await search(`/Patient?${idq}&birthdate=1975-07-14`)), [p.id]);
        assert.deepEqual(ids(await search(`/Patient?${idq}&birthdate=1975`)), [p.id]);
        assert.deepEqual(ids(await search(`/Patient?${idq}&birthdate=lt1980-01-01`)), [p.id]);
    });
});
