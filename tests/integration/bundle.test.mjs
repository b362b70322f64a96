// batch and transaction at POST [base] (FHIR R4 http.html#transaction).

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
    INVALID_CODES,
    content,
    create,
    expectFhirJson,
    expectOutcome,
    expectStatus,
    fhir,
    parseLocation,
    patientWithIdentifier,
    sample,
    schemaErrors,
    startServer,
    uniq,
} from '../lib/harness.mjs';

const SYS = 'http://example.org/fhir/mrn';

let server;
before(async () => {
    server = await startServer();
});
after(async () => {
    await server?.stop();
});

const bundle = (type, entry) => ({ resourceType: 'Bundle', type, entry });
const urn = () => `urn:uuid:${randomUUID()}`;
const q = (value) => `identifier=${encodeURIComponent(`${SYS}|${value}`)}`;

async function post(b) {
    return fhir(server, 'POST', '', { body: b });
}

/** A 2xx transaction/batch response of `type` with one response entry per request entry. */
function expectResponseBundle(res, type, n) {
    expectStatus(res, 200);
    expectFhirJson(res);
    assert.equal(res.json.resourceType, 'Bundle');
    assert.equal(res.json.type, type);
    assert.equal(res.json.entry?.length, n, 'one response entry per request entry');
    for (const e of res.json.entry) assert.match(e.response?.status ?? '', /^\d{3}/, 'entry.response.status');
    return res.json.entry;
}

const code = (e) => Number(e.response.status.slice(0, 3));

async function count(value) {
    const res = await fhir(server, 'GET', `/Patient?${q(value)}`);
    expectStatus(res, 200);
    return res.json.total;
}

describe('batch', () => {
    it('entries are independent: a failing entry gets its own status and outcome, the others succeed', async () => {
        const existing = await create(server, sample('Patient'));
        const putId = uniq('batch-put');
        const missing = uniq('missing');
        const value = uniq('batch');
        const res = await post(
            bundle('batch', [
                { resource: patientWithIdentifier(SYS, value), request: { method: 'POST', url: 'Patient' } },
                { resource: sample('Patient', { gender: 'robot' }), request: { method: 'POST', url: 'Patient' } },
                { request: { method: 'GET', url: `Patient/${missing}` } },
                { resource: sample('Patient', { id: putId }), request: { method: 'PUT', url: `Patient/${putId}` } },
                { request: { method: 'GET', url: `Patient/${existing.id}` } },
            ]),
        );
        const entries = expectResponseBundle(res, 'batch-response', 5);

        assert.equal(code(entries[0]), 201);
        const loc = parseLocation(server, absolute(entries[0].response.location), 'Patient');
        assert.equal(entries[0].response.etag, 'W/"1"');
        expectStatus(await fhir(server, 'GET', `/Patient/${loc.id}`), 200);

        assert.ok([400, 422].includes(code(entries[1])), `invalid entry status ${entries[1].response.status}`);
        assert.equal(entries[1].response.outcome?.resourceType, 'OperationOutcome', 'the failing entry has an outcome');

        assert.equal(code(entries[2]), 404);
        assert.equal(code(entries[3]), 201);
        expectStatus(await fhir(server, 'GET', `/Patient/${putId}`), 200);

        assert.equal(code(entries[4]), 200);
        assert.equal(entries[4].resource?.id, existing.id);
        assert.equal(await count(value), 1);
    });

    it('a batch with an empty entry list: 200 and an empty batch-response', async () => {
        const res = await post({ resourceType: 'Bundle', type: 'batch' });
        expectStatus(res, 200);
        assert.equal(res.json.type, 'batch-response');
        assert.equal((res.json.entry || []).length, 0);
    });
});

/** Location in a Bundle response may be relative ("Patient/1/_history/1"); make it absolute. */
function absolute(location) {
    assert.ok(location, 'response.location');
    return /^https?:/.test(location) ? location : `${server.base}/${location}`;
}

describe('transaction', () => {
    it('all entries succeed together: transaction-response with a status, location and etag per entry', async () => {
        const value = uniq('tx-ok');
        const putId = uniq('tx-put');
        const res = await post(
            bundle('transaction', [
                { fullUrl: urn(), resource: patientWithIdentifier(SYS, value), request: { method: 'POST', url: 'Patient' } },
                { resource: sample('Practitioner', { id: putId }), request: { method: 'PUT', url: `Practitioner/${putId}` } },
            ]),
        );
        const entries = expectResponseBundle(res, 'transaction-response', 2);
        assert.equal(code(entries[0]), 201);
        assert.equal(entries[0].response.etag, 'W/"1"');
        parseLocation(server, absolute(entries[0].response.location), 'Patient');
        assert.equal(code(entries[1]), 201);
        const loc = parseLocation(server, absolute(entries[1].response.location), 'Practitioner');
        assert.equal(loc.id, putId);
        assert.equal(await count(value), 1);
    });

    it('one invalid entry: the whole transaction fails and nothing is stored', async () => {
        const value = uniq('tx-bad');
        const putId = uniq('tx-bad-put');
        const res = await post(
            bundle('transaction', [
                { fullUrl: urn(), resource: patientWithIdentifier(SYS, value), request: { method: 'POST', url: 'Patient' } },
                { resource: patientWithIdentifier(SYS, value, { id: putId }), request: { method: 'PUT', url: `Patient/${putId}` } },
                { fullUrl: urn(), resource: patientWithIdentifier(SYS, value, { gender: 'robot' }), request: { method: 'POST', url: 'Patient' } },
            ]),
        );
        expectOutcome(res, [400, 409, 422], INVALID_CODES);
        assert.equal(await count(value), 0, 'nothing from the transaction is stored');
        expectOutcome(await fhir(server, 'GET', `/Patient/${putId}`), 404);
    });

    it('urn:uuid references between entries are resolved to the new ids', async () => {
        const patientUrn = urn();
        const scheduleUrn = urn();
        const slotUrn = urn();
        const apptUrn = urn();
        const res = await post(
            bundle('transaction', [
                {
                    fullUrl: apptUrn,
                    resource: sample('Appointment', {
                        slot: [{ reference: slotUrn }],
                        participant: [
                            { actor: { reference: patientUrn, display: 'Jane Doe' }, status: 'accepted' },
                            { actor: { reference: 'Practitioner/example' }, status: 'accepted' },
                        ],
                    }),
                    request: { method: 'POST', url: 'Appointment' },
                },
                { fullUrl: slotUrn, resource: sample('Slot', { schedule: { reference: scheduleUrn } }), request: { method: 'POST', url: 'Slot' } },
                { fullUrl: scheduleUrn, resource: sample('Schedule'), request: { method: 'POST', url: 'Schedule' } },
                { fullUrl: patientUrn, resource: sample('Patient'), request: { method: 'POST', url: 'Patient' } },
            ]),
        );
        const entries = expectResponseBundle(res, 'transaction-response', 4);
        const ids = entries.map((e) => parseLocation(server, absolute(e.response.location)));
        assert.deepEqual(
            ids.map((l) => l.type),
            ['Appointment', 'Slot', 'Schedule', 'Patient'],
            'response entries are in request order',
        );
        const appt = await fhir(server, 'GET', `/Appointment/${ids[0].id}`);
        expectStatus(appt, 200);
        assert.equal(appt.json.participant[0].actor.reference, `Patient/${ids[3].id}`);
        assert.equal(appt.json.participant[0].actor.display, 'Jane Doe');
        assert.equal(appt.json.participant[1].actor.reference, 'Practitioner/example', 'other references untouched');
        assert.equal(appt.json.slot[0].reference, `Slot/${ids[1].id}`);
        const slot = await fhir(server, 'GET', `/Slot/${ids[1].id}`);
        assert.equal(slot.json.schedule.reference, `Schedule/${ids[2].id}`);
        if (entries[0].resource) assert.equal(entries[0].resource.participant[0].actor.reference, `Patient/${ids[3].id}`);
        expectStatus(await fhir(server, 'GET', `/Patient/${ids[3].id}`), 200);
    });

    it('entries are processed DELETE, POST, PUT, GET whatever their order in the Bundle', async () => {
        const value = uniq('tx-order');
        const doomed = await create(server, sample('Patient'));
        const putId = uniq('tx-order-put');
        const res = await post(
            bundle('transaction', [
                { request: { method: 'GET', url: `Patient?${q(value)}` } },
                { request: { method: 'GET', url: `Patient?_id=${doomed.id}` } },
                { request: { method: 'GET', url: `Patient?_id=${putId}` } },
                { resource: sample('Patient', { id: putId }), request: { method: 'PUT', url: `Patient/${putId}` } },
                { fullUrl: urn(), resource: patientWithIdentifier(SYS, value), request: { method: 'POST', url: 'Patient' } },
                { request: { method: 'DELETE', url: `Patient/${doomed.id}` } },
            ]),
        );
        const entries = expectResponseBundle(res, 'transaction-response', 6);
        assert.equal(code(entries[0]), 200);
        assert.equal(entries[0].resource?.resourceType, 'Bundle');
        assert.equal(entries[0].resource.total, 1, 'the GET sees the POSTed resource');
        assert.equal(entries[1].resource.total, 0, 'the GET does not see the DELETEd resource');
        assert.equal(entries[2].resource.total, 1, 'the GET sees the PUT resource');
        assert.equal(code(entries[3]), 201);
        assert.equal(code(entries[4]), 201);
        assert.ok([200, 204].includes(code(entries[5])), `delete status ${entries[5].response.status}`);
        expectOutcome(await fhir(server, 'GET', `/Patient/${doomed.id}`), 410);
    });

    it('conditional entries: ifNoneExist on POST and a conditional PUT url', async () => {
        const existingValue = uniq('tx-cc-exists');
        const newValue = uniq('tx-cc-new');
        const updValue = uniq('tx-cu');
        const updNewValue = uniq('tx-cu-new');
        const existing = await create(server, patientWithIdentifier(SYS, existingValue, { gender: 'male' }));
        const toUpdate = await create(server, patientWithIdentifier(SYS, updValue, { gender: 'male' }));
        const existingUrn = urn();
        const res = await post(
            bundle('transaction', [
                {
                    fullUrl: existingUrn,
                    resource: patientWithIdentifier(SYS, existingValue, { gender: 'female' }),
                    request: { method: 'POST', url: 'Patient', ifNoneExist: q(existingValue) },
                },
                {
                    fullUrl: urn(),
                    resource: patientWithIdentifier(SYS, newValue),
                    request: { method: 'POST', url: 'Patient', ifNoneExist: q(newValue) },
                },
                { resource: patientWithIdentifier(SYS, updValue, { gender: 'other' }), request: { method: 'PUT', url: `Patient?${q(updValue)}` } },
                { resource: patientWithIdentifier(SYS, updNewValue), request: { method: 'PUT', url: `Patient?${q(updNewValue)}` } },
                {
                    fullUrl: urn(),
                    resource: sample('AppointmentResponse', { actor: { reference: existingUrn } }),
                    request: { method: 'POST', url: 'AppointmentResponse' },
                },
            ]),
        );
        const entries = expectResponseBundle(res, 'transaction-response', 5);
        assert.equal(code(entries[0]), 200, 'ifNoneExist matched: 200, nothing created');
        assert.equal(parseLocation(server, absolute(entries[0].response.location), 'Patient').id, existing.id);
        assert.equal(code(entries[1]), 201);
        assert.equal(code(entries[2]), 200, 'conditional PUT with one match updates it');
        assert.equal(parseLocation(server, absolute(entries[2].response.location), 'Patient').id, toUpdate.id);
        assert.equal(code(entries[3]), 201, 'conditional PUT with no match creates');

        assert.equal(await count(existingValue), 1);
        const still = await fhir(server, 'GET', `/Patient/${existing.id}`);
        assert.equal(still.json.meta.versionId, '1');
        assert.equal(still.json.gender, 'male');
        assert.equal(await count(newValue), 1);
        const updated = await fhir(server, 'GET', `/Patient/${toUpdate.id}`);
        assert.equal(updated.json.meta.versionId, '2');
        assert.equal(updated.json.gender, 'other');
        assert.equal(await count(updNewValue), 1);

        const ar = parseLocation(server, absolute(entries[4].response.location), 'AppointmentResponse');
        const arRes = await fhir(server, 'GET', `/AppointmentResponse/${ar.id}`);
        assert.equal(arRes.json.actor.reference, `Patient/${existing.id}`, 'a urn:uuid of a matched conditional create resolves to the existing resource');
    });

    it('fails half-way on a stale If-Match: nothing from it is left behind', async () => {
        const value = uniq('tx-half');
        const target = await create(server, sample('Patient'));
        const putId = uniq('tx-half-put');
        const res = await post(
            bundle('transaction', [
                { fullUrl: urn(), resource: patientWithIdentifier(SYS, value), request: { method: 'POST', url: 'Patient' } },
                { resource: patientWithIdentifier(SYS, value, { id: putId }), request: { method: 'PUT', url: `Patient/${putId}` } },
                {
                    resource: { ...content(target), id: target.id, gender: 'other' },
                    request: { method: 'PUT', url: `Patient/${target.id}`, ifMatch: 'W/"9"' },
                },
                { fullUrl: urn(), resource: patientWithIdentifier(SYS, value), request: { method: 'POST', url: 'Patient' } },
            ]),
        );
        expectOutcome(res, [400, 409, 412]);
        assert.equal(await count(value), 0);
        expectOutcome(await fhir(server, 'GET', `/Patient/${putId}`), 404);
        const t = await fhir(server, 'GET', `/Patient/${target.id}`);
        assert.equal(t.json.meta.versionId, '1');
        assert.equal(t.json.gender, 'female');
    });

    it('fails half-way on invalid content in the 3rd of 4 writes: nothing from it is left behind', async () => {
        const value = uniq('tx-half2');
        const target = await create(server, sample('Patient'));
        const res = await post(
            bundle('transaction', [
                { fullUrl: urn(), resource: patientWithIdentifier(SYS, value), request: { method: 'POST', url: 'Patient' } },
                { resource: { ...content(target), id: target.id, gender: 'male' }, request: { method: 'PUT', url: `Patient/${target.id}` } },
                { fullUrl: urn(), resource: sample('Slot', { status: 'not-a-status' }), request: { method: 'POST', url: 'Slot' } },
                { fullUrl: urn(), resource: sample('Practitioner', { identifier: [{ system: SYS, value }] }), request: { method: 'POST', url: 'Practitioner' } },
            ]),
        );
        expectOutcome(res, [400, 422], INVALID_CODES);
        assert.equal(await count(value), 0);
        const t = await fhir(server, 'GET', `/Patient/${target.id}`);
        expectStatus(t, 200);
        assert.equal(t.json.meta.versionId, '1');
        assert.equal(t.json.gender, 'female');
        const pr = await fhir(server, 'GET', `/Practitioner?${q(value)}`);
        expectStatus(pr, 200);
        assert.equal(pr.json.total, 0);
    });

    it('fails half-way on a business rule (Slot end before start): nothing left behind', async () => {
        const value = uniq('tx-half3');
        const res = await post(
            bundle('transaction', [
                { fullUrl: urn(), resource: patientWithIdentifier(SYS, value), request: { method: 'POST', url: 'Patient' } },
                { fullUrl: urn(), resource: patientWithIdentifier(SYS, value), request: { method: 'POST', url: 'Patient' } },
                { fullUrl: urn(), resource: sample('Slot', { start: '2030-01-07T10:00:00Z', end: '2030-01-07T09:00:00Z' }), request: { method: 'POST', url: 'Slot' } },
                { fullUrl: urn(), resource: patientWithIdentifier(SYS, value), request: { method: 'POST', url: 'Patient' } },
            ]),
        );
        expectOutcome(res, [400, 409, 422]);
        assert.equal(await count(value), 0);
    });

    it('two entries for the same resource: the transaction fails', async () => {
        const target = await create(server, sample('Patient'));
        const res = await post(
            bundle('transaction', [
                { resource: { ...content(target), id: target.id, gender: 'male' }, request: { method: 'PUT', url: `Patient/${target.id}` } },
                { resource: { ...content(target), id: target.id, gender: 'other' }, request: { method: 'PUT', url: `Patient/${target.id}` } },
            ]),
        );
        expectOutcome(res, [400, 409, 422]);
        assert.equal((await fhir(server, 'GET', `/Patient/${target.id}`)).json.meta.versionId, '1');
    });

    it('the transaction-response is valid FHIR and keeps the resources it returns valid', async () => {
        const res = await post(
            bundle('transaction', [{ fullUrl: urn(), resource: sample('HealthcareService'), request: { method: 'POST', url: 'HealthcareService' } }]),
        );
        const entries = expectResponseBundle(res, 'transaction-response', 1);
        assert.deepEqual(schemaErrors(res.json), []);
        if (entries[0].resource) assert.equal(entries[0].resource.meta.versionId, '1');
    });
});

// A transaction's connection is pipelined: runs of plain writes go out without waiting for each answer, so these check
// that the outcome is still the one of running the entries one at a time.
describe('transaction: entries sent without waiting for each answer', () => {
    const slot = (id, schedule, extra = {}) => sample('Slot', { id, schedule: { reference: `Schedule/${schedule}` }, ...extra });
    const putEntry = (resource, request = {}) => ({ resource, request: { method: 'PUT', url: `${resource.resourceType}/${resource.id}`, ...request } });
    const errorLines = () => server.logs().split('\n').filter((l) => /"level":"(error|fatal)"/.test(l));

    it('a stale If-Match in the middle of 30 writes: that entry is reported, nothing is stored, nothing logged as an error', async () => {
        const schedule = uniq('pipe-sched');
        const target = await create(server, sample('Patient'));
        const ids = Array.from({ length: 30 }, (_, i) => uniq(`pipe-${i}`));
        const entries = ids.map((id, i) => putEntry(slot(id, schedule, { start: `2031-02-03T${String(8 + (i % 10)).padStart(2, '0')}:00:00Z`, end: `2031-02-03T${String(8 + (i % 10)).padStart(2, '0')}:30:00Z` })));
        entries[17] = putEntry({ ...content(target), id: target.id, gender: 'other' }, { ifMatch: 'W/"9"' });
        const errorsBefore = errorLines().length;
        const res = await post(bundle('transaction', entries));
        expectOutcome(res, 412, 'conflict', { expression: 'Bundle.entry[17]' });
        for (const id of [ids[0], ids[16], ids[18], ids[29]]) expectOutcome(await fhir(server, 'GET', `/Slot/${id}`), 404);
        assert.equal((await fhir(server, 'GET', `/Patient/${target.id}`)).json.meta.versionId, '1');
        assert.deepEqual(errorLines().slice(errorsBefore), [], 'the entries refused behind the failure are not errors of the server');
    });

    it('a business rule the database enforces fails the 6th of 20 creates: that entry is reported, nothing is stored', async () => {
        const value = uniq('pipe-rule');
        const entries = Array.from({ length: 20 }, () => ({ fullUrl: urn(), resource: patientWithIdentifier(SYS, value), request: { method: 'POST', url: 'Patient' } }));
        entries[5] = { fullUrl: urn(), resource: sample('Slot', { start: '2031-01-07T10:00:00Z', end: '2031-01-07T09:00:00Z' }), request: { method: 'POST', url: 'Slot' } };
        const res = await post(bundle('transaction', entries));
        const oo = expectOutcome(res, [400, 422]);
        assert.ok(oo.issue.some((i) => i.expression?.some((e) => e.startsWith('Bundle.entry[5]'))), JSON.stringify(oo.issue));
        assert.equal(await count(value), 0);
    });

    it('writes after an Appointment that moves a Slot see that move, as one at a time would', async () => {
        const schedule = uniq('pipe-sched');
        const practitioner = uniq('pipe-pr');
        const [before1, moved, after1] = [uniq('pipe-a'), uniq('pipe-b'), uniq('pipe-c')];
        const times = { start: '2031-03-03T09:00:00Z', end: '2031-03-03T09:30:00Z' };
        expectStatus(await fhir(server, 'PUT', `/Slot/${moved}`, { body: slot(moved, schedule, times) }), 201);
        const appointment = sample('Appointment', {
            id: uniq('pipe-appt'),
            ...times,
            slot: [{ reference: `Slot/${moved}` }],
            participant: [{ actor: { reference: `Practitioner/${practitioner}` }, status: 'accepted' }],
        });
        const res = await post(
            bundle('transaction', [
                putEntry(slot(before1, schedule, { start: '2031-03-03T08:00:00Z', end: '2031-03-03T08:30:00Z' })),
                putEntry(appointment),
                // the Appointment made this Slot busy (version 2); this PUT comes after it and writes version 3 as given
                putEntry(slot(moved, schedule, { ...times, comment: 'edited after the booking' })),
                putEntry(slot(after1, schedule, { start: '2031-03-03T10:00:00Z', end: '2031-03-03T10:30:00Z' })),
            ]),
        );
        const entries = expectResponseBundle(res, 'transaction-response', 4);
        assert.deepEqual(entries.map(code), [201, 201, 200, 201]);
        assert.equal(entries[2].response.etag, 'W/"3"');
        const history = await fhir(server, 'GET', `/Slot/${moved}/_history`);
        expectStatus(history, 200);
        const byVersion = Object.fromEntries(history.json.entry.map((e) => [e.resource.meta.versionId, e.resource]));
        assert.equal(byVersion['2'].status, 'busy');
        assert.equal(byVersion['3'].status, 'free');
        assert.equal(byVersion['3'].comment, 'edited after the booking');
    });
});

describe('Bundles that are neither batch nor transaction', () => {
    it('a collection Bundle posted to the base: 400 or 422', async () => {
        const res = await post(bundle('collection', [{ fullUrl: 'http://example.org/Patient/1', resource: sample('Patient', { id: '1' }) }]));
        expectOutcome(res, [400, 422]);
    });

    it('a transaction entry without a request: 400 or 422, nothing stored', async () => {
        const value = uniq('tx-noreq');
        const res = await post(
            bundle('transaction', [
                { fullUrl: urn(), resource: patientWithIdentifier(SYS, value), request: { method: 'POST', url: 'Patient' } },
                { fullUrl: urn(), resource: patientWithIdentifier(SYS, value) },
            ]),
        );
        expectOutcome(res, [400, 422]);
        assert.equal(await count(value), 0);
    });
});
