// Concurrency stress for scheduling (issue 4, docs/scheduling.md): two `fhirsched serve` processes on
// one database, 200 clients over keep-alive connections racing $find → $hold → $book, $book of proposals and
// plain POST /Appointment for a few contested times of one practitioner and her room; then concurrent
// reschedules ($book with appointment-resource) and cancellations of the same appointments.
//
// Every answer must be 200/201, 409 or 422 (never 5xx, never a hang). The results are checked over the database
// itself: no two blocking Appointments share an exclusive actor at overlapping times (SQL over resource.body,
// not over the server's own sched_busy), sched_busy agrees with the Appointments and has no overlaps either,
// exactly one client wins each contested time, and an appointment ends at exactly one of the times asked for.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SOURCE_DIR, createTestDatabase, expectStatus, fhir, psql, schemaErrors, sleep, startServer } from '../lib/harness.mjs';

const EXT = 'http://fhirsched.org/fhir/StructureDefinition/';
const HOLD_EXPIRES = `${EXT}hold-expires`;
const LATE_CANCELLATION = `${EXT}late-cancellation`;
const NOOR = 'Practitioner/dr-noor-hendriks';
const ROOM = 'Location/room-north-ultrasound';
const PATIENT = 'Patient/pat-sanne-bakker';
const PATIENT_REST = 'Patient/pat-daan-mulder';
const ULTRASOUND_TYPE = 'http://terminology.hl7.org/CodeSystem/service-type|210';
const HORIZON_END = '2027-12-31'; // demo Schedules' planningHorizon
const CLIENTS = 200;
const REQUEST_TIMEOUT_MS = 30_000;
const MIN = 60_000;

// ---------------------------------------------------------------------------
// Dates: the first Tuesday at least 3 days ahead (Amsterdam), and the Thursday after it. Dr. Hendriks works
// Tue and Thu 09:00-17:00 Europe/Amsterdam.

const TZ = 'Europe/Amsterdam';
const offsetFormat = new Intl.DateTimeFormat('en-US', { timeZone: TZ, timeZoneName: 'longOffset' });
const ymdFormat = new Intl.DateTimeFormat('en-CA', { timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit' });

function tzOffsetMs(ms) {
    const name = offsetFormat.formatToParts(new Date(ms)).find((p) => p.type === 'timeZoneName').value;
    const m = name.match(/^GMT(?:([+-])(\d{2}):(\d{2}))?$/);
    assert.ok(m, `unexpected offset name ${name}`);
    return m[1] ? (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) * MIN : 0;
}

/** Epoch ms of a wall-clock time in Amsterdam: `ymd` "YYYY-MM-DD", `hhmm` "HH:MM". */
function amsterdam(ymd, hhmm) {
    const [y, mo, d] = ymd.split('-').map(Number);
    const [h, mi] = hhmm.split(':').map(Number);
    const wall = Date.UTC(y, mo - 1, d, h, mi);
    return wall - tzOffsetMs(wall - tzOffsetMs(wall));
}

function addDays(ymd, n) {
    const [y, m, d] = ymd.split('-').map(Number);
    return new Date(Date.UTC(y, m - 1, d + n)).toISOString().slice(0, 10);
}

const weekday = (ymd) => new Date(`${ymd}T00:00:00Z`).getUTCDay();
const iso = (ms) => new Date(ms).toISOString().replace('.000Z', 'Z');
const hm = (ms) => new Intl.DateTimeFormat('en-GB', { timeZone: TZ, hour: '2-digit', minute: '2-digit' }).format(new Date(ms));
const span = (s, e) => `${hm(s)}-${hm(e)}`;

let TUESDAY = addDays(ymdFormat.format(new Date()), 3);
while (weekday(TUESDAY) !== 2) TUESDAY = addDays(TUESDAY, 1);
const THURSDAY = addDays(TUESDAY, 2);
const SKIP = THURSDAY > HORIZON_END ? `the demo planning horizon ends ${HORIZON_END}; ${THURSDAY} is past it` : false;
const tue = (hhmm) => amsterdam(TUESDAY, hhmm);
const thu = (hhmm) => amsterdam(THURSDAY, hhmm);

// ---------------------------------------------------------------------------
// HTTP over keep-alive agents (one per server), recording every exchange.

/** Exchanges that broke the rules (bad status, invalid FHIR, timeout, unexpected shape), as readable text. */
let problems = [];
/** Every exchange of the current test, for the latency summary. */
let exchanges = [];
const clip = (s, n = 1500) => (s && s.length > n ? `${s.slice(0, n)}…` : s || '');

function describeExchange(x) {
    const sent = x.sent === undefined ? '' : ` ${clip(JSON.stringify(x.sent), 1200)}`;
    const got = x.error ? `failed: ${x.error}` : `HTTP ${x.status} ${clip(x.text)}`;
    const id = x.headers?.['x-request-id'] ? `, x-request-id ${x.headers['x-request-id']}` : '';
    return `${x.method} ${x.url}${sent}\n    -> ${got} (${x.ms} ms${id})`;
}

function problem(x, why) {
    problems.push(`${why}: ${x ? describeExchange(x) : ''}`);
}

function makeClient(server, maxSockets) {
    const agent = new http.Agent({ keepAlive: true, maxSockets });
    const base = new URL(server.base);
    return {
        server,
        agent,
        request(method, p, body) {
            const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
            const headers = { accept: 'application/fhir+json' };
            if (payload) {
                headers['content-type'] = 'application/fhir+json';
                headers['content-length'] = payload.length;
            }
            const url = `${server.base}${p}`;
            const started = Date.now();
            return new Promise((resolve) => {
                const x = { method, url, sent: body, status: 0, headers: {}, text: '', json: undefined, ms: 0 };
                const done = (error) => {
                    clearTimeout(timer);
                    x.ms = Date.now() - started;
                    exchanges.push(x);
                    if (error) x.error = error;
                    resolve(x);
                };
                const req = http.request(
                    { host: base.hostname, port: base.port, path: base.pathname + p, method, headers, agent },
                    (res) => {
                        const chunks = [];
                        res.on('data', (c) => chunks.push(c));
                        res.on('error', (e) => done(e.message));
                        res.on('end', () => {
                            x.status = res.statusCode;
                            x.headers = res.headers;
                            x.text = Buffer.concat(chunks).toString('utf8');
                            if (x.text && /^application\/(fhir\+)?json\s*(;|$)/i.test(res.headers['content-type'] || '')) {
                                try {
                                    x.json = JSON.parse(x.text);
                                    const errs = schemaErrors(x.json);
                                    if (errs.length) x.schemaErrors = errs;
                                } catch (e) {
                                    x.schemaErrors = [`not JSON: ${e.message}`];
                                }
                            }
                            done();
                        });
                    },
                );
                const timer = setTimeout(() => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)), REQUEST_TIMEOUT_MS);
                req.on('error', (e) => done(e.message));
                req.end(payload);
            });
        },
        close() {
            agent.destroy();
        },
    };
}

/**
 * Checks what every answer must satisfy: a status from `allowed`, valid FHIR, an OperationOutcome with an error
 * issue when 4xx. Returns true when the exchange is usable.
 */
function check(x, allowed) {
    if (x.error) {
        problem(x, 'no answer');
        return false;
    }
    if (x.schemaErrors) {
        problem(x, `invalid FHIR R4 (${x.schemaErrors.slice(0, 5).join('; ')})`);
        return false;
    }
    if (!allowed.includes(x.status)) {
        problem(x, `HTTP ${x.status}, expected ${allowed.join('/')}`);
        return false;
    }
    if (x.status >= 400) {
        const oo = x.json;
        if (oo?.resourceType !== 'OperationOutcome' || !['error', 'fatal'].includes(oo.issue?.[0]?.severity)) {
            problem(x, 'a refusal without an error OperationOutcome');
            return false;
        }
    }
    return true;
}

const issueCode = (x) => x.json?.issue?.[0]?.code;

/** The Appointment of a $find/$hold/$book answer (a searchset Bundle) or of a REST answer. */
function appointmentOf(x) {
    if (x.json?.resourceType === 'Appointment') return x.json;
    if (x.json?.resourceType !== 'Bundle') return undefined;
    const found = (x.json.entry || []).filter((e) => e.resource?.resourceType === 'Appointment');
    return found.length === 1 ? found[0].resource : undefined;
}

// ---------------------------------------------------------------------------
// Request bodies

const parameters = (...parameter) => ({ resourceType: 'Parameters', parameter });
const ref = (name, reference) => ({ name, valueReference: { reference } });

function restAppointment(start, end, extra = {}) {
    return {
        resourceType: 'Appointment',
        status: 'booked',
        description: 'sched-race',
        start: iso(start),
        end: iso(end),
        participant: [
            { actor: { reference: PATIENT_REST }, status: 'accepted' },
            { actor: { reference: NOOR }, required: 'required', status: 'accepted' },
            { actor: { reference: ROOM }, required: 'required', status: 'accepted' },
        ],
        ...extra,
    };
}

/** $find over [from, to) for Dr. Hendriks; GET or POST; returns { x, proposals }. */
async function find(c, from, to, { post = false } = {}) {
    let x;
    if (post) {
        x = await c.request(
            'POST',
            '/Appointment/$find',
            parameters(
                { name: 'start', valueDateTime: iso(from) },
                { name: 'end', valueDateTime: iso(to) },
                ref('practitioner', NOOR),
                { name: 'visit-type', valueString: ULTRASOUND_TYPE },
                ref('patient-reference', PATIENT),
            ),
        );
    } else {
        const q = new URLSearchParams({
            start: iso(from),
            end: iso(to),
            practitioner: NOOR,
            'patient-reference': PATIENT,
            _count: '10',
        });
        x = await c.request('GET', `/Appointment/$find?${q}`);
    }
    if (!check(x, [200])) return { x, proposals: [] };
    const b = x.json;
    if (b.resourceType !== 'Bundle' || b.type !== 'searchset' || !Number.isInteger(b.total)) {
        problem(x, '$find did not answer a searchset Bundle with total');
        return { x, proposals: [] };
    }
    const proposals = [];
    for (const e of b.entry || []) {
        const r = e.resource;
        if (e.search?.mode === 'outcome' && r?.resourceType === 'OperationOutcome') continue;
        if (e.search?.mode !== 'match' || r?.resourceType !== 'Appointment') {
            problem(x, '$find entry is neither a match Appointment nor an outcome');
            continue;
        }
        const actors = (r.participant || []).map((p) => p.actor?.reference);
        if (!/^prop-[0-9a-f]{32}-\d+$/.test(r.id || '') || r.status !== 'proposed' || !actors.includes(NOOR) || !actors.includes(ROOM)) {
            problem(x, `proposal ${r.id} is not a proposed Appointment of ${NOOR} in ${ROOM}`);
            continue;
        }
        proposals.push({ id: r.id, start: Date.parse(r.start), end: Date.parse(r.end) });
    }
    return { x, proposals };
}

const book = (c, ...p) => c.request('POST', '/Appointment/$book', parameters(...p));
const hold = (c, id) => c.request('POST', '/Appointment/$hold', parameters(ref('appointment-reference', `Appointment/${id}`)));

// ---------------------------------------------------------------------------
// The database, read directly

let db;
const servers = [];
let clients = [];
const PG_PORT = () => process.env.FHIRSCHED_TEST_PG_PORT;

async function sqlJson(sql) {
    const out = (await psql(PG_PORT(), sql, { db: db.name })).trim();
    return JSON.parse(out || 'null');
}

// Blocking Appointments and their exclusive actors, from the stored resources alone (contract: "Who blocks what").
// Overlap is tested on [start, end): with buffers the blocked time is only wider, so any overlap found here is a
// double booking whatever the buffers.
const BLOCKING = `
WITH appt AS (
    SELECT r.id, r.body::jsonb AS b FROM resource r WHERE r.res_type = 'Appointment' AND NOT r.deleted
), blocking AS (
    SELECT a.id, a.b, tstzrange((a.b->>'start')::timestamptz, (a.b->>'end')::timestamptz, '[)') AS during
      FROM appt a
     WHERE a.b->>'status' IN ('pending', 'booked', 'arrived', 'checked-in', 'fulfilled')
       AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(coalesce(a.b->'extension', '[]'::jsonb)) e
                        WHERE e->>'url' = '${HOLD_EXPIRES}' AND (e->>'valueInstant')::timestamptz <= now())
), refs AS (
    SELECT bl.id, bl.during, p->'actor'->>'reference' AS ref
      FROM blocking bl CROSS JOIN LATERAL jsonb_array_elements(coalesce(bl.b->'participant', '[]'::jsonb)) p
     WHERE coalesce(p->>'status', '') <> 'declined'
), rooms AS (
    SELECT 'Location/' || l.id AS ref
      FROM resource l CROSS JOIN LATERAL jsonb_array_elements(coalesce(l.body::jsonb->'physicalType'->'coding', '[]'::jsonb)) c
     WHERE l.res_type = 'Location' AND NOT l.deleted AND c->>'code' IN ('ro', 'bd')
), actors AS (
    SELECT id, during, ref AS actor FROM refs
     WHERE ref LIKE 'Practitioner/%' OR ref LIKE 'PractitionerRole/%' OR ref LIKE 'Device/%' OR ref IN (SELECT ref FROM rooms)
    UNION
    SELECT rf.id, rf.during, pr.body::jsonb->'practitioner'->>'reference'
      FROM refs rf JOIN resource pr ON pr.res_type = 'PractitionerRole' AND NOT pr.deleted AND rf.ref = 'PractitionerRole/' || pr.id
    UNION
    SELECT bl.id, bl.during, s->>'reference'
      FROM blocking bl CROSS JOIN LATERAL jsonb_array_elements(coalesce(bl.b->'slot', '[]'::jsonb)) s
)`;

/** Fails on any double booking in the stored Appointments, and on sched_busy overlapping or disagreeing with them. */
async function checkInvariants() {
    const overlaps = await sqlJson(`${BLOCKING}
        SELECT coalesce(json_agg(json_build_object('actor', x.actor, 'a', x.id, 'a_during', x.during::text,
                                                   'b', y.id, 'b_during', y.during::text)), '[]')
          FROM actors x JOIN actors y ON x.actor = y.actor AND x.id < y.id AND x.during && y.during`);
    assert.deepEqual(overlaps, [], `blocking Appointments share an actor at overlapping times:\n${JSON.stringify(overlaps, null, 1)}`);

    const busyOverlaps = await sqlJson(`
        SELECT coalesce(json_agg(json_build_object('actor', a.actor, 'a', a.appointment_id, 'a_during', a.during::text,
                                                   'b', b.appointment_id, 'b_during', b.during::text)), '[]')
          FROM sched_busy a JOIN sched_busy b ON a.actor = b.actor AND a.ctid < b.ctid AND a.during && b.during`);
    assert.deepEqual(busyOverlaps, [], `sched_busy has overlapping rows for one actor:\n${JSON.stringify(busyOverlaps, null, 1)}`);

    // Every exclusive actor of a blocking Appointment is busy in sched_busy over (at least) its time ...
    const missing = await sqlJson(`${BLOCKING}
        SELECT coalesce(json_agg(json_build_object('actor', x.actor, 'appointment', x.id, 'during', x.during::text)), '[]')
          FROM actors x
         WHERE NOT EXISTS (SELECT 1 FROM sched_busy s
                            WHERE s.actor = x.actor AND s.appointment_id IN (x.id, 'Appointment/' || x.id)
                              AND s.during @> x.during)`);
    assert.deepEqual(missing, [], `blocking Appointments missing from sched_busy:\n${JSON.stringify(missing, null, 1)}`);
    // ... and no live sched_busy row belongs to anything else (another time, a cancelled or moved Appointment) ...
    const stale = await sqlJson(`${BLOCKING}
        SELECT coalesce(json_agg(json_build_object('actor', s.actor, 'appointment', s.appointment_id, 'during', s.during::text,
                                                   'expires_at', h.expires_at)), '[]')
          FROM sched_busy s LEFT JOIN sched_hold h ON h.appointment_id = s.appointment_id
         WHERE (h.expires_at IS NULL OR h.expires_at > now())
           AND NOT EXISTS (SELECT 1 FROM actors x
                            WHERE x.actor = s.actor AND s.appointment_id IN (x.id, 'Appointment/' || x.id) AND s.during @> x.during)`);
    assert.deepEqual(stale, [], `sched_busy rows without a blocking Appointment at that time behind them:\n${JSON.stringify(stale, null, 1)}`);
    // ... and one row per actor and Appointment.
    const doubled = await sqlJson(`
        SELECT coalesce(json_agg(json_build_object('actor', actor, 'appointment', appointment_id, 'rows', n)), '[]')
          FROM (SELECT actor, appointment_id, count(*) AS n FROM sched_busy GROUP BY 1, 2 HAVING count(*) > 1) d`);
    assert.deepEqual(doubled, [], `sched_busy holds an actor of one Appointment more than once:\n${JSON.stringify(doubled, null, 1)}`);
}

/** Every live Appointment as stored: [{ id, version, status, start, end, actors, body }]. */
async function storedAppointments() {
    const rows = await sqlJson(`
        SELECT coalesce(json_agg(json_build_object('id', id, 'version', version_id, 'body', body::jsonb)), '[]')
          FROM resource WHERE res_type = 'Appointment' AND NOT deleted`);
    return rows.map((r) => ({
        id: r.id,
        version: r.version,
        status: r.body.status,
        start: Date.parse(r.body.start),
        end: Date.parse(r.body.end),
        actors: (r.body.participant || []).map((p) => p.actor?.reference),
        body: r.body,
    }));
}

async function storedAppointment(id) {
    return (await storedAppointments()).find((a) => a.id === id);
}

/** Every version of an Appointment from resource_history: [{ version, status, start, end }]. */
async function history(id) {
    const rows = await sqlJson(`
        SELECT coalesce(json_agg(json_build_object('version', version_id, 'body', body::jsonb) ORDER BY version_id), '[]')
          FROM resource_history WHERE res_type = 'Appointment' AND id = '${id.replace(/'/g, "''")}'`);
    return rows.map((r) => ({
        version: r.version,
        status: r.body?.status,
        start: r.body ? Date.parse(r.body.start) : NaN,
        end: r.body ? Date.parse(r.body.end) : NaN,
    }));
}

async function busyRows(id) {
    return sqlJson(`
        SELECT coalesce(json_agg(json_build_object('actor', actor, 'during', during::text)), '[]')
          FROM sched_busy WHERE appointment_id IN ('${id}', 'Appointment/${id}')`);
}

const isBlocking = (a) =>
    ['pending', 'booked', 'arrived', 'checked-in', 'fulfilled'].includes(a.status) &&
    !(a.body.extension || []).some((e) => e.url === HOLD_EXPIRES && Date.parse(e.valueInstant) <= Date.now());

// ---------------------------------------------------------------------------

/** "POST $book: 60 × 12/40/95 ms (median/p95/max)" per kind of request. */
function latencies() {
    const groups = new Map();
    for (const x of exchanges) {
        const kind = `${x.method} ${new URL(x.url).pathname.replace(/^\/fhir\//, '').replace(/\/[0-9a-f-]{36}$/, '/{id}')}`;
        if (!groups.has(kind)) groups.set(kind, []);
        groups.get(kind).push(x.ms);
    }
    return [...groups]
        .map(([kind, ms]) => {
            ms.sort((a, b) => a - b);
            const q = (f) => ms[Math.min(ms.length - 1, Math.floor(f * ms.length))];
            return `${kind}: ${ms.length} × ${q(0.5)}/${q(0.95)}/${ms[ms.length - 1]} ms`;
        })
        .join('; ');
}

/** Each server's state and its last warnings and errors (the access log would drown them). */
function serverReport() {
    return servers
        .map((s) => {
            const lines = s.logs().split('\n').filter((l) => /"level":"(warn|error|fatal)"|Sanitizer|Assertion|runtime error/.test(l));
            const state = s.alive() ? 'running' : `exited (code ${s.proc.exitCode}, signal ${s.proc.signalCode})`;
            return `fhirsched on ${s.root}: ${state}; last warnings/errors:\n${lines.slice(-15).map((l) => clip(l, 1500)).join('\n') || '(none)'}`;
        })
        .join('\n');
}

function assertNoProblems(what) {
    const logs = serverReport();
    assert.equal(
        problems.length,
        0,
        `${what}: ${problems.length} bad answers (first 8):\n${problems.slice(0, 8).join('\n')}\n\nserver logs:\n${logs}`,
    );
    for (const s of servers) assert.ok(s.alive(), `a server died:\n${s.describe()}`);
}

const jitter = (ms) => sleep(Math.floor(Math.random() * ms));

/**
 * A start line for `n` clients: each client's arrive() counts it once and resolves when all have arrived, so that
 * the writes of every client go out together, after the $find calls that prepared them.
 */
function startLine(n) {
    let count = 0;
    let open;
    const all = new Promise((resolve) => {
        open = resolve;
    });
    return () => {
        let counted = false;
        return async () => {
            if (!counted) {
                counted = true;
                if (++count === n) open();
            }
            await all;
            await jitter(100);
        };
    };
}

/** Creates an Appointment with plain REST through the harness and returns it. */
async function restCreate(start, end, extra) {
    const res = await fhir(servers[0], 'POST', '/Appointment', { body: restAppointment(start, end, extra) });
    expectStatus(res, 201);
    return res.json;
}

describe('scheduling under concurrency: two servers, one database', { skip: SKIP }, () => {
    before(async () => {
        db = await createTestDatabase();
        try {
            // Two processes on the same database: they share nothing but PostgreSQL.
            servers.push(await startServer({ databaseUrl: db.url }));
            servers.push(await startServer({ databaseUrl: db.url }));
        } catch (e) {
            for (const s of servers) await s.stop().catch(() => {});
            await db.drop().catch(() => {});
            throw e;
        }
        clients = servers.map((s) => makeClient(s, CLIENTS / 2));
        const bundle = JSON.parse(fs.readFileSync(path.join(SOURCE_DIR, 'demo', 'clinic-bundle.json'), 'utf8'));
        const res = await fhir(servers[0], 'POST', '', { body: bundle });
        expectStatus(res, 200);
        expectStatus(await fhir(servers[1], 'GET', `/${NOOR}`), 200);
    });

    after(async () => {
        for (const c of clients) c.close();
        const errors = [];
        for (const s of servers) {
            try {
                await s.stop();
            } catch (e) {
                errors.push(e);
            }
        }
        await db?.drop().catch(() => {});
        if (errors.length) throw errors[0];
    });

    test(`${CLIENTS} clients race for four times of one practitioner and room on ${TUESDAY}`, async (t) => {
        problems = [];
        exchanges = [];
        // Each window is a cluster of times that all contain its core instant, so any two of them overlap and at
        // most one can be booked; $find is asked for [core - 15 min, core + 15 min].
        // Writes leave the start line together, but in three windows some kinds get a handicap (ms) so that each kind
        // of client gets to win somewhere: a plain POST is several times faster than $hold/$book.
        const handicaps = [{}, { rest: 700, resource: 700 }, { rest: 700, resource: 700, book: 400 }, { rest: 700, hold: 700, book: 700 }];
        const windows = ['10:15', '11:45', '13:45', '15:15'].map((core, n) => {
            const c = tue(core);
            return {
                n,
                handicap: handicaps[n],
                core: c,
                from: c - 15 * MIN,
                to: c + 15 * MIN,
                lo: c - 30 * MIN,
                hi: c + 30 * MIN,
                // plain REST: aligned or not, all over the core instant
                restTimes: [
                    [c - 15 * MIN, c + 15 * MIN],
                    [c - 25 * MIN, c + 5 * MIN],
                    [c - 5 * MIN, c + 25 * MIN],
                    [c - 1 * MIN, c + 1 * MIN],
                    [c - 20 * MIN, c + 10 * MIN],
                ],
                // $book with a new appointment-resource (rules apply: keep them aligned to 15 minutes)
                resourceTimes: [
                    [c - 15 * MIN, c + 15 * MIN],
                    [c, c + 30 * MIN],
                ],
                claims: [], // successful $hold / $book / POST that took the time: { kind, id, x }
                stats: {},
            };
        });
        const overCore = (w, p) => p.start <= w.core && w.core < p.end;
        const pick = (w, proposals) => {
            const ok = proposals.filter((p) => overCore(w, p));
            return ok.length ? ok[Math.floor(Math.random() * ok.length)] : undefined;
        };
        const count = (w, key) => {
            w.stats[key] = (w.stats[key] || 0) + 1;
        };

        // Proposals several clients will fight over: two for $book, one for $hold (kept apart, since $book of a
        // pending hold is allowed and would make a hold and a booking of the same Appointment both succeed).
        for (const w of windows) {
            w.shared = [];
            for (let i = 0; i < 3; i++) {
                const { x, proposals } = await find(clients[i % 2], w.from, w.to, { post: i === 1 });
                assertNoProblems(`$find before the race (window ${span(w.from, w.to)})`);
                const p = pick(w, proposals);
                assert.ok(p, `$find offered nothing over ${hm(w.core)} on ${TUESDAY} although it is free: ${describeExchange(x)}`);
                w.shared.push(p.id);
            }
        }

        const claim = (w, kind, id, x) => w.claims.push({ kind, id, x });
        const bookedOk = (x, id) => {
            const a = appointmentOf(x);
            if (!a || a.status !== 'booked' || (id && a.id !== id)) {
                problem(x, `$book answered 200 without the booked Appointment${id ? ` ${id}` : ''}`);
                return undefined;
            }
            return a;
        };

        const flows = {
            // $find → (start line) → $hold → $book of one's own proposal
            async findHoldBook(c, w, i, go) {
                const { proposals } = await find(c, w.from, w.to, { post: i % 2 === 1 });
                const p = pick(w, proposals);
                await go();
                if (!p) return count(w, 'find: nothing offered');
                const h = await hold(c, p.id);
                if (!check(h, [200, 409, 422])) return;
                if (h.status !== 200) return count(w, `hold ${h.status} ${issueCode(h)}`);
                const a = appointmentOf(h);
                if (!a || a.id !== p.id || a.status !== 'pending' || !(a.extension || []).some((e) => e.url === HOLD_EXPIRES)) {
                    problem(h, `$hold answered 200 without the pending Appointment ${p.id} with hold-expires`);
                }
                if (!h.headers.expires) problem(h, '$hold answered 200 without an Expires header');
                claim(w, 'hold', p.id, h);
                await jitter(50);
                const b = await book(c, ref('appointment-reference', `Appointment/${p.id}`));
                if (!check(b, [200])) return problem(b, `$book of one's own fresh hold ${p.id} did not succeed`);
                bookedOk(b, p.id);
                count(w, 'hold+book 200');
            },
            // $find → $book of the proposal, no hold; half of them $find after the start line, among the writes
            async findBook(c, w, i, go) {
                if (i % 2 === 0) await go();
                const { proposals } = await find(c, w.from, w.to, { post: Math.random() < 0.5 });
                const p = pick(w, proposals);
                await go();
                if (!p) return count(w, `find${i % 2 === 0 ? ' (late)' : ''}: nothing offered`);
                const b = await book(c, ref('appointment-reference', `Appointment/${p.id}`));
                if (!check(b, [200, 409, 422])) return;
                count(w, `find+book ${b.status}`);
                if (b.status === 200 && bookedOk(b, p.id)) claim(w, 'find+book', p.id, b);
            },
            // $book of a proposal other clients book too
            async bookShared(c, w, i, go) {
                const id = w.shared[i % 2];
                await go();
                const b = await book(c, ref('appointment-reference', `Appointment/${id}`));
                if (!check(b, [200, 409, 422])) return;
                count(w, `shared book ${b.status}`);
                if (b.status === 200 && bookedOk(b, id)) claim(w, 'shared book', id, b);
            },
            // $hold of a proposal other clients hold too, then $book of the hold
            async holdShared(c, w, i, go) {
                const id = w.shared[2];
                await go();
                const h = await hold(c, id);
                if (!check(h, [200, 409, 422])) return;
                count(w, `shared hold ${h.status}`);
                if (h.status !== 200) return;
                claim(w, 'shared hold', id, h);
                const b = await book(c, ref('appointment-reference', `Appointment/${id}`));
                if (!check(b, [200])) return problem(b, `$book of one's own fresh hold ${id} did not succeed`);
                bookedOk(b, id);
            },
            // plain REST create of a booked Appointment (no rules, only the overlap check)
            async restPost(c, w, i, go) {
                const [s, e] = w.restTimes[i % w.restTimes.length];
                await go();
                const x = await c.request('POST', '/Appointment', restAppointment(s, e));
                if (!check(x, [201, 409, 422])) return;
                count(w, `POST ${x.status}`);
                if (x.status === 201) {
                    if (x.json?.resourceType !== 'Appointment' || Date.parse(x.json.start) !== s || Date.parse(x.json.end) !== e) {
                        problem(x, 'POST answered 201 without the Appointment as sent');
                    }
                    claim(w, 'POST', x.json?.id, x);
                }
            },
            // $book of a new appointment-resource
            async bookResource(c, w, i, go) {
                const [s, e] = w.resourceTimes[i % w.resourceTimes.length];
                await go();
                const b = await book(c, { name: 'appointment-resource', resource: restAppointment(s, e) });
                if (!check(b, [200, 409, 422])) return;
                count(w, `resource book ${b.status}`);
                if (b.status === 200) {
                    const a = bookedOk(b);
                    if (a && (Date.parse(a.start) !== s || Date.parse(a.end) !== e)) problem(b, '$book moved a new appointment-resource');
                    if (a) claim(w, 'resource book', a.id, b);
                }
            },
        };
        // 50 clients per window: 12 find/hold/book, 10 find/book, 10 book shared, 5 hold shared, 10 POST, 3 resource.
        const plan = [
            ...Array(12).fill('findHoldBook'),
            ...Array(10).fill('findBook'),
            ...Array(10).fill('bookShared'),
            ...Array(5).fill('holdShared'),
            ...Array(10).fill('restPost'),
            ...Array(3).fill('bookResource'),
        ];
        assert.equal(plan.length * windows.length, CLIENTS);
        const kindOf = { findHoldBook: 'hold', holdShared: 'hold', findBook: 'book', bookShared: 'book', restPost: 'rest', bookResource: 'resource' };

        const n = (w) => span(w.lo, w.hi);
        const started = Date.now();
        const runs = [];
        const line = startLine(CLIENTS);
        let k = 0;
        for (const w of windows) {
            plan.forEach((flow, i) => {
                const c = clients[k++ % 2];
                const arrive = line();
                let ready;
                const go = () => (ready ??= arrive().then(() => sleep(w.handicap[kindOf[flow]] ?? 0)));
                runs.push(
                    flows[flow](c, w, i, go)
                        .catch((e) => problems.push(`client ${flow} in window ${n(w)} threw: ${e.stack}`))
                        .finally(arrive), // a client that gave up early still counts at the start line
                );
            });
        }
        await Promise.all(runs);
        const raceMs = Date.now() - started;
        for (const w of windows) t.diagnostic(`window ${hm(w.core)}: ${JSON.stringify(w.stats)}; winners ${w.claims.map((c) => `${c.kind} ${c.id}`).join(', ')}`);
        t.diagnostic(`race took ${raceMs} ms; latency (median/p95/max): ${latencies()}`);
        assertNoProblems('the race');

        // Exactly one successful claim per window, and it is the one Appointment stored there.
        const stored = await storedAppointments();
        for (const w of windows) {
            const where = `window ${n(w)} on ${TUESDAY}`;
            assert.equal(
                w.claims.length,
                1,
                `${where}: ${w.claims.length} clients were told they got the time:\n${w.claims.map((c) => `${c.kind}: ${describeExchange(c.x)}`).join('\n')}`,
            );
            const there = stored.filter((a) => isBlocking(a) && a.start < w.hi && w.lo < a.end && (a.actors.includes(NOOR) || a.actors.includes(ROOM)));
            assert.deepEqual(
                there.map((a) => a.id),
                [w.claims[0].id],
                `${where}: stored blocking Appointments ${JSON.stringify(there.map((a) => [a.id, a.status, span(a.start, a.end)]))}`,
            );
            assert.equal(there[0].status, 'booked', `${where}: the winner ${there[0].id} is ${there[0].status}`);
        }
        // Holds that lost left nothing behind (nothing is stored on refusal).
        const leftovers = stored.filter((a) => a.status === 'pending');
        assert.deepEqual(leftovers.map((a) => a.id), [], 'pending Appointments left over after the race');
        await checkInvariants();
    });

    // Writers of one time queue for it (migration 0013): each loser meets the winner's committed row and gets the
    // clean conflict. Before, two writers that inserted their busy rows at once each waited for the other: a deadlock
    // that PostgreSQL found only after deadlock_timeout (a second), answered as "a concurrent change conflicted".
    test('simultaneous writers of one time: one wins, every other loses cleanly, none deadlocks', async (t) => {
        const ROUNDS = 20;
        const WRITERS = 24;
        let lost = 0;
        for (let round = 0; round < ROUNDS; round++) {
            const start = Date.UTC(2031, 2, 3, 8) + round * 60 * MIN; // days no other test writes on
            const answers = await Promise.all(
                Array.from({ length: WRITERS }, (_, i) => clients[i % 2].request('POST', '/Appointment', restAppointment(start, start + 30 * MIN))),
            );
            const where = `round ${round} (${iso(start)})`;
            assert.deepEqual(answers.filter((x) => x.status !== 201 && x.status !== 409).map(describeExchange), [], `${where}: answers other than 201 and 409`);
            assert.equal(answers.filter((x) => x.status === 201).length, 1, `${where}: exactly one writer wins`);
            const unclean = answers.filter((x) => x.status === 409 && !x.text.includes('that time was just taken'));
            assert.deepEqual(unclean.map(describeExchange), [], `${where}: conflicts that were not the clean "taken" (a deadlock reads "a concurrent change conflicted")`);
            lost += WRITERS - 1;
        }
        t.diagnostic(`${ROUNDS} rounds, ${lost} clean conflicts`);
        await checkInvariants();
    });

    test(`concurrent reschedules of one appointment on ${THURSDAY}, some onto taken times`, async (t) => {
        problems = [];
        exchanges = [];
        const A = await restCreate(thu('10:00'), thu('10:30'));
        const B = await restCreate(thu('14:00'), thu('14:30'));
        // A hold at 15:00 (pending, with hold-expires): taken as well.
        const { proposals } = await find(clients[0], thu('15:00'), thu('15:30'));
        assertNoProblems('$find for the hold');
        const hp = proposals.find((p) => p.start === thu('15:00'));
        assert.ok(hp, `no proposal at 15:00 on ${THURSDAY}`);
        const h = await hold(clients[1], hp.id);
        assert.ok(check(h, [200]), `hold at 15:00: ${describeExchange(h)}`);

        const targets = [
            ['11:00', '11:30', 3, 'free'],
            ['11:30', '12:00', 2, 'free'],
            ['12:00', '12:30', 2, 'free'],
            ['12:15', '12:45', 2, 'free'], // overlaps the 12:00 target: A may be moving over its own time
            ['10:15', '10:45', 2, 'free'], // overlaps A's original time
            ['14:00', '14:30', 3, 'taken'], // B
            ['14:15', '14:45', 2, 'taken'], // overlaps B
            ['15:00', '15:30', 2, 'taken'], // the hold
            ['14:45', '15:15', 1, 'taken'], // overlaps the hold
        ];
        const plan = targets.flatMap(([s, e, times, kind]) => Array(times).fill({ start: thu(s), end: thu(e), kind }));
        const moved = (s, e) => {
            const r = structuredClone(A);
            delete r.meta;
            r.start = iso(s);
            r.end = iso(e);
            return r;
        };
        const results = await Promise.all(
            plan.map(async (target, i) => {
                await jitter(100);
                const x = await book(clients[i % 2], { name: 'appointment-resource', resource: moved(target.start, target.end) });
                return { target, x };
            }),
        );
        const wins = [];
        for (const { target, x } of results) {
            if (!check(x, [200, 409, 422])) continue;
            if (target.kind === 'taken' && x.status !== 409) problem(x, `a reschedule onto a taken time (${span(target.start, target.end)}) was not refused with 409`);
            if (x.status === 409 && issueCode(x) !== 'conflict') problem(x, '409 without issue code conflict');
            if (x.status !== 200) continue;
            const a = appointmentOf(x);
            if (!a || a.id !== A.id || a.status !== 'booked' || Date.parse(a.start) !== target.start || Date.parse(a.end) !== target.end) {
                problem(x, `$book answered 200 but not with ${A.id} booked at ${span(target.start, target.end)}`);
                continue;
            }
            wins.push({ target, version: Number(a.meta?.versionId), x });
        }
        t.diagnostic(`reschedules: ${results.map((r) => `${span(r.target.start, r.target.end)}→${r.x.status}`).join(' ')}`);
        assertNoProblems('concurrent reschedules');
        assert.ok(wins.length >= 1, 'no reschedule to a free time succeeded');
        await checkFinal(A.id, wins, 'booked');

        // A lost reschedule changed nothing: every stored version of A is at its original time or a time that was
        // answered 200, and B and the hold never moved.
        const allowed = new Set([`${thu('10:00')}/${thu('10:30')}`, ...wins.map((w) => `${w.target.start}/${w.target.end}`)]);
        for (const v of await history(A.id)) {
            assert.ok(allowed.has(`${v.start}/${v.end}`), `${A.id} version ${v.version} is at ${span(v.start, v.end)}, which no reschedule won`);
        }
        const b = await storedAppointment(B.id);
        assert.deepEqual([b.version, b.status, b.start, b.end], [1, 'booked', thu('14:00'), thu('14:30')], `${B.id} changed`);
        const held = await storedAppointment(hp.id);
        assert.deepEqual([held.status, held.start, held.end], ['pending', thu('15:00'), thu('15:30')], `the hold ${hp.id} changed`);
        await checkInvariants();
    });

    test(`concurrent cancellations of one appointment on ${THURSDAY}`, async (t) => {
        problems = [];
        exchanges = [];
        const C = await restCreate(thu('16:00'), thu('16:30'));
        const cancelled = () => {
            const r = structuredClone(C);
            delete r.meta;
            r.status = 'cancelled';
            return r;
        };
        const results = await Promise.all(
            Array.from({ length: 12 }, async (_, i) => {
                await jitter(50);
                const c = clients[i % 2];
                if (i % 4 === 3) return c.request('PUT', `/Appointment/${C.id}`, cancelled()); // plain REST as well
                return book(c, { name: 'appointment-resource', resource: cancelled() }, { name: 'comment', valueString: `cancel ${i}` });
            }),
        );
        const wins = [];
        for (const x of results) {
            if (!check(x, [200, 409, 422])) continue;
            if (x.status !== 200) continue;
            const a = appointmentOf(x);
            if (!a || a.id !== C.id || a.status !== 'cancelled') {
                problem(x, `cancel answered 200 but not with ${C.id} cancelled`);
                continue;
            }
            if ((a.extension || []).some((e) => e.url === LATE_CANCELLATION && e.valueBoolean === true)) {
                problem(x, `late-cancellation set for an appointment ${THURSDAY} (more than 24 h ahead)`);
            }
            wins.push({ version: Number(a.meta?.versionId), x, target: { status: 'cancelled', start: thu('16:00'), end: thu('16:30') } });
        }
        t.diagnostic(`cancellations: ${results.map((x) => x.status).join(' ')}`);
        assertNoProblems('concurrent cancellations');
        assert.ok(wins.length >= 1, 'no cancellation succeeded');
        await checkFinal(C.id, wins, 'cancelled');
        assert.deepEqual(await busyRows(C.id), [], `${C.id} is cancelled but still in sched_busy`);
        // The time is free again.
        await restCreate(thu('16:00'), thu('16:30'));
        await checkInvariants();
    });

    test(`cancellations racing reschedules of one appointment on ${THURSDAY}`, async (t) => {
        problems = [];
        exchanges = [];
        const D = await restCreate(thu('09:00'), thu('09:30'));
        const targets = [
            [thu('09:30'), thu('10:00')],
            [thu('16:30'), thu('17:00')],
        ];
        const results = await Promise.all(
            Array.from({ length: 12 }, async (_, i) => {
                await jitter(80);
                const r = structuredClone(D);
                delete r.meta;
                let target;
                if (i % 2 === 0) {
                    r.status = 'cancelled'; // at whatever time D has by then
                    target = { status: 'cancelled' };
                } else {
                    const [s, e] = targets[(i >> 1) % 2];
                    r.start = iso(s);
                    r.end = iso(e);
                    target = { status: 'booked', start: s, end: e };
                }
                const x = await book(clients[i % 2], { name: 'appointment-resource', resource: r });
                return { target, x };
            }),
        );
        const wins = [];
        for (const { target, x } of results) {
            if (!check(x, [200, 409, 422])) continue;
            if (x.status !== 200) continue;
            const a = appointmentOf(x);
            const cancel = target.status === 'cancelled';
            if (!a || a.id !== D.id || a.status !== target.status || (!cancel && (Date.parse(a.start) !== target.start || Date.parse(a.end) !== target.end))) {
                problem(x, `answered 200 but not with ${D.id} ${target.status}${cancel ? '' : ` at ${span(target.start, target.end)}`}`);
                continue;
            }
            // A cancellation leaves the time as it was: the original or a reschedule's.
            wins.push({ target: cancel ? { status: 'cancelled', start: Date.parse(a.start), end: Date.parse(a.end) } : target, version: Number(a.meta?.versionId), x });
        }
        t.diagnostic(`cancel/reschedule: ${results.map((r) => `${r.target.status === 'cancelled' ? 'cancel' : span(r.target.start, r.target.end)}→${r.x.status}`).join(' ')}`);
        assertNoProblems('cancellations racing reschedules');
        assert.ok(wins.length >= 1, 'nothing succeeded');
        const final = await checkFinal(D.id, wins);
        if (final.status === 'cancelled') assert.deepEqual(await busyRows(D.id), [], `${D.id} is cancelled but still in sched_busy`);
        // Every version is at the original time or at a reschedule that answered 200 (cancellations too).
        const versions = await history(D.id);
        const allowed = new Set([`${thu('09:00')}/${thu('09:30')}`, ...wins.filter((w) => w.target.status === 'booked').map((w) => `${w.target.start}/${w.target.end}`)]);
        for (const v of versions) {
            assert.ok(allowed.has(`${v.start}/${v.end}`), `${D.id} version ${v.version} (${v.status}) is at ${span(v.start, v.end)}, which no reschedule won`);
        }
        // Once cancelled, it stays cancelled (cancelled → booked is not a transition).
        const firstCancel = versions.findIndex((v) => v.status === 'cancelled');
        if (firstCancel >= 0) {
            assert.ok(
                versions.slice(firstCancel).every((v) => v.status === 'cancelled'),
                `${D.id} was booked again after being cancelled: ${JSON.stringify(versions)}`,
            );
        }
        await checkInvariants();
    });

    /**
     * The successes of one burst on one Appointment: distinct versions (no lost update), and the stored
     * Appointment is what the last of them (highest version) said, at one of the times asked for.
     */
    async function checkFinal(id, wins, status) {
        const versions = wins.map((w) => w.version);
        assert.ok(versions.every(Number.isInteger), `a success without meta.versionId: ${versions}`);
        assert.equal(new Set(versions).size, versions.length, `two successes answered with the same version of ${id}: ${versions}`);
        const last = wins.reduce((a, b) => (b.version > a.version ? b : a));
        const final = await storedAppointment(id);
        assert.ok(final, `${id} is gone`);
        assert.equal(final.version, last.version, `${id} is at version ${final.version}, the last success answered ${last.version}`);
        if (status) assert.equal(final.status, status);
        assert.equal(final.status, last.target.status ?? 'booked');
        assert.deepEqual(
            [final.start, final.end],
            [last.target.start, last.target.end],
            `${id} is at ${span(final.start, final.end)}, the last success moved it to ${span(last.target.start, last.target.end)}`,
        );
        return final;
    }
});
