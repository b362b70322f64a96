// Receivers of Subscription notifications (docs/subscriptions.md) for the integration suites.
//
// startReceiver(): a real HTTP endpoint for rest-hook Subscriptions. It records every request (method, path, headers,
// raw header pairs, body, arrival time) and answers each with a status: the default `status`, or one set for a path
// with `answer(path, status)`. An answer of 'hang' keeps the request open without answering (until release(), stop()
// or the client gives up). stop() closes the listening socket and every connection; start() (or restart()) listens
// again on the same port, so an endpoint can be "down" and "back" under one URL.
//
//   const r = await startReceiver();
//   r.url('/hook')                                  // http://127.0.0.1:<port>/hook
//   r.answer('/hook', 500); r.answer('/hook', 'hang'); r.answer('/hook', null)   // per path; null: back to r.status
//   r.answer('/hook', (req) => (req.headers['x-fhir-event'] === 'handshake' ? 200 : 500))   // decided per request
//   await r.waitFor((reqs) => reqs.length >= 2, 5000)                            // or (predicate, 'what', timeoutMs)
//   r.notifications(subId)                          // requests of Subscription/<subId> that are not handshakes
//   r.handshakes(subId)
//
// startWsClient(): a websocket client (the `ws` package) of /fhir/websocket that keeps every text frame and counts the
// server's ping control frames.

import http from 'node:http';
import WebSocket from 'ws';
import { sleep } from './harness.mjs';

/** Polls `check` (sync or async; truthy when done) every 20 ms until `timeoutMs`; returns its value or throws. */
export async function waitUntil(check, what = 'condition', timeoutMs = 15_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const v = await check();
        if (v) return v;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'function' ? what() : what}`);
        await sleep(20);
    }
}

/** Arguments (predicate, what?, timeoutMs?) or (predicate, timeoutMs). */
function waitArgs(whatOrTimeout, timeoutMs, defWhat) {
    if (typeof whatOrTimeout === 'number') return { what: defWhat, timeoutMs: whatOrTimeout };
    return { what: whatOrTimeout ?? defWhat, timeoutMs: timeoutMs ?? 15_000 };
}

export async function startReceiver({ port = 0, status = 200 } = {}) {
    const hanging = new Set(); // responses held open by 'hang'
    const answers = new Map(); // path -> status | 'hang'
    const r = {
        requests: [],
        status,
        port,
        server: null,
        url(p = '/hook') {
            return `http://127.0.0.1:${r.port}${p}`;
        },
        /** The answer for requests to `path`: a status, 'hang', or a function of the recorded request returning one of
         * those (undefined: the default); null: the default `status` again. */
        answer(path, what) {
            if (what === null || what === undefined) answers.delete(path);
            else answers.set(path, what);
        },
        get listening() {
            return r.server !== null;
        },
        async start() {
            if (r.server) return;
            const server = http.createServer((req, res) => {
                const chunks = [];
                req.on('data', (d) => chunks.push(d));
                req.on('end', () => {
                    const path = req.url;
                    const rec = {
                        method: req.method,
                        path,
                        headers: req.headers,
                        rawHeaders: req.rawHeaders,
                        body: Buffer.concat(chunks).toString('utf8'),
                        at: Date.now(),
                        answered: null,
                    };
                    r.requests.push(rec);
                    let a = answers.has(path) ? answers.get(path) : r.status;
                    if (typeof a === 'function') a = a(rec) ?? r.status;
                    if (a === 'hang') {
                        hanging.add({ res, rec });
                        return;
                    }
                    rec.answered = a;
                    res.statusCode = a;
                    res.end();
                });
                req.on('error', () => {});
                res.on('error', () => {});
            });
            server.keepAliveTimeout = 60_000;
            await new Promise((ok, fail) => {
                server.once('error', fail);
                server.listen(r.port, '127.0.0.1', () => {
                    server.off('error', fail);
                    ok();
                });
            });
            r.server = server;
            r.port = server.address().port;
        },
        /** Answers the requests held by 'hang' (with `status`, default 200). */
        release(status = 200) {
            for (const h of hanging) {
                // a client that gave up has closed the connection: that request stays unanswered
                if (!h.res.destroyed && !h.res.socket?.destroyed) {
                    h.rec.answered = status;
                    h.res.statusCode = status;
                    h.res.end();
                }
            }
            hanging.clear();
        },
        /** Stops listening and drops every connection (held requests too): the endpoint is down. */
        async stop() {
            if (!r.server) return;
            const server = r.server;
            r.server = null;
            for (const h of hanging) h.res.destroy();
            hanging.clear();
            const closed = new Promise((ok) => server.close(ok));
            server.closeAllConnections();
            await closed;
        },
        async restart() {
            await r.stop();
            await r.start();
        },
        /** Forgets the recorded requests. */
        clear() {
            r.requests.length = 0;
        },
        /** Waits until predicate(requests) is true; returns the requests. (predicate, 'what', timeoutMs) or (predicate, timeoutMs). */
        async waitFor(predicate, whatOrTimeout, timeoutMs) {
            const w = waitArgs(whatOrTimeout, timeoutMs, 'requests');
            await waitUntil(() => predicate(r.requests), () => `${w.what}; got ${r.describe()}`, w.timeoutMs);
            return r.requests;
        },
        /** Requests of Subscription/<subId> (handshakes included). */
        of(subId) {
            return r.requests.filter((q) => q.headers['x-fhir-subscription'] === `Subscription/${subId}`);
        },
        /** Requests of Subscription/<subId> that are notifications (not handshakes). */
        notifications(subId) {
            return r.of(subId).filter((q) => q.headers['x-fhir-event'] !== 'handshake');
        },
        handshakes(subId) {
            return r.of(subId).filter((q) => q.headers['x-fhir-event'] === 'handshake');
        },
        /** A one-line summary of what arrived, for failure messages. */
        describe(list = r.requests) {
            return JSON.stringify(
                list.map((q) => [q.path, q.headers['x-fhir-subscription'], q.headers['x-fhir-event'], q.headers['content-location'], q.answered]),
            );
        },
    };
    await r.start();
    return r;
}

/** The `<version>` of a notification's Content-Location (`.../_history/<version>`), or undefined. */
export function versionOf(q) {
    return q.headers['content-location']?.match(/\/_history\/([^/]+)$/)?.[1];
}

/** `Type/id` of a notification's Content-Location. */
export function refOf(q) {
    return q.headers['content-location']?.match(/\/([A-Za-z]+\/[^/]+)\/_history\/[^/]+$/)?.[1];
}

/**
 * A websocket client of `server`'s /fhir/websocket with extra upgrade `headers`. Keeps every text frame in
 * `messages` (with `times`), counts server pings (`pings`), records the close code and reason. Rejects when the
 * upgrade is refused, with `status` set to the HTTP status.
 */
export async function startWsClient(server, headers = {}) {
    const ws = new WebSocket(`${server.root.replace(/^http/, 'ws')}/fhir/websocket`, { headers });
    const c = { ws, messages: [], times: [], pings: 0, pingTimes: [], closed: null, reason: null, errors: [] };
    ws.on('message', (m, isBinary) => {
        c.messages.push(isBinary ? `<binary ${m.length}>` : String(m));
        c.times.push(Date.now());
    });
    ws.on('ping', () => {
        c.pings++;
        c.pingTimes.push(Date.now());
    });
    ws.on('close', (code, reason) => {
        c.closed = code;
        c.reason = String(reason);
    });
    await new Promise((ok, fail) => {
        ws.once('open', ok);
        ws.once('error', (e) => {
            c.errors.push(e);
            fail(e);
        });
        ws.once('unexpected-response', (req, res) => {
            let body = '';
            res.on('data', (d) => (body += d));
            res.on('end', () => fail(Object.assign(new Error(`websocket upgrade refused: HTTP ${res.statusCode} ${body}`), { status: res.statusCode, body, headers: res.headers })));
        });
    });
    ws.on('error', (e) => c.errors.push(e));
    c.send = (text) => ws.send(text);
    /** Waits until pred(messages) is true. (pred, 'what', timeoutMs) or (pred, timeoutMs). */
    c.waitFor = async (pred, whatOrTimeout, timeoutMs) => {
        const w = waitArgs(whatOrTimeout, timeoutMs, 'messages');
        await waitUntil(() => pred(c.messages), () => `${w.what} (got ${JSON.stringify(c.messages.map((m) => (m.length > 120 ? `${m.slice(0, 120)}...` : m)))})`, w.timeoutMs);
        return c.messages;
    };
    /** Sends `bind <id>` and waits for `bound <id>`. */
    c.bind = async (id) => {
        const from = c.messages.length;
        ws.send(`bind ${id}`);
        await c.waitFor((m) => m.slice(from).some((x) => x === `bound ${id}` || x.startsWith(`error ${id} `)), `bound ${id}`);
        const answer = c.messages.slice(from).find((x) => x === `bound ${id}` || x.startsWith(`error ${id} `));
        if (answer !== `bound ${id}`) throw new Error(`bind ${id} was refused: ${answer}`);
    };
    /** Closes (code 1000 unless given) and waits for the close to complete. */
    c.close = async (code = 1000) => {
        if (c.closed === null) {
            ws.close(code);
            await waitUntil(() => c.closed !== null, 'websocket close', 10_000);
        }
        return c.closed;
    };
    return c;
}
