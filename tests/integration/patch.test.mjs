// The patch interaction with JSON Patch (RFC 6902), FHIR R4 http.html#patch.

import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { INVALID_CODES, create, expectOutcome, expectStatus, fhir, sample, startServer, uniq } from '../lib/harness.mjs';

const JSON_PATCH = { 'Content-Type': 'application/json-patch+json' };

let server;
before(async () => {
    server = await startServer();
});
after(async () => {
    await server?.stop();
});

function patch(path, ops, headers = {}) {
    return fhir(server, 'PATCH', path, { body: JSON.stringify(ops), headers: { ...JSON_PATCH, ...headers } });
}

async function newPatient() {
    return create(
        server,
        sample('Patient', {
            name: [{ family: 'Doe', given: ['Jane', 'Q'] }],
            telecom: [{ system: 'phone', value: '555-0100' }],
        }),
    );
}

async function readVersion(id) {
    const res = await fhir(server, 'GET', `/Patient/${id}`);
    expectStatus(res, 200);
    return res.json;
}

it('replace, add, remove and a passing test: 200, a new version, the patched resource', async () => {
    const p = await newPatient();
    const res = await patch(`/Patient/${p.id}`, [
        { op: 'test', path: '/gender', value: 'female' },
        { op: 'replace', path: '/gender', value: 'other' },
        { op: 'add', path: '/name/0/given/-', value: 'Zed' },
        { op: 'add', path: '/telecom/-', value: { system: 'email', value: 'jane@example.org' } },
        { op: 'add', path: '/maritalStatus', value: { text: 'Married' } },
        { op: 'remove', path: '/birthDate' },
    ]);
    expectStatus(res, 200);
    assert.equal(res.headers.get('etag'), 'W/"2"');
    assert.equal(res.json.id, p.id);
    assert.equal(res.json.meta.versionId, '2');
    assert.equal(res.json.gender, 'other');
    assert.deepEqual(res.json.name[0].given, ['Jane', 'Q', 'Zed']);
    assert.deepEqual(res.json.telecom[1], { system: 'email', value: 'jane@example.org' });
    assert.deepEqual(res.json.maritalStatus, { text: 'Married' });
    assert.ok(!('birthDate' in res.json));
    const read = await readVersion(p.id);
    assert.deepEqual(read, res.json);
    const v1 = await fhir(server, 'GET', `/Patient/${p.id}/_history/1`);
    assert.equal(v1.json.gender, 'female', 'version 1 is untouched');
});

it('a patch that makes the resource invalid: 422, nothing changed', async () => {
    const p = await newPatient();
    let res = await patch(`/Patient/${p.id}`, [{ op: 'replace', path: '/gender', value: 'robot' }]);
    expectOutcome(res, 422, INVALID_CODES, { expression: 'Patient.gender' });
    res = await patch(`/Patient/${p.id}`, [{ op: 'add', path: '/foo', value: 'bar' }]);
    expectOutcome(res, 422, INVALID_CODES, { expression: 'Patient.foo' });
    const read = await readVersion(p.id);
    assert.equal(read.meta.versionId, '1');
    assert.equal(read.gender, 'female');
});

it('a patch that changes the id or the resourceType is refused, nothing changed', async () => {
    const p = await newPatient();
    let res = await patch(`/Patient/${p.id}`, [{ op: 'replace', path: '/id', value: uniq('other') }]);
    expectOutcome(res, [400, 422]);
    res = await patch(`/Patient/${p.id}`, [{ op: 'replace', path: '/resourceType', value: 'Practitioner' }]);
    expectOutcome(res, [400, 422]);
    assert.equal((await readVersion(p.id)).meta.versionId, '1');
});

it('a failing test op: 422, nothing changed', async () => {
    const p = await newPatient();
    const res = await patch(`/Patient/${p.id}`, [
        { op: 'test', path: '/gender', value: 'male' },
        { op: 'replace', path: '/gender', value: 'other' },
    ]);
    expectOutcome(res, 422);
    const read = await readVersion(p.id);
    assert.equal(read.meta.versionId, '1');
    assert.equal(read.gender, 'female');
});

it('an op on a path that does not exist: 400 or 422, nothing changed', async () => {
    const p = await newPatient();
    let res = await patch(`/Patient/${p.id}`, [{ op: 'remove', path: '/deceasedBoolean' }]);
    expectOutcome(res, [400, 422]);
    res = await patch(`/Patient/${p.id}`, [{ op: 'replace', path: '/name/5/family', value: 'X' }]);
    expectOutcome(res, [400, 422]);
    assert.equal((await readVersion(p.id)).meta.versionId, '1');
});

it('a malformed patch document: 400', async () => {
    const p = await newPatient();
    let res = await patch(`/Patient/${p.id}`, { op: 'replace', path: '/gender', value: 'male' });
    expectOutcome(res, 400);
    res = await patch(`/Patient/${p.id}`, [{ op: 'frobnicate', path: '/gender' }]);
    expectOutcome(res, 400);
    res = await fhir(server, 'PATCH', `/Patient/${p.id}`, { body: '[{"op": "replace",', headers: JSON_PATCH });
    expectOutcome(res, 400);
    assert.equal((await readVersion(p.id)).meta.versionId, '1');
});

it('If-Match: a stale version gives 412, the current one 200', async () => {
    const p = await newPatient();
    let res = await patch(`/Patient/${p.id}`, [{ op: 'replace', path: '/active', value: false }], { 'If-Match': 'W/"1"' });
    expectStatus(res, 200);
    assert.equal(res.json.meta.versionId, '2');
    res = await patch(`/Patient/${p.id}`, [{ op: 'replace', path: '/active', value: true }], { 'If-Match': 'W/"1"' });
    expectOutcome(res, 412);
    assert.equal((await readVersion(p.id)).active, false);
    res = await patch(`/Patient/${p.id}`, [{ op: 'replace', path: '/active', value: true }], { 'If-Match': 'W/"2"' });
    expectStatus(res, 200);
    assert.equal(res.json.meta.versionId, '3');
    assert.equal(res.json.active, true);
});

it('patch of an unknown id: 404; of a deleted resource: 404 or 410', async () => {
    let res = await patch(`/Patient/${uniq('nope')}`, [{ op: 'replace', path: '/active', value: false }]);
    expectOutcome(res, 404);
    const p = await newPatient();
    expectStatus(await fhir(server, 'DELETE', `/Patient/${p.id}`), [200, 204]);
    res = await patch(`/Patient/${p.id}`, [{ op: 'replace', path: '/active', value: false }]);
    expectOutcome(res, [404, 410]);
});

it('a patch body with an unsupported content type: 415', async () => {
    const p = await newPatient();
    const res = await fhir(server, 'PATCH', `/Patient/${p.id}`, {
        body: JSON.stringify([{ op: 'replace', path: '/active', value: false }]),
        headers: { 'Content-Type': 'text/plain' },
    });
    expectOutcome(res, 415);
    assert.equal((await readVersion(p.id)).meta.versionId, '1');
});

it('Prefer: return=minimal on patch: 200 with an empty body', async () => {
    const p = await newPatient();
    const res = await patch(`/Patient/${p.id}`, [{ op: 'replace', path: '/active', value: false }], { Prefer: 'return=minimal' });
    expectStatus(res, 200);
    assert.equal(res.text, '');
    assert.equal(res.headers.get('etag'), 'W/"2"');
});

it('patch works on the scheduling types too (Appointment status change)', async () => {
    const a = await create(server, sample('Appointment'));
    const res = await patch(`/Appointment/${a.id}`, [
        { op: 'replace', path: '/status', value: 'cancelled' },
        { op: 'add', path: '/cancelationReason', value: { text: 'Patient request' } },
    ]);
    expectStatus(res, 200);
    assert.equal(res.json.status, 'cancelled');
    assert.equal(res.json.meta.versionId, '2');
    const bad = await patch(`/Appointment/${a.id}`, [{ op: 'remove', path: '/end' }]);
    expectOutcome(bad, 422, undefined, { expression: true });
});
