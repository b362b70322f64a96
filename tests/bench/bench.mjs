// `make bench` (issue 8): a private PostgreSQL, the release server, the standard dataset seeded through the server's
// own API (dataset.mjs), PostgreSQL's and the HTTP layer's ceilings, the server's memory idle and with 1,000 open
// connections, the scenarios, and the scaling run (scaling.mjs). Prints Markdown tables and writes
// tests/bench/results/<date>-<sha>.json (<date>-<sha>-partial-<hhmmss>.json when BENCH_ONLY picked some scenarios, so that
// alternated partial runs at one sha keep each its own file).
//
//   make bench                       (or: FHIRSCHED_BIN=build/fhirsched node tests/bench/bench.mjs)
//   BENCH_SECONDS=10 BENCH_CONNECTIONS=32      length of each wrk run, and its connections
//   BENCH_ONLY='find|scaling'                  only the scenarios whose name matches (case-insensitive regex; the
//                                              ceilings always run; "memory" and "scaling" name those parts)
//   BENCH_SCALING=0 BENCH_SCALING_MAX=100000   skip the scaling run, or stop it at a smaller size
//   BENCH_SCALING_SECONDS=5                    length of each scaling probe
//   BENCH_BOOKING_RATE_ROOM=3000               $hold + $book: proposals are collected for this many bookings/s
//   BENCH_WARMUP_SECONDS=2                     untimed run before each read and $find scenario (0: none); the
//                                              write scenarios have none, since it would change what they write
//   BENCH_SUBSCRIPTIONS=1000 BENCH_WRITES=500  the subscription scenario (subscriptions.mjs)
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { SOURCE_DIR, fhir, freePort, postmasterAllocatorSettings, runMigrate, startPrivateCluster, startServer } from '../lib/harness.mjs';
import {
    BOOKING, BOOKING_DAY0, CONSULTATION, DAYS, PRACTITIONERS, RACE_DAY0, TREATMENT, TREATMENT_ROOMS, iso, seedBookingFixtures, seedStandard,
    seededDays, weekday,
} from './dataset.mjs';
import { benchHl7 } from './hl7.mjs';
import { runScaling } from './scaling.mjs';
import { benchSubscriptions, startReceiver } from './subscriptions.mjs';
import { PG_BIN, databaseUrl, psql, resetPeakRss, round, rssMb, run, socketCount, waitIdle, wrk } from './tools.mjs';

const SECONDS = Number(process.env.BENCH_SECONDS || 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS || 32);
const ONLY = process.env.BENCH_ONLY ? new RegExp(process.env.BENCH_ONLY, 'i') : null;
const SCALING = process.env.BENCH_SCALING !== '0';
const SCALING_MAX = Number(process.env.BENCH_SCALING_MAX || 1_000_000);
const SCALING_SECONDS = Number(process.env.BENCH_SCALING_SECONDS || 5);
const HL7_CONNECTIONS = 8;
const IDLE_CONNECTIONS = 1000;
/** Bookings per second the proposals of scenario 5a are collected for (more than the target of 1,000). */
const BOOKING_RATE_ROOM = Number(process.env.BENCH_BOOKING_RATE_ROOM || 3000);
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 2);

const selected = (name) => !ONLY || ONLY.test(name);

/** Memoises an async preparation, so that it runs once and only for the scenarios that need it. */
const once = (fn) => {
    let p = null;
    return () => (p ??= fn());
};

// ---- the run ----

const started = new Date();
const sha = execFileSync('git', ['-C', SOURCE_DIR, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
const receiver = await startReceiver();
const cluster = await startPrivateCluster();
const hl7Port = await freePort();
let server;
try {
    const pgbenchUrl = databaseUrl(cluster.url, 'pgbench');
    await run(path.join(PG_BIN, 'createdb'), ['-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'postgres', 'pgbench']);
    await run(path.join(PG_BIN, 'pgbench'), ['-i', '-s', '10', '-q', pgbenchUrl]);
    const serverEnv = {
        FHIRSCHED_THREADS: String(os.cpus().length),
        FHIRSCHED_RATE_LIMIT_PER_SECOND: '0',
        FHIRSCHED_LOG_ACCESS: 'false',
        FHIRSCHED_AUDIT_ENABLED: 'false',
        FHIRSCHED_HL7_LISTEN: `127.0.0.1:${hl7Port}`,
        FHIRSCHED_SUBSCRIPTIONS_ENDPOINT_ALLOWLIST: receiver.allowlist,
    };
    server = await startServer({ databaseUrl: cluster.url, env: serverEnv });
    const pid = server.proc.pid;
    const seedSlotsPerSecond = await seedStandard(server);
    const days = seededDays();
    const BENCH_DAYS = days.join(',');

    const pgbench = async (mode, url = pgbenchUrl, env = {}) => {
        const out = await run(path.join(PG_BIN, 'pgbench'), [...mode, '-M', 'prepared', `-c${CONNECTIONS}`, '-j2', `-T${SECONDS}`, '-n', url], { env: { ...process.env, ...env } });
        return round(Number(/tps = ([\d.]+)/.exec(out)[1]), 0);
    };
    // What storing an Appointment costs PostgreSQL alone: appointment-storage.sql writes its rows and maintains every
    // index, with no trigger, on an empty migrated database of its own (so the scenarios never see those rows).
    const floorUrl = databaseUrl(cluster.url, 'fhirsched_floor');
    await run(path.join(PG_BIN, 'createdb'), ['-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'postgres', 'fhirsched_floor']);
    await runMigrate(floorUrl);
    const ceilings = {
        healthz_rps: round((await wrk({ url: `${server.root}/healthz`, script: 'get.lua', connections: CONNECTIONS, seconds: SECONDS })).rps, 0),
        pgbench_select_tps: await pgbench(['-S']),
        pgbench_write_tps: await pgbench(['-N']),
        appointment_storage_tps: await pgbench(['-f', path.join(SOURCE_DIR, 'tests', 'bench', 'appointment-storage.sql')], floorUrl, {
            PGOPTIONS: '-c session_replication_role=replica',
        }),
    };
    // The floor's database has served. Left in place, its tens of thousands of new rows were never in the settling
    // below, and autovacuum could take them up during the first scenario.
    await run(path.join(PG_BIN, 'dropdb'), ['-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'postgres', 'fhirsched_floor']);
    // Measure a settled database: the seeding and pgbench's writes leave autovacuum, autoanalyze and a checkpoint to
    // come, which otherwise land inside the first scenario as a tail of slow requests.
    const settle = async () => {
        for (const url of [cluster.url, pgbenchUrl]) await psql(url, 'VACUUM ANALYZE');
        await psql(cluster.url, 'CHECKPOINT');
    };
    await settle();

    const memory = selected('memory') ? { idle_rss_mb: rssMb(pid), ...(await rssWithOpenConnections(server, IDLE_CONNECTIONS)) } : null;
    const perScenarioPeak = resetPeakRss(pid);

    // ---- the scenarios, in order; each is a name, what it needs first, and its run ----

    const rows = [];
    const wrkScenario = (script, env = {}, opts = {}) => async () => {
        return wrkRow(await wrk({ url: server.base, script, env: { BENCH_DAYS, ...env }, connections: CONNECTIONS, seconds: SECONDS, ...opts }));
    };
    const single = { connections: 1, threads: 1 };
    // Read-only requests are measured warm, as a server in use answers them; a cold start's first second is a
    // tail of slow requests (read p99 2.9-5.9 ms from a fresh server against 2.1-3.9 warm on the same database).
    const warm = { warmupSeconds: WARMUP_SECONDS };

    // a scenario only counts when it does the work: both $finds must find proposals in the seeded hours, the second
    // with a treatment room
    const findProbes = once(async () => {
        const one = await fhir(server, 'GET', `/Appointment/$find?start=${days[1]}&end=${days[8]}&practitioner=Practitioner/bench-dr-3&visit-type=${CONSULTATION}&_count=20`);
        if (one.status !== 200 || !(one.json.total > 0)) throw new Error(`$find for one practitioner found nothing: ${one.text.slice(0, 400)}`);
        const room = await fhir(server, 'GET', `/Appointment/$find?start=${days[0]}&end=${days[DAYS]}&visit-type=${TREATMENT}&_count=20`);
        const withRoom = (room.json?.entry || []).filter((e) => e.resource?.participant?.some((p) => TREATMENT_ROOMS.includes(p.actor?.reference)));
        if (room.status !== 200 || !(room.json.total > 0) || withRoom.length !== room.json.entry.length)
            throw new Error(`$find for a treatment found no proposals with a treatment room: ${room.text.slice(0, 600)}`);
    });
    const bookingFixtures = once(() => seedBookingFixtures(server));
    const findEnv = { BENCH_VISIT_TYPE: CONSULTATION };
    const roomEnv = { BENCH_VISIT_TYPE: TREATMENT };

    const scenarios = [
        { name: 'GET /Slot/{id}', ceiling: 'select', run: wrkScenario('slot-read.lua', {}, warm) },
        { name: 'GET /Slot day search', ceiling: 'select', run: wrkScenario('slot-day.lua', {}, warm) },
        { name: 'POST /Appointment', ceiling: 'write', run: wrkScenario('appointment-create.lua') },
        { name: '$find, 1 practitioner x 7 days', needs: findProbes, run: wrkScenario('find-one.lua', findEnv, warm) },
        { name: '$find, 1 practitioner x 7 days (1 connection)', needs: findProbes, run: wrkScenario('find-one.lua', findEnv, { ...single, ...warm }) },
        { name: '$find, 20 practitioners + room x 30 days', needs: findProbes, run: wrkScenario('find-room.lua', roomEnv, warm) },
        { name: '$find, 20 practitioners + room x 30 days (1 connection)', needs: findProbes, run: wrkScenario('find-room.lua', roomEnv, { ...single, ...warm }) },
        { name: '$hold + $book, distinct times', needs: bookingFixtures, run: () => holdAndBook(server) },
        { name: '$hold + $book, contended', needs: bookingFixtures, run: () => race(server, cluster.url) },
        {
            name: `HL7 SIU^S12 over MLLP (${HL7_CONNECTIONS} connections)`,
            run: () => benchHl7({ port: hl7Port, seconds: SECONDS, connections: HL7_CONNECTIONS }),
        },
        {
            name: 'Subscription rest-hook delivery',
            run: async () => {
                const r = await benchSubscriptions({ server, receiver });
                // rps is not the point here: the figures are commit -> delivery (upper bound: from sending the write)
                return { rps: null, p50_ms: r.delivery_ms.p50, p99_ms: r.delivery_ms.p99, p999_ms: r.delivery_ms.p999, errors: 0, unit: 'ms commit -> delivery', ...r };
            },
        },
    ];
    for (const s of scenarios) {
        if (!selected(s.name)) continue;
        await s.needs?.();
        await waitIdle(pid);
        if (perScenarioPeak) resetPeakRss(pid);
        const r = await s.run();
        rows.push({ name: s.name, ceiling: s.ceiling, ...r, peak_rss_mb: rssMb(pid, 'VmHWM') });
        console.error(`${s.name}: ${r.rps ?? '-'} ${r.unit ?? 'req/s'}, p50 ${r.p50_ms} ms, errors ${r.errors}`);
    }
    await server.stop();
    server = null;

    const { FHIRSCHED_HL7_LISTEN, ...scalingEnv } = serverEnv;
    const scaling = SCALING && selected('scaling') ? await runScaling({ cluster, env: scalingEnv, maxSlots: SCALING_MAX, seconds: SCALING_SECONDS }) : [];

    const result = {
        machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memory_gb: round(os.totalmem() / 2 ** 30, 1), kernel: os.release(),
            postgres_allocator: postmasterAllocatorSettings(cluster.dir) },
        date: started.toISOString(),
        git: sha,
        seconds: SECONDS,
        connections: CONNECTIONS,
        only: process.env.BENCH_ONLY || undefined,
        seed_slots_per_second: seedSlotsPerSecond,
        ceilings,
        memory,
        scenarios: rows.map(({ ceiling, ...r }) => r),
        scaling,
    };
    const stamp = started.toISOString();
    const partial = ONLY ? `-partial-${stamp.slice(11, 19).replaceAll(':', '')}` : '';
    const out = path.join(SOURCE_DIR, 'tests', 'bench', 'results', `${stamp.slice(0, 10)}-${sha}${partial}.json`);
    fs.writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
    printTables(result, rows);
    console.log(`\nwritten: ${path.relative(SOURCE_DIR, out)}`);
} finally {
    await server?.stop();
    await cluster.destroy();
    await receiver.close();
}

/** A result row from wrk's figures; a run in which no request completed has no latencies to show. */
function wrkRow(r) {
    if (!r.requests) return { rps: 0, p50_ms: null, p99_ms: null, p999_ms: null, errors: r.errors, note: 'no request completed within the run' };
    return { rps: round(r.rps, 0), p50_ms: round(r.p50), p99_ms: round(r.p99), p999_ms: round(r.p999), errors: r.errors };
}

// ---- scenario 5: $hold + $book ----

/**
 * 5a: collects proposals with $find (each practitioner's weekdays one by one, so no two overlap), enough for
 * BOOKING_RATE_ROOM bookings a second, then runs hold-book.lua over them.
 */
async function holdAndBook(server) {
    const wanted = BOOKING_RATE_ROOM * SECONDS;
    const perDay = 16;
    const ids = [];
    const requests = [];
    for (let n = 0; ids.length + requests.length * perDay < wanted; n++) {
        const from = weekday(BOOKING_DAY0, Math.floor(n / PRACTITIONERS));
        requests.push(`/Appointment/$find?start=${iso(from)}&end=${iso(from + 86400_000)}&practitioner=Practitioner/bench-book-dr-${n % PRACTITIONERS}&visit-type=${BOOKING}&_count=${perDay}`);
    }
    // a few at a time: the server has as many loop threads as cores
    for (let i = 0; i < requests.length; i += 8) {
        const answers = await Promise.all(requests.slice(i, i + 8).map((p) => fhir(server, 'GET', p)));
        for (const res of answers) {
            if (res.status !== 200 || res.json.total !== perDay) throw new Error(`collecting proposals: ${res.status} ${res.text.slice(0, 300)}`);
            ids.push(...res.json.entry.map((e) => e.resource.id));
        }
    }
    const file = path.join(os.tmpdir(), `fhirsched-bench-proposals-${process.pid}.txt`);
    fs.writeFileSync(file, `${ids.join('\n')}\n`);
    try {
        const r = await wrk({ url: server.base, script: 'hold-book.lua', env: { BENCH_PROPOSALS: file }, connections: CONNECTIONS, seconds: SECONDS });
        if (r.exhausted) console.error(`$hold + $book: the ${ids.length} proposals ran out; raise BENCH_BOOKING_RATE_ROOM`);
        return {
            ...wrkRow(r),
            bookings_per_s: round(r.bookings / r.seconds, 0), holds: r.holds, bookings: r.bookings, proposals: ids.length,
        };
    } finally {
        fs.rmSync(file, { force: true });
    }
}

/** 5b: race.lua, then the database's word that nothing was double-booked. */
async function race(server, dbUrl) {
    const r = await wrk({ url: server.base, script: 'race.lua', env: { BENCH_RACE_DAY0: String(RACE_DAY0 / 1000), BENCH_VISIT_TYPE: BOOKING }, connections: CONNECTIONS, seconds: SECONDS });
    return {
        ...wrkRow(r),
        wins: r.wins, conflicts: r.conflicts, finds: r.finds, holds: r.holds, ...(await doubleBookings(dbUrl)),
    };
}

/**
 * Overlapping blocking Appointments of one practitioner, counted twice: in sched_busy (which the exclusion constraint
 * guards) and from the stored Appointments themselves (every booked or held Appointment in the database, all scenarios').
 */
async function doubleBookings(dbUrl) {
    const sql = `
        CREATE TEMP TABLE booked AS
            SELECT a.id, p ->> 'reference' AS practitioner,
                   tstzrange((a.body::jsonb ->> 'start')::timestamptz, (a.body::jsonb ->> 'end')::timestamptz) AS during
              FROM appointment a, jsonb_array_elements(a.body::jsonb -> 'participant') x, LATERAL (SELECT x -> 'actor') y(p)
             WHERE NOT a.deleted AND a.body::jsonb ->> 'status' IN ('pending', 'booked', 'arrived', 'checked-in', 'fulfilled')
               AND p ->> 'reference' LIKE 'Practitioner/%' AND coalesce(x ->> 'status', '') <> 'declined';
        CREATE INDEX ON booked USING gist (practitioner, during);
        SELECT (SELECT count(*) FROM booked a JOIN booked b ON a.practitioner = b.practitioner AND a.id < b.id AND a.during && b.during),
               (SELECT count(*) FROM sched_busy a JOIN sched_busy b ON a.actor = b.actor AND a.appointment_id < b.appointment_id AND a.during && b.during),
               (SELECT count(DISTINCT id) FROM booked);`;
    const [appointments, busy, checked] = (await psql(dbUrl, sql)).trim().split('|').map(Number);
    return { double_bookings: appointments, double_bookings_sched_busy: busy, appointments_checked: checked };
}

// ---- memory ----

/**
 * Opens `n` keep-alive HTTP/1.1 connections, each doing one request (a Slot read), holds them all open and reads the
 * server's VmRSS and how many sockets it has open more than before; then closes them.
 */
async function rssWithOpenConnections(server, n) {
    const { port } = new URL(server.root);
    const request = `GET /fhir/Slot/bench-slot-0-0-0 HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/fhir+json\r\n\r\n`;
    const sockets = [];
    const before = socketCount(server.proc.pid);
    try {
        for (let i = 0; i < n; i += 100) {
            const batch = Array.from({ length: Math.min(100, n - i) }, () =>
                new Promise((resolve, reject) => {
                    const s = net.connect({ host: '127.0.0.1', port: Number(port) });
                    sockets.push(s);
                    let head = '';
                    s.on('error', reject);
                    s.on('connect', () => s.write(request));
                    s.on('data', (d) => {
                        head += d;
                        if (/^HTTP\/1\.1 200/.test(head) && head.includes('\r\n\r\n')) resolve();
                        else if (/^HTTP\/1\.1 [^2]/.test(head)) reject(new Error(`connection ${sockets.length}: ${head.split('\r\n')[0]}`));
                    });
                }),
            );
            await Promise.all(batch);
        }
        if (sockets.some((s) => s.destroyed)) throw new Error('the server closed connections that were to stay open');
        return { rss_1000_connections_mb: rssMb(server.proc.pid), server_sockets_opened: socketCount(server.proc.pid) - before };
    } finally {
        for (const s of sockets) s.destroy();
    }
}

// ---- the report ----

function printTables(result, rows) {
    const { ceilings, memory, scaling } = result;
    const ratio = (row, kind, ceiling) => (row.ceiling === kind && row.rps ? `${round((100 * row.rps) / ceiling, 0)}%` : '');
    const notes = (r) =>
        [
            r.note ?? '',
            r.unit && r.unit !== 'ms commit -> delivery' ? r.unit : '',
            r.ceiling === 'write' && r.rps && ceilings.appointment_storage_tps ? `${round((100 * r.rps) / ceilings.appointment_storage_tps, 0)}% of the storage floor` : '',
            r.bookings_per_s !== undefined ? `${r.bookings_per_s} bookings/s` : '',
            // $hold and $book each write the Appointment once
            r.bookings_per_s && ceilings.appointment_storage_tps ? `${round((200 * r.bookings_per_s) / ceilings.appointment_storage_tps, 0)}% of the storage floor` : '',
            r.wins !== undefined ? `${r.wins} wins, ${r.conflicts} conflicts, ${r.double_bookings} double bookings (${r.double_bookings_sched_busy} in sched_busy)` : '',
            r.delivery_ms ? `${r.active_subscriptions} subscriptions; commit -> delivery between ${r.delivery_after_answer_ms.p50} and ${r.delivery_ms.p50} ms (p50)` : '',
        ]
            .filter(Boolean)
            .join('; ');
    console.log(`\nceilings: /healthz ${ceilings.healthz_rps} req/s, pgbench -S ${ceilings.pgbench_select_tps} tps, pgbench -N ${ceilings.pgbench_write_tps} tps, Appointment storage floor ${ceilings.appointment_storage_tps ?? '-'} tps; seeding ${result.seed_slots_per_second} Slots/s`);
    if (memory) console.log(`memory: ${memory.idle_rss_mb} MB idle, ${memory.rss_1000_connections_mb} MB with ${IDLE_CONNECTIONS} open connections (${memory.server_sockets_opened} server sockets)`);
    console.log('\n| scenario | req/s | vs pgbench -S | vs pgbench -N | p50 ms | p99 ms | p99.9 ms | peak RSS MB | errors | notes |');
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const r of rows)
        console.log(`| ${r.name} | ${r.rps ?? ''} | ${ratio(r, 'select', ceilings.pgbench_select_tps)} | ${ratio(r, 'write', ceilings.pgbench_write_tps)} | ${r.p50_ms ?? ''} | ${r.p99_ms ?? ''} | ${r.p999_ms ?? ''} | ${r.peak_rss_mb} | ${r.errors} | ${notes(r)} |`);
    if (!scaling.length) return;
    console.log('\n| scaling probe (1 connection) | Slots | Appointments | p50 ms | p99 ms | req/s | results per request |');
    console.log('| --- | --- | --- | --- | --- | --- | --- |');
    for (const s of scaling) console.log(`| ${s.probe} | ${s.slots} | ${s.appointments} | ${s.p50_ms} | ${s.p99_ms} | ${s.rps} | ${s.results} |`);
}
