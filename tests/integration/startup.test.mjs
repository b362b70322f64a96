// Start-up checks (schema version, settings) and connection-level limits: TLS with ALPN, slow and idle clients.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import http2 from 'node:http2';
import https from 'node:https';
import { spawn } from 'node:child_process';
import { createTestDatabase, freePort, psql, randomName, serverBinary, startServer, sleep, fhir, expectStatus } from '../lib/harness.mjs';

const execFileP = promisify(execFile);

/** GET over HTTPS accepting our self-signed certificate; resolves with { status, body }. */
function httpsGet(url) {
    return new Promise((resolve, reject) => {
        https
            .get(url, { rejectUnauthorized: false, timeout: 2000 }, (res) => {
                let body = '';
                res.setEncoding('utf8');
                res.on('data', (d) => (body += d));
                res.on('end', () => resolve({ status: res.statusCode, body }));
            })
            .on('error', reject);
    });
}

/** Runs `fhirsched serve` expecting it to refuse to start; returns { code, stderr }. */
async function serveRefuses(env) {
    try {
        await execFileP(serverBinary(), ['serve'], { env: { ...process.env, FHIRSCHED_LISTEN: '127.0.0.1:9', ...env }, timeout: 20_000 });
    } catch (e) {
        return { code: e.code, stderr: e.stderr };
    }
    assert.fail('fhirsched serve started although it should have refused');
}

describe('start-up refusals', () => {
    it('refuses to serve a database with pending migrations, and says what to do', async () => {
        const port = process.env.FHIRSCHED_TEST_PG_PORT;
        const name = randomName('empty');
        await psql(port, `CREATE DATABASE "${name}"`);
        try {
            const r = await serveRefuses({ FHIRSCHED_DATABASE_URL: `postgresql://postgres@127.0.0.1:${port}/${name}` });
            assert.notEqual(r.code, 0);
            assert.match(r.stderr, /schema is at version 0 .*needs \d+; run `fhirsched migrate`/);
        } finally {
            await psql(port, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
        }
    });

    it('refuses a schema newer than the binary, for serve and for migrate', async () => {
        const db = await createTestDatabase();
        try {
            await psql(process.env.FHIRSCHED_TEST_PG_PORT, `INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future')`, {
                db: db.name,
            });
            const r = await serveRefuses({ FHIRSCHED_DATABASE_URL: db.url });
            assert.match(r.stderr, /version 9999, newer than this fhirsched knows/);
            await assert.rejects(
                execFileP(serverBinary(), ['migrate'], { env: { ...process.env, FHIRSCHED_DATABASE_URL: db.url } }),
                (e) => /newer than this fhirsched knows/.test(e.stderr),
            );
        } finally {
            await db.drop();
        }
    });

    it('a bad setting stops it with a message naming the setting', async () => {
        const r = await serveRefuses({ FHIRSCHED_THREADS: 'lots' });
        assert.equal(r.code, 2);
        assert.match(r.stderr, /FHIRSCHED_THREADS: threads must be a whole number/);
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhirsched-cfg-'));
        const file = path.join(dir, 'fhirsched.yaml');
        fs.writeFileSync(file, 'listen: 127.0.0.1:1\nhttp:\n  max_body_byte: 10\n');
        try {
            await execFileP(serverBinary(), ['serve', '--config', file], { env: process.env });
            assert.fail('should have refused');
        } catch (e) {
            assert.equal(e.code, 2);
            assert.match(e.stderr, new RegExp(`${file}:3: unknown setting "http.max_body_byte"`));
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it('a database that cannot be reached stops serve with a clear message', async () => {
        const r = await serveRefuses({ FHIRSCHED_DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/nothing' });
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /cannot connect to the database/);
    });

    it('version prints the version and the schema version', () => {
        const out = execFileSync(serverBinary(), ['version'], { encoding: 'utf8' });
        assert.match(out, /^fhirsched \d+\.\d+\.\d+ \(FHIR R4 4\.0\.1, schema version \d+\)/);
    });
});

describe('TLS with ALPN', () => {
    let server, dir, db, proc, stderr = '';
    before(async () => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhirsched-tls-'));
        execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'key.pem'), '-out',
            path.join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=127.0.0.1'], { stdio: 'ignore' });
        db = await createTestDatabase();
        const port = await freePort();
        proc = spawn(serverBinary(), ['serve'], {
            env: {
                ...process.env,
                FHIRSCHED_LISTEN: `127.0.0.1:${port}`,
                FHIRSCHED_DATABASE_URL: db.url,
                FHIRSCHED_THREADS: '1',
                FHIRSCHED_TLS_CERT_FILE: path.join(dir, 'cert.pem'),
                FHIRSCHED_TLS_KEY_FILE: path.join(dir, 'key.pem'),
            },
            stdio: ['ignore', 'ignore', 'pipe'],
        });
        proc.stderr.on('data', (d) => (stderr += d));
        server = { root: `https://127.0.0.1:${port}` };
        for (let i = 0; ; i++) {
            const r = await httpsGet(`${server.root}/readyz`).catch(() => null);
            if (r?.status === 200) break;
            if (i > 100) throw new Error(`TLS server not ready:\n${stderr}`);
            await sleep(100);
        }
    });
    after(async () => {
        if (proc) {
            const exited = new Promise((resolve) => proc.on('exit', (code) => resolve(code)));
            proc.kill('SIGTERM');
            assert.equal(await exited, 0, stderr);
            assert.doesNotMatch(stderr, /Sanitizer|runtime error:/);
        }
        await db?.drop();
        fs.rmSync(dir, { recursive: true, force: true });
    });

    it('serves HTTP/2 over TLS when the client offers h2', async () => {
        const client = http2.connect(server.root, { rejectUnauthorized: false });
        try {
            const { status, body, alpn } = await new Promise((resolve, reject) => {
                const req = client.request({ ':path': '/fhir/metadata' });
                let body = '';
                let status;
                req.on('response', (h) => (status = h[':status']));
                req.setEncoding('utf8');
                req.on('data', (d) => (body += d));
                req.on('end', () => resolve({ status, body, alpn: client.alpnProtocol }));
                req.on('error', reject);
                req.end();
            });
            assert.equal(alpn, 'h2');
            assert.equal(status, 200);
            assert.equal(JSON.parse(body).resourceType, 'CapabilityStatement');
        } finally {
            client.close();
        }
    });

    it('serves HTTP/1.1 over TLS to clients without h2', async () => {
        const r = await httpsGet(`${server.root}/healthz`);
        assert.equal(r.status, 200);
    });
});

/** Opens a raw TCP connection and resolves with how long it took the server to close it. */
function closedAfter(port, write) {
    return new Promise((resolve, reject) => {
        const started = Date.now();
        const sock = net.connect(port, '127.0.0.1', () => write(sock));
        let received = '';
        sock.on('data', (d) => (received += d));
        sock.on('close', () => resolve({ ms: Date.now() - started, received }));
        sock.on('error', reject);
        setTimeout(() => {
            sock.destroy();
            reject(new Error('the server kept the connection open'));
        }, 15_000);
    });
}

describe('slow and idle clients', () => {
    let server;
    before(async () => {
        server = await startServer({ env: { FHIRSCHED_HTTP_HEADER_TIMEOUT_MS: '700', FHIRSCHED_HTTP_IDLE_TIMEOUT_MS: '700' } });
    });
    after(async () => server?.stop());

    it('a client that never finishes its request head is cut off', async () => {
        const port = new URL(server.root).port;
        const r = await closedAfter(port, (s) => s.write('GET /fhir/metadata HTTP/1.1\r\nHost: x\r\n'));
        assert.ok(r.ms < 10_000, `closed after ${r.ms} ms`);
    });

    it('an idle keep-alive connection is closed', async () => {
        const port = new URL(server.root).port;
        const r = await closedAfter(port, (s) => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
        assert.match(r.received, /^HTTP\/1\.1 200/);
        assert.ok(r.ms < 10_000, `closed after ${r.ms} ms`);
    });

    it('an oversized request head gets 431 with an OperationOutcome, and the server carries on', async () => {
        const res = await fetch(`${server.base}/metadata`, { headers: { 'X-Big': 'a'.repeat(100_000) } });
        assert.equal(res.status, 431);
        assert.match(res.headers.get('content-type'), /application\/fhir\+json/);
        const oo = await res.json();
        assert.equal(oo.resourceType, 'OperationOutcome');
        assert.equal(oo.issue[0].code, 'too-costly');
        expectStatus(await fhir(server, 'GET', '/metadata'), 200);
    });

    it('a head beyond what h2o buffers at all is refused without harming the server', async () => {
        const port = new URL(server.root).port;
        // The server may close (or reset) the connection while the client is still writing: both are a refusal.
        const r = await closedAfter(port, (s) => s.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(600_000)}\r\n\r\n`)).catch(
            (e) => ({ error: e, received: '' }),
        );
        if (r.error) assert.match(r.error.code || '', /^(ECONNRESET|EPIPE)$/, String(r.error));
        assert.doesNotMatch(r.received, /^HTTP\/1\.1 200/);
        await sleep(50);
        expectStatus(await fhir(server, 'GET', '/metadata'), 200);
    });
});
