// TLS hardening (docs/security.md, "Transport"; create_tls_context in src/http/server.c), driven by real TLS clients:
// the curl CLI and `openssl s_client`, against a certificate from a private test CA made here with the openssl CLI.
// TLS 1.2 and 1.3 only, forward-secret AEAD ciphers for TLS 1.2 in the server's order, key exchange over X25519,
// P-256 or P-384, no TLS 1.2 session tickets, HTTP/2 over ALPN, and tls.ciphers taking effect.
// (startup.test.mjs has the older ALPN test with a self-signed certificate.)
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeCertificates } from '../lib/certs.mjs';
import { createTestDatabase, serverBinary, startServer } from '../lib/harness.mjs';

/** Runs a command with stdin closed; resolves with { code, stdout, stderr } whatever the exit status. */
function run(cmd, args, timeoutMs = 20_000) {
    return new Promise((resolve, reject) => {
        const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        p.stdout.setEncoding('utf8');
        p.stderr.setEncoding('utf8');
        p.stdout.on('data', (d) => (stdout += d));
        p.stderr.on('data', (d) => (stderr += d));
        const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
        p.on('error', reject);
        p.on('close', (code, signal) => {
            clearTimeout(timer);
            resolve({ code, signal, stdout, stderr });
        });
    });
}

const BASE_URL = 'https://fhir.example.test/fhir';

describe('TLS hardening', () => {
    let dir, files, server, url;

    /** curl GET of /fhir/metadata: { code, version, status, body, stderr, verbose lines } */
    async function curl(args, { cacert = true, target = url } = {}) {
        const r = await run('curl', [
            '-sS', '-v', '-o', '-', '-w', '\n%{http_version} %{http_code}',
            ...(cacert ? ['--cacert', files.ca] : []), ...args, target,
        ]);
        const nl = r.stdout.lastIndexOf('\n');
        const [version, status] = r.stdout.slice(nl + 1).split(' ');
        return { code: r.code, version, status: Number(status), body: r.stdout.slice(0, nl), stderr: r.stderr };
    }

    /** The TLS version and cipher curl reports, e.g. "TLSv1.2 / ECDHE-RSA-AES128-GCM-SHA256". */
    function negotiated(r) {
        return /SSL connection using (.*)$/m.exec(r.stderr)?.[1]?.trim();
    }

    function assertRefused(r, what) {
        assert.equal(r.code, 35, `${what}: curl exit ${r.code} (35 is a failed handshake)\n${r.stderr}`);
        assert.match(r.stderr, /\(OUT\), TLS handshake, Client hello/, `${what}: curl never offered it`);
        assert.equal(negotiated(r), undefined, `${what}: a connection was made`);
    }

    before(async () => {
        execFileSync('which', ['curl', 'openssl']);
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhirsched-tls-ca-'));
        files = makeCertificates(dir);
        server = await startServer({
            env: { FHIRSCHED_TLS_CERT_FILE: files.cert, FHIRSCHED_TLS_KEY_FILE: files.key, FHIRSCHED_BASE_URL: BASE_URL },
            tls: { ca: fs.readFileSync(files.ca) },
        });
        assert.match(server.root, /^https:\/\/127\.0\.0\.1:\d+$/);
        url = `${server.base}/metadata`;
    });
    after(async () => {
        await server?.stop();
        if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it('serves HTTP/2 over ALPN to curl verifying the certificate against the test CA', async () => {
        const r = await curl(['--http2']);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.version, '2');
        assert.equal(r.status, 200);
        assert.match(r.stderr, /ALPN: server accepted h2/);
        const cs = JSON.parse(r.body);
        assert.equal(cs.resourceType, 'CapabilityStatement');
        assert.equal(cs.implementation?.url, BASE_URL);
    });

    it('serves HTTP/1.1 to clients that ask for it', async () => {
        const r = await curl(['--http1.1']);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(`${r.version} ${r.status}`, '1.1 200');
    });

    it('matches the certificate by DNS name as well', async () => {
        const r = await curl(['--resolve', `localhost:${server.port}:127.0.0.1`], { target: `https://localhost:${server.port}/fhir/metadata` });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.status, 200);
    });

    it('fails verification for a client that does not trust the test CA', async () => {
        const r = await curl([], { cacert: false });
        assert.equal(r.code, 60, r.stderr); // CURLE_PEER_FAILED_VERIFICATION
        assert.match(r.stderr, /certificate/i);
    });

    it('refuses TLS 1.1 and 1.0', async () => {
        assertRefused(await curl(['--tls-max', '1.1']), 'TLS 1.1');
        // A client that would really settle for TLS 1.0/1.1 (OpenSSL's own floor lowered), and the same client allowed 1.2.
        const old = ['--tlsv1', '--ciphers', 'DEFAULT:@SECLEVEL=0'];
        assertRefused(await curl([...old, '--tls-max', '1.1']), 'TLS 1.0-1.1 at security level 0');
        assertRefused(await curl([...old, '--tls-max', '1.0']), 'TLS 1.0');
        const control = await curl([...old, '--tls-max', '1.2']);
        assert.equal(control.code, 0, control.stderr);
        assert.match(negotiated(control), /^TLSv1\.2 \/ ECDHE-RSA-/);
    });

    it('refuses TLS 1.2 ciphers that are not forward-secret AEAD', async () => {
        for (const cipher of [
            'AES128-SHA', // RSA key exchange, CBC
            'AES128-GCM-SHA256', // AEAD but RSA key exchange (no forward secrecy)
            'AES256-SHA256',
            'ECDHE-RSA-AES128-SHA', // forward-secret but CBC
            'ECDHE-RSA-AES256-SHA384',
            'DHE-RSA-AES128-SHA',
        ]) {
            assertRefused(await curl(['--ciphers', cipher, '--tls-max', '1.2']), cipher);
        }
        for (const cipher of ['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-CHACHA20-POLY1305']) {
            const r = await curl(['--ciphers', cipher, '--tls-max', '1.2']);
            assert.equal(r.code, 0, `${cipher}: ${r.stderr}`);
            assert.equal(negotiated(r), `TLSv1.2 / ${cipher}`);
            assert.equal(r.status, 200);
        }
    });

    it('speaks TLS 1.3', async () => {
        const r = await curl(['--tlsv1.3']);
        assert.equal(r.code, 0, r.stderr);
        assert.match(negotiated(r), /^TLSv1\.3 \/ TLS_/);
        assert.equal(`${r.version} ${r.status}`, '2 200');
    });

    it('chooses the TLS 1.2 cipher by its own order, not the client\'s', async () => {
        // The default tls.ciphers puts AES-GCM before ChaCha20; this client asks for ChaCha20 first.
        const r = await curl(['--tls-max', '1.2', '--ciphers', 'ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256']);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(negotiated(r), 'TLSv1.2 / ECDHE-RSA-AES128-GCM-SHA256');
    });

    /** `openssl s_client` handshake; resolves with its output. */
    function sClient(...args) {
        return run('openssl', ['s_client', '-connect', `127.0.0.1:${server.port}`, '-CAfile', files.ca, ...args]);
    }

    it('exchanges keys over X25519, P-256 or P-384 only', async () => {
        for (const [group, shown] of [['X25519', /Server Temp Key: X25519/], ['P-256', /Server Temp Key: ECDH, prime256v1/], ['P-384', /Server Temp Key: ECDH, secp384r1/]]) {
            for (const version of ['-tls1_2', '-tls1_3']) {
                const r = await sClient(version, '-groups', group);
                assert.equal(r.code, 0, `${group} ${version}: ${r.stderr}`);
                assert.match(r.stdout, shown, `${group} ${version}`);
            }
        }
        for (const group of ['P-521', 'ffdhe2048', 'X448']) {
            const r = await sClient('-tls1_3', '-groups', group);
            assert.notEqual(r.code, 0, `${group} was accepted:\n${r.stdout}`);
            assert.doesNotMatch(r.stdout, /Server Temp Key/);
        }
    });

    it('issues no TLS 1.2 session tickets (no long-lived ticket key)', async () => {
        const r = await sClient('-tls1_2');
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /Protocol\s*: TLSv1\.2/);
        assert.match(r.stdout, /Verify return code: 0 \(ok\)/);
        assert.doesNotMatch(r.stdout, /TLS session ticket/);
        assert.match(r.stdout, /Compression: NONE/);
    });

    it('still serves plain requests after all these handshakes', async () => {
        const r = await curl(['--http2']);
        assert.equal(r.status, 200);
        assert.doesNotMatch(server.stderr(), /"level":"error"/);
    });
});

describe('tls.ciphers', () => {
    let dir, files;
    before(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhirsched-tls-ciphers-'));
        files = makeCertificates(dir);
    });
    after(() => {
        if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it('a list OpenSSL finds no cipher in stops start-up with a message naming the setting', async () => {
        const db = await createTestDatabase();
        try {
            const r = await new Promise((resolve, reject) => {
                const p = spawn(serverBinary(), ['serve'], {
                    env: {
                        ...process.env,
                        FHIRSCHED_LISTEN: '127.0.0.1:9',
                        FHIRSCHED_DATABASE_URL: db.url,
                        FHIRSCHED_TLS_CERT_FILE: files.cert,
                        FHIRSCHED_TLS_KEY_FILE: files.key,
                        FHIRSCHED_TLS_CIPHERS: 'NO-SUCH-CIPHER:ALSO-NOT-ONE',
                    },
                    stdio: ['ignore', 'ignore', 'pipe'],
                });
                let stderr = '';
                p.stderr.on('data', (d) => (stderr += d));
                const timer = setTimeout(() => p.kill('SIGKILL'), 20_000);
                p.on('error', reject);
                p.on('close', (code) => {
                    clearTimeout(timer);
                    resolve({ code, stderr });
                });
            });
            assert.equal(r.code, 1, r.stderr);
            assert.match(r.stderr, /^fhirsched: tls\.ciphers: no usable cipher in "NO-SUCH-CIPHER:ALSO-NOT-ONE"/m);
        } finally {
            await db.drop();
        }
    });

    it('is what the server offers for TLS 1.2, with a warning for ciphers outside the contract', async () => {
        const server = await startServer({
            env: {
                FHIRSCHED_TLS_CERT_FILE: files.cert,
                FHIRSCHED_TLS_KEY_FILE: files.key,
                FHIRSCHED_TLS_CIPHERS: 'ECDHE-RSA-AES256-GCM-SHA384:AES256-GCM-SHA384',
            },
            tls: { ca: fs.readFileSync(files.ca) },
        });
        try {
            assert.match(server.stderr(), /tls\.ciphers allows AES256-GCM-SHA384, which is not a forward-secret AEAD cipher/);
            const get = (cipher) =>
                run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', files.ca, '--tls-max', '1.2', '--ciphers', cipher,
                    `${server.base}/metadata`]);
            for (const cipher of ['ECDHE-RSA-AES256-GCM-SHA384', 'AES256-GCM-SHA384']) {
                const r = await get(cipher);
                assert.equal(`${r.code} ${r.stdout}`, '0 200', `${cipher}: ${r.stderr}`);
            }
            // Not in this list, although in the default one.
            const r = await get('ECDHE-RSA-AES128-GCM-SHA256');
            assert.equal(r.code, 35, r.stderr);
        } finally {
            await server.stop();
        }
    });
});
