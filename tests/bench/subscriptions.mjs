// Scenario 7: Subscription rest-hook delivery latency (docs/subscriptions.md) with N active Subscriptions (default
// 1,000), each watching its own Patient identifier, then writes one at a time, each matching exactly one Subscription.
// The commit happens between sending the write and receiving its 201, so commit -> delivery lies between two measured
// bounds: arrival at a real HTTP receiver minus the write's start (upper, which includes the write itself) and arrival
// minus the 201's arrival (lower; 0 when the notification came first). Both as p50/p99/max, with the write's own
// response time.
//
// bench.mjs runs it as a scenario (startReceiver() before the server, whose allowlist must name the receiver, then
// benchSubscriptions()). Run alone, this file starts its own PostgreSQL and server and writes
// tests/bench/results/<date>-<sha>-subscriptions.json (make bench-subscriptions):
//
//   FHIRSCHED_BIN=build/fhirsched node tests/bench/subscriptions.mjs
//   BENCH_SUBSCRIPTIONS=1000 BENCH_WRITES=500 BENCH_GAP_MS=10 ...
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SOURCE_DIR, checkFhirAnswer, fhir, fhirUnchecked, sleep, startPrivateCluster, startServer } from '../lib/harness.mjs';
import { quantile, round } from './tools.mjs';

export const SUBSCRIPTIONS = Number(process.env.BENCH_SUBSCRIPTIONS || 1000);
export const WRITES = Number(process.env.BENCH_WRITES || 500);
export const GAP_MS = Number(process.env.BENCH_GAP_MS || 10);

/**
 * The rest-hook receiver: records each notification's arrival by its Content-Location and counts handshakes.
 * Returns { port, endpoint, allowlist, arrivals, handshakes(), close() }.
 */
export async function startReceiver() {
    const arrivals = new Map(); // Content-Location -> arrival time
    let handshakes = 0;
    const server = http.createServer((req, res) => {
        const at = performance.now();
        req.resume();
        req.on('end', () => {
            if (req.headers['x-fhir-event'] === 'handshake') handshakes++;
            else arrivals.set(req.headers['content-location'], at);
            res.end();
        });
    });
    await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
    const port = server.address().port;
    return {
        port,
        endpoint: `http://127.0.0.1:${port}/hook`,
        allowlist: `http://127.0.0.1:${port}/`,
        arrivals,
        handshakes: () => handshakes,
        close: () => new Promise((ok) => server.close(ok)),
    };
}

const summary = (xs) => ({ p50: round(quantile(xs, 0.5)), p99: round(quantile(xs, 0.99)), p999: round(quantile(xs, 0.999)), max: round(Math.max(...xs)) });

/** Creates the Subscriptions, waits until all are active, then measures `writes` deliveries. */
export async function benchSubscriptions({ server, receiver, subscriptions = SUBSCRIPTIONS, writes = WRITES, gapMs = GAP_MS }) {
    const t0 = performance.now();
    const before = receiver.handshakes();
    for (let i = 0; i < subscriptions; i += 50) {
        await Promise.all(
            Array.from({ length: Math.min(50, subscriptions - i) }, async (_, k) => {
                const res = await fhir(server, 'POST', '/Subscription', {
                    body: {
                        resourceType: 'Subscription', status: 'requested', reason: 'bench',
                        criteria: `Patient?identifier=urn:bench:subscriptions|p${i + k}`,
                        channel: { type: 'rest-hook', endpoint: receiver.endpoint },
                    },
                });
                if (res.status !== 201) throw new Error(`Subscription create answered ${res.status}: ${res.text.slice(0, 300)}`);
            }),
        );
    }
    while (receiver.handshakes() - before < subscriptions) await sleep(50);
    await sleep(2000); // every status write (requested -> active) and the reloads it causes have settled
    const setupSeconds = round((performance.now() - t0) / 1000);

    const latencies = [], afterAnswer = [], writeTimes = [];
    for (let n = 0; n < writes; n++) {
        const sent = performance.now();
        const res = await fhirUnchecked(server, 'POST', '/Patient', {
            body: { resourceType: 'Patient', identifier: [{ system: 'urn:bench:subscriptions', value: `p${n % subscriptions}` }] },
        });
        const answered = performance.now(); // before the answer's checks, which hold up this process's receiver too
        checkFhirAnswer(res);
        if (res.status !== 201) throw new Error(`Patient create answered ${res.status}: ${res.text.slice(0, 300)}`);
        writeTimes.push(answered - sent);
        const loc = `${server.base}/Patient/${res.json.id}/_history/1`;
        const waitUntil = answered + 10_000;
        while (!receiver.arrivals.has(loc)) {
            if (performance.now() > waitUntil) throw new Error(`no notification for ${loc} within 10 s`);
            await sleep(0.2);
        }
        latencies.push(receiver.arrivals.get(loc) - sent);
        afterAnswer.push(Math.max(0, receiver.arrivals.get(loc) - answered));
        await sleep(gapMs);
    }
    return {
        active_subscriptions: subscriptions,
        writes,
        setup_seconds: setupSeconds,
        // upper bound of commit -> delivery: from sending the write
        delivery_ms: summary(latencies),
        // lower bound: from the write's answer (after its commit)
        delivery_after_answer_ms: summary(afterAnswer),
        write_ms: summary(writeTimes),
    };
}

/** The standalone run (make bench-subscriptions). */
async function main() {
    const receiver = await startReceiver();
    const cluster = await startPrivateCluster();
    const server = await startServer({
        databaseUrl: cluster.url,
        env: {
            FHIRSCHED_SUBSCRIPTIONS_ENDPOINT_ALLOWLIST: receiver.allowlist,
            FHIRSCHED_THREADS: String(Math.max(1, os.cpus().length)),
            FHIRSCHED_LOG_ACCESS: 'false',
        },
    });
    try {
        const r = await benchSubscriptions({ server, receiver });
        const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: SOURCE_DIR }).toString().trim();
        const result = {
            machine: `${os.cpus().length} × ${os.cpus()[0].model}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.release()}`,
            scenario: 'subscription rest-hook delivery, one matching subscription per write',
            ...r,
        };
        const out = path.join(SOURCE_DIR, 'tests', 'bench', 'results', `${new Date().toISOString().slice(0, 10)}-${sha}-subscriptions.json`);
        fs.writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
        const d = r.delivery_ms, a = r.delivery_after_answer_ms, w = r.write_ms;
        console.log(
            '| active subscriptions | writes | write start -> delivery p50 / p99 / max | 201 -> delivery p50 / p99 / max | write p50 / p99 |\n' +
                '| --- | --- | --- | --- | --- |\n' +
                `| ${r.active_subscriptions} | ${r.writes} | ${d.p50} / ${d.p99} / ${d.max} ms | ${a.p50} / ${a.p99} / ${a.max} ms | ${w.p50} / ${w.p99} ms |`,
        );
        console.log(`written to ${out}`);
    } finally {
        await server.stop();
        await cluster.destroy();
        await receiver.close();
    }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
