// Details clients rely on: history records what really happened, _count=0 and :missing across several elements,
// empty history totals, and where a failed transaction points.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, fhir, expectStatus, expectOutcome, put, uniq } from '../lib/harness.mjs';

describe('fidelity', () => {
    let server;
    before(async () => {
        server = await startServer();
    });
    after(async () => server?.stop());

    it('history lists each version with the interaction and status that made it', async () => {
        const id = uniq('hist');
        expectStatus(await put(server, { resourceType: 'Patient', id, active: true }), 201);
        expectStatus(await put(server, { resourceType: 'Patient', id, active: false }), 200);
        const patched = await fhir(server, 'PATCH', `/Patient/${id}`, {
            body: JSON.stringify([{ op: 'replace', path: '/active', value: true }]),
            headers: { 'Content-Type': 'application/json-patch+json' },
        });
        expectStatus(patched, 200);
        expectStatus(await fhir(server, 'DELETE', `/Patient/${id}`), 200);
        expectStatus(await put(server, { resourceType: 'Patient', id, active: true }), 201);
        const h = await fhir(server, 'GET', `/Patient/${id}/_history`);
        expectStatus(h, 200);
        const seen = h.json.entry.map((e) => `${e.request.method} ${e.response.status}`);
        assert.deepEqual(seen, ['PUT 201 Created', 'DELETE 200 OK', 'PATCH 200 OK', 'PUT 200 OK', 'PUT 201 Created']);
    });

    it('an empty history page still says total 0', async () => {
        const h = await fhir(server, 'GET', '/Slot/_history?_since=2999-01-01T00:00:00Z');
        expectStatus(h, 200);
        assert.equal(h.json.total, 0);
        assert.equal(h.json.entry, undefined);
    });

    it('_count=0 answers the number of matches without entries', async () => {
        const family = uniq('Count');
        for (let i = 0; i < 3; i++) {
            expectStatus(await fhir(server, 'POST', '/Patient', { body: { resourceType: 'Patient', name: [{ family }] } }), 201);
        }
        const r = await fhir(server, 'GET', `/Patient?family=${family}&_count=0`);
        expectStatus(r, 200);
        assert.equal(r.json.total, 3);
        assert.equal(r.json.entry, undefined);
    });

    it(':missing=false matches when any of the parameter\'s elements is present', async () => {
        const tag = uniq('miss');
        const withText = await fhir(server, 'POST', '/Patient', {
            body: { resourceType: 'Patient', meta: { tag: [{ code: tag }] }, name: [{ text: 'Only Text' }] },
        });
        expectStatus(withText, 201);
        const without = await fhir(server, 'POST', '/Patient', { body: { resourceType: 'Patient', meta: { tag: [{ code: tag }] } } });
        expectStatus(without, 201);
        const present = await fhir(server, 'GET', `/Patient?_tag=${tag}&name:missing=false`);
        assert.deepEqual(present.json.entry.map((e) => e.resource.id), [withText.json.id]);
        const missing = await fhir(server, 'GET', `/Patient?_tag=${tag}&name:missing=true`);
        assert.deepEqual(missing.json.entry.map((e) => e.resource.id), [without.json.id]);
    });

    it('a failed transaction points at the entry and the element inside its resource', async () => {
        const res = await fhir(server, 'POST', '', {
            body: {
                resourceType: 'Bundle',
                type: 'transaction',
                entry: [
                    { request: { method: 'POST', url: 'Patient' }, resource: { resourceType: 'Patient', active: true } },
                    { request: { method: 'POST', url: 'Slot' }, resource: { resourceType: 'Slot', status: 'nonsense',
                        schedule: { reference: 'Schedule/x' }, start: '2026-01-01T10:00:00Z', end: '2026-01-01T10:30:00Z' } },
                ],
            },
        });
        expectOutcome(res, 422);
        const exprs = res.json.issue.flatMap((i) => i.expression || []);
        assert.ok(exprs.includes('Bundle.entry[1].resource.status'), JSON.stringify(exprs));
    });

    it('malformed Bundle entries get 400, and the server carries on (found by fuzzing)', async () => {
        const tx = await fhir(server, 'POST', '', { body: { resourceType: 'Bundle', type: 'transaction', entry: [1] } });
        expectOutcome(tx, 400);
        const batch = await fhir(server, 'POST', '', {
            body: { resourceType: 'Bundle', type: 'batch', entry: [{ request: { method: 'GET', url: 'Patient/a', ifNoneMatch: 'W/"4294967295"' } }] },
        });
        expectStatus(batch, 200);
        assert.match(batch.json.entry[0].response.status, /^400/);
        expectStatus(await fhir(server, 'GET', '/metadata'), 200);
    });

    it('an update whose body lacks the id points at <Type>.id', async () => {
        const res = await fhir(server, 'PUT', '/Patient/no-id-here', { body: { resourceType: 'Patient', active: true } });
        expectOutcome(res, 400);
        assert.deepEqual(res.json.issue[0].expression, ['Patient.id']);
    });
});
