// An off-the-shelf FHIR client (fhir-kit-client) against the server.
// Every JSON response it receives is also checked against the R4 schema.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, beforeEach, afterEach, describe, it } from 'node:test';
import { Client } from 'fhir-kit-client';
import { makeKeys, startAuthServer, tempDir, tokenFor } from '../lib/auth.mjs';
import { patientWithIdentifier, sample, schemaErrors, startServer, uniq } from '../lib/harness.mjs';

const SYS = 'http://example.org/fhir/fhirkit';

let server;
let client;
let schemaProblems = [];
const realFetch = globalThis.fetch;

before(async () => {
    server = await startServer();
    client = new Client({ baseUrl: server.base });
    // Look at every response the client gets, without changing it.
    globalThis.fetch = async (input, init) => {
        const res = await realFetch(input, init);
        const ct = res.headers.get('content-type') || '';
        if (/^application\/(fhir\+)?json/.test(ct)) {
            const text = await res.clone().text();
            if (text) {
                const url = typeof input === 'string' ? input : input.url;
                try {
                    const errs = schemaErrors(JSON.parse(text));
                    if (errs.length) schemaProblems.push(`${url} -> ${res.status}:\n  ${errs.join('\n  ')}`);
                } catch (e) {
                    schemaProblems.push(`${url} -> ${res.status}: not JSON (${e.message})`);
                }
            }
        }
        return res;
    };
});
after(async () => {
    globalThis.fetch = realFetch;
    await server?.stop();
});
beforeEach(() => {
    schemaProblems = [];
});
afterEach(() => {
    assert.deepEqual(schemaProblems, [], 'responses that are not valid FHIR R4');
});

/** The HTTP status fhir-kit-client saw for a failed call. */
async function failure(promise) {
    try {
        await promise;
    } catch (e) {
        return e.response?.status ?? e;
    }
    assert.fail('expected the call to fail');
}

it('capabilityStatement', async () => {
    const cs = await client.capabilityStatement();
    assert.equal(cs.resourceType, 'CapabilityStatement');
    assert.equal(cs.fhirVersion, '4.0.1');
});

it('create, read, update, vread, history, delete', async () => {
    const created = await client.create({ resourceType: 'Patient', body: sample('Patient') });
    assert.equal(created.resourceType, 'Patient');
    assert.ok(created.id);
    assert.equal(created.meta.versionId, '1');

    const read = await client.read({ resourceType: 'Patient', id: created.id });
    assert.deepEqual(read, created);

    const updated = await client.update({ resourceType: 'Patient', id: created.id, body: { ...read, gender: 'male' } });
    assert.equal(updated.meta.versionId, '2');
    assert.equal(updated.gender, 'male');

    const v1 = await client.vread({ resourceType: 'Patient', id: created.id, version: '1' });
    assert.equal(v1.gender, 'female');

    const hist = await client.history({ resourceType: 'Patient', id: created.id });
    assert.equal(hist.type, 'history');
    assert.deepEqual(
        hist.entry.map((e) => e.resource.meta.versionId),
        ['2', '1'],
    );
    const typeHist = await client.typeHistory({ resourceType: 'Patient' });
    assert.equal(typeHist.type, 'history');
    const sysHist = await client.systemHistory();
    assert.equal(sysHist.type, 'history');

    await client.delete({ resourceType: 'Patient', id: created.id });
    assert.equal(await failure(client.read({ resourceType: 'Patient', id: created.id })), 410);
    assert.equal(await failure(client.read({ resourceType: 'Patient', id: uniq('nope') })), 404);
});

it('conditional create with If-None-Exist', async () => {
    const value = uniq('kit');
    const query = `identifier=${encodeURIComponent(`${SYS}|${value}`)}`;
    const first = await client.create({
        resourceType: 'Patient',
        body: patientWithIdentifier(SYS, value),
        options: { headers: { 'If-None-Exist': query } },
    });
    assert.ok(first.id);
    const second = await client.create({
        resourceType: 'Patient',
        body: patientWithIdentifier(SYS, value, { gender: 'male' }),
        options: { headers: { 'If-None-Exist': query } },
    });
    if (second.resourceType) assert.equal(second.id, first.id);
    const found = await client.search({ resourceType: 'Patient', searchParams: { identifier: `${SYS}|${value}` } });
    assert.equal(found.total, 1);
    assert.equal(found.entry[0].resource.id, first.id);
});

it('conditional update through searchParams', async () => {
    const value = uniq('kitcu');
    const created = await client.update({
        resourceType: 'Patient',
        searchParams: { identifier: `${SYS}|${value}` },
        body: patientWithIdentifier(SYS, value),
    });
    assert.ok(created.id);
    const updated = await client.update({
        resourceType: 'Patient',
        searchParams: { identifier: `${SYS}|${value}` },
        body: patientWithIdentifier(SYS, value, { gender: 'other' }),
    });
    assert.equal(updated.id, created.id);
    assert.equal(updated.meta.versionId, '2');
});

it('transaction with urn:uuid references', async () => {
    const patientUrn = `urn:uuid:${randomUUID()}`;
    const res = await client.transaction({
        body: {
            resourceType: 'Bundle',
            type: 'transaction',
            entry: [
                { fullUrl: patientUrn, resource: sample('Patient'), request: { method: 'POST', url: 'Patient' } },
                {
                    fullUrl: `urn:uuid:${randomUUID()}`,
                    resource: sample('Appointment', { participant: [{ actor: { reference: patientUrn }, status: 'accepted' }] }),
                    request: { method: 'POST', url: 'Appointment' },
                },
            ],
        },
    });
    assert.equal(res.type, 'transaction-response');
    assert.equal(res.entry.length, 2);
    const [pid, aid] = res.entry.map((e) => e.response.location.match(/(?:^|\/)(?:Patient|Appointment)\/([^/]+)\/_history/)[1]);
    const appt = await client.read({ resourceType: 'Appointment', id: aid });
    assert.equal(appt.participant[0].actor.reference, `Patient/${pid}`);
});

it('batch', async () => {
    const res = await client.batch({
        body: {
            resourceType: 'Bundle',
            type: 'batch',
            entry: [
                { resource: sample('Location'), request: { method: 'POST', url: 'Location' } },
                { request: { method: 'GET', url: `Location/${uniq('nope')}` } },
            ],
        },
    });
    assert.equal(res.type, 'batch-response');
    assert.match(res.entry[0].response.status, /^201/);
    assert.match(res.entry[1].response.status, /^404/);
});

it('search by _id and paging with nextPage', async () => {
    const value = uniq('kitpage');
    const made = [];
    for (let i = 0; i < 3; i++) made.push((await client.create({ resourceType: 'Patient', body: patientWithIdentifier(SYS, value) })).id);
    const one = await client.search({ resourceType: 'Patient', searchParams: { _id: made[1] } });
    assert.equal(one.type, 'searchset');
    assert.equal(one.total, 1);
    assert.equal(one.entry[0].resource.id, made[1]);

    let page = await client.search({ resourceType: 'Patient', searchParams: { identifier: `${SYS}|${value}`, _count: 2 } });
    const seen = page.entry.map((e) => e.resource.id);
    assert.equal(page.total, 3);
    page = await client.nextPage({ bundle: page });
    assert.ok(page, 'a next page');
    seen.push(...page.entry.map((e) => e.resource.id));
    assert.deepEqual(seen.sort(), made.sort());
});

it('JSON Patch through the client', async () => {
    const created = await client.create({ resourceType: 'Patient', body: sample('Patient') });
    const patched = await client.patch({
        resourceType: 'Patient',
        id: created.id,
        jsonPatch: [{ op: 'replace', path: '/gender', value: 'other' }],
    });
    assert.equal(patched.gender, 'other');
    assert.equal(patched.meta.versionId, '2');
});

it('errors reach the client as OperationOutcomes', async () => {
    try {
        await client.create({ resourceType: 'Patient', body: sample('Patient', { gender: 'robot' }) });
        assert.fail('expected a 422');
    } catch (e) {
        assert.equal(e.response?.status, 422, e.message);
        assert.equal(e.response.data.resourceType, 'OperationOutcome');
    }
});

// ---- search and paging (issue 3) ----

/** Walks a search with client.nextPage until there is no next page; returns the pages. */
async function nextPages(first) {
    const pages = [first];
    for (let page = first; pages.length < 50; ) {
        page = await client.nextPage({ bundle: page });
        if (!page) return pages;
        assert.equal(page.type, 'searchset');
        pages.push(page);
    }
    assert.fail('more than 50 pages');
}

const matchIds = (b) => (b.entry || []).filter((e) => e.search?.mode === 'match').map((e) => e.resource.id);
const includeRefs = (b) =>
    (b.entry || []).filter((e) => e.search?.mode === 'include').map((e) => `${e.resource.resourceType}/${e.resource.id}`);

it('search with a date range, _sort and _include; nextPage to the end and prevPage back to the start', async () => {
    const sched = await client.create({ resourceType: 'Schedule', body: sample('Schedule') });
    const made = [];
    for (let i = 0; i < 12; i++) {
        const start = new Date(Date.UTC(2035, 0, 2, 8, 0) + ((i * 5) % 12) * 15 * 60_000);
        const end = new Date(start.getTime() + 15 * 60_000);
        const body = sample('Slot', {
            schedule: { reference: `Schedule/${sched.id}` },
            start: start.toISOString().replace('.000Z', 'Z'),
            end: end.toISOString().replace('.000Z', 'Z'),
        });
        made.push(await client.create({ resourceType: 'Slot', body }));
    }
    // one outside the range
    await client.create({
        resourceType: 'Slot',
        body: sample('Slot', { schedule: { reference: `Schedule/${sched.id}` }, start: '2035-01-03T08:00:00Z', end: '2035-01-03T08:15:00Z' }),
    });
    const byStart = [...made].sort((a, b) => a.start.localeCompare(b.start)).map((s) => s.id);

    const first = await client.search({
        resourceType: 'Slot',
        searchParams: {
            schedule: `Schedule/${sched.id}`,
            start: ['ge2035-01-02', 'lt2035-01-03'],
            _sort: 'start',
            _include: 'Slot:schedule',
            _count: 5,
        },
    });
    assert.equal(first.type, 'searchset');
    assert.equal(first.total, 12);
    assert.equal(await client.prevPage({ bundle: first }), undefined, 'no previous page before the first');
    const pages = await nextPages(first);
    assert.equal(pages.length, 3);
    assert.deepEqual(pages.map((p) => matchIds(p).length), [5, 5, 2]);
    assert.deepEqual(pages.flatMap(matchIds), byStart, 'nextPage walks the matches in start order, each once');
    for (const p of pages) assert.deepEqual(includeRefs(p), [`Schedule/${sched.id}`], 'each page includes the Schedule once');

    // and back with prevPage
    const back = [pages[pages.length - 1]];
    for (let page = back[0]; ; ) {
        page = await client.prevPage({ bundle: page });
        if (!page) break;
        back.push(page);
        assert.ok(back.length <= 10, 'prevPage ends');
    }
    assert.equal(back.length, 3);
    assert.deepEqual(back.reverse().flatMap(matchIds), byStart, 'prevPage walks back over the same pages');
});

it('POST _search (postSearch) with chaining, then nextPage', async () => {
    const family = `Kit${uniq('').replace(/[^a-f]/g, '')}chain`;
    const prac = await client.create({ resourceType: 'Practitioner', body: sample('Practitioner', { name: [{ family }] }) });
    const made = [];
    for (let i = 0; i < 3; i++) {
        const body = sample('Appointment', {
            // one practitioner: three different hours, or the second would be a double booking (409)
            start: `2030-01-07T0${i + 1}:00:00Z`,
            end: `2030-01-07T0${i + 1}:30:00Z`,
            participant: [{ actor: { reference: `Practitioner/${prac.id}` }, status: 'accepted' }],
        });
        made.push((await client.create({ resourceType: 'Appointment', body })).id);
    }
    const first = await client.search({
        resourceType: 'Appointment',
        searchParams: { 'practitioner.name': family, _count: 2 },
        options: { postSearch: true },
    });
    assert.equal(first.total, 3);
    const pages = await nextPages(first);
    assert.equal(pages.length, 2);
    const seen = pages.flatMap(matchIds);
    assert.deepEqual([...seen].sort(), [...made].sort());
});

it('_revinclude and _has through the client', async () => {
    const hs = await client.create({ resourceType: 'HealthcareService', body: sample('HealthcareService') });
    const prac = await client.create({ resourceType: 'Practitioner', body: sample('Practitioner') });
    const role = await client.create({
        resourceType: 'PractitionerRole',
        body: sample('PractitionerRole', {
            practitioner: { reference: `Practitioner/${prac.id}` },
            healthcareService: [{ reference: `HealthcareService/${hs.id}` }],
        }),
    });
    const has = await client.search({
        resourceType: 'Practitioner',
        searchParams: { '_has:PractitionerRole:practitioner:service': `HealthcareService/${hs.id}`, _revinclude: 'PractitionerRole:practitioner' },
    });
    assert.equal(has.total, 1);
    assert.deepEqual(matchIds(has), [prac.id]);
    assert.deepEqual(includeRefs(has), [`PractitionerRole/${role.id}`]);
});

it('_summary=count and _elements through the client', async () => {
    const value = uniq('kitsum');
    for (let i = 0; i < 3; i++) await client.create({ resourceType: 'Patient', body: patientWithIdentifier(SYS, value) });
    const count = await client.search({ resourceType: 'Patient', searchParams: { identifier: `${SYS}|${value}`, _summary: 'count' } });
    assert.equal(count.total, 3);
    assert.equal((count.entry || []).length, 0);
    const el = await client.search({ resourceType: 'Patient', searchParams: { identifier: `${SYS}|${value}`, _elements: 'gender' } });
    assert.equal(el.total, 3);
    for (const e of el.entry) {
        assert.equal(e.resource.gender, 'female');
        assert.equal(e.resource.name, undefined);
        assert.ok(e.resource.meta.tag.some((t) => t.code === 'SUBSETTED'));
    }
});

it('scheduling operations through client.operation: $find (GET), $hold and $book (POST Parameters)', async () => {
    // A practitioner of its own (Mondays 09:00-10:00 UTC at a clinic of its own), so no other test's bookings matter.
    const tag = uniq('kit');
    const clinic = await client.create({ resourceType: 'Location', body: { resourceType: 'Location', status: 'active', name: `Kit clinic ${tag}` } });
    const service = await client.create({
        resourceType: 'HealthcareService',
        body: {
            resourceType: 'HealthcareService',
            active: true,
            type: [{ coding: [{ system: SYS, code: tag }] }],
            extension: [{ url: 'http://fhirsched.org/fhir/StructureDefinition/service-duration', valueDuration: { value: 30, unit: 'min', system: 'http://unitsofmeasure.org', code: 'min' } }],
        },
    });
    const prac = await client.create({ resourceType: 'Practitioner', body: sample('Practitioner') });
    await client.create({
        resourceType: 'PractitionerRole',
        body: {
            resourceType: 'PractitionerRole',
            active: true,
            practitioner: { reference: `Practitioner/${prac.id}` },
            location: [{ reference: `Location/${clinic.id}` }],
            healthcareService: [{ reference: `HealthcareService/${service.id}` }],
            availableTime: [{ daysOfWeek: ['mon'], availableStartTime: '09:00:00', availableEndTime: '10:00:00' }],
        },
    });
    await client.create({ resourceType: 'Schedule', body: { resourceType: 'Schedule', active: true, actor: [{ reference: `Practitioner/${prac.id}` }] } });
    // The next Monday at least two days ahead (UTC, the default time zone).
    const day = new Date(Date.now() + 2 * 86400_000);
    day.setUTCHours(0, 0, 0, 0);
    while (day.getUTCDay() !== 1) day.setUTCDate(day.getUTCDate() + 1);
    const date = day.toISOString().slice(0, 10);

    const found = await client.operation({
        resourceType: 'Appointment',
        name: '$find',
        method: 'GET',
        input: { start: date, end: date, 'visit-type': `${SYS}|${tag}`, _count: 5 },
    });
    assert.equal(found.resourceType, 'Bundle');
    assert.equal(found.type, 'searchset');
    assert.equal(found.total, 3, '09:00, 09:15 and 09:30 fit a 30-minute visit in 09:00-10:00');
    const first = found.entry[0].resource;
    assert.equal(first.status, 'proposed');
    assert.equal(first.start, `${date}T09:00:00Z`);

    const reference = { name: 'appointment-reference', valueReference: { reference: `Appointment/${first.id}` } };
    const held = await client.operation({
        resourceType: 'Appointment',
        name: '$hold',
        input: { resourceType: 'Parameters', parameter: [reference] },
    });
    assert.equal(held.entry[0].resource.status, 'pending');

    const booked = await client.operation({
        resourceType: 'Appointment',
        name: '$book',
        input: {
            resourceType: 'Parameters',
            parameter: [reference, { name: 'patient-resource', resource: patientWithIdentifier(SYS, uniq('mrn')) }],
        },
    });
    const appt = booked.entry[0].resource;
    assert.equal(appt.status, 'booked');
    assert.ok(appt.participant.some((p) => p.actor.reference.startsWith('Patient/')), 'the patient joined the appointment');

    // The booked time is no longer offered, and a second $book of it is refused.
    const again = await client.operation({
        resourceType: 'Appointment',
        name: '$find',
        method: 'GET',
        input: { start: date, end: date, 'visit-type': `${SYS}|${tag}` },
    });
    assert.equal(again.total, 1, 'only 09:30 is left');
    assert.equal(await failure(client.operation({ resourceType: 'Appointment', name: '$book', input: { resourceType: 'Parameters', parameter: [reference] } })), 409);
});

// ---- with authorization on (docs/security.md): the token travels in customHeaders ----

describe('fhir-kit-client against a server with authorization on', () => {
    let authServer;
    let authed;
    let anonymous;
    before(async () => {
        const keys = makeKeys(tempDir());
        authServer = await startAuthServer({ keys });
        const token = tokenFor('system-admin', { server: authServer });
        authed = new Client({ baseUrl: authServer.base, customHeaders: { Authorization: `Bearer ${token}` } });
        anonymous = new Client({ baseUrl: authServer.base });
    });
    after(async () => {
        await authServer?.stop();
    });

    it('the same calls with Authorization: Bearer in customHeaders', async () => {
        const cs = await anonymous.capabilityStatement();
        assert.equal(cs.resourceType, 'CapabilityStatement', 'metadata is public');
        const created = await authed.create({ resourceType: 'Patient', body: patientWithIdentifier(SYS, uniq('auth')) });
        assert.ok(created.id);
        const read = await authed.read({ resourceType: 'Patient', id: created.id });
        assert.deepEqual(read, created);
        const updated = await authed.update({ resourceType: 'Patient', id: created.id, body: { ...read, gender: 'male' } });
        assert.equal(updated.meta.versionId, '2');
        const found = await authed.search({ resourceType: 'Patient', searchParams: { _id: created.id } });
        assert.equal(found.total, 1);
        const hist = await authed.history({ resourceType: 'Patient', id: created.id });
        assert.equal(hist.entry.length, 2);
        const batch = await authed.batch({
            body: { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: `Patient/${created.id}` } }] },
        });
        assert.match(batch.entry[0].response.status, /^200/);
        await authed.delete({ resourceType: 'Patient', id: created.id });
    });

    it('without a token: 401 reaches the client as an error carrying the OperationOutcome', async () => {
        for (const call of [
            () => anonymous.read({ resourceType: 'Patient', id: 'anything' }),
            () => anonymous.search({ resourceType: 'Appointment', searchParams: { status: 'booked' } }),
            () => anonymous.create({ resourceType: 'Patient', body: sample('Patient') }),
        ]) {
            try {
                await call();
                assert.fail('expected a 401');
            } catch (e) {
                assert.equal(e.response?.status, 401, e.message);
                assert.equal(e.response.data?.resourceType, 'OperationOutcome');
                assert.equal(e.config?.headers?.get?.('www-authenticate')?.split(' ')[0]?.toLowerCase() ?? 'bearer', 'bearer');
            }
        }
    });
});
