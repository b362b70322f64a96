// Subscription delivery latency (docs/subscriptions.md, docs/performance notes in the same file): a private
// PostgreSQL, the release server, N active rest-hook Subscriptions (default 1,000) each watching its own Patient
// identifier, then writes one at a time, each matching exactly one Subscription. The commit happens between sending
// the write and receiving its 201, so commit -> delivery lies between two measured bounds: arrival at a real HTTP
// receiver minus the 201's arrival (lower; 0 when the notification came first) and arrival minus the write's start
// (upper, which includes the write itself). Both as p50/p99/max, with the write's own response time. Results go to
// tests/bench/results/<date>-<sha>-subscriptions.json.
//
//   make bench-subscriptions            (or: FHIRSCHED_BIN=build/fhirsched node tests/bench/subscriptions.mjs)
//   BENCH_SUBSCRIPTIONS=1000 BENCH_WRITES=500 ...
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { SOURCE_DIR, fhir, sleep, startPrivateCluster, startServer } from '../lib/harness.mjs';

const SUBS = Number(process.env.BENCH_SUBSCRIPTIONS || 1000);
const WRITES = Number(process.env.BENCH_WRITES || 500);
const GAP_MS = Number(process.env.BENCH_GAP_MS || 10);

const quantile = (xs, q) => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const round = (x) => Math.round(x * 100) / 100;

const arrivals = new Map(); // Content-Location -> arrival time
let handshakes = 0;
const receiver = http.createServer((req, res) => {
    const at = performance.now();
    req.resume();
    req.on('end', () => {
        if (req.headers['x-fhir-event'] === 'handshake') handshakes++;
        else arrivals.set(req.headers['content-location'], at);
        res.end();
    });
});
await new Promise((ok) => receiver.listen(0, '127.0.0.1', ok));
const port = receiver.address().port;

const cluster = await startPrivateCluster();
const server = await startServer({
    databaseUrl: cluster.url,
    env: {
        FHIRSCHED_SUBSCRIPTIONS_ENDPOINT_ALLOWLIST: `http://127.0.0.1:${port}/`,
        FHIRSCHED_THREADS: String(Math.max(1, os.cpus().length)),
        FHIRSCHED_LOG_ACCESS: 'false',
    },
});
try {
    const t0 = performance.now();
    for (let i = 0; i < SUBS; i += 50) {
        await Promise.all(
            Array.from({ length: Math.min(50, SUBS - i) }, (_, k) =>
                fhir(server, 'POST', '/Subscription', {
                    body: {
                        resourceType: 'Subscription', status: 'requested', reason: 'bench',
                        criteria: `Patient?identifier=urn:bench|p${i + k}`,
                        channel: { type: 'rest-hook', endpoint: `http://127.0.0.1:${port}/hook` },
                    },
                }),
            ),
        );
    }
    while (handshakes < SUBS) await sleep(50);
    await sleep(2000); // every status write (requested -> active) and the reloads it causes have settled
    const setupS = (performance.now() - t0) / 1000;

    const latencies = [], afterAnswer = [], writes = [];
    for (let n = 0; n < WRITES; n++) {
        const i = n % SUBS;
        const sent = performance.now();
        const res = await fhir(server, 'POST', '/Patient', {
            body: { resourceType: 'Patient', identifier: [{ system: 'urn:bench', value: `p${i}` }] },
        });
        const answered = performance.now();
        writes.push(answered - sent);
        const loc = `${server.base}/Patient/${res.json.id}/_history/1`;
        while (!arrivals.has(loc)) await sleep(0.2);
        latencies.push(arrivals.get(loc) - sent);
        afterAnswer.push(Math.max(0, arrivals.get(loc) - answered));
        await sleep(GAP_MS);
    }
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: SOURCE_DIR }).toString().trim();
    const result = {
        machine: `${os.cpus().length} × ${os.cpus()[0].model}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.release()}`,
        scenario: 'subscription rest-hook delivery, one matching subscription per write',
        active_subscriptions: SUBS,
        writes: WRITES,
        setup_seconds: round(setupS),
        // upper bound of commit -> delivery: from sending the write
        delivery_ms: { p50: round(quantile(latencies, 0.5)), p99: round(quantile(latencies, 0.99)), max: round(Math.max(...latencies)) },
        // lower bound: from the write's answer (after its commit)
        delivery_after_answer_ms: {
            p50: round(quantile(afterAnswer, 0.5)), p99: round(quantile(afterAnswer, 0.99)), max: round(Math.max(...afterAnswer)),
        },
        write_ms: { p50: round(quantile(writes, 0.5)), p99: round(quantile(writes, 0.99)) },
    };
    const out = path.join(SOURCE_DIR, 'tests', 'bench', 'results', `${new Date().toISOString().slice(0, 10)}-${sha}-subscriptions.json`);
    fs.writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
    console.log(JSON.stringify(result, null, 2));
    const d = result.delivery_ms, a = result.delivery_after_answer_ms, w = result.write_ms;
    console.log(
        '| active subscriptions | writes | write start -> delivery p50 / p99 / max | 201 -> delivery p50 / p99 / max | write p50 / p99 |\n' +
            '| --- | --- | --- | --- | --- |\n' +
            `| ${SUBS} | ${WRITES} | ${d.p50} / ${d.p99} / ${d.max} ms | ${a.p50} / ${a.p99} / ${a.max} ms | ${w.p50} / ${w.p99} ms |`,
    );
    console.log(`written to ${out}`);
} finally {
    await server.stop();
    await cluster.destroy();
    receiver.close();
}
