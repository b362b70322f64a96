// MLLP over TLS (docs/hl7v2.md, "Listener": hl7.tls_cert_file / hl7.tls_key_file): a Node TLS client that trusts a
// private test CA sends an SIU^S12 and gets its ACK; a plain-TCP sender on the TLS port gets nothing and costs only its
// connection; a certificate without its key stops start-up with a message naming the settings.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { makeCertificates } from '../lib/certs.mjs';
import { fhir, freePort, serverBinary, startServer } from '../lib/harness.mjs';

const VT = '\x0b';
const FS_CR = '\x1c\r';

/** Sends one framed message over `socket` and resolves with the first framed answer (or null when the peer closes). */
function exchange(socket, message) {
    return new Promise((resolve, reject) => {
        let buf = '';
        const timer = setTimeout(() => reject(new Error('no answer within 10 s')), 10_000);
        socket.setEncoding('utf8');
        socket.on('data', (d) => {
            buf += d;
            const end = buf.indexOf(FS_CR);
            if (end >= 0) {
                clearTimeout(timer);
                resolve(buf.slice(buf.indexOf(VT) + 1, end));
            }
        });
        socket.on('close', () => {
            clearTimeout(timer);
            resolve(null);
        });
        socket.on('error', () => {});
        socket.write(VT + message + FS_CR);
    });
}

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
        const socket = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(files.ca), servername: 'localhost' });
        await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
        const ack = await exchange(socket, siu('TLS-1'));
        socket.destroy();
        assert.ok(ack, 'an ACK came back');
        assert.match(ack, /\rMSA\|AA\|TLS-1(\r|$)/);
        const found = await fhir(server, 'GET', '/Appointment?identifier=TLS-F1');
        assert.equal(found.status, 200);
        assert.equal(found.json.entry?.length, 1);
        assert.equal(found.json.entry[0].resource.status, 'booked');
        assert.equal(found.json.entry[0].resource.start, '2027-02-01T09:00:00Z');
    });

    it('answers nothing to plain MLLP on the TLS port, and keeps serving TLS clients', async () => {
        const plain = net.connect({ host: '127.0.0.1', port });
        await new Promise((resolve, reject) => plain.once('connect', resolve).once('error', reject));
        const answer = await exchange(plain, siu('TLS-PLAIN'));
        assert.equal(answer, null, 'the server closed the connection without an ACK');
        const socket = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(files.ca), servername: 'localhost' });
        await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
        const ack = await exchange(socket, siu('TLS-2'));
        socket.destroy();
        assert.match(ack, /\rMSA\|AA\|TLS-2(\r|$)/);
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
