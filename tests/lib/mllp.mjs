// MLLP and ER7 helpers of the HL7 v2 suites (docs/hl7v2.md), over real sockets.
//
// Client: one connection to an MLLP listener (plain TCP or TLS). Messages are framed 0x0B message 0x1C 0x0D; ACKs are
// collected in the order they arrive.
//
//   const c = await mllpConnect(port);                  // or mllpConnect(port, { tls: { ca } })
//   const ack = await c.send(msg);                      // one message, its ACK (a string)
//   const ack2 = await c.send(msg, { byteByByte: true }); // written one byte per write
//   const acks = await c.sendMany([m1, m2, m3]);        // all in one write, ACKs in order
//   c.writeRaw(Buffer.from('garbage')); await c.waitClosed(5000);
//   c.close();
//   const ack = await mllpSend(port, msg);              // connect, send, close
//   const acks = await mllpSend(port, [m1, m2]);        // several on one connection, one write
//
// Messages are strings (sent as UTF-8, or latin1 with { encoding: 'latin1' }) or Buffers (sent as they are). ACKs come
// back as strings decoded as UTF-8 (or { encoding: 'latin1' }); { raw: true } gives the Buffer between the framing
// bytes instead.
//
// Receiver: a legacy system's MLLP listener for outbound tests. It records every message it receives and answers each
// with an ACK whose MSA-1 is the configured code: 'AA', 'AE', 'AR', or null (no answer at all), fixed or decided per
// message. stop() closes the port and every connection; start() listens again on the same port.
//
//   const r = await startMllpReceiver();                // { port: 0 } picks a free port; { ack: 'AR' } or (msg, i) => code
//   r.setAck('AR'); r.setAck((text, i) => (i === 0 ? null : 'AA'));
//   const m = await r.waitFor((text) => text.includes('SIU^S12'), 'the S12', 10_000);
//   await r.stop(); await r.start();
//
// ER7: get(msg, 'MSA-1'), get(msg, 'MSH-9.2'), get(msg, 'PID-3[2].4.2'), getAll(msg, 'ERR-3.1'), segments(msg),
// fromTemplate(text, vars) (fresh {{control}} and {{now}}), hl7Time(date), controlId(prefix).

import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';

export const VT = 0x0b;
export const FS = 0x1c;
export const CR = 0x0d;

const toBuffer = (message, encoding = 'utf8') => (Buffer.isBuffer(message) ? message : Buffer.from(message, encoding));

/** The MLLP frame of `message` (string or Buffer). */
export function frame(message, { encoding = 'utf8' } = {}) {
    return Buffer.concat([Buffer.from([VT]), toBuffer(message, encoding), Buffer.from([FS, CR])]);
}

/**
 * Incremental de-framer: push() bytes as they arrive, get back the complete frames' contents (Buffers). Bytes before
 * a start block are counted in `outside` (a receiver may treat them as garbage).
 */
export class Deframer {
    constructor() {
        this.buf = Buffer.alloc(0);
        this.outside = 0;
    }

    push(data) {
        this.buf = this.buf.length ? Buffer.concat([this.buf, data]) : Buffer.from(data);
        const out = [];
        for (;;) {
            const start = this.buf.indexOf(VT);
            if (start < 0) {
                this.outside += this.buf.filter((b) => b !== CR && b !== 0x0a && b !== 0x20).length;
                this.buf = Buffer.alloc(0);
                break;
            }
            if (start > 0) {
                this.outside += this.buf.subarray(0, start).filter((b) => b !== CR && b !== 0x0a && b !== 0x20).length;
                this.buf = this.buf.subarray(start);
            }
            let end = -1;
            for (let i = 1; i + 1 < this.buf.length; i++) {
                if (this.buf[i] === FS && this.buf[i + 1] === CR) {
                    end = i;
                    break;
                }
            }
            if (end < 0) break;
            out.push(Buffer.from(this.buf.subarray(1, end)));
            this.buf = this.buf.subarray(end + 2);
        }
        return out;
    }
}

// ---------------------------------------------------------------------------
// Client

/**
 * Opens one MLLP connection to host:port (default 127.0.0.1); `tls: { ca, servername, cert, key }` for MLLP over
 * TLS. Resolves when connected (TLS: after the handshake).
 */
export function mllpConnect(port, { host = '127.0.0.1', tls: tlsOpts, connectTimeoutMs = 10_000 } = {}) {
    return new Promise((resolve, reject) => {
        const socket = tlsOpts
            ? tls.connect({ host, port, servername: tlsOpts.servername ?? (net.isIP(host) ? undefined : host), ...tlsOpts })
            : net.connect({ host, port });
        const timer = setTimeout(() => {
            socket.destroy();
            reject(new Error(`MLLP connect to ${host}:${port} timed out after ${connectTimeoutMs} ms`));
        }, connectTimeoutMs);
        const onError = (e) => {
            clearTimeout(timer);
            reject(e);
        };
        socket.once('error', onError);
        socket.once(tlsOpts ? 'secureConnect' : 'connect', () => {
            clearTimeout(timer);
            socket.off('error', onError);
            socket.setNoDelay(true);
            resolve(makeClient(socket, `${host}:${port}`));
        });
    });
}

function makeClient(socket, where) {
    const deframer = new Deframer();
    const frames = []; // received, not yet taken
    const waiters = []; // resolve functions of nextFrame()
    const received = []; // every frame ever received (Buffers)
    let closed = false;
    let error = null;
    let closeResolve;
    const closedP = new Promise((r) => {
        closeResolve = r;
    });
    const wake = () => {
        for (const w of waiters.splice(0)) w();
    };
    socket.on('data', (d) => {
        for (const f of deframer.push(d)) {
            frames.push(f);
            received.push(f);
        }
        wake();
    });
    socket.on('error', (e) => {
        error = e;
    });
    socket.on('close', () => {
        closed = true;
        closeResolve(error ? `closed (${error.code || error.message})` : 'closed');
        wake();
    });

    const decode = (buf, { raw = false, encoding = 'utf8' } = {}) => (raw ? buf : buf.toString(encoding));

    async function nextFrame(timeoutMs) {
        const deadline = Date.now() + timeoutMs;
        while (!frames.length) {
            if (closed) throw new Error(`MLLP connection to ${where} closed before an ACK came (${received.length} received)${error ? `: ${error.message}` : ''}`);
            const left = deadline - Date.now();
            if (left <= 0) throw new Error(`no ACK from ${where} within ${timeoutMs} ms (${received.length} received so far)`);
            await new Promise((resolve) => {
                const t = setTimeout(resolve, left);
                waiters.push(() => {
                    clearTimeout(t);
                    resolve();
                });
            });
        }
        return frames.shift();
    }

    async function writeBytes(buf, byteByByte) {
        if (!byteByByte) {
            socket.write(buf);
            return;
        }
        for (const b of buf) {
            if (closed) return;
            socket.write(Buffer.from([b]));
            // let the byte leave as its own segment
            await new Promise((r) => setImmediate(r));
        }
    }

    const client = {
        socket,
        /** Every frame received on this connection so far (Buffers). */
        received,
        get closed() {
            return closed;
        },
        /** Sends one message; resolves with its ACK. opts: byteByByte, encoding (of a string message and of the ACK), raw, timeoutMs. */
        async send(message, opts = {}) {
            const { byteByByte = false, encoding = 'utf8', timeoutMs = 20_000 } = opts;
            await writeBytes(frame(message, { encoding }), byteByByte);
            return decode(await nextFrame(timeoutMs), opts);
        },
        /** Sends several messages in one write (between: `separator` bytes, e.g. '\r\n'); resolves with their ACKs in order. */
        async sendMany(messages, opts = {}) {
            const { encoding = 'utf8', timeoutMs = 30_000, separator = '' } = opts;
            const parts = [];
            messages.forEach((m, i) => {
                if (i && separator) parts.push(Buffer.from(separator, 'latin1'));
                parts.push(frame(m, { encoding }));
            });
            await writeBytes(Buffer.concat(parts), opts.byteByByte);
            const acks = [];
            for (let i = 0; i < messages.length; i++) acks.push(decode(await nextFrame(timeoutMs), opts));
            return acks;
        },
        /** Writes bytes as they are (no framing). */
        writeRaw(bytes, { encoding = 'latin1' } = {}) {
            socket.write(toBuffer(bytes, encoding));
        },
        /** The next ACK (or any frame) received. */
        async nextAck(opts = {}) {
            return decode(await nextFrame(opts.timeoutMs ?? 20_000), opts);
        },
        /** Resolves with 'closed' when the peer closed the connection, 'open' if it is still open after timeoutMs. */
        waitClosed(timeoutMs = 10_000) {
            return Promise.race([closedP, new Promise((r) => setTimeout(() => r('open'), timeoutMs).unref())]);
        },
        close() {
            if (!closed) socket.end();
            setTimeout(() => socket.destroy(), 1000).unref();
        },
        destroy() {
            socket.destroy();
        },
    };
    return client;
}

/**
 * Connects, sends `messages` (one message, or an array sent in one write), closes. Resolves with the ACK (or the
 * array of ACKs). opts as in mllpConnect() and send().
 */
export async function mllpSend(port, messages, opts = {}) {
    const c = await mllpConnect(port, opts);
    try {
        return Array.isArray(messages) ? await c.sendMany(messages, opts) : await c.send(messages, opts);
    } finally {
        c.close();
    }
}

// ---------------------------------------------------------------------------
// Receiver

/**
 * A legacy system's MLLP listener. ack: 'AA' | 'AE' | 'AR' | null (no answer) | (text, index, record) => one of those.
 * Returns { port, messages, texts(), setAck(), waitFor(), stop(), start(), restart(), connections, listening }.
 * Each message record: { text, raw (Buffer), at (ms), connection (number), acked (code or null) }.
 */
export async function startMllpReceiver({ port = 0, host = '127.0.0.1', ack = 'AA', encoding = 'utf8' } = {}) {
    let answer = ack;
    let server = null;
    let connSeq = 0;
    const sockets = new Set();
    const waiters = [];
    const wake = () => {
        for (const w of waiters.splice(0)) w();
    };
    const r = {
        port,
        host,
        messages: [],
        /** Connections accepted so far (a count). */
        connections: 0,
        /** Bytes received outside frames. */
        garbage: 0,
        get listening() {
            return server !== null;
        },
        texts: () => r.messages.map((m) => m.text),
        setAck(a) {
            answer = a;
        },
        /** Waits until predicate(text, record) holds for a received message; resolves with that record's text. */
        async waitFor(predicate, what = 'a matching message', timeoutMs = 15_000) {
            if (typeof what === 'number') [what, timeoutMs] = ['a matching message', what];
            const deadline = Date.now() + timeoutMs;
            for (;;) {
                const found = r.messages.find((m) => predicate(m.text, m));
                if (found) return found.text;
                const left = deadline - Date.now();
                if (left <= 0) {
                    const got = r.messages.map((m) => `  ${get(m.text, 'MSH-9')} ${get(m.text, 'MSH-10')} SCH-2=${get(m.text, 'SCH-2')}`).join('\n');
                    throw new Error(`receiver on ${r.port}: no ${what} within ${timeoutMs} ms; got ${r.messages.length}:\n${got}`);
                }
                await new Promise((resolve) => {
                    const t = setTimeout(resolve, Math.min(left, 200));
                    waiters.push(() => {
                        clearTimeout(t);
                        resolve();
                    });
                });
            }
        },
        /** Waits until predicate(messages) holds (for counts). */
        async waitUntil(predicate, what = 'condition', timeoutMs = 15_000) {
            const deadline = Date.now() + timeoutMs;
            for (;;) {
                if (predicate(r.messages)) return r.messages;
                const left = deadline - Date.now();
                if (left <= 0) {
                    const got = r.messages.map((m) => `  ${get(m.text, 'MSH-9')} ${get(m.text, 'MSH-10')} SCH-2=${get(m.text, 'SCH-2')}`).join('\n');
                    throw new Error(`receiver on ${r.port}: ${what} did not happen within ${timeoutMs} ms; got ${r.messages.length}:\n${got}`);
                }
                await new Promise((resolve) => {
                    const t = setTimeout(resolve, Math.min(left, 200));
                    waiters.push(() => {
                        clearTimeout(t);
                        resolve();
                    });
                });
            }
        },
        async start() {
            if (server) return;
            const srv = net.createServer((socket) => {
                const conn = ++connSeq;
                r.connections++;
                sockets.add(socket);
                socket.on('close', () => sockets.delete(socket));
                socket.on('error', () => {});
                const deframer = new Deframer();
                socket.on('data', (d) => {
                    const before = deframer.outside;
                    for (const buf of deframer.push(d)) {
                        const text = buf.toString(encoding);
                        const rec = { text, raw: buf, at: Date.now(), connection: conn, acked: null };
                        const index = r.messages.length;
                        r.messages.push(rec);
                        const code = typeof answer === 'function' ? answer(text, index, rec) : answer;
                        if (code) {
                            rec.acked = code;
                            socket.write(frame(ackFor(text, code, `R${index + 1}`), { encoding }));
                        }
                    }
                    r.garbage += deframer.outside - before;
                    wake();
                });
            });
            for (let attempt = 0; ; attempt++) {
                try {
                    await new Promise((resolve, reject) => {
                        srv.once('error', reject);
                        srv.listen(r.port, host, () => {
                            srv.off('error', reject);
                            resolve();
                        });
                    });
                    break;
                } catch (e) {
                    // the same port again right after stop(): it may take a moment to be free
                    if (e.code !== 'EADDRINUSE' || attempt >= 100 || !r.port) throw e;
                    await new Promise((res) => setTimeout(res, 50));
                }
            }
            server = srv;
            r.port = srv.address().port;
        },
        /** Stops listening and drops every connection (the port stays reserved for start()). */
        async stop() {
            if (!server) return;
            const srv = server;
            server = null;
            for (const s of sockets) s.destroy();
            await new Promise((resolve) => srv.close(() => resolve()));
        },
        async restart() {
            await r.stop();
            await r.start();
        },
    };
    await r.start();
    return r;
}

/** An original-mode ACK for `message` with MSA-1 `code`, using the message's delimiters. */
export function ackFor(message, code, control = `A${Date.now()}`) {
    const { fs, enc } = delimitersOf(message);
    const f = (n) => get(message, `MSH-${n}`) ?? '';
    const event = get(message, 'MSH-9.2') ?? '';
    const lines = [
        ['MSH', enc, f(5), f(6), f(3), f(4), hl7Time(new Date()), '', `ACK${enc[0]}${event}${enc[0]}ACK`, control, 'P', f(12)].join(fs),
        ['MSA', code, f(10)].join(fs),
    ];
    if (code !== 'AA' && code !== 'CA') lines.push(['ERR', '', '', `207${enc[0]}test receiver says ${code}${enc[0]}HL70357`, 'E'].join(fs));
    return `${lines.join('\r')}\r`;
}

// ---------------------------------------------------------------------------
// ER7

/** Segments of a message (split on \r, \n or \r\n; empty lines dropped). */
export function segments(message) {
    const text = Buffer.isBuffer(message) ? message.toString('latin1') : message;
    return text.split(/\r\n|\r|\n/).filter((s) => s.length > 0);
}

/** The delimiters of a message: { fs, enc } where enc is MSH-2 (component, repetition, escape, subcomponent). */
export function delimitersOf(message) {
    const first = segments(message)[0] || '';
    if (!first.startsWith('MSH') || first.length < 8) return { fs: '|', enc: '^~\\&' };
    const fs = first[3];
    const rest = first.slice(4);
    const end = rest.indexOf(fs);
    return { fs, enc: end < 0 ? rest : rest.slice(0, end) };
}

/** The fields of one segment line, numbered as HL7 numbers them: fields[n] is SEG-n (MSH-1 is the field separator). */
export function fieldsOf(line, { fs = '|' } = {}) {
    const parts = line.split(fs);
    if (parts[0] === 'MSH' || parts[0] === 'FHS' || parts[0] === 'BHS') return [parts[0], fs, ...parts.slice(1)];
    return parts;
}

/**
 * Parses a path: 'SEG-n', 'SEG-n.c', 'SEG-n.c.s', with optional [k] (1-based) after SEG (k-th such segment) and after
 * n (k-th repetition; default the first for components, the whole field otherwise).
 */
function parsePath(path) {
    const m = /^([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?-(\d+)(?:\[(\d+)\])?(?:\.(\d+))?(?:\.(\d+))?$/.exec(path);
    if (!m) throw new Error(`bad ER7 path ${path}`);
    return {
        seg: m[1],
        segIndex: m[2] ? Number(m[2]) : null,
        field: Number(m[3]),
        rep: m[4] ? Number(m[4]) : null,
        comp: m[5] ? Number(m[5]) : null,
        sub: m[6] ? Number(m[6]) : null,
    };
}

function pick(line, p, delims) {
    const { fs, enc } = delims;
    const fields = fieldsOf(line, { fs });
    let v = fields[p.field];
    if (v === undefined) return undefined;
    if (p.seg === 'MSH' && p.field <= 2) return v;
    if (p.rep !== null || p.comp !== null) {
        v = v.split(enc[1])[(p.rep ?? 1) - 1];
        if (v === undefined) return undefined;
    }
    if (p.comp !== null) {
        v = v.split(enc[0])[p.comp - 1];
        if (v === undefined) return undefined;
    }
    if (p.sub !== null) {
        v = v.split(enc[3])[p.sub - 1];
    }
    return v;
}

/** The raw (still escaped) value at `path` ('MSA-1', 'MSH-9.2', 'ERR[2]-3.1', 'PID-3[2].1') or undefined. */
export function get(message, path) {
    const p = parsePath(path);
    const delims = delimitersOf(message);
    const lines = segments(message).filter((l) => l.slice(0, 3) === p.seg && (l.length === 3 || l[3] === delims.fs));
    const line = lines[(p.segIndex ?? 1) - 1];
    if (!line) return undefined;
    return pick(line, p, delims);
}

/** The values at `path` in every segment of that type ('ERR-3.1' of each ERR). */
export function getAll(message, path) {
    const p = parsePath(path);
    const delims = delimitersOf(message);
    return segments(message)
        .filter((l) => l.slice(0, 3) === p.seg && (l.length === 3 || l[3] === delims.fs))
        .map((l) => pick(l, p, delims));
}

/** The segment lines whose name is `name`. */
export function segmentsNamed(message, name) {
    return segments(message).filter((l) => l.startsWith(name));
}

/** An HL7 DTM of `date` in UTC with seconds and an explicit +0000 (or `offsetMinutes` east of UTC, or no offset with offsetMinutes: null). */
export function hl7Time(date = new Date(), { offsetMinutes = 0 } = {}) {
    const d = new Date((date instanceof Date ? date.getTime() : Date.parse(date)) + (offsetMinutes ?? 0) * 60_000);
    const p = (n, w = 2) => String(n).padStart(w, '0');
    const s = `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}`;
    if (offsetMinutes === null) return s;
    const sign = offsetMinutes < 0 ? '-' : '+';
    const a = Math.abs(offsetMinutes);
    return `${s}${sign}${p(Math.floor(a / 60))}${p(a % 60)}`;
}

let seq = 0;
const runTag = randomBytes(3).toString('hex');
/** A control id unique in this process run (at most 20 characters, as HL7 v2.5 allows for MSH-10). */
export function controlId(prefix = 'C') {
    return `${prefix}${runTag}${(++seq).toString(36)}`.slice(-20);
}

/**
 * A message from a template: {{name}} placeholders are replaced by vars[name]; {{control}} (a fresh control id unless
 * given) and {{now}} (the current time as an HL7 DTM unless given) are always available. Line breaks become \r.
 */
export function fromTemplate(template, vars = {}) {
    const all = { control: controlId(), now: hl7Time(new Date()), ...vars };
    const text = template
        .replace(/\{\{(\w+)\}\}/g, (_, k) => {
            if (!(k in all)) throw new Error(`template variable {{${k}}} has no value`);
            return String(all[k]);
        })
        .replace(/\r\n|\n/g, '\r');
    return text;
}
