// Subscriptions across fhirsched instances on one database (docs/subscriptions.md, "Across instances", "Durable and
// at-least-once"): a websocket bound on one instance hears changes made through another; a rest-hook made on one
// instance gets changes made through another, in order, at least once (a repeat carries the same Content-Location);
// delivery moves to the instance that is left when one stops; a change pending delivery when the only instance stops
// (or is killed in the middle of a delivery) arrives through the next instance; websockets are closed with 1001 at
// shutdown.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { create, createTestDatabase, expectStatus, fhir, sleep, startServer } from '../lib/harness.mjs';
import { refOf, startReceiver, startWsClient, versionOf, waitUntil } from '../lib/receiver.mjs';

const WAIT = 30_000;

const word = (p = 'N') => `${p}${randomBytes(5).toString('hex')}`;

let hour = 0;
function appointment(dr, patient, { status = 'booked', ...extra } = {}) {
    const start = Date.UTC(2031, 4, 4, 0, 0) + hour++ * 3600_000;
    return {
        resourceType: 'Appointment',
        status,
        start: new Date(start).toISOString().replace('.000', ''),
        end: new Date(start + 30 * 60_000).toISOString().replace('.000', ''),
        participant: [
            { actor: { reference: `Patient/${patient.id}` }, status: 'accepted' },
            { actor: { reference: `Practitioner/${dr.id}` }, required: 'required', status: 'accepted' },
        ],
        ...extra,
    };
}

function restHook(criteria, endpoint, channel = {}) {
    return { resourceType: 'Subscription', status: 'requested', reason: 'instances test', criteria, channel: { type: 'rest-hook', endpoint, ...channel } };
}

async function waitStatus(server, id, status, timeoutMs = WAIT) {
    return waitUntil(async () => {
        const res = await fhir(server, 'GET', `/Subscription/${id}`);
        return res.json?.status === status ? res.json : null;
    }, `Subscription/${id} to be ${status}`, timeoutMs);
}

async function createActive(server, sub) {
    const res = await fhir(server, 'POST', '/Subscription', { body: sub });
    expectStatus(res, 201);
    return waitStatus(server, res.json.id, 'active');
}

/**
 * At-least-once and in order: the Content-Locations, with repeats of one notification folded, are `expected`; a
 * repeat is the same request again (same event, same body). Returns how many repeats there were.
 */
function assertDeliveredInOrder(reqs, expected, describe) {
    const locs = reqs.map((q) => q.headers['content-location']);
    for (const l of locs) assert.ok(expected.includes(l), `an unexpected notification ${l}: ${describe()}`);
    const firstSeen = locs.filter((l, i) => locs.indexOf(l) === i);
    assert.deepEqual(firstSeen, expected, `each change at least once, in order: ${describe()}`);
    for (const l of expected) {
        const copies = reqs.filter((q) => q.headers['content-location'] === l);
        for (const c of copies.slice(1)) {
            assert.equal(c.headers['x-fhir-event'], copies[0].headers['x-fhir-event'], `a repeat of ${l} has the same event`);
            assert.equal(c.body, copies[0].body, `a repeat of ${l} has the same body`);
        }
    }
    return locs.length - expected.length;
}

describe('two instances on one database', () => {
    let db, a, b, receiver, env, pat;
    before(async () => {
        receiver = await startReceiver();
        db = await createTestDatabase();
        env = {
            FHIRSCHED_SUBSCRIPTIONS_ENDPOINT_ALLOWLIST: `http://127.0.0.1:${receiver.port}/`,
            FHIRSCHED_SUBSCRIPTIONS_RETRY_BASE_MS: '50',
            FHIRSCHED_SUBSCRIPTIONS_RETRY_MAX_MS: '200',
            FHIRSCHED_SUBSCRIPTIONS_TIMEOUT_MS: '1000',
            FHIRSCHED_SUBSCRIPTIONS_MAX_FAILURES: '1000',
            FHIRSCHED_SUBSCRIPTIONS_HEARTBEAT_SECONDS: '1',
        };
        a = await startServer({ databaseUrl: db.url, env });
        b = await startServer({ databaseUrl: db.url, env });
        pat = await create(a, { resourceType: 'Patient', name: [{ family: word('Pat') }] });
    });
    after(async () => {
        try {
            await a?.stop();
            await b?.stop();
        } finally {
            await db?.drop();
            await receiver?.stop();
        }
    });
    const practitioner = (s) => create(s, { resourceType: 'Practitioner', active: true, name: [{ family: word('Dr') }] });

    it('a websocket bound on B hears a change POSTed to A (with its payload), and one bound on A hears a change made on B', async () => {
        const dr = await practitioner(a);
        const res = await fhir(a, 'POST', '/Subscription', {
            body: { resourceType: 'Subscription', status: 'requested', reason: 't', criteria: `Appointment?actor=Practitioner/${dr.id}`, channel: { type: 'websocket', payload: 'application/fhir+json' } },
        });
        expectStatus(res, 201);
        const id = res.json.id;
        const onB = await startWsClient(b);
        const onA = await startWsClient(a);
        try {
            await onB.bind(id);
            await onA.bind(id);
            const viaA = await create(a, appointment(dr, pat));
            await onB.waitFor((m) => m.includes(`ping ${id}`) && m.some((x) => x.startsWith('{')), 'B hears the change made on A', WAIT);
            const bundle = JSON.parse(onB.messages.find((x) => x.startsWith('{')));
            assert.equal(bundle.entry[0].resource.id, viaA.id);
            assert.equal(bundle.entry[0].resource.meta.versionId, '1');
            const viaB = await create(b, appointment(dr, pat));
            await onA.waitFor((m) => m.filter((x) => x.startsWith('{')).some((x) => JSON.parse(x).entry[0].resource.id === viaB.id), 'A hears the change made on B', WAIT);
            await onB.waitFor((m) => m.filter((x) => x === `ping ${id}`).length >= 2, 'B hears its own too', WAIT);
            await sleep(300);
            for (const c of [onA, onB]) assert.equal(c.messages.filter((x) => x === `ping ${id}`).length, 2, `one ping per change on each socket: ${c.messages.filter((x) => !x.startsWith('{'))}`);
        } finally {
            await onA.close();
            await onB.close();
        }
    });

    it('a rest-hook made on A gets changes made on B and A, in commit order, at least once each', async (t) => {
        const dr = await practitioner(b);
        const sub = await createActive(a, restHook(`Appointment?actor=Practitioner/${dr.id}`, receiver.url('/multi'), { payload: 'application/fhir+json' }));
        const made = [];
        for (let i = 0; i < 6; i++) {
            const via = i % 3 === 2 ? a : b;
            const ap = await create(via, appointment(dr, pat));
            made.push(`/Appointment/${ap.id}/_history/1`);
        }
        await receiver.waitFor(() => new Set(receiver.notifications(sub.id).map((q) => q.headers['content-location'])).size >= 6, 'six notifications', WAIT);
        await sleep(300);
        const ns = receiver.notifications(sub.id);
        // every instance names the resource by its own base URL: compare from /Appointment on
        const tailOf = (q) => q.headers['content-location'].replace(/^.*(\/Appointment\/)/, '$1');
        const expected = made;
        const norm = ns.map((q) => ({ ...q, headers: { ...q.headers, 'content-location': tailOf(q) } }));
        const repeats = assertDeliveredInOrder(norm, expected, () => receiver.describe(ns));
        if (repeats) t.diagnostic(`${repeats} repeated notification(s)`);
        for (const q of ns) {
            assert.match(q.headers['content-location'], new RegExp(`^http://127\\.0\\.0\\.1:(${a.port}|${b.port})/fhir/Appointment/`), 'a Content-Location of one of the instances');
            assert.equal(JSON.parse(q.body).meta.versionId, versionOf(q));
        }
    });

    it('when A stops, B delivers what A was delivering; a new instance takes over when B stops; nothing is lost', async (t) => {
        const dr = await practitioner(a);
        const sub = await createActive(a, restHook(`Appointment?actor=Practitioner/${dr.id}`, receiver.url('/failover')));
        const made = [];
        const book = async (s) => made.push(`Appointment/${(await create(s, appointment(dr, pat))).id}`);
        await book(a);
        await book(b);
        await receiver.waitFor(() => receiver.notifications(sub.id).length >= 2, 'two before the stop', WAIT);
        await a.stop();
        a = null;
        await book(b);
        await book(b);
        await receiver.waitFor(() => new Set(receiver.notifications(sub.id).map(refOf)).size >= 4, 'B delivers after A stopped', WAIT);
        a = await startServer({ databaseUrl: db.url, env });
        await b.stop();
        b = null;
        await book(a);
        await receiver.waitFor(() => new Set(receiver.notifications(sub.id).map(refOf)).size >= 5, 'the new instance delivers after B stopped', WAIT);
        b = await startServer({ databaseUrl: db.url, env });
        await book(b);
        await receiver.waitFor(() => new Set(receiver.notifications(sub.id).map(refOf)).size >= 6, 'both up again', WAIT);
        await sleep(300);
        const ns = receiver.notifications(sub.id);
        const norm = ns.map((q) => ({ ...q, headers: { ...q.headers, 'content-location': refOf(q) } }));
        const repeats = assertDeliveredInOrder(norm, made, () => receiver.describe(ns));
        if (repeats) t.diagnostic(`${repeats} repeated notification(s)`);
        assert.equal((await fhir(b, 'GET', `/Subscription/${sub.id}`)).json.status, 'active');
    });

    it('a websocket is closed with 1001 when its instance shuts down; the other instance serves the same Subscription on', async () => {
        const dr = await practitioner(a);
        const res = await fhir(a, 'POST', '/Subscription', {
            body: { resourceType: 'Subscription', status: 'requested', reason: 't', criteria: `Appointment?actor=Practitioner/${dr.id}`, channel: { type: 'websocket' } },
        });
        const id = res.json.id;
        const onA = await startWsClient(a);
        await onA.bind(id);
        await a.stop();
        a = null;
        await waitUntil(() => onA.closed !== null, 'the close at shutdown', WAIT);
        assert.equal(onA.closed, 1001, `close code at shutdown: ${onA.closed} ${onA.reason}`);
        const onB = await startWsClient(b);
        try {
            await onB.bind(id);
            await create(b, appointment(dr, pat));
            await onB.waitFor((m) => m.includes(`ping ${id}`), 'B still delivers', WAIT);
        } finally {
            await onB.close();
        }
        a = await startServer({ databaseUrl: db.url, env });
    });
});

// ---------------------------------------------------------------------------

describe('restarts with notifications pending', () => {
    let db, receiver, env, server, pat;
    before(async () => {
        receiver = await startReceiver();
        db = await createTestDatabase();
        env = {
            FHIRSCHED_SUBSCRIPTIONS_ENDPOINT_ALLOWLIST: `http://127.0.0.1:${receiver.port}/`,
            FHIRSCHED_SUBSCRIPTIONS_RETRY_BASE_MS: '50',
            FHIRSCHED_SUBSCRIPTIONS_RETRY_MAX_MS: '200',
            FHIRSCHED_SUBSCRIPTIONS_TIMEOUT_MS: '1000',
            FHIRSCHED_SUBSCRIPTIONS_MAX_FAILURES: '1000',
        };
        server = await startServer({ databaseUrl: db.url, env });
        pat = await create(server, { resourceType: 'Patient', name: [{ family: word('Pat') }] });
    });
    after(async () => {
        try {
            await server?.stop();
        } finally {
            await db?.drop();
            await receiver?.stop();
        }
    });
    const practitioner = () => create(server, { resourceType: 'Practitioner', active: true, name: [{ family: word('Dr') }] });

    it('the only instance stops with changes pending (endpoint down); a new instance delivers them when the endpoint is back, in order', async () => {
        const dr = await practitioner();
        const sub = await createActive(server, restHook(`Appointment?actor=Practitioner/${dr.id}&status=booked`, receiver.url('/pending'), { payload: 'application/fhir+json' }));
        const first = await create(server, appointment(dr, pat));
        await receiver.waitFor(() => receiver.notifications(sub.id).length >= 1, 'the first change', WAIT);
        await receiver.stop();
        const made = [`Appointment/${first.id}`];
        let cancelled;
        try {
            const p1 = await create(server, appointment(dr, pat));
            cancelled = await fhir(server, 'PUT', `/Appointment/${p1.id}`, { body: { ...p1, status: 'cancelled' } });
            expectStatus(cancelled, 200);
            const p2 = await create(server, appointment(dr, pat));
            made.push(`Appointment/${p1.id}`, `Appointment/${p1.id}`, `Appointment/${p2.id}`);
            await sleep(400); // some refused attempts
            await server.stop();
            server = null;
            server = await startServer({ databaseUrl: db.url, env });
        } finally {
            await receiver.start();
        }
        await receiver.waitFor(() => receiver.notifications(sub.id).length >= 4, 'the three pending notifications', WAIT);
        await sleep(300);
        const ns = receiver.notifications(sub.id);
        const got = ns.map((q) => [refOf(q), versionOf(q), q.headers['x-fhir-event']]);
        assert.deepEqual(
            got.filter((g, i) => i === 0 || JSON.stringify(g) !== JSON.stringify(got[i - 1])),
            [
                [made[0], '1', 'create'],
                [made[1], '1', 'create'],
                [made[2], '2', 'update'],
                [made[3], '1', 'create'],
            ],
            receiver.describe(ns),
        );
        assert.equal(JSON.parse(ns.find((q) => versionOf(q) === '2').body).status, 'cancelled');
        assert.equal((await fhir(server, 'GET', `/Subscription/${sub.id}`)).json.status, 'active');
    });

    it('a Subscription created just before the only instance stops gets its handshake from the next instance', async () => {
        const dr = await practitioner();
        await receiver.stop();
        let id;
        try {
            const res = await fhir(server, 'POST', '/Subscription', { body: restHook(`Appointment?actor=Practitioner/${dr.id}`, receiver.url('/late')) });
            expectStatus(res, 201);
            id = res.json.id;
            await server.stop();
            server = null;
            server = await startServer({ databaseUrl: db.url, env });
            assert.equal((await fhir(server, 'GET', `/Subscription/${id}`)).json.status, 'requested');
        } finally {
            await receiver.start();
        }
        await waitStatus(server, id, 'active');
        await create(server, appointment(dr, pat));
        await receiver.waitFor(() => receiver.notifications(id).length >= 1, 'a notification', WAIT);
    });

    it('killed (SIGKILL) in the middle of a delivery: the next instance sends that notification again, and the ones after it', async () => {
        const dr = await practitioner();
        const sub = await createActive(server, restHook(`Appointment?actor=Practitioner/${dr.id}`, receiver.url('/crash')));
        receiver.answer('/crash', 'hang');
        const a1 = await create(server, appointment(dr, pat));
        const a2 = await create(server, appointment(dr, pat));
        await receiver.waitFor(() => receiver.notifications(sub.id).length >= 1, 'the delivery in flight', WAIT);
        await server.kill();
        server = null;
        receiver.answer('/crash', null);
        receiver.release(); // its client is gone
        server = await startServer({ databaseUrl: db.url, env });
        await receiver.waitFor(() => receiver.notifications(sub.id).some((q) => refOf(q) === `Appointment/${a2.id}`), 'the second change', WAIT);
        const ns = receiver.notifications(sub.id);
        const refs = ns.map(refOf);
        assert.deepEqual(
            refs.filter((r, i) => i === 0 || r !== refs[i - 1]),
            [`Appointment/${a1.id}`, `Appointment/${a2.id}`],
            receiver.describe(ns),
        );
        assert.ok(refs.filter((r) => r === `Appointment/${a1.id}`).length >= 2, 'the unanswered notification was sent again');
    });

    it('restarted with an endpoint no longer on the allowlist: that Subscription goes to error at its next delivery, and sends nothing', async () => {
        const dr = await practitioner();
        const crit = `Appointment?actor=Practitioner/${dr.id}`;
        const dropped = await createActive(server, restHook(crit, receiver.url('/dropped/x')));
        const kept = await createActive(server, restHook(crit, receiver.url('/kept/x')));
        await server.stop();
        server = null;
        server = await startServer({ databaseUrl: db.url, env: { ...env, FHIRSCHED_SUBSCRIPTIONS_ENDPOINT_ALLOWLIST: `http://127.0.0.1:${receiver.port}/kept/` } });
        const a = await create(server, appointment(dr, pat));
        await receiver.waitFor(() => receiver.notifications(kept.id).length >= 1, 'the kept endpoint', WAIT);
        const errored = await waitStatus(server, dropped.id, 'error', 10_000); // "at its next delivery" (configuration.md), not after max_failures (1000 here)
        assert.match(errored.error || '', /allow/i, `Subscription.error says why: ${errored.error}`);
        assert.equal(receiver.notifications(dropped.id).length, 0, 'nothing sent to an endpoint off the allowlist');
        assert.equal(refOf(receiver.notifications(kept.id)[0]), `Appointment/${a.id}`);
        // and it cannot be re-requested while off the list
        const again = await fhir(server, 'PUT', `/Subscription/${dropped.id}`, { body: { ...errored, status: 'requested' } });
        assert.equal(again.status, 422, `${again.status} ${again.text}`);
    });
});
