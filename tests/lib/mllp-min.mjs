// A minimal MLLP client and receiver for the HL7 v2 suites (docs/hl7v2.md): framing 0x0B ... 0x1C 0x0D over real sockets.
import net from 'node:net';

const VT = 0x0b;
const FS = 0x1c;
const CR = 0x0d;

/** Splits framed bytes into complete messages (strings); returns { messages, rest }. */
function deframe(buf) {
    const messages = [];
    let start = buf.indexOf(VT);
    while (start >= 0) {
        const end = buf.indexOf(FS, start);
        if (end < 0 || end + 1 >= buf.length || buf[end + 1] !== CR) break;
        messages.push(buf.subarray(start + 1, end).toString('utf8'));
        buf = buf.subarray(end + 2);
        start = buf.indexOf(VT);
    }
    return { messages, rest: buf };
}

export const frame = (message) => Buffer.concat([Buffer.from([VT]), Buffer.from(message, 'utf8'), Buffer.from([FS, CR])]);

/** Sends `messages` on one connection to 127.0.0.1:`port` and resolves with their ACKs in order. */
export function mllpExchange(port, messages, { timeoutMs = 15_000 } = {}) {
    return new Promise((resolve, reject) => {
        const socket = net.connect({ host: '127.0.0.1', port });
        let buf = Buffer.alloc(0);
        const acks = [];
        const timer = setTimeout(() => {
            socket.destroy();
            reject(new Error(`got ${acks.length} of ${messages.length} ACKs within ${timeoutMs} ms`));
        }, timeoutMs);
        socket.on('connect', () => socket.write(Buffer.concat(messages.map(frame))));
        socket.on('data', (d) => {
            const { messages: got, rest } = deframe(Buffer.concat([buf, d]));
            buf = rest;
            acks.push(...got);
            if (acks.length === messages.length) {
                clearTimeout(timer);
                socket.end();
                resolve(acks);
            }
        });
        socket.on('error', (e) => {
            clearTimeout(timer);
            reject(e);
        });
    });
}

/** Value of field `n` of the first `segment` of an ER7 message (segments end in \r). */
export function field(message, segment, n) {
    const line = message.split(/\r\n?|\n/).find((l) => l.startsWith(`${segment}|`));
    if (!line) return undefined;
    const parts = line.split('|');
    return segment === 'MSH' ? (n === 1 ? '|' : parts[n - 1]) : parts[n];
}

/**
 * A legacy system's MLLP listener on a free port: records every message and answers it with an ACK whose MSA-1 is
 * `ack(message)` (default AA; null: no answer), on `port` (default: a free one). { port, messages, waitFor(predicate, ms), stop() }.
 */
export async function startMllpReceiver({ ack = () => 'AA', port = 0 } = {}) {
    const messages = [];
    const waiters = [];
    const sockets = new Set();
    const server = net.createServer((socket) => {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        socket.on('error', () => {});
        let buf = Buffer.alloc(0);
        socket.on('data', (d) => {
            const { messages: got, rest } = deframe(Buffer.concat([buf, d]));
            buf = rest;
            for (const m of got) {
                messages.push(m);
                for (const w of waiters.splice(0)) w();
                const code = ack(m);
                if (code) socket.write(frame(`MSH|^~\\&|LEGACY|LEGACY|FHIRSCHED|FHIRSCHED|20270101||ACK|R${messages.length}|P|2.5.1\rMSA|${code}|${field(m, 'MSH', 10)}\r`));
            }
        });
    });
    await new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, '127.0.0.1', resolve);
    });
    return {
        port: server.address().port,
        messages,
        async waitFor(predicate, ms = 10_000) {
            const deadline = Date.now() + ms;
            while (!messages.some(predicate)) {
                if (Date.now() > deadline) throw new Error(`no matching message within ${ms} ms (got ${messages.length})`);
                await new Promise((resolve) => {
                    waiters.push(resolve);
                    setTimeout(resolve, 100);
                });
            }
            return messages.find(predicate);
        },
        stop() {
            for (const s of sockets) s.destroy();
            return new Promise((resolve) => server.close(resolve));
        },
    };
}
