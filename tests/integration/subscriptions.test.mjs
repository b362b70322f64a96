// Subscriptions (docs/subscriptions.md): rest-hook delivery to a real HTTP receiver, websocket delivery to a real
// client (the `ws` package), refusals, sealed headers, endpoint down and up, error and re-activation, two server
// instances on one database, and websocket authorization.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { createTestDatabase, expectOutcome, fhir, raw, sleep, startServer } from '../lib/harness.mjs';
import { api, makeKeys, startAuthServer, tokenFor } from '../lib/auth.mjs';
import { startReceiver } from '../lib/receiver.mjs';

const FAST = { FHIRSCHED_SUBSCRIPTIONS_RETRY_BASE_MS: '50', FHIRSCHED_SUBSCRIPTIONS_RETRY_MAX_MS: '200', FHIRSCHED_SUBSCRIPTIONS_TIMEOUT_MS: '2000' };

async function waitUntil(check, what, timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const v = await check();
        if (v) return v;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await sleep(25);
    }
}

function restHook(criteria, endpoint, extra = {}) {
    return { resourceType: 'Subscription', status: 'requested', reason: 'test', criteria, channel: { type: 'rest-hook', endpoint, ...extra } };
}

function patient(family) {
    return { resourceType: 'Patient', name: [{ family }] };
}

function appointment(patientId, status = 'booked') {
    return {
        resourceType: 'Appointment',
        status,
        start: '2030-01-02T09:00:00Z',
        end: '2030-01-02T09:30:00Z',
        participant: [{ actor: { reference: `Patient/${patientId}` }, status: 'accepted' }],
    };
}

async function createActive(server, sub) {
    const res = await fhir(server, 'POST', '/Subscription', { body: sub });
    assert.equal(res.status, 201, res.text);
    await waitUntil(async () => (await fhir(server, 'GET', `/Subscription/${res.json.id}`)).json.status === 'active', 'status active');
    return res.json;
}

/** A websocket client that keeps every text message and counts server pings. */
async function wsClient(server, headers = {}) {
    const ws = new WebSocket(`${server.root.replace('http', 'ws')}/fhir/websocket`, { headers });
    const c = { ws, messages: [], pings: 0, closed: null };
    ws.on('message', (m) => c.messages.push(String(m)));
    ws.on('ping', () => c.pings++);
    ws.on('close', (code, reason) => {
        c.closed = code;
        c.reason = String(reason);
    });
    await new Promise((ok, fail) => {
        ws.once('open', ok);
        ws.once('error', fail);
        ws.once('unexpected-response', (req, res) => fail(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
    });
    c.waitFor = (pred, what) => waitUntil(() => pred(c.messages), `${what} (got ${JSON.stringify(c.messages)})`);
    return c;
}

describe('rest-hook', () => {
    let server, receiver;
    before(async () => {
        receiver = await startReceiver();
        server = await startServer({ env: { ...FAST, FHIRSCHED_SUBSCRIPTIONS_ENDPOINT_ALLOWLIST: `http://127.0.0.1:${receiver.port}/` } });
    });
    after(async () => {
        await server?.stop();
        await receiver?.stop();
    });

    it('handshakes, then notifies create, update and delete of matching resources in order, with versions', async () => {
        const created = await fhir(server, 'POST', '/Subscription', {
            body: restHook('Patient?family=alpha', receiver.url('/a'), { payload: 'application/fhir+json', header: ['Authorization: Bearer s3cret'] }),
        });
        assert.equal(created.status, 201);
        assert.equal(created.json.status, 'requested');
        const id = created.json.id;
        const hs = await receiver.waitFor((rs) => rs.some((q) => q.headers['x-fhir-subscription'] === `Subscription/${id}`), 'handshake');
        const handshake = hs.find((q) => q.headers['x-fhir-subscription'] === `Subscription/${id}`);
        assert.equal(handshake.headers['x-fhir-event'], 'handshake');
        assert.equal(handshake.body, '');
        assert.equal(handshake.headers.authorization, 'Bearer s3cret');
        await waitUntil(async () => (await fhir(server, 'GET', `/Subscription/${id}`)).json.status === 'active', 'active');

        const p = await fhir(server, 'POST', '/Patient', { body: patient('Alpha') });
        await fhir(server, 'POST', '/Patient', { body: patient('Beta') }); // does not match
        const updated = { ...p.json, name: [{ family: 'Alpha', given: ['Ann'] }] };
        await fhir(server, 'PUT', `/Patient/${p.json.id}`, { body: updated });
        await fhir(server, 'DELETE', `/Patient/${p.json.id}`);
        const got = await receiver.waitFor(() => receiver.notifications(id).length >= 3, 'three notifications');
        await sleep(300);
        const ns = receiver.notifications(id);
        assert.equal(ns.length, 3, 'a non-matching Patient sends nothing');
        assert.deepEqual(ns.map((q) => q.headers['x-fhir-event']), ['create', 'update', 'delete']);
        ns.forEach((q, i) => {
            assert.equal(q.method, 'POST');
            assert.equal(q.path, '/a');
            assert.equal(q.headers['content-location'], `${server.base}/Patient/${p.json.id}/_history/${i + 1}`);
            assert.equal(q.headers.authorization, 'Bearer s3cret');
        });
        assert.equal(JSON.parse(ns[0].body).meta.versionId, '1');
        assert.equal(JSON.parse(ns[1].body).name[0].given[0], 'Ann');
        assert.equal(ns[2].body, '', 'a delete has no resource');
        assert.ok(got);
    });

    it('notifies a change that makes a resource stop matching; empty payload sends no body', async () => {
        const pat = await fhir(server, 'POST', '/Patient', { body: patient('Gamma') });
        const sub = await createActive(server, restHook('Appointment?status=booked', receiver.url('/b')));
        const a = await fhir(server, 'POST', '/Appointment', { body: appointment(pat.json.id) });
        assert.equal(a.status, 201, a.text);
        await fhir(server, 'PUT', `/Appointment/${a.json.id}`, { body: { ...a.json, status: 'cancelled' } });
        await receiver.waitFor(() => receiver.notifications(sub.id).length >= 2, 'booked and cancelled');
        const ns = receiver.notifications(sub.id);
        assert.deepEqual(ns.map((q) => q.headers['content-location'].replace(/.*\/_history\//, '')), ['1', '2']);
        assert.ok(ns.every((q) => q.body === '' && !q.headers['content-type']));
    });

    it('loses nothing while the endpoint is down, and delivers in order when it is back', async () => {
        const sub = await createActive(server, restHook('Patient?family=epsilon', receiver.url('/e')));
        await receiver.stop();
        const ids = [];
        for (let i = 0; i < 5; i++) ids.push((await fhir(server, 'POST', '/Patient', { body: patient('Epsilon') })).json.id);
        await sleep(300); // a few failed attempts, fewer than max_failures (10)
        await receiver.start();
        await receiver.waitFor(() => receiver.notifications(sub.id).length >= 5, 'five notifications');
        const got = receiver.notifications(sub.id).map((q) => q.headers['content-location'].split('/')[5]);
        assert.deepEqual(got, ids);
        assert.equal((await fhir(server, 'GET', `/Subscription/${sub.id}`)).json.status, 'active');
    });

    it('refuses endpoints off the allowlist, bad criteria and unsupported channels with 422, storing nothing', async () => {
        const before = (await fhir(server, 'GET', '/Subscription?_summary=count')).json.total;
        const cases = [
            restHook('Patient', 'http://169.254.169.254/latest/meta-data'),
            restHook('Patient', `http://127.0.0.1:${receiver.port}.evil.example/`),
            restHook('Observation?code=1', receiver.url()),
            restHook('Patient?bogus=1', receiver.url()),
            restHook('Patient?family=a&_count=5', receiver.url()),
            { ...restHook('Patient', receiver.url()), channel: { type: 'email', endpoint: 'mailto:x@example.org' } },
            restHook('Patient', receiver.url(), { header: ['X-A: b\r\nHost: evil'] }),
        ];
        for (const body of cases) {
            const res = await fhir(server, 'POST', '/Subscription', { body });
            assert.equal(res.status, 422, `${JSON.stringify(body)} -> ${res.status} ${res.text}`);
            assert.equal(res.json.resourceType, 'OperationOutcome');
        }
        assert.equal((await fhir(server, 'GET', '/Subscription?_summary=count')).json.total, before);
    });

    it('never shows header values in reads, and a GET-then-PUT keeps the header working', async () => {
        const sub = await createActive(server, restHook('Patient?family=delta', receiver.url('/d'), { header: ['Authorization: Bearer topsecret'] }));
        for (const p of [`/Subscription/${sub.id}`, `/Subscription?_id=${sub.id}`, `/Subscription/${sub.id}/_history`, '/Subscription/_history']) {
            const res = await fhir(server, 'GET', p);
            assert.equal(res.status, 200);
            assert.ok(!res.text.includes('topsecret'), `${p} shows the header value`);
        }
        const current = (await fhir(server, 'GET', `/Subscription/${sub.id}`)).json;
        assert.match(current.channel.header[0], /^Authorization: sealed:/);
        const put = await fhir(server, 'PUT', `/Subscription/${sub.id}`, { body: { ...current, reason: 'renamed' } });
        assert.equal(put.status, 200, put.text);
        await waitUntil(async () => (await fhir(server, 'GET', `/Subscription/${sub.id}`)).json.status === 'active', 'active again');
        await fhir(server, 'POST', '/Patient', { body: patient('Delta') });
        await receiver.waitFor(() => receiver.notifications(sub.id).length >= 1, 'notification');
        assert.equal(receiver.notifications(sub.id)[0].headers.authorization, 'Bearer topsecret');
        // a sealed value copied to another endpoint does not open
        const copy = await fhir(server, 'POST', '/Subscription', { body: { ...current, id: undefined, channel: { ...current.channel, endpoint: receiver.url('/other') } } });
        assert.equal(copy.status, 422);
    });
});

describe('rest-hook failures', () => {
    let server, receiver;
    before(async () => {
        receiver = await startReceiver();
        server = await startServer({
            env: { ...FAST, FHIRSCHED_SUBSCRIPTIONS_MAX_FAILURES: '3', FHIRSCHED_SUBSCRIPTIONS_ENDPOINT_ALLOWLIST: `http://127.0.0.1:${receiver.port}/` },
        });
    });
    after(async () => {
        await server?.stop();
        await receiver?.stop();
    });

    it('goes to error after max_failures, says why, and resumes after a PUT with status requested', async () => {
        const sub = await createActive(server, restHook('Patient?family=zeta', receiver.url('/z')));
        receiver.status = 500;
        const p = await fhir(server, 'POST', '/Patient', { body: patient('Zeta') });
        const errored = await waitUntil(async () => {
            const s = (await fhir(server, 'GET', `/Subscription/${sub.id}`)).json;
            return s.status === 'error' ? s : null;
        }, 'status error');
        assert.match(errored.error, /HTTP 500/);
        assert.equal(receiver.notifications(sub.id).length, 3, 'exactly max_failures attempts');
        receiver.status = 200;
        await fhir(server, 'POST', '/Patient', { body: patient('Zeta') }); // recorded while in error
        const put = await fhir(server, 'PUT', `/Subscription/${sub.id}`, { body: { ...errored, status: 'requested' } });
        assert.equal(put.status, 200);
        assert.equal(put.json.error, undefined);
        await receiver.waitFor(() => receiver.notifications(sub.id).filter((q) => q.headers['x-fhir-event'] === 'create').length >= 5, 'resumed');
        const ok = receiver.notifications(sub.id).slice(3);
        assert.equal(ok[0].headers['content-location'].split('/')[5], p.json.id, 'the failed notification comes first');
        assert.equal((await fhir(server, 'GET', `/Subscription/${sub.id}`)).json.status, 'active');
    });

    it('status off stops delivery', async () => {
        const sub = await createActive(server, restHook('Patient?family=eta', receiver.url('/h')));
        const current = (await fhir(server, 'GET', `/Subscription/${sub.id}`)).json;
        await fhir(server, 'PUT', `/Subscription/${sub.id}`, { body: { ...current, status: 'off' } });
        await fhir(server, 'POST', '/Patient', { body: patient('Eta') });
        await sleep(500);
        assert.equal(receiver.notifications(sub.id).length, 0);
    });
});

describe('websocket', () => {
    let server;
    before(async () => {
        server = await startServer({ env: { FHIRSCHED_SUBSCRIPTIONS_HEARTBEAT_SECONDS: '1' } });
    });
    after(async () => server?.stop());

    it('binds, pings each matching change with the change as a history Bundle, unbinds, closes cleanly', async () => {
        const sub = (await fhir(server, 'POST', '/Subscription', {
            body: { resourceType: 'Subscription', status: 'requested', reason: 't', criteria: 'Patient?family=theta', channel: { type: 'websocket', payload: 'application/fhir+json' } },
        })).json;
        assert.equal(sub.status, 'active');
        const other = (await fhir(server, 'POST', '/Subscription', {
            body: { resourceType: 'Subscription', status: 'requested', reason: 't', criteria: 'Patient?family=iota', channel: { type: 'websocket' } },
        })).json;
        const c = await wsClient(server);
        c.ws.send(`bind ${sub.id}`);
        c.ws.send(`bind ${other.id}`);
        await c.waitFor((m) => m.includes(`bound ${sub.id}`) && m.includes(`bound ${other.id}`), 'bound');
        const p = (await fhir(server, 'POST', '/Patient', { body: patient('Theta') })).json;
        await fhir(server, 'POST', '/Patient', { body: patient('Kappa') });
        await fhir(server, 'POST', '/Patient', { body: patient('Iota') });
        await c.waitFor((m) => m.includes(`ping ${other.id}`) && m.some((x) => x.startsWith('{')), 'pings');
        const i = c.messages.indexOf(`ping ${sub.id}`);
        assert.ok(i >= 0);
        const bundle = JSON.parse(c.messages[i + 1]);
        assert.equal(bundle.type, 'history');
        assert.equal(bundle.entry[0].resource.id, p.id);
        assert.equal(bundle.entry[0].response.etag, 'W/"1"');
        assert.equal(bundle.entry[0].request.method, 'POST');
        assert.equal(c.messages.filter((m) => m.startsWith('ping')).length, 2, 'Kappa matched nothing');
        c.ws.send(`unbind ${sub.id}`);
        await c.waitFor((m) => m.includes(`unbound ${sub.id}`), 'unbound');
        await fhir(server, 'POST', '/Patient', { body: patient('Theta') });
        await sleep(300);
        assert.equal(c.messages.filter((m) => m === `ping ${sub.id}`).length, 1);
        await waitUntil(() => c.pings >= 1, 'heartbeat ping frames');
        c.ws.close(1000);
        await waitUntil(() => c.closed !== null, 'close');
        assert.equal(c.closed, 1000);
    });

    it('refuses to bind unknown ids and rest-hook subscriptions; /fhir/websocket without upgrade is 400', async () => {
        const c = await wsClient(server);
        c.ws.send('bind does-not-exist');
        await c.waitFor((m) => m.some((x) => x.startsWith('error does-not-exist')), 'error');
        c.ws.send('hello');
        await c.waitFor((m) => m.some((x) => x.startsWith('error -')), 'error for garbage');
        c.ws.close();
        const res = await raw(server, 'GET', '/fhir/websocket');
        assert.equal(res.status, 400);
    });
});

describe('two instances on one database', () => {
    let db, a, b, receiver, env;
    before(async () => {
        receiver = await startReceiver();
        db = await createTestDatabase();
        // the receiver stays down for a restart: enough failures allowed to outlast it
        env = { ...FAST, FHIRSCHED_SUBSCRIPTIONS_MAX_FAILURES: '1000', FHIRSCHED_SUBSCRIPTIONS_ENDPOINT_ALLOWLIST: `http://127.0.0.1:${receiver.port}/` };
        a = await startServer({ databaseUrl: db.url, env });
        b = await startServer({ databaseUrl: db.url, env });
    });
    after(async () => {
        await a?.stop();
        await b?.stop();
        await db?.drop();
        await receiver?.stop();
    });

    it('a websocket on B hears a change made through A', async () => {
        const sub = (await fhir(a, 'POST', '/Subscription', {
            body: { resourceType: 'Subscription', status: 'requested', reason: 't', criteria: 'Patient?family=lambda', channel: { type: 'websocket' } },
        })).json;
        const c = await wsClient(b);
        c.ws.send(`bind ${sub.id}`);
        await c.waitFor((m) => m.includes(`bound ${sub.id}`), 'bound');
        await fhir(a, 'POST', '/Patient', { body: patient('Lambda') });
        await c.waitFor((m) => m.includes(`ping ${sub.id}`), 'ping from the other instance');
        c.ws.close();
    });

    it('a rest-hook made on A gets changes made on B, each once, and survives a restart with the receiver down', async () => {
        const sub = await createActive(a, restHook('Patient?family=mu', receiver.url('/m')));
        const p1 = (await fhir(b, 'POST', '/Patient', { body: patient('Mu') })).json;
        await receiver.waitFor(() => receiver.notifications(sub.id).length >= 1, 'first');
        await receiver.stop();
        const p2 = (await fhir(b, 'POST', '/Patient', { body: patient('Mu') })).json;
        await a.stop();
        await b.stop();
        a = await startServer({ databaseUrl: db.url, env });
        await receiver.start();
        await receiver.waitFor(() => receiver.notifications(sub.id).length >= 2, 'second after restart');
        await sleep(300);
        const locs = receiver.notifications(sub.id).map((q) => q.headers['content-location'].split('/')[5]);
        assert.deepEqual(locs, [p1.id, p2.id]);
        b = null;
    });
});

describe('websocket with authorization', () => {
    let server, keys;
    before(async () => {
        keys = makeKeys();
        server = await startAuthServer({ keys });
    });
    after(async () => server?.stop());

    it('needs a token to upgrade, and a token that may read the criteria type to bind', async () => {
        const admin = api(server, tokenFor('system-admin', { server }));
        const sub = await admin.create({
            resourceType: 'Subscription', status: 'requested', reason: 't', criteria: 'Appointment?status=booked', channel: { type: 'websocket' },
        });
        await assert.rejects(wsClient(server), (e) => e.status === 401);
        const support = await wsClient(server, { authorization: `Bearer ${tokenFor('support', { server })}` });
        support.ws.send(`bind ${sub.id}`);
        await support.waitFor((m) => m.some((x) => x.startsWith(`error ${sub.id} forbidden`)), 'forbidden');
        support.ws.close();
        // a rest-hook is delivered without row rules: a clinic-limited admin may not create one on Appointments
        const limited = api(server, tokenFor('clinic-admin', { server, locations: ['Location/clinic-a'] }));
        const refused = await limited.post('/Subscription', restHook('Appointment?status=booked', 'http://127.0.0.1:9/hook'));
        expectOutcome(refused, 403);
        const desk = await wsClient(server, { authorization: `Bearer ${tokenFor('system-admin', { server })}` });
        desk.ws.send(`bind ${sub.id}`);
        await desk.waitFor((m) => m.includes(`bound ${sub.id}`), 'bound');
        desk.ws.close();
    });

    it('closes the socket when the token expires (1008)', async () => {
        const short = await wsClient(server, { authorization: `Bearer ${tokenFor('system-admin', { server, ttl: 2 })}` });
        await waitUntil(() => short.closed !== null, 'close at expiry', 10_000);
        assert.equal(short.closed, 1008);
        assert.equal(short.reason, 'token expired');
    });
});
