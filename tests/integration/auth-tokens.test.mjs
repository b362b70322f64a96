// Token verification (docs/security.md, "Connecting an identity provider" and "Refusals"): what is public without
// a token (metadata, the SMART configuration, health checks, CORS preflight), the CapabilityStatement's security
// section, every way a bearer token can be wrong (each a 401 with `WWW-Authenticate: Bearer error="invalid_token"`
// and an OperationOutcome, and an AuditEvent with outcome 4), the tokens that must pass (RS256/RS384/ES256/ES384,
// clock skew, an audience array, `scp`), key rotation through a JWKS URL, the `fhirsched token` CLI, and the rate
// limit (429 with Retry-After, per client id).
//
// Several servers: the main one (JWKS file, advertised IdP endpoints, CORS), one on a JWKS URL served by this test,
// one trusting the CLI's key, one with a tiny rate limit. Each is on a fresh database.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import {
    ISSUER,
    UNAUTHORIZED_CODES,
    api,
    auditsFor,
    badSignatureToken,
    bearerChallenge,
    claimsFor,
    expectUnauthorized,
    hs256WithPublicKey,
    jwksOf,
    makeKeys,
    mintToken,
    noneToken,
    now,
    pollUntil,
    requestId,
    startAuthServer,
    tamperedToken,
    tempDir,
    tokenFor,
    unknownKidToken,
} from '../lib/auth.mjs';
import { expectOutcome, expectStatus, fhir, raw, sample, serverBinary, uniq } from '../lib/harness.mjs';

const execFileP = promisify(execFile);
const AUTHORIZE_URL = `${ISSUER}/protocol/openid-connect/auth`;
const TOKEN_URL = `${ISSUER}/protocol/openid-connect/token`;
const PORTAL = 'https://portal.clinic.test';
const SMART_SERVICE = 'http://terminology.hl7.org/CodeSystem/restful-security-service';
const OAUTH_URIS = 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris';

let keys;
let server;
let admin;
before(async () => {
    keys = makeKeys(tempDir());
    server = await startAuthServer({
        keys,
        env: {
            FHIRSCHED_AUTH_AUTHORIZE_URL: AUTHORIZE_URL,
            FHIRSCHED_AUTH_TOKEN_URL: TOKEN_URL,
            FHIRSCHED_CORS_ALLOWED_ORIGINS: PORTAL,
        },
    });
    admin = api(server, tokenFor('system-admin', { server }));
});
after(async () => {
    await server?.stop();
});

/** Claims of a valid system-admin token for the main server, with `over` merged in. */
const good = (over = {}) => ({ ...claimsFor('system-admin', { server }), ...over });
/** GET /Practitioner with `authorization` as given (a full header value, or undefined for none). */
async function probe(authorization, { path: p = '/Practitioner?_count=1', srv = server, headers = {} } = {}) {
    return fhir(srv, 'GET', p, { headers: { ...(authorization ? { authorization } : {}), ...headers } });
}
const bearer = (t) => `Bearer ${t}`;
const ooText = (oo) => JSON.stringify(oo.issue).toLowerCase();

describe('public without a token', () => {
    it('GET /fhir/metadata', async () => {
        const res = await fhir(server, 'GET', '/metadata');
        expectStatus(res, 200);
        assert.equal(res.json.resourceType, 'CapabilityStatement');
    });

    it('the SMART configuration at /fhir/.well-known and /.well-known, the same document', async () => {
        const docs = [];
        for (const p of ['/fhir/.well-known/smart-configuration', '/.well-known/smart-configuration']) {
            const res = await raw(server, 'GET', p, { headers: { accept: 'application/json' } });
            assert.equal(res.status, 200, `${p}: ${res.text}`);
            assert.match(res.headers.get('content-type') || '', /^application\/json/, `${p} content type`);
            const doc = JSON.parse(res.text);
            assert.equal(doc.issuer, ISSUER, 'issuer');
            assert.equal(doc.authorization_endpoint, AUTHORIZE_URL, 'authorization_endpoint');
            assert.equal(doc.token_endpoint, TOKEN_URL, 'token_endpoint');
            if (doc.jwks_uri !== undefined) assert.match(doc.jwks_uri, /^https?:\/\//, 'jwks_uri, when given, is a URL');
            assert.ok(Array.isArray(doc.capabilities) && doc.capabilities.length > 0, 'capabilities');
            for (const c of ['permission-patient', 'permission-user']) assert.ok(doc.capabilities.includes(c), `capabilities has ${c}: ${doc.capabilities}`);
            assert.ok(Array.isArray(doc.scopes_supported), 'scopes_supported');
            for (const ctx of ['patient/', 'user/', 'system/']) {
                assert.ok(doc.scopes_supported.some((s) => s.startsWith(ctx)), `scopes_supported has ${ctx} scopes: ${doc.scopes_supported}`);
            }
            docs.push(doc);
        }
        assert.deepEqual(docs[0], docs[1]);
    });

    it('/healthz and /readyz', async () => {
        for (const p of ['/healthz', '/readyz']) assert.equal((await raw(server, 'GET', p)).status, 200, p);
    });

    it('CORS preflight is 204 without a token; allowed origins get CORS headers, others none', async () => {
        const pre = await raw(server, 'OPTIONS', '/fhir/Patient', {
            headers: { origin: PORTAL, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
        });
        assert.equal(pre.status, 204, `preflight: ${pre.text}`);
        assert.equal(pre.headers.get('access-control-allow-origin'), PORTAL);
        assert.match(pre.headers.get('access-control-allow-headers') || '', /authorization/i);

        const res = await probe(undefined, { headers: { origin: PORTAL } });
        expectOutcome(res, 401, UNAUTHORIZED_CODES);
        assert.equal(res.headers.get('access-control-allow-origin'), PORTAL, 'a 401 to an allowed origin carries CORS headers');
        const exposed = (res.headers.get('access-control-expose-headers') || '').toLowerCase();
        for (const h of ['location', 'etag', 'last-modified', 'www-authenticate', 'x-request-id', 'retry-after']) {
            assert.ok(exposed.includes(h), `Access-Control-Expose-Headers has ${h}: ${exposed}`);
        }
        const other = await raw(server, 'GET', '/fhir/metadata', { headers: { origin: 'https://evil.test' } });
        assert.equal(other.status, 200);
        assert.equal(other.headers.get('access-control-allow-origin'), null, 'no CORS headers for another origin');
    });

    it('CapabilityStatement.rest[0].security: SMART-on-FHIR service and the oauth-uris extension', async () => {
        const res = await fhir(server, 'GET', '/metadata');
        const sec = res.json.rest?.[0]?.security;
        assert.ok(sec, 'rest[0].security');
        const codings = (sec.service || []).flatMap((s) => s.coding || []);
        assert.ok(
            codings.some((c) => c.system === SMART_SERVICE && c.code === 'SMART-on-FHIR'),
            `security.service has ${SMART_SERVICE}|SMART-on-FHIR: ${JSON.stringify(sec.service)}`,
        );
        const ext = (sec.extension || []).find((e) => e.url === OAUTH_URIS);
        assert.ok(ext, `security has the ${OAUTH_URIS} extension: ${JSON.stringify(sec)}`);
        const sub = Object.fromEntries((ext.extension || []).map((e) => [e.url, e.valueUri]));
        assert.equal(sub.authorize, AUTHORIZE_URL);
        assert.equal(sub.token, TOKEN_URL);
    });
});

describe('refused tokens: 401 invalid_token with an OperationOutcome', () => {
    it('no token at all, on reads and writes: 401 with an OperationOutcome; nothing is written', async () => {
        expectOutcome(await probe(undefined), 401, UNAUTHORIZED_CODES);
        const family = uniq('NoToken');
        expectOutcome(await fhir(server, 'POST', '/Patient', { body: sample('Patient', { name: [{ family }] }) }), 401, UNAUTHORIZED_CODES);
        const found = await admin.get(`/Patient?family=${family}&_summary=count`);
        expectStatus(found, 200);
        assert.equal(found.json.total, 0, 'the refused POST stored nothing');
        expectOutcome(await fhir(server, 'GET', '/Patient/anything'), 401, UNAUTHORIZED_CODES);
    });

    it('no token: WWW-Authenticate: Bearer realm="fhirsched" without an error code (RFC 6750 3.1, docs/security.md)', async () => {
        const res = await probe(undefined);
        assert.equal(bearerChallenge(res)?.realm, 'fhirsched', `realm: ${res.headers.get('www-authenticate')}`);
        expectUnauthorized(res, 'no token', { noCredentials: true });
    });

    it('malformed: not a JWT, bad base64/JSON', async () => {
        const header = Buffer.from('{"alg":"RS256","kid":"x"}').toString('base64url');
        for (const value of [
            'Bearer not-a-jwt',
            'Bearer a.b',
            'Bearer a.b.c.d',
            `Bearer ${header}.%%%%.abc`,
            `Bearer ${Buffer.from('not json').toString('base64url')}.${Buffer.from('{}').toString('base64url')}.abc`,
        ]) {
            expectUnauthorized(await probe(value), `for "${value}"`);
        }
    });

    it('an empty bearer and another scheme are refused like a malformed token', async () => {
        for (const value of ['Bearer ', 'Basic dXNlcjpwYXNzd29yZA==']) {
            const res = await probe(value);
            expectOutcome(res, 401, UNAUTHORIZED_CODES);
            const ch = bearerChallenge(res);
            assert.ok(ch?.wellFormed, `WWW-Authenticate for "${value}" is a well-formed challenge (RFC 7235: quotes escaped): ${ch?.raw}`);
        }
        for (const value of ['Bearer ', 'Basic dXNlcjpwYXNzd29yZA==']) {
            expectUnauthorized(await probe(value), `for "${value}" (docs/security.md: a malformed token is invalid_token)`);
        }
    });

    it('expired, missing exp, not yet valid (nbf, iat in the future)', async () => {
        const t = now();
        expectUnauthorized(await probe(bearer(mintToken(keys.rsa, good({ exp: t - 3600, iat: t - 7200 })))), 'expired');
        const noExp = good();
        delete noExp.exp;
        expectUnauthorized(await probe(bearer(mintToken(keys.rsa, noExp))), 'without exp');
        expectUnauthorized(await probe(bearer(mintToken(keys.rsa, good({ nbf: t + 3600 })))), 'nbf in the future');
        expectUnauthorized(await probe(bearer(mintToken(keys.rsa, good({ iat: t + 3600 })))), 'iat in the future');
    });

    it('wrong issuer, wrong audience', async () => {
        expectUnauthorized(await probe(bearer(mintToken(keys.rsa, good({ iss: 'https://idp.test/realms/other' })))), 'wrong iss');
        expectUnauthorized(await probe(bearer(mintToken(keys.rsa, good({ iss: `${ISSUER}/` })))), 'iss with a trailing slash');
        expectUnauthorized(await probe(bearer(mintToken(keys.rsa, good({ aud: 'https://other.test/fhir' })))), 'wrong aud');
        expectUnauthorized(await probe(bearer(mintToken(keys.rsa, good({ aud: ['https://other.test/fhir', 'account'] })))), 'aud array without ours');
        const noAud = good();
        delete noAud.aud;
        expectUnauthorized(await probe(bearer(mintToken(keys.rsa, noAud))), 'no aud');
    });

    it('the OperationOutcome says which check failed: expired, issuer, audience and signature read differently', async () => {
        const t = now();
        const texts = {};
        for (const [what, token] of [
            ['expired', mintToken(keys.rsa, good({ exp: t - 3600, iat: t - 7200 }))],
            ['issuer', mintToken(keys.rsa, good({ iss: 'https://idp.test/realms/other' }))],
            ['audience', mintToken(keys.rsa, good({ aud: 'https://other.test/fhir' }))],
            ['signature', badSignatureToken(mintToken(keys.rsa, good()))],
        ]) {
            const oo = expectUnauthorized(await probe(bearer(token)), what);
            texts[what] = ooText(oo);
            assert.ok(!texts[what].includes('practitioner'), `the ${what} refusal says nothing about the resource: ${texts[what]}`);
        }
        const distinct = new Set(Object.values(texts));
        assert.equal(distinct.size, Object.keys(texts).length, `each check explains itself: ${JSON.stringify(texts, null, 1)}`);
    });

    it('bad signature, tampered payload, unknown key', async () => {
        for (const key of [keys.rsa, keys.ec]) {
            expectUnauthorized(await probe(bearer(badSignatureToken(mintToken(key, good())))), `flipped signature byte (${key.name})`);
            // a payload changed after signing: a patient token made into a system-admin one
            const patient = mintToken(key, claimsFor({ patient: 'p1' }, { server }));
            expectUnauthorized(await probe(bearer(tamperedToken(patient, { fhirsched_role: 'system-admin', scope: 'system/*.*' }))), `tampered (${key.name})`);
        }
        // a key of the right type under a known kid, but not the key of that kid
        expectUnauthorized(await probe(bearer(mintToken(keys.rotated, good(), { kid: keys.ec.kid }))), 'another key under a known kid');
        expectUnauthorized(await probe(bearer(unknownKidToken(keys.rotated, good()))), 'unknown kid');
        expectUnauthorized(await probe(bearer(mintToken(keys.rotated, good(), { kid: null }))), 'no kid, no key verifies');
    });

    it('refused algorithms: none, HS256 with the public key as secret, an alg that does not match the key', async () => {
        expectUnauthorized(await probe(bearer(noneToken(good()))), 'alg none');
        expectUnauthorized(await probe(bearer(noneToken(good(), { kid: keys.rsa.kid }))), 'alg none with a known kid');
        for (const key of [keys.rsa, keys.ec]) {
            expectUnauthorized(await probe(bearer(hs256WithPublicKey(key, good()))), `HS256 keyed with ${key.name}'s public PEM`);
        }
        // an RSA signature presented as ES256 under the EC key's kid, and the reverse
        expectUnauthorized(await probe(bearer(mintToken(keys.rsa, good(), { kid: keys.ec.kid, header: { alg: 'ES256' } }))), 'RS256 bytes as ES256');
        expectUnauthorized(await probe(bearer(mintToken(keys.ec, good(), { kid: keys.rsa.kid, header: { alg: 'RS256' } }))), 'ES256 bytes as RS256');
        // RS512 and PS256 are not on the list
        expectUnauthorized(await probe(bearer(mintToken(keys.rsa, good(), { alg: 'RS512' }))), 'RS512');
    });

    it('an RSA key under 2048 bits: its JWKS entry is skipped, so its tokens have an unknown key', async () => {
        expectUnauthorized(await probe(bearer(mintToken(keys.rsa1024, good()))), 'RSA 1024');
        // the server still works with the other keys of that JWKS
        expectStatus(await probe(bearer(mintToken(keys.rsa, good()))), 200);
    });

    it('the 401 says nothing about the resource: the same for an existing and a missing id', async () => {
        const p = await admin.create(sample('Patient'));
        const expired = { authorization: bearer(mintToken(keys.rsa, good({ exp: now() - 3600, iat: now() - 7200 }))) };
        const a = expectUnauthorized(await fhir(server, 'GET', `/Patient/${p.id}`, { headers: expired }));
        const b = expectUnauthorized(await fhir(server, 'GET', `/Patient/${uniq('missing')}`, { headers: expired }));
        assert.deepEqual(a.issue, b.issue);
        assert.ok(!JSON.stringify(a).includes(p.id), 'the id is not echoed');
    });

    it('a refused attempt is recorded as an AuditEvent with outcome 4', async () => {
        const rid = requestId('refused');
        const res = await fhir(server, 'GET', '/Patient?_count=1', { headers: { 'x-request-id': rid } });
        expectOutcome(res, 401, UNAUTHORIZED_CODES);
        assert.equal(res.headers.get('x-request-id'), rid);
        const found = await auditsFor(admin, rid, { query: 'outcome=4' });
        assert.equal(found.length, 1, `one AuditEvent with outcome 4 for request ${rid}`);
        assert.equal(found[0].outcome, '4');

        const rid2 = requestId('refused');
        expectUnauthorized(await probe(bearer(mintToken(keys.rsa, good({ exp: now() - 3600 }))), { headers: { 'x-request-id': rid2 } }));
        assert.equal((await auditsFor(admin, rid2, { query: 'outcome=4' })).length, 1, `AuditEvent for the expired token's request ${rid2}`);
    });
});

describe('accepted tokens', () => {
    it('RS256, RS384, ES256, ES384', async () => {
        for (const [key, alg] of [
            [keys.rsa, 'RS256'],
            [keys.rsa, 'RS384'],
            [keys.ec, 'ES256'],
            [keys.ec384, 'ES384'],
        ]) {
            const res = await probe(bearer(mintToken(key, good(), { alg })));
            expectStatus(res, 200);
            assert.equal(res.json.resourceType, 'Bundle', alg);
            assert.equal(res.headers.get('www-authenticate'), null, `no challenge on success (${alg})`);
        }
    });

    it('clock skew (default 60 s) on exp, nbf and iat', async () => {
        const t = now();
        expectStatus(await probe(bearer(mintToken(keys.rsa, good({ exp: t - 30, iat: t - 600 })))), 200);
        expectStatus(await probe(bearer(mintToken(keys.ec, good({ nbf: t + 30 })))), 200);
        expectStatus(await probe(bearer(mintToken(keys.ec, good({ iat: t + 30 })))), 200);
        expectUnauthorized(await probe(bearer(mintToken(keys.rsa, good({ exp: t - 120, iat: t - 600 })))), 'past the skew');
        expectUnauthorized(await probe(bearer(mintToken(keys.rsa, good({ nbf: t + 120 })))), 'nbf past the skew');
    });

    it('aud as an array holding ours; scopes in scp (string or array)', async () => {
        expectStatus(await probe(bearer(mintToken(keys.rsa, good({ aud: ['account', server.audience] })))), 200);
        const scpArray = good({ scp: ['system/*.read'] });
        delete scpArray.scope;
        expectStatus(await probe(bearer(mintToken(keys.rsa, scpArray))), 200);
        const scpString = good({ scp: 'openid system/Practitioner.read' });
        delete scpString.scope;
        expectStatus(await probe(bearer(mintToken(keys.rsa, scpString))), 200);
    });

    it('a lower-case "bearer" scheme is accepted (RFC 7235: the scheme is case-insensitive)', async () => {
        expectStatus(await probe(`bearer ${mintToken(keys.rsa, good())}`), 200);
    });
});

describe('claims named by configuration (auth.role_claim, auth.locations_claim)', () => {
    let azure;
    before(async () => {
        azure = await startAuthServer({ keys, env: { FHIRSCHED_AUTH_ROLE_CLAIM: 'roles', FHIRSCHED_AUTH_LOCATIONS_CLAIM: 'clinics' } });
        const sys = api(azure, tokenFor('system-admin', { server: azure, roles: undefined, extra: { roles: ['system-admin'] } }));
        await sys.upsert({ resourceType: 'Location', id: 'clinic-x', status: 'active', name: 'X' });
        await sys.upsert({ resourceType: 'Location', id: 'clinic-y', status: 'active', name: 'Y' });
        await sys.upsert({ resourceType: 'Patient', id: 'pat-x', name: [{ family: 'X' }] });
        for (const c of ['x', 'y']) {
            await sys.upsert({
                resourceType: 'Appointment',
                id: `appt-${c}`,
                status: 'proposed',
                participant: [
                    { actor: { reference: `Location/clinic-${c}` }, status: 'accepted' },
                    { actor: { reference: 'Patient/pat-x' }, status: 'accepted' },
                ],
            });
        }
    });
    after(async () => {
        await azure?.stop();
    });

    it('the role comes from the configured claim (a string or an array); the default claim then means nothing', async () => {
        const support = (roles) => api(azure, tokenFor(null, { server: azure, extra: { roles } }));
        for (const roles of ['support', ['support']]) {
            expectStatus(await support(roles).get('/Practitioner'), 200);
            expectOutcome(await support(roles).get('/Patient/pat-x'), 403, 'forbidden');
        }
        // fhirsched_role is an ordinary claim here: a support user cannot become an admin through it
        const both = api(azure, tokenFor(null, { server: azure, extra: { roles: 'support', fhirsched_role: 'system-admin' } }));
        expectOutcome(await both.get('/Patient/pat-x'), 403, 'forbidden');
    });

    it('the locations come from the configured claim', async () => {
        const recX = api(azure, tokenFor(null, { server: azure, extra: { roles: ['receptionist'], clinics: ['Location/clinic-x'] } }));
        expectStatus(await recX.get('/Appointment/appt-x'), 200);
        expectOutcome(await recX.get('/Appointment/appt-y'), 403, 'forbidden');
    });
});

describe('key rotation through a JWKS URL', () => {
    let idp;
    let jwks;
    let fetches = 0;
    let rotating;
    before(async () => {
        jwks = jwksOf(keys.rsa, keys.ec);
        idp = http.createServer((req, res) => {
            fetches += 1;
            res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
            res.end(JSON.stringify(jwks));
        });
        await new Promise((resolve) => idp.listen(0, '127.0.0.1', resolve));
        const url = `http://127.0.0.1:${idp.address().port}/realms/clinic/protocol/openid-connect/certs`;
        rotating = await startAuthServer({ keys, env: { FHIRSCHED_AUTH_JWKS_URL: url, FHIRSCHED_AUTH_JWKS_REFRESH_SECONDS: '0' } });
    });
    after(async () => {
        await rotating?.stop();
        await new Promise((resolve) => idp?.close(resolve));
    });

    it('keys are fetched at start; a new kid is accepted once the IdP publishes it', async () => {
        assert.ok(fetches >= 1, 'the JWKS URL was fetched at start-up');
        const claims = claimsFor('system-admin', { server: rotating });
        expectStatus(await probe(bearer(mintToken(keys.ec, claims)), { srv: rotating }), 200);
        const fresh = mintToken(keys.rotated, claims);
        const before = fetches;
        expectUnauthorized(await probe(bearer(fresh), { srv: rotating }), 'a kid not yet published');
        assert.ok(fetches > before, 'an unknown kid makes the server fetch the JWKS again');

        jwks = jwksOf(keys.rsa, keys.ec, keys.rotated);
        const res = await pollUntil(async () => {
            const r = await probe(bearer(fresh), { srv: rotating });
            return r.status === 200 ? r : null;
        });
        assert.ok(res, 'the token signed with the rotated key is accepted after the refresh');
        // and the old keys still work
        expectStatus(await probe(bearer(mintToken(keys.rsa, claims)), { srv: rotating }), 200);
    });
});

describe('fhirsched token (development CLI)', () => {
    let cliServer;
    let dir;
    const cli = async (...args) => {
        try {
            const { stdout } = await execFileP(serverBinary(), ['token', ...args], {
                env: { ...process.env, FHIRSCHED_AUTH_ISSUER: ISSUER },
                timeout: 30_000,
            });
            return stdout.trim();
        } catch (e) {
            throw new Error(`fhirsched token ${args.join(' ')} failed: ${e.stderr || e.message}`);
        }
    };
    before(async () => {
        dir = tempDir();
    });
    after(async () => {
        await cliServer?.stop();
    });

    it('--new-key, --jwks and a minted token that a server with that JWKS accepts', async () => {
        const keyFile = path.join(dir, 'dev-key.pem');
        const jwksFile = path.join(dir, 'dev-jwks.json');
        await cli('--new-key', keyFile);
        assert.ok(fs.existsSync(keyFile), '--new-key wrote the key');
        const jwksText = await cli('--key', keyFile, '--jwks');
        fs.writeFileSync(jwksFile, jwksText);
        const doc = JSON.parse(jwksText);
        assert.ok(Array.isArray(doc.keys) && doc.keys.length >= 1, 'a JWKS');
        for (const k of doc.keys) assert.equal(k.d, undefined, 'the JWKS holds no private part');

        cliServer = await startAuthServer({ env: { FHIRSCHED_AUTH_JWKS_FILE: jwksFile } });
        const token = await cli(
            '--key', keyFile,
            '--iss', ISSUER,
            '--aud', cliServer.audience,
            '--role', 'system-admin',
            '--scope', 'system/*.*',
            '--sub', 'cli-test',
        );
        assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, `a compact JWS: ${token}`);
        const res = await probe(bearer(token), { srv: cliServer });
        expectStatus(res, 200);
        // a token of another key is still refused there
        expectUnauthorized(await probe(bearer(mintToken(keys.rsa, claimsFor('system-admin', { server: cliServer }))), { srv: cliServer }));
    });
});

describe('rate limit', () => {
    let limited;
    before(async () => {
        limited = await startAuthServer({ keys, env: { FHIRSCHED_RATE_LIMIT_PER_SECOND: '1', FHIRSCHED_RATE_LIMIT_BURST: '3' } });
        // the first request of a fresh server can take seconds (the bucket would refill meanwhile): warm up with a
        // client of its own
        expectStatus(await probe(bearer(tokenFor('system-admin', { server: limited, clientId: 'warm-up' })), { srv: limited }), 200);
    });
    after(async () => {
        await limited?.stop();
    });

    it('the 4th quick request of one client is 429 with Retry-After and an OperationOutcome; another client is served', async () => {
        const one = bearer(tokenFor('system-admin', { server: limited, clientId: 'client-one' }));
        const statuses = [];
        let refused;
        const rid429 = requestId('limited');
        for (let i = 0; i < 4; i++) {
            const res = await probe(one, { srv: limited, headers: i === 3 ? { 'x-request-id': rid429 } : {} });
            statuses.push(res.status);
            if (res.status === 429) refused = res;
        }
        assert.deepEqual(statuses, [200, 200, 200, 429]);
        expectOutcome(refused, 429, ['throttled', 'transient']);
        const retry = refused.headers.get('retry-after');
        assert.match(retry || '', /^\d+$/, `Retry-After in seconds: ${retry}`);
        assert.ok(Number(retry) >= 1, `Retry-After >= 1: ${retry}`);

        // the same user through another client id has a budget of its own
        const two = bearer(tokenFor('system-admin', { server: limited, clientId: 'client-two' }));
        expectStatus(await probe(two, { srv: limited }), 200);

        // and the first client is served again once the bucket refills
        const again = await pollUntil(
            async () => {
                const r = await probe(one, { srv: limited });
                return r.status === 200 ? r : null;
            },
            { timeoutMs: (Number(retry) + 2) * 1000, intervalMs: 250 },
        );
        assert.ok(again, 'served again after Retry-After');

        // the 429 is a refusal like 401 and 403: recorded with outcome 4 (read slowly, by a client of its own)
        const reader = api(limited, tokenFor('system-admin', { server: limited, clientId: 'audit-reader' }));
        const found = await auditsFor(reader, rid429, { query: 'outcome=4', timeoutMs: 4000, intervalMs: 1100 });
        assert.equal(found.length, 1, `an AuditEvent with outcome 4 for the 429 (${rid429})`);
    });

    it('the client is the token\'s client_id, else azp, else sub', async () => {
        const quick = async (tokens) => {
            const statuses = [];
            for (const t of tokens) statuses.push((await probe(bearer(t), { srv: limited })).status);
            return statuses;
        };
        // no client_id, one azp, two users: one client
        const viaAzp = (sub) => tokenFor('system-admin', { server: limited, sub, omit: ['client_id'], extra: { azp: 'portal-azp' } });
        assert.deepEqual(await quick([viaAzp('u1'), viaAzp('u2'), viaAzp('u1'), viaAzp('u2')]), [200, 200, 200, 429], 'counted by azp');
        // neither client_id nor azp: each sub on its own
        const viaSub = (sub) => tokenFor('system-admin', { server: limited, sub, omit: ['client_id'] });
        assert.deepEqual(await quick([viaSub('s1'), viaSub('s2'), viaSub('s1'), viaSub('s2')]), [200, 200, 200, 200], 'counted by sub');
    });
});
