// HL7 v2 inbound over real MLLP sockets (docs/hl7v2.md): every SIU event (S12, S13, S14, S15, S17, S26) and ADT event
// (A04, A08, A28, A31, A40) applied and acknowledged, with the FHIR resources they leave read back through the FHIR API;
// the ACK's addressing and MSA-2; conflicts with the booking constraint (AE naming the practitioner, nothing applied,
// a review record); repeated control ids (the first ACK byte for byte, nothing applied twice, also when the copies
// race); every AR (unreadable, unsupported type, event, version, character set, too large); timing from TQ1, SCH-11
// and AIS; character sets and escapes; framing (byte by byte, several frames in one write, garbage, idle connections);
// 50 connections at once; the operator view $hl7-messages, and who may read it.
//
// Each test makes its own identifiers (uniq()) and its own times, so no test depends on another's data.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { expectStatus, fhir, freePort, raw, sleep, startServer, uniq } from '../lib/harness.mjs';
import { api, auditsFor, makeKeys, startAuthServer, tokenFor } from '../lib/auth.mjs';
import { controlId, frame, get, getAll, hl7Time, mllpConnect, mllpSend, segmentsNamed } from '../lib/mllp.mjs';

const TZ = 'Europe/Amsterdam'; // hl7.timezone of the server: timestamps without an offset are read in it
const MAX_BYTES = 8192; // hl7.max_message_bytes
const IDLE_MS = 1500; // hl7.idle_timeout_ms of the idle-connection server (the main one keeps the default)
const T0 = Date.UTC(2031, 2, 3, 7, 0); // a Monday; each test takes its own hours after it
const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';

let hourSeq = 0;
/** A fresh 30-minute interval (ISO and HL7 forms) in the future, `minutes` long. */
function interval(minutes = 30) {
    const s = T0 + hourSeq++ * 3600_000;
    const e = s + minutes * 60_000;
    const iso = (t) => new Date(t).toISOString().replace('.000', '');
    return { start: hl7Time(new Date(s)), end: hl7Time(new Date(e)), startIso: iso(s), endIso: iso(e), minutes };
}

/** Fresh identifiers for one appointment and its actors. */
function ids(p = 'x') {
    const u = uniq(p).replace(/-/g, '');
    return { placer: `PL${u}`, filler: `FI${u}`, dr: `DR${u}`, pat: `PA${u}`, loc: `LO${u}`, tag: u };
}

/**
 * An SIU message. o: event, control, app, fac, receiver ([app, fac]), version, placer, filler (EI ids; namespace EHR
 * unless placerNs/fillerNs given ('' for none)), start/end (HL7 DTMs), timing: 'tq1' (v2.5+ default), 'sch11' (v2.3/2.4
 * default), 'both', 'ais' (AIS-4 + AIS-7/8 only), 'none'; sch11Start/sch11End (when 'both'); dr, drFamily, drGiven,
 * drAuth (XCN.9), pat, patFamily, patGiven, patAuth (CX.4), loc, room, sch6, sch7, sch8, nte (lines), extra (segments).
 */
function siu(o) {
    const v = o.version ?? '2.5.1';
    const modern = v >= '2.5';
    const timing = o.timing ?? (modern ? 'tq1' : 'sch11');
    const fillerNs = o.fillerNs ?? 'EHR';
    const placerNs = o.placerNs ?? 'EHR';
    const ei = (id, ns) => (id === '' || id === undefined ? '' : ns ? `${id}^${ns}` : id);
    const [rapp, rfac] = o.receiver ?? ['FHIRSCHED', 'CLINIC'];
    const minutes = o.minutes ?? 30;
    const sch = ['SCH', ei(o.placer, placerNs), ei(o.filler, fillerNs), '', '', '', o.sch6 ?? '', o.sch7 ?? 'CHK^Check-up^LOCAL', o.sch8 ?? 'ROUTINE^Routine visit^HL70276', String(minutes), 'min'];
    if (timing === 'sch11' || timing === 'both') sch.push(`^^${minutes}^${o.sch11Start ?? o.start}^${o.sch11End ?? o.end}`);
    const lines = [
        `MSH|^~\\&|${o.app ?? 'EHR'}|${o.fac ?? 'MAIN'}|${rapp}|${rfac}|${hl7Time()}||SIU^${o.event ?? 'S12'}^SIU_S12|${o.control ?? controlId('S')}|P|${v}${o.charset ? `||||||${o.charset}` : ''}`,
        sch.join('|'),
    ];
    if (timing === 'tq1' || timing === 'both') lines.push(`TQ1|1||||||${o.start}|${o.end}`);
    for (const [i, n] of (o.nte ?? []).entries()) lines.push(`NTE|${i + 1}||${n}`);
    lines.push(`PID|1||${o.pat}^^^${o.patAuth ?? 'HOSP&1.2.3.4&ISO'}^MR||${o.patFamily ?? 'Hl7'}^${o.patGiven ?? 'Harriet'}||19700101|F`);
    lines.push('RGS|1|A');
    lines.push(timing === 'ais' ? `AIS|1|A|11429006^Consultation^SCT|${o.start}|||${minutes}|min` : `AIS|1|A|11429006^Consultation^SCT`);
    if (o.dr) lines.push(`AIP|1|A|${o.dr}^${o.drFamily ?? 'Seven'}^${o.drGiven ?? 'Sam'}^^^^^^${o.drAuth ?? 'NPI'}|D^Doctor`);
    if (o.loc) lines.push(`AIL|1|A|${o.loc}^${o.room ?? 'R1'}|C^Clinic^HL70305`);
    lines.push(...(o.extra ?? []));
    return lines.join('\r');
}

/** An ADT message with one PID (and more segments). */
function adt(event, pid, { control = controlId('A'), app = 'ADT', fac = 'MAIN', version = '2.5.1', charset, extra = [], enc = '^~\\&', fs = '|' } = {}) {
    const msh = ['MSH', enc, app, fac, 'FHIRSCHED', 'CLINIC', hl7Time(), '', `ADT${enc[0]}${event}${enc[0]}ADT_A01`, control, 'P', version];
    if (charset) msh.push('', '', '', '', '', charset);
    return [`MSH${fs}${msh.slice(1).join(fs)}`, [`EVN`, event, hl7Time()].join(fs), pid, ...extra].join('\r');
}

/** The ERR codes of an ACK (v2.5+: ERR-3.1; v2.3/2.4: ERR-1.4, whose first subcomponent is the code). */
function errCodes(ack) {
    const modern = getAll(ack, 'ERR-3.1').filter(Boolean);
    const old = getAll(ack, 'ERR-1.4.1').filter(Boolean);
    return [...modern, ...old];
}

/**
 * Asserts an ACK's MSA (code, MSA-2 = MSH-10), its ERR codes, and (unless addressing: false) its MSH as the template
 * of docs/hl7v2.md has it; returns the ACK.
 */
function expectAck(ack, msg, code, { codes, textRe, addressing = true } = {}) {
    const why = `ACK of ${get(msg, 'MSH-9')} ${get(msg, 'MSH-10')}:\n${ack.replace(/\r/g, '\n')}`;
    assert.equal(get(ack, 'MSA-1'), code, why);
    assert.equal(get(ack, 'MSA-2'), get(msg, 'MSH-10'), `MSA-2 echoes MSH-10: ${why}`);
    if (codes) {
        const got = errCodes(ack);
        assert.ok(got.some((c) => codes.includes(c)), `ERR code one of ${codes.join('/')}, got ${got.join(',') || 'none'}: ${why}`);
    }
    if (code === 'AA') {
        for (const sev of getAll(ack, 'ERR-4')) assert.equal(sev, 'W', `an AA carries only warnings: ${why}`);
    } else {
        assert.ok(segmentsNamed(ack, 'ERR').length >= 1, `an ${code} carries an ERR segment: ${why}`);
    }
    if (textRe) assert.match(ack, textRe, why);
    if (addressing) expectAddressing(ack, msg);
    return ack;
}

/** The ACK's MSH: `MSH|^~\&|<MSH-5>|<MSH-6>|<MSH-3>|<MSH-4>|<now>||ACK^<event>^ACK|<id>|<MSH-11>|<MSH-12>`. */
function expectAddressing(ack, msg) {
    const why = `ACK of ${get(msg, 'MSH-9')} ${get(msg, 'MSH-10')}:\n${ack.replace(/\r/g, '\n')}`;
    assert.equal(get(ack, 'MSH-9.1'), 'ACK', why);
    assert.equal(get(ack, 'MSH-9.2'), get(msg, 'MSH-9.2'), `MSH-9.2 is the message's event: ${why}`);
    assert.equal(get(ack, 'MSH-3'), get(msg, 'MSH-5') || 'FHIRSCHED', `ACK MSH-3 is the message's MSH-5: ${why}`);
    assert.equal(get(ack, 'MSH-4'), get(msg, 'MSH-6') || 'FHIRSCHED', `ACK MSH-4 is the message's MSH-6: ${why}`);
    assert.equal(get(ack, 'MSH-5'), get(msg, 'MSH-3'), `ACK MSH-5 is the message's MSH-3: ${why}`);
    assert.equal(get(ack, 'MSH-6'), get(msg, 'MSH-4'), `ACK MSH-6 is the message's MSH-4: ${why}`);
    assert.equal(get(ack, 'MSH-12'), get(msg, 'MSH-12'), `ACK MSH-12 is the message's version: ${why}`);
    assert.equal(get(ack, 'MSH-11'), get(msg, 'MSH-11'), `ACK MSH-11: ${why}`);
    assert.match(get(ack, 'MSH-7') || '', /^\d{14}/, `ACK MSH-7 is a timestamp: ${why}`);
    assert.ok(get(ack, 'MSH-10'), `ACK has a control id of its own: ${why}`);
}

const enc = encodeURIComponent;

describe('HL7 v2 inbound over MLLP', () => {
    let server, port;

    before(async () => {
        port = await freePort();
        server = await startServer({
            env: {
                FHIRSCHED_HL7_LISTEN: `127.0.0.1:${port}`,
                FHIRSCHED_HL7_TIMEZONE: TZ,
                FHIRSCHED_HL7_MAX_MESSAGE_BYTES: String(MAX_BYTES),
            },
        });
    });
    after(() => server?.stop());

    const send = (msg, opts) => mllpSend(port, msg, opts);

    /** Resources of `type` whose identifier matches `token` (system|value or value). */
    async function search(type, token) {
        const res = await fhir(server, 'GET', `/${type}?identifier=${enc(token)}`);
        expectStatus(res, 200);
        return (res.json.entry || []).filter((e) => e.search?.mode !== 'outcome').map((e) => e.resource);
    }
    async function one(type, token) {
        const found = await search(type, token);
        assert.equal(found.length, 1, `exactly one ${type} with identifier ${token}, found ${found.length}`);
        return found[0];
    }
    const appt = (filler, ns = 'EHR') => one('Appointment', `urn:fhirsched:hl7v2:${ns}|${filler}`);
    const noAppt = async (filler, ns = 'EHR') => assert.equal((await search('Appointment', `urn:fhirsched:hl7v2:${ns}|${filler}`)).length, 0, `no Appointment ${filler}`);
    const refsOf = (a, type) => a.participant.map((p) => p.actor?.reference).filter((r) => r?.startsWith(`${type}/`));

    /** Inbound records for a query of $hl7-messages, as plain objects. */
    async function records(query) {
        const res = await fhir(server, 'GET', `/$hl7-messages?${query}`);
        expectStatus(res, 200);
        assert.equal(res.json.resourceType, 'Parameters');
        return (res.json.parameter || []).map((p) => {
            assert.equal(p.name, 'message');
            const rec = { warnings: [], resources: [] };
            for (const part of p.part) {
                const key = Object.keys(part).find((k) => k.startsWith('value'));
                const v = key === 'valueReference' ? part[key].reference : part[key];
                if (part.name === 'warning') rec.warnings.push(v);
                else if (part.name === 'resource') rec.resources.push(v);
                else rec[part.name] = v;
            }
            return rec;
        });
    }
    const recordOf = async (control, sender = 'EHR|MAIN') => {
        const recs = await records(`control-id=${enc(control)}&sender=${enc(sender)}`);
        assert.equal(recs.length, 1, `one inbound record for ${sender} ${control}: ${JSON.stringify(recs)}`);
        return recs[0];
    };

    // -----------------------------------------------------------------------
    // SIU events

    it('S12 books: AA after the commit, addressed back to the sender, and the Appointment, Patient, Practitioner and Location it leaves', async () => {
        const i = ids('s12');
        const t = interval(45);
        const msg = siu({ ...i, ...t, minutes: 45, nte: ['bring the referral letter', 'fasting'] });
        const ack = expectAck(await send(msg), msg, 'AA');
        assert.equal(get(ack, 'MSH-9'), 'ACK^S12^ACK');

        // read straight after the ACK: it is sent after the transaction committed
        const a = await appt(i.filler);
        assert.equal(a.status, 'booked');
        assert.equal(Date.parse(a.start), Date.parse(t.startIso));
        assert.equal(Date.parse(a.end), Date.parse(t.endIso));
        assert.equal(a.minutesDuration, 45);
        const fill = a.identifier.find((x) => x.type?.coding?.some((c) => c.code === 'FILL'));
        const plac = a.identifier.find((x) => x.type?.coding?.some((c) => c.code === 'PLAC'));
        assert.deepEqual([fill?.system, fill?.value], ['urn:fhirsched:hl7v2:EHR', i.filler], 'SCH-2 -> FILL identifier');
        assert.deepEqual([plac?.system, plac?.value], ['urn:fhirsched:hl7v2:EHR', i.placer], 'SCH-1 -> PLAC identifier');
        assert.equal(a.comment, 'bring the referral letter\nfasting', 'NTEs after SCH joined with line breaks');
        assert.equal(a.reasonCode?.[0]?.coding?.[0]?.code, 'CHK');
        assert.equal(a.reasonCode?.[0]?.text ?? a.reasonCode?.[0]?.coding?.[0]?.display, 'Check-up');
        assert.deepEqual(
            [a.appointmentType?.coding?.[0]?.system, a.appointmentType?.coding?.[0]?.code],
            ['http://terminology.hl7.org/CodeSystem/v2-0276', 'ROUTINE'],
            'SCH-8 of table 0276',
        );
        assert.deepEqual([a.serviceType?.[0]?.coding?.[0]?.system, a.serviceType?.[0]?.coding?.[0]?.code], ['http://snomed.info/sct', '11429006'], 'AIS-3 SCT');

        const patient = await one('Patient', `urn:oid:1.2.3.4|${i.pat}`);
        assert.deepEqual(refsOf(a, 'Patient'), [`Patient/${patient.id}`]);
        assert.equal(patient.name[0].family, 'Hl7');
        assert.deepEqual(patient.name[0].given, ['Harriet']);
        assert.equal(patient.gender, 'female');
        assert.equal(patient.birthDate, '1970-01-01');
        const pid3 = patient.identifier.find((x) => x.value === i.pat);
        assert.ok(pid3.type?.coding?.some((c) => c.system === V2_0203 && c.code === 'MR'), `CX.5 MR -> identifier.type: ${JSON.stringify(pid3)}`);

        const dr = await one('Practitioner', `urn:fhirsched:hl7v2:NPI|${i.dr}`);
        assert.equal(dr.name[0].family, 'Seven');
        assert.deepEqual(dr.name[0].given, ['Sam']);
        const drPart = a.participant.find((p) => p.actor?.reference === `Practitioner/${dr.id}`);
        assert.ok(drPart, 'the practitioner takes part');
        assert.equal(drPart.type?.[0]?.coding?.[0]?.code, 'D', 'AIP-4 -> participant.type');

        const loc = await one('Location', `urn:fhirsched:hl7v2:MAIN|${i.loc}^R1`);
        assert.equal(loc.name, 'R1', 'name from PL.2');
        assert.equal(loc.physicalType, undefined, 'a Location made from HL7 is not a room');
        assert.deepEqual(refsOf(a, 'Location'), [`Location/${loc.id}`]);

        const rec = await recordOf(get(msg, 'MSH-10'));
        assert.equal(rec.status, 'applied');
        assert.equal(rec.ackCode, 'AA');
        assert.equal(rec.type, 'SIU^S12');
        assert.equal(rec.raw, msg, 'the raw message as received');
        assert.ok(rec.resources.some((r) => r.startsWith(`Appointment/${a.id}`)), `the record names the Appointment: ${rec.resources}`);
    });

    it('an NTE without a set id (NTE-1 is optional) after SCH is a comment too', async () => {
        const i = ids('nte');
        const msg = siu({ ...i, ...interval(), extra: [] }).replace('\rPID|', '\rNTE||no set id here\rPID|');
        expectAck(await send(msg), msg, 'AA');
        assert.equal((await appt(i.filler)).comment, 'no set id here');
    });

    it('S13 reschedules a known appointment and creates an unknown one as booked', async () => {
        const i = ids('s13');
        const t1 = interval();
        const t2 = interval(60);
        const m1 = siu({ ...i, ...t1 });
        expectAck(await send(m1), m1, 'AA');
        const before13 = await appt(i.filler);
        const msg = siu({ ...i, ...t2, minutes: 60, event: 'S13' });
        expectAck(await send(msg), msg, 'AA');
        const a = await appt(i.filler);
        assert.equal(a.id, before13.id, 'the same Appointment');
        assert.equal(a.status, 'booked');
        assert.equal(Date.parse(a.start), Date.parse(t2.startIso));
        assert.equal(Date.parse(a.end), Date.parse(t2.endIso));
        assert.equal(a.minutesDuration, 60);

        const u = ids('s13new');
        const t3 = interval();
        const m2 = siu({ ...u, ...t3, event: 'S13' });
        expectAck(await send(m2), m2, 'AA');
        const created = await appt(u.filler);
        assert.equal(created.status, 'booked');
        assert.equal(Date.parse(created.start), Date.parse(t3.startIso));
    });

    it('S14 keeps the current status and replaces times, reasons, participants and comments; an unknown one is created as booked', async () => {
        const i = ids('s14');
        const t1 = interval();
        const m1 = siu({ ...i, ...t1, nte: ['old comment'] });
        expectAck(await send(m1), m1, 'AA');
        let a = await appt(i.filler);
        // the clinic marks the patient arrived through FHIR
        const arrived = await fhir(server, 'PUT', `/Appointment/${a.id}`, { body: { ...a, meta: undefined, status: 'arrived' } });
        expectStatus(arrived, 200);

        const other = ids('s14dr');
        const t2 = interval(20);
        const m2 = siu({ ...i, ...t2, minutes: 20, event: 'S14', dr: other.dr, drFamily: 'Eight', sch7: 'FUP^Follow-up^LOCAL', nte: ['new comment'] });
        expectAck(await send(m2), m2, 'AA');
        a = await appt(i.filler);
        assert.equal(a.status, 'arrived', 'S14 keeps the status');
        assert.equal(Date.parse(a.start), Date.parse(t2.startIso));
        assert.equal(a.minutesDuration, 20);
        assert.equal(a.comment, 'new comment');
        assert.equal(a.reasonCode?.[0]?.coding?.[0]?.code, 'FUP');
        const oldDr = await one('Practitioner', `urn:fhirsched:hl7v2:NPI|${i.dr}`);
        const newDr = await one('Practitioner', `urn:fhirsched:hl7v2:NPI|${other.dr}`);
        assert.deepEqual(refsOf(a, 'Practitioner'), [`Practitioner/${newDr.id}`], `participants replaced (not Practitioner/${oldDr.id})`);

        const u = ids('s14new');
        const t3 = interval();
        const m3 = siu({ ...u, ...t3, event: 'S14' });
        expectAck(await send(m3), m3, 'AA');
        assert.equal((await appt(u.filler)).status, 'booked');
    });

    it('S15 cancels with the reason of SCH-6, S17 marks entered-in-error, S26 marks a no-show', async () => {
        const cases = [
            ['S15', 'cancelled'],
            ['S17', 'entered-in-error'],
            ['S26', 'noshow'],
        ];
        for (const [event, status] of cases) {
            const i = ids(event);
            const t = interval();
            const m1 = siu({ ...i, ...t });
            expectAck(await send(m1), m1, 'AA');
            const m2 = siu({ ...i, ...t, event, sch6: event === 'S15' ? 'PATREQ^Patient request^LOCAL' : '' });
            expectAck(await send(m2), m2, 'AA');
            const a = await appt(i.filler);
            assert.equal(a.status, status, event);
            if (event === 'S15') {
                assert.equal(a.cancelationReason?.text, 'Patient request');
                assert.equal(a.cancelationReason?.coding?.[0]?.code, 'PATREQ');
            }
        }
    });

    it('S15, S17 and S26 for an appointment it does not have: AE 204, kept for review', async () => {
        for (const event of ['S15', 'S17', 'S26']) {
            const i = ids(`u${event}`);
            const t = interval();
            const msg = siu({ ...i, ...t, event });
            expectAck(await send(msg), msg, 'AE', { codes: ['204'] });
            assert.equal(get(await send(msg), 'MSA-1'), 'AE', 'a repeat gets the same answer');
            await noAppt(i.filler);
            const rec = await recordOf(get(msg, 'MSH-10'));
            assert.equal(rec.status, 'review');
            assert.equal(rec.ackCode, 'AE');
            assert.ok(rec.error, 'the record says why');
        }
    });

    it('a refused status change (S15 after S26: noshow -> cancelled) is AE, changes nothing and is kept for review', async () => {
        const i = ids('refuse');
        const t = interval();
        for (const event of ['S12', 'S26']) {
            const m = siu({ ...i, ...t, event });
            expectAck(await send(m), m, 'AA');
        }
        const before15 = await appt(i.filler);
        const msg = siu({ ...i, ...t, event: 'S15', sch6: 'PATREQ^Patient request^LOCAL' });
        expectAck(await send(msg), msg, 'AE', { codes: ['207'] });
        const a = await appt(i.filler);
        assert.equal(a.status, 'noshow');
        assert.equal(a.meta.versionId, before15.meta.versionId);
        assert.equal((await recordOf(get(msg, 'MSH-10'))).status, 'review');
    });

    it('a message without SCH-1 and SCH-2, or without any timing, is AE 101 and kept for review', async () => {
        const i = ids('req');
        const t = interval();
        const noIds = siu({ ...i, ...t, placer: '', filler: '' });
        expectAck(await send(noIds), noIds, 'AE', { codes: ['101'] });
        const noTime = siu({ ...i, ...t, timing: 'none' });
        expectAck(await send(noTime), noTime, 'AE', { codes: ['101'] });
        await noAppt(i.filler);
        assert.equal((await search('Practitioner', `urn:fhirsched:hl7v2:NPI|${i.dr}`)).length, 0, 'nothing of the message was applied');
        for (const m of [noIds, noTime]) assert.equal((await recordOf(get(m, 'MSH-10'))).status, 'review');
    });

    // -----------------------------------------------------------------------
    // Timing

    it('timing: v2.3 SCH-11 without an offset is read in hl7.timezone; v2.5 TQ1 with an offset; TQ1 before SCH-11; AIS start plus duration', async () => {
        // v2.3, SCH-11 only, no offset: 2031-07-01 10:00 in Europe/Amsterdam (CEST, +02:00) = 08:00Z
        const i = ids('v23');
        const m23 = siu({ ...i, version: '2.3', start: '203107011000', end: '203107011030' });
        assert.ok(!m23.includes('\rTQ1'), 'a v2.3 message without TQ1');
        expectAck(await send(m23), m23, 'AA');
        let a = await appt(i.filler);
        assert.equal(Date.parse(a.start), Date.parse('2031-07-01T08:00:00Z'), `SCH-11.4 in ${TZ}: ${a.start}`);
        assert.equal(Date.parse(a.end), Date.parse('2031-07-01T08:30:00Z'));
        assert.equal(a.minutesDuration, 30);

        // v2.5, TQ1 only, explicit offset -0500
        const j = ids('v25');
        const m25 = siu({ ...j, version: '2.5', start: '20310701100000-0500', end: '20310701104500-0500' });
        assert.ok(!get(m25, 'SCH-11'), 'no SCH-11');
        expectAck(await send(m25), m25, 'AA');
        a = await appt(j.filler);
        assert.equal(Date.parse(a.start), Date.parse('2031-07-01T15:00:00Z'));
        assert.equal(Date.parse(a.end), Date.parse('2031-07-01T15:45:00Z'));
        assert.equal(a.minutesDuration, 45);

        // both: TQ1 is read first
        const k = ids('both');
        const mb = siu({ ...k, version: '2.5.1', timing: 'both', start: '20310702090000+0000', end: '20310702093000+0000', sch11Start: '20310702140000+0000', sch11End: '20310702150000+0000' });
        expectAck(await send(mb), mb, 'AA');
        a = await appt(k.filler);
        assert.equal(Date.parse(a.start), Date.parse('2031-07-02T09:00:00Z'), 'TQ1-7, not SCH-11.4');
        assert.equal(a.minutesDuration, 30);

        // neither: AIS-4 start, AIS-7/8 duration
        const l = ids('ais');
        const ma = siu({ ...l, version: '2.5.1', timing: 'ais', minutes: 40, start: '20310703090000+0000' });
        expectAck(await send(ma), ma, 'AA');
        a = await appt(l.filler);
        assert.equal(Date.parse(a.start), Date.parse('2031-07-03T09:00:00Z'));
        assert.equal(Date.parse(a.end), Date.parse('2031-07-03T09:40:00Z'), 'end = AIS-4 + AIS-7 minutes');
        assert.equal(a.minutesDuration, 40);
    });

    // -----------------------------------------------------------------------
    // The booking constraint

    it('a conflicting S12 (same practitioner, overlapping time) is AE naming the practitioner and the time; nothing is applied; it is kept for review', async () => {
        const i = ids('conf');
        const t = { start: '20310704090000+0000', end: '20310704093000+0000' };
        const m1 = siu({ ...i, ...t });
        expectAck(await send(m1), m1, 'AA');
        const first = await appt(i.filler);
        const dr = await one('Practitioner', `urn:fhirsched:hl7v2:NPI|${i.dr}`);

        const j = ids('conf2');
        const m2 = siu({ ...j, dr: i.dr, start: '20310704091500+0000', end: '20310704094500+0000' });
        const ack = expectAck(await send(m2), m2, 'AE', { codes: ['207'] });
        const text = getAll(ack, 'ERR-8').join(' ');
        assert.ok(text.includes(`Practitioner/${dr.id} is already booked or held then`), `ERR-8 names the practitioner: ${text}`);
        assert.match(text, /2031-07-04T09:15:00Z to 2031-07-04T09:45:00Z/, `ERR-8 names the time: ${text}`);
        assert.equal(getAll(ack, 'ERR-4')[0], 'E');

        await noAppt(j.filler);
        assert.equal((await search('Patient', `urn:oid:1.2.3.4|${j.pat}`)).length, 0, 'the Patient it would have created was rolled back');
        assert.equal((await search('Location', `urn:fhirsched:hl7v2:MAIN|${j.loc}^R1`)).length, 0, 'so was the Location');
        const still = await appt(i.filler);
        assert.equal(still.meta.versionId, first.meta.versionId, 'the first booking is untouched');

        const sentAt = Date.now();
        const review = (await records(`status=review&control-id=${enc(get(m2, 'MSH-10'))}`))[0];
        assert.ok(review, 'GET $hl7-messages?status=review lists it');
        assert.equal(review.status, 'review');
        assert.equal(review.ackCode, 'AE');
        assert.equal(review.sender, 'EHR|MAIN');
        assert.equal(review.controlId, get(m2, 'MSH-10'));
        assert.equal(review.raw, m2, 'the raw message');
        assert.match(review.error, new RegExp(`Practitioner/${dr.id} is already booked or held then`));
        assert.ok(Math.abs(Date.parse(review.received) - sentAt) < 60_000, `received ${review.received}`);
    });

    it('v2.3 conflict: MSA-3 carries the message and ERR is the v2.3 form; a FHIR booking blocks an HL7 one just the same', async () => {
        const drRes = await fhir(server, 'POST', '/Practitioner', {
            body: { resourceType: 'Practitioner', identifier: [{ system: 'urn:fhirsched:hl7v2:NPI', value: uniq('FHIRDR') }], name: [{ family: 'Fhir' }] },
        });
        expectStatus(drRes, 201);
        const dr = drRes.json;
        const booked = await fhir(server, 'POST', '/Appointment', {
            body: {
                resourceType: 'Appointment',
                status: 'booked',
                start: '2031-07-05T09:00:00Z',
                end: '2031-07-05T10:00:00Z',
                participant: [{ actor: { reference: `Practitioner/${dr.id}` }, status: 'accepted' }],
            },
        });
        expectStatus(booked, 201);
        const i = ids('c23');
        const msg = siu({ ...i, version: '2.3', dr: dr.identifier[0].value, start: '20310705093000+0000', end: '20310705100000+0000' });
        const ack = expectAck(await send(msg), msg, 'AE', { codes: ['207'] });
        assert.match(get(ack, 'MSA-3') || '', new RegExp(`Practitioner/${dr.id} is already booked or held then`), `MSA-3: ${ack}`);
        assert.equal(get(ack, 'ERR-1.4.3'), 'HL70357', `v2.3 ERR: <segment>^<sequence>^<field>^<code>&<text>&HL70357: ${ack}`);
        await noAppt(i.filler);
    });

    it('two bookings of one new practitioner at one time on two connections at once: one AA, one AE, one Practitioner', async () => {
        for (let round = 0; round < 3; round++) {
            const dr = ids('race').dr;
            const t = interval();
            const msgs = [ids('ra'), ids('rb')].map((i) => siu({ ...i, ...t, dr }));
            const acks = await Promise.all(msgs.map((m) => send(m)));
            const codes = acks.map((a) => get(a, 'MSA-1')).sort();
            assert.deepEqual(codes, ['AA', 'AE'], `round ${round}: ${acks.join('\n')}`);
            assert.equal((await search('Practitioner', `urn:fhirsched:hl7v2:NPI|${dr}`)).length, 1, 'one Practitioner for one identifier');
        }
    });

    // -----------------------------------------------------------------------
    // Repeats

    it('a repeated control id from the same sender gets the first ACK byte for byte and applies nothing again, even with other content', async () => {
        const i = ids('dup');
        const t = interval();
        const msg = siu({ ...i, ...t });
        const first = await send(msg, { raw: true });
        expectAck(first.toString('utf8'), msg, 'AA');
        const again = await send(msg, { raw: true });
        assert.ok(again.equals(first), `byte for byte:\n${first}\n${again}`);
        // same sender and control id, other times: still the first answer, and nothing changes
        const t2 = interval();
        const changed = siu({ ...i, ...t2, control: get(msg, 'MSH-10') });
        const third = await send(changed, { raw: true });
        assert.ok(third.equals(first), 'a repeat with other content gets the first ACK');
        const a = await appt(i.filler);
        assert.equal(a.meta.versionId, '1');
        assert.equal(Date.parse(a.start), Date.parse(t.startIso), 'the repeat changed nothing');
        const hist = await fhir(server, 'GET', `/Appointment/${a.id}/_history`);
        expectStatus(hist, 200);
        assert.equal(hist.json.entry.length, 1, 'one version in the history');
        assert.equal((await records(`control-id=${enc(get(msg, 'MSH-10'))}&sender=${enc('EHR|MAIN')}`)).length, 1, 'one inbound record');
    });

    it('the same control id from another sending application or facility is another message, and is applied', async () => {
        const control = controlId('SAME');
        const i = ids('o1');
        const m1 = siu({ ...i, ...interval(), control });
        expectAck(await send(m1), m1, 'AA');
        const j = ids('o2');
        const m2 = siu({ ...j, ...interval(), control, app: 'OTHERAPP' });
        const ack2 = expectAck(await send(m2), m2, 'AA');
        assert.equal(get(ack2, 'MSH-5'), 'OTHERAPP');
        await appt(j.filler);
        const k = ids('o3');
        const m3 = siu({ ...k, ...interval(), control, fac: 'OTHERFAC' });
        expectAck(await send(m3), m3, 'AA');
        await appt(k.filler);
    });

    it('a repeat of a message kept for review gets the same AE and adds no record', async () => {
        const i = ids('dupae');
        const msg = siu({ ...i, ...interval(), event: 'S15' });
        const first = await send(msg, { raw: true });
        expectAck(first.toString('utf8'), msg, 'AE');
        const again = await send(msg, { raw: true });
        assert.ok(again.equals(first), 'byte for byte');
        assert.equal((await records(`control-id=${enc(get(msg, 'MSH-10'))}`)).length, 1);
    });

    it('copies of one message arriving at once on several connections are answered alike and applied once', async () => {
        const i = ids('par');
        const msg = siu({ ...i, ...interval() });
        const acks = await Promise.all(Array.from({ length: 5 }, () => send(msg, { raw: true })));
        for (const a of acks) assert.ok(a.equals(acks[0]), `identical ACKs:\n${acks.map(String).join('\n')}`);
        expectAck(acks[0].toString('utf8'), msg, 'AA');
        const a = await appt(i.filler);
        assert.equal(a.meta.versionId, '1', 'applied once');
    });

    // -----------------------------------------------------------------------
    // Rejections

    it('rejects (AR) what it cannot read: no MSH, bad delimiters', async () => {
        const noMsh = 'PID|1||NOMSH^^^X^MR||Nobody^No';
        const ack1 = await send(noMsh);
        assert.equal(get(ack1, 'MSA-1'), 'AR', ack1);
        assert.ok(segmentsNamed(ack1, 'ERR').length >= 1, ack1);

        for (const bad of [
            'MSH|^~^&|EHR|MAIN|FHIRSCHED|CLINIC|20310101||SIU^S12^SIU_S12|BADDELIM1|P|2.5.1', // a repeated encoding character
            'MSH|^~\\A|EHR|MAIN|FHIRSCHED|CLINIC|20310101||SIU^S12^SIU_S12|BADDELIM2|P|2.5.1', // an alphanumeric one
            'MSH|^|EHR|MAIN|FHIRSCHED|CLINIC|20310101||SIU^S12^SIU_S12|BADDELIM3|P|2.5.1', // one encoding character
            'MSH|^~\\&#!|EHR|MAIN|FHIRSCHED|CLINIC|20310101||SIU^S12^SIU_S12|BADDELIM4|P|2.5.1', // six
            'MSH|^~\\\x01|EHR|MAIN|FHIRSCHED|CLINIC|20310101||SIU^S12^SIU_S12|BADDELIM5|P|2.5.1', // a control character
            'MSH', // nothing after the segment name
        ]) {
            const ack = await send(`${bad}\rSCH|BAD^EHR|BAD^EHR`);
            assert.equal(get(ack, 'MSA-1'), 'AR', `${bad} -> ${ack}`);
        }
        await noAppt('BAD');
    });

    it('rejects unsupported message types (200) and events (201)', async () => {
        const oru = 'MSH|^~\\&|LAB|MAIN|FHIRSCHED|CLINIC|20310101||ORU^R01^ORU_R01|' + controlId('ORU') + '|P|2.5.1\rPID|1||X1^^^MAIN^MR\rOBR|1';
        expectAck(await send(oru), oru, 'AR', { codes: ['200', '201'] });
        const s99 = siu({ ...ids('s99'), ...interval(), event: 'S99' });
        expectAck(await send(s99), s99, 'AR', { codes: ['201'] });
        const a01 = adt('A01', `PID|1||${uniq('A01')}^^^MAIN^MR||Admit^Ann`);
        expectAck(await send(a01), a01, 'AR', { codes: ['201'] });
        assert.equal((await search('Patient', get(a01, 'PID-3.1'))).length, 0, 'nothing applied');
    });

    it('rejects unsupported versions (203) and accepts every listed one', async () => {
        const rejected = [];
        for (const version of ['2.2', '3.0', '2.1', '2.9']) {
            const i = ids(`ver${version}`);
            const msg = siu({ ...i, ...interval(), version, timing: 'sch11' });
            const ack = expectAck(await send(msg), msg, 'AR', { codes: ['203'], addressing: false });
            await noAppt(i.filler);
            rejected.push([ack, msg]);
        }
        for (const version of ['2.3', '2.3.1', '2.4', '2.5', '2.5.1', '2.6', '2.7', '2.7.1', '2.8', '2.8.1', '2.8.2']) {
            const id = uniq('V');
            const msg = adt('A28', `PID|1||${id}^^^MAIN^MR||Version^Vera`, { version });
            expectAck(await send(msg), msg, 'AA');
            await one('Patient', `urn:fhirsched:hl7v2:MAIN|${id}`);
        }
        // an unsupported version is still addressed like any ACK
        for (const [ack, msg] of rejected) expectAddressing(ack, msg);
    });

    it('rejects unsupported character sets (207, naming the character set)', async () => {
        const rejected = [];
        for (const charset of ['UNICODE UTF-16', '8859/5', 'ISO IR87', 'KOI8-R']) {
            const id = uniq('CS');
            const msg = adt('A28', `PID|1||${id}^^^MAIN^MR||Charset^Carl`, { charset });
            const ack = expectAck(await send(msg), msg, 'AR', { codes: ['207'], addressing: false });
            assert.ok(ack.includes(charset), ack);
            assert.equal((await search('Patient', id)).length, 0);
            rejected.push([ack, msg]);
        }
        for (const [ack, msg] of rejected) {
            assert.equal(get(ack, 'MSH-18'), get(msg, 'MSH-18'), `the ACK echoes MSH-18: ${ack}`);
            expectAddressing(ack, msg);
        }
    });

    it('a message over hl7.max_message_bytes is AR 207 and not applied; one just under is applied', async () => {
        const i = ids('big');
        const big = siu({ ...i, ...interval(), nte: ['x'.repeat(MAX_BYTES)] });
        assert.ok(Buffer.byteLength(big) > MAX_BYTES);
        const ack = expectAck(await send(big), big, 'AR', { codes: ['207'], addressing: false });
        await noAppt(i.filler);

        const j = ids('fits');
        const fits = siu({ ...j, ...interval(), nte: ['y'.repeat(MAX_BYTES - 1500)] });
        assert.ok(Buffer.byteLength(fits) < MAX_BYTES);
        expectAck(await send(fits), fits, 'AA');
        assert.equal((await appt(j.filler)).comment.length, MAX_BYTES - 1500);
        // the one too large is addressed from what its first line shows
        expectAddressing(ack, big);
    });

    // -----------------------------------------------------------------------
    // Parsing: delimiters, segment ends, character sets, escapes

    it('segments ending in \\n or \\r\\n are read like \\r', async () => {
        for (const sep of ['\n', '\r\n']) {
            const i = ids('seg');
            const msg = siu({ ...i, ...interval() }).replace(/\r/g, sep);
            const ack = await send(msg);
            assert.equal(get(ack, 'MSA-1'), 'AA', ack);
            assert.equal(get(ack, 'MSA-2'), get(msg, 'MSH-10'));
            await appt(i.filler);
        }
    });

    it('other delimiters (MSH-1 #, escape !) are read, decoded, and used in the ACK', async () => {
        const id = uniq('DL');
        const msg = adt('A28', `PID#1##${id}^^^MAIN^MR##Fam!F!ily!T!Co^Given!S!Two`, { fs: '#', enc: '^~!&' });
        const ack = await send(msg);
        assert.ok(ack.startsWith('MSH#^~!&#'), `the ACK uses the message's delimiters: ${ack}`);
        assert.equal(get(ack, 'MSA-1'), 'AA', ack);
        assert.equal(get(ack, 'MSA-2'), get(msg, 'MSH-10'));
        const p = await one('Patient', `urn:fhirsched:hl7v2:MAIN|${id}`);
        assert.equal(p.name[0].family, 'Fam#ily&Co');
        assert.deepEqual(p.name[0].given, ['Given^Two']);
    });

    it('character sets: 8859/1, ASCII/empty with Latin-1 bytes, valid UTF-8 without MSH-18, UNICODE UTF-8; stored as UTF-8', async () => {
        // 8859/1: é and ü as single bytes
        let id = uniq('L1');
        let msg = adt('A28', `PID|1||${id}^^^MAIN^MR||Müller^Hélène||19700101|F`, { charset: '8859/1' });
        let ack = await send(msg, { encoding: 'latin1' });
        expectAck(ack, msg, 'AA');
        assert.equal(get(ack, 'MSH-18'), '8859/1', 'the ACK echoes MSH-18');
        let p = await one('Patient', `urn:fhirsched:hl7v2:MAIN|${id}`);
        assert.equal(p.name[0].family, 'Müller');
        assert.deepEqual(p.name[0].given, ['Hélène']);

        // no MSH-18 and bytes that are not UTF-8: read as ISO 8859-1
        id = uniq('L2');
        msg = adt('A28', `PID|1||${id}^^^MAIN^MR||Gar\u00e7on^Ana\u00efs`);
        expectAck(await send(msg, { encoding: 'latin1' }), msg, 'AA');
        p = await one('Patient', `urn:fhirsched:hl7v2:MAIN|${id}`);
        assert.equal(p.name[0].family, 'Garçon');
        assert.deepEqual(p.name[0].given, ['Anaïs']);

        // no MSH-18, valid UTF-8: read as UTF-8
        id = uniq('U1');
        msg = adt('A28', `PID|1||${id}^^^MAIN^MR||Zoë^Ñandú`);
        expectAck(await send(msg), msg, 'AA');
        p = await one('Patient', `urn:fhirsched:hl7v2:MAIN|${id}`);
        assert.equal(p.name[0].family, 'Zoë');

        // ASCII declared, Latin-1 bytes
        id = uniq('A1');
        msg = adt('A28', `PID|1||${id}^^^MAIN^MR||Fran\u00e7ois^Jos\u00e9`, { charset: 'ASCII' });
        expectAck(await send(msg, { encoding: 'latin1' }), msg, 'AA');
        p = await one('Patient', `urn:fhirsched:hl7v2:MAIN|${id}`);
        assert.equal(p.name[0].family, 'François');

        // UNICODE UTF-8 with characters outside Latin-1
        id = uniq('U2');
        msg = adt('A28', `PID|1||${id}^^^MAIN^MR||山田^太郎~Łukasz^Żółć`, { charset: 'UNICODE UTF-8' });
        ack = expectAck(await send(msg), msg, 'AA');
        assert.equal(get(ack, 'MSH-18'), 'UNICODE UTF-8');
        p = await one('Patient', `urn:fhirsched:hl7v2:MAIN|${id}`);
        assert.equal(p.name[0].family, '山田');
        assert.deepEqual(p.name[0].given, ['太郎']);
        assert.equal(p.name[1].family, 'Łukasz');

        // \Xhh\ in the message's character set
        id = uniq('X1');
        msg = adt('A28', `PID|1||${id}^^^MAIN^MR||Caf\\XE9\\^Ren\\XE9\\`, { charset: '8859/1' });
        expectAck(await send(msg, { encoding: 'latin1' }), msg, 'AA');
        p = await one('Patient', `urn:fhirsched:hl7v2:MAIN|${id}`);
        assert.equal(p.name[0].family, 'Café');
        id = uniq('X2');
        msg = adt('A28', `PID|1||${id}^^^MAIN^MR||Caf\\XC3A9\\^Ren\\XC3A9\\`, { charset: 'UNICODE UTF-8' });
        expectAck(await send(msg), msg, 'AA');
        p = await one('Patient', `urn:fhirsched:hl7v2:MAIN|${id}`);
        assert.equal(p.name[0].family, 'Café');
    });

    it('escape sequences \\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\.br\\ \\X..\\ are decoded in names and comments; highlighting is dropped', async () => {
        const i = ids('esc');
        const msg = siu({
            ...i,
            ...interval(),
            patFamily: 'O\\T\\Brien\\F\\Smith',
            patGiven: 'Ann\\S\\Marie',
            nte: ['pipe \\F\\ caret \\S\\ amp \\T\\ tilde \\R\\ backslash \\E\\ end\\.br\\next \\H\\bold\\N\\ \\X41\\'],
        });
        expectAck(await send(msg), msg, 'AA');
        const a = await appt(i.filler);
        assert.equal(a.comment, 'pipe | caret ^ amp & tilde ~ backslash \\ end\nnext bold A');
        const p = await one('Patient', `urn:oid:1.2.3.4|${i.pat}`);
        assert.equal(p.name[0].family, 'O&Brien|Smith');
        assert.deepEqual(p.name[0].given, ['Ann^Marie']);
    });

    // -----------------------------------------------------------------------
    // ADT

    it('A04 registers a Patient with every mapped PID element; identifier systems follow the assigning authority', async () => {
        const base = uniq('ADT');
        const pid = [
            'PID',
            '1',
            '',
            `${base}-1^^^&1.2.840.99.1&ISO^MR~${base}-2^^^&http://example.org/mrn&URI^PI~${base}-3^^^HOSPX^SS~${base}-4`,
            '',
            'Doe^Jane^Q^Jr^Dr^^L~Smith^Jane^^^^^M~^Janie^^^^^N',
            '',
            '197003',
            'F',
            '',
            '',
            '1 Main St^Apt 2^Springfield^IL^62701^USA^H',
            '',
            '^PRN^PH^^1^555^1234567~^NET^Internet^jane@example.org~^PRN^CP^^1^555^7654321',
            '^WPN^PH^^1^555^9999999',
            '',
            'M',
        ].join('|');
        const msg = adt('A04', pid, { fac: 'MAIN^1.2.3^ISO' });
        expectAck(await send(msg), msg, 'AA');
        const p = await one('Patient', `urn:oid:1.2.840.99.1|${base}-1`);
        const sys = Object.fromEntries(p.identifier.map((x) => [x.value, x.system]));
        assert.deepEqual(sys, {
            [`${base}-1`]: 'urn:oid:1.2.840.99.1',
            [`${base}-2`]: 'http://example.org/mrn',
            [`${base}-3`]: 'urn:fhirsched:hl7v2:HOSPX',
            [`${base}-4`]: 'urn:fhirsched:hl7v2:MAIN',
        });
        const type = (v) => p.identifier.find((x) => x.value === v).type?.coding?.find((c) => c.system === V2_0203)?.code;
        assert.deepEqual([type(`${base}-1`), type(`${base}-2`), type(`${base}-3`)], ['MR', 'PI', 'SS']);
        const official = p.name.find((n) => n.use === 'official');
        assert.equal(official?.family, 'Doe');
        assert.deepEqual(official.given, ['Jane', 'Q']);
        assert.deepEqual(official.suffix, ['Jr']);
        assert.deepEqual(official.prefix, ['Dr']);
        assert.equal(p.name.find((n) => n.use === 'maiden')?.family, 'Smith');
        assert.deepEqual(p.name.find((n) => n.use === 'nickname')?.given, ['Janie']);
        assert.equal(p.birthDate, '1970-03', 'to the precision given');
        assert.equal(p.gender, 'female');
        assert.deepEqual(p.address[0].line, ['1 Main St', 'Apt 2']);
        assert.deepEqual([p.address[0].city, p.address[0].state, p.address[0].postalCode, p.address[0].country], ['Springfield', 'IL', '62701', 'USA']);
        const tel = (pred) => p.telecom.find(pred);
        assert.ok(tel((t) => t.system === 'phone' && t.use === 'home' && /1234567/.test(t.value)), `home phone: ${JSON.stringify(p.telecom)}`);
        assert.ok(tel((t) => t.system === 'email' && t.value === 'jane@example.org'), 'email');
        assert.ok(tel((t) => t.use === 'mobile' && /7654321/.test(t.value)), 'mobile');
        assert.ok(tel((t) => t.system === 'phone' && t.use === 'work' && /9999999/.test(t.value)), 'work phone');
        assert.equal(p.maritalStatus?.coding?.[0]?.code, 'M');

        // no MSH-4: the local system is MSH-3
        const id5 = uniq('NOFAC');
        const m2 = adt('A04', `PID|1||${id5}||Local^Lou`, { app: 'LOCALAPP', fac: '' });
        expectAck(await send(m2), m2, 'AA');
        await one('Patient', `urn:fhirsched:hl7v2:LOCALAPP|${id5}`);
    });

    it('A08, A28 and A31 update the Patient found by any identifier (elements replaced, others kept, identifiers merged) or create it', async () => {
        const id = uniq('UPD');
        const m1 = adt('A28', `PID|1||${id}^^^MAIN^MR||First^Ann||19800202|F|||1 Old Rd^^Oldtown`);
        expectAck(await send(m1), m1, 'AA');
        let p = await one('Patient', `urn:fhirsched:hl7v2:MAIN|${id}`);
        // the clinic adds something the feed does not carry
        const put = await fhir(server, 'PUT', `/Patient/${p.id}`, { body: { ...p, meta: undefined, multipleBirthBoolean: true } });
        expectStatus(put, 200);

        const m2 = adt('A08', `PID|1||${id}^^^MAIN^MR~${id}-SS^^^USSSA^SS||Second^Ann||19800202|F|||2 New Rd^^Newtown`);
        expectAck(await send(m2), m2, 'AA');
        p = await one('Patient', `urn:fhirsched:hl7v2:MAIN|${id}`);
        assert.equal(p.name.length, 1);
        assert.equal(p.name[0].family, 'Second', 'PID-5 replaced');
        assert.equal(p.address[0].city, 'Newtown', 'PID-11 replaced');
        assert.equal(p.multipleBirthBoolean, true, 'other elements kept');
        assert.ok(p.identifier.some((x) => x.system === 'urn:fhirsched:hl7v2:USSSA' && x.value === `${id}-SS`), 'identifiers merged');

        // found by the other identifier alone
        const m3 = adt('A31', `PID|1||${id}-SS^^^USSSA^SS||Third^Ann||19800202|F`);
        expectAck(await send(m3), m3, 'AA');
        p = await one('Patient', `urn:fhirsched:hl7v2:USSSA|${id}-SS`);
        assert.equal(p.name[0].family, 'Third');
        assert.ok(p.identifier.some((x) => x.value === id), 'the first identifier is kept');

        // PID-29 / PID-30
        const m4 = adt('A08', `PID|1||${id}^^^MAIN^MR||Third^Ann||19800202|F|||||||||||||||||||||20310101120000+0000`);
        expectAck(await send(m4), m4, 'AA');
        p = await one('Patient', `urn:fhirsched:hl7v2:MAIN|${id}`);
        // PID-29 carries a time; R4 dateTime can hold it (and must have an offset when it has one)
        assert.match(p.deceasedDateTime ?? '', /^2031-01-01/, `PID-29: ${JSON.stringify(p)}`);
        if (p.deceasedDateTime.length > 10) assert.equal(Date.parse(p.deceasedDateTime), Date.parse('2031-01-01T12:00:00Z'), `PID-29: ${p.deceasedDateTime}`);
        const id2 = uniq('DEC');
        const m5 = adt('A31', `PID|1||${id2}^^^MAIN^MR||Gone^Gil||19400101|M||||||||||||||||||||||Y`);
        expectAck(await send(m5), m5, 'AA');
        assert.equal((await one('Patient', `urn:fhirsched:hl7v2:MAIN|${id2}`)).deceasedBoolean, true, 'PID-30 Y');

        // unknown: created
        for (const event of ['A04', 'A08', 'A28', 'A31']) {
            const nid = uniq(event);
            const m = adt(event, `PID|1||${nid}^^^MAIN^MR||New^${event}||19900101|U`);
            expectAck(await send(m), m, 'AA');
            const created = await one('Patient', `urn:fhirsched:hl7v2:MAIN|${nid}`);
            assert.equal(created.gender, 'unknown');
        }
    });

    it('an ADT whose identifiers match several Patients is AE and changes none of them', async () => {
        const a = uniq('M1');
        const b = uniq('M2');
        for (const v of [a, b]) {
            const res = await fhir(server, 'POST', '/Patient', { body: { resourceType: 'Patient', identifier: [{ system: 'urn:fhirsched:hl7v2:MAIN', value: v }], name: [{ family: 'Twin' }] } });
            expectStatus(res, 201);
        }
        const msg = adt('A08', `PID|1||${a}^^^MAIN^MR~${b}^^^MAIN^MR||Merged^Wrongly`);
        expectAck(await send(msg), msg, 'AE');
        for (const v of [a, b]) assert.equal((await one('Patient', `urn:fhirsched:hl7v2:MAIN|${v}`)).name[0].family, 'Twin');
        assert.equal((await recordOf(get(msg, 'MSH-10'), 'ADT|MAIN')).status, 'review');
    });

    it('A40 merges: the merged Patient is inactive and replaced-by the survivor, which replaces it; an unknown MRG-1 is AE 204', async () => {
        const survivor = uniq('SURV');
        const old = uniq('OLD');
        for (const [id, name] of [
            [survivor, 'Keep'],
            [old, 'Gone'],
        ]) {
            const m = adt('A04', `PID|1||${id}^^^MAIN^MR||${name}^Sue`);
            expectAck(await send(m), m, 'AA');
        }
        const msg = adt('A40', `PID|1||${survivor}^^^MAIN^MR||Keep^Sue`, { extra: [`MRG|${old}^^^MAIN^MR`] });
        expectAck(await send(msg), msg, 'AA');
        const s = await one('Patient', `urn:fhirsched:hl7v2:MAIN|${survivor}`);
        const o = await one('Patient', `urn:fhirsched:hl7v2:MAIN|${old}`);
        assert.equal(o.active, false);
        assert.deepEqual(o.link, [{ other: { reference: `Patient/${s.id}` }, type: 'replaced-by' }]);
        assert.deepEqual(s.link, [{ other: { reference: `Patient/${o.id}` }, type: 'replaces' }]);
        assert.notEqual(s.active, false);

        // an unknown survivor is created; the merged one must exist
        const newSurvivor = uniq('NEWS');
        const old2 = uniq('OLD2');
        const m0 = adt('A28', `PID|1||${old2}^^^MAIN^MR||Older^Otto`);
        expectAck(await send(m0), m0, 'AA');
        const m2 = adt('A40', `PID|1||${newSurvivor}^^^MAIN^MR||Newer^Otto`, { extra: [`MRG|${old2}^^^MAIN^MR`] });
        expectAck(await send(m2), m2, 'AA');
        const ns = await one('Patient', `urn:fhirsched:hl7v2:MAIN|${newSurvivor}`);
        assert.deepEqual((await one('Patient', `urn:fhirsched:hl7v2:MAIN|${old2}`)).link, [{ other: { reference: `Patient/${ns.id}` }, type: 'replaced-by' }]);

        const nobody = uniq('NOBODY');
        const m3 = adt('A40', `PID|1||${survivor}^^^MAIN^MR||Keep^Sue`, { extra: [`MRG|${nobody}^^^MAIN^MR`] });
        expectAck(await send(m3), m3, 'AE', { codes: ['204'] });
        assert.equal((await search('Patient', nobody)).length, 0);
        assert.equal((await recordOf(get(m3, 'MSH-10'), 'ADT|MAIN')).status, 'review');
    });

    // -----------------------------------------------------------------------
    // Soft rules

    it('a booking in the past is AA, with the broken rule as an ERR of severity W and a warning on the record', async () => {
        const i = ids('past');
        const msg = siu({ ...i, start: '20190107090000+0000', end: '20190107093000+0000' });
        const ack = expectAck(await send(msg), msg, 'AA');
        const warnings = segmentsNamed(ack, 'ERR').filter((l) => get(`MSH|^~\\&\r${l}`, 'ERR-4') === 'W');
        assert.ok(warnings.some((l) => /in the past/.test(l)), `an ERR of severity W about the past: ${ack}`);
        assert.equal((await appt(i.filler)).status, 'booked');
        const rec = await recordOf(get(msg, 'MSH-10'));
        assert.equal(rec.status, 'applied');
        assert.ok(rec.warnings.some((w) => /in the past/.test(w)), `warnings: ${rec.warnings}`);

        // v2.3 has no severity in ERR: an AA without ERR, the warning still recorded
        const j = ids('past23');
        const m23 = siu({ ...j, version: '2.3', start: '20190108090000+0000', end: '20190108093000+0000' });
        const ack23 = expectAck(await send(m23), m23, 'AA');
        assert.equal(segmentsNamed(ack23, 'ERR').length, 0, `v2.3: ${ack23}`);
        assert.ok((await recordOf(get(m23, 'MSH-10'))).warnings.some((w) => /in the past/.test(w)));
    });

    // -----------------------------------------------------------------------
    // Framing and connections

    it('a message written one byte at a time gets its ACK', async () => {
        const i = ids('byte');
        const msg = siu({ ...i, ...interval() });
        const c = await mllpConnect(port);
        try {
            const ack = await c.send(msg, { byteByByte: true });
            expectAck(ack, msg, 'AA');
            // and the connection goes on: a second message the usual way
            const j = ids('byte2');
            const m2 = siu({ ...j, ...interval() });
            expectAck(await c.send(m2), m2, 'AA');
        } finally {
            c.close();
        }
        await appt(i.filler);
    });

    it('several messages in one write (with line breaks and spaces between frames) get their ACKs in order', async () => {
        const good = [ids('w1'), ids('w2'), ids('w3')].map((i) => siu({ ...i, ...interval() }));
        const unknown = siu({ ...ids('w4'), ...interval(), event: 'S15' });
        const rejected = siu({ ...ids('w5'), ...interval(), version: '2.2', timing: 'sch11' });
        const msgs = [good[0], unknown, good[1], rejected, good[2]];
        const c = await mllpConnect(port);
        try {
            const acks = await c.sendMany(msgs, { separator: '\r\n \n' });
            assert.deepEqual(acks.map((a) => get(a, 'MSA-2')), msgs.map((m) => get(m, 'MSH-10')), 'in order');
            assert.deepEqual(acks.map((a) => get(a, 'MSA-1')), ['AA', 'AE', 'AA', 'AR', 'AA']);
        } finally {
            c.close();
        }
    });

    it('bytes outside a frame close that connection; other connections, open and new, are served', async () => {
        const bystander = await mllpConnect(port);
        const victim = await mllpConnect(port);
        try {
            victim.writeRaw('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
            assert.equal(await victim.waitClosed(10_000), 'closed', 'the connection that sent garbage is closed');
            const i = ids('by');
            const msg = siu({ ...i, ...interval() });
            expectAck(await bystander.send(msg), msg, 'AA');
        } finally {
            bystander.close();
            victim.destroy();
        }
        // garbage after a complete frame, on yet another connection
        const late = await mllpConnect(port);
        try {
            const j = ids('late');
            const msg = siu({ ...j, ...interval() });
            late.writeRaw(Buffer.concat([frame(msg), Buffer.from('\x00\x01garbage')]));
            assert.equal(await late.waitClosed(10_000), 'closed');
        } finally {
            late.destroy();
        }
        const k = ids('after');
        const m = siu({ ...k, ...interval() });
        expectAck(await send(m), m, 'AA');
    });

    it('serves 50 connections at once, each booking its own practitioner: all AA', async () => {
        const before = await raw(server, 'GET', '/metrics');
        assert.equal(before.status, 200);
        const aaBefore = Number(/fhirsched_hl7_inbound_messages_total\{ack="AA"\} (\d+)/.exec(before.text)?.[1] ?? NaN);
        const t = interval();
        const list = Array.from({ length: 50 }, (_, n) => ids(`k${n}`));
        const msgs = list.map((i) => siu({ ...i, ...t }));
        const conns = await Promise.all(msgs.map(() => mllpConnect(port)));
        try {
            const acks = await Promise.all(conns.map((c, n) => c.send(msgs[n], { timeoutMs: 45_000 })));
            acks.forEach((a, n) => expectAck(a, msgs[n], 'AA'));
        } finally {
            for (const c of conns) c.close();
        }
        const found = await Promise.all(list.map((i) => search('Appointment', `urn:fhirsched:hl7v2:EHR|${i.filler}`)));
        assert.ok(found.every((f) => f.length === 1 && f[0].status === 'booked'), 'fifty Appointments');
        const after = await raw(server, 'GET', '/metrics');
        const aaAfter = Number(/fhirsched_hl7_inbound_messages_total\{ack="AA"\} (\d+)/.exec(after.text)?.[1] ?? NaN);
        assert.ok(aaAfter - aaBefore >= 50, `fhirsched_hl7_inbound_messages_total{ack="AA"} went from ${aaBefore} to ${aaAfter}`);
        // the connections are closed again
        const deadline = Date.now() + 10_000;
        for (;;) {
            const m = await raw(server, 'GET', '/metrics');
            const open = Number(/^fhirsched_hl7_inbound_connections (\d+)/m.exec(m.text)?.[1] ?? NaN);
            if (open === 0) break;
            assert.ok(Date.now() < deadline, `fhirsched_hl7_inbound_connections still ${open}`);
            await sleep(100);
        }
    });

    // -----------------------------------------------------------------------
    // The operator view

    it('$hl7-messages filters by status, control id, sender and time, newest first, with _count', async () => {
        const t0 = new Date(Date.now() - 1000).toISOString();
        const app = `VIEW${uniq('').replace(/-/g, '')}`;
        const msgs = [];
        for (let n = 0; n < 3; n++) {
            const i = ids(`view${n}`);
            const m = siu({ ...i, ...interval(), app, event: n === 1 ? 'S15' : 'S12' });
            await send(m);
            msgs.push(m);
        }
        const all = await records(`sender=${enc(`${app}|MAIN`)}`);
        assert.deepEqual(all.map((r) => r.controlId), msgs.map((m) => get(m, 'MSH-10')).reverse(), 'newest first');
        assert.deepEqual(all.map((r) => r.status), ['applied', 'review', 'applied']);
        const review = await records(`sender=${enc(`${app}|MAIN`)}&status=review`);
        assert.deepEqual(review.map((r) => r.controlId), [get(msgs[1], 'MSH-10')]);
        assert.equal((await records(`sender=${enc(`${app}|MAIN`)}&_count=2`)).length, 2);
        assert.equal((await records(`sender=${enc(`${app}|MAIN`)}&since=${enc(t0)}`)).length, 3);
        assert.equal((await records(`sender=${enc(`${app}|MAIN`)}&since=${enc(new Date(Date.now() + 3600_000).toISOString())}`)).length, 0);
        for (const r of all) {
            assert.ok(r.id !== undefined && r.received, JSON.stringify(r));
            assert.match(r.type, /^SIU\^S1[25]$/);
            assert.equal(r.sender, `${app}|MAIN`);
            assert.ok(r.raw?.startsWith('MSH|'));
        }
        const bad = await fhir(server, 'GET', '/$hl7-messages?since=yesterday');
        assert.equal(bad.status, 400);
    });
});

describe('HL7 v2 inbound: idle connections', () => {
    // a server of its own: a short hl7.idle_timeout_ms must not race the other tests' slow moments
    let server, port;
    before(async () => {
        port = await freePort();
        server = await startServer({ env: { FHIRSCHED_HL7_LISTEN: `127.0.0.1:${port}`, FHIRSCHED_HL7_IDLE_TIMEOUT_MS: String(IDLE_MS) } });
    });
    after(() => server?.stop());

    it('a connection with nothing to say for hl7.idle_timeout_ms is closed', async () => {
        const c = await mllpConnect(port);
        const t0 = Date.now();
        try {
            assert.equal(await c.waitClosed(IDLE_MS + 10_000), 'closed', `closed after about ${IDLE_MS} ms of silence`);
            assert.ok(Date.now() - t0 >= IDLE_MS - 500, `not before the idle timeout (${Date.now() - t0} ms)`);
        } finally {
            c.destroy();
        }
    });

    it('a connection that keeps talking stays open past hl7.idle_timeout_ms', async () => {
        const c = await mllpConnect(port);
        try {
            const t0 = Date.now();
            while (Date.now() - t0 < IDLE_MS * 2.5) {
                const msg = adt('A28', `PID|1||${uniq('IDLE')}^^^MAIN^MR||Busy^Bea`);
                expectAck(await c.send(msg), msg, 'AA');
                await sleep(200);
            }
            assert.equal(c.closed, false);
        } finally {
            c.close();
        }
    });
});

describe('HL7 v2 inbound with authorization', () => {
    let server, port;
    before(async () => {
        port = await freePort();
        server = await startAuthServer({ keys: makeKeys(), env: { FHIRSCHED_HL7_LISTEN: `127.0.0.1:${port}` } });
    });
    after(() => server?.stop());

    it('$hl7-messages and $hl7-outbox: 403 for a receptionist, 200 for a clinic-admin', async () => {
        const receptionist = api(server, tokenFor('receptionist', { server }));
        const admin = api(server, tokenFor('clinic-admin', { server }));
        for (const p of ['/$hl7-messages', '/$hl7-messages?status=review', '/$hl7-outbox', '/$hl7-outbox?state=parked']) {
            const r = await receptionist.get(p);
            assert.equal(r.status, 403, `receptionist ${p}: ${r.text}`);
            const a = await admin.get(p);
            assert.equal(a.status, 200, `clinic-admin ${p}: ${a.text}`);
            assert.equal(a.json.resourceType, 'Parameters');
        }
        const retry = await receptionist.post('/$hl7-outbox-retry', { resourceType: 'Parameters', parameter: [{ name: 'id', valueInteger: 1 }] });
        assert.equal(retry.status, 403);
    });

    it('an inbound message is audited in its transaction, with the HL7 sender as agent and hl7:<MSH-10> as request id', async () => {
        const i = ids('aud');
        const msg = siu({ ...i, ...interval() });
        expectAck(await mllpSend(port, msg), msg, 'AA');
        const admin = api(server, tokenFor('system-admin', { server }));
        const events = await auditsFor(admin, `hl7:${get(msg, 'MSH-10')}`, { timeoutMs: 5000 });
        assert.ok(events.length >= 1, 'AuditEvents with request id hl7:<MSH-10>');
        const text = JSON.stringify(events);
        assert.ok(text.includes('HL7 v2 sender EHR|MAIN'), `agent names the sender: ${text.slice(0, 2000)}`);
        assert.ok(events.some((e) => e.entity?.some((en) => /^Appointment\//.test(en.what?.reference || ''))), 'the Appointment write is audited');
    });
});
