// Subscriptions, websocket channel (docs/subscriptions.md "websocket"), with a real client (the `ws` package):
// `bind <id>` / `bound <id>`, `ping <id>` for matching changes only (and only those committed after `bound`), the
// history Bundle that follows a ping when the Subscription has a payload, several bindings on one socket, refused
// binds (`error <id> ...`), `unbind`, heartbeat ping frames, clean closes; with authorization on, 401 for an upgrade
// without a valid token, `error` for a token that may not read the criteria's type, and a clinic-limited listener who
// hears only its clinic's bookings.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { api, makeKeys, startAuthServer, tempDir, tokenFor } from '../lib/auth.mjs';
import { assertValidFhir, create, expectStatus, fhir, raw, sleep, startServer } from '../lib/harness.mjs';
import { startWsClient, waitUntil } from '../lib/receiver.mjs';

const WAIT = 30_000;
const QUIET = 400; // how long "nothing more arrives" is watched, after a sentinel has arrived

const word = (p = 'N') => `${p}${randomBytes(5).toString('hex')}`;
/** An instant `n` (or a little more) seconds from now, to the second. */
const secondsFromNow = (n) => new Date(Math.ceil(Date.now() / 1000) * 1000 + n * 1000).toISOString().replace('.000', '');

let hour = 0;
function appointment(actors, { status = 'booked', ...extra } = {}) {
    const start = Date.UTC(2031, 2, 2, 0, 0) + hour++ * 3600_000;
    return {
        resourceType: 'Appointment',
        status,
        start: new Date(start).toISOString().replace('.000', ''),
        end: new Date(start + 30 * 60_000).toISOString().replace('.000', ''),
        participant: actors.map((a) => ({ actor: { reference: a }, status: 'accepted' })),
        ...extra,
    };
}

function wsSub(criteria, channel = {}, extra = {}) {
    return { resourceType: 'Subscription', status: 'requested', reason: 'websocket test', criteria, channel: { type: 'websocket', ...channel }, ...extra };
}

const pings = (c, id) => c.messages.filter((m) => m === `ping ${id}`).length;
const isBundle = (m) => m.startsWith('{');

/** The frame right after the n-th (0-based) `ping <id>`. */
function afterPing(c, id, n) {
    let seen = -1;
    for (let i = 0; i < c.messages.length; i++) {
        if (c.messages[i] === `ping ${id}` && ++seen === n) return c.messages[i + 1];
    }
    return undefined;
}

describe('websocket', () => {
    let server, pat;
    const clients = [];
    before(async () => {
        server = await startServer({ env: { FHIRSCHED_SUBSCRIPTIONS_HEARTBEAT_SECONDS: '1' } });
        pat = await create(server, { resourceType: 'Patient', name: [{ family: word('Pat') }] });
    });
    after(async () => {
        for (const c of clients) if (c.closed === null) c.ws.terminate();
        await server?.stop();
    });
    const client = async (headers) => {
        const c = await startWsClient(server, headers);
        clients.push(c);
        return c;
    };
    const practitioner = () => create(server, { resourceType: 'Practitioner', active: true, name: [{ family: word('Dr') }] });
    const book = (dr, extra) => create(server, appointment([`Patient/${pat.id}`, `Practitioner/${dr.id}`], extra));
    async function subscribe(body) {
        const res = await fhir(server, 'POST', '/Subscription', { body });
        expectStatus(res, 201);
        return res.json;
    }

    it('a websocket Subscription is active at once; bind answers bound; a matching change pings, a non-matching one and one made before bind do not', async () => {
        const dr = await practitioner();
        const other = await practitioner();
        const sub = await subscribe(wsSub(`Appointment?actor=Practitioner/${dr.id}&status=booked`));
        assert.equal(sub.status, 'active', 'no endpoint to check: active at once');
        assert.equal(sub.channel.endpoint, undefined);
        await book(dr); // before bind: not for this listener
        await sleep(300);

        const c = await client();
        c.send(`bind ${sub.id}`);
        await c.waitFor((m) => m.length >= 1, 'the answer to bind', WAIT);
        assert.equal(c.messages[0], `bound ${sub.id}`, 'bound is the first frame');

        await book(other); // does not match
        await book(dr, { status: 'proposed' }); // does not match either
        await book(dr);
        await c.waitFor((m) => pings(c, sub.id) >= 1, 'a ping', WAIT);
        await sleep(QUIET);
        assert.deepEqual(c.messages, [`bound ${sub.id}`, `ping ${sub.id}`], 'one ping, no Bundle without a payload');
    });

    it('with a payload each ping is followed by a one-entry history Bundle: resource with meta.versionId, request.method and url, response.etag; a delete has no resource', async () => {
        const dr = await practitioner();
        const sub = await subscribe(wsSub(`Appointment?actor=Practitioner/${dr.id}&status=booked`, { payload: 'application/fhir+json' }));
        const c = await client();
        await c.bind(sub.id);
        const a = await book(dr);
        const upd = await fhir(server, 'PUT', `/Appointment/${a.id}`, { body: { ...a, comment: 'second version' } });
        expectStatus(upd, 200);
        expectStatus(await fhir(server, 'DELETE', `/Appointment/${a.id}`), [200, 204]);
        await c.waitFor((m) => pings(c, sub.id) >= 3 && isBundle(m[m.length - 1]), 'three pings and Bundles', WAIT);
        await sleep(QUIET);
        const frames = c.messages.slice(1);
        assert.equal(frames.length, 6, `ping, Bundle, three times: ${JSON.stringify(frames.map((f) => f.slice(0, 60)))}`);
        const expect = [
            { method: 'POST', version: '1', comment: undefined },
            { method: 'PUT', version: '2', comment: 'second version' },
            { method: 'DELETE' },
        ];
        for (let i = 0; i < 3; i++) {
            assert.equal(frames[2 * i], `ping ${sub.id}`);
            const bundle = JSON.parse(frames[2 * i + 1]);
            assertValidFhir(bundle, `Bundle ${i}`);
            assert.equal(bundle.resourceType, 'Bundle');
            assert.equal(bundle.type, 'history');
            assert.equal(bundle.entry.length, 1, 'one entry');
            const e = bundle.entry[0];
            assert.equal(e.request.method, expect[i].method);
            assert.match(e.request.url, new RegExp(`^(${server.base.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}/)?Appointment/${a.id}(/_history/\\d+)?$`));
            if (i < 2) {
                assert.equal(e.resource.resourceType, 'Appointment');
                assert.equal(e.resource.id, a.id);
                assert.equal(e.resource.meta.versionId, expect[i].version);
                assert.equal(e.resource.comment, expect[i].comment, 'the version the change made');
                assert.equal(e.response.etag, `W/"${expect[i].version}"`);
            } else {
                assert.equal(e.resource, undefined, 'a delete has no resource');
                const v = e.response.etag.match(/^W\/"(\d+)"$/)?.[1];
                assert.ok(Number(v) > 2, `the delete's etag names its version: ${e.response.etag}`);
            }
        }
    });

    it('one socket binds two Subscriptions and hears each for its own changes (both for a change matching both)', async () => {
        const x = await practitioner();
        const y = await practitioner();
        const sx = await subscribe(wsSub(`Appointment?actor=Practitioner/${x.id}`, { payload: 'application/fhir+json' }));
        const sy = await subscribe(wsSub(`Appointment?actor=Practitioner/${y.id}`));
        const c = await client();
        await c.bind(sx.id);
        await c.bind(sy.id);
        const ax = await book(x);
        await c.waitFor(() => pings(c, sx.id) >= 1, 'X', WAIT);
        await book(y);
        await c.waitFor(() => pings(c, sy.id) >= 1, 'Y', WAIT);
        const both = await create(server, appointment([`Patient/${pat.id}`, `Practitioner/${x.id}`, `Practitioner/${y.id}`]));
        await c.waitFor(() => pings(c, sx.id) >= 2 && pings(c, sy.id) >= 2 && isBundle(afterPing(c, sx.id, 1) || ''), 'both', WAIT);
        await sleep(QUIET);
        assert.equal(pings(c, sx.id), 2, `X: ${JSON.stringify(c.messages)}`);
        assert.equal(pings(c, sy.id), 2, `Y: ${JSON.stringify(c.messages)}`);
        assert.equal(JSON.parse(afterPing(c, sx.id, 0)).entry[0].resource.id, ax.id);
        assert.equal(JSON.parse(afterPing(c, sx.id, 1)).entry[0].resource.id, both.id);
        assert.ok(!isBundle(afterPing(c, sy.id, 0) ?? 'end'), 'Y has no payload');
        assert.equal(c.messages.filter(isBundle).length, 2, 'Bundles only for X');
    });

    it('bind is refused with `error <id> ...` for an unknown id, a rest-hook, an off Subscription and malformed commands; the socket stays usable', async () => {
        const dr = await practitioner();
        const hook = await subscribe({
            resourceType: 'Subscription',
            status: 'requested',
            reason: 'a rest-hook',
            criteria: `Appointment?actor=Practitioner/${dr.id}`,
            channel: { type: 'rest-hook', endpoint: 'http://127.0.0.1:9/hook' }, // on the harness's default allowlist; nothing listens
        });
        const off = await subscribe(wsSub(`Appointment?actor=Practitioner/${dr.id}`, {}, { status: 'off' }));
        assert.equal(off.status, 'off');
        const good = await subscribe(wsSub(`Appointment?actor=Practitioner/${dr.id}`));
        const c = await client();
        const refused = async (id, why) => {
            const from = c.messages.length;
            c.send(`bind ${id}`);
            await c.waitFor((m) => m.slice(from).some((x) => x.startsWith(`error ${id} `) || x === `bound ${id}`), `an answer to bind ${id} (${why})`, WAIT);
            const answer = c.messages.slice(from).find((x) => x.startsWith(`error ${id} `) || x === `bound ${id}`);
            assert.match(answer, new RegExp(`^error ${id} \\S`), `bind ${id} (${why}) -> ${answer}`);
        };
        await refused('does-not-exist', 'unknown id');
        await refused(hook.id, 'a rest-hook Subscription');
        await refused(off.id, 'an off Subscription');
        for (const garbage of ['hello', 'bind', 'bind a b c', `frobnicate ${good.id}`]) {
            const from = c.messages.length;
            c.send(garbage);
            await c.waitFor((m) => m.slice(from).some((x) => x.startsWith('error ')), `an error for ${JSON.stringify(garbage)}`, WAIT);
        }
        assert.equal(c.closed, null, 'refusals do not close the socket');
        await c.bind(good.id);
        await book(dr);
        await c.waitFor(() => pings(c, good.id) >= 1, 'a ping after the refusals', WAIT);
        await sleep(QUIET);
        assert.ok(!c.messages.some((m) => m.startsWith(`ping ${hook.id}`) || m.startsWith(`ping ${off.id}`)));
    });

    it('unbind answers unbound; no pings for it after that, while another binding on the socket goes on', async () => {
        const dr = await practitioner();
        const s1 = await subscribe(wsSub(`Appointment?actor=Practitioner/${dr.id}`));
        const s2 = await subscribe(wsSub(`Appointment?actor=Practitioner/${dr.id}`));
        const c = await client();
        await c.bind(s1.id);
        await c.bind(s2.id);
        await book(dr);
        await c.waitFor(() => pings(c, s1.id) >= 1 && pings(c, s2.id) >= 1, 'a ping for each', WAIT);
        c.send(`unbind ${s1.id}`);
        await c.waitFor((m) => m.includes(`unbound ${s1.id}`), 'unbound', WAIT);
        await book(dr);
        await book(dr);
        await c.waitFor(() => pings(c, s2.id) >= 3, 'the other binding hears both', WAIT);
        await sleep(QUIET);
        assert.equal(pings(c, s1.id), 1, `no ping after unbound: ${JSON.stringify(c.messages)}`);
        // bound again: hears changes from then on
        await c.bind(s1.id);
        await book(dr);
        await c.waitFor(() => pings(c, s1.id) === 2, 'a ping after binding again', WAIT);
    });

    it('a change that makes an Appointment stop matching pings too, with the new (cancelled) version', async () => {
        const dr = await practitioner();
        const sub = await subscribe(wsSub(`Appointment?actor=Practitioner/${dr.id}&status=booked`, { payload: 'application/fhir+json' }));
        const c = await client();
        await c.bind(sub.id);
        const a = await book(dr);
        const cancelled = await fhir(server, 'PUT', `/Appointment/${a.id}`, { body: { ...a, status: 'cancelled' } });
        expectStatus(cancelled, 200);
        await fhir(server, 'PUT', `/Appointment/${a.id}`, { body: { ...cancelled.json, comment: 'neither version matches' } });
        await book(dr);
        await c.waitFor(() => c.messages.filter(isBundle).length >= 3, 'three Bundles', WAIT);
        await sleep(QUIET);
        const entries = c.messages.filter(isBundle).map((m) => JSON.parse(m).entry[0]);
        assert.deepEqual(
            entries.map((e) => [e.resource.id, e.resource.meta.versionId, e.resource.status]),
            [
                [a.id, '1', 'booked'],
                [a.id, '2', 'cancelled'],
                [entries[2].resource.id, '1', 'booked'],
            ],
        );
    });

    it('a bound Subscription that is switched off, deleted, or given other criteria stops pinging for what it no longer selects', async () => {
        const dr = await practitioner();
        const other = await practitioner();
        const crit = `Appointment?actor=Practitioner/${dr.id}`;
        const off = await subscribe(wsSub(crit));
        const gone = await subscribe(wsSub(crit));
        const moved = await subscribe(wsSub(crit));
        const witness = await subscribe(wsSub(crit));
        const c = await client();
        for (const s of [off, gone, moved, witness]) await c.bind(s.id);
        await book(dr);
        await c.waitFor(() => [off, gone, moved, witness].every((s) => pings(c, s.id) >= 1), 'a ping for each', WAIT);
        expectStatus(await fhir(server, 'PUT', `/Subscription/${off.id}`, { body: { ...off, status: 'off' } }), 200);
        expectStatus(await fhir(server, 'DELETE', `/Subscription/${gone.id}`), [200, 204]);
        expectStatus(await fhir(server, 'PUT', `/Subscription/${moved.id}`, { body: { ...moved, criteria: `Appointment?actor=Practitioner/${other.id}` } }), 200);
        // the server ends the bindings of the Subscriptions switched off and deleted: "error <id> <text>; unbound"
        const ended = (id) => c.messages.find((m) => m.startsWith(`error ${id} `));
        await c.waitFor(() => ended(off.id) && ended(gone.id), 'the server ending two bindings', WAIT);
        for (const id of [off.id, gone.id]) assert.match(ended(id), new RegExp(`^error ${id} \\S.*; unbound$`));
        assert.equal(ended(moved.id), undefined, 'new criteria do not end the binding');
        assert.equal(ended(witness.id), undefined);
        await book(dr);
        await c.waitFor(() => pings(c, witness.id) >= 2, 'the witness', WAIT);
        await sleep(QUIET);
        assert.deepEqual(
            { off: pings(c, off.id), deleted: pings(c, gone.id), 'other criteria': pings(c, moved.id) },
            { off: 1, deleted: 1, 'other criteria': 1 },
            `pings per binding after the change (1: none after it): ${JSON.stringify(c.messages)}`,
        );
        // the new criteria apply from then on
        await book(other);
        await c.waitFor(() => pings(c, moved.id) >= 2, 'a ping under the new criteria', WAIT);
        await sleep(QUIET);
        assert.equal(pings(c, witness.id), 2, 'the witness does not select the other practitioner');
        assert.equal(pings(c, off.id) + pings(c, gone.id), 2);
    });

    it('a websocket Subscription whose end has passed delivers nothing', async () => {
        const dr = await practitioner();
        const ended = await subscribe(wsSub(`Appointment?actor=Practitioner/${dr.id}`, {}, { end: '2020-01-01T00:00:00Z' }));
        const witness = await subscribe(wsSub(`Appointment?actor=Practitioner/${dr.id}`));
        const c = await client();
        await c.bind(witness.id);
        c.send(`bind ${ended.id}`);
        await c.waitFor((m) => m.some((x) => x === `bound ${ended.id}` || x.startsWith(`error ${ended.id} `)), 'an answer to bind', WAIT);
        await book(dr);
        await c.waitFor(() => pings(c, witness.id) >= 1, 'the witness', WAIT);
        await sleep(QUIET);
        assert.equal(pings(c, ended.id), 0, `an ended Subscription pinged: ${JSON.stringify(c.messages)}`);
    });

    it('a bound websocket Subscription stops pinging when its end passes', async () => {
        const dr = await practitioner();
        const end = secondsFromNow(3);
        const ending = await subscribe(wsSub(`Appointment?actor=Practitioner/${dr.id}`, {}, { end }));
        const witness = await subscribe(wsSub(`Appointment?actor=Practitioner/${dr.id}`));
        const c = await client();
        await c.bind(ending.id);
        await c.bind(witness.id);
        await book(dr);
        await c.waitFor(() => pings(c, ending.id) >= 1 && pings(c, witness.id) >= 1, 'pings before the end', WAIT);
        assert.ok(Date.now() < Date.parse(end), 'the first change was before the end (machine too slow otherwise)');
        await sleep(Math.max(0, Date.parse(end) - Date.now()) + 1200); // past the end also at the precision of seconds
        await book(dr);
        await c.waitFor(() => pings(c, witness.id) >= 2, 'the witness', WAIT);
        await sleep(QUIET);
        assert.equal(pings(c, ending.id), 1, `pinged after its end: ${JSON.stringify(c.messages)}`);
        await c.waitFor((m) => m.some((x) => x.startsWith(`error ${ending.id} `)), 'the server ending the binding at its end', WAIT);
        assert.match(c.messages.find((x) => x.startsWith(`error ${ending.id} `)), /; unbound$/);
    });

    it('sends websocket ping control frames every heartbeat_seconds (1) and keeps the socket open', async () => {
        const c = await client();
        const t0 = Date.now();
        await waitUntil(() => c.pings >= 3, 'three heartbeat pings', 15_000);
        const gaps = c.pingTimes.slice(1).map((t, i) => t - c.pingTimes[i]);
        assert.ok(gaps.every((g) => g >= 700), `about one second apart: ${gaps}`);
        assert.ok(c.pingTimes[0] - t0 >= 500, 'not before the first interval');
        assert.equal(c.closed, null);
        assert.deepEqual(c.messages, [], 'heartbeats are control frames, not text');
        const dr = await practitioner();
        const sub = await subscribe(wsSub(`Appointment?actor=Practitioner/${dr.id}`));
        await c.bind(sub.id);
        await book(dr);
        await c.waitFor(() => pings(c, sub.id) === 1, 'still delivering', WAIT);
    });

    it('a client close is answered cleanly (1000); a dropped connection is forgotten; the server goes on', async () => {
        const dr = await practitioner();
        const sub = await subscribe(wsSub(`Appointment?actor=Practitioner/${dr.id}`, { payload: 'application/fhir+json' }));
        const polite = await client();
        await polite.bind(sub.id);
        assert.equal(await polite.close(1000), 1000, 'the server answers the close with the same code');
        const rude = await client();
        await rude.bind(sub.id);
        rude.ws.terminate(); // TCP gone without a close frame
        await waitUntil(() => rude.closed !== null, 'terminated', WAIT);
        const going = await client();
        await going.bind(sub.id);
        going.send(`unbind ${sub.id}`);
        going.ws.close(4000, 'bye');
        // changes for the closed sockets' bindings are made and matched without them
        await book(dr);
        await book(dr);
        const fresh = await client();
        await fresh.bind(sub.id);
        await book(dr);
        await fresh.waitFor(() => pings(fresh, sub.id) === 1, 'a new socket hears the next change', WAIT);
        await waitUntil(() => going.closed !== null, 'the 4000 close', WAIT);
        assert.equal(going.closed, 4000);
        expectStatus(await raw(server, 'GET', '/readyz'), 200);
        assert.ok(server.alive());
    });

    it('GET /fhir/websocket without an upgrade is not a websocket (4xx)', async () => {
        const res = await raw(server, 'GET', '/fhir/websocket');
        assert.ok(res.status >= 400 && res.status < 500, `HTTP ${res.status}`);
    });
});

// ---------------------------------------------------------------------------

describe('websocket with authorization', () => {
    let server, sys;
    const clients = [];
    const LOC = 'http://terminology.hl7.org/CodeSystem/location-physical-type';
    before(async () => {
        const keys = makeKeys(tempDir());
        server = await startAuthServer({ keys, env: { FHIRSCHED_SUBSCRIPTIONS_HEARTBEAT_SECONDS: '1' } });
        sys = api(server, tokenFor('system-admin', { server }));
        for (const id of ['clinic-a', 'clinic-b']) {
            await sys.upsert({ resourceType: 'Location', id, status: 'active', name: id, mode: 'instance', physicalType: { coding: [{ system: LOC, code: 'bu' }] } });
        }
    });
    after(async () => {
        for (const c of clients) if (c.closed === null) c.ws.terminate();
        await server?.stop();
    });
    const client = async (token) => {
        const c = await startWsClient(server, token ? { authorization: `Bearer ${token}` } : {});
        clients.push(c);
        return c;
    };
    const bookAt = async (clinic, dr) => sys.create(appointment([`Location/${clinic}`, `Practitioner/${dr.id}`]));

    it('an upgrade without a token, or with a bad one, is refused with 401', async () => {
        await assert.rejects(client(), (e) => e.status === 401, 'no token');
        await assert.rejects(client('not-a-jwt'), (e) => e.status === 401, 'a malformed token');
        await assert.rejects(client(tokenFor('system-admin', { server, ttl: -600 })), (e) => e.status === 401, 'an expired token');
        const ok = await client(tokenFor('system-admin', { server }));
        assert.equal(ok.closed, null);
        await ok.close();
    });

    it('a token that may not read the criteria\'s type gets `error <id> ...` on bind and hears nothing', async () => {
        const dr = await sys.create({ resourceType: 'Practitioner', active: true, name: [{ family: word('Dr') }] });
        const sub = await sys.create(wsSub(`Appointment?actor=Practitioner/${dr.id}`));
        assert.equal(sub.status, 'active');
        const support = await client(tokenFor('support', { server })); // support reads no Appointments
        const narrow = await client(tokenFor('system-admin', { server, scope: 'system/Patient.read' })); // scopes without Appointment
        for (const c of [support, narrow]) {
            c.send(`bind ${sub.id}`);
            await c.waitFor((m) => m.some((x) => x.startsWith(`error ${sub.id} `) || x === `bound ${sub.id}`), 'an answer to bind', WAIT);
            assert.match(c.messages[0], new RegExp(`^error ${sub.id} \\S`));
        }
        const admin = await client(tokenFor('system-admin', { server }));
        await admin.bind(sub.id);
        await bookAt('clinic-a', dr);
        await admin.waitFor(() => pings(admin, sub.id) >= 1, 'the admin hears it', WAIT);
        await sleep(QUIET);
        for (const c of [support, narrow]) assert.ok(!c.messages.some((m) => m.startsWith('ping')), `a refused bind heard a change: ${c.messages}`);
    });

    it('a listener limited to clinic A hears clinic A\'s bookings only (payload included), a system-admin hears both', async () => {
        const dr = await sys.create({ resourceType: 'Practitioner', active: true, name: [{ family: word('Dr') }] });
        const sub = await sys.create(wsSub(`Appointment?actor=Practitioner/${dr.id}&status=booked`, { payload: 'application/fhir+json' }));
        const recA = await client(tokenFor('receptionist', { server, locations: ['Location/clinic-a'] }));
        const admin = await client(tokenFor('system-admin', { server }));
        await recA.bind(sub.id);
        await admin.bind(sub.id);
        const b1 = await bookAt('clinic-b', dr);
        const a1 = await bookAt('clinic-a', dr);
        const b2 = await bookAt('clinic-b', dr);
        const a2 = await bookAt('clinic-a', dr);
        await admin.waitFor(() => pings(admin, sub.id) >= 4 && admin.messages.filter(isBundle).length >= 4, 'the admin hears four', WAIT);
        await recA.waitFor(() => recA.messages.filter(isBundle).some((m) => JSON.parse(m).entry[0].resource?.id === a2.id), 'clinic A\'s second booking', WAIT);
        await sleep(QUIET);
        const heard = (c) => c.messages.filter(isBundle).map((m) => JSON.parse(m).entry[0].resource.id);
        assert.deepEqual(heard(recA), [a1.id, a2.id], 'clinic A only');
        assert.equal(pings(recA, sub.id), 2, 'no ping for clinic B either');
        assert.deepEqual(heard(admin), [b1.id, a1.id, b2.id, a2.id]);
    });

    it('an Appointment moved from clinic A to clinic B: the clinic A listener never gets the clinic B version; moved back, it hears it again', async () => {
        const dr = await sys.create({ resourceType: 'Practitioner', active: true, name: [{ family: word('Dr') }] });
        const sub = await sys.create(wsSub(`Appointment?actor=Practitioner/${dr.id}`, { payload: 'application/fhir+json' }));
        const recA = await client(tokenFor('receptionist', { server, locations: ['Location/clinic-a'] }));
        const admin = await client(tokenFor('system-admin', { server }));
        await recA.bind(sub.id);
        await admin.bind(sub.id);
        const a = await bookAt('clinic-a', dr);
        const swap = (r, from, to) => ({ ...r, participant: r.participant.map((p) => (p.actor.reference === `Location/${from}` ? { ...p, actor: { reference: `Location/${to}` } } : p)) });
        const toB = await sys.upsert(swap(a, 'clinic-a', 'clinic-b'));
        const backToA = await sys.upsert(swap(toB, 'clinic-b', 'clinic-a'));
        assert.equal(backToA.meta.versionId, '3');
        await admin.waitFor(() => admin.messages.filter(isBundle).length >= 3, 'the admin hears three versions', WAIT);
        await recA.waitFor(() => recA.messages.filter(isBundle).some((m) => JSON.parse(m).entry[0].resource?.meta.versionId === '3'), 'version 3 at clinic A', WAIT);
        await sleep(QUIET);
        const versions = recA.messages.filter(isBundle).map((m) => JSON.parse(m).entry[0]);
        const leaked = versions.filter((e) => JSON.stringify(e.resource ?? {}).includes('Location/clinic-b'));
        assert.deepEqual(leaked, [], 'a version at clinic B was sent to a clinic A listener');
        assert.deepEqual(versions.filter((e) => e.resource).map((e) => e.resource.meta.versionId), ['1', '3']);
        // the move out of sight is pinged, its Bundle entry without a resource
        assert.equal(pings(recA, sub.id), 3, JSON.stringify(recA.messages.filter((m) => !isBundle(m))));
        assert.equal(versions.length, 3);
        assert.equal(versions[1].resource, undefined);
        assert.equal(versions[1].request.method, 'PUT');
        assert.equal(versions[1].response.etag, 'W/"2"');
        for (const m of recA.messages.filter(isBundle)) assertValidFhir(JSON.parse(m), 'a Bundle for clinic A');
    });
});
