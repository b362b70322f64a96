// Subscriptions, rest-hook channel (docs/subscriptions.md), against a real HTTP receiver (tests/lib/receiver.mjs):
// creation as `requested`, the handshake and `active`; create/update/delete notifications of Appointments in order with
// X-FHIR-Event, X-FHIR-Subscription, Content-Location and the payload of exactly that version; "matched before or
// after"; refusals (allowlist, criteria, channel, payload) that store nothing; sealed header values and the GET-then-PUT
// round trip; endpoint down, endpoint hanging (timeout_ms), endpoint failing (max_failures -> `error`), re-activation,
// `off`, `end`.
//
// Negative checks ("nothing else arrived") use a sentinel where they can: delivery is ordered per subscription, so once
// a later matching change has arrived, an earlier change that was going to be notified would have arrived first.

import assert from 'node:assert/strict';
import crypto, { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { assertValidFhir, create, expectOutcome, expectStatus, fhir, sleep, startServer } from '../lib/harness.mjs';
import { refOf, startReceiver, versionOf, waitUntil } from '../lib/receiver.mjs';

const WAIT = 30_000; // deadline of every wait (they end as soon as the condition holds)

/** A name of letters and digits only (string search normalises punctuation). */
const word = (p = 'N') => `${p}${randomBytes(5).toString('hex')}`;
/** An instant `n` (or a little more) seconds from now, to the second. */
const secondsFromNow = (n) => new Date(Math.ceil(Date.now() / 1000) * 1000 + n * 1000).toISOString().replace('.000', '');

// Each Appointment gets its own hour, so no two ever overlap for one practitioner (sched_busy).
let hour = 0;
function appointment(practitioner, patient, { status = 'booked', ...extra } = {}) {
    const start = Date.UTC(2031, 0, 6, 0, 0) + hour++ * 3600_000;
    return {
        resourceType: 'Appointment',
        status,
        description: 'Subscription test',
        start: new Date(start).toISOString().replace('.000', ''),
        end: new Date(start + 30 * 60_000).toISOString().replace('.000', ''),
        participant: [
            { actor: { reference: `Patient/${patient.id}` }, status: 'accepted' },
            { actor: { reference: `Practitioner/${practitioner.id}` }, required: 'required', status: 'accepted' },
        ],
        ...extra,
    };
}

function restHook(criteria, endpoint, channel = {}, extra = {}) {
    return { resourceType: 'Subscription', status: 'requested', reason: 'rest-hook test', criteria, channel: { type: 'rest-hook', endpoint, ...channel }, ...extra };
}

async function getSub(server, id) {
    const res = await fhir(server, 'GET', `/Subscription/${id}`);
    expectStatus(res, 200);
    return res.json;
}

async function waitStatus(server, id, status) {
    return waitUntil(async () => {
        const s = await getSub(server, id);
        return s.status === status ? s : null;
    }, async () => `Subscription/${id} to be ${status}`, WAIT);
}

/** POST a Subscription, expect 201, wait for `active`; returns the active resource. */
async function createActive(server, sub) {
    const res = await fhir(server, 'POST', '/Subscription', { body: sub });
    expectStatus(res, 201);
    return waitStatus(server, res.json.id, 'active');
}

async function countSubscriptions(server) {
    const res = await fhir(server, 'GET', '/Subscription?_summary=count');
    expectStatus(res, 200);
    return res.json.total;
}

/** [event, Type/id, version] of each notification. */
const summary = (reqs) => reqs.map((q) => [q.headers['x-fhir-event'], refOf(q), versionOf(q)]);

// ---------------------------------------------------------------------------

describe('rest-hook delivery', () => {
    let server, receiver, outsider, prac, pat;
    const hooks = (p) => receiver.url(`/hooks/${p}`);

    before(async () => {
        receiver = await startReceiver();
        outsider = await startReceiver(); // not on the allowlist: must never hear anything
        server = await startServer({
            env: {
                FHIRSCHED_SUBSCRIPTIONS_ENDPOINT_ALLOWLIST: `http://127.0.0.1:${receiver.port}/hooks/`,
                FHIRSCHED_SUBSCRIPTIONS_RETRY_BASE_MS: '50',
                FHIRSCHED_SUBSCRIPTIONS_RETRY_MAX_MS: '200',
                FHIRSCHED_SUBSCRIPTIONS_TIMEOUT_MS: '1000',
                FHIRSCHED_SUBSCRIPTIONS_MAX_FAILURES: '1000',
            },
        });
        pat = await create(server, { resourceType: 'Patient', name: [{ family: word('Pat') }] });
    });
    after(async () => {
        await server?.stop();
        await receiver?.stop();
        await outsider?.stop();
    });

    const practitioner = () => create(server, { resourceType: 'Practitioner', active: true, name: [{ family: word('Dr') }] });

    it('create answers 201 with status requested; the handshake carries the channel headers; then the Subscription is active', async () => {
        prac = await practitioner();
        // a client asking for "active" gets "requested": the endpoint is checked first
        const res = await fhir(server, 'POST', '/Subscription', {
            body: {
                ...restHook(`Appointment?actor=Practitioner/${prac.id}&status=booked`, hooks('hs'), {
                    payload: 'application/fhir+json',
                    header: ['Authorization: Bearer hs-secret-1', 'X-Clinic-Key: k-42'],
                }),
                status: 'active',
            },
        });
        expectStatus(res, 201);
        assert.equal(res.json.status, 'requested', 'the stored status of a new rest-hook');
        assert.equal(res.json.error, undefined);
        assert.match(res.headers.get('location') || '', new RegExp(`/Subscription/${res.json.id}/_history/1$`));
        const id = res.json.id;
        const v1 = await fhir(server, 'GET', `/Subscription/${id}/_history/1`);
        expectStatus(v1, 200);
        assert.equal(v1.json.status, 'requested');

        await receiver.waitFor(() => receiver.handshakes(id).length >= 1, 'the handshake', WAIT);
        const hs = receiver.handshakes(id)[0];
        assert.equal(hs.method, 'POST');
        assert.equal(hs.path, '/hooks/hs');
        assert.equal(hs.headers['x-fhir-event'], 'handshake');
        assert.equal(hs.headers['x-fhir-subscription'], `Subscription/${id}`);
        assert.equal(hs.body, '', 'a handshake has an empty body');
        assert.equal(hs.headers['content-type'], undefined, 'no Content-Type without a body');
        assert.equal(hs.headers['content-location'], undefined, 'a handshake is about no resource');
        assert.equal(hs.headers.authorization, 'Bearer hs-secret-1', 'channel.header values are sent as they were given');
        assert.equal(hs.headers['x-clinic-key'], 'k-42');

        const active = await waitStatus(server, id, 'active');
        assert.equal(active.error, undefined);
        assert.equal(receiver.notifications(id).length, 0, 'nothing but the handshake so far');
        assert.equal(outsider.requests.length, 0);
    });

    it('create, update and delete of a matching Appointment each POST once, in order, with event, subscription, Content-Location and that version as payload', async () => {
        const dr = await practitioner();
        const other = await practitioner();
        const sub = await createActive(
            server,
            restHook(`Appointment?actor=Practitioner/${dr.id}&status=booked`, hooks('crud'), { payload: 'application/fhir+json', header: ['Authorization: Bearer crud-1'] }),
        );

        const a = await create(server, appointment(dr, pat));
        assert.equal(a.meta.versionId, '1');
        await create(server, appointment(other, pat)); // another practitioner: does not match
        const upd = await fhir(server, 'PUT', `/Appointment/${a.id}`, { body: { ...a, comment: 'bring the referral letter' } });
        expectStatus(upd, 200);
        assert.equal(upd.json.meta.versionId, '2');
        const del = await fhir(server, 'DELETE', `/Appointment/${a.id}`);
        expectStatus(del, [200, 204]);
        const sentinel = await create(server, appointment(dr, pat));

        await receiver.waitFor(() => receiver.notifications(sub.id).some((q) => refOf(q) === `Appointment/${sentinel.id}`), 'the sentinel', WAIT);
        const ns = receiver.notifications(sub.id);
        assert.equal(ns.length, 4, `create, update, delete, sentinel and nothing else: ${receiver.describe(ns)}`);
        assert.deepEqual(
            summary(ns).map(([e, r]) => [e, r]),
            [
                ['create', `Appointment/${a.id}`],
                ['update', `Appointment/${a.id}`],
                ['delete', `Appointment/${a.id}`],
                ['create', `Appointment/${sentinel.id}`],
            ],
        );
        const delVersion = Number(versionOf(ns[2]));
        assert.ok(delVersion > 2, `the delete's version follows the last update's: ${ns[2].headers['content-location']}`);
        const history = await fhir(server, 'GET', `/Appointment/${a.id}/_history`);
        expectStatus(history, 200);
        const delEntry = history.json.entry.find((e) => e.request?.method === 'DELETE');
        if (delEntry?.response?.etag) assert.equal(delEntry.response.etag, `W/"${delVersion}"`, 'Content-Location names the version the delete made');

        const expectVersions = ['1', '2', String(delVersion), '1'];
        ns.forEach((q, i) => {
            assert.equal(q.method, 'POST');
            assert.equal(q.path, '/hooks/crud');
            assert.equal(q.headers['x-fhir-subscription'], `Subscription/${sub.id}`);
            assert.equal(q.headers.authorization, 'Bearer crud-1');
            const id = i === 3 ? sentinel.id : a.id;
            assert.equal(q.headers['content-location'], `${server.base}/Appointment/${id}/_history/${expectVersions[i]}`);
        });
        for (const [i, q] of [ns[0], ns[1], ns[3]].entries()) {
            assert.match(q.headers['content-type'] || '', /^application\/fhir\+json\b/, 'a body is application/fhir+json');
            const body = JSON.parse(q.body);
            assertValidFhir(body, `payload ${i}`);
            assert.equal(body.resourceType, 'Appointment');
            assert.equal(body.id, refOf(q).split('/')[1]);
            assert.equal(body.meta?.versionId, versionOf(q), 'meta.versionId is the version of Content-Location');
        }
        assert.equal(JSON.parse(ns[0].body).comment, undefined, 'the create carries version 1');
        assert.equal(JSON.parse(ns[1].body).comment, 'bring the referral letter', 'the update carries version 2');
        assert.equal(ns[2].body, '', 'a delete has no body');
        assert.equal(ns[2].headers['content-type'], undefined, 'a delete has no Content-Type');
        assert.equal(outsider.requests.length, 0);
    });

    it('an empty payload sends notifications without a body', async () => {
        const dr = await practitioner();
        const sub = await createActive(server, restHook(`Appointment?actor=Practitioner/${dr.id}`, hooks('empty')));
        assert.equal(sub.channel.payload, undefined);
        const a = await create(server, appointment(dr, pat));
        await fhir(server, 'PUT', `/Appointment/${a.id}`, { body: { ...a, comment: 'x' } });
        await receiver.waitFor(() => receiver.notifications(sub.id).length >= 2, 'two notifications', WAIT);
        const ns = receiver.notifications(sub.id);
        assert.deepEqual(summary(ns), [
            ['create', `Appointment/${a.id}`, '1'],
            ['update', `Appointment/${a.id}`, '2'],
        ]);
        for (const q of ns) {
            assert.equal(q.body, '');
            assert.equal(q.headers['content-type'], undefined);
            assert.ok(['0', undefined].includes(q.headers['content-length']), `Content-Length of an empty notification: ${q.headers['content-length']}`);
        }
    });

    it('a change that makes an Appointment stop matching (booked -> cancelled) notifies; one that makes it start matching too; one where neither version matches does not', async () => {
        const dr = await practitioner();
        const sub = await createActive(server, restHook(`Appointment?actor=Practitioner/${dr.id}&status=booked`, hooks('stop'), { payload: 'application/fhir+json' }));
        const a = await create(server, appointment(dr, pat));
        const cancelled = await fhir(server, 'PUT', `/Appointment/${a.id}`, { body: { ...a, status: 'cancelled', cancelationReason: { text: 'patient called' } } });
        expectStatus(cancelled, 200);
        // version 3: cancelled before and after -> not notified
        const again = await fhir(server, 'PUT', `/Appointment/${a.id}`, { body: { ...cancelled.json, comment: 'still cancelled' } });
        expectStatus(again, 200);
        // proposed (does not match), then booked (matches)
        const b = await create(server, appointment(dr, pat, { status: 'proposed' }));
        const booked = await fhir(server, 'PUT', `/Appointment/${b.id}`, { body: { ...b, status: 'booked' } });
        expectStatus(booked, 200);
        const sentinel = await create(server, appointment(dr, pat));
        await receiver.waitFor(() => receiver.notifications(sub.id).some((q) => refOf(q) === `Appointment/${sentinel.id}`), 'the sentinel', WAIT);
        const ns = receiver.notifications(sub.id);
        assert.deepEqual(summary(ns), [
            ['create', `Appointment/${a.id}`, '1'],
            ['update', `Appointment/${a.id}`, '2'],
            ['update', `Appointment/${b.id}`, '2'],
            ['create', `Appointment/${sentinel.id}`, '1'],
        ]);
        assert.equal(JSON.parse(ns[1].body).status, 'cancelled', 'the payload is the new (cancelled) version');
        assert.equal(JSON.parse(ns[2].body).status, 'booked');
    });

    it('a delete of a matching Appointment notifies (event delete, no body), and a delete of a non-matching one does not', async () => {
        const dr = await practitioner();
        const sub = await createActive(server, restHook(`Appointment?actor=Practitioner/${dr.id}&status=booked`, hooks('del'), { payload: 'application/fhir+json' }));
        const proposed = await fhir(server, 'POST', '/Appointment', { body: appointment(dr, pat, { status: 'proposed' }) });
        expectStatus(proposed, 201);
        const a = await create(server, appointment(dr, pat));
        await receiver.waitFor(() => receiver.notifications(sub.id).length >= 1, 'the create', WAIT);
        expectStatus(await fhir(server, 'DELETE', `/Appointment/${proposed.json.id}`), [200, 204]);
        expectStatus(await fhir(server, 'DELETE', `/Appointment/${a.id}`), [200, 204]);
        const sentinel = await create(server, appointment(dr, pat));
        await receiver.waitFor(() => receiver.notifications(sub.id).some((q) => refOf(q) === `Appointment/${sentinel.id}`), 'the sentinel', WAIT);
        const ns = receiver.notifications(sub.id);
        assert.deepEqual(
            summary(ns).map(([e, r]) => [e, r]),
            [
                ['create', `Appointment/${a.id}`],
                ['delete', `Appointment/${a.id}`],
                ['create', `Appointment/${sentinel.id}`],
            ],
        );
        assert.equal(ns[1].body, '');
        assert.ok(Number(versionOf(ns[1])) >= 2);
        // the deleted Appointment is gone, the notification was only about it
        expectStatus(await fhir(server, 'GET', `/Appointment/${a.id}`), 410);
    });

    it('criteria select like the same search: token systems, OR lists, :not, :missing, reference forms, chains, _id, dates', async () => {
        const SYS = 'http://example.org/fhir/mrn';
        const [v1, v2, v3, fam, famOther] = [word('v'), word('v'), word('v'), word('Fam'), word('Fam')];
        const drFamily = word('Dr');
        const dr = await create(server, { resourceType: 'Practitioner', active: true, name: [{ family: drFamily }] });
        const early = await create(server, { resourceType: 'Patient', name: [{ family: famOther }] });
        const criteria = {
            anySystem: `Patient?identifier=${v1}`,
            withSystem: `Patient?identifier=${encodeURIComponent(`${SYS}|${v1}`)}`,
            otherSystem: `Patient?identifier=${encodeURIComponent(`http://example.org/other|${v1}`)}`,
            orList: `Patient?identifier=${v1},${v2}`,
            noSystem: `Patient?identifier=${encodeURIComponent(`|${v3}`)}`,
            id: `Patient?_id=${early.id}`,
            combined: `Patient?family=${fam}&identifier=${v1}`,
            not: `Patient?family=${fam}&identifier:not=${v1}`,
            inactive: `Patient?family=${fam}&active=false`,
            statusOr: `Appointment?actor=Practitioner/${dr.id}&status=booked,noshow`,
            statusNot: `Appointment?actor=Practitioner/${dr.id}&status:not=booked`,
            bareId: `Appointment?practitioner=${dr.id}`,
            absolute: `Appointment?actor=${encodeURIComponent(`${server.base}/Practitioner/${dr.id}`)}`,
            typed: `Appointment?actor:Practitioner=${dr.id}`,
            chain: `Appointment?actor:Practitioner.name=${drFamily}`,
            missing: `Appointment?actor=Practitioner/${dr.id}&service-type:missing=true`,
            date: `Appointment?actor=Practitioner/${dr.id}&date=ge2031-01-01&date=lt2040-01-01`,
            dateOutside: `Appointment?actor=Practitioner/${dr.id}&date=lt2031-01-01`,
        };
        const subs = {};
        for (const [k, c] of Object.entries(criteria)) {
            const res = await fhir(server, 'POST', '/Subscription', { body: restHook(c, hooks(`crit-${k}`)) });
            assert.equal(res.status, 201, `${k}: ${c} -> ${res.status} ${res.text}`);
            subs[k] = res.json.id;
        }
        for (const [k, id] of Object.entries(subs)) await waitStatus(server, id, 'active').catch((e) => assert.fail(`${k}: ${e.message}`));

        const p1 = await create(server, { resourceType: 'Patient', active: true, identifier: [{ system: SYS, value: v1 }], name: [{ family: fam }] });
        const p2 = await create(server, { resourceType: 'Patient', active: false, identifier: [{ system: SYS, value: v2 }], name: [{ family: fam }] });
        const p3 = await create(server, { resourceType: 'Patient', active: true, identifier: [{ value: v3 }], name: [{ family: fam }] });
        expectStatus(await fhir(server, 'PUT', `/Patient/${early.id}`, { body: { ...early, gender: 'other' } }), 200);
        const x1 = await create(server, appointment(dr, pat));
        expectStatus(await fhir(server, 'PUT', `/Appointment/${x1.id}`, { body: { ...x1, status: 'noshow' } }), 200);
        const x2 = await create(server, appointment(dr, pat, { status: 'proposed', serviceType: [{ text: 'check-up' }] }));
        expectStatus(await fhir(server, 'PUT', `/Appointment/${x2.id}`, { body: { ...x2, status: 'booked' } }), 200);

        const P = (r) => ['create', `Patient/${r.id}`, '1'];
        const X = (r, e, v) => [e, `Appointment/${r.id}`, v];
        const all4 = [X(x1, 'create', '1'), X(x1, 'update', '2'), X(x2, 'create', '1'), X(x2, 'update', '2')];
        const expected = {
            anySystem: [P(p1)],
            withSystem: [P(p1)],
            otherSystem: [],
            orList: [P(p1), P(p2)],
            noSystem: [P(p3)],
            id: [['update', `Patient/${early.id}`, '2']],
            combined: [P(p1)],
            not: [P(p2), P(p3)],
            inactive: [P(p2)],
            statusOr: [X(x1, 'create', '1'), X(x1, 'update', '2'), X(x2, 'update', '2')],
            statusNot: [X(x1, 'update', '2'), X(x2, 'create', '1'), X(x2, 'update', '2')],
            bareId: all4,
            absolute: all4,
            typed: all4,
            chain: all4,
            missing: [X(x1, 'create', '1'), X(x1, 'update', '2')],
            date: all4,
            dateOutside: [],
        };
        // the same searches, as searches, agree about the current versions
        const search = await fhir(server, 'GET', `/Patient?identifier=${v1},${v2}`);
        expectStatus(search, 200);
        assert.equal(search.json.total ?? search.json.entry?.length, 2);
        const enough = () => Object.entries(expected).every(([k, e]) => receiver.notifications(subs[k]).length >= e.length);
        await waitUntil(enough, () => `every Subscription's notifications: ${JSON.stringify(Object.fromEntries(Object.keys(subs).map((k) => [k, summary(receiver.notifications(subs[k]))])))}`, WAIT).catch(() => {});
        await sleep(500);
        const got = Object.fromEntries(Object.keys(expected).map((k) => [k, summary(receiver.notifications(subs[k]))]));
        assert.deepEqual(got, expected);
    });

    it('refuses an endpoint off the allowlist, bad criteria, unsupported channels and payloads with 422, storing nothing', async () => {
        const before = await countSubscriptions(server);
        const ok = hooks('refused');
        const crit = 'Appointment?status=booked';
        const cases = {
            'another port': restHook(crit, outsider.url('/hooks/x')),
            'another path on the allowed port': restHook(crit, receiver.url('/other/x')),
            'a path that only extends the prefix': restHook(crit, receiver.url('/hooksx/y')),
            'another host name for the same address': restHook(crit, `http://localhost:${receiver.port}/hooks/x`),
            'user info before another host': restHook(crit, `http://127.0.0.1:${receiver.port}@169.254.169.254/hooks/x`),
            'a metadata address': restHook(crit, 'http://169.254.169.254/latest/meta-data/'),
            'not http': restHook(crit, `ftp://127.0.0.1:${receiver.port}/hooks/x`),
            'no endpoint': { ...restHook(crit, ok), channel: { type: 'rest-hook' } },
            'an unknown resource type': restHook('Frobnicator?status=booked', ok),
            'a type this server does not store': restHook('Observation?code=1234-5', ok),
            'an unknown parameter': restHook('Appointment?bogus=1', ok),
            'a malformed date': restHook('Appointment?date=yesterday-ish', ok),
            '_count': restHook('Appointment?status=booked&_count=5', ok),
            '_sort': restHook('Appointment?_sort=date', ok),
            '_include': restHook('Appointment?_include=Appointment:actor', ok),
            '_summary': restHook('Appointment?_summary=count', ok),
            'no criteria': { ...restHook(crit, ok), criteria: undefined },
            'channel email': { ...restHook(crit, ok), channel: { type: 'email', endpoint: 'mailto:desk@example.org' } },
            'channel sms': { ...restHook(crit, ok), channel: { type: 'sms', endpoint: 'tel:+15555550100' } },
            'channel message': { ...restHook(crit, ok), channel: { type: 'message', endpoint: ok } },
            'payload text/plain': restHook(crit, ok, { payload: 'text/plain' }),
            'payload xml': restHook(crit, ok, { payload: 'application/fhir+xml' }),
            'a header with CR LF': restHook(crit, ok, { header: ['X-A: b\r\nHost: evil.example'] }),
            'a header without a name': restHook(crit, ok, { header: ['just a value'] }),
            'a Host header': restHook(crit, ok, { header: ['Host: evil.example'] }),
            'a Content-Length header': restHook(crit, ok, { header: ['content-length: 0'] }),
            'a Transfer-Encoding header': restHook(crit, ok, { header: ['Transfer-Encoding: chunked'] }),
            'a Connection header': restHook(crit, ok, { header: ['Connection: close'] }),
            'a Content-Type header': restHook(crit, ok, { header: ['Content-Type: text/plain'] }),
        };
        for (const [what, body] of Object.entries(cases)) {
            const res = await fhir(server, 'POST', '/Subscription', { body });
            assert.equal(res.status, 422, `${what}: ${JSON.stringify(body)} -> ${res.status} ${res.text}`);
            expectOutcome(res, 422);
        }
        assert.equal(await countSubscriptions(server), before, 'no refused Subscription was stored');

        // an update is checked the same way, and leaves the stored version alone
        const sub = await createActive(server, restHook(crit, hooks('put-refused')));
        for (const [what, change] of Object.entries({
            'endpoint off the allowlist': { channel: { ...sub.channel, endpoint: outsider.url('/hooks/x') } },
            'channel email': { channel: { type: 'email', endpoint: 'mailto:desk@example.org' } },
            _count: { criteria: 'Appointment?_count=5' },
        })) {
            const res = await fhir(server, 'PUT', `/Subscription/${sub.id}`, { body: { ...sub, ...change } });
            assert.equal(res.status, 422, `PUT with ${what} -> ${res.status} ${res.text}`);
            expectOutcome(res, 422);
        }
        const now = await getSub(server, sub.id);
        assert.equal(now.meta.versionId, sub.meta.versionId);
        assert.equal(now.channel.endpoint, hooks('put-refused'));
        await sleep(200);
        assert.equal(outsider.requests.length, 0, 'nothing ever reached an endpoint off the allowlist');
    });

    it('header values are sealed in every read; a GET-then-PUT keeps the header working; a sealed value does not open for another endpoint', async () => {
        const dr = await practitioner();
        const secret = `tok-${randomBytes(8).toString('hex')}`;
        const created = await fhir(server, 'POST', '/Subscription', {
            body: restHook(`Appointment?actor=Practitioner/${dr.id}`, hooks('sealed'), { header: [`Authorization: Bearer ${secret}`, 'X-Desk: front desk 2'] }),
        });
        expectStatus(created, 201);
        const id = created.json.id;
        assert.ok(!created.text.includes(secret), 'the create response shows no header value');
        assert.ok(!created.text.includes('front desk 2'));
        const current = await waitStatus(server, id, 'active');
        assert.equal(current.channel.header.length, 2);
        assert.match(current.channel.header[0], /^Authorization: sealed:\S+$/);
        assert.match(current.channel.header[1], /^X-Desk: sealed:\S+$/);

        const reads = [
            `/Subscription/${id}`,
            `/Subscription/${id}/_history/1`,
            `/Subscription/${id}/_history/${current.meta.versionId}`,
            `/Subscription/${id}/_history`,
            `/Subscription?_id=${id}`,
            '/Subscription',
            '/Subscription/_history',
            '/_history',
        ];
        for (const p of reads) {
            const res = await fhir(server, 'GET', p);
            expectStatus(res, 200);
            assert.ok(!res.text.includes(secret) && !res.text.includes('front desk 2'), `GET ${p} shows a header value`);
        }

        // GET, edit, PUT: the sealed values go back unchanged, the endpoint is checked again, the header still works
        const put = await fhir(server, 'PUT', `/Subscription/${id}`, { body: { ...current, reason: 'renamed' } });
        expectStatus(put, 200);
        assert.ok(!put.text.includes(secret));
        assert.equal(put.json.status, 'requested', 'a PUT of an active rest-hook (status active) is stored as requested');
        await receiver.waitFor(() => receiver.handshakes(id).length >= 2, 'the second handshake', WAIT);
        assert.equal(receiver.handshakes(id)[1].headers.authorization, `Bearer ${secret}`);
        assert.equal(receiver.handshakes(id)[1].headers['x-desk'], 'front desk 2');
        const after = await waitStatus(server, id, 'active');
        assert.equal(after.reason, 'renamed');
        const a = await create(server, appointment(dr, pat));
        await receiver.waitFor(() => receiver.notifications(id).length >= 1, 'a notification', WAIT);
        const n = receiver.notifications(id)[0];
        assert.equal(refOf(n), `Appointment/${a.id}`);
        assert.equal(n.headers.authorization, `Bearer ${secret}`);
        assert.equal(n.headers['x-desk'], 'front desk 2');

        // the sealed value sent with another endpoint (allowed as such) is refused, and nothing changes
        const moved = await fhir(server, 'PUT', `/Subscription/${id}`, { body: { ...after, channel: { ...after.channel, endpoint: hooks('elsewhere') } } });
        expectOutcome(moved, 422);
        const copy = await fhir(server, 'POST', '/Subscription', { body: { ...after, id: undefined, meta: undefined, channel: { ...after.channel, endpoint: hooks('copy') } } });
        expectOutcome(copy, 422);
        assert.equal((await getSub(server, id)).meta.versionId, after.meta.versionId);
        assert.equal(receiver.requests.filter((q) => q.path === '/hooks/elsewhere' || q.path === '/hooks/copy').length, 0);
        // a new value replaces the sealed one
        const replaced = await fhir(server, 'PUT', `/Subscription/${id}`, { body: { ...after, channel: { ...after.channel, header: ['Authorization: Bearer rotated'] } } });
        expectStatus(replaced, 200);
        assert.ok(!replaced.text.includes('rotated'));
        await receiver.waitFor(() => receiver.handshakes(id).length >= 3, 'the third handshake', WAIT);
        assert.equal(receiver.handshakes(id)[2].headers.authorization, 'Bearer rotated');
        assert.equal(receiver.handshakes(id)[2].headers['x-desk'], undefined, 'the header list is the new one');
    });

    it('loses nothing while the endpoint is down: every change arrives in order when it is back, each with the version it made', async () => {
        const dr = await practitioner();
        const sub = await createActive(server, restHook(`Appointment?actor=Practitioner/${dr.id}&status=booked`, hooks('down'), { payload: 'application/fhir+json' }));
        await receiver.stop();
        let expected;
        try {
            const a = await create(server, appointment(dr, pat));
            const a2 = await fhir(server, 'PUT', `/Appointment/${a.id}`, { body: { ...a, comment: 'v2' } });
            expectStatus(a2, 200);
            const b = await create(server, appointment(dr, pat));
            const a3 = await fhir(server, 'PUT', `/Appointment/${a.id}`, { body: { ...a2.json, status: 'cancelled' } });
            expectStatus(a3, 200);
            const c = await create(server, appointment(dr, pat));
            expectStatus(await fhir(server, 'DELETE', `/Appointment/${b.id}`), [200, 204]);
            expected = [
                ['create', `Appointment/${a.id}`, '1'],
                ['update', `Appointment/${a.id}`, '2'],
                ['create', `Appointment/${b.id}`, '1'],
                ['update', `Appointment/${a.id}`, '3'],
                ['create', `Appointment/${c.id}`, '1'],
            ];
            await sleep(600); // several refused attempts (retry_max_ms 200)
            assert.equal(receiver.notifications(sub.id).length, 0);
        } finally {
            await receiver.start();
        }
        await receiver.waitFor(() => receiver.notifications(sub.id).length >= 6, 'six notifications', WAIT);
        const ns = receiver.notifications(sub.id);
        assert.deepEqual(summary(ns).slice(0, 5), expected);
        assert.deepEqual(summary(ns)[5].slice(0, 2), ['delete', expected[2][1]]);
        // evaluated and sent as of each change, not as of delivery time
        assert.deepEqual(
            ns.slice(0, 5).map((q) => [JSON.parse(q.body).meta.versionId, JSON.parse(q.body).status, JSON.parse(q.body).comment]),
            [
                ['1', 'booked', undefined],
                ['2', 'booked', 'v2'],
                ['1', 'booked', undefined],
                ['3', 'cancelled', 'v2'],
                ['1', 'booked', undefined],
            ],
        );
        assert.equal((await getSub(server, sub.id)).status, 'active', 'a few failures do not make it error');
    });

    it('an update of the Subscription while notifications are pending loses none of them', async () => {
        const dr = await practitioner();
        const sub = await createActive(server, restHook(`Appointment?actor=Practitioner/${dr.id}`, hooks('pending-put')));
        receiver.answer('/hooks/pending-put', 503);
        const made = [];
        for (let i = 0; i < 3; i++) made.push(`Appointment/${(await create(server, appointment(dr, pat))).id}`);
        await receiver.waitFor(() => receiver.notifications(sub.id).length >= 2, 'failed attempts', WAIT);
        const current = await getSub(server, sub.id);
        const put = await fhir(server, 'PUT', `/Subscription/${sub.id}`, { body: { ...current, reason: 'edited while behind' } });
        expectStatus(put, 200);
        receiver.answer('/hooks/pending-put', null);
        await receiver.waitFor(() => new Set(receiver.notifications(sub.id).filter((q) => q.answered === 200).map(refOf)).size >= 3, 'the three changes', WAIT);
        await waitStatus(server, sub.id, 'active');
        const ok = receiver.notifications(sub.id).filter((q) => q.answered === 200).map(refOf);
        assert.deepEqual(ok, made, 'each change once, in order, after the edit');
        assert.equal((await getSub(server, sub.id)).reason, 'edited while behind');
    });

    it('an endpoint that does not answer within timeout_ms has failed: the same notification is sent again, later ones wait behind it', async () => {
        const dr = await practitioner();
        const sub = await createActive(server, restHook(`Appointment?actor=Practitioner/${dr.id}`, hooks('hang'), { payload: 'application/fhir+json' }));
        receiver.answer('/hooks/hang', 'hang');
        const a = await create(server, appointment(dr, pat));
        await receiver.waitFor(() => receiver.notifications(sub.id).length >= 1, 'the first attempt', WAIT);
        // never in the request's way: writes go on while the endpoint holds the delivery
        const t0 = Date.now();
        const b = await create(server, appointment(dr, pat));
        assert.ok(Date.now() - t0 < 900, `a write waited for the hanging endpoint: ${Date.now() - t0} ms`);
        assert.equal(receiver.notifications(sub.id).length, 1, 'the next notification waits behind the unanswered one');
        receiver.answer('/hooks/hang', null); // answer 200 from now on; the held request stays unanswered
        await receiver.waitFor(() => receiver.notifications(sub.id).some((q) => refOf(q) === `Appointment/${b.id}`), 'the second Appointment', WAIT);
        const ns = receiver.notifications(sub.id);
        const refs = ns.map(refOf);
        assert.equal(refs[0], `Appointment/${a.id}`);
        assert.equal(ns[0].answered, null, 'the first attempt got no answer');
        receiver.release();
        assert.ok(ns.length >= 3, `the unanswered notification was sent again: ${receiver.describe(ns)}`);
        // at-least-once: repeats carry the same Content-Location; the order of distinct changes holds
        const distinct = refs.filter((r, i) => i === 0 || r !== refs[i - 1]);
        assert.deepEqual(distinct, [`Appointment/${a.id}`, `Appointment/${b.id}`]);
        const repeat = ns.find((q, i) => i > 0 && refOf(q) === `Appointment/${a.id}`);
        assert.equal(repeat.headers['content-location'], ns[0].headers['content-location']);
        assert.equal(repeat.body, ns[0].body, 'the same payload');
        assert.ok(repeat.at - ns[0].at >= 900, `retried only after timeout_ms (1000): ${repeat.at - ns[0].at} ms`);
        assert.equal((await getSub(server, sub.id)).status, 'active');
    });

    it('transactions notify each committed entry in order; a transaction that fails notifies nothing; PATCH notifies an update', async () => {
        const dr = await practitioner();
        const sub = await createActive(server, restHook(`Appointment?actor=Practitioner/${dr.id}`, hooks('tx'), { payload: 'application/json' }));
        assert.equal(sub.channel.payload, 'application/json', 'application/json is accepted as a payload');
        const tx = (entries) => fhir(server, 'POST', '', { body: { resourceType: 'Bundle', type: 'transaction', entry: entries } });
        const entry = (resource) => ({ fullUrl: `urn:uuid:${crypto.randomUUID()}`, resource, request: { method: 'POST', url: 'Appointment' } });
        const ok = await tx([entry(appointment(dr, pat)), entry(appointment(dr, pat))]);
        expectStatus(ok, 200);
        const ids = ok.json.entry.map((e) => e.response.location.match(/Appointment\/([^/]+)/)[1]);
        // the second entry double-books the first: the database refuses it after the first was written, and both go
        const clash = appointment(dr, pat);
        const failed = await tx([entry(clash), entry({ ...clash })]);
        assert.ok(failed.status >= 400, `a double-booking transaction fails: ${failed.status}`);
        const a = await create(server, appointment(dr, pat));
        const patched = await fhir(server, 'PATCH', `/Appointment/${a.id}`, {
            body: JSON.stringify([{ op: 'replace', path: '/status', value: 'cancelled' }]),
            headers: { 'content-type': 'application/json-patch+json' },
        });
        expectStatus(patched, 200);
        await receiver.waitFor(() => receiver.notifications(sub.id).length >= 4, 'four notifications', WAIT);
        await sleep(300);
        const ns = receiver.notifications(sub.id);
        assert.deepEqual(summary(ns), [
            ['create', `Appointment/${ids[0]}`, '1'],
            ['create', `Appointment/${ids[1]}`, '1'],
            ['create', `Appointment/${a.id}`, '1'],
            ['update', `Appointment/${a.id}`, '2'],
        ]);
        assert.equal(JSON.parse(ns[3].body).status, 'cancelled');
    });

    it('a deleted Subscription delivers nothing more', async () => {
        const dr = await practitioner();
        const crit = `Appointment?actor=Practitioner/${dr.id}`;
        const sub = await createActive(server, restHook(crit, hooks('deleted')));
        const witness = await createActive(server, restHook(crit, hooks('deleted-witness')));
        const first = await create(server, appointment(dr, pat));
        await receiver.waitFor(() => receiver.notifications(sub.id).length >= 1, 'the first notification', WAIT);
        expectStatus(await fhir(server, 'DELETE', `/Subscription/${sub.id}`), [200, 204]);
        const later = await create(server, appointment(dr, pat));
        await receiver.waitFor(() => receiver.notifications(witness.id).some((q) => refOf(q) === `Appointment/${later.id}`), 'the witness', WAIT);
        await sleep(500);
        assert.deepEqual(receiver.notifications(sub.id).map(refOf), [`Appointment/${first.id}`]);
    });

    it('an active rest-hook stops delivering when its end passes', async () => {
        const dr = await practitioner();
        const crit = `Appointment?actor=Practitioner/${dr.id}`;
        const end = secondsFromNow(3);
        const ending = await createActive(server, { ...restHook(crit, hooks('ending')), end });
        const witness = await createActive(server, restHook(crit, hooks('ending-witness')));
        const first = await create(server, appointment(dr, pat));
        await receiver.waitFor(() => receiver.notifications(ending.id).length >= 1, 'a notification before the end', WAIT);
        assert.ok(Date.now() < Date.parse(end), 'the first change was before the end (machine too slow otherwise)');
        await sleep(Math.max(0, Date.parse(end) - Date.now()) + 1200); // past the end also at the precision of seconds
        const later = await create(server, appointment(dr, pat));
        await receiver.waitFor(() => receiver.notifications(witness.id).some((q) => refOf(q) === `Appointment/${later.id}`), 'the witness', WAIT);
        await sleep(500);
        assert.deepEqual(receiver.notifications(ending.id).map(refOf), [`Appointment/${first.id}`], 'nothing after the end');
        await waitStatus(server, ending.id, 'off'); // the server switches it off at its end
    });

    it('a Subscription whose end has passed delivers nothing', async () => {
        const dr = await practitioner();
        const witness = await createActive(server, restHook(`Appointment?actor=Practitioner/${dr.id}`, hooks('witness')));
        const ended = await fhir(server, 'POST', '/Subscription', { body: restHook(`Appointment?actor=Practitioner/${dr.id}`, hooks('ended'), {}, { end: '2020-01-01T00:00:00Z' }) });
        expectStatus(ended, 201);
        const a = await create(server, appointment(dr, pat));
        await receiver.waitFor(() => receiver.notifications(witness.id).length >= 1, 'the witness', WAIT);
        await sleep(500);
        assert.equal(receiver.notifications(ended.json.id).length, 0, `an ended Subscription notified: ${receiver.describe(receiver.of(ended.json.id))}`);
        assert.equal(refOf(receiver.notifications(witness.id)[0]), `Appointment/${a.id}`);
        await waitStatus(server, ended.json.id, 'off');
    });
});

// ---------------------------------------------------------------------------

describe('rest-hook failures (max_failures 4)', () => {
    let server, receiver, pat;
    const MAX = 4;
    const hooks = (p) => receiver.url(`/hooks/${p}`);
    before(async () => {
        receiver = await startReceiver();
        server = await startServer({
            env: {
                FHIRSCHED_SUBSCRIPTIONS_ENDPOINT_ALLOWLIST: `http://127.0.0.1:${receiver.port}/hooks/`,
                FHIRSCHED_SUBSCRIPTIONS_RETRY_BASE_MS: '100',
                FHIRSCHED_SUBSCRIPTIONS_RETRY_MAX_MS: '250',
                FHIRSCHED_SUBSCRIPTIONS_TIMEOUT_MS: '1000',
                FHIRSCHED_SUBSCRIPTIONS_MAX_FAILURES: String(MAX),
            },
        });
        pat = await create(server, { resourceType: 'Patient', name: [{ family: word('Pat') }] });
    });
    after(async () => {
        await server?.stop();
        await receiver?.stop();
    });
    const practitioner = () => create(server, { resourceType: 'Practitioner', active: true, name: [{ family: word('Dr') }] });

    it('a receiver answering 500: retried with doubling waits, `error` with the reason after max_failures attempts, and nothing more', async () => {
        const dr = await practitioner();
        const sub = await createActive(server, restHook(`Appointment?actor=Practitioner/${dr.id}`, hooks('fail'), { payload: 'application/fhir+json' }));
        receiver.answer('/hooks/fail', 500);
        const a = await create(server, appointment(dr, pat));
        const errored = await waitStatus(server, sub.id, 'error');
        assert.equal(typeof errored.error, 'string');
        assert.match(errored.error, /500/, `Subscription.error says why: ${errored.error}`);
        await sleep(700); // longer than retry_max_ms: no attempt after the error
        const ns = receiver.notifications(sub.id);
        assert.equal(ns.length, MAX, `exactly max_failures attempts: ${receiver.describe(ns)}`);
        assert.ok(ns.every((q) => refOf(q) === `Appointment/${a.id}` && versionOf(q) === '1'), 'every attempt is the same notification');
        const gaps = ns.slice(1).map((q, i) => q.at - ns[i].at);
        // retry_base_ms 100, doubled, at most retry_max_ms 250 (lower bounds only: a loaded machine may be late)
        assert.ok(gaps[0] >= 90, `first retry after retry_base_ms: ${gaps}`);
        assert.ok(gaps[1] >= 180, `second retry after twice retry_base_ms: ${gaps}`);
        assert.ok(gaps[2] >= 225, `third retry after retry_max_ms: ${gaps}`);
        assert.equal(receiver.handshakes(sub.id).length, 1);
    });

    it('in error changes keep being recorded; a PUT with status requested handshakes again and delivers from where it stopped, in order', async () => {
        const dr = await practitioner();
        const sub = await createActive(server, restHook(`Appointment?actor=Practitioner/${dr.id}`, hooks('reactivate'), { payload: 'application/fhir+json' }));
        receiver.answer('/hooks/reactivate', 500);
        const a = await create(server, appointment(dr, pat));
        const errored = await waitStatus(server, sub.id, 'error');
        const attempts = receiver.notifications(sub.id).length;
        assert.equal(attempts, MAX);
        receiver.answer('/hooks/reactivate', null);
        // made while in error
        const b = await create(server, appointment(dr, pat));
        const a2 = await fhir(server, 'PUT', `/Appointment/${a.id}`, { body: { ...a, status: 'cancelled' } });
        expectStatus(a2, 200);
        await sleep(300);
        assert.equal(receiver.notifications(sub.id).length, attempts, 'nothing is delivered while in error');

        const put = await fhir(server, 'PUT', `/Subscription/${sub.id}`, { body: { ...errored, status: 'requested' } });
        expectStatus(put, 200);
        assert.equal(put.json.status, 'requested');
        assert.equal(put.json.error, undefined, 'the error text goes with the error status');
        await receiver.waitFor(() => receiver.notifications(sub.id).length >= attempts + 3, 'the three pending notifications', WAIT);
        const hs = receiver.handshakes(sub.id);
        assert.equal(hs.length, 2, 'a second handshake');
        const resumed = receiver.notifications(sub.id).slice(attempts);
        assert.ok(hs[1].at <= resumed[0].at, 'the handshake comes before the pending notifications');
        assert.deepEqual(summary(resumed), [
            ['create', `Appointment/${a.id}`, '1'],
            ['create', `Appointment/${b.id}`, '1'],
            ['update', `Appointment/${a.id}`, '2'],
        ]);
        const active = await waitStatus(server, sub.id, 'active');
        assert.equal(active.error, undefined);
    });

    it('a failing handshake is retried like a delivery and ends in error after max_failures; re-requested it succeeds', async () => {
        const dr = await practitioner();
        receiver.answer('/hooks/bad-handshake', 503);
        const res = await fhir(server, 'POST', '/Subscription', { body: restHook(`Appointment?actor=Practitioner/${dr.id}`, hooks('bad-handshake')) });
        expectStatus(res, 201);
        const errored = await waitStatus(server, res.json.id, 'error');
        assert.match(errored.error || '', /503/, `Subscription.error says why: ${errored.error}`);
        await sleep(500);
        assert.equal(receiver.handshakes(res.json.id).length, MAX, `max_failures handshakes: ${receiver.describe(receiver.of(res.json.id))}`);
        assert.equal(receiver.notifications(res.json.id).length, 0);
        receiver.answer('/hooks/bad-handshake', null);
        expectStatus(await fhir(server, 'PUT', `/Subscription/${res.json.id}`, { body: { ...errored, status: 'requested' } }), 200);
        await waitStatus(server, res.json.id, 'active');
        assert.equal(receiver.handshakes(res.json.id).length, MAX + 1);
    });

    it('max_failures counts failures in a row: a success in between (handshake or notification) starts the count again', async () => {
        const dr = await practitioner();
        // every request fails until it is the third of its kind in a row, i.e. 2 failures before each success
        let streak = 0;
        receiver.answer('/hooks/in-a-row', () => (++streak % 3 === 0 ? 200 : 500));
        const res = await fhir(server, 'POST', '/Subscription', { body: restHook(`Appointment?actor=Practitioner/${dr.id}`, hooks('in-a-row')) });
        expectStatus(res, 201);
        const id = res.json.id;
        await waitStatus(server, id, 'active');
        const made = [];
        for (let i = 0; i < 3; i++) made.push(`Appointment/${(await create(server, appointment(dr, pat))).id}`);
        await receiver.waitFor(() => receiver.notifications(id).filter((q) => q.answered === 200).length >= 3, 'three successes', WAIT);
        // (2 failed + 1 good) handshakes, then 3 x (2 failed + 1 good) notifications: 12 requests, 8 failures, never MAX (4) in a row
        assert.equal(receiver.of(id).length, 12, receiver.describe(receiver.of(id)));
        assert.deepEqual(receiver.notifications(id).filter((q) => q.answered === 200).map(refOf), made);
        assert.equal((await getSub(server, id)).status, 'active');
        receiver.answer('/hooks/in-a-row', null);
    });

    it('any 2xx is success; a redirect is a failure', async () => {
        const dr = await practitioner();
        const crit = `Appointment?actor=Practitioner/${dr.id}`;
        receiver.answer('/hooks/accepted', 202);
        receiver.answer('/hooks/no-content', 204);
        receiver.answer('/hooks/moved', 302);
        const s202 = await createActive(server, restHook(crit, hooks('accepted')));
        const s204 = await createActive(server, restHook(crit, hooks('no-content')));
        const moved = await fhir(server, 'POST', '/Subscription', { body: restHook(crit, hooks('moved')) });
        expectStatus(moved, 201);
        const a = await create(server, appointment(dr, pat));
        const b = await create(server, appointment(dr, pat));
        await receiver.waitFor(() => receiver.notifications(s202.id).length >= 2 && receiver.notifications(s204.id).length >= 2, 'both delivered', WAIT);
        const errored = await waitStatus(server, moved.json.id, 'error');
        assert.match(errored.error || '', /302/, `Subscription.error says why: ${errored.error}`);
        await sleep(300);
        for (const s of [s202, s204]) {
            assert.deepEqual(receiver.notifications(s.id).map(refOf), [`Appointment/${a.id}`, `Appointment/${b.id}`], 'once each');
            assert.equal((await getSub(server, s.id)).status, 'active');
        }
        assert.equal(receiver.handshakes(moved.json.id).length, MAX);
    });

    it('status off stops delivery, and changes made while off are not delivered after it is requested again', async () => {
        const dr = await practitioner();
        const crit = `Appointment?actor=Practitioner/${dr.id}`;
        const sub = await createActive(server, restHook(crit, hooks('off')));
        const witness = await createActive(server, restHook(crit, hooks('off-witness')));
        const first = await create(server, appointment(dr, pat));
        await receiver.waitFor(() => receiver.notifications(sub.id).length >= 1, 'the first notification', WAIT);
        const current = await getSub(server, sub.id);
        const off = await fhir(server, 'PUT', `/Subscription/${sub.id}`, { body: { ...current, status: 'off' } });
        expectStatus(off, 200);
        assert.equal(off.json.status, 'off');
        const whileOff = await create(server, appointment(dr, pat));
        await receiver.waitFor(() => receiver.notifications(witness.id).some((q) => refOf(q) === `Appointment/${whileOff.id}`), 'the witness', WAIT);
        await sleep(500);
        assert.deepEqual(receiver.notifications(sub.id).map(refOf), [`Appointment/${first.id}`], 'nothing while off');
        assert.equal((await getSub(server, sub.id)).status, 'off', 'off stays off');

        const on = await fhir(server, 'PUT', `/Subscription/${sub.id}`, { body: { ...off.json, status: 'requested' } });
        expectStatus(on, 200);
        await waitStatus(server, sub.id, 'active');
        const later = await create(server, appointment(dr, pat));
        await receiver.waitFor(() => receiver.notifications(sub.id).some((q) => refOf(q) === `Appointment/${later.id}`), 'the change after re-activation', WAIT);
        assert.deepEqual(receiver.notifications(sub.id).map(refOf), [`Appointment/${first.id}`, `Appointment/${later.id}`], 'the change made while off never arrives');
    });
});
