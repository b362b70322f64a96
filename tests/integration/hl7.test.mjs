// The HL7 v2 bridge over real sockets (docs/hl7v2.md): every inbound SIU and ADT event applied and acknowledged, the
// FHIR resources they leave, conflicts kept for review, repeats answered from the record, rejections, framing (byte by
// byte, several messages in one write, garbage, oversize), 50 connections at once; outbound SIU to a test MLLP receiver
// through the durable outbox (receiver down then up, AR parks, retry, no echo to the sender), the operator views and
// /metrics, and who may see them.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createTestDatabase, fhir, freePort, raw, startServer } from '../lib/harness.mjs';
import { makeKeys, startAuthServer, tokenFor, api } from '../lib/auth.mjs';
import { field, frame, mllpExchange, startMllpReceiver } from '../lib/mllp-min.mjs';

let seq = 0;
const ctl = (p = 'C') => `${p}-${process.pid}-${++seq}`;

/** An SIU message; times are HL7 DTMs. */
function siu({ event = 'S12', control = ctl(), placer, filler, start, end, doctor = 'DR-1', patient = 'PAT-1', version = '2.5.1', extra = [] }) {
    const lines = [
        `MSH|^~\\&|EHR|MAIN|FHIRSCHED|CLINIC|20270101||SIU^${event}^SIU_${event === 'S12' ? 'S12' : event}|${control}|P|${version}`,
        `SCH|${placer}|${filler}||||WALKIN^Walk-in|ROUTINE^Check-up^HL70276|ROUTINE|30|min`,
    ];
    if (version >= '2.5') lines.push(`TQ1|1||||||${start}|${end}`);
    else lines[1] += `|^^30^${start}^${end}`;
    lines.push(`PID|1||${patient}^^^MAIN^MR||Hl7^Harriet||19700101|F`, 'RGS|1|A', `AIS|1|A|11429006^Consultation^SCT|${start}|||30|min`,
        `AIP|1|A|${doctor}^Seven^Sam|D^Doctor`, 'AIL|1|A|CLINIC-A^ROOM-1|C^Clinic^HL70305', ...extra);
    return lines.join('\r');
}

const adt = (event, control, pid, extra = []) =>
    [`MSH|^~\\&|ADT|MAIN|FHIRSCHED|CLINIC|20270101||ADT^${event}^ADT_A01|${control}|P|2.5`, `EVN|${event}|20270101`, pid, ...extra].join('\r');

async function one(port, message) {
    const [ack] = await mllpExchange(port, [message]);
    return ack;
}

const byIdentifier = async (server, type, value) => (await fhir(server, 'GET', `/${type}?identifier=${encodeURIComponent(value)}`)).json;

describe('HL7 v2 inbound', () => {
    let server, port;
    before(async () => {
        port = await freePort();
        server = await startServer({ env: { FHIRSCHED_HL7_LISTEN: `127.0.0.1:${port}`, FHIRSCHED_HL7_MAX_MESSAGE_BYTES: '4096' } });
    });
    after(() => server?.stop());

    it('applies S12, S13, S14, S26, S15 and S17 to one Appointment, acknowledging each after it committed', async () => {
        const base = { placer: 'P-100', filler: 'F-100', doctor: 'DR-LIFE', patient: 'PAT-LIFE' };
        let ack = await one(port, siu({ ...base, control: 'LIFE-12', start: '202704010900+0000', end: '202704010930+0000' }));
        assert.equal(field(ack, 'MSA', 1), 'AA');
        assert.equal(field(ack, 'MSA', 2), 'LIFE-12');
        assert.equal(field(ack, 'MSH', 9), 'ACK^S12^ACK');
        let bundle = await byIdentifier(server, 'Appointment', 'F-100');
        assert.equal(bundle.total, 1);
        let appt = bundle.entry[0].resource;
        assert.equal(appt.status, 'booked');
        assert.equal(appt.start, '2027-04-01T09:00:00Z');
        assert.equal(appt.end, '2027-04-01T09:30:00Z');
        assert.equal(appt.minutesDuration, 30);
        assert.equal(appt.serviceType[0].coding[0].system, 'http://snomed.info/sct');
        assert.deepEqual(appt.identifier.map((i) => i.type.coding[0].code).sort(), ['FILL', 'PLAC']);
        const kinds = appt.participant.map((p) => p.actor.reference.split('/')[0]).sort();
        assert.deepEqual(kinds, ['Location', 'Patient', 'Practitioner']);
        const patient = (await byIdentifier(server, 'Patient', 'PAT-LIFE')).entry[0].resource;
        assert.equal(patient.name[0].family, 'Hl7');
        assert.equal(patient.birthDate, '1970-01-01');
        const doctor = (await byIdentifier(server, 'Practitioner', 'DR-LIFE')).entry[0].resource;
        assert.equal(doctor.name[0].family, 'Seven');

        ack = await one(port, siu({ ...base, event: 'S13', control: 'LIFE-13', start: '202704011000+0000', end: '202704011045+0000' }));
        assert.equal(field(ack, 'MSA', 1), 'AA');
        appt = (await byIdentifier(server, 'Appointment', 'F-100')).entry[0].resource;
        assert.equal(appt.start, '2027-04-01T10:00:00Z');
        assert.equal(appt.minutesDuration, 45);

        ack = await one(port, siu({ ...base, event: 'S14', control: 'LIFE-14', start: '202704011000+0000', end: '202704011045+0000', extra: [] })
            .replace('SCH|', 'SCH|').replace(/\rRGS/, '\rNTE|1||bring the referral letter\rRGS'));
        assert.equal(field(ack, 'MSA', 1), 'AA');

        ack = await one(port, siu({ ...base, event: 'S26', control: 'LIFE-26', start: '202704011000+0000', end: '202704011045+0000' }));
        assert.equal(field(ack, 'MSA', 1), 'AA');
        appt = (await byIdentifier(server, 'Appointment', 'F-100')).entry[0].resource;
        assert.equal(appt.status, 'noshow');

        // a second appointment to cancel, and a third to delete
        await one(port, siu({ placer: 'P-101', filler: 'F-101', doctor: 'DR-LIFE', patient: 'PAT-LIFE', control: 'LIFE-12b', start: '202704020900+0000', end: '202704020930+0000' }));
        ack = await one(port, siu({ placer: 'P-101', filler: 'F-101', doctor: 'DR-LIFE', patient: 'PAT-LIFE', event: 'S15', control: 'LIFE-15', start: '202704020900+0000', end: '202704020930+0000' })
            .replace('WALKIN^Walk-in', 'PATREQ^Patient request'));
        assert.equal(field(ack, 'MSA', 1), 'AA');
        appt = (await byIdentifier(server, 'Appointment', 'F-101')).entry[0].resource;
        assert.equal(appt.status, 'cancelled');
        assert.equal(appt.cancelationReason.text, 'Patient request');
        await one(port, siu({ placer: 'P-102', filler: 'F-102', doctor: 'DR-LIFE', patient: 'PAT-LIFE', control: 'LIFE-12c', start: '202704030900+0000', end: '202704030930+0000' }));
        ack = await one(port, siu({ placer: 'P-102', filler: 'F-102', doctor: 'DR-LIFE', patient: 'PAT-LIFE', event: 'S17', control: 'LIFE-17', start: '202704030900+0000', end: '202704030930+0000' }));
        assert.equal(field(ack, 'MSA', 1), 'AA');
        appt = (await byIdentifier(server, 'Appointment', 'F-102')).entry[0].resource;
        assert.equal(appt.status, 'entered-in-error');
    });

    it('reads SCH-11 timing in v2.3 and TQ1 in v2.5, with and without offsets', async () => {
        const ack = await one(port, siu({ placer: 'P-23', filler: 'F-23', doctor: 'DR-23', version: '2.3', start: '202704050800', end: '202704050815', control: 'V23' }));
        assert.equal(field(ack, 'MSA', 1), 'AA');
        const appt = (await byIdentifier(server, 'Appointment', 'F-23')).entry[0].resource;
        assert.equal(appt.start, '2027-04-05T08:00:00Z'); // no offset: hl7.timezone, UTC here
        assert.equal(appt.minutesDuration, 15);
    });

    it('applies ADT A04, A08, A28, A31 to one Patient and merges with A40', async () => {
        const pid = (name, extra = '') => `PID|1||ADT-1^^^MAIN^MR${extra}||${name}^Ann||19800202|F|||1 Main St^^Springfield^IL^62701||^PRN^PH^^1^555^1234567`;
        for (const [event, name] of [['A04', 'First'], ['A08', 'Second'], ['A28', 'Third'], ['A31', 'Fourth']]) {
            const ack = await one(port, adt(event, `ADT-${event}`, pid(name)));
            assert.equal(field(ack, 'MSA', 1), 'AA', event);
            const found = await byIdentifier(server, 'Patient', 'ADT-1');
            assert.equal(found.total, 1, `${event} keeps one Patient`);
            assert.equal(found.entry[0].resource.name[0].family, name);
        }
        const patient = (await byIdentifier(server, 'Patient', 'ADT-1')).entry[0].resource;
        assert.equal(patient.address[0].city, 'Springfield');
        assert.equal(patient.telecom[0].value, '(555)1234567');
        await one(port, adt('A04', 'ADT-OLD', 'PID|1||ADT-OLD^^^MAIN^MR||Old^Record'));
        const ack = await one(port, adt('A40', 'ADT-A40', 'PID|1||ADT-1^^^MAIN^MR||Fourth^Ann', ['MRG|ADT-OLD^^^MAIN^MR']));
        assert.equal(field(ack, 'MSA', 1), 'AA');
        const old = (await byIdentifier(server, 'Patient', 'ADT-OLD')).entry[0].resource;
        const survivor = (await byIdentifier(server, 'Patient', 'ADT-1')).entry[0].resource;
        assert.equal(old.active, false);
        assert.deepEqual(old.link, [{ other: { reference: `Patient/${survivor.id}` }, type: 'replaced-by' }]);
        assert.deepEqual(survivor.link, [{ other: { reference: `Patient/${old.id}` }, type: 'replaces' }]);
        const unknown = await one(port, adt('A40', 'ADT-A40b', 'PID|1||ADT-1^^^MAIN^MR||Fourth^Ann', ['MRG|NOBODY^^^MAIN^MR']));
        assert.equal(field(unknown, 'MSA', 1), 'AE');
    });

    it('answers a conflicting S12 with AE naming the practitioner and time, applies nothing, and keeps it for review', async () => {
        await one(port, siu({ placer: 'P-C1', filler: 'F-C1', doctor: 'DR-C', patient: 'PAT-C1', control: 'CONF-1', start: '202704060900+0000', end: '202704060930+0000' }));
        const ack = await one(port, siu({ placer: 'P-C2', filler: 'F-C2', doctor: 'DR-C', patient: 'PAT-C2', control: 'CONF-2', start: '202704060915+0000', end: '202704060945+0000' }));
        assert.equal(field(ack, 'MSA', 1), 'AE');
        assert.match(ack, /ERR\|\|\|207\^[^|]*\|E\|\|\|\|Appointment conflict: .*Practitioner\/\S+ is already booked or held then \(2027-04-06T09:15:00Z to 2027-04-06T09:45:00Z\)/);
        assert.equal((await byIdentifier(server, 'Appointment', 'F-C2')).total, 0);
        assert.equal((await byIdentifier(server, 'Patient', 'PAT-C2')).total, 0, 'the Patient it would have created was rolled back');
        const review = await fhir(server, 'GET', '/$hl7-messages?status=review&control-id=CONF-2');
        assert.equal(review.status, 200);
        const parts = Object.fromEntries(review.json.parameter[0].part.filter((p) => p.name !== 'warning').map((p) => [p.name, Object.values(p).find((v) => v !== p.name)]));
        assert.equal(parts.status, 'review');
        assert.equal(parts.ackCode, 'AE');
        assert.match(parts.error, /already booked/);
        assert.match(parts.raw, /^MSH\|\^~\\&\|EHR\|MAIN\|/);
        assert.ok(parts.received);
    });

    it('answers a repeated control id from the same sender with the first ACK and applies nothing twice', async () => {
        const msg = siu({ placer: 'P-D', filler: 'F-D', doctor: 'DR-D', control: 'DUP-1', start: '202704070900+0000', end: '202704070930+0000' });
        const first = await one(port, msg);
        const again = await one(port, msg);
        assert.equal(again, first, 'byte for byte');
        const appt = (await byIdentifier(server, 'Appointment', 'F-D')).entry[0].resource;
        assert.equal(appt.meta.versionId, '1');
        // the same control id from another application is another message
        const other = await one(port, msg.replace('|EHR|MAIN|', '|OTHER|MAIN|').replace('F-D', 'F-D2').replace('P-D', 'P-D2').replace('DR-D^', 'DR-D2^'));
        assert.equal(field(other, 'MSA', 1), 'AA');
        assert.notEqual(other, first);
    });

    it('rejects (AR) what it cannot read or does not support, with an ERR segment', async () => {
        const cases = [
            ['MSH|^~\\&|X|Y|Z|W|2027||ORU^R01|AR-1|P|2.5\rPID|1', '200'],
            ['MSH|^~\\&|X|Y|Z|W|2027||SIU^S99|AR-2|P|2.5\rSCH|1|2', '201'],
            ['MSH|^~\\&|X|Y|Z|W|2027||SIU^S12|AR-3|P|2.2\rSCH|1|2', '203'],
            ['MSH|^~\\&|X|Y|Z|W|2027||SIU^S12|AR-4|P|2.5||||||KOI8-R\rSCH|1|2', '204'],
            ['PID|1||nothing', '100'],
        ];
        for (const [msg, code] of cases) {
            const ack = await one(port, msg);
            assert.equal(field(ack, 'MSA', 1), 'AR', msg);
            assert.ok(ack.includes(`${code}^`) || ack.includes(`^${code}&`), `${msg} -> ERR ${code}: ${ack}`);
        }
        const tooLarge = siu({ placer: 'P-L', filler: 'F-L', control: 'BIG-1', start: '202704080900+0000', end: '202704080930+0000' }) + `\rNTE|1||${'x'.repeat(5000)}`;
        const ack = await one(port, tooLarge);
        assert.equal(field(ack, 'MSA', 1), 'AR');
        assert.equal(field(ack, 'MSA', 2), 'BIG-1');
        assert.equal((await byIdentifier(server, 'Appointment', 'F-L')).total, 0);
    });

    it('reads a message written byte by byte, and several messages in one write, answering in order', async () => {
        const msg = frame(siu({ placer: 'P-B', filler: 'F-B', doctor: 'DR-B', control: 'BYTE-1', start: '202704090900+0000', end: '202704090930+0000' }));
        const ack = await new Promise((resolve, reject) => {
            const socket = net.connect({ host: '127.0.0.1', port }, async () => {
                for (const b of msg) {
                    socket.write(Buffer.from([b]));
                    await new Promise((r) => setImmediate(r));
                }
            });
            let buf = '';
            socket.setEncoding('latin1');
            socket.on('data', (d) => {
                buf += d;
                if (buf.includes('\x1c\r')) {
                    socket.end();
                    resolve(buf.slice(1, buf.indexOf('\x1c')));
                }
            });
            socket.on('error', reject);
        });
        assert.equal(field(ack, 'MSA', 2), 'BYTE-1');
        const batch = ['M1', 'M2', 'M3'].map((c, i) => siu({ placer: `P-M${i}`, filler: `F-M${i}`, doctor: `DR-M${i}`, control: c, start: '202704100900+0000', end: '202704100930+0000' }));
        const acks = await mllpExchange(port, batch);
        assert.deepEqual(acks.map((a) => field(a, 'MSA', 2)), ['M1', 'M2', 'M3']);
        assert.ok(acks.every((a) => field(a, 'MSA', 1) === 'AA'));
    });

    it('closes a connection that sends bytes outside MLLP framing, and keeps serving others', async () => {
        const closed = await new Promise((resolve) => {
            const socket = net.connect({ host: '127.0.0.1', port }, () => socket.write('GET / HTTP/1.1\r\n\r\n'));
            socket.on('data', () => resolve('answered'));
            socket.on('close', () => resolve('closed'));
            socket.on('error', () => resolve('closed'));
        });
        assert.equal(closed, 'closed');
        const ack = await one(port, siu({ placer: 'P-G', filler: 'F-G', doctor: 'DR-G', control: 'AFTER-GARBAGE', start: '202704110900+0000', end: '202704110930+0000' }));
        assert.equal(field(ack, 'MSA', 1), 'AA');
    });

    it('serves 50 connections at once', async () => {
        const acks = await Promise.all(
            Array.from({ length: 50 }, (_, i) =>
                one(port, siu({ placer: `P-K${i}`, filler: `F-K${i}`, doctor: `DR-K${i}`, patient: `PAT-K${i}`, control: `K-${i}`, start: '202704120900+0000', end: '202704120930+0000' })),
            ),
        );
        acks.forEach((a, i) => {
            assert.equal(field(a, 'MSA', 1), 'AA', a);
            assert.equal(field(a, 'MSA', 2), `K-${i}`);
        });
        const metrics = await raw(server, 'GET', '/metrics');
        assert.equal(metrics.status, 200);
        const aa = Number(/fhirsched_hl7_inbound_messages_total\{ack="AA"\} (\d+)/.exec(metrics.text)[1]);
        assert.ok(aa >= 50);
    });

    it('accepts a booking in the past and records why it would not have been bookable', async () => {
        const ack = await one(port, siu({ placer: 'P-PAST', filler: 'F-PAST', doctor: 'DR-PAST', control: 'PAST-1', start: '201901010900+0000', end: '201901010930+0000' }));
        assert.equal(field(ack, 'MSA', 1), 'AA');
        assert.match(ack, /\|W\|\|\|\|booked although a scheduling rule is broken: the appointment is in the past/);
        const rec = await fhir(server, 'GET', '/$hl7-messages?control-id=PAST-1');
        assert.ok(rec.json.parameter[0].part.some((p) => p.name === 'warning' && /in the past/.test(p.valueString)));
    });

    it('answers AE for a cancellation of an appointment it does not know', async () => {
        const ack = await one(port, siu({ event: 'S15', placer: 'P-NONE', filler: 'F-NONE', control: 'NONE-15', start: '202704130900+0000', end: '202704130930+0000' }));
        assert.equal(field(ack, 'MSA', 1), 'AE');
        assert.match(ack, /204\^Unknown key identifier/);
    });
});

describe('HL7 v2 outbound', () => {
    let server, port, receiver, receiverPort, db;
    const env = () => ({
        FHIRSCHED_HL7_LISTEN: `127.0.0.1:${port}`,
        FHIRSCHED_HL7_OUTBOUND: `mllp://127.0.0.1:${receiverPort}?name=legacy&receiving_application=EHR&receiving_facility=MAIN`,
        FHIRSCHED_HL7_RETRY_BASE_MS: '100',
        FHIRSCHED_HL7_RETRY_MAX_MS: '400',
        FHIRSCHED_HL7_MAX_ATTEMPTS: '1000', // an AR parks at once; a receiver that is down is retried
        FHIRSCHED_HL7_ACK_TIMEOUT_MS: '1000',
    });
    let codes = [];
    before(async () => {
        port = await freePort();
        receiver = await startMllpReceiver({ ack: () => codes.shift() ?? 'AA' });
        receiverPort = receiver.port;
        db = await createTestDatabase();
        server = await startServer({ databaseUrl: db.url, env: env() });
    });
    after(async () => {
        await server?.stop();
        await receiver?.stop();
        await db?.drop();
    });

    const doctor = async (family) => (await fhir(server, 'POST', '/Practitioner', { body: { resourceType: 'Practitioner', identifier: [{ system: 'urn:test', value: family }], name: [{ family }] } })).json;
    const book = async (dr, start, end, extra = {}) =>
        (await fhir(server, 'POST', '/Appointment', {
            body: { resourceType: 'Appointment', status: 'booked', start, end, participant: [{ actor: { reference: `Practitioner/${dr.id}` }, status: 'accepted' }], ...extra },
        })).json;
    const forAppt = (id) => (m) => m.includes(`|${id}^FHIRSCHED|`);

    it('sends S12, S13, S14, S26 and S15 for FHIR changes, in order, and nothing for a hold', async () => {
        const dr = await doctor('Outbound');
        const appt = await book(dr, '2027-05-01T09:00:00Z', '2027-05-01T09:30:00Z');
        const s12 = await receiver.waitFor(forAppt(appt.id));
        assert.equal(field(s12, 'MSH', 9), 'SIU^S12^SIU_S12');
        assert.equal(field(s12, 'MSH', 5), 'EHR');
        assert.match(s12, /\rTQ1\|1\|\|\|\|\|\|20270501090000\+0000\|20270501093000\+0000/);
        assert.match(s12, /\rAIP\|1\|A\|Outbound\^Outbound/);
        const put = (changes) => fhir(server, 'PUT', `/Appointment/${appt.id}`, { body: { ...appt, meta: undefined, ...changes } });
        assert.equal((await put({ start: '2027-05-01T10:00:00Z', end: '2027-05-01T10:30:00Z' })).status, 200);
        assert.equal((await put({ start: '2027-05-01T10:00:00Z', end: '2027-05-01T10:30:00Z', comment: 'bring glasses' })).status, 200);
        assert.equal((await put({ start: '2027-05-01T10:00:00Z', end: '2027-05-01T10:30:00Z', comment: 'bring glasses', status: 'noshow' })).status, 200);
        await receiver.waitFor((m) => forAppt(appt.id)(m) && m.includes('SIU^S26'));
        const events = receiver.messages.filter(forAppt(appt.id)).map((m) => field(m, 'MSH', 9).split('^')[1]);
        assert.deepEqual(events, ['S12', 'S13', 'S14', 'S26']);
        const hold = await book(dr, '2027-05-02T09:00:00Z', '2027-05-02T09:30:00Z', { status: 'pending' });
        const cancelled = await book(dr, '2027-05-03T09:00:00Z', '2027-05-03T09:30:00Z');
        await fhir(server, 'PUT', `/Appointment/${cancelled.id}`, { body: { ...cancelled, meta: undefined, status: 'cancelled' } });
        await receiver.waitFor((m) => forAppt(cancelled.id)(m) && m.includes('SIU^S15'));
        assert.equal(receiver.messages.filter(forAppt(hold.id)).length, 0, 'a hold is not announced');
    });

    it('delivers what was booked while the receiver was down once it is back, with the same control id on every attempt', async () => {
        await receiver.stop();
        const dr = await doctor('Downtime');
        const appt = await book(dr, '2027-05-04T09:00:00Z', '2027-05-04T09:30:00Z');
        await new Promise((r) => setTimeout(r, 600));
        const pending = await fhir(server, 'GET', `/$hl7-outbox?appointment=${appt.id}`);
        const part = (name) => pending.json.parameter[0].part.find((p) => p.name === name);
        assert.equal(part('state').valueCode, 'pending');
        assert.ok(part('attempts').valueInteger >= 1);
        assert.match(part('lastError').valueString, /connect/);
        receiver = await startOn(receiverPort); // back where hl7.outbound points
        const msg = await receiver.waitFor(forAppt(appt.id), 10_000);
        assert.equal(field(msg, 'MSH', 10), part('controlId').valueString, 'the control id rendered at the first attempt');
    });

    it('parks a message the receiver rejects (AR), shows it to operators and in /metrics, and sends it again on request', async () => {
        codes = ['AR'];
        const dr = await doctor('Parked');
        const appt = await book(dr, '2027-05-05T09:00:00Z', '2027-05-05T09:30:00Z');
        await receiver.waitFor(forAppt(appt.id));
        let entry;
        for (let i = 0; i < 50; i++) {
            const res = await fhir(server, 'GET', `/$hl7-outbox?state=parked&appointment=${appt.id}`);
            entry = res.json.parameter?.[0];
            if (entry) break;
            await new Promise((r) => setTimeout(r, 100));
        }
        assert.ok(entry, 'parked');
        const id = entry.part.find((p) => p.name === 'id').valueInteger;
        assert.match(entry.part.find((p) => p.name === 'lastError').valueString, /AR/);
        const metrics = await raw(server, 'GET', '/metrics');
        assert.match(metrics.text, /fhirsched_hl7_outbox_messages\{endpoint="legacy",state="parked"\} [1-9]/);
        const retry = await fhir(server, 'POST', '/$hl7-outbox-retry', { body: { resourceType: 'Parameters', parameter: [{ name: 'id', valueInteger: id }] } });
        assert.equal(retry.status, 200);
        await receiver.waitFor((m) => receiver.messages.filter(forAppt(appt.id)).length >= 2);
        for (let i = 0; i < 50; i++) {
            const res = await fhir(server, 'GET', `/$hl7-outbox?state=sent&appointment=${appt.id}`);
            if (res.json.parameter?.length) return;
            await new Promise((r) => setTimeout(r, 100));
        }
        assert.fail('the retried message was not marked sent');
    });

    it('does not echo an inbound booking to the system it came from, but sends later FHIR changes to it', async () => {
        const msg = siu({ placer: 'P-ECHO', filler: 'F-ECHO', doctor: 'DR-ECHO', control: 'ECHO-1', start: '202705060900+0000', end: '202705060930+0000' });
        const ack = await one(port, msg);
        assert.equal(field(ack, 'MSA', 1), 'AA');
        const appt = (await byIdentifier(server, 'Appointment', 'F-ECHO')).entry[0].resource;
        await new Promise((r) => setTimeout(r, 700));
        assert.equal(receiver.messages.filter(forAppt(appt.id)).length, 0, 'EHR|MAIN sent it: no echo');
        await fhir(server, 'PUT', `/Appointment/${appt.id}`, { body: { ...appt, meta: undefined, status: 'cancelled' } });
        const s15 = await receiver.waitFor(forAppt(appt.id));
        assert.equal(field(s15, 'MSH', 9), 'SIU^S15^SIU_S12');
        assert.match(s15, /\rSCH\|P-ECHO\^/);
    });

    it('delivers a message left pending across a server restart', async () => {
        await receiver.stop();
        const dr = await doctor('Restart');
        const appt = await book(dr, '2027-05-07T09:00:00Z', '2027-05-07T09:30:00Z');
        await server.stop();
        server = await startServer({ databaseUrl: db.url, env: env() });
        receiver = await startOn(receiverPort);
        await receiver.waitFor(forAppt(appt.id), 10_000);
    });

    /** A receiver on a given port (the one hl7.outbound names). */
    async function startOn(p) {
        for (let i = 0; i < 50; i++) {
            try {
                return await startMllpReceiver({ ack: () => codes.shift() ?? 'AA', port: p });
            } catch (e) {
                if (e.code !== 'EADDRINUSE') throw e;
                await new Promise((r) => setTimeout(r, 100));
            }
        }
        throw new Error(`port ${p} stayed busy`);
    }
});

describe('HL7 v2 operator views with authorization', () => {
    let server, keys;
    before(async () => {
        keys = makeKeys();
        server = await startAuthServer({ keys });
    });
    after(() => server?.stop());

    it('shows messages and the outbox to administrators only', async () => {
        const receptionist = api(server, tokenFor('receptionist', { server }));
        const admin = api(server, tokenFor('clinic-admin', { server }));
        for (const path of ['/$hl7-messages', '/$hl7-outbox']) {
            assert.equal((await receptionist.get(path)).status, 403, path);
            assert.equal((await admin.get(path)).status, 200, path);
        }
        const retry = await receptionist.post('/$hl7-outbox-retry', { resourceType: 'Parameters', parameter: [{ name: 'id', valueInteger: 1 }] });
        assert.equal(retry.status, 403);
        const missing = await admin.post('/$hl7-outbox-retry', { resourceType: 'Parameters', parameter: [{ name: 'id', valueInteger: 999999 }] });
        assert.equal(missing.status, 404);
        assert.equal((await admin.get('/$hl7-outbox-retry')).status, 405);
        assert.equal((await admin.get('/$hl7-messages?since=yesterday')).status, 400);
    });
});
