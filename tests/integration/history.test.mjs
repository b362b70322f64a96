// Instance, type and system history (FHIR R4 http.html#history).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
    allPages,
    content,
    create,
    expectFhirJson,
    expectOutcome,
    expectStatus,
    fhir,
    link,
    sample,
    sleep,
    startServer,
    uniq,
} from '../lib/harness.mjs';

let server;
before(async () => {
    server = await startServer();
});
after(async () => {
    await server?.stop();
});

async function history(path) {
    const res = await fhir(server, 'GET', path);
    expectStatus(res, 200);
    expectFhirJson(res);
    assert.equal(res.json.resourceType, 'Bundle');
    assert.equal(res.json.type, 'history');
    return res.json;
}

/** Every entry of a history Bundle is well formed (bdl-3, bdl-4) and points at `type`. */
function checkEntries(server, bundle) {
    for (const e of bundle.entry || []) {
        assert.ok(e.request, 'history entries have a request');
        assert.ok(['POST', 'PUT', 'DELETE', 'PATCH'].includes(e.request.method), `request.method ${e.request.method}`);
        assert.ok(e.request.url, 'request.url');
        assert.ok(e.response, 'history entries have a response');
        assert.match(e.response.status, /^\d{3}/, 'response.status starts with a status code');
        if (e.request.method === 'DELETE') {
            assert.ok(!e.resource, 'a delete entry has no resource');
        } else {
            assert.ok(e.resource, `a ${e.request.method} entry has the resource`);
            const { resourceType, id } = e.resource;
            assert.equal(e.fullUrl, `${server.base}/${resourceType}/${id}`, 'fullUrl');
            assert.ok(e.request.url.startsWith(resourceType), `request.url ${e.request.url}`);
        }
    }
}

/** meta.lastUpdated never increases along the entries (newest first). */
function checkNewestFirst(bundle) {
    const times = (bundle.entry || []).filter((e) => e.resource).map((e) => Date.parse(e.resource.meta.lastUpdated));
    for (let i = 1; i < times.length; i++) assert.ok(times[i - 1] >= times[i], `entries are not newest first: ${times.join(', ')}`);
}

/** Creates a Patient and gives it `n` versions in all (by PUT). */
async function patientWithVersions(n, extra = {}) {
    const p = await create(server, sample('Patient', extra));
    let last = p;
    for (let v = 2; v <= n; v++) {
        const res = await fhir(server, 'PUT', `/Patient/${p.id}`, { body: { ...content(p), id: p.id, name: [{ family: `V${v}` }] } });
        expectStatus(res, 200);
        last = res.json;
    }
    return { id: p.id, first: p, last };
}

describe('instance history', () => {
    it('lists every version newest first, with the delete, and the revival after it', async () => {
        const p = await create(server, sample('Patient'));
        const path = `/Patient/${p.id}`;
        expectStatus(await fhir(server, 'PUT', path, { body: { ...content(p), id: p.id, gender: 'male' } }), 200);
        expectStatus(await fhir(server, 'PUT', path, { body: { ...content(p), id: p.id, gender: 'other' } }), 200);
        expectStatus(await fhir(server, 'DELETE', path), [200, 204]);
        const revived = await fhir(server, 'PUT', path, { body: { ...content(p), id: p.id, gender: 'unknown' } });
        expectStatus(revived, [200, 201]);

        const bundle = await history(`${path}/_history`);
        checkEntries(server, bundle);
        checkNewestFirst(bundle);
        const methods = bundle.entry.map((e) => e.request.method);
        assert.deepEqual(methods, ['PUT', 'DELETE', 'PUT', 'PUT', 'POST']);
        const genders = bundle.entry.map((e) => e.resource?.gender ?? null);
        assert.deepEqual(genders, ['unknown', null, 'other', 'male', 'female']);
        const versions = bundle.entry.filter((e) => e.resource).map((e) => e.resource.meta.versionId);
        assert.deepEqual(versions.slice(1), ['3', '2', '1']);
        assert.equal(versions[0], revived.json.meta.versionId);
        assert.ok(bundle.entry[1].request.url.includes(p.id), 'the delete entry names the resource');
        if (bundle.total !== undefined) assert.equal(bundle.total, 5);
    });

    it('the history of a deleted resource is still available', async () => {
        const p = await create(server, sample('Patient'));
        expectStatus(await fhir(server, 'DELETE', `/Patient/${p.id}`), [200, 204]);
        const bundle = await history(`/Patient/${p.id}/_history`);
        checkEntries(server, bundle);
        assert.deepEqual(
            bundle.entry.map((e) => e.request.method),
            ['DELETE', 'POST'],
        );
    });

    it('the history of an unknown id: 404', async () => {
        expectOutcome(await fhir(server, 'GET', `/Patient/${uniq('nope')}/_history`), 404, 'not-found');
    });

    it('_count pages through the versions with next links', async () => {
        const { id } = await patientWithVersions(5);
        const first = await history(`/Patient/${id}/_history?_count=2`);
        assert.equal(first.entry.length, 2);
        assert.ok(link(first, 'next'), 'a next link when there are more entries');
        const all = await allPages(server, `/Patient/${id}/_history?_count=2`);
        const versions = all.map((e) => e.resource.meta.versionId);
        assert.deepEqual(versions, ['5', '4', '3', '2', '1'], 'all versions once, newest first, across pages');
        const last = await history(`/Patient/${id}/_history?_count=5`);
        assert.equal(last.entry.length, 5);
        assert.equal(link(last, 'next'), undefined, 'no next link when everything fits');
    });

    it('_since keeps only versions at or after the instant', async () => {
        const p = await create(server, sample('Patient'));
        await sleep(50);
        const v2 = await fhir(server, 'PUT', `/Patient/${p.id}`, { body: { ...content(p), id: p.id, gender: 'male' } });
        expectStatus(v2, 200);
        await sleep(50);
        expectStatus(await fhir(server, 'PUT', `/Patient/${p.id}`, { body: { ...content(p), id: p.id, gender: 'other' } }), 200);
        const since = encodeURIComponent(v2.json.meta.lastUpdated);
        const bundle = await history(`/Patient/${p.id}/_history?_since=${since}`);
        assert.deepEqual(
            bundle.entry.map((e) => e.resource.meta.versionId),
            ['3', '2'],
        );
        const future = encodeURIComponent(new Date(Date.now() + 3600_000).toISOString());
        const none = await history(`/Patient/${p.id}/_history?_since=${future}`);
        assert.equal((none.entry || []).length, 0);
    });

    it('a malformed _since: 400', async () => {
        const p = await create(server, sample('Patient'));
        expectOutcome(await fhir(server, 'GET', `/Patient/${p.id}/_history?_since=yesterday`), 400);
    });
});

describe('type and system history', () => {
    it('type history has only that type, newest first, including deletes', async () => {
        const marker = new Date(Date.now() - 1000).toISOString();
        const a = await patientWithVersions(2);
        const b = await create(server, sample('Patient'));
        expectStatus(await fhir(server, 'DELETE', `/Patient/${b.id}`), [200, 204]);
        const pr = await create(server, sample('Practitioner'));

        const entries = await allPages(server, `/Patient/_history?_since=${encodeURIComponent(marker)}`);
        const bundle = { entry: entries };
        checkEntries(server, bundle);
        checkNewestFirst(bundle);
        for (const e of entries) {
            if (e.resource) assert.equal(e.resource.resourceType, 'Patient');
            else assert.match(e.request.url, /^Patient\//);
        }
        const ids = entries.map((e) => e.resource?.id ?? e.request.url.split('/')[1]);
        assert.ok(ids.includes(a.id) && ids.includes(b.id), 'both patients appear');
        assert.ok(!ids.includes(pr.id), 'no Practitioner in Patient history');
        assert.ok(
            entries.some((e) => e.request.method === 'DELETE' && e.request.url.includes(b.id)),
            'the delete of b appears',
        );
        assert.equal(entries.filter((e) => e.resource?.id === a.id).length, 2, 'both versions of a');
    });

    it('type history with _count has a next link and pages without duplicates', async () => {
        const marker = new Date(Date.now() - 1000).toISOString();
        for (let i = 0; i < 5; i++) await create(server, sample('Location', { name: `Room ${i}` }));
        const since = encodeURIComponent(marker);
        const first = await history(`/Location/_history?_count=2&_since=${since}`);
        assert.equal(first.entry.length, 2);
        assert.ok(link(first, 'next'), 'next link');
        const all = await allPages(server, `/Location/_history?_count=2&_since=${since}`);
        const keys = all.map((e) => `${e.resource.id}/${e.resource.meta.versionId}`);
        assert.equal(new Set(keys).size, keys.length, 'no entry twice');
        assert.ok(keys.length >= 5);
        checkNewestFirst({ entry: all });
    });

    it('type history _since in the future is empty', async () => {
        await create(server, sample('Patient'));
        const future = encodeURIComponent(new Date(Date.now() + 3600_000).toISOString());
        const bundle = await history(`/Patient/_history?_since=${future}`);
        assert.equal((bundle.entry || []).length, 0);
    });

    it('system history has every type', async () => {
        const marker = new Date(Date.now() - 1000).toISOString();
        const p = await create(server, sample('Patient'));
        const pr = await create(server, sample('Practitioner'));
        const s = await create(server, sample('Schedule'));
        const entries = await allPages(server, `/_history?_since=${encodeURIComponent(marker)}`);
        const bundle = { entry: entries };
        checkEntries(server, bundle);
        checkNewestFirst(bundle);
        const keys = entries.filter((e) => e.resource).map((e) => `${e.resource.resourceType}/${e.resource.id}`);
        for (const r of [p, pr, s]) assert.ok(keys.includes(`${r.resourceType}/${r.id}`), `${r.resourceType}/${r.id} in system history`);
        const first = await history(`/_history?_count=1&_since=${encodeURIComponent(marker)}`);
        assert.equal(first.entry.length, 1);
        assert.ok(link(first, 'next'), 'next link');
    });
});
