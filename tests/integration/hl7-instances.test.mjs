// The HL7 v2 bridge with two server instances on one database (docs/hl7v2.md): a message sent to both at once is
// applied once and both answers are the same bytes; two conflicting bookings sent to different instances cannot both
// be stored (one AA, one AE); outbound SIU is sent by one instance only, and by the other when that one stops.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createTestDatabase, fhir, freePort, psql, startServer } from '../lib/harness.mjs';
import { get, mllpSend, startMllpReceiver } from '../lib/mllp.mjs';

const field = (message, segment, n) => get(message, `${segment}-${n}`);

const PG_PORT = process.env.FHIRSCHED_TEST_PG_PORT;

const siu = ({ control, placer, filler, start, end, doctor = 'INST-DR1', patient = 'INST-PAT1' }) =>
    [
        `MSH|^~\\&|INSTAPP|INSTFAC|FHIRSCHED|CLINIC|20270101||SIU^S12^SIU_S12|${control}|P|2.5.1`,
        `SCH|${placer}|${filler}`,
        `TQ1|1||||||${start}|${end}`,
        `PID|1||${patient}^^^INSTFAC^MR||Twin^Tess`,
        'RGS|1|A',
        `AIP|1|A|${doctor}^Double^Dana`,
    ].join('\r');

describe('HL7 v2 on two instances', () => {
    let db, a, b, portA, portB, receiver;

    before(async () => {
        receiver = await startMllpReceiver();
        db = await createTestDatabase();
        [portA, portB] = [await freePort(), await freePort()];
        const env = {
            FHIRSCHED_HL7_OUTBOUND: `mllp://127.0.0.1:${receiver.port}?name=legacy&receiving_application=LEGACY`,
            FHIRSCHED_HL7_RETRY_BASE_MS: '100',
            FHIRSCHED_HL7_RETRY_MAX_MS: '300',
        };
        a = await startServer({ databaseUrl: db.url, env: { ...env, FHIRSCHED_HL7_LISTEN: `127.0.0.1:${portA}` } });
        b = await startServer({ databaseUrl: db.url, env: { ...env, FHIRSCHED_HL7_LISTEN: `127.0.0.1:${portB}` } });
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

    it('applies one message sent to both instances at once exactly once, and answers both alike', async () => {
        const msg = siu({ control: 'TWIN-1', placer: 'TW-P1', filler: 'TW-F1', start: '202703010900+0000', end: '202703010930+0000' });
        const acks = await Promise.all(
            Array.from({ length: 8 }, (_, i) => mllpSend(i % 2 === 0 ? portA : portB, [msg]).then((r) => r[0])),
        );
        for (const ack of acks) assert.equal(ack, acks[0], 'every copy gets the first answer, byte for byte');
        assert.equal(field(acks[0], 'MSA', 1), 'AA');
        const found = await fhir(a, 'GET', '/Appointment?identifier=TW-F1');
        assert.equal(found.json.total, 1);
        assert.equal(found.json.entry[0].resource.meta.versionId, '1', 'applied once');
        const rows = await psql(PG_PORT, "SELECT count(*) FROM hl7_inbound WHERE control_id = 'TWIN-1'", { db: db.name });
        assert.equal(rows.trim(), '1');
    });

    it('stores one of two conflicting bookings sent to different instances (AA and AE)', async () => {
        const one = siu({ control: 'RACE-1', placer: 'RC-P1', filler: 'RC-F1', start: '202703020900+0000', end: '202703020930+0000', doctor: 'RACE-DR' });
        const two = siu({ control: 'RACE-2', placer: 'RC-P2', filler: 'RC-F2', start: '202703020915+0000', end: '202703020945+0000', doctor: 'RACE-DR', patient: 'RACE-PAT2' });
        const [x, y] = await Promise.all([mllpSend(portA, [one]), mllpSend(portB, [two])]);
        const codes = [field(x[0], 'MSA', 1), field(y[0], 'MSA', 1)].sort();
        assert.deepEqual(codes, ['AA', 'AE']);
        const loser = field(x[0], 'MSA', 1) === 'AE' ? x[0] : y[0];
        assert.match(loser, /Practitioner\/[^ ]+ is already booked or held then/);
        const booked = await fhir(b, 'GET', '/Appointment?identifier=RC-F1,RC-F2&status=booked');
        assert.equal(booked.json.total, 1, 'exactly one of them is stored');
        const review = await fhir(a, 'GET', '/$hl7-messages?status=review');
        assert.ok(review.json.parameter.some((p) => p.part.some((q) => q.name === 'controlId' && /^RACE-/.test(q.valueString))));
    });

    it('sends outbound SIU from one instance only, and from the other once that one stops', async () => {
        const dr = await fhir(a, 'POST', '/Practitioner', { body: { resourceType: 'Practitioner', name: [{ family: 'Outbound' }] } });
        const book = async (server, start, end) => {
            const res = await fhir(server, 'POST', '/Appointment', {
                body: {
                    resourceType: 'Appointment',
                    status: 'booked',
                    start,
                    end,
                    participant: [{ actor: { reference: `Practitioner/${dr.json.id}` }, status: 'accepted' }],
                },
            });
            assert.equal(res.status, 201);
            return res.json.id;
        };
        const first = await book(a, '2027-03-03T09:00:00Z', '2027-03-03T09:30:00Z');
        await receiver.waitFor((m) => m.includes(`|${first}^`), 10_000);
        await new Promise((r) => setTimeout(r, 500));
        assert.equal(receiver.texts().filter((m) => m.includes(`|${first}^`)).length, 1, 'one copy, not one per instance');
        await a.stop();
        a = null;
        const second = await book(b, '2027-03-03T10:00:00Z', '2027-03-03T10:30:00Z');
        await receiver.waitFor((m) => m.includes(`|${second}^`), 15_000);
    });
});
