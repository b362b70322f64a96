// Operational endpoints, the CapabilityStatement (FHIR R4 capabilitystatement.html,
// http.html#capabilities) and HTTP/2 cleartext.

import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { TYPES, assertValidFhir, expectFhirJson, expectStatus, fhir, raw, startServer } from '../lib/harness.mjs';

const TYPE_INTERACTIONS = ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'history-type', 'create', 'search-type'];
const SYSTEM_INTERACTIONS = ['transaction', 'batch', 'history-system'];

let server;
before(async () => {
    server = await startServer();
});
after(async () => {
    await server?.stop();
});

describe('health endpoints', () => {
    it('/healthz: 200', async () => {
        expectStatus(await raw(server, 'GET', '/healthz'), 200);
    });

    it('/readyz: 200 with the database up and migrated', async () => {
        expectStatus(await raw(server, 'GET', '/readyz'), 200);
    });
});

describe('CapabilityStatement at /metadata', () => {
    let cs;
    before(async () => {
        const res = await fhir(server, 'GET', '/metadata');
        expectStatus(res, 200);
        expectFhirJson(res);
        cs = res.json;
    });

    it('is an R4 CapabilityStatement of kind instance for a JSON server', () => {
        assert.equal(cs.resourceType, 'CapabilityStatement');
        assert.equal(cs.fhirVersion, '4.0.1');
        assert.equal(cs.kind, 'instance');
        assert.ok(['draft', 'active', 'retired', 'unknown'].includes(cs.status), 'status (1..1)');
        assert.ok(cs.date, 'date (1..1)');
        assert.ok(Array.isArray(cs.format) && cs.format.some((f) => f === 'json' || f === 'application/fhir+json'), `format: ${cs.format}`);
        // cpb-15: kind = instance needs implementation (whose description is 1..1).
        assert.ok(cs.implementation?.description, 'implementation.description');
        assert.equal(cs.rest?.[0]?.mode, 'server');
    });

    for (const type of TYPES) {
        it(`declares ${type} with the interactions the server implements`, () => {
            const r = cs.rest[0].resource?.find((x) => x.type === type);
            assert.ok(r, `${type} is in rest[0].resource`);
            const codes = (r.interaction || []).map((i) => i.code);
            // AuditEvents are append-only: no update, patch or delete (docs/security.md)
            const appendOnly = type === 'AuditEvent';
            const changes = ['update', 'patch', 'delete'];
            for (const c of TYPE_INTERACTIONS) {
                if (appendOnly && changes.includes(c)) assert.ok(!codes.includes(c), `${type}: no interaction ${c}`);
                else assert.ok(codes.includes(c), `${type}: interaction ${c} (has ${codes.join(', ')})`);
            }
            assert.equal(r.versioning, 'versioned-update');
            assert.equal(r.readHistory, true);
            assert.equal(r.updateCreate, !appendOnly);
            assert.equal(r.conditionalCreate, true);
            assert.equal(r.conditionalUpdate, !appendOnly);
            assert.equal(r.conditionalDelete, appendOnly ? 'not-supported' : 'single');
        });
    }

    it('declares the system interactions transaction, batch and history-system', () => {
        const codes = (cs.rest[0].interaction || []).map((i) => i.code);
        for (const c of SYSTEM_INTERACTIONS) assert.ok(codes.includes(c), `system interaction ${c} (has ${codes.join(', ')})`);
    });

    it('lists no resource type that the server does not serve', async () => {
        for (const r of cs.rest[0].resource) {
            const res = await fhir(server, 'GET', `/${r.type}?_count=1`);
            expectStatus(res, 200);
            assert.equal(res.json.type, 'searchset', `${r.type} is searchable`);
        }
    });

    it('is the same with _format=json and Accept: application/fhir+json', async () => {
        const res = await fhir(server, 'GET', '/metadata?_format=json');
        expectStatus(res, 200);
        assert.deepEqual(res.json.rest, cs.rest);
    });
});

describe('HTTP/2 cleartext (prior knowledge)', () => {
    it('GET /fhir/metadata over h2c: 200 and a valid CapabilityStatement', async () => {
        const client = http2.connect(server.root);
        try {
            const { status, headers, body } = await new Promise((resolve, reject) => {
                client.on('error', reject);
                const req = client.request({ ':method': 'GET', ':path': '/fhir/metadata', accept: 'application/fhir+json' });
                req.setEncoding('utf8');
                let hdrs;
                let data = '';
                req.on('response', (h) => {
                    hdrs = h;
                });
                req.on('data', (d) => {
                    data += d;
                });
                req.on('end', () => resolve({ status: hdrs?.[':status'], headers: hdrs, body: data }));
                req.on('error', reject);
                req.setTimeout(20_000, () => reject(new Error('h2 request timed out')));
                req.end();
            });
            assert.equal(status, 200);
            assert.match(headers['content-type'], /^application\/fhir\+json/);
            const json = JSON.parse(body);
            assertValidFhir(json, 'CapabilityStatement over h2c');
            assert.equal(json.resourceType, 'CapabilityStatement');
        } finally {
            client.close();
        }
    });

    it('several concurrent streams on one h2c connection, including a create', async () => {
        const client = http2.connect(server.root);
        const request = (headers, payload) =>
            new Promise((resolve, reject) => {
                const req = client.request(headers);
                req.setEncoding('utf8');
                let status;
                let data = '';
                req.on('response', (h) => {
                    status = h[':status'];
                });
                req.on('data', (d) => {
                    data += d;
                });
                req.on('end', () => resolve({ status, data }));
                req.on('error', reject);
                if (payload) req.end(payload);
                else req.end();
            });
        try {
            const results = await Promise.all([
                request({ ':method': 'GET', ':path': '/fhir/metadata' }),
                request({ ':method': 'GET', ':path': '/healthz' }),
                request(
                    { ':method': 'POST', ':path': '/fhir/Patient', 'content-type': 'application/fhir+json' },
                    JSON.stringify({ resourceType: 'Patient', active: true }),
                ),
                request({ ':method': 'GET', ':path': '/fhir/Patient?_count=1' }),
            ]);
            assert.deepEqual(
                results.map((r) => r.status),
                [200, 200, 201, 200],
            );
            const created = JSON.parse(results[2].data);
            assertValidFhir(created, 'created Patient over h2c');
            const read = await fhir(server, 'GET', `/Patient/${created.id}`);
            expectStatus(read, 200);
        } finally {
            client.close();
        }
    });
});
