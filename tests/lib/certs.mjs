// Test certificates made with the openssl CLI: a private CA and a server certificate it signed.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** A private CA and a server certificate it signed for 127.0.0.1 and localhost; returns the file names. */
export function makeCertificates(dir) {
    const f = (name) => path.join(dir, name);
    const openssl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2',
        '-subj', '/CN=fhirsched test CA', '-addext', 'basicConstraints=critical,CA:TRUE',
        '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
    // RSA on purpose: with an ECDSA certificate the RSA-key-exchange ciphers below would fail for another reason.
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('key.pem'), '-out', f('server.csr'), '-subj', '/CN=localhost');
    fs.writeFileSync(f('server.ext'), [
        'basicConstraints=CA:FALSE',
        'keyUsage=critical,digitalSignature,keyEncipherment',
        'extendedKeyUsage=serverAuth',
        'subjectAltName=IP:127.0.0.1,DNS:localhost',
        '',
    ].join('\n'));
    openssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial',
        '-out', f('cert.pem'), '-days', '1', '-extfile', f('server.ext'));
    return { ca: f('ca.pem'), cert: f('cert.pem'), key: f('key.pem') };
}

