// MLLP over TLS (docs/hl7v2.md, "Listener": hl7.tls_cert_file / hl7.tls_key_file): a Node TLS client that trusts a
// private test CA sends an SIU^S12 and gets its ACK; a plain-TCP sender on the TLS port gets nothing and costs only its
// connection; a certificate without its key stops start-up with a message naming the settings.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeCertificates } from '../lib/certs.mjs';
import { fhir, freePort, serverBinary, startServer } from '../lib/harness.mjs';
import { get, mllpConnect } from '../lib/mllp.mjs';

const siu = (control) =>
    [
        `MSH|^~\\&|TLSAPP|TLSFAC|FHIRSCHED|CLINIC|20270101||SIU^S12^SIU_S12|${control}|P|2.5.1`,
        'SCH|TLS-P1|TLS-F1',
        'TQ1|1||||||202702010900+0000|202702010930+0000',
        'PID|1||TLS-PAT-1^^^TLSFAC^MR||Secure^Sam',
        'RGS|1|A',
        'AIP|1|A|TLS-DR1^Vault^Vera',
    ].join('\r');

describe('MLLP over TLS', () => {
    let dir, files, server, port;

    before(async () => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhirsched-hl7-tls-'));
        files = makeCertificates(dir);
        port = await freePort();
        server = await startServer({
            env: {
                FHIRSCHED_HL7_LISTEN: `127.0.0.1:${port}`,
                FHIRSCHED_HL7_TLS_CERT_FILE: files.cert,
                FHIRSCHED_HL7_TLS_KEY_FILE: files.key,
            },
        });
    });

    after(async () => {
        await server?.stop();
        if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it('acknowledges an SIU^S12 sent over TLS and applies it', async () => {
        const client = await mllpConnect(port, { tls: { ca: fs.readFileSync(files.ca), servername: 'localhost' } });
        const ack = await client.send(siu('TLS-1'));
        client.close();
        assert.equal(get(ack, 'MSA-1'), 'AA');
        assert.equal(get(ack, 'MSA-2'), 'TLS-1');
        const found = await fhir(server, 'GET', '/Appointment?identifier=TLS-F1');
        assert.equal(found.status, 200);
        assert.equal(found.json.entry?.length, 1);
        assert.equal(found.json.entry[0].resource.status, 'booked');
        assert.equal(found.json.entry[0].resource.start, '2027-02-01T09:00:00Z');
    });

    it('answers nothing to plain MLLP on the TLS port, and keeps serving TLS clients', async () => {
        const plain = await mllpConnect(port);
        await assert.rejects(plain.send(siu('TLS-PLAIN'), { timeoutMs: 10_000 }), /closed before an ACK came/);
        plain.close();
        const client = await mllpConnect(port, { tls: { ca: fs.readFileSync(files.ca), servername: 'localhost' } });
        const ack = await client.send(siu('TLS-2'));
        client.close();
        assert.equal(get(ack, 'MSA-1'), 'AA');
        const none = await fhir(server, 'GET', '/$hl7-messages?control-id=TLS-PLAIN');
        assert.equal(none.status, 200);
        assert.equal(none.json.parameter?.length ?? 0, 0, 'the plain-text message was never read');
    });

    it('refuses to start with a certificate but no key', () => {
        const r = spawnSync(serverBinary(), ['serve'], {
            env: {
                ...process.env,
                FHIRSCHED_HL7_LISTEN: '127.0.0.1:1',
                FHIRSCHED_HL7_TLS_CERT_FILE: files.cert,
                FHIRSCHED_AUTH_ENABLED: 'false',
                FHIRSCHED_DATABASE_URL: 'postgresql://nobody@127.0.0.1:1/none',
            },
            encoding: 'utf8',
            timeout: 20_000,
        });
        assert.notEqual(r.status, 0);
        assert.match(r.stderr, /hl7\.tls_cert_file and hl7\.tls_key_file must be set together/);
    });
});
