// create / read / vread / update / delete for each of the 10 resource types
// (FHIR R4 http.html#create, #read, #vread, #update, #delete).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
    APPEND_ONLY_TYPES,
    TYPES,
    content,
    expectFhirJson,
    expectOutcome,
    expectStatus,
    fhir,
    parseLocation,
    sample,
    startServer,
    uniq,
} from '../lib/harness.mjs';

const ID_RE = /^[A-Za-z0-9\-.]{1,64}$/;
const INSTANT_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

let server;
before(async () => {
    server = await startServer();
});
after(async () => {
    await server?.stop();
});

/** ETag, Last-Modified and meta of a response carrying version `vid` of a resource. */
function checkVersionHeaders(res, vid) {
    assert.equal(res.headers.get('etag'), `W/"${vid}"`, 'ETag');
    assert.equal(res.json.meta?.versionId, String(vid), 'meta.versionId');
    const lu = res.json.meta?.lastUpdated;
    assert.match(lu ?? '', INSTANT_RE, 'meta.lastUpdated is an instant');
    const lm = res.headers.get('last-modified');
    assert.ok(lm, 'Last-Modified header');
    assert.ok(!Number.isNaN(Date.parse(lm)), `Last-Modified is an HTTP date: ${lm}`);
    // Last-Modified has one-second precision: it is meta.lastUpdated rounded down.
    const diff = Date.parse(lu) - Date.parse(lm);
    assert.ok(diff >= 0 && diff < 1000, `Last-Modified ${lm} does not match meta.lastUpdated ${lu}`);
}

function changed(type, resource) {
    // `language` exists on every resource; the text of the change is type-agnostic.
    return { ...content(resource, { keepId: true }), language: 'en' };
}

for (const type of TYPES.filter((t) => !APPEND_ONLY_TYPES.includes(t))) {
    describe(type, () => {
        it('create, read, vread, update, delete, read deleted, revive', async (t) => {
            const original = sample(type);
            let id;
            let v1;
            await t.test('create: 201, Location, ETag, Last-Modified, server-assigned id', async () => {
                const res = await fhir(server, 'POST', `/${type}`, { body: original });
                expectStatus(res, 201);
                expectFhirJson(res);
                assert.equal(res.json.resourceType, type);
                id = res.json.id;
                assert.match(id ?? '', ID_RE, 'server-assigned id');
                const loc = parseLocation(server, res.headers.get('location'), type);
                assert.equal(loc.id, id, 'Location id = body id');
                assert.equal(loc.vid, '1', 'Location version');
                checkVersionHeaders(res, 1);
                const age = Math.abs(Date.now() - Date.parse(res.json.meta.lastUpdated));
                assert.ok(age < 120_000, `meta.lastUpdated ${res.json.meta.lastUpdated} is not now`);
                assert.deepEqual(content(res.json), content(original), 'stored content = sent content');
                v1 = res.json;
            });

            await t.test('read: 200 with ETag and the same representation', async () => {
                const res = await fhir(server, 'GET', `/${type}/${id}`);
                expectStatus(res, 200);
                expectFhirJson(res);
                checkVersionHeaders(res, 1);
                assert.deepEqual(res.json, v1);
            });

            await t.test('vread of version 1', async () => {
                const res = await fhir(server, 'GET', `/${type}/${id}/_history/1`);
                expectStatus(res, 200);
                checkVersionHeaders(res, 1);
                assert.deepEqual(res.json, v1);
            });

            let v2;
            await t.test('update: 200, version 2', async () => {
                const body = changed(type, v1);
                const res = await fhir(server, 'PUT', `/${type}/${id}`, { body });
                expectStatus(res, 200);
                expectFhirJson(res);
                checkVersionHeaders(res, 2);
                const loc = parseLocation(server, res.headers.get('location'), type);
                assert.deepEqual([loc.id, loc.vid], [id, '2'], 'Location of the new version');
                assert.equal(res.json.id, id);
                assert.ok(Date.parse(res.json.meta.lastUpdated) >= Date.parse(v1.meta.lastUpdated), 'lastUpdated moves forward');
                assert.deepEqual(content(res.json), content(body));
                v2 = res.json;
            });

            await t.test('read gives version 2; vread still gives both versions', async () => {
                let res = await fhir(server, 'GET', `/${type}/${id}`);
                expectStatus(res, 200);
                checkVersionHeaders(res, 2);
                assert.deepEqual(res.json, v2);
                res = await fhir(server, 'GET', `/${type}/${id}/_history/1`);
                expectStatus(res, 200);
                assert.deepEqual(res.json, v1);
                res = await fhir(server, 'GET', `/${type}/${id}/_history/2`);
                expectStatus(res, 200);
                assert.deepEqual(res.json, v2);
            });

            await t.test('vread of a version that does not exist: 404', async () => {
                const res = await fhir(server, 'GET', `/${type}/${id}/_history/99`);
                expectOutcome(res, 404, 'not-found');
            });

            await t.test('delete: 200 or 204', async () => {
                const res = await fhir(server, 'DELETE', `/${type}/${id}`);
                expectStatus(res, [200, 204]);
                if (res.status === 204) assert.equal(res.text, '', '204 has no body');
            });

            await t.test('read after delete: 410 Gone with an OperationOutcome', async () => {
                const res = await fhir(server, 'GET', `/${type}/${id}`);
                expectOutcome(res, 410, ['deleted', 'not-found']);
            });

            await t.test('vread of versions before the delete still works', async () => {
                let res = await fhir(server, 'GET', `/${type}/${id}/_history/1`);
                expectStatus(res, 200);
                assert.deepEqual(res.json, v1);
                res = await fhir(server, 'GET', `/${type}/${id}/_history/2`);
                expectStatus(res, 200);
                assert.deepEqual(res.json, v2);
            });

            await t.test('deleting an already deleted resource: 200 or 204', async () => {
                const res = await fhir(server, 'DELETE', `/${type}/${id}`);
                expectStatus(res, [200, 204]);
            });

            await t.test('update after delete revives it with a new version', async () => {
                const body = { ...content(original), id };
                const res = await fhir(server, 'PUT', `/${type}/${id}`, { body });
                expectStatus(res, [200, 201]);
                const vid = Number(res.json.meta.versionId);
                assert.ok(Number.isInteger(vid) && vid > 2, `version after revive is ${res.json.meta.versionId}, expected > 2`);
                checkVersionHeaders(res, vid);
                assert.deepEqual(content(res.json), content(body));
                const again = await fhir(server, 'GET', `/${type}/${id}`);
                expectStatus(again, 200);
                assert.deepEqual(again.json, res.json);
            });
        });

        it('update as create: PUT to a new client-chosen id gives 201, version 1', async () => {
            const id = uniq(`crud-${type.toLowerCase()}`);
            const body = sample(type, { id });
            const res = await fhir(server, 'PUT', `/${type}/${id}`, { body });
            expectStatus(res, 201);
            expectFhirJson(res);
            assert.equal(res.json.id, id);
            checkVersionHeaders(res, 1);
            const loc = parseLocation(server, res.headers.get('location'), type);
            assert.deepEqual([loc.id, loc.vid], [id, '1']);
            assert.deepEqual(content(res.json), content(body));
            const read = await fhir(server, 'GET', `/${type}/${id}`);
            expectStatus(read, 200);
            assert.deepEqual(read.json, res.json);
        });

        it('read of an unknown id: 404 with an OperationOutcome', async () => {
            const res = await fhir(server, 'GET', `/${type}/${uniq('nope')}`);
            expectOutcome(res, 404, 'not-found');
        });
    });
}

// AuditEvents are append-only (docs/security.md, "Audit trail"): created and read, never changed or deleted.
for (const type of APPEND_ONLY_TYPES) {
    describe(type, () => {
        it('create, read and vread; update, update as create and delete: 405', async () => {
            const res = await fhir(server, 'POST', `/${type}`, { body: sample(type) });
            expectStatus(res, 201);
            checkVersionHeaders(res, 1);
            assert.deepEqual(content(res.json), content(sample(type)), 'stored content = sent content');
            const id = res.json.id;
            for (const p of [`/${type}/${id}`, `/${type}/${id}/_history/1`]) {
                const got = await fhir(server, 'GET', p);
                expectStatus(got, 200);
                assert.deepEqual(got.json, res.json);
            }
            expectOutcome(await fhir(server, 'PUT', `/${type}/${id}`, { body: changed(type, res.json) }), 405);
            expectOutcome(await fhir(server, 'PUT', `/${type}/${uniq('new')}`, { body: sample(type) }), 405);
            expectOutcome(await fhir(server, 'DELETE', `/${type}/${id}`), 405);
            const again = await fhir(server, 'GET', `/${type}/${id}`);
            expectStatus(again, 200);
            assert.equal(again.json.meta.versionId, '1');
        });
    });
}

it('create ignores a client-supplied id and meta.versionId', async () => {
    const body = sample('Patient', { id: 'client-chosen-id', meta: { versionId: '42', lastUpdated: '2001-01-01T00:00:00Z' } });
    const res = await fhir(server, 'POST', '/Patient', { body });
    expectStatus(res, 201);
    assert.notEqual(res.json.id, 'client-chosen-id');
    assert.equal(res.json.meta.versionId, '1');
    assert.notEqual(res.json.meta.lastUpdated, '2001-01-01T00:00:00Z');
    const read = await fhir(server, 'GET', '/Patient/client-chosen-id');
    expectOutcome(read, 404);
});

it('create keeps meta.tag, meta.profile and meta.security', async () => {
    const meta = {
        profile: ['http://example.org/fhir/StructureDefinition/my-patient'],
        security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'HTEST' }],
        tag: [{ system: 'http://example.org/tags', code: 'integration-test' }],
    };
    const res = await fhir(server, 'POST', '/Patient', { body: sample('Patient', { meta }) });
    expectStatus(res, 201);
    assert.deepEqual(res.json.meta.profile, meta.profile);
    assert.deepEqual(res.json.meta.security, meta.security);
    assert.deepEqual(res.json.meta.tag, meta.tag);
});

it('delete of ids that never existed: the same answer (200, 204 or 404) for every type', async () => {
    const statuses = [];
    for (const type of TYPES.filter((t) => !APPEND_ONLY_TYPES.includes(t))) {
        for (let i = 0; i < 2; i++) {
            const res = await fhir(server, 'DELETE', `/${type}/${uniq('never')}`);
            expectStatus(res, [200, 204, 404]);
            if (res.status === 404) expectOutcome(res, 404, 'not-found');
            if (res.status === 204) assert.equal(res.text, '');
            statuses.push(`${type}:${res.status}`);
        }
    }
    const distinct = new Set(statuses.map((s) => s.split(':')[1]));
    assert.equal(distinct.size, 1, `inconsistent answers: ${statuses.join(', ')}`);
});
