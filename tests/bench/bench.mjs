// `make bench` (issue 8), first part: a private PostgreSQL, the release server, the standard dataset seeded through the
// server's own API, PostgreSQL's and the HTTP layer's ceilings, and the first scenarios run with wrk at 32 connections.
// Prints a Markdown table and writes tests/bench/results/<date>-<sha>.json. Still to come: $find over 20 practitioners
// and a room, $hold/$book (plain and contended), HL7 ingest, subscription fan-out as scenarios, and the scaling run.
//
//   make bench                       (or: FHIRSCHED_BIN=build/fhirsched node tests/bench/bench.mjs)
//   BENCH_SECONDS=10 BENCH_CONNECTIONS=32 ...
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { SOURCE_DIR, fhir, startPrivateCluster, startServer } from '../lib/harness.mjs';

const SECONDS = Number(process.env.BENCH_SECONDS || 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS || 32);
const PG_BIN = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

/** Runs a command to completion; resolves with stdout (throws with stderr on a non-zero exit). */
function run(cmd, args, { env = process.env } = {}) {
    return new Promise((resolve, reject) => {
        const p = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        p.stdout.on('data', (d) => (out += d));
        p.stderr.on('data', (d) => (err += d));
        p.on('error', reject);
        p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')}: exit ${code}\n${err}`))));
    });
}

/** Peak resident memory of a process so far (VmHWM), in MB. */
const peakRssMb = (pid) => {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? round(Number(m[1]) / 1024, 1) : null;
};

/**
 * wrk with the latency distribution and a Lua script; the script's done() prints one JSON line with the percentiles,
 * so nothing is parsed out of wrk's human-readable table.
 */
async function wrk(url, script, env = {}) {
    const lua = path.join(SOURCE_DIR, 'tests', 'bench', 'lua', script);
    const out = await run('wrk', ['-t2', `-c${CONNECTIONS}`, `-d${SECONDS}s`, '--latency', '-s', lua, url], {
        env: { ...process.env, BENCH_LUA_DIR: path.dirname(lua), ...env },
    });
    const line = out.split('\n').find((l) => l.startsWith('BENCH '));
    if (!line) throw new Error(`wrk printed no BENCH line:\n${out}`);
    return JSON.parse(line.slice(6));
}

async function pgbench(cluster, mode) {
    const url = cluster.url.replace(/\/fhirsched$/, '/pgbench');
    const out = await run(path.join(PG_BIN, 'pgbench'), [...mode, '-M', 'prepared', `-c${CONNECTIONS}`, '-j2', `-T${SECONDS}`, '-n', url]);
    return round(Number(/tps = ([\d.]+)/.exec(out)[1]), 0);
}

// ---- the standard dataset (issue 8): 1 clinic, 20 practitioners with roles and hours, 20 schedules, 20 x 30 days x 16
// half-hour Slots = 9,600 Slots, 200 Patients ----

const DAY0 = new Date(Date.UTC(2027, 0, 4)); // a Monday, in the future of any run
const iso = (d) => d.toISOString().replace('.000Z', 'Z');

function seedBundles() {
    const entries = [
        { resourceType: 'Location', id: 'bench-clinic', status: 'active', name: 'Bench clinic', mode: 'instance' },
        {
            resourceType: 'HealthcareService',
            id: 'bench-svc',
            active: true,
            name: 'General consultation',
            location: [{ reference: 'Location/bench-clinic' }],
            type: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/service-type', code: '124' }] }],
        },
    ];
    for (let p = 0; p < 20; p++) {
        entries.push({ resourceType: 'Practitioner', id: `bench-dr-${p}`, active: true, name: [{ family: `Bench${p}` }] });
        entries.push({
            resourceType: 'PractitionerRole',
            id: `bench-role-${p}`,
            active: true,
            practitioner: { reference: `Practitioner/bench-dr-${p}` },
            location: [{ reference: 'Location/bench-clinic' }],
            healthcareService: [{ reference: 'HealthcareService/bench-svc' }],
            availableTime: [{ daysOfWeek: ['mon', 'tue', 'wed', 'thu', 'fri'], availableStartTime: '08:00:00', availableEndTime: '16:00:00' }],
        });
        entries.push({
            resourceType: 'Schedule',
            id: `bench-sched-${p}`,
            active: true,
            actor: [{ reference: `Practitioner/bench-dr-${p}` }, { reference: 'Location/bench-clinic' }],
        });
    }
    for (let i = 0; i < 200; i++)
        entries.push({ resourceType: 'Patient', id: `bench-pat-${i}`, name: [{ family: `Patient${i}` }], identifier: [{ system: 'urn:bench', value: `P${i}` }] });
    const base = entries.map((r) => ({ fullUrl: `urn:uuid:${r.id}`, resource: r, request: { method: 'PUT', url: `${r.resourceType}/${r.id}` } }));
    const slots = [];
    for (let p = 0; p < 20; p++)
        for (let d = 0; d < 30; d++)
            for (let h = 0; h < 16; h++) {
                const start = new Date(DAY0.getTime() + d * 86400_000 + (8 * 60 + h * 30) * 60_000);
                const id = `bench-slot-${p}-${d}-${h}`;
                slots.push({
                    resource: { resourceType: 'Slot', id, schedule: { reference: `Schedule/bench-sched-${p}` }, status: 'free', start: iso(start), end: iso(new Date(start.getTime() + 30 * 60_000)) },
                    request: { method: 'PUT', url: `Slot/${id}` },
                });
            }
    return { base, slots };
}

async function postTransaction(server, entries) {
    const res = await fhir(server, 'POST', '/', {
        body: { resourceType: 'Bundle', type: 'transaction', entry: entries },
        headers: { prefer: 'return=minimal' },
        timeoutMs: 120_000,
    });
    if (res.status !== 200) throw new Error(`seeding transaction answered ${res.status}: ${res.text.slice(0, 500)}`);
}

// ---- the run ----

const started = new Date();
const sha = execFileSync('git', ['-C', SOURCE_DIR, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
const cluster = await startPrivateCluster();
let server;
try {
    await run(path.join(PG_BIN, 'createdb'), ['-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'postgres', 'pgbench']);
    await run(path.join(PG_BIN, 'pgbench'), ['-i', '-s', '10', '-q', cluster.url.replace(/\/fhirsched$/, '/pgbench')]);
    server = await startServer({
        databaseUrl: cluster.url,
        env: { FHIRSCHED_THREADS: String(os.cpus().length), FHIRSCHED_RATE_LIMIT_PER_SECOND: '0', FHIRSCHED_LOG_ACCESS: 'false', FHIRSCHED_AUDIT_ENABLED: 'false' },
    });
    const { base, slots } = seedBundles();
    await postTransaction(server, base);
    const t0 = performance.now();
    for (let i = 0; i < slots.length; i += 400) await postTransaction(server, slots.slice(i, i + 400));
    const seedSlotsPerSecond = round(slots.length / ((performance.now() - t0) / 1000), 0);

    const ceilings = {
        healthz_rps: round((await wrk(`${server.root}/healthz`, 'get.lua')).rps, 0),
        pgbench_select_tps: await pgbench(cluster, ['-S']),
        pgbench_write_tps: await pgbench(cluster, ['-N']),
    };
    // Measure a settled database: the seeding and pgbench's writes leave autovacuum, autoanalyze and a checkpoint to
    // come, which otherwise land inside the first scenario as a tail of slow requests.
    const settle = async () => {
        for (const db of ['fhirsched', 'pgbench']) await run(path.join(PG_BIN, 'psql'), ['-qAt', '-c', 'VACUUM ANALYZE', cluster.url.replace(/\/fhirsched$/, `/${db}`)]);
        await run(path.join(PG_BIN, 'psql'), ['-qAt', '-c', 'CHECKPOINT', cluster.url]);
    };
    await settle();
    const scenarios = [];
    const scenario = async (name, url, script, env) => {
        const r = await wrk(url, script, env);
        scenarios.push({ name, rps: round(r.rps, 0), p50_ms: round(r.p50 / 1000), p99_ms: round(r.p99 / 1000), p999_ms: round(r.p999 / 1000), peak_rss_mb: peakRssMb(server.proc.pid), errors: r.errors });
    };
    await scenario('GET /Slot/{id}', `${server.base}`, 'slot-read.lua');
    const days = Array.from({ length: 31 }, (_, d) => iso(new Date(DAY0.getTime() + d * 86400_000)).slice(0, 10)).join(',');
    await scenario('GET /Slot day search', `${server.base}`, 'slot-day.lua', { BENCH_DAYS: days });
    // a scenario only counts when it does the work: this $find must find proposals in the seeded hours
    const probe = await fhir(server, 'GET', `/Appointment/$find?start=${days.split(',')[1]}&end=${days.split(',')[8]}&practitioner=Practitioner/bench-dr-3&_count=20`);
    if (probe.status !== 200 || !(probe.json.total > 0)) throw new Error(`$find over the seeded data found nothing: ${probe.text.slice(0, 400)}`);
    await scenario('$find, 1 practitioner x 7 days', `${server.base}`, 'find-one.lua', { BENCH_DAYS: days });
    await scenario('POST /Appointment', `${server.base}`, 'appointment-create.lua');

    const result = {
        machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memory_gb: round(os.totalmem() / 2 ** 30, 1), kernel: os.release() },
        date: started.toISOString(),
        git: sha,
        seconds: SECONDS,
        connections: CONNECTIONS,
        seed_slots_per_second: seedSlotsPerSecond,
        ceilings,
        scenarios,
        scaling: [],
    };
    const out = path.join(SOURCE_DIR, 'tests', 'bench', 'results', `${started.toISOString().slice(0, 10)}-${sha}.json`);
    fs.writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
    const ratio = (rps, ceiling) => `${round((100 * rps) / ceiling, 0)}%`;
    console.log(`\nceilings: /healthz ${ceilings.healthz_rps} req/s, pgbench -S ${ceilings.pgbench_select_tps} tps, pgbench -N ${ceilings.pgbench_write_tps} tps; seeding ${seedSlotsPerSecond} Slots/s\n`);
    console.log('| scenario | req/s | vs pgbench -S | vs pgbench -N | p50 ms | p99 ms | p99.9 ms | peak RSS MB | errors |');
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const s of scenarios)
        console.log(`| ${s.name} | ${s.rps} | ${ratio(s.rps, ceilings.pgbench_select_tps)} | ${ratio(s.rps, ceilings.pgbench_write_tps)} | ${s.p50_ms} | ${s.p99_ms} | ${s.p999_ms} | ${s.peak_rss_mb} | ${s.errors} |`);
    console.log(`\nwritten: ${path.relative(SOURCE_DIR, out)}`);
} finally {
    await server?.stop();
    await cluster.destroy();
}
