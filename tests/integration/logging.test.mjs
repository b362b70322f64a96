// Structured access logs: one JSON object per request with request id, method, path, status and duration;
// never patient data (names, identifiers, search values), only resource ids.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, fhir, expectStatus, sleep } from '../lib/harness.mjs';

describe('access log', () => {
    let server;
    const secretName = 'Zebulonquist';
    const secretMrn = 'MRN-771-0042-XQ';
    before(async () => {
        server = await startServer();
    });
    after(async () => server?.stop());

    /** The access lines written so far, parsed. */
    function accessLines() {
        const stdout = server.logs().split('--- stderr ---')[0];
        return stdout
            .split('\n')
            .filter((l) => l.startsWith('{'))
            .map((l) => JSON.parse(l))
            .filter((l) => l.type === 'access');
    }

    it('one JSON line per request, echoing the client request id', async () => {
        const res = await fhir(server, 'GET', '/metadata', { headers: { 'X-Request-Id': 'trace-abc-123' } });
        expectStatus(res, 200);
        assert.equal(res.headers.get('x-request-id'), 'trace-abc-123');
        await sleep(100);
        const line = accessLines().find((l) => l.request_id === 'trace-abc-123');
        assert.ok(line, 'no access line for the request');
        assert.equal(line.method, 'GET');
        assert.equal(line.path, '/fhir/metadata');
        assert.equal(line.status, 200);
        assert.equal(typeof line.duration_ms, 'number');
        assert.ok(line.ts && line.protocol);
    });

    it('a generated request id when the client sends none, or one unsafe to log', async () => {
        const a = await fhir(server, 'GET', '/metadata');
        assert.match(a.headers.get('x-request-id'), /^[0-9a-f-]{36}$/);
        const b = await fhir(server, 'GET', '/metadata', { headers: { 'X-Request-Id': 'x'.repeat(500) } });
        assert.match(b.headers.get('x-request-id'), /^[0-9a-f-]{36}$/);
    });

    it('patient names, identifiers and search values never reach the logs', async () => {
        const created = await fhir(server, 'POST', '/Patient', {
            body: {
                resourceType: 'Patient',
                identifier: [{ system: 'urn:oid:1.2.3', value: secretMrn }],
                name: [{ family: secretName, given: ['Ada'] }],
            },
        });
        expectStatus(created, 201);
        expectStatus(await fhir(server, 'GET', `/Patient?name=${secretName}`), 200);
        expectStatus(await fhir(server, 'GET', `/Patient?identifier=urn:oid:1.2.3|${secretMrn}`), 200);
        // an invalid write, whose diagnostics go to the client, not the log
        await fhir(server, 'POST', '/Patient', { body: { resourceType: 'Patient', name: [{ family: secretName, bogus: 1 }] } });
        await fhir(server, 'POST', '/Patient', { body: `{"resourceType":"Patient","name":[{"family":"${secretName}"` });
        await sleep(200);
        const logs = server.logs();
        assert.ok(!logs.includes(secretName), 'a patient name was logged');
        assert.ok(!logs.includes(secretMrn), 'a patient identifier was logged');
        // the resource id is fine, and the search shows up without its query string
        assert.ok(accessLines().some((l) => l.path === '/fhir/Patient' && l.method === 'GET'));
    });
});
