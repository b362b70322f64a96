// Version-aware updates, conditional reads and the Prefer header
// (FHIR R4 http.html#concurrency, #cread, #ins-response).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
    content,
    create,
    expectFhirJson,
    expectOutcome,
    expectStatus,
    fhir,
    parseLocation,
    sample,
    startServer,
} from '../lib/harness.mjs';

let server;
before(async () => {
    server = await startServer();
});
after(async () => {
    await server?.stop();
});

async function patientAtVersion2() {
    const v1 = await create(server, sample('Patient'));
    const res = await fhir(server, 'PUT', `/Patient/${v1.id}`, { body: { ...content(v1), id: v1.id, gender: 'male' } });
    expectStatus(res, 200);
    assert.equal(res.json.meta.versionId, '2');
    return res;
}

describe('If-Match on update (version-aware updates)', () => {
    it('a stale version gives 412 and changes nothing; the current one gives 200', async () => {
        const v1 = await create(server, sample('Patient'));
        const path = `/Patient/${v1.id}`;
        let res = await fhir(server, 'PUT', path, { body: { ...content(v1), id: v1.id, gender: 'male' }, headers: { 'If-Match': 'W/"1"' } });
        expectStatus(res, 200);
        assert.equal(res.json.meta.versionId, '2');
        assert.equal(res.headers.get('etag'), 'W/"2"');

        res = await fhir(server, 'PUT', path, { body: { ...content(v1), id: v1.id, gender: 'other' }, headers: { 'If-Match': 'W/"1"' } });
        expectOutcome(res, 412);
        const read = await fhir(server, 'GET', path);
        assert.equal(read.json.meta.versionId, '2');
        assert.equal(read.json.gender, 'male');

        res = await fhir(server, 'PUT', path, { body: { ...content(v1), id: v1.id, gender: 'other' }, headers: { 'If-Match': 'W/"2"' } });
        expectStatus(res, 200);
        assert.equal(res.json.meta.versionId, '3');
        assert.equal(res.json.gender, 'other');
    });

    it('a version from the future gives 412', async () => {
        const v1 = await create(server, sample('Patient'));
        const res = await fhir(server, 'PUT', `/Patient/${v1.id}`, { body: { ...content(v1), id: v1.id }, headers: { 'If-Match': 'W/"7"' } });
        expectOutcome(res, 412);
    });

    it('two concurrent updates with the same If-Match: exactly one wins', async () => {
        const v1 = await create(server, sample('Patient'));
        const path = `/Patient/${v1.id}`;
        const attempts = ['male', 'other', 'unknown', 'female'].map((gender) =>
            fhir(server, 'PUT', path, { body: { ...content(v1), id: v1.id, gender }, headers: { 'If-Match': 'W/"1"' } }),
        );
        const results = await Promise.all(attempts);
        const ok = results.filter((r) => r.status === 200);
        const conflicts = results.filter((r) => r.status === 412);
        assert.equal(ok.length, 1, `statuses: ${results.map((r) => r.status).join(', ')}`);
        assert.equal(conflicts.length, results.length - 1, `statuses: ${results.map((r) => r.status).join(', ')}`);
        const read = await fhir(server, 'GET', path);
        assert.equal(read.json.meta.versionId, '2');
        assert.equal(read.json.gender, ok[0].json.gender);
    });
});

describe('conditional read', () => {
    it('If-None-Match with the current version: 304 with no body; an older version: 200', async () => {
        const v2 = await patientAtVersion2();
        const path = `/Patient/${v2.json.id}`;
        let res = await fhir(server, 'GET', path, { headers: { 'If-None-Match': 'W/"2"' } });
        expectStatus(res, 304);
        assert.equal(res.text, '');
        res = await fhir(server, 'GET', path, { headers: { 'If-None-Match': 'W/"1"' } });
        expectStatus(res, 200);
        assert.equal(res.json.meta.versionId, '2');
        assert.equal(res.headers.get('etag'), 'W/"2"');
    });

    it('If-Modified-Since at or after Last-Modified: 304; before it: 200', async () => {
        const v2 = await patientAtVersion2();
        const path = `/Patient/${v2.json.id}`;
        const lastModified = v2.headers.get('last-modified');
        assert.ok(lastModified, 'Last-Modified on update');
        const lm = Date.parse(lastModified);

        let res = await fhir(server, 'GET', path, { headers: { 'If-Modified-Since': lastModified } });
        expectStatus(res, 304);
        assert.equal(res.text, '');
        res = await fhir(server, 'GET', path, { headers: { 'If-Modified-Since': new Date(lm + 60_000).toUTCString() } });
        expectStatus(res, 304);
        res = await fhir(server, 'GET', path, { headers: { 'If-Modified-Since': new Date(lm - 60_000).toUTCString() } });
        expectStatus(res, 200);
        assert.equal(res.json.id, v2.json.id);
    });
});

describe('Prefer: return=', () => {
    it('no Prefer header: the resource is returned', async () => {
        const res = await fhir(server, 'POST', '/Patient', { body: sample('Patient') });
        expectStatus(res, 201);
        expectFhirJson(res);
        assert.equal(res.json.resourceType, 'Patient');
        assert.ok(res.json.id);
    });

    it('return=representation: the resource is returned', async () => {
        const res = await fhir(server, 'POST', '/Patient', { body: sample('Patient'), headers: { Prefer: 'return=representation' } });
        expectStatus(res, 201);
        assert.equal(res.json.resourceType, 'Patient');
        assert.equal(res.json.meta.versionId, '1');
    });

    it('return=minimal on create: 201 with an empty body, Location and ETag', async () => {
        const res = await fhir(server, 'POST', '/Patient', { body: sample('Patient'), headers: { Prefer: 'return=minimal' } });
        expectStatus(res, 201);
        assert.equal(res.text, '', 'empty body');
        const loc = parseLocation(server, res.headers.get('location'), 'Patient');
        assert.equal(loc.vid, '1');
        assert.equal(res.headers.get('etag'), 'W/"1"');
        const read = await fhir(server, 'GET', `/Patient/${loc.id}`);
        expectStatus(read, 200);
    });

    it('return=minimal on update: 200 with an empty body', async () => {
        const v1 = await create(server, sample('Patient'));
        const res = await fhir(server, 'PUT', `/Patient/${v1.id}`, {
            body: { ...content(v1), id: v1.id, active: false },
            headers: { Prefer: 'return=minimal' },
        });
        expectStatus(res, 200);
        assert.equal(res.text, '');
        assert.equal(res.headers.get('etag'), 'W/"2"');
    });

    it('return=OperationOutcome on create: 201 with an OperationOutcome body', async () => {
        const res = await fhir(server, 'POST', '/Patient', { body: sample('Patient'), headers: { Prefer: 'return=OperationOutcome' } });
        expectOutcome(res, 201);
        const loc = parseLocation(server, res.headers.get('location'), 'Patient');
        expectStatus(await fhir(server, 'GET', `/Patient/${loc.id}`), 200);
    });

    it('return=OperationOutcome on update: 200 with an OperationOutcome body', async () => {
        const v1 = await create(server, sample('Patient'));
        const res = await fhir(server, 'PUT', `/Patient/${v1.id}`, {
            body: { ...content(v1), id: v1.id, active: false },
            headers: { Prefer: 'return=OperationOutcome' },
        });
        expectOutcome(res, 200);
    });
});
