// Conditional create, update and delete (FHIR R4 http.html#ccreate, #cond-update, #cdelete).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
    content,
    create,
    expectOutcome,
    expectStatus,
    fhir,
    parseLocation,
    patientWithIdentifier,
    sleep,
    startServer,
    uniq,
} from '../lib/harness.mjs';

const SYS = 'urn:oid:1.2.36.146.595.217.0.1';

let server;
before(async () => {
    server = await startServer();
});
after(async () => {
    await server?.stop();
});

async function searchIdentifier(value, system = SYS) {
    const res = await fhir(server, 'GET', `/Patient?identifier=${encodeURIComponent(`${system}|${value}`)}`);
    expectStatus(res, 200);
    assert.equal(res.json.type, 'searchset');
    return res.json;
}

const q = (value, system = SYS) => `identifier=${encodeURIComponent(`${system}|${value}`)}`;

describe('conditional create (If-None-Exist)', () => {
    it('no match: 201 and the resource is created', async () => {
        const value = uniq('cc0');
        const res = await fhir(server, 'POST', '/Patient', {
            body: patientWithIdentifier(SYS, value),
            headers: { 'If-None-Exist': q(value) },
        });
        expectStatus(res, 201);
        parseLocation(server, res.headers.get('location'), 'Patient');
        assert.equal(res.json.meta.versionId, '1');
        const found = await searchIdentifier(value);
        assert.equal(found.total, 1);
        assert.equal(found.entry[0].resource.id, res.json.id);
    });

    it('one match: 200, the existing resource, nothing new stored', async () => {
        const value = uniq('cc1');
        const existing = await create(server, patientWithIdentifier(SYS, value, { gender: 'male' }));
        const res = await fhir(server, 'POST', '/Patient', {
            body: patientWithIdentifier(SYS, value, { gender: 'female' }),
            headers: { 'If-None-Exist': q(value) },
        });
        expectStatus(res, 200);
        if (res.text) {
            assert.equal(res.json.resourceType, 'Patient', 'the body is the existing resource');
            assert.equal(res.json.id, existing.id);
            assert.equal(res.json.gender, 'male');
            assert.equal(res.json.meta.versionId, '1');
        }
        const found = await searchIdentifier(value);
        assert.equal(found.total, 1, 'still exactly one match');
        const read = await fhir(server, 'GET', `/Patient/${existing.id}`);
        assert.equal(read.json.meta.versionId, '1', 'no new version of the existing resource');
        assert.equal(read.json.gender, 'male');
    });

    it('several matches: 412 and nothing stored', async () => {
        const value = uniq('cc2');
        await create(server, patientWithIdentifier(SYS, value));
        await create(server, patientWithIdentifier(SYS, value));
        const res = await fhir(server, 'POST', '/Patient', {
            body: patientWithIdentifier(SYS, value),
            headers: { 'If-None-Exist': q(value) },
        });
        expectOutcome(res, 412);
        assert.equal((await searchIdentifier(value)).total, 2);
    });

    it('criteria by _id', async () => {
        const existing = await create(server, patientWithIdentifier(SYS, uniq('ccid')));
        const res = await fhir(server, 'POST', '/Patient', {
            body: patientWithIdentifier(SYS, uniq('ccid')),
            headers: { 'If-None-Exist': `_id=${existing.id}` },
        });
        expectStatus(res, 200);
        if (res.text) assert.equal(res.json.id, existing.id);
        const none = await fhir(server, 'POST', '/Patient', {
            body: patientWithIdentifier(SYS, uniq('ccid')),
            headers: { 'If-None-Exist': `_id=${uniq('missing')}` },
        });
        expectStatus(none, 201);
    });

    it('criteria combined with _lastUpdated', async () => {
        const value = uniq('cclu');
        const existing = await create(server, patientWithIdentifier(SYS, value));
        // Matches: updated at or after 2000.
        let res = await fhir(server, 'POST', '/Patient', {
            body: patientWithIdentifier(SYS, value),
            headers: { 'If-None-Exist': `${q(value)}&_lastUpdated=ge2000-01-01` },
        });
        expectStatus(res, 200);
        if (res.text) assert.equal(res.json.id, existing.id);
        // No match: nothing updated before 2000, so this creates.
        res = await fhir(server, 'POST', '/Patient', {
            body: patientWithIdentifier(SYS, value),
            headers: { 'If-None-Exist': `${q(value)}&_lastUpdated=lt2000-01-01` },
        });
        expectStatus(res, 201);
        assert.notEqual(res.json.id, existing.id);
    });

    it('token search: system|value matches only that system, |value only values without a system', async () => {
        const value = uniq('cctok');
        await create(server, patientWithIdentifier('urn:other:system', value));
        const res = await fhir(server, 'POST', '/Patient', {
            body: patientWithIdentifier(SYS, value),
            headers: { 'If-None-Exist': q(value) },
        });
        expectStatus(res, 201); // an identifier with another system does not match
        // value alone matches any system: now two matches.
        const many = await fhir(server, 'POST', '/Patient', {
            body: patientWithIdentifier(SYS, value),
            headers: { 'If-None-Exist': `identifier=${encodeURIComponent(value)}` },
        });
        expectOutcome(many, 412);
    });
});

describe('conditional update (PUT [type]?criteria)', () => {
    it('no match, no id in the body: 201 created with a server id', async () => {
        const value = uniq('cu0');
        const res = await fhir(server, 'PUT', `/Patient?${q(value)}`, { body: patientWithIdentifier(SYS, value) });
        expectStatus(res, 201);
        const loc = parseLocation(server, res.headers.get('location'), 'Patient');
        assert.equal(loc.vid, '1');
        assert.equal(res.json.id, loc.id);
        const found = await searchIdentifier(value);
        assert.equal(found.total, 1);
        assert.equal(found.entry[0].resource.id, loc.id);
    });

    it('one match: 200, the matching resource gets a new version', async () => {
        const value = uniq('cu1');
        const existing = await create(server, patientWithIdentifier(SYS, value, { gender: 'male' }));
        const body = patientWithIdentifier(SYS, value, { gender: 'other' });
        const res = await fhir(server, 'PUT', `/Patient?${q(value)}`, { body });
        expectStatus(res, 200);
        assert.equal(res.json.id, existing.id);
        assert.equal(res.json.meta.versionId, '2');
        assert.equal(res.headers.get('etag'), 'W/"2"');
        assert.deepEqual(content(res.json), content(body));
        const read = await fhir(server, 'GET', `/Patient/${existing.id}`);
        assert.equal(read.json.gender, 'other');
        assert.equal((await searchIdentifier(value)).total, 1);
    });

    it('one match and the body has the same id: 200', async () => {
        const value = uniq('cu1id');
        const existing = await create(server, patientWithIdentifier(SYS, value));
        const res = await fhir(server, 'PUT', `/Patient?${q(value)}`, {
            body: patientWithIdentifier(SYS, value, { id: existing.id, active: false }),
        });
        expectStatus(res, 200);
        assert.equal(res.json.id, existing.id);
        assert.equal(res.json.active, false);
    });

    it('one match but the body has another id: 400', async () => {
        const value = uniq('cu1bad');
        const existing = await create(server, patientWithIdentifier(SYS, value));
        const res = await fhir(server, 'PUT', `/Patient?${q(value)}`, {
            body: patientWithIdentifier(SYS, value, { id: uniq('other') }),
        });
        expectOutcome(res, 400);
        const read = await fhir(server, 'GET', `/Patient/${existing.id}`);
        assert.equal(read.json.meta.versionId, '1');
    });

    it('several matches: 412, nothing changed', async () => {
        const value = uniq('cu2');
        const a = await create(server, patientWithIdentifier(SYS, value));
        const b = await create(server, patientWithIdentifier(SYS, value));
        const res = await fhir(server, 'PUT', `/Patient?${q(value)}`, { body: patientWithIdentifier(SYS, value, { active: false }) });
        expectOutcome(res, 412);
        for (const p of [a, b]) {
            const read = await fhir(server, 'GET', `/Patient/${p.id}`);
            assert.equal(read.json.meta.versionId, '1');
            assert.equal(read.json.active, true);
        }
        assert.equal((await searchIdentifier(value)).total, 2);
    });

    it('criteria by _id', async () => {
        const existing = await create(server, patientWithIdentifier(SYS, uniq('cuid')));
        const res = await fhir(server, 'PUT', `/Patient?_id=${existing.id}`, { body: sample2(existing) });
        expectStatus(res, 200);
        assert.equal(res.json.id, existing.id);
        assert.equal(res.json.meta.versionId, '2');
    });
});

function sample2(existing) {
    const body = content(existing);
    body.active = false;
    return body;
}

describe('conditional delete (DELETE [type]?criteria)', () => {
    it('no match: 200 or 204, nothing deleted', async () => {
        const value = uniq('cd0');
        const other = await create(server, patientWithIdentifier(SYS, uniq('cd0-other')));
        const res = await fhir(server, 'DELETE', `/Patient?${q(value)}`);
        expectStatus(res, [200, 204]);
        const read = await fhir(server, 'GET', `/Patient/${other.id}`);
        expectStatus(read, 200);
    });

    it('one match: the resource is deleted', async () => {
        const value = uniq('cd1');
        const victim = await create(server, patientWithIdentifier(SYS, value));
        const bystander = await create(server, patientWithIdentifier(SYS, uniq('cd1-other')));
        const res = await fhir(server, 'DELETE', `/Patient?${q(value)}`);
        expectStatus(res, [200, 204]);
        expectOutcome(await fhir(server, 'GET', `/Patient/${victim.id}`), 410);
        expectStatus(await fhir(server, 'GET', `/Patient/${bystander.id}`), 200);
        assert.equal((await searchIdentifier(value)).total, 0);
    });

    it('several matches: 412 (conditionalDelete is "single"), nothing deleted', async () => {
        const value = uniq('cd2');
        const a = await create(server, patientWithIdentifier(SYS, value));
        const b = await create(server, patientWithIdentifier(SYS, value));
        const res = await fhir(server, 'DELETE', `/Patient?${q(value)}`);
        expectOutcome(res, 412);
        for (const p of [a, b]) expectStatus(await fhir(server, 'GET', `/Patient/${p.id}`), 200);
    });

    it('criteria by _id and by _lastUpdated', async () => {
        const a = await create(server, patientWithIdentifier(SYS, uniq('cdid')));
        let res = await fhir(server, 'DELETE', `/Patient?_id=${a.id}`);
        expectStatus(res, [200, 204]);
        expectOutcome(await fhir(server, 'GET', `/Patient/${a.id}`), 410);

        const value = uniq('cdlu');
        const b = await create(server, patientWithIdentifier(SYS, value));
        // _lastUpdated in the far past matches nothing: nothing deleted.
        res = await fhir(server, 'DELETE', `/Patient?${q(value)}&_lastUpdated=lt2000-01-01T00:00:00Z`);
        expectStatus(res, [200, 204]);
        expectStatus(await fhir(server, 'GET', `/Patient/${b.id}`), 200);
        await sleep(5);
        res = await fhir(server, 'DELETE', `/Patient?${q(value)}&_lastUpdated=ge2000-01-01T00:00:00Z`);
        expectStatus(res, [200, 204]);
        expectOutcome(await fhir(server, 'GET', `/Patient/${b.id}`), 410);
    });
});
