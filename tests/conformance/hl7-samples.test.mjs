// External client: Debian's `mllp_send` (python3-hl7) sends the public sample messages of conformance/hl7v2/ (mieweb
// samples and Microsoft FHIR-Converter's test data, see conformance/SOURCES.txt) to the MLLP listener; each ACK is
// checked (MSA-1, MSA-2 = the file's MSH-10) and so are the FHIR resources left behind, with the harness's
// schema-checked client. Expectations follow docs/hl7v2.md: several FHIR-Converter samples reuse one control id from
// one sender, which makes them repeats (answered with the first ACK, applied once).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { SOURCE_DIR, fhir, freePort, startServer } from '../lib/harness.mjs';
import { field } from '../lib/mllp-min.mjs';

const execFileP = promisify(execFile);
const MLLP_SEND = '/usr/bin/mllp_send';
const sample = (name) => path.join(SOURCE_DIR, 'conformance', 'hl7v2', `${name}.hl7`);

/** The file's MSH-10, as mllp_send will send it. */
const controlOf = (name) => field(fs.readFileSync(sample(name), 'latin1'), 'MSH', 10);

describe('HL7 v2 samples sent with mllp_send', () => {
    let server, port;

    /** Sends one sample file; resolves with its ACK (segments joined with \r). */
    async function send(name) {
        const { stdout } = await execFileP(MLLP_SEND, ['--loose', '-p', String(port), '-f', sample(name), '127.0.0.1'], { timeout: 30_000 });
        // mllp_send prints the answer as received, framing bytes included
        const ack = stdout.replace(/\n+$/, '').replace(/^\x0b/, '').replace(/\x1c\r?$/, '');
        assert.match(ack, /^MSH\|/, `${name}: an ACK came back`);
        assert.equal(field(ack, 'MSA', 2), controlOf(name), `${name}: MSA-2 echoes MSH-10`);
        return ack;
    }
    const one = async (type, query) => {
        const res = await fhir(server, 'GET', `/${type}?${query}`);
        assert.equal(res.status, 200);
        assert.equal(res.json.total, 1, `one ${type} for ${query}`);
        return res.json.entry[0].resource;
    };

    before(async () => {
        assert.ok(fs.existsSync(MLLP_SEND), 'mllp_send (Debian package python3-hl7) is installed');
        port = await freePort();
        server = await startServer({ env: { FHIRSCHED_HL7_LISTEN: `127.0.0.1:${port}`, FHIRSCHED_HL7_TIMEZONE: 'UTC' } });
    });
    after(() => server?.stop());

    it('mieweb v2.3: S12 books, S14 changes, S15 cancels one Appointment with SCH-11 timing', async () => {
        assert.equal(field(await send('mieweb-sample-SIU-S12-v23'), 'MSA', 1), 'AA');
        let appt = await one('Appointment', 'identifier=2196178');
        assert.equal(appt.status, 'booked');
        assert.equal(appt.start, '2011-06-17T08:45:00Z');
        assert.equal(appt.end, '2011-06-17T09:30:00Z');
        const patientRef = appt.participant.find((p) => p.actor.reference.startsWith('Patient/')).actor.reference;
        const patient = await one('Patient', 'identifier=42');
        assert.equal(`Patient/${patient.id}`, patientRef);
        assert.equal(patient.name[0].family, 'BEEBLEBROX');
        assert.equal(patient.name[0].given[0], 'ZAPHOD');
        assert.equal(patient.gender, 'male');
        assert.equal(patient.birthDate, '1978-10-12');
        const doctor = await one('Practitioner', 'identifier=1');
        assert.equal(doctor.name[0].family, 'Adams');
        assert.ok(appt.participant.some((p) => p.actor.reference === `Practitioner/${doctor.id}`));
        await one('Location', 'identifier=OFFICE');

        assert.equal(field(await send('mieweb-sample-SIU-S14-v23'), 'MSA', 1), 'AA');
        assert.equal((await one('Appointment', 'identifier=2196178')).status, 'booked');
        assert.equal(field(await send('mieweb-sample-SIU-S15-v23'), 'MSA', 1), 'AA');
        appt = await one('Appointment', 'identifier=2196178');
        assert.equal(appt.status, 'cancelled');
        assert.equal(appt.cancelationReason.text, 'Office visit');
    });

    it('mieweb v2.3: ADT A04 registers a Patient that A08 updates', async () => {
        assert.equal(field(await send('mieweb-sample-ADT-A04-v23'), 'MSA', 1), 'AA');
        let patient = await one('Patient', 'identifier=135769');
        assert.equal(patient.name[0].family, 'MOUSE');
        assert.equal(patient.address[0].city, 'Lake Buena Vista');
        assert.ok(patient.telecom.some((t) => t.system === 'email' && t.value === 'theMainMouse@disney.com'));
        assert.equal(field(await send('mieweb-sample-ADT-A08-v23'), 'MSA', 1), 'AA');
        patient = await one('Patient', 'identifier=135769');
        assert.ok(Number(patient.meta.versionId) >= 1);
    });

    it('mieweb v2.5 (another system\'s outbound SIU): S12 and S14 apply with TQ-less SCH-11 timing; S15 names an appointment we do not have (AE, kept for review)', async () => {
        const s12 = await send('mieweb-outbound-SIU-S12-v25');
        assert.equal(field(s12, 'MSA', 1), 'AA');
        assert.match(s12, /\|W\|\|\|\|booked although a scheduling rule is broken: the appointment is in the past/);
        const appt = await one('Appointment', 'identifier=2677255');
        assert.equal(appt.start, '2021-04-27T08:15:00Z');
        assert.equal(field(await send('mieweb-outbound-SIU-S14-v25'), 'MSA', 1), 'AA');
        const s15 = await send('mieweb-outbound-SIU-S15-v25');
        assert.equal(field(s15, 'MSA', 1), 'AE');
        const review = await fhir(server, 'GET', `/$hl7-messages?status=review&control-id=${controlOf('mieweb-outbound-SIU-S15-v25')}`);
        assert.equal(review.json.parameter.length, 1);
    });

    it('FHIR-Converter v2.8: TQ1 timing with offsets; a repeated control id is answered with the first ACK; S13, S14, S26, S17 follow the lifecycle', async () => {
        const first = await send('msfhirconv-SIU-S12-01');
        assert.equal(field(first, 'MSA', 1), 'AA');
        let appt = await one('Appointment', 'identifier=36996');
        assert.equal(appt.start, '2021-09-24T07:15:00Z'); // 09:30 at +02:15
        assert.equal(appt.end, '2021-09-24T08:05:00Z');
        assert.equal(appt.serviceType[0].coding[0].code, '76164006');
        assert.equal(appt.comment, 'Appointment booked for emergency procedure');
        const patient = await one('Patient', 'identifier=PATID1234');
        assert.equal(patient.name[0].family, 'EVERYMAN');
        // S12-02 comes from the same sender with the same MSH-10 (MSG00012): a repeat, not a second booking
        assert.equal(await send('msfhirconv-SIU-S12-02'), first);
        for (const name of ['msfhirconv-SIU-S13-01', 'msfhirconv-SIU-S14-01']) assert.equal(field(await send(name), 'MSA', 1), 'AA', name);
        assert.equal(field(await send('msfhirconv-SIU-S26-01'), 'MSA', 1), 'AA');
        assert.equal((await one('Appointment', 'identifier=36996')).status, 'noshow');
        assert.equal(field(await send('msfhirconv-SIU-S17-01'), 'MSA', 1), 'AA');
        appt = await one('Appointment', 'identifier=36996');
        assert.equal(appt.status, 'entered-in-error');
    });

    it('FHIR-Converter v2.8: ADT A04 registers a Patient with every PID-3 identifier; A08 updates it', async () => {
        assert.equal(field(await send('msfhirconv-ADT-A04-01'), 'MSA', 1), 'AA');
        // the SIU registered this patient already with the same PID: the ADT finds it by identifier (one Patient, no
        // change to write)
        const patient = await one('Patient', 'identifier=PATID1234');
        assert.ok(patient.identifier.some((i) => i.value === '123456789' && i.system === 'urn:fhirsched:hl7v2:USSSA'));
        assert.equal(patient.name[0].family, 'EVERYMAN');
        assert.equal(field(await send('msfhirconv-ADT-A08-02'), 'MSA', 1), 'AA');
    });
});
