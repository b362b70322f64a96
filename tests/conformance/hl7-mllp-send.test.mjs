// An external MLLP client against the HL7 v2 listener: Debian's `mllp_send` (python3-hl7, run by /usr/bin/python3)
// sends the public sample messages of conformance/hl7v2/ (mieweb's v2.3 samples and v2.5 outbound samples, Microsoft
// FHIR-Converter's v2.8 samples; see conformance/SOURCES.txt) as they are, with `--loose` (their segments end in \n).
// Every ACK is checked (MSA-1, MSA-2 = the file's MSH-10, the ACK's addressing), and so are the FHIR resources each
// file leaves, read back with the harness's schema-checking client.
//
// What each file should do follows docs/hl7v2.md, including the samples' quirks:
//   - mieweb v2.3: one appointment booked (S12), modified (S14), cancelled (S15); timestamps have no offset, so they are
//     read in hl7.timezone (America/Indiana/Indianapolis here: the samples' patient lives in Fort Wayne, IN);
//   - mieweb v2.5 outbound: S12 books (in the past: AA with a warning); the S14 has no filler id and a placer id we
//     do not know, so it creates a booked appointment; the S15 comes from another sending facility (MSH-4 "maui"
//     instead of "handle"), so its SCH-2, which has no assigning authority, is local to that facility: an appointment
//     we do not have, AE 204, kept for review;
//   - FHIR-Converter SIU: the -02 files repeat the -01 files' MSH-10 from the same application and facility, so they
//     are repeats (the first ACK, byte for byte, nothing applied); the S15 follows the S26, and noshow -> cancelled is
//     a refused status change (AE 207, kept for review); the S17 then marks the appointment entered-in-error;
//   - FHIR-Converter ADT and SIU-S12_1 all carry control id MSG00001 from ADTApp|GHHSFacility: whichever arrives
//     first is applied, every later one is a repeat answered with the first ACK (tested in both orders).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { SOURCE_DIR, expectStatus, fhir, freePort, startServer } from '../lib/harness.mjs';
import { get, getAll, segmentsNamed } from '../lib/mllp.mjs';

const execFileP = promisify(execFile);
const MLLP_SEND = '/usr/bin/mllp_send';
const DIR = path.join(SOURCE_DIR, 'conformance', 'hl7v2');
const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';
const file = (name) => path.join(DIR, `${name}.hl7`);
/** The sample as mllp_send --loose sends it: segments joined with \r, line breaks and spaces at either end removed. */
const sampleText = (name) =>
    fs
        .readFileSync(file(name), 'latin1')
        .replace(/[\x0b\x0c\x1c]/g, '')
        .replace(/\r\n|\n/g, '\r')
        .replace(/^[\r\n ]+|[\r\n ]+$/g, '');
const enc = encodeURIComponent;

/** Milliseconds of a wall-clock time ('YYYY-MM-DDTHH:MM[:SS]') in IANA zone `tz`. */
function zoned(wall, tz) {
    const [d, t] = wall.split('T');
    const [y, mo, da] = d.split('-').map(Number);
    const [h, mi, s = 0] = t.split(':').map(Number);
    const guess = Date.UTC(y, mo - 1, da, h, mi, s);
    const fmt = new Intl.DateTimeFormat('en-US', { timeZone: tz, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
    const offset = (ms) => {
        const p = Object.fromEntries(fmt.formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
        return Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second) - ms;
    };
    return guess - offset(guess - offset(guess));
}

/** A server with an MLLP listener in zone `tz`, and the helpers the tests use on it. */
function harness(tz) {
    const ctx = { server: null, port: null };

    ctx.start = async () => {
        assert.ok(fs.existsSync(MLLP_SEND), `${MLLP_SEND} (Debian package python3-hl7) is installed`);
        ctx.port = await freePort();
        ctx.server = await startServer({ env: { FHIRSCHED_HL7_LISTEN: `127.0.0.1:${ctx.port}`, FHIRSCHED_HL7_TIMEZONE: tz } });
    };
    ctx.stop = () => ctx.server?.stop();

    /**
     * Sends one sample file with mllp_send; checks MSA-2 and the ACK's addressing; resolves with { ack (string), raw
     * (Buffer, the ACK between the framing bytes) }.
     */
    ctx.send = async (name, code) => {
        assert.ok(fs.existsSync(file(name)), `${file(name)} exists`);
        const { stdout } = await execFileP(MLLP_SEND, ['--loose', '-p', String(ctx.port), '-f', file(name), '127.0.0.1'], {
            timeout: 30_000,
            encoding: 'buffer',
        });
        // mllp_send prints what it received, framing bytes included, and a newline
        let rawAck = stdout;
        if (rawAck[rawAck.length - 1] === 0x0a) rawAck = rawAck.subarray(0, -1);
        assert.equal(rawAck[0], 0x0b, `${name}: the answer starts with 0x0B`);
        assert.deepEqual([...rawAck.subarray(-2)], [0x1c, 0x0d], `${name}: the answer ends with 0x1C 0x0D`);
        rawAck = rawAck.subarray(1, -2);
        const ack = rawAck.toString('latin1');
        const msg = sampleText(name);
        const why = `${name} -> ${ack.replace(/\r/g, '\n')}`;
        assert.equal(get(ack, 'MSA-2'), get(msg, 'MSH-10'), `MSA-2 echoes MSH-10: ${why}`);
        if (code) assert.equal(get(ack, 'MSA-1'), code, why);
        // addressed back: MSH-3/4 of the ACK are the message's MSH-5/6, as received; MSH-5/6 its MSH-3/4
        assert.equal(get(ack, 'MSH-3'), get(msg, 'MSH-5'), why);
        assert.equal(get(ack, 'MSH-4'), get(msg, 'MSH-6'), why);
        assert.equal(get(ack, 'MSH-5'), get(msg, 'MSH-3'), why);
        assert.equal(get(ack, 'MSH-6'), get(msg, 'MSH-4'), why);
        assert.equal(get(ack, 'MSH-12'), get(msg, 'MSH-12'), why);
        return { ack, raw: rawAck, why };
    };

    /** Resources of `type` with identifier `token`; every response is schema-checked by fhir(). */
    ctx.search = async (type, token) => {
        const res = await fhir(ctx.server, 'GET', `/${type}?identifier=${enc(token)}`);
        expectStatus(res, 200);
        return (res.json.entry || []).filter((e) => e.search?.mode !== 'outcome').map((e) => e.resource);
    };
    ctx.one = async (type, token) => {
        const found = await ctx.search(type, token);
        assert.equal(found.length, 1, `one ${type} with identifier ${token}: found ${found.length}`);
        return found[0];
    };
    /** Reads the resource and every participant's actor by id (schema-checked); returns { appt, actors: { Type: [..] } }. */
    ctx.readAll = async (appt) => {
        const res = await fhir(ctx.server, 'GET', `/Appointment/${appt.id}`);
        expectStatus(res, 200);
        const actors = {};
        for (const p of res.json.participant || []) {
            const ref = p.actor?.reference;
            if (!ref) continue;
            const r = await fhir(ctx.server, 'GET', `/${ref}`);
            expectStatus(r, 200);
            (actors[r.json.resourceType] ||= []).push(r.json);
        }
        return { appt: res.json, actors };
    };
    /** Inbound records ($hl7-messages) for a query. */
    ctx.records = async (query) => {
        const res = await fhir(ctx.server, 'GET', `/$hl7-messages?${query}`);
        expectStatus(res, 200);
        return (res.json.parameter || []).map((p) => {
            const rec = { warnings: [] };
            for (const part of p.part) {
                const key = Object.keys(part).find((k) => k.startsWith('value'));
                if (part.name === 'warning') rec.warnings.push(part[key]);
                else if (part.name !== 'resource') rec[part.name] = key === 'valueReference' ? part[key].reference : part[key];
            }
            return rec;
        });
    };
    return ctx;
}

const idOf = (a, code) => a.identifier?.find((x) => x.type?.coding?.some((c) => c.code === code));
const codes = (cc) => (cc?.coding || []).map((c) => c.code);
const errCodes = (ack) => [...getAll(ack, 'ERR-3.1'), ...getAll(ack, 'ERR-1.4.1')].filter(Boolean);

// ---------------------------------------------------------------------------

describe('mieweb v2.3 samples (SCH-11 timing without offsets, in hl7.timezone)', () => {
    const TZ = 'America/Indiana/Indianapolis';
    const ctx = harness(TZ);
    before(() => ctx.start());
    after(() => ctx.stop());

    it('SIU S12 books: filler 2196178, 2011-06-17 08:45 local, patient BEEBLEBROX^ZAPHOD (42), practitioner Adams, location OFFICE', async () => {
        const { ack } = await ctx.send('mieweb-sample-SIU-S12-v23', 'AA');
        assert.equal(get(ack, 'MSH-9'), 'ACK^S12^ACK');
        assert.equal(segmentsNamed(ack, 'ERR').length, 0, 'v2.3: warnings are not sent as ERR');
        const found = await ctx.one('Appointment', '2196178');
        const { appt, actors } = await ctx.readAll(found);
        assert.equal(appt.status, 'booked');
        assert.deepEqual([idOf(appt, 'FILL')?.value, idOf(appt, 'FILL')?.system], ['2196178', 'urn:fhirsched:hl7v2:2196178'], 'SCH-2 2196178^2196178: EI.2 is a namespace id');
        assert.deepEqual([idOf(appt, 'PLAC')?.value, idOf(appt, 'PLAC')?.system], ['10345', 'urn:fhirsched:hl7v2:10345']);
        assert.equal(Date.parse(appt.start), zoned('2011-06-17T08:45', TZ), `start ${appt.start} = 08:45 in ${TZ}`);
        assert.equal(Date.parse(appt.end), zoned('2011-06-17T09:30', TZ), `end ${appt.end}`);
        assert.equal(appt.minutesDuration, 45, 'end - start (SCH-9 says 60, SCH-11 45 minutes)');
        assert.ok(JSON.stringify(appt.reasonCode).includes('reason for the appointment'), 'SCH-7');
        assert.deepEqual(codes(appt.appointmentType), ['OFFICE'], 'SCH-8');
        assert.ok(!appt.appointmentType.coding[0].system, 'OFFICE is not a code of table 0276');

        assert.equal(actors.Patient?.length, 1);
        const patient = actors.Patient[0];
        assert.deepEqual(
            patient.identifier.map((i) => [i.system, i.value]),
            [['urn:fhirsched:hl7v2:SENDING_FACILITY', '42']],
            'PID-3 42 without an assigning authority is local to the sender (MSH-4)',
        );
        assert.equal((await ctx.one('Patient', 'urn:fhirsched:hl7v2:SENDING_FACILITY|42')).id, patient.id);
        assert.equal(patient.name[0].family, 'BEEBLEBROX');
        assert.deepEqual(patient.name[0].given, ['ZAPHOD']);
        assert.equal(patient.gender, 'male');
        assert.equal(patient.birthDate, '1978-10-12');
        assert.equal(patient.address?.[0]?.city, 'Fort Wayne');
        assert.equal(patient.address?.[0]?.state, 'IN');
        assert.equal(patient.address?.[0]?.postalCode, '46804');
        assert.ok(patient.telecom?.some((t) => t.system === 'phone' && t.use === 'home' && t.value.includes('555-1234')), JSON.stringify(patient.telecom));
        assert.deepEqual(codes(patient.maritalStatus), ['S']);

        assert.equal(actors.Practitioner?.length, 1, 'AIP: one practitioner (AIG and PV1 are not mapped)');
        const dr = actors.Practitioner[0];
        assert.equal(dr.name[0].family, 'Adams');
        assert.equal(dr.name[0].given[0], 'Douglas');
        assert.deepEqual(dr.identifier.map((i) => [i.system, i.value]), [['urn:fhirsched:hl7v2:SENDING_FACILITY', '1']]);
        const drPart = appt.participant.find((p) => p.actor.reference === `Practitioner/${dr.id}`);
        assert.deepEqual(codes(drPart.type?.[0]), ['D'], 'AIP-4');

        assert.equal(actors.Location?.length, 1);
        const loc = actors.Location[0];
        assert.deepEqual(loc.identifier.map((i) => [i.system, i.value]), [['urn:fhirsched:hl7v2:SENDING_FACILITY', 'OFFICE']]);
        assert.equal(loc.name, 'OFFICE');
        assert.equal(loc.physicalType, undefined);

        const [rec] = await ctx.records(`control-id=24916560&sender=${enc('SENDING_APPLICATION|SENDING_FACILITY')}`);
        assert.equal(rec.status, 'applied');
        assert.ok(rec.warnings.some((w) => /past/.test(w)), `a booking in 2011 is in the past: ${rec.warnings}`);
    });

    it('SIU S14 modifies it (times from SCH-11 again, status kept); S15 cancels it with SCH-6 as the reason', async () => {
        await ctx.send('mieweb-sample-SIU-S12-v23'); // (a repeat if the test before ran: answered from the record)
        const before14 = await ctx.one('Appointment', 'urn:fhirsched:hl7v2:2196178|2196178');
        await ctx.send('mieweb-sample-SIU-S14-v23', 'AA');
        let appt = await ctx.one('Appointment', 'urn:fhirsched:hl7v2:2196178|2196178');
        assert.equal(appt.id, before14.id);
        assert.equal(appt.status, 'booked');
        assert.equal(Date.parse(appt.start), zoned('2011-06-17T08:45', TZ));
        assert.equal(appt.minutesDuration, 45);
        const { actors } = await ctx.readAll(appt);
        assert.deepEqual(actors.Practitioner.map((p) => p.name[0].family), ['Adams']);
        assert.equal(actors.Patient[0].name[0].family, 'BEEBLEBROX');

        await ctx.send('mieweb-sample-SIU-S15-v23', 'AA');
        appt = (await ctx.readAll(await ctx.one('Appointment', 'urn:fhirsched:hl7v2:2196178|2196178'))).appt;
        assert.equal(appt.status, 'cancelled');
        assert.equal(appt.cancelationReason?.text, 'Office visit');
        assert.deepEqual(codes(appt.cancelationReason), ['OFFICE']);
    });

    it('ADT A04 registers MOUSE^MICKEY (135769); A08 updates the same Patient', async () => {
        const { ack } = await ctx.send('mieweb-sample-ADT-A04-v23', 'AA');
        assert.equal(get(ack, 'MSH-9'), 'ACK^A04^ACK');
        let p = await ctx.one('Patient', 'urn:fhirsched:hl7v2:SENDING_FACILITY|135769');
        assert.equal(p.name[0].family, 'MOUSE');
        assert.deepEqual(p.name[0].given, ['MICKEY']);
        assert.equal(p.gender, 'male');
        assert.equal(p.birthDate, '1928-11-18');
        assert.equal(p.address[0].line[0], '123 Main St.');
        assert.equal(p.address[0].city, 'Lake Buena Vista');
        assert.equal(p.address[0].state, 'FL');
        assert.equal(p.address[0].postalCode, '32830');
        // PID-13 (407)939-1289^^^theMainMouse@disney.com: a number (XTN.1) and an email (XTN.4) in one XTN
        assert.ok(p.telecom.some((t) => t.system === 'email' && t.value === 'theMainMouse@disney.com'), JSON.stringify(p.telecom));
        const telecom04 = p.telecom; // the phone is checked at the end
        await ctx.send('mieweb-sample-ADT-A08-v23', 'AA');
        p = await ctx.one('Patient', 'urn:fhirsched:hl7v2:SENDING_FACILITY|135769');
        assert.equal(p.name[0].family, 'MOUSE', 'one Patient, still Mickey (GT1/IN1/IN2 are not mapped)');
        assert.equal((await ctx.search('Patient', 'MARSHALL')).length, 0);
        assert.ok(telecom04.some((t) => t.system === 'phone' && t.value.includes('939-1289')), `the phone number of XTN.1 is kept: ${JSON.stringify(telecom04)}`);
    });
});

describe('mieweb v2.5 outbound samples (another system\'s SIU, timing in SCH-11, in hl7.timezone)', () => {
    const TZ = 'Pacific/Honolulu';
    const ctx = harness(TZ);
    before(() => ctx.start());
    after(() => ctx.stop());

    it('S12 books 2677255 on 2021-04-27 08:15 local: AA with the past as a warning (ERR severity W); PID-3 identifiers by their ISO authorities', async () => {
        const { ack, why } = await ctx.send('mieweb-outbound-SIU-S12-v25', 'AA');
        const warn = segmentsNamed(ack, 'ERR');
        assert.ok(warn.length >= 1 && getAll(ack, 'ERR-4').every((s) => s === 'W'), `warnings only: ${why}`);
        assert.ok(getAll(ack, 'ERR-8').some((t) => /past/.test(t)), why);

        const { appt, actors } = await ctx.readAll(await ctx.one('Appointment', 'urn:fhirsched:hl7v2:handle|2677255'));
        assert.equal(appt.status, 'booked');
        assert.equal(idOf(appt, 'PLAC')?.value, '2588939');
        assert.equal(Date.parse(appt.start), zoned('2021-04-27T08:15', TZ));
        assert.equal(Date.parse(appt.end), zoned('2021-04-27T08:30', TZ));
        assert.equal(appt.minutesDuration, 15);
        assert.deepEqual(codes(appt.appointmentType), ['NURS']);
        assert.ok(JSON.stringify(appt.reasonCode).includes('ppd 2nd step'));

        const patient = actors.Patient[0];
        const ident = Object.fromEntries(patient.identifier.map((i) => [i.value, i]));
        assert.equal(ident['123456']?.system, 'urn:oid:1.2.840.114398.1.5881.2', 'CX.4 MR&1.2.840.114398.1.5881.2&ISO');
        assert.deepEqual(codes(ident['123456']?.type), ['MR']);
        assert.ok(ident['123456'].type.coding.every((c) => c.system === V2_0203));
        assert.equal(ident['963258']?.system, 'urn:oid:1.2.840.114398.1.5881.3');
        assert.equal(ident['123456789']?.system, 'urn:fhirsched:hl7v2:handle', 'SS without an authority: the sender\'s facility');
        assert.deepEqual(codes(ident['123456789']?.type), ['SS']);
        assert.ok(!patient.identifier.some((i) => i.system === 'urn:oid:1.2.840.114398.1.5881.1'), 'PID-4 is read only in v2.3/2.4');
        assert.equal(patient.name[0].family, 'Lastname');
        assert.deepEqual(patient.name[0].given, ['Firstname', 'M']);
        assert.equal(patient.gender, 'female');
        assert.equal(patient.birthDate, '1983-07-11');
        assert.equal(patient.address[0].city, 'Wailuku');
        assert.ok(patient.telecom.some((t) => t.system === 'email' && t.value === 'test@email.com'));
        assert.ok(patient.telecom.some((t) => t.use === 'mobile' && t.value.includes('5555550202')));
        assert.ok(patient.telecom.some((t) => t.use === 'work' && t.value.includes('5555550303')));
        assert.deepEqual(codes(patient.maritalStatus), ['M']);

        assert.deepEqual(actors.Practitioner.map((p) => [p.identifier[0].value, p.name[0].family, p.name[0].given[0]]), [['12029', 'Harrington', 'Cecilia']]);
        const [rec] = await ctx.records(`control-id=DSD1619205057152978&sender=${enc('WCDataSend|handle')}`);
        assert.equal(rec.status, 'applied');
    });

    it('S14 with only a placer id we do not know creates the appointment as booked; \\X0A\\ in its NTE is a line break', async () => {
        await ctx.send('mieweb-outbound-SIU-S14-v25', 'AA');
        const appt = await ctx.one('Appointment', 'urn:fhirsched:hl7v2:handle|2581249');
        assert.deepEqual(codes(idOf(appt, 'PLAC')?.type), ['PLAC']);
        assert.equal(idOf(appt, 'FILL'), undefined, 'no filler id was given');
        assert.equal(appt.status, 'booked');
        assert.equal(Date.parse(appt.start), zoned('2021-04-28T16:00', TZ));
        assert.equal(appt.minutesDuration, 30);
        assert.equal(appt.comment, '04-15 pt r/s 04/21 appt, mc\n4/27lc; lm reminder appt/loc/protocols (PLS CONF APPT TOMORROW AT 1:50PM W/EDIE W.)');
        const { actors } = await ctx.readAll(appt);
        assert.equal(actors.Patient[0].name[0].family, 'Ltest');
        assert.equal(actors.Practitioner[0].name[0].family, 'Cook');
    });

    it('S15 from another facility ("maui") names an appointment local to that facility, which we do not have: AE 204, kept for review', async () => {
        await ctx.send('mieweb-outbound-SIU-S12-v25');
        const { ack } = await ctx.send('mieweb-outbound-SIU-S15-v25', 'AE');
        assert.ok(errCodes(ack).includes('204'), ack);
        const [rec] = await ctx.records(`status=review&control-id=DSD1619689841639741&sender=${enc('WCDataSend|maui')}`);
        assert.ok(rec, 'kept for review');
        assert.equal(rec.ackCode, 'AE');
        assert.equal(rec.raw, sampleText('mieweb-outbound-SIU-S15-v25'));
        assert.equal((await ctx.one('Appointment', 'urn:fhirsched:hl7v2:handle|2677255')).status, 'booked', 'the S12\'s appointment is untouched');
        assert.equal((await ctx.search('Appointment', 'urn:fhirsched:hl7v2:maui|2677255')).length, 0);
    });
});

describe('FHIR-Converter v2.8 SIU samples: one appointment through its lifecycle', () => {
    const ctx = harness('UTC');
    before(() => ctx.start());
    after(() => ctx.stop());
    const APPT = 'urn:fhirsched:hl7v2:GHHSFacility|36996';

    it('S12-01 books 36996 with TQ1 times at +02:15, the NTE after SCH as comment, AIS as serviceType, PID, AIP and AIL', async () => {
        const { ack } = await ctx.send('msfhirconv-SIU-S12-01', 'AA');
        assert.equal(get(ack, 'MSH-9'), 'ACK^S12^ACK');
        assert.ok(getAll(ack, 'ERR-4').every((s) => s === 'W'), 'warnings only (2021 is in the past)');
        const { appt, actors } = await ctx.readAll(await ctx.one('Appointment', APPT));
        assert.equal(appt.status, 'booked');
        assert.equal(idOf(appt, 'PLAC')?.value, '12345');
        assert.equal(idOf(appt, 'PLAC')?.system, 'urn:fhirsched:hl7v2:GHHSFacility', 'MSH-4.1 of an HD');
        assert.equal(Date.parse(appt.start), Date.parse('2021-09-24T09:30:00+02:15'), `TQ1-7, not SCH-11: ${appt.start}`);
        assert.equal(Date.parse(appt.end), Date.parse('2021-09-24T10:20:00+02:15'));
        assert.equal(appt.minutesDuration, 50);
        assert.equal(appt.comment, 'Appointment booked for emergency procedure', 'only the NTE after SCH');
        assert.ok(appt.serviceType?.some((s) => s.coding?.some((c) => c.system === 'http://snomed.info/sct' && c.code === '76164006')), JSON.stringify(appt.serviceType));
        assert.ok(JSON.stringify(appt.reasonCode).includes('EMERGENCY'), 'SCH-7');

        const patient = actors.Patient[0];
        const ident = Object.fromEntries(patient.identifier.map((i) => [i.value, i]));
        assert.equal(ident.PATID1234?.system, 'urn:fhirsched:hl7v2:test1', 'CX.4 test1&2.16.1&HCD: neither ISO nor URI, so the namespace id');
        assert.deepEqual(codes(ident.PATID1234?.type), ['MR']);
        assert.equal(ident['123456789']?.system, 'urn:fhirsched:hl7v2:USSSA');
        assert.equal(ident.PATID567, undefined, 'PID-4 is not read in v2.8');
        assert.equal(ident['1234567'], undefined, 'nor PID-2');
        assert.equal(patient.name[0].family, 'EVERYMAN');
        assert.deepEqual(patient.name[0].given, ['ADAM', 'A']);
        assert.deepEqual(patient.name[0].suffix, ['III']);
        assert.deepEqual(patient.name[0].prefix, ['Dr.']);
        assert.ok(patient.name.some((n) => n.use === 'official' && n.family === 'Josh'), 'XPN.7 L -> official');
        assert.equal(patient.gender, 'male');
        assert.equal(patient.birthDate, '1988-08-18');
        assert.deepEqual(codes(patient.maritalStatus), ['M']);
        assert.ok(patient.deceasedBoolean === true || /^2008-08-25/.test(patient.deceasedDateTime || ''), `PID-29/PID-30: ${patient.deceasedDateTime ?? patient.deceasedBoolean}`);
        assert.equal(patient.address?.[0]?.state, 'MI');
        assert.equal(patient.address?.[0]?.postalCode, '99999');

        assert.deepEqual(actors.Practitioner.map((p) => [p.identifier[0].system, p.identifier[0].value, p.name[0].family]), [['urn:fhirsched:hl7v2:GHHSFacility', '1210', 'GE']]);
        assert.deepEqual(actors.Location.map((l) => [l.identifier[0].value, l.name]), [['055^Room01', 'Room01']], 'PL.1^PL.2, named after the room');
        assert.equal(actors.Device, undefined, 'AIG is not mapped');
    });

    it('S12-02 repeats MSH-10 MSG00012 from the same sender: the first ACK byte for byte, the appointment unchanged', async () => {
        const first = await ctx.send('msfhirconv-SIU-S12-01');
        const before = await ctx.one('Appointment', APPT);
        const again = await ctx.send('msfhirconv-SIU-S12-02');
        assert.ok(again.raw.equals(first.raw), `byte for byte:\n${first.ack}\n${again.ack}`);
        const appt = await ctx.one('Appointment', APPT);
        assert.equal(appt.meta.versionId, before.meta.versionId);
        assert.equal(Date.parse(appt.start), Date.parse('2021-09-24T09:30:00+02:15'), 'not the 2021-08-18 of the repeat');
        assert.equal((await ctx.search('Practitioner', 'urn:fhirsched:hl7v2:GHHSFacility|400')).length, 0, 'its practitioners were not created');
    });

    it('S13, S14 and S26 apply (each -02 file a repeat); S15 after the no-show is a refused status change (AE); S17 marks it entered-in-error', async () => {
        await ctx.send('msfhirconv-SIU-S12-01');
        const s13 = await ctx.send('msfhirconv-SIU-S13-01', 'AA');
        let appt = await ctx.one('Appointment', APPT);
        assert.equal(appt.status, 'booked');
        assert.equal(Date.parse(appt.start), Date.parse('2021-09-24T09:30:00+02:15'));
        assert.ok((await ctx.send('msfhirconv-SIU-S13-02')).raw.equals(s13.raw), 'S13-02 repeats MSG00013');
        assert.equal(Date.parse((await ctx.one('Appointment', APPT)).start), Date.parse('2021-09-24T09:30:00+02:15'), 'not moved to Aug 20');

        const s14 = await ctx.send('msfhirconv-SIU-S14-01', 'AA');
        const { appt: a14, actors } = await ctx.readAll(await ctx.one('Appointment', APPT));
        assert.equal(a14.status, 'booked');
        assert.deepEqual(actors.Location.map((l) => l.name), ['Room02'], 'the location replaced');
        const comment14 = a14.comment; // checked at the end
        assert.ok((await ctx.send('msfhirconv-SIU-S14-02')).raw.equals(s14.raw), 'S14-02 repeats MSG00014');

        const s26 = await ctx.send('msfhirconv-SIU-S26-01', 'AA');
        assert.equal((await ctx.one('Appointment', APPT)).status, 'noshow');
        assert.ok((await ctx.send('msfhirconv-SIU-S26-02')).raw.equals(s26.raw), 'S26-02 repeats MSG00026');

        const s15 = await ctx.send('msfhirconv-SIU-S15-01', 'AE');
        assert.ok(errCodes(s15.ack).includes('207'), s15.why);
        appt = await ctx.one('Appointment', APPT);
        assert.equal(appt.status, 'noshow', 'noshow -> cancelled is refused');
        const [rec] = await ctx.records(`status=review&control-id=MSG00015&sender=${enc('SCHApp|GHHSFacility')}`);
        assert.ok(rec, 'the S15 is kept for review');
        assert.ok(rec.error);
        assert.ok((await ctx.send('msfhirconv-SIU-S15-02')).raw.equals(s15.raw), 'S15-02 repeats MSG00015');

        await ctx.send('msfhirconv-SIU-S17-01', 'AA');
        appt = (await ctx.readAll(await ctx.one('Appointment', APPT))).appt;
        assert.equal(appt.status, 'entered-in-error');

        const all = await ctx.records(`sender=${enc('SCHApp|GHHSFacility')}`);
        assert.deepEqual(all.map((r) => r.controlId).sort(), ['MSG00012', 'MSG00013', 'MSG00014', 'MSG00015', 'MSG00017', 'MSG00026'], 'one record per control id');
        // the S14's NTE after SCH has no set id (NTE||...); NTE-1 is optional, and S14 replaces the comment
        assert.equal(comment14, 'Appointment modified by filler application for change of location from Room01 to Room02.');
    });
});

describe('FHIR-Converter v2.8 ADT samples and SIU-S12_1 (all MSG00001 from ADTApp|GHHSFacility): ADT first', () => {
    const ctx = harness('UTC');
    before(() => ctx.start());
    after(() => ctx.stop());

    it('ADT A04-01 registers the Patient; A04-02, A08-01, A08-02 and SIU-S12_1 are repeats answered with its ACK', async () => {
        const first = await ctx.send('msfhirconv-ADT-A04-01', 'AA');
        assert.equal(get(first.ack, 'MSH-9'), 'ACK^A04^ACK');
        const p = await ctx.one('Patient', 'urn:fhirsched:hl7v2:test1|PATID1234');
        assert.ok(p.identifier.some((i) => i.system === 'urn:fhirsched:hl7v2:USSSA' && i.value === '123456789'));
        assert.equal(p.name[0].family, 'EVERYMAN');
        assert.equal(p.gender, 'male');
        assert.equal(p.birthDate, '1988-08-18');
        // PID-13 78788788^^CP^5555^...~12121212^^CP: XTN.3 CP is a mobile phone; XTN.4 ("5555") is no email address
        assert.ok(p.telecom?.some((t) => t.system === 'phone' && t.use === 'mobile'), JSON.stringify(p.telecom));
        const telecom = p.telecom; // checked at the end
        for (const name of ['msfhirconv-ADT-A04-02', 'msfhirconv-ADT-A08-01', 'msfhirconv-ADT-A08-02', 'msfhirconv-SIU-S12_1']) {
            const again = await ctx.send(name);
            assert.ok(again.raw.equals(first.raw), `${name} repeats MSG00001: ${again.ack}`);
        }
        assert.equal((await ctx.one('Patient', 'urn:fhirsched:hl7v2:test1|PATID1234')).meta.versionId, p.meta.versionId, 'nothing applied again');
        assert.equal((await ctx.search('Appointment', 'urn:fhirsched:hl7v2:GHHSFacility|36996')).length, 0, 'the S12_1 was not applied');
        assert.equal((await ctx.search('Practitioner', 'urn:fhirsched:hl7v2:GHHSFacility|400')).length, 0);
        assert.equal((await ctx.records(`sender=${enc('ADTApp|GHHSFacility')}`)).length, 1);
        assert.ok(!telecom.some((t) => t.system === 'email' && !t.value.includes('@')), `no email made of a CP number's XTN.4: ${JSON.stringify(telecom)}`);
    });
});

describe('FHIR-Converter v2.8 SIU-S12_1 and ADT samples: SIU first', () => {
    const ctx = harness('UTC');
    before(() => ctx.start());
    after(() => ctx.stop());

    it('SIU-S12_1 books a 4-day appointment with three resource groups; the ADT files are then repeats', async () => {
        const first = await ctx.send('msfhirconv-SIU-S12_1', 'AA');
        const { appt, actors } = await ctx.readAll(await ctx.one('Appointment', 'urn:fhirsched:hl7v2:GHHSFacility|36996'));
        assert.equal(appt.status, 'booked');
        assert.equal(Date.parse(appt.start), Date.parse('2020-10-04T11:26:00+02:15'));
        assert.equal(Date.parse(appt.end), Date.parse('2020-10-08T11:26:00+02:15'));
        assert.equal(appt.minutesDuration, 4 * 24 * 60);
        assert.equal(appt.comment, 'Appointment specific instructions');
        assert.deepEqual(actors.Practitioner.map((p) => p.identifier[0].value).sort(), ['400', '500', '600'], 'the AIPs of all three RGS groups');
        assert.ok(actors.Location.length >= 3, `the AILs: ${actors.Location.map((l) => l.identifier?.[0]?.value)}`);
        const svc = (appt.serviceType || []).flatMap((s) => s.coding || []);
        assert.deepEqual(svc.map((c) => c.code).sort(), ['111', '215', '220'], 'AIS-3 of each AIS');
        assert.ok(svc.every((c) => !c.system), 'local codes (L) are kept without a system');
        assert.equal(actors.Patient[0].name[0].family, 'EVERYMAN');

        for (const name of ['msfhirconv-ADT-A04-01', 'msfhirconv-ADT-A08-01']) {
            const again = await ctx.send(name);
            assert.ok(again.raw.equals(first.raw), `${name} repeats MSG00001: ${again.ack}`);
        }
        assert.equal(get(first.ack, 'MSH-9'), 'ACK^S12^ACK');
    });
});
