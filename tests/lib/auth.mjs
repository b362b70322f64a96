// Helpers of the security suites (docs/security.md): signing keys made with the openssl CLI, JWTs minted with
// node:crypto (good ones and the classic bad ones), a fhirsched started with authorization on, tokens for each
// clinic role or patient, and a FHIR client that sends `Authorization: Bearer`.
//
//   const keys = makeKeys(tmpdir);                      // rsa, ec, ec384 (+ rotated, rsa1024), keys.jwksFile
//   const server = await startAuthServer({ keys });     // FHIRSCHED_AUTH_ENABLED=true, our issuer, jwks.json
//   const admin = api(server, tokenFor('system-admin', { server }));
//   const res = await admin.get('/Patient/1');          // = harness fhir() with the bearer token
//
// The audience is left at the server's default, its base URL (`http://127.0.0.1:<port>/fhir`): tokens are minted
// after the server is up, when server.base is known (server.audience).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expectOutcome, expectStatus, fhir, sleep, startServer, uniq } from './harness.mjs';

export const ISSUER = 'https://idp.test/realms/clinic';
export const CLIENT_ID = 'fhirsched-test-portal';
export const ROLES = ['receptionist', 'doctor', 'clinic-admin', 'operations-manager', 'support', 'system-admin'];

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const b64json = (obj) => b64url(JSON.stringify(obj));
export const now = () => Math.floor(Date.now() / 1000);

/** A fresh temporary directory (removed at process exit). */
export function tempDir(prefix = 'fhirsched-auth-') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    return dir;
}

function genpkey(file, args) {
    execFileSync('openssl', ['genpkey', ...args, '-out', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    return fs.readFileSync(file, 'utf8');
}

/** One key: private PEM and KeyObject, public PEM, public JWK with kid, and its default algorithm. */
function loadKey(name, pem, alg) {
    const privateKey = crypto.createPrivateKey(pem);
    const publicKey = crypto.createPublicKey(pem);
    const kid = `${name}-${crypto.randomBytes(4).toString('hex')}`;
    const jwk = { ...publicKey.export({ format: 'jwk' }), kid, use: 'sig' };
    return { name, kid, alg, pem, privateKey, publicKey, publicPem: publicKey.export({ format: 'pem', type: 'spki' }), jwk };
}

/** A JWKS document of these keys. */
export const jwksOf = (...keys) => ({ keys: keys.map((k) => k.jwk) });

/**
 * Signing keys generated with `openssl genpkey` in `dir`: rsa (2048, RS256), ec (P-256, ES256), ec384 (P-384,
 * ES384), rotated (P-256, not in jwks.json: the IdP's next key), rsa1024 (in jwks.json, but too weak: the server
 * must skip it). Writes `dir/jwks.json` with the public keys of all but `rotated`.
 */
export function makeKeys(dir = tempDir()) {
    fs.mkdirSync(dir, { recursive: true });
    const rsaArgs = (bits) => ['-algorithm', 'RSA', '-pkeyopt', `rsa_keygen_bits:${bits}`];
    const ecArgs = (curve) => ['-algorithm', 'EC', '-pkeyopt', `ec_paramgen_curve:${curve}`, '-pkeyopt', 'ec_param_enc:named_curve'];
    const keys = {
        dir,
        rsa: loadKey('rsa', genpkey(path.join(dir, 'rsa.pem'), rsaArgs(2048)), 'RS256'),
        ec: loadKey('ec', genpkey(path.join(dir, 'ec.pem'), ecArgs('P-256')), 'ES256'),
        ec384: loadKey('ec384', genpkey(path.join(dir, 'ec384.pem'), ecArgs('P-384')), 'ES384'),
        rotated: loadKey('rotated', genpkey(path.join(dir, 'rotated.pem'), ecArgs('P-256')), 'ES256'),
        rsa1024: loadKey('rsa1024', genpkey(path.join(dir, 'rsa1024.pem'), rsaArgs(1024)), 'RS256'),
    };
    keys.jwks = jwksOf(keys.rsa, keys.ec, keys.ec384, keys.rsa1024);
    keys.jwksFile = path.join(dir, 'jwks.json');
    fs.writeFileSync(keys.jwksFile, JSON.stringify(keys.jwks, null, 2));
    return keys;
}

const HASH = { RS256: 'sha256', RS384: 'sha384', RS512: 'sha512', ES256: 'sha256', ES384: 'sha384', ES512: 'sha512' };

/** The JWS signature of `input` (header.payload) with `key` under `alg`. */
function signature(key, alg, input) {
    if (/^HS/.test(alg)) throw new Error('use hs256WithPublicKey for HMAC');
    const hash = HASH[alg];
    if (!hash) throw new Error(`unknown alg ${alg}`);
    const k = alg.startsWith('ES') ? { key: key.privateKey, dsaEncoding: 'ieee-p1363' } : key.privateKey;
    return b64url(crypto.sign(hash, Buffer.from(input), k));
}

/**
 * A compact JWS of `claims` signed with `key` (RS256/RS384 for RSA keys, ES256/ES384 for EC keys; default the
 * key's). `kid` overrides the key id in the header (null: none); `header` adds or overrides header fields.
 */
export function mintToken(key, claims, { alg = key.alg, kid = key.kid, header = {} } = {}) {
    const h = { alg, typ: 'JWT', ...(kid === null ? {} : { kid }), ...header };
    const input = `${b64json(h)}.${b64json(claims)}`;
    return `${input}.${signature(key, alg, input)}`;
}

/** Header and claims of a token (no verification). */
export function decodeToken(token) {
    const [h, p] = token.split('.');
    return { header: JSON.parse(Buffer.from(h, 'base64url')), claims: JSON.parse(Buffer.from(p, 'base64url')) };
}

/** `alg: none`: no signature at all ("header.payload."). */
export function noneToken(claims, { kid } = {}) {
    return `${b64json({ alg: 'none', typ: 'JWT', ...(kid ? { kid } : {}) })}.${b64json(claims)}.`;
}

/** The key-confusion attack: HS256 with the RSA/EC public key's PEM text as the HMAC secret, and that key's kid. */
export function hs256WithPublicKey(key, claims) {
    const input = `${b64json({ alg: 'HS256', typ: 'JWT', kid: key.kid })}.${b64json(claims)}`;
    return `${input}.${b64url(crypto.createHmac('sha256', key.publicPem).update(input).digest())}`;
}

/** A validly signed token whose payload was then changed (the signature is the original's). */
export function tamperedToken(token, changes) {
    const [h, p, s] = token.split('.');
    const claims = { ...JSON.parse(Buffer.from(p, 'base64url')), ...changes };
    return `${h}.${b64json(claims)}.${s}`;
}

/** The same token with one signature byte flipped (a character in the middle: the last one holds padding bits). */
export function badSignatureToken(token) {
    const [h, p, s] = token.split('.');
    const sig = Buffer.from(s, 'base64url');
    sig[Math.floor(sig.length / 2)] ^= 0x5a;
    return `${h}.${p}.${b64url(sig)}`;
}

/** Signed with a key the server never saw, under a kid it does not know. */
export function unknownKidToken(key, claims) {
    return mintToken(key, claims, { kid: `unknown-${crypto.randomBytes(6).toString('hex')}` });
}

// ---------------------------------------------------------------------------
// The server

/**
 * `startServer` with authorization on: issuer ISSUER, the keys' jwks.json (unless env sets FHIRSCHED_AUTH_JWKS_URL),
 * audience left at its default (the base URL), no rate limit (per_second 0) unless env sets one. Returns the harness server with `audience` and `keys` added.
 */
export async function startAuthServer({ keys, env = {}, ...rest } = {}) {
    // No rate limit unless the suite sets one: the suites send hundreds of requests per client id in a few seconds.
    const authEnv = { FHIRSCHED_AUTH_ENABLED: 'true', FHIRSCHED_AUTH_ISSUER: ISSUER, FHIRSCHED_RATE_LIMIT_PER_SECOND: '0' };
    if (!env.FHIRSCHED_AUTH_JWKS_URL && keys) authEnv.FHIRSCHED_AUTH_JWKS_FILE = keys.jwksFile;
    const server = await startServer({ env: { ...authEnv, ...env }, ...rest });
    server.audience = env.FHIRSCHED_AUTH_AUDIENCE ?? server.base;
    server.issuer = env.FHIRSCHED_AUTH_ISSUER ?? ISSUER;
    server.keys = keys;
    return server;
}

// ---------------------------------------------------------------------------
// Tokens

const DEFAULT_PATIENT_SCOPE = 'openid fhirUser launch/patient patient/*.read patient/Appointment.write patient/AppointmentResponse.write';

/**
 * The claims of a token for `who`:
 *   - a role name (ROLES, or any other string: an unknown role), e.g. 'receptionist': a user of the clinic,
 *     scope `user/*.*` (system-admin: `system/*.*`);
 *   - { patient: 'id' }: a patient-context token, scope DEFAULT_PATIENT_SCOPE;
 *   - null: no role and no patient (an integration engine: give `scope`).
 * opts: server (for aud), scope, roles (array or string: the role claim as given), locations (array), fhirUser,
 * patient, sub, clientId, exp/iat/nbf (absolute seconds; null omits), ttl (seconds, default 300), iss, aud,
 * extra (more claims), omit (claim names to leave out).
 */
export function claimsFor(who, opts = {}) {
    const t = now();
    const isPatient = who && typeof who === 'object' && who.patient;
    const role = typeof who === 'string' ? who : undefined;
    const claims = {
        iss: opts.iss ?? opts.server?.issuer ?? ISSUER,
        aud: opts.aud ?? opts.server?.audience,
        sub: opts.sub ?? (isPatient ? `patient-user-${who.patient}` : `user-${role ?? 'engine'}-${uniq('s')}`),
        client_id: opts.clientId ?? CLIENT_ID,
        scope: opts.scope ?? (isPatient ? DEFAULT_PATIENT_SCOPE : role === 'system-admin' ? 'system/*.*' : 'openid fhirUser user/*.*'),
        iat: opts.iat === undefined ? t : opts.iat,
        exp: opts.exp === undefined ? t + (opts.ttl ?? 300) : opts.exp,
        jti: crypto.randomUUID(),
    };
    if (opts.nbf !== undefined && opts.nbf !== null) claims.nbf = opts.nbf;
    if (opts.roles !== undefined) claims.fhirsched_role = opts.roles;
    else if (role) claims.fhirsched_role = role;
    if (opts.locations) claims.fhirsched_locations = opts.locations;
    const patient = opts.patient ?? (isPatient ? who.patient : undefined);
    if (patient) claims.patient = patient;
    const fhirUser = opts.fhirUser ?? (isPatient ? `Patient/${who.patient}` : undefined);
    if (fhirUser) claims.fhirUser = fhirUser;
    Object.assign(claims, opts.extra || {});
    for (const k of opts.omit || []) delete claims[k];
    for (const k of Object.keys(claims)) if (claims[k] === undefined || claims[k] === null) delete claims[k];
    return claims;
}

/** A signed token for `who` (see claimsFor); opts.key (default server.keys.rsa), opts.alg, opts.kid, opts.header. */
export function tokenFor(who, opts = {}) {
    const key = opts.key ?? opts.server?.keys?.rsa;
    assert.ok(key, 'tokenFor needs opts.key or opts.server with keys');
    const sign = { alg: opts.alg ?? key.alg, header: opts.header };
    if (opts.kid !== undefined) sign.kid = opts.kid;
    return mintToken(key, claimsFor(who, opts), sign);
}

// ---------------------------------------------------------------------------
// Requests

/**
 * A FHIR client for `server` sending `Authorization: Bearer <token>` (none when token is null/undefined). Every
 * call is the harness' fhir(): JSON responses are schema-checked. Returns { token, req, get, post, put, patch, del }.
 */
export function api(server, token) {
    const auth = token ? { authorization: `Bearer ${token}` } : {};
    const req = (method, p, opts = {}) => fhir(server, method, p, { ...opts, headers: { ...auth, ...(opts.headers || {}) } });
    return {
        token,
        req,
        get: (p, opts) => req('GET', p, opts),
        post: (p, body, opts = {}) => req('POST', p, { ...opts, body }),
        put: (p, body, opts = {}) => req('PUT', p, { ...opts, body }),
        patch: (p, ops, opts = {}) =>
            req('PATCH', p, { ...opts, body: JSON.stringify(ops), headers: { 'content-type': 'application/json-patch+json', ...(opts.headers || {}) } }),
        del: (p, opts) => req('DELETE', p, opts),
        /** POST a resource, assert 201, return it. */
        async create(resource) {
            const res = await req('POST', `/${resource.resourceType}`, { body: resource });
            expectStatus(res, 201);
            return res.json;
        },
        /** PUT a resource at its id, assert 200/201, return it. */
        async upsert(resource) {
            const res = await req('PUT', `/${resource.resourceType}/${resource.id}`, { body: resource });
            expectStatus(res, [200, 201]);
            return res.json;
        },
    };
}

/** Parameters of the WWW-Authenticate Bearer challenge ({ scheme, realm, error, error_description, scope }). */
export function bearerChallenge(res) {
    const h = res.headers.get('www-authenticate');
    if (!h) return null;
    const m = h.match(/^\s*(\S+)\s*(.*)$/);
    // RFC 7235: auth-param = token BWS "=" BWS ( token / quoted-string ), quotes and backslashes escaped inside
    const wellFormed = /^[A-Za-z]+(\s+[A-Za-z_]+=(?:[!#$%&'*+.^_`|~0-9A-Za-z-]+|"(?:[^"\\]|\\.)*")(\s*,\s*[A-Za-z_]+=(?:[!#$%&'*+.^_`|~0-9A-Za-z-]+|"(?:[^"\\]|\\.)*"))*)?\s*$/.test(h);
    const out = { scheme: m[1], raw: h, wellFormed };
    for (const p of m[2].matchAll(/([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g)) out[p[1]] = p[2] ?? p[3];
    return out;
}

/** OperationOutcome codes for a refused token: "security" and its children that fit. */
export const UNAUTHORIZED_CODES = ['security', 'login', 'unknown', 'expired'];

/** 401 with `WWW-Authenticate: Bearer ... error="invalid_token"` and an OperationOutcome; returns it. */
/** 401 with a Bearer challenge: error="invalid_token", or no error code at all when no credentials were sent (RFC 6750 §3.1). */
export function expectUnauthorized(res, why = '', { noCredentials = false } = {}) {
    const oo = expectOutcome(res, 401, UNAUTHORIZED_CODES);
    const ch = bearerChallenge(res);
    assert.ok(ch, `401 without WWW-Authenticate ${why}`);
    assert.equal(ch.scheme.toLowerCase(), 'bearer', `WWW-Authenticate scheme: ${ch.raw}`);
    assert.equal(ch.error, noCredentials ? undefined : 'invalid_token', `WWW-Authenticate error ${why}: ${ch.raw}`);
    assert.ok(ch.wellFormed, `WWW-Authenticate is a well-formed challenge (RFC 7235 quoted-strings) ${why}: ${ch.raw}`);
    return oo;
}

/** 403 with OperationOutcome code `forbidden`; `scope: true` also wants `WWW-Authenticate: Bearer error="insufficient_scope"`. */
export function expectForbidden(res, { scope = false } = {}) {
    const oo = expectOutcome(res, 403, 'forbidden');
    if (scope) {
        const ch = bearerChallenge(res);
        assert.ok(ch, `403 for short scopes without WWW-Authenticate: ${res.method} ${res.url}`);
        assert.equal(ch.scheme.toLowerCase(), 'bearer');
        assert.equal(ch.error, 'insufficient_scope', `WWW-Authenticate: ${ch.raw}`);
        assert.ok(ch.wellFormed, `WWW-Authenticate is a well-formed challenge: ${ch.raw}`);
    }
    return oo;
}

/** Whether a response is a searchset/history Bundle that reveals nothing (no entries but outcomes, total absent or 0). */
export function isEmptyBundle(res) {
    if (res.status !== 200 || res.json?.resourceType !== 'Bundle') return false;
    const real = (res.json.entry || []).filter((e) => e.resource?.resourceType !== 'OperationOutcome' && e.search?.mode !== 'outcome');
    return real.length === 0 && (res.json.total === undefined || res.json.total === 0);
}

/** References (`Type/id`) of the resources in a Bundle, optionally only those whose search.mode is `mode`. */
export function refsOf(bundle, mode) {
    return (bundle?.entry || [])
        .filter((e) => e.resource && e.resource.resourceType !== 'OperationOutcome')
        .filter((e) => !mode || e.search?.mode === mode)
        .map((e) => `${e.resource.resourceType}/${e.resource.id}`);
}

/** Polls `fn` (async, returns a truthy value when done) until it succeeds or `timeoutMs` passes; returns its value. */
export async function pollUntil(fn, { timeoutMs = 3000, intervalMs = 100, what = 'condition' } = {}) {
    const deadline = Date.now() + timeoutMs;
    let last;
    for (;;) {
        last = await fn();
        if (last) return last;
        if (Date.now() > deadline) return last;
        await sleep(intervalMs);
    }
}

/** A request id of our own, sent as X-Request-Id (the server echoes it and records it in the AuditEvent). */
export const requestId = (prefix = 'sec') => `${prefix}-${crypto.randomBytes(6).toString('hex')}`;

/** The request-id detail of an AuditEvent (entity.detail type "request-id"), decoded. */
export function auditRequestId(ev) {
    for (const ent of ev.entity || []) {
        for (const d of ent.detail || []) {
            if (d.type === 'request-id') return d.valueString ?? (d.valueBase64Binary ? Buffer.from(d.valueBase64Binary, 'base64').toString('utf8') : undefined);
        }
    }
    return undefined;
}

/**
 * The AuditEvents found by `query` (a search on AuditEvent, e.g. "outcome=4") whose request-id detail is `rid`,
 * polled for up to timeoutMs (reads and refusals are recorded in batches). `reader` is an api() allowed to search
 * AuditEvents. Returns the list (maybe empty).
 */
export async function auditsFor(reader, rid, { query = '', timeoutMs = 3000, intervalMs = 100 } = {}) {
    let found = [];
    await pollUntil(
        async () => {
            const res = await reader.get(`/AuditEvent?${query}${query ? '&' : ''}_count=500`);
            expectStatus(res, 200);
            found = (res.json.entry || []).map((e) => e.resource).filter((r) => r?.resourceType === 'AuditEvent' && auditRequestId(r) === rid);
            return found.length > 0;
        },
        { timeoutMs, intervalMs },
    );
    return found;
}
