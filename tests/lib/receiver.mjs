// A real HTTP endpoint for rest-hook Subscriptions: records every request (method, path, headers, body, time), answers
// a settable status, and can be stopped and started again on the same port.
import http from 'node:http';
import { sleep } from './harness.mjs';

export async function startReceiver({ port = 0 } = {}) {
    const r = {
        requests: [],
        status: 200,
        port,
        server: null,
        url(p = '/hook') {
            return `http://127.0.0.1:${r.port}${p}`;
        },
        async start() {
            r.server = http.createServer((req, res) => {
                let body = '';
                req.on('data', (d) => (body += d));
                req.on('end', () => {
                    r.requests.push({ method: req.method, path: req.url, headers: req.headers, body, at: Date.now() });
                    res.statusCode = r.status;
                    res.end();
                });
            });
            await new Promise((ok, fail) => {
                r.server.once('error', fail);
                r.server.listen(r.port, '127.0.0.1', ok);
            });
            r.port = r.server.address().port;
        },
        async stop() {
            if (!r.server) return;
            r.server.closeAllConnections();
            await new Promise((ok) => r.server.close(ok));
            r.server = null;
        },
        /** Waits until predicate(requests) is true; returns the requests. */
        async waitFor(predicate, what = 'requests', timeoutMs = 10_000) {
            const deadline = Date.now() + timeoutMs;
            while (!predicate(r.requests)) {
                if (Date.now() > deadline)
                    throw new Error(`receiver: timed out waiting for ${what}; got ${JSON.stringify(r.requests.map((q) => [q.headers['x-fhir-event'], q.headers['content-location']]))}`);
                await sleep(20);
            }
            return r.requests;
        },
        /** Requests of one subscription that are notifications (not handshakes). */
        notifications(subId) {
            return r.requests.filter((q) => q.headers['x-fhir-subscription'] === `Subscription/${subId}` && q.headers['x-fhir-event'] !== 'handshake');
        },
    };
    await r.start();
    return r;
}
