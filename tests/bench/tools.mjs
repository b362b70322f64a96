// Helpers shared by the bench drivers (bench.mjs, hl7.mjs, scaling.mjs, subscriptions.mjs): child processes, psql,
// wrk, percentiles and the server's memory.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { SOURCE_DIR } from '../lib/harness.mjs';

export const PG_BIN = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
export const LUA_DIR = path.join(SOURCE_DIR, 'tests', 'bench', 'lua');

export const round = (x, d = 2) => (x === null || x === undefined ? x : Math.round(x * 10 ** d) / 10 ** d);

/** The q-quantile (0..1) of a list of numbers (nearest rank); null for an empty list. */
export function quantile(xs, q) {
    if (!xs.length) return null;
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

/** Runs a command to completion; resolves with stdout (rejects with stderr on a non-zero exit). */
export function run(cmd, args, { env = process.env } = {}) {
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

/** Runs SQL against a database URL with psql; resolves with the unaligned, tuples-only output. */
export function psql(url, sql) {
    return run(path.join(PG_BIN, 'psql'), ['-X', '-qAt', '-v', 'ON_ERROR_STOP=1', '-c', sql, url]);
}

/** The URL of another database in the same cluster. */
export const databaseUrl = (url, db) => url.replace(/\/[^/]*$/, `/${db}`);

/** A memory figure of a process from /proc/<pid>/status in MB: VmRSS (now) or VmHWM (peak since start or reset). */
export function rssMb(pid, field = 'VmRSS') {
    const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? round(Number(m[1]) / 1024, 1) : null;
}

/**
 * Resets the peak (VmHWM) to the current RSS, so that each scenario reports its own peak; false where the kernel does
 * not allow it (then the peak is the peak since start).
 */
export function resetPeakRss(pid) {
    try {
        fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
        return true;
    } catch {
        return false;
    }
}

/** CPU time (user + system) a process used so far, in clock ticks. */
function cpuTicks(pid) {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(fields[11]) + Number(fields[12]);
}

/**
 * Waits until a process is idle (under 5% of a core over 200 ms), at most `maxMs`: requests a client gave up on can
 * keep a server busy after wrk stopped, and would land in the next scenario.
 */
export async function waitIdle(pid, maxMs = 60_000) {
    const deadline = Date.now() + maxMs;
    let before = cpuTicks(pid);
    while (Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
        const now = cpuTicks(pid);
        if (now - before <= 1) return;
        before = now;
    }
}

/** Open sockets of a process (its file descriptors that are sockets). */
export const socketCount = (pid) => fs.readdirSync(`/proc/${pid}/fd`).filter((fd) => {
    try {
        return fs.readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:');
    } catch {
        return false;
    }
}).length;

/**
 * wrk with a Lua script from tests/bench/lua; the script's done() prints one JSON line (common.lua bench_done), so
 * nothing is parsed out of wrk's human-readable table. Latencies come back in ms.
 */
export async function wrk({ url, script, env = {}, connections, threads = 2, seconds, warmupSeconds = 0 }) {
    threads = Math.min(threads, connections);
    // a request slower than wrk's default timeout (2 s) would count as an error, not as latency
    const args = (secs) => [`-t${threads}`, `-c${connections}`, `-d${secs}s`, '--timeout', '60s', '--latency', '-s', path.join(LUA_DIR, script), url];
    const runEnv = { env: { ...process.env, BENCH_LUA_DIR: LUA_DIR, BENCH_THREADS: String(threads), ...env } };
    // untimed first: the server's and PostgreSQL's per-connection caches and kept plans for this request are made here
    if (warmupSeconds > 0) await run('wrk', args(warmupSeconds), runEnv);
    const out = await run('wrk', args(seconds), runEnv);
    const line = out.split('\n').find((l) => l.startsWith('BENCH '));
    if (!line) throw new Error(`wrk printed no BENCH line:\n${out}`);
    const r = JSON.parse(line.slice(6));
    return { ...r, p50: r.p50 / 1000, p99: r.p99 / 1000, p999: r.p999 / 1000 };
}
