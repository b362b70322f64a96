// HL7 v2 outbound (docs/hl7v2.md "Outbound"): FHIR changes of Appointments become SIU messages to legacy MLLP
// receivers (tests/lib/mllp.mjs startMllpReceiver) through the durable outbox: the rendered S12 (MSH, SCH, TQ1, NTE, PID,
// AIS, AIP, AIL) for 2.5.1 and 2.3 endpoints, S13/S14/S15/S17/S26 for the changes that call for them, in order per
// appointment; holds never sent and $book of a hold sent as S12; an endpoint's `events`; receiver down then up, a
// receiver that never answers or answers AE (retried with the same control id), a server restart with a message
// pending; AR parks at once, too many failures park, $hl7-outbox, /metrics, $hl7-outbox-retry and -discard; an
// inbound booking is not echoed to the system it came from, but later FHIR changes are sent to it.
//
// The outbox is filled in the transaction of the change, so "nothing is queued" is checked right after the write
// through $hl7-outbox, without waiting.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, expectStatus, fhir, freePort, raw, sleep, startServer, uniq } from '../lib/harness.mjs';
import { controlId, get, hl7Time, mllpSend, startMllpReceiver } from '../lib/mllp.mjs';

const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';
const T0 = Date.UTC(2032, 4, 3, 6, 0); // each appointment gets its own hour after this
let hourSeq = 0;
const iso = (t) => new Date(t).toISOString().replace('.000', '');
/** A fresh interval { start, end } (ISO) of `minutes` in the future. */
function interval(minutes = 30) {
    const s = T0 + hourSeq++ * 3600_000;
    return { start: iso(s), end: iso(s + minutes * 60_000) };
}

/** Milliseconds of an HL7 DTM with an offset (YYYYMMDDHHMM[SS[.S+]][+/-ZZZZ]). */
function fromHl7(ts) {
    const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})?(?:\.\d+)?([+-])(\d{2})(\d{2})$/.exec(ts || '');
    assert.ok(m, `an HL7 timestamp with an offset: ${ts}`);
    const utc = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
    const off = (m[7] === '-' ? -1 : 1) * (+m[8] * 60 + +m[9]) * 60_000;
    return utc - off;
}

/** A PLAC identifier: SCH-1 of every message about the Appointment, known before the Appointment exists. */
const placer = (value) => ({ identifier: [{ type: { coding: [{ system: V2_0203, code: 'PLAC' }] }, system: 'urn:x:placer', value }] });
const hasPlacer = (value) => (text) => get(text, 'SCH-1.1') === value;

/** The messages (texts) of Appointment `id` a receiver got, in order. */
const forAppt = (id) => (text) => get(text, 'SCH-2.1') === id;
const eventsOf = (rx, id) => rx.messages.filter((m) => forAppt(id)(m.text)).map((m) => get(m.text, 'MSH-9.2'));
const controlNumber = (text) => Number(/^FS(\d+)$/.exec(get(text, 'MSH-10'))?.[1]);

/** Shared helpers over one server (a getter, since tests may restart it). */
function helpers(getServer) {
    const srv = () => getServer();
    const h = {
        async actors(tag = uniq('o')) {
            const t = tag.replace(/-/g, '');
            const mk = async (body) => {
                const res = await fhir(srv(), 'POST', `/${body.resourceType}`, { body });
                expectStatus(res, 201);
                return res.json;
            };
            return {
                tag: t,
                dr: await mk({ resourceType: 'Practitioner', identifier: [{ system: 'urn:oid:2.16.840.1.113883.4.6', value: `NPI${t}` }], name: [{ family: `Doc${t}`, given: ['Dana'] }] }),
                pat: await mk({
                    resourceType: 'Patient',
                    identifier: [
                        { system: 'urn:oid:1.2.3.4', value: `MRN${t}`, type: { coding: [{ system: V2_0203, code: 'MR' }] } },
                        { system: 'urn:fhirsched:hl7v2:LEGACY', value: `L${t}` },
                    ],
                    name: [{ family: `Pat${t}`, given: ['Paula'] }],
                    gender: 'female',
                    birthDate: '1975-06-07',
                }),
                loc: await mk({ resourceType: 'Location', identifier: [{ system: 'urn:x:rooms', value: `ROOM${t}` }], name: `Room ${t}` }),
            };
        },
        body(a, { start, end }, extra = {}) {
            return {
                resourceType: 'Appointment',
                status: 'booked',
                start,
                end,
                participant: [
                    { actor: { reference: `Patient/${a.pat.id}` }, status: 'accepted' },
                    {
                        actor: { reference: `Practitioner/${a.dr.id}` },
                        status: 'accepted',
                        required: 'required',
                        type: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'PPRF', display: 'primary performer' }] }],
                    },
                    { actor: { reference: `Location/${a.loc.id}` }, status: 'accepted' },
                ],
                ...extra,
            };
        },
        async book(a, when, extra = {}) {
            const res = await fhir(srv(), 'POST', '/Appointment', { body: h.body(a, when, extra) });
            expectStatus(res, 201);
            return res.json;
        },
        /** PUT the Appointment with changes; returns the new version. */
        async update(appt, changes) {
            const body = { ...appt, ...changes };
            delete body.meta;
            const res = await fhir(srv(), 'PUT', `/Appointment/${appt.id}`, { body });
            expectStatus(res, 200);
            return res.json;
        },
        /** $hl7-outbox entries as plain objects. */
        async outbox(query) {
            const res = await fhir(srv(), 'GET', `/$hl7-outbox?${query}`);
            expectStatus(res, 200);
            assert.equal(res.json.resourceType, 'Parameters');
            return (res.json.parameter || []).map((p) => {
                const e = {};
                for (const part of p.part) {
                    const key = Object.keys(part).find((k) => k.startsWith('value'));
                    e[part.name] = key === 'valueReference' ? part[key].reference : part[key];
                }
                return e;
            });
        },
        /** Polls $hl7-outbox?query until pred(entries) holds; returns the entries. */
        async waitOutbox(query, pred, what, timeoutMs = 15_000) {
            const deadline = Date.now() + timeoutMs;
            let last = [];
            for (;;) {
                last = await h.outbox(query);
                if (pred(last)) return last;
                if (Date.now() > deadline) assert.fail(`$hl7-outbox?${query}: ${what} did not happen within ${timeoutMs} ms; last: ${JSON.stringify(last.map(({ raw: _r, ack: _a, ...rest }) => rest))}`);
                await sleep(50);
            }
        },
        async metrics() {
            const res = await raw(srv(), 'GET', '/metrics');
            assert.equal(res.status, 200);
            return res.text;
        },
        /** The value of one metric line, or undefined. */
        async metric(name, labels) {
            const text = await h.metrics();
            const want = `${name}{${Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',')}}`;
            const line = text.split('\n').find((l) => l.startsWith(`${want} `));
            return line === undefined ? undefined : Number(line.slice(want.length + 1));
        },
    };
    return h;
}

describe('HL7 v2 outbound delivery', () => {
    let server, db, rx, oldRx, hl7Port;
    const env = () => ({
        FHIRSCHED_HL7_LISTEN: `127.0.0.1:${hl7Port}`,
        FHIRSCHED_HL7_OUTBOUND: [
            `mllp://127.0.0.1:${rx.port}?name=legacy&receiving_application=LEGACY&receiving_facility=CLINIC`,
            `mllp://127.0.0.1:${oldRx.port}?name=old&receiving_application=OLD&version=2.3&events=S12,S15`,
        ].join(' '),
        FHIRSCHED_HL7_RETRY_BASE_MS: '200',
        FHIRSCHED_HL7_RETRY_MAX_MS: '1000',
        FHIRSCHED_HL7_MAX_ATTEMPTS: '1000',
        FHIRSCHED_HL7_ACK_TIMEOUT_MS: '800',
    });
    const h = helpers(() => server);

    before(async () => {
        rx = await startMllpReceiver();
        oldRx = await startMllpReceiver();
        hl7Port = await freePort();
        db = await createTestDatabase();
        server = await startServer({ databaseUrl: db.url, env: env() });
    });
    after(async () => {
        await server?.stop();
        await rx?.stop();
        await oldRx?.stop();
        await db?.drop();
    });

    it('a FHIR booking sends SIU^S12 with MSH, SCH, TQ1, NTE, PID, AIS, AIP and AIL; a 2.3 endpoint gets SCH-11 timing only', async () => {
        const a = await h.actors();
        const when = interval(45);
        const placer = `PLC${a.tag}`;
        const appt = await h.book(a, when, {
            identifier: [{ type: { coding: [{ system: V2_0203, code: 'PLAC' }] }, system: 'urn:oid:1.2.3.99', value: placer }],
            comment: 'bring glasses',
            serviceType: [{ coding: [{ system: 'http://snomed.info/sct', code: '11429006', display: 'Consultation' }] }],
        });
        const s12 = await rx.waitFor(forAppt(appt.id), 'the S12');
        const why = s12.replace(/\r/g, '\n');
        assert.equal(get(s12, 'MSH-2'), '^~\\&');
        assert.deepEqual(
            [get(s12, 'MSH-3'), get(s12, 'MSH-4'), get(s12, 'MSH-5'), get(s12, 'MSH-6')],
            ['FHIRSCHED', 'FHIRSCHED', 'LEGACY', 'CLINIC'],
            `MSH-3..6: ${why}`,
        );
        assert.equal(get(s12, 'MSH-9'), 'SIU^S12^SIU_S12');
        assert.match(get(s12, 'MSH-10'), /^FS\d+$/);
        assert.equal(get(s12, 'MSH-12'), '2.5.1');
        assert.equal(get(s12, 'MSH-18'), 'UNICODE UTF-8');
        assert.equal(get(s12, 'SCH-1.1'), placer, `SCH-1 is the PLAC identifier: ${why}`);
        assert.equal(get(s12, 'SCH-2'), `${appt.id}^FHIRSCHED`, 'SCH-2 = Appointment id');
        assert.equal(get(s12, 'SCH-9'), '45');
        assert.equal(get(s12, 'SCH-10'), 'min');
        for (const [path, t] of [
            ['SCH-11.4', when.start],
            ['SCH-11.5', when.end],
            ['TQ1-7', when.start],
            ['TQ1-8', when.end],
            ['AIS-4', when.start],
            ['AIP-6', when.start],
            ['AIL-6', when.start],
        ]) {
            const v = get(s12, path);
            assert.match(v || '', /\+0000$/, `${path} in UTC with +0000: ${why}`);
            assert.equal(fromHl7(v), Date.parse(t), `${path}: ${v}`);
        }
        assert.equal(get(s12, 'NTE-3'), 'bring glasses');
        const pid3 = get(s12, 'PID-3').split('~');
        assert.ok(pid3.some((r) => r.startsWith(`MRN${a.tag}^`) && r.includes('1.2.3.4')), `PID-3 keeps the identifier and its authority: ${get(s12, 'PID-3')}`);
        assert.equal(get(s12, 'PID-5.1'), `Pat${a.tag}`);
        assert.equal(get(s12, 'PID-5.2'), 'Paula');
        assert.equal(get(s12, 'PID-7'), '19750607');
        assert.equal(get(s12, 'PID-8'), 'F');
        assert.equal(get(s12, 'AIS-3.1'), '11429006');
        assert.deepEqual([get(s12, 'AIP-3.1'), get(s12, 'AIP-3.2'), get(s12, 'AIP-3.3')], [`NPI${a.tag}`, `Doc${a.tag}`, 'Dana'], `AIP-3: ${why}`);
        assert.equal(get(s12, 'AIP-9'), '45');
        assert.equal(get(s12, 'AIL-3.1'), `ROOM${a.tag}`);
        assert.equal(get(s12, 'AIL-3.4'), `Room ${a.tag}`);

        const old = await oldRx.waitFor(forAppt(appt.id), 'the S12 to the 2.3 endpoint');
        assert.equal(get(old, 'MSH-12'), '2.3');
        assert.equal(get(old, 'MSH-5'), 'OLD');
        assert.equal(get(old, 'MSH-6'), '');
        assert.equal(get(old, 'TQ1-7'), undefined, 'no TQ1 below 2.5');
        assert.equal(fromHl7(get(old, 'SCH-11.4')), Date.parse(when.start));
        assert.equal(fromHl7(get(old, 'SCH-11.5')), Date.parse(when.end));

        const [entry] = await h.waitOutbox(`appointment=${appt.id}&endpoint=legacy`, (l) => l[0]?.state === 'sent', 'sent');
        assert.equal(entry.event, 'S12');
        assert.equal(entry.endpoint, 'legacy');
        assert.equal(entry.controlId, get(s12, 'MSH-10'));
        assert.equal(entry.raw, s12, 'the outbox keeps what was sent');
        assert.equal(get(entry.ack, 'MSA-1'), 'AA');
        assert.ok(entry.sent && entry.created);
    });

    it('changes send S13 (times), S14 (anything else), S15 (cancelled), in order; the 2.3 endpoint gets only its events (S12, S15)', async () => {
        const a = await h.actors();
        let appt = await h.book(a, interval());
        await rx.waitFor(forAppt(appt.id), 'the S12');
        const moved = interval(60);
        appt = await h.update(appt, moved);
        appt = await h.update(appt, { comment: 'now with a comment' });
        appt = await h.update(appt, { status: 'cancelled', cancelationReason: { coding: [{ code: 'PATREQ', display: 'Patient request' }], text: 'Patient request' } });
        await rx.waitUntil(() => eventsOf(rx, appt.id).length >= 4, 'four messages');
        assert.deepEqual(eventsOf(rx, appt.id), ['S12', 'S13', 'S14', 'S15']);
        const msgs = rx.messages.filter((m) => forAppt(appt.id)(m.text)).map((m) => m.text);
        assert.equal(fromHl7(get(msgs[1], 'TQ1-7')), Date.parse(moved.start), 'S13 carries the new start');
        assert.equal(get(msgs[1], 'SCH-9'), '60');
        assert.equal(get(msgs[2], 'NTE-3'), 'now with a comment');
        assert.match(get(msgs[3], 'SCH-6') || '', /Patient request|PATREQ/, 'S15: SCH-6 is the cancelation reason');
        const nums = msgs.map(controlNumber);
        assert.deepEqual([...nums].sort((x, y) => x - y), nums, `control ids increase: ${nums}`);

        await oldRx.waitUntil(() => eventsOf(oldRx, appt.id).includes('S15'), 'the S15 to old');
        assert.deepEqual(eventsOf(oldRx, appt.id), ['S12', 'S15']);
        const queued = await h.outbox(`appointment=${appt.id}&endpoint=old`);
        assert.deepEqual(queued.map((e) => e.event).sort(), ['S12', 'S15'], 'nothing else was queued for old');
    });

    it('no-show sends S26; entered-in-error and delete send S17', async () => {
        const a = await h.actors();
        let noshow = await h.book(a, interval());
        noshow = await h.update(noshow, { status: 'noshow' });
        let eie = await h.book(a, interval());
        eie = await h.update(eie, { status: 'entered-in-error' });
        const del = await h.book(a, interval());
        await rx.waitFor(forAppt(del.id), 'the S12 of the one to delete');
        expectStatus(await fhir(server, 'DELETE', `/Appointment/${del.id}`), [200, 204]);
        await rx.waitUntil(() => eventsOf(rx, noshow.id).length >= 2 && eventsOf(rx, eie.id).length >= 2 && eventsOf(rx, del.id).length >= 2, 'the S26 and S17s');
        assert.deepEqual(eventsOf(rx, noshow.id), ['S12', 'S26']);
        assert.deepEqual(eventsOf(rx, eie.id), ['S12', 'S17']);
        assert.deepEqual(eventsOf(rx, del.id), ['S12', 'S17']);
    });

    it('a hold (pending) is never sent; booking it with $book sends S12', async () => {
        const a = await h.actors();
        const res = await fhir(server, 'POST', '/Appointment', { body: h.body(a, interval(), { status: 'pending' }) });
        expectStatus(res, 201);
        const hold = res.json;
        assert.deepEqual(await h.outbox(`appointment=${hold.id}`), [], 'nothing queued for a hold, for any endpoint');
        const held = await h.update(hold, { comment: 'still only held' });
        assert.equal(held.status, 'pending');
        assert.deepEqual(await h.outbox(`appointment=${hold.id}`), [], 'nor for a change of a hold');

        const booked = await fhir(server, 'POST', '/Appointment/$book', {
            body: {
                resourceType: 'Parameters',
                parameter: [
                    { name: 'appointment-reference', valueReference: { reference: `Appointment/${hold.id}` } },
                    { name: 'override-rules', valueBoolean: true },
                ],
            },
        });
        expectStatus(booked, 200);
        const s12 = await rx.waitFor(forAppt(hold.id), 'the S12 of the booked hold');
        assert.equal(get(s12, 'MSH-9.2'), 'S12');
        assert.equal(get(s12, 'NTE-3'), 'still only held');
        const queued = await h.outbox(`appointment=${hold.id}&endpoint=legacy`);
        assert.deepEqual(queued.map((e) => e.event), ['S12']);

        // a plain PUT from pending to booked is a booking too
        let hold2 = (await fhir(server, 'POST', '/Appointment', { body: h.body(a, interval(), { status: 'pending' }) })).json;
        assert.deepEqual(await h.outbox(`appointment=${hold2.id}`), []);
        hold2 = await h.update(hold2, { status: 'booked' });
        assert.equal(get(await rx.waitFor(forAppt(hold2.id), 'the S12 of the PUT'), 'MSH-9.2'), 'S12');
    });

    it('receiver down: messages wait, retried; once it is back they arrive in order, each rendered from the version that caused it', async () => {
        await rx.stop();
        try {
            const a = await h.actors();
            const first = interval();
            let appt = await h.book(a, first);
            const second = interval();
            appt = await h.update(appt, second);
            appt = await h.update(appt, { comment: 'third version' });
            const pending = await h.waitOutbox(
                `appointment=${appt.id}&endpoint=legacy`,
                (l) => l.some((e) => e.event === 'S12' && e.attempts >= 2),
                'two failed attempts of the S12',
            );
            const s12entry = pending.find((e) => e.event === 'S12');
            assert.equal(s12entry.state, 'pending');
            assert.ok(s12entry.lastError, 'the failure is recorded');
            assert.ok(s12entry.nextAttempt, 'and the next attempt');
            assert.ok(pending.filter((e) => e.event !== 'S12').every((e) => e.state === 'pending' && !e.attempts), `later messages wait for the S12: ${JSON.stringify(pending)}`);
            const p = await h.metric('fhirsched_hl7_outbox_oldest_pending_seconds', { endpoint: 'legacy' });
            assert.ok(p >= 0, `fhirsched_hl7_outbox_oldest_pending_seconds{endpoint="legacy"} ${p}`);
            assert.ok((await h.metric('fhirsched_hl7_outbox_messages', { endpoint: 'legacy', state: 'pending' })) >= 3);

            await rx.start(); // back on the same port
            await rx.waitUntil(() => eventsOf(rx, appt.id).length >= 3, 'three messages', 20_000);
            assert.deepEqual(eventsOf(rx, appt.id), ['S12', 'S13', 'S14']);
            const msgs = rx.messages.filter((m) => forAppt(appt.id)(m.text)).map((m) => m.text);
            assert.equal(get(msgs[0], 'MSH-10'), s12entry.controlId || get(msgs[0], 'MSH-10'));
            assert.equal(fromHl7(get(msgs[0], 'TQ1-7')), Date.parse(first.start), 'the S12 shows the first times');
            assert.equal(get(msgs[0], 'NTE-3'), undefined, 'and no comment yet');
            assert.equal(fromHl7(get(msgs[1], 'TQ1-7')), Date.parse(second.start), 'the S13 the second');
            assert.equal(get(msgs[2], 'NTE-3'), 'third version');
        } finally {
            await rx.start();
        }
    });

    it('a receiver that does not answer, or answers AE, gets the same message again with the same control id', async () => {
        const a = await h.actors();
        const mark = `MARK${a.tag}`;
        let copies = 0;
        // first copy: no answer (the ACK timeout passes); second: AE; then AA
        rx.setAck((text) => (hasPlacer(mark)(text) && copies++ < 2 ? (copies === 1 ? null : 'AE') : 'AA'));
        try {
            const appt = await h.book(a, interval(), placer(mark));
            await h.waitOutbox(`appointment=${appt.id}&endpoint=legacy`, (l) => l[0]?.state === 'sent', 'sent after retries', 20_000);
            const msgs = rx.messages.filter((m) => forAppt(appt.id)(m.text)).map((m) => m.text);
            assert.equal(msgs.length, 3, 'no answer, AE, AA: three copies');
            assert.ok(msgs.every((m) => get(m, 'MSH-10') === get(msgs[0], 'MSH-10')), `one control id: ${msgs.map((m) => get(m, 'MSH-10'))}`);
            assert.ok(msgs.every((m) => m === msgs[0]), 'rendered once: every attempt is the same message');
            const [entry] = await h.outbox(`appointment=${appt.id}&endpoint=legacy`);
            assert.equal(entry.attempts, msgs.length, 'attempts counted');
        } finally {
            rx.setAck('AA');
        }
    });

    it('an inbound booking is not echoed to the system it came from, but later FHIR changes are sent to it', async () => {
        const tag = uniq('echo').replace(/-/g, '');
        const when = interval();
        const start = hl7Time(new Date(when.start));
        const end = hl7Time(new Date(when.end));
        const siu = (app, fac, filler) =>
            [
                `MSH|^~\\&|${app}|${fac}|FHIRSCHED|FHIRSCHED|${hl7Time()}||SIU^S12^SIU_S12|${controlId('E')}|P|2.5.1`,
                `SCH|P${filler}^LEGACY|${filler}^LEGACY|||||||30|min`,
                `TQ1|1||||||${start}|${end}`,
                `PID|1||PAT${filler}^^^LEGACY^MR||Echo^Eve||19800101|F`,
                'RGS|1|A',
                `AIP|1|A|DR${filler}^Echo^Ed^^^^^^LEGACY|D`,
            ].join('\r');
        const m1 = siu('LEGACY', 'CLINIC', `F${tag}`);
        const ack = await mllpSend(hl7Port, m1);
        assert.equal(get(ack, 'MSA-1'), 'AA', ack);
        const found = await fhir(server, 'GET', `/Appointment?identifier=${encodeURIComponent(`urn:fhirsched:hl7v2:LEGACY|F${tag}`)}`);
        const appt = found.json.entry[0].resource;
        assert.deepEqual(await h.outbox(`appointment=${appt.id}&endpoint=legacy`), [], 'nothing queued back to LEGACY|CLINIC');
        assert.deepEqual((await h.outbox(`appointment=${appt.id}&endpoint=old`)).map((e) => e.event), ['S12'], 'the other endpoint hears of it');

        const cancelled = await h.update(appt, { status: 'cancelled' });
        const s15 = await rx.waitFor(forAppt(appt.id), 'the S15 of the FHIR change');
        assert.equal(get(s15, 'MSH-9.2'), 'S15');
        assert.equal(get(s15, 'SCH-1.1'), `PF${tag}`, 'SCH-1: the placer id it came with');
        assert.equal(cancelled.status, 'cancelled');
        assert.deepEqual(eventsOf(rx, appt.id), ['S15']);

        // the same application from another facility is another system: it hears of it
        const m2 = siu('LEGACY', 'ELSEWHERE', `G${tag}`);
        assert.equal(get(await mllpSend(hl7Port, m2), 'MSA-1'), 'AA');
        const other = (await fhir(server, 'GET', `/Appointment?identifier=${encodeURIComponent(`urn:fhirsched:hl7v2:LEGACY|G${tag}`)}`)).json.entry[0].resource;
        assert.equal(get(await rx.waitFor(forAppt(other.id), 'the S12 from LEGACY|ELSEWHERE'), 'MSH-9.2'), 'S12');
    });

    it('a message pending when the server stops is delivered after it starts again', async () => {
        await rx.stop();
        const a = await h.actors();
        const appt = await h.book(a, interval());
        await h.waitOutbox(`appointment=${appt.id}&endpoint=legacy`, (l) => l[0]?.attempts >= 1, 'one failed attempt');
        await server.stop();
        await rx.start();
        assert.equal(eventsOf(rx, appt.id).length, 0, 'not delivered while the server was down');
        hl7Port = await freePort();
        server = await startServer({ databaseUrl: db.url, env: env() });
        const s12 = await rx.waitFor(forAppt(appt.id), 'the S12 after the restart', 20_000);
        assert.equal(get(s12, 'MSH-9.2'), 'S12');
    });
});

describe('HL7 v2 outbound parking', () => {
    let server, rx;
    const h = helpers(() => server);
    before(async () => {
        rx = await startMllpReceiver();
        server = await startServer({
            env: {
                FHIRSCHED_HL7_OUTBOUND: `mllp://127.0.0.1:${rx.port}?name=legacy&receiving_application=LEGACY&receiving_facility=CLINIC`,
                FHIRSCHED_HL7_RETRY_BASE_MS: '200',
                FHIRSCHED_HL7_RETRY_MAX_MS: '1000',
                FHIRSCHED_HL7_MAX_ATTEMPTS: '3',
                FHIRSCHED_HL7_ACK_TIMEOUT_MS: '800',
            },
        });
    });
    after(async () => {
        await server?.stop();
        await rx?.stop();
    });

    const retry = (id) => fhir(server, 'POST', '/$hl7-outbox-retry', { body: { resourceType: 'Parameters', parameter: [{ name: 'id', valueInteger: id }] } });
    const discard = (id) => fhir(server, 'POST', '/$hl7-outbox-discard', { body: { resourceType: 'Parameters', parameter: [{ name: 'id', valueInteger: id }] } });

    it('AR parks a message at once; it shows in $hl7-outbox and /metrics, holds back later ones, and $hl7-outbox-retry sends it again', async () => {
        const a = await h.actors();
        const mark = `MARK${a.tag}`;
        // the first message about it is refused, everything else accepted
        rx.setAck((text) => (hasPlacer(mark)(text) && rx.messages.filter((m) => hasPlacer(mark)(m.text)).length === 1 ? 'AR' : 'AA'));
        let appt;
        try {
            appt = await h.book(a, interval(), placer(mark));
            const [parked] = await h.waitOutbox(`state=parked&endpoint=legacy&appointment=${appt.id}`, (l) => l.length === 1, 'parked');
            assert.equal(parked.event, 'S12');
            assert.equal(parked.attempts, 1, 'AR: no retries');
            assert.match(parked.lastError || '', /AR/);
            assert.equal(get(parked.ack, 'MSA-1'), 'AR');
            assert.equal(await h.metric('fhirsched_hl7_outbox_messages', { endpoint: 'legacy', state: 'parked' }), 1);

            // a later change of that appointment waits behind the parked one; others go
            appt = await h.update(appt, { comment: 'later change' });
            const sentinel = await h.book(a, interval());
            await rx.waitFor(forAppt(sentinel.id), 'another appointment\'s S12');
            assert.deepEqual(eventsOf(rx, appt.id), ['S12'], 'the S14 is held back while the S12 is parked');
            const waiting = await h.outbox(`appointment=${appt.id}&state=pending`);
            assert.deepEqual(waiting.map((e) => e.event), ['S14']);

            const res = await retry(parked.id);
            expectStatus(res, 200);
            await rx.waitUntil(() => eventsOf(rx, appt.id).length >= 3, 'the S12 again, then the S14');
            assert.deepEqual(eventsOf(rx, appt.id), ['S12', 'S12', 'S14']);
            const msgs = rx.messages.filter((m) => forAppt(appt.id)(m.text)).map((m) => m.text);
            assert.equal(get(msgs[1], 'MSH-10'), get(msgs[0], 'MSH-10'), 'the same control id');
            await h.waitOutbox(`appointment=${appt.id}`, (l) => l.length === 2 && l.every((e) => e.state === 'sent'), 'both sent');
            assert.equal(await h.metric('fhirsched_hl7_outbox_messages', { endpoint: 'legacy', state: 'parked' }) ?? 0, 0);
        } finally {
            rx.setAck('AA');
        }
    });

    it('a receiver that never answers: retried with the same control id, parked after hl7.max_attempts; $hl7-outbox-discard lets later ones go', async () => {
        const a = await h.actors();
        const mark = `MARK${a.tag}`;
        rx.setAck((text) => (hasPlacer(mark)(text) && get(text, 'MSH-9.2') === 'S12' ? null : 'AA'));
        try {
            let appt = await h.book(a, interval(), placer(mark));
            const [parked] = await h.waitOutbox(`state=parked&appointment=${appt.id}`, (l) => l.length === 1, 'parked after 3 attempts', 20_000);
            assert.equal(parked.attempts, 3);
            const copies = rx.messages.filter((m) => forAppt(appt.id)(m.text)).map((m) => m.text);
            assert.equal(copies.length, 3, 'sent three times');
            assert.ok(copies.every((m) => get(m, 'MSH-10') === parked.controlId), `MSH-10 identical across attempts: ${copies.map((m) => get(m, 'MSH-10'))}`);

            appt = await h.update(appt, { comment: 'after the parked one' });
            expectStatus(await discard(parked.id), 200);
            await rx.waitUntil(() => eventsOf(rx, appt.id).includes('S14'), 'the S14 once the S12 is discarded');
            const after = await h.outbox(`appointment=${appt.id}`);
            assert.equal(after.find((e) => e.id === parked.id)?.state ?? 'discarded', 'discarded');
            assert.equal(eventsOf(rx, appt.id).filter((e) => e === 'S12').length, copies.length, 'the discarded S12 is not sent again');
        } finally {
            rx.setAck('AA');
        }
    });

    it('AE answers are retried and park the message after hl7.max_attempts', async () => {
        const a = await h.actors();
        const mark = `MARK${a.tag}`;
        rx.setAck((text) => (hasPlacer(mark)(text) ? 'AE' : 'AA'));
        try {
            const appt = await h.book(a, interval(), placer(mark));
            const [parked] = await h.waitOutbox(`state=parked&appointment=${appt.id}`, (l) => l.length === 1, 'parked after 3 AEs', 20_000);
            assert.equal(parked.attempts, 3);
            assert.equal(get(parked.ack, 'MSA-1'), 'AE');
            const copies = rx.messages.filter((m) => forAppt(appt.id)(m.text)).map((m) => m.text);
            assert.ok(copies.every((m) => get(m, 'MSH-10') === parked.controlId));
        } finally {
            rx.setAck('AA');
        }
    });
});
