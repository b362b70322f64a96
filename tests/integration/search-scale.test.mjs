// The scheduling hot paths at clinic-group scale (issue 3, "Fast at scale"): 200,000 Slots over 25 Schedules and
// 40 days, 100,000 Appointments (a Practitioner, a room and a Patient each) over 60 days, mixed statuses. Proves
// with EXPLAIN that
//   Slot?schedule=...&start=ge...&start=lt...&status=free
//   Appointment?actor=...&date=ge...&date=lt...&status=booked
//   Appointment?patient=...&date=ge...
// are index scans on the search-column indexes, never a Seq Scan of the slot/appointment partitions, checks their
// results against the raw data, and prints (never asserts) their latencies through HTTP.
//
// Loading goes around the API: the rows are written with SQL straight into `resource` (generate_series, a few
// statements) with a stale search index (sp_version 0, the migration default), and `fhirsched migrate` re-extracts
// the search index of every stale row in C, as it does after an upgrade.
//
// The plans are taken two ways:
//   - EXPLAIN ANALYZE of the search's SQL written by hand after src/fhir/search.c (WHERE over res_type, deleted,
//     sp_tokens, sp_date; ORDER BY res_type, id; LIMIT count + 1), next to the HTTP search whose answer is checked;
//   - the SQL the server really runs: at the end the test database gets auto_explain (session_preload_libraries,
//     ALTER DATABASE), a second server is started on it, and the plans logged to the cluster's postgres.log are read
//     back around each request (only this database loads auto_explain, so every plan in the log is ours). Skipped,
//     with a note, when the log cannot be read.
// FHIRSCHED_SCALE_REUSE_DB=<name> runs against a database kept (FHIRSCHED_TEST_KEEP_DB=1) from an earlier run,
// skipping the load; only for working on this file.
// A plan passes when it has no Seq Scan on the partition, uses at least one index over the sp_* search columns, and
// (where actual row counts are known) reads under a tenth of the partition: an Index Scan of the primary key that
// filters most of the partition away is not the intended index either.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { createTestDatabase, expectStatus, fhir, link, psql, serverBinary, startServer } from '../lib/harness.mjs';

const execFileP = promisify(execFile);

const N_SLOTS = 200_000;
const N_SCHEDULES = 25;
const SLOTS_PER_DAY = 200; // 3-minute slots from 08:00 to 18:00
const N_APPOINTMENTS = 100_000;
const N_PRACTITIONERS = 40;
const N_ROOMS = 20;
const N_PATIENTS = 5_000;
const APPOINTMENT_DAYS = 60;
const DAY0 = '2034-01-01';
const RUNS = 20;

const port = process.env.FHIRSCHED_TEST_PG_PORT;
let db;
let server;
const sql = (text) => psql(port, text, { db: db.name });
/** One-value query. */
const scalar = async (text) => (await sql(text)).trim();

// ---------------------------------------------------------------------------------------------------------------
// Loading

/** `to_char` of a timestamptz as a FHIR instant in UTC, second precision. */
const instant = (expr) => `to_char((${expr}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')`;
/** A pseudo-random 0..99 from a row number and a salt. */
const pct = (i, salt) => `(abs(hashint4(${i} + ${salt})) % 100)`;

const meta = `json_build_object('versionId', '1', 'lastUpdated', fhir_instant(now()))`;

function insertRows(type, idExpr, bodyExpr, from) {
    return `INSERT INTO resource (res_type, id, version_id, last_updated, deleted, body)
            SELECT '${type}', ${idExpr}, 1, now(), false, (${bodyExpr})::text FROM ${from}`;
}

const LOAD = [
    insertRows(
        'Practitioner',
        `'scale-prac-' || i`,
        `json_build_object('resourceType', 'Practitioner', 'id', 'scale-prac-' || i, 'meta', ${meta}, 'active', true,
            'name', json_build_array(json_build_object('family', 'Scale' || i, 'given', json_build_array('Doc'))))`,
        `generate_series(0, ${N_PRACTITIONERS - 1}) i`,
    ),
    insertRows(
        'Location',
        `'scale-room-' || i`,
        `json_build_object('resourceType', 'Location', 'id', 'scale-room-' || i, 'meta', ${meta}, 'status', 'active',
            'name', 'Room ' || i, 'mode', 'instance')`,
        `generate_series(0, ${N_ROOMS - 1}) i`,
    ),
    insertRows(
        'Patient',
        `'scale-pat-' || i`,
        `json_build_object('resourceType', 'Patient', 'id', 'scale-pat-' || i, 'meta', ${meta}, 'active', true,
            'identifier', json_build_array(json_build_object('system', 'urn:scale:mrn', 'value', 'mrn' || i)),
            'name', json_build_array(json_build_object('family', 'Patient' || i)),
            'gender', CASE WHEN i % 2 = 0 THEN 'female' ELSE 'male' END,
            'birthDate', to_char(date '1940-01-01' + (i * 37 % 25000), 'YYYY-MM-DD'))`,
        `generate_series(0, ${N_PATIENTS - 1}) i`,
    ),
    insertRows(
        'Schedule',
        `'scale-sched-' || i`,
        `json_build_object('resourceType', 'Schedule', 'id', 'scale-sched-' || i, 'meta', ${meta}, 'active', true,
            'actor', json_build_array(json_build_object('reference', 'Practitioner/scale-prac-' || i),
                                      json_build_object('reference', 'Location/scale-room-' || (i % ${N_ROOMS}))),
            'planningHorizon', json_build_object('start', '${DAY0}T00:00:00Z', 'end', '2034-03-31T00:00:00Z'))`,
        `generate_series(0, ${N_SCHEDULES - 1}) i`,
    ),
    // Slot i: schedule i % 25; the (i / 25)-th slot of that schedule, 200 a day from 08:00.
    insertRows(
        'Slot',
        `'scale-slot-' || i`,
        `json_build_object('resourceType', 'Slot', 'id', 'scale-slot-' || i, 'meta', ${meta},
            'schedule', json_build_object('reference', 'Schedule/scale-sched-' || (i % ${N_SCHEDULES})),
            'status', CASE WHEN h < 60 THEN 'free' WHEN h < 90 THEN 'busy' WHEN h < 95 THEN 'busy-unavailable'
                           WHEN h < 98 THEN 'busy-tentative' ELSE 'entered-in-error' END,
            'start', ${instant('st')}, 'end', ${instant(`st + interval '3 minutes'`)})`,
        `(SELECT i, ${pct('i', 0)} AS h,
                 timestamptz '${DAY0} 08:00:00Z' + ((i / ${N_SCHEDULES}) / ${SLOTS_PER_DAY}) * interval '1 day'
                     + ((i / ${N_SCHEDULES}) % ${SLOTS_PER_DAY}) * interval '3 minutes' AS st
            FROM generate_series(0, ${N_SLOTS - 1}) i) g`,
    ),
    // Appointment i: practitioner i % 40, room (i / 40) % 20, a pseudo-random patient, day and quarter hour. These
    // overlap freely (search data, not bookings), so the double-booking trigger is off while they load.
    'ALTER TABLE appointment DISABLE TRIGGER sched_appointment_sync',
    insertRows(
        'Appointment',
        `'scale-appt-' || i`,
        `json_build_object('resourceType', 'Appointment', 'id', 'scale-appt-' || i, 'meta', ${meta},
            'status', CASE WHEN h < 60 THEN 'booked' WHEN h < 75 THEN 'fulfilled' WHEN h < 85 THEN 'cancelled'
                           WHEN h < 90 THEN 'noshow' WHEN h < 95 THEN 'arrived' WHEN h < 97 THEN 'checked-in'
                           ELSE 'pending' END,
            'start', ${instant('st')}, 'end', ${instant(`st + interval '15 minutes'`)},
            'participant', json_build_array(
                json_build_object('actor', json_build_object('reference', 'Patient/scale-pat-' || pat), 'status', 'accepted'),
                json_build_object('actor', json_build_object('reference', 'Practitioner/scale-prac-' || (i % ${N_PRACTITIONERS})),
                                  'required', 'required', 'status', 'accepted'),
                json_build_object('actor', json_build_object('reference', 'Location/scale-room-' || ((i / ${N_PRACTITIONERS}) % ${N_ROOMS})),
                                  'status', 'accepted')))`,
        `(SELECT i, ${pct('i', 1_000_000)} AS h, abs(hashint4(i + 2000000)) % ${N_PATIENTS} AS pat,
                 timestamptz '${DAY0} 08:00:00Z' + (abs(hashint4(i + 3000000)) % ${APPOINTMENT_DAYS}) * interval '1 day'
                     + (abs(hashint4(i + 4000000)) % 40) * interval '15 minutes' AS st
            FROM generate_series(0, ${N_APPOINTMENTS - 1}) i) g`,
    ),
    'ALTER TABLE appointment ENABLE TRIGGER sched_appointment_sync',
];

/**
 * `fhirsched migrate` with room for the re-extraction of 300,000 rows (the harness's runMigrate allows 60 s). Its
 * duration is printed with the setup timings; it dominates this suite's run time.
 */
async function migrate(url) {
    try {
        return await execFileP(serverBinary(), ['migrate'], {
            env: { ...process.env, FHIRSCHED_DATABASE_URL: url },
            timeout: 300_000,
            maxBuffer: 16 * 1024 * 1024,
        });
    } catch (e) {
        throw new Error(`fhirsched migrate failed:\n${e.stdout || ''}${e.stderr || e.message}`);
    }
}

const timings = {};
async function timed(name, fn) {
    const t0 = performance.now();
    const r = await fn();
    timings[name] = Math.round(performance.now() - t0);
    return r;
}

// ---------------------------------------------------------------------------------------------------------------
// Plans

/** The auto_explain plans (parsed JSON) in the cluster log `log` after byte `from`. */
function plansSince(log, from) {
    const fd = fs.openSync(log, 'r');
    try {
        const size = fs.fstatSync(fd).size;
        const buf = Buffer.alloc(size - from);
        fs.readSync(fd, buf, 0, buf.length, from);
        const lines = buf.toString('utf8').split('\n');
        const plans = [];
        for (let i = 0; i < lines.length; i++) {
            if (!/LOG: {2}duration: [\d.]+ ms {2}plan:$/.test(lines[i])) continue;
            const body = [];
            while (i + 1 < lines.length && lines[i + 1].startsWith('\t')) body.push(lines[++i].slice(1));
            try {
                plans.push(JSON.parse(body.join('\n')));
            } catch {
                // a plan cut by the end of the read: the next read has it
            }
        }
        return plans;
    } finally {
        fs.closeSync(fd);
    }
}

/** The server's plans since byte `mark` of the log that read the hot path's partition. */
async function serverPlans(log, mark, hot) {
    await new Promise((r) => setTimeout(r, 100));
    const plans = plansSince(log, mark).filter((p) => /\bresource\b/.test(p['Query Text'] || ''));
    const touching = plans.filter((p) =>
        [...nodes(p.Plan)].some((n) => n['Relation Name'] === hot.partition || (n['Index Name'] || '').startsWith(`${hot.partition}_`)),
    );
    assert.ok(touching.length > 0, `auto_explain logged the server's plans for ${hot.url} (${plans.length} plans over resource)`);
    return touching;
}

/** Every node of a plan tree. */
function* nodes(plan) {
    yield plan;
    for (const p of plan.Plans || []) yield* nodes(p);
}

const SCAN_INDEX = new Set(['Index Scan', 'Index Only Scan', 'Bitmap Index Scan']);

/** Indexes of a partition: name -> definition. */
async function partitionIndexes(partition) {
    const out = await sql(`SELECT indexname || E'\\t' || indexdef FROM pg_indexes WHERE tablename = '${partition}'`);
    return new Map(
        out
            .trim()
            .split('\n')
            .filter(Boolean)
            .map((l) => l.split('\t')),
    );
}

/**
 * Asserts that a plan reads `partition` only through its search-column indexes: no Seq Scan of it, at least one
 * index scan on an index over sp_* columns and, when the plan has actual row counts, fewer than `maxRows` rows
 * read from the partition (returned plus removed by filters and rechecks). Returns a one-line description.
 */
function checkPlan(plan, partition, indexes, what, maxRows) {
    const all = [...nodes(plan.Plan || plan)];
    const text = JSON.stringify(plan, null, 1);
    const seq = all.filter((n) => /Seq Scan/.test(n['Node Type']) && n['Relation Name'] === partition);
    assert.equal(seq.length, 0, `${what}: a Seq Scan on ${partition}:\n${text}`);
    const onPartition = all.filter((n) => SCAN_INDEX.has(n['Node Type']) && indexes.has(n['Index Name']));
    const search = onPartition.filter((n) => /\bsp_/.test(indexes.get(n['Index Name'])));
    assert.ok(
        search.length > 0,
        `${what}: no index scan on a search-column index of ${partition} (its indexes: ${[...indexes.keys()].join(', ')}):\n${text}`,
    );
    const heap = all.filter((n) => n['Relation Name'] === partition && 'Actual Rows' in n);
    let read = null;
    if (heap.length) {
        read = heap.reduce(
            (sum, n) =>
                sum + (n['Actual Rows'] + (n['Rows Removed by Filter'] || 0) + (n['Rows Removed by Index Recheck'] || 0)) * (n['Actual Loops'] || 1),
            0,
        );
        assert.ok(read < maxRows, `${what}: reads ${read} rows of ${partition} (a search index should keep it under ${maxRows}):\n${text}`);
    }
    const scans = all
        .filter((n) => /Scan/.test(n['Node Type']) && (n['Relation Name'] === partition || indexes.has(n['Index Name'])))
        .map((n) => `${n['Node Type']}${n['Index Name'] ? ` using ${n['Index Name']}` : ''}`);
    return `${scans.join(' + ')}${read === null ? '' : ` (${read} rows read)`}`;
}

async function explain(query) {
    const out = await sql(`EXPLAIN (ANALYZE, FORMAT JSON) ${query}`);
    return JSON.parse(out)[0];
}

// ---------------------------------------------------------------------------------------------------------------
// The hot paths: the HTTP search, its expected result from the raw bodies, and the equivalent hand-written SQL.

const lit = (s) => `'${s.replace(/'/g, "''")}'`;
const arr = (...xs) => `ARRAY[${xs.map(lit).join(', ')}]::text[]`;
/** A day's range as src/fhir/search.c binds a date value (date_value_range: UTC, [day, next day)). */
const dayRange = (day) => {
    const next = new Date(Date.parse(`${day}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
    return `'[${day} 00:00:00+00,${next} 00:00:00+00)'::tstzrange`;
};
/** src/fhir/search.c's date conditions for prefixed day values on sp_date. */
const dateGe = (v) => `(r.sp_date && tstzrange(upper(${dayRange(v)}), NULL) OR r.sp_date <@ ${dayRange(v)})`;
const dateLt = (v) => `r.sp_date && tstzrange(NULL, lower(${dayRange(v)}))`;
/** The redundant window search.c adds for a ge/lt pair, so that the planner estimates one range, not two halves. */
const dateWindow = (lo, hi) => `r.sp_date && '[${lo} 00:00:00+00,${hi} 00:00:00+00)'::tstzrange`;
/** In that restated shape the date conditions are written on an expression no index is on (hide_dates_from_indexes). */
const hidden = (cond) => cond.replaceAll('r.sp_date', "(r.sp_date * '(,)'::tstzrange)");
/** What it adds instead for a Slot's schedule with that window, for the (schedule, start) btree: the start within it (less a second). */
const scheduleStart = (schedule, lo, hi) =>
    `(r.sp_sort ->> 'schedule') = ${lit(schedule)} AND lower(r.sp_date) > timestamptz '${lo} 00:00:00+00' - interval '1 second'` +
    ` AND lower(r.sp_date) < timestamptz '${hi} 00:00:00+00'`;

function handBuilt(type, conditions, count) {
    const where = `r.res_type = ${lit(type)} AND NOT r.deleted AND ${conditions.join(' AND ')}`;
    return {
        count: `SELECT count(*) FROM resource r WHERE ${where}`,
        page: `SELECT r.res_type, r.id, r.version_id, r.body FROM resource r WHERE ${where} ORDER BY r.res_type, r.id LIMIT ${count + 1}`,
    };
}

/** A raw-data condition on a body's instant element (independent of the search columns). */
const rawInstant = (el, lo, hi) =>
    `(body::jsonb ->> '${el}')::timestamptz >= timestamptz '${lo}'${hi ? ` AND (body::jsonb ->> '${el}')::timestamptz < timestamptz '${hi}'` : ''}`;

const HOT = [
    {
        name: 'Slot by schedule + start range (one day) + status',
        partition: 'slot',
        url: '/Slot?schedule=Schedule/scale-sched-7&start=ge2034-01-15&start=lt2034-01-16&status=free',
        expected: `SELECT id FROM resource WHERE res_type = 'Slot' AND NOT deleted
                     AND body::jsonb -> 'schedule' ->> 'reference' = 'Schedule/scale-sched-7'
                     AND ${rawInstant('start', '2034-01-15T00:00:00Z', '2034-01-16T00:00:00Z')}
                     AND body::jsonb ->> 'status' = 'free'`,
        sql: handBuilt(
            'Slot',
            [
                `r.sp_tokens && ${arr('schedule=Schedule/scale-sched-7')}`,
                hidden(dateGe('2034-01-15')),
                hidden(dateLt('2034-01-16')),
                `(r.sp_tokens && ${arr('status=free')})`,
                scheduleStart('Schedule/scale-sched-7', '2034-01-15', '2034-01-16'),
            ],
            50,
        ),
    },
    {
        name: 'Slot by schedule + start range (one week) + status, sorted by start',
        partition: 'slot',
        url: '/Slot?schedule=Schedule/scale-sched-3&start=ge2034-01-08&start=lt2034-01-15&status=free&_sort=start',
        expected: `SELECT id FROM resource WHERE res_type = 'Slot' AND NOT deleted
                     AND body::jsonb -> 'schedule' ->> 'reference' = 'Schedule/scale-sched-3'
                     AND ${rawInstant('start', '2034-01-08T00:00:00Z', '2034-01-15T00:00:00Z')}
                     AND body::jsonb ->> 'status' = 'free'`,
        sortedBy: 'start',
    },
    {
        name: 'Appointment by actor (Practitioner) + date range (one week) + status',
        partition: 'appointment',
        url: '/Appointment?actor=Practitioner/scale-prac-11&date=ge2034-01-10&date=lt2034-01-17&status=booked',
        expected: `SELECT id FROM resource WHERE res_type = 'Appointment' AND NOT deleted
                     AND body::jsonb @> '{"participant":[{"actor":{"reference":"Practitioner/scale-prac-11"}}]}'
                     AND ${rawInstant('start', '2034-01-10T00:00:00Z', '2034-01-17T00:00:00Z')}
                     AND body::jsonb ->> 'status' = 'booked'`,
        sql: handBuilt(
            'Appointment',
            [
                `r.sp_tokens && ${arr('actor=Practitioner/scale-prac-11')}`,
                dateGe('2034-01-10'),
                dateLt('2034-01-17'),
                `(r.sp_tokens && ${arr('status=booked')})`,
                dateWindow('2034-01-10', '2034-01-17'),
            ],
            50,
        ),
    },
    {
        name: 'Appointment by actor (room) + date (one day) + status',
        partition: 'appointment',
        url: '/Appointment?actor=Location/scale-room-4&date=2034-02-03&status=booked,arrived',
        expected: `SELECT id FROM resource WHERE res_type = 'Appointment' AND NOT deleted
                     AND body::jsonb @> '{"participant":[{"actor":{"reference":"Location/scale-room-4"}}]}'
                     AND ${rawInstant('start', '2034-02-03T00:00:00Z', '2034-02-04T00:00:00Z')}
                     AND body::jsonb ->> 'status' IN ('booked', 'arrived')`,
    },
    {
        name: 'Appointment by patient + date',
        partition: 'appointment',
        url: '/Appointment?patient=Patient/scale-pat-1234&date=ge2034-01-20',
        expected: `SELECT id FROM resource WHERE res_type = 'Appointment' AND NOT deleted
                     AND body::jsonb @> '{"participant":[{"actor":{"reference":"Patient/scale-pat-1234"}}]}'
                     AND ${rawInstant('start', '2034-01-20T00:00:00Z')}`,
        sql: handBuilt('Appointment', [`r.sp_tokens && ${arr('patient=Patient/scale-pat-1234')}`, dateGe('2034-01-20')], 50),
    },
];

// ---------------------------------------------------------------------------------------------------------------

before(async () => {
    if (process.env.FHIRSCHED_SCALE_REUSE_DB) {
        // for working on this file: a database kept from an earlier run (FHIRSCHED_TEST_KEEP_DB=1), loaded and migrated
        const name = process.env.FHIRSCHED_SCALE_REUSE_DB;
        db = { name, url: `postgresql://postgres@127.0.0.1:${port}/${name}`, drop: async () => {} };
        await psql(port, `ALTER DATABASE "${name}" RESET ALL`);
        server = await startServer({ databaseUrl: db.url, env: { FHIRSCHED_LOG_ACCESS: 'false' } });
        return;
    }
    db = await createTestDatabase();
    await timed('load (SQL)', async () => {
        for (const statement of LOAD) await sql(statement);
    });
    const stale = await scalar(`SELECT count(*) FROM resource WHERE sp_version = 0`);
    assert.equal(Number(stale), N_SLOTS + N_APPOINTMENTS + N_SCHEDULES + N_PRACTITIONERS + N_ROOMS + N_PATIENTS, 'rows loaded with a stale index');
    await timed('fhirsched migrate (re-extraction)', () => migrate(db.url));
    // what autovacuum would do soon after such a load
    await timed('VACUUM ANALYZE', () => sql('VACUUM (ANALYZE) resource'));
    server = await startServer({ databaseUrl: db.url, env: { FHIRSCHED_LOG_ACCESS: 'false' } });
});

after(async () => {
    try {
        await server?.stop();
    } finally {
        await db?.drop();
        console.log(`# scale setup timings (ms): ${JSON.stringify(timings)}`);
    }
});

const partitionRows = { slot: N_SLOTS, appointment: N_APPOINTMENTS };
const maxRead = (hot) => partitionRows[hot.partition] / 10;

describe('scheduling hot paths at scale', () => {
    it('migrate re-extracted the search index of every row', async () => {
        assert.equal(Number(await scalar(`SELECT count(*) FROM resource WHERE sp_version = 0`)), 0, 'no row left with a stale index');
        assert.equal(Number(await scalar(`SELECT count(*) FROM slot`)), N_SLOTS);
        assert.equal(Number(await scalar(`SELECT count(*) FROM appointment`)), N_APPOINTMENTS);
        // the data set is as mixed as it claims
        const statuses = await sql(`SELECT body::jsonb ->> 'status', count(*) FROM slot GROUP BY 1 ORDER BY 1`);
        assert.ok(statuses.trim().split('\n').length >= 4, `several Slot statuses:\n${statuses}`);
        const days = await scalar(`SELECT count(DISTINCT (body::jsonb ->> 'start')::date) FROM slot`);
        assert.ok(Number(days) >= 30, `Slots over 30+ days (${days})`);
    });

    for (const hot of HOT) {
        it(`${hot.name}: right answer, index scans, latency`, async () => {
            const indexes = await partitionIndexes(hot.partition);

            // the answer, checked against the raw bodies
            const want = (await sql(`${hot.expected} ORDER BY id`)).trim().split('\n').filter(Boolean);
            assert.ok(want.length > 0, `the data set has matches for ${hot.url}`);
            const res = await fhir(server, 'GET', hot.url);
            expectStatus(res, 200);
            const b = res.json;
            assert.equal(b.total, want.length, `total of ${hot.url}`);
            const page = (b.entry || []).filter((e) => e.search?.mode === 'match');
            const got = page.map((e) => e.resource.id);
            assert.equal(got.length, Math.min(50, want.length), 'a page of the default size');
            if (hot.sortedBy) {
                const keys = page.map((e) => e.resource[hot.sortedBy]);
                assert.deepEqual(keys, [...keys].sort(), `sorted by ${hot.sortedBy}`);
                for (const id of got) assert.ok(want.includes(id), `${id} is a match`);
            } else {
                assert.deepEqual(got, want.slice(0, 50), 'the first page: the matches in _id order');
            }
            if (want.length > 50) assert.ok(link(b, 'next'), 'a next link');

            // every page: each match once, in order
            const all = [...got];
            let keys = hot.sortedBy ? page.map((e) => e.resource[hot.sortedBy]) : [];
            for (let next = link(b, 'next'), n = 0; next; n++) {
                assert.ok(n < 40, 'paging ends');
                const r = await fhir(server, 'GET', next);
                expectStatus(r, 200);
                const more = (r.json.entry || []).filter((e) => e.search?.mode === 'match');
                all.push(...more.map((e) => e.resource.id));
                if (hot.sortedBy) keys = keys.concat(more.map((e) => e.resource[hot.sortedBy]));
                next = link(r.json, 'next');
            }
            if (hot.sortedBy) {
                assert.deepEqual(keys, [...keys].sort(), `sorted by ${hot.sortedBy} across pages`);
                assert.deepEqual([...all].sort(), want, 'every match once across pages');
            } else {
                assert.deepEqual(all, want, 'every match once across pages, in _id order');
            }

            // latency through HTTP (printed, never asserted)
            const ms = [];
            for (let i = 0; i < RUNS; i++) {
                const t0 = performance.now();
                const r = await fetch(server.base + hot.url, { headers: { accept: 'application/fhir+json' } });
                await r.arrayBuffer();
                ms.push(performance.now() - t0);
                assert.equal(r.status, 200);
            }
            ms.sort((x, y) => x - y);
            const median = (ms[(RUNS - 1) >> 1] + ms[RUNS >> 1]) / 2;
            console.log(
                `# latency ${hot.name}: median ${median.toFixed(1)} ms, min ${ms[0].toFixed(1)}, max ${ms[RUNS - 1].toFixed(1)} ` +
                    `(${RUNS} runs, ${want.length} matches)  ${hot.url}`,
            );

            // the hand-written equivalent of the server's SQL
            if (hot.sql) {
                for (const [kind, q] of Object.entries(hot.sql)) {
                    const desc = checkPlan(await explain(q), hot.partition, indexes, `EXPLAIN ANALYZE of the ${kind} query for ${hot.url}\n${q}`, maxRead(hot));
                    console.log(`# ${hot.name}: EXPLAIN ${kind}: ${desc}`);
                }
            }
        });
    }
});

// The restated day search is a kept statement: after five runs on a connection PostgreSQL may run it with a plan made
// for unknown values. That plan must not take its date conditions to the GiST range index: here (5,000 Slots a day)
// such a plan ANDed every Slot of the day with the btree's rows, at a million Slots it did so in every probe. The
// statement is src/fhir/search.c's, with its parameters.
describe('the restated day search with a plan for unknown values', () => {
    it("reads the (schedule, start) btree and no range index", async () => {
        const indexes = await partitionIndexes('slot');
        const where = [
            `r.res_type = 'Slot' AND NOT r.deleted AND r.sp_tokens && $1::text[]`,
            hidden(`(r.sp_date && tstzrange(upper($2::tstzrange), NULL) OR r.sp_date <@ $2::tstzrange)`),
            hidden(`(r.sp_date && tstzrange(NULL, lower($3::tstzrange)))`),
            `(r.sp_tokens && $4::text[]) AND (r.sp_sort ->> 'schedule') = $5::text`,
            `lower(r.sp_date) > $6::timestamptz AND lower(r.sp_date) < $7::timestamptz`,
        ].join(' AND ');
        const out = await sql(`SET plan_cache_mode = force_generic_plan;
            PREPARE day_search(text[], tstzrange, tstzrange, text[], text, timestamptz, timestamptz, integer) AS
              SELECT r.res_type, r.id, r.version_id, r.body FROM resource r WHERE ${where} ORDER BY r.res_type, r.id LIMIT $8::integer;
            EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE day_search('{schedule=Schedule/scale-sched-7}', ${dayRange('2034-01-15')},
              ${dayRange('2034-01-16')}, '{status=free}', 'Schedule/scale-sched-7', '2034-01-14 23:59:59+00', '2034-01-16 00:00:00+00', 51);`);
        const plan = JSON.parse(out.slice(out.indexOf('[')))[0];
        const used = [...nodes(plan.Plan)].filter((n) => SCAN_INDEX.has(n['Node Type'])).map((n) => n['Index Name']);
        assert.ok(used.includes('slot_schedule_start'), `the btree: ${used.join(', ')}`);
        for (const name of used) assert.doesNotMatch(indexes.get(name) ?? '', /USING gist/, `${name} is not a range index`);
    });
});

describe("the server's own SQL (auto_explain)", () => {
    const LOG = process.env.FHIRSCHED_TEST_PG_DIR ? path.resolve(process.env.FHIRSCHED_TEST_PG_DIR, 'postgres.log') : null;
    let readable = false;
    let explained;

    before(async () => {
        try {
            fs.accessSync(LOG, fs.constants.R_OK);
            readable = true;
        } catch {
            console.log(`# ${LOG} cannot be read: the plans of the server's own SQL are not checked`);
            return;
        }
        await server.stop();
        server = null;
        for (const setting of [
            `session_preload_libraries = 'auto_explain'`,
            `auto_explain.log_min_duration = 0`,
            `auto_explain.log_format = 'json'`,
            `auto_explain.log_analyze = on`,
            `auto_explain.log_timing = off`,
            `auto_explain.log_nested_statements = on`,
        ]) {
            await psql(port, `ALTER DATABASE "${db.name}" SET ${setting}`);
        }
        explained = await startServer({ databaseUrl: db.url, env: { FHIRSCHED_LOG_ACCESS: 'false' } });
    });
    after(async () => {
        await explained?.stop();
    });

    for (const hot of HOT) {
        it(`${hot.name}: every plan is on the search indexes`, async (t) => {
            if (!readable) return t.skip('postgres.log cannot be read');
            const indexes = await partitionIndexes(hot.partition);
            const descs = new Set();
            // several runs: prepared statements may turn generic after five; and the next page, whose query has the
            // keyset condition on top
            let next;
            for (let i = 0; i < 7; i++) {
                const mark = fs.statSync(LOG).size;
                const res = await fhir(explained, 'GET', hot.url);
                expectStatus(res, 200);
                next = link(res.json, 'next');
                for (const p of await serverPlans(LOG, mark, hot)) {
                    descs.add(checkPlan(p, hot.partition, indexes, `server SQL for ${hot.url} (run ${i + 1})`, maxRead(hot)).replace(/ \(\d+ rows read\)/, ''));
                }
            }
            if (next) {
                const mark = fs.statSync(LOG).size;
                expectStatus(await fhir(explained, 'GET', next), 200);
                for (const p of await serverPlans(LOG, mark, hot)) {
                    descs.add(`next page: ${checkPlan(p, hot.partition, indexes, `server SQL for ${next}`, maxRead(hot)).replace(/ \(\d+ rows read\)/, '')}`);
                }
            }
            console.log(`# ${hot.name}: server plans: ${[...descs].join('; ')}`);
        });
    }
});
