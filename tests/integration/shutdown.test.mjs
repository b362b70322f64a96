// Graceful shutdown: SIGTERM lets the request in flight finish, then the
// process exits 0 (and idle keep-alive connections do not hold it up).

import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import { randomUUID } from 'node:crypto';
import { after, before, it } from 'node:test';
import {
    assertValidFhir,
    createTestDatabase,
    expectStatus,
    fhir,
    patientWithIdentifier,
    sleep,
    startServer,
    uniq,
} from '../lib/harness.mjs';

const SYS = 'http://example.org/fhir/shutdown';
const N = 400;

let db;
before(async () => {
    db = await createTestDatabase();
});
after(async () => {
    await db?.drop();
});

function transaction(value, n = N) {
    return {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: Array.from({ length: n }, (_, i) => ({
            fullUrl: `urn:uuid:${randomUUID()}`,
            resource: patientWithIdentifier(SYS, value, { name: [{ family: `Shutdown${i}` }] }),
            request: { method: 'POST', url: 'Patient' },
        })),
    };
}

/** POST over HTTP/1.1; `sent` resolves once the whole request is written. */
function postRaw(server, path, body) {
    let onSent;
    const sent = new Promise((r) => {
        onSent = r;
    });
    const done = new Promise((resolve, reject) => {
        const req = http.request(
            {
                host: '127.0.0.1',
                port: server.port,
                path,
                method: 'POST',
                headers: {
                    'content-type': 'application/fhir+json',
                    accept: 'application/fhir+json',
                    'content-length': Buffer.byteLength(body),
                },
            },
            (res) => {
                const headersAt = Date.now();
                const chunks = [];
                res.on('data', (c) => chunks.push(c));
                res.on('end', () => {
                    if (!res.complete) reject(new Error('response cut off before its end'));
                    else resolve({ status: res.statusCode, headers: res.headers, headersAt, text: Buffer.concat(chunks).toString('utf8') });
                });
                res.on('error', reject);
                res.on('aborted', () => reject(new Error('response aborted')));
            },
        );
        req.on('error', reject);
        req.on('finish', onSent);
        req.end(body);
    });
    return { sent, done };
}

async function countIdentifier(server, value) {
    const res = await fhir(server, 'GET', `/Patient?identifier=${encodeURIComponent(`${SYS}|${value}`)}&_count=1`);
    expectStatus(res, 200);
    return res.json.total;
}

it('SIGTERM while a large transaction is in flight: it completes, then exit 0', async () => {
    const server = await startServer({ databaseUrl: db.url });
    let stopped = false;
    let value;
    let res;
    try {
        // How long does such a transaction take here, once warm? Signal a quarter of the way in.
        let duration;
        for (let i = 0; i < 2; i++) {
            const t0 = Date.now();
            expectStatus(await fhir(server, 'POST', '', { body: transaction(uniq('warm')) }), 200);
            duration = Date.now() - t0;
        }

        value = uniq('inflight');
        const { sent, done } = postRaw(server, '/fhir', JSON.stringify(transaction(value)));
        await sent;
        await sleep(Math.max(1, Math.min(duration / 4, 250)));
        const signalledAt = Date.now();
        server.signal('SIGTERM');
        try {
            res = await done;
        } catch (e) {
            assert.fail(`the connection was cut during shutdown: ${e.message}\n${server.describe()}`);
        }
        // Otherwise this test proved nothing: the answer came before the signal.
        assert.ok(res.headersAt >= signalledAt, `the response came before SIGTERM (warm-up took ${duration} ms)`);
        assert.ok([200, 503].includes(res.status), `status ${res.status}: ${res.text.slice(0, 500)}`);
        assert.match(res.headers['content-type'] ?? '', /^application\/fhir\+json/);
        const json = JSON.parse(res.text);
        assertValidFhir(json, 'response during shutdown');
        if (res.status === 200) {
            assert.equal(json.type, 'transaction-response');
            assert.equal(json.entry.length, N);
        } else {
            assert.equal(json.resourceType, 'OperationOutcome');
        }
        stopped = true;
        await server.stop(); // waits for the exit and checks code 0 and no sanitizer report
    } finally {
        if (!stopped) await server.kill();
    }

    // All or nothing, as seen by a fresh server on the same database.
    const again = await startServer({ databaseUrl: db.url });
    try {
        assert.equal(await countIdentifier(again, value), res.status === 200 ? N : 0);
    } finally {
        await again.stop();
    }
});

it('SIGTERM with idle keep-alive HTTP/1.1 and HTTP/2 connections open: exit 0 promptly', async () => {
    const server = await startServer({ databaseUrl: db.url });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const h2 = http2.connect(server.root);
    h2.on('error', () => {});
    try {
        await new Promise((resolve, reject) => {
            http.get({ host: '127.0.0.1', port: server.port, path: '/healthz', agent }, (r) => {
                r.resume();
                r.on('end', resolve);
            }).on('error', reject);
        });
        await new Promise((resolve, reject) => {
            const req = h2.request({ ':path': '/healthz' });
            req.on('error', reject);
            req.resume();
            req.on('end', resolve);
            req.end();
        });
        const t0 = Date.now();
        await server.stop({ timeoutMs: 10_000 });
        assert.ok(Date.now() - t0 < 10_000);
    } finally {
        agent.destroy();
        h2.destroy();
        await server.kill();
    }
});
