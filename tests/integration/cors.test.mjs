// CORS for browser-based portals (docs/security.md, "Transport"; src/http/cors.c): preflight answers, the headers on
// ordinary and error responses, "*" mode, and no CORS at all when cors.allowed_origins is not set.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createTestDatabase, expectOutcome, fhir, raw, serverBinary, startServer } from '../lib/harness.mjs';

const execFileP = promisify(execFile);

const PORTAL = 'https://portal.example';
const OTHER = 'https://other.example:8443';
const EXPOSED = ['Location', 'ETag', 'Last-Modified', 'Content-Location', 'Expires', 'Retry-After', 'WWW-Authenticate', 'X-Request-Id'];
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

function preflight(server, origin, method, requestHeaders, p = '/fhir/Patient') {
    const headers = { origin, 'access-control-request-method': method };
    if (requestHeaders !== undefined) headers['access-control-request-headers'] = requestHeaders;
    return raw(server, 'OPTIONS', p, { headers });
}

/** The comma-separated names of a header, lowercased. */
function names(res, header) {
    return (res.headers.get(header) || '')
        .split(',')
        .map((s) => s.trim().toLowerCase())
        .filter(Boolean);
}

function assertNoCors(res) {
    for (const h of [
        'access-control-allow-origin',
        'access-control-allow-credentials',
        'access-control-expose-headers',
        'access-control-allow-methods',
        'access-control-allow-headers',
        'access-control-max-age',
    ]) {
        assert.equal(res.headers.get(h), null, `${res.method} ${res.url} -> ${res.status} carries ${h}`);
    }
}

function assertExposes(res) {
    const exposed = names(res, 'access-control-expose-headers');
    for (const h of EXPOSED) assert.ok(exposed.includes(h.toLowerCase()), `${h} is not exposed: ${exposed.join(', ')}`);
}

describe('CORS with a list of origins', () => {
    let server;
    before(async () => {
        server = await startServer({ env: { FHIRSCHED_CORS_ALLOWED_ORIGINS: `${PORTAL}, ${OTHER}` } });
    });
    after(async () => {
        await server?.stop();
    });

    it('answers a preflight from a listed origin with 204 and the allow headers', async () => {
        const res = await preflight(server, PORTAL, 'POST', 'authorization, content-type, if-none-exist, x-request-id, prefer');
        assert.equal(res.status, 204, res.text);
        assert.equal(res.text, '');
        assert.equal(res.headers.get('access-control-allow-origin'), PORTAL);
        assert.equal(res.headers.get('access-control-allow-credentials'), 'true');
        assert.ok(names(res, 'vary').includes('origin'));
        assert.deepEqual(names(res, 'access-control-allow-methods'), METHODS.map((m) => m.toLowerCase()));
        assert.deepEqual(names(res, 'access-control-allow-headers'), [
            'authorization',
            'content-type',
            'if-none-exist',
            'x-request-id',
            'prefer',
        ]);
        assert.equal(res.headers.get('access-control-max-age'), '600');
        assert.ok(res.headers.get('x-request-id'));
    });

    it('allows every listed method and header', async () => {
        for (const m of METHODS) {
            const res = await preflight(server, OTHER, m, undefined, '/fhir/Appointment/x');
            assert.equal(res.status, 204, `${m}: ${res.text}`);
            assert.equal(res.headers.get('access-control-allow-origin'), OTHER);
            assert.equal(res.headers.get('access-control-allow-headers'), null);
        }
        const all = 'Authorization,Content-Type,Accept,If-Match,If-None-Match,If-None-Exist,If-Modified-Since,Prefer,X-Request-Id';
        const res = await preflight(server, PORTAL, 'PUT', all);
        assert.equal(res.status, 204, res.text);
        assert.deepEqual(names(res, 'access-control-allow-headers'), all.toLowerCase().split(','));
    });

    it('compares origins exactly, host without regard to case', async () => {
        const upper = await preflight(server, 'https://PORTAL.Example', 'GET');
        assert.equal(upper.status, 204);
        assert.equal(upper.headers.get('access-control-allow-origin'), 'https://PORTAL.Example');
        for (const origin of [
            'http://portal.example',
            'https://portal.example:443',
            'https://portal.example/',
            'https://portal.example.evil',
            'https://evil-portal.example',
            'https://other.example',
            'https://other.example:8444',
            'null',
            '',
        ]) {
            const res = await fhir(server, 'OPTIONS', '/Patient', { headers: { origin, 'access-control-request-method': 'GET' } });
            expectOutcome(res, 403, 'forbidden');
            assertNoCors(res);
        }
    });

    it('refuses a preflight from another origin with 403', async () => {
        const res = await fhir(server, 'OPTIONS', '/Patient', {
            headers: { origin: 'https://attacker.example', 'access-control-request-method': 'GET' },
        });
        expectOutcome(res, 403, 'forbidden');
        assertNoCors(res);
    });

    it('refuses a preflight for a method or header not in the list', async () => {
        for (const m of ['TRACE', 'CONNECT', 'get', 'PROPFIND']) {
            const res = await fhir(server, 'OPTIONS', '/Patient', { headers: { origin: PORTAL, 'access-control-request-method': m } });
            const oo = expectOutcome(res, 403, 'forbidden');
            assert.match(oo.issue[0].diagnostics, /method/);
            assert.equal(res.headers.get('access-control-allow-methods'), null);
        }
        for (const h of ['x-custom', 'authorization, cookie', 'content-type,x-forwarded-for']) {
            const res = await fhir(server, 'OPTIONS', '/Patient', {
                headers: { origin: PORTAL, 'access-control-request-method': 'POST', 'access-control-request-headers': h },
            });
            const oo = expectOutcome(res, 403, 'forbidden');
            assert.match(oo.issue[0].diagnostics, /header/);
            assert.equal(res.headers.get('access-control-allow-headers'), null);
        }
    });

    it('decorates ordinary responses for listed origins only', async () => {
        const ok = await fhir(server, 'GET', '/metadata', { headers: { origin: PORTAL } });
        assert.equal(ok.status, 200);
        assert.equal(ok.headers.get('access-control-allow-origin'), PORTAL);
        assert.equal(ok.headers.get('access-control-allow-credentials'), 'true');
        assert.ok(names(ok, 'vary').includes('origin'));
        assertExposes(ok);

        const created = await fhir(server, 'POST', '/Patient', {
            headers: { origin: OTHER },
            body: { resourceType: 'Patient', name: [{ family: 'Cors' }] },
        });
        assert.equal(created.status, 201, created.text);
        assert.equal(created.headers.get('access-control-allow-origin'), OTHER);
        assert.ok(created.headers.get('location'));
        assertExposes(created);

        for (const headers of [{ origin: 'https://attacker.example' }, {}]) {
            const res = await fhir(server, 'GET', '/metadata', { headers });
            assert.equal(res.status, 200);
            assertNoCors(res);
            // the answer depends on Origin, so caches must key on it, also when this one had none
            assert.ok(names(res, 'vary').includes('origin'));
        }
    });

    it('decorates error responses too', async () => {
        const missing = await fhir(server, 'GET', '/Patient/does-not-exist', { headers: { origin: PORTAL } });
        expectOutcome(missing, 404);
        assert.equal(missing.headers.get('access-control-allow-origin'), PORTAL);
        assertExposes(missing);

        const noEndpoint = await raw(server, 'GET', '/nowhere', { headers: { origin: PORTAL } });
        assert.equal(noEndpoint.status, 404);
        assert.equal(noEndpoint.headers.get('access-control-allow-origin'), PORTAL);

        const other = await fhir(server, 'GET', '/Patient/does-not-exist', { headers: { origin: 'https://attacker.example' } });
        expectOutcome(other, 404);
        assertNoCors(other);
    });

    it('serves OPTIONS without Access-Control-Request-Method as an ordinary request', async () => {
        const res = await fhir(server, 'OPTIONS', '/metadata', { headers: { origin: PORTAL } });
        assert.notEqual(res.status, 204);
        assert.equal(res.headers.get('access-control-allow-methods'), null);
        assert.equal(res.headers.get('access-control-allow-origin'), PORTAL);
    });
});

describe('CORS with "*"', () => {
    let server;
    before(async () => {
        server = await startServer({ env: { FHIRSCHED_CORS_ALLOWED_ORIGINS: '*' } });
    });
    after(async () => {
        await server?.stop();
    });

    it('answers every origin with "*" and never allows credentials', async () => {
        for (const origin of [PORTAL, 'https://anyone.example', 'null']) {
            const pre = await preflight(server, origin, 'DELETE', 'authorization');
            assert.equal(pre.status, 204, pre.text);
            assert.equal(pre.headers.get('access-control-allow-origin'), '*');
            assert.equal(pre.headers.get('access-control-allow-credentials'), null);
            assert.equal(pre.headers.get('access-control-allow-headers'), 'Authorization');

            const res = await fhir(server, 'GET', '/metadata', { headers: { origin } });
            assert.equal(res.status, 200);
            assert.equal(res.headers.get('access-control-allow-origin'), '*');
            assert.equal(res.headers.get('access-control-allow-credentials'), null);
            assertExposes(res);
        }
    });

    it('still refuses methods and headers outside the list', async () => {
        const res = await preflight(server, PORTAL, 'GET', 'x-custom');
        assert.equal(res.status, 403);
    });

    it('adds nothing to requests without Origin', async () => {
        const res = await fhir(server, 'GET', '/metadata');
        assertNoCors(res);
    });
});

describe('without cors.allowed_origins', () => {
    let server;
    before(async () => {
        server = await startServer();
    });
    after(async () => {
        await server?.stop();
    });

    it('sends no CORS headers and does not treat OPTIONS as a preflight', async () => {
        const pre = await preflight(server, PORTAL, 'GET', 'authorization', '/fhir/metadata');
        assert.notEqual(pre.status, 204);
        assert.notEqual(pre.status, 403);
        assertNoCors(pre);
        assert.equal(pre.headers.get('vary'), null);
        const res = await fhir(server, 'GET', '/metadata', { headers: { origin: PORTAL } });
        assert.equal(res.status, 200);
        assertNoCors(res);
        assert.equal(res.headers.get('vary'), null);
    });
});

describe('a bad cors.allowed_origins', () => {
    it('stops start-up with a message naming the setting', async () => {
        const db = await createTestDatabase();
        try {
            for (const [value, why] of [
                ['https://portal.example/', /path/],
                ['portal.example', /scheme/],
                ['https://portal.example:99999', /port/],
                ['*, https://portal.example', /cannot be combined/],
            ]) {
                let failure;
                try {
                    await execFileP(serverBinary(), ['serve'], {
                        env: {
                            ...process.env,
                            FHIRSCHED_LISTEN: '127.0.0.1:9',
                            FHIRSCHED_DATABASE_URL: db.url,
                            FHIRSCHED_CORS_ALLOWED_ORIGINS: value,
                        },
                        timeout: 20_000,
                    });
                } catch (e) {
                    failure = e;
                }
                assert.ok(failure, `fhirsched serve started with cors.allowed_origins=${value}`);
                assert.equal(failure.code, 1, failure.stderr);
                assert.match(failure.stderr, /cors\.allowed_origins/);
                assert.match(failure.stderr, why);
            }
        } finally {
            await db.drop();
        }
    });
});
