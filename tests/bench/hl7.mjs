// Scenario 6: HL7 v2 SIU^S12 ingest over MLLP (docs/hl7v2.md). wrk cannot speak MLLP, so this keeps `connections`
// MLLP connections, each sending its next message as soon as the ACK of the previous one arrived (the server ACKs after
// the commit), for `seconds`. Every message books a new 30-minute appointment for a seeded patient (PID-3 in the
// seeded identifier system) with one of 20 HL7 practitioners, at a time no other message uses, so all should be AA.
import { controlId, get, hl7Time, mllpConnect } from '../lib/mllp.mjs';
import { quantile, round } from './tools.mjs';

const DAY0 = Date.UTC(2031, 0, 6, 8); // a Monday, years from the other scenarios' days
const HALF_HOUR = 30 * 60_000;

/** The k-th S12 (k >= 0): practitioner k mod 20, and the k-th half hour of that practitioner's own sequence. */
function s12(k) {
    const start = new Date(DAY0 + Math.floor(k / 20) * HALF_HOUR);
    const end = new Date(start.getTime() + HALF_HOUR);
    const id = `BENCH${k}`;
    return [
        `MSH|^~\\&|BENCHEHR|BENCH|FHIRSCHED|CLINIC|${hl7Time()}||SIU^S12^SIU_S12|${controlId('B')}|P|2.5.1`,
        `SCH|${id}^BENCHEHR|${id}^BENCHEHR|||||CHK^Check-up^LOCAL|ROUTINE^Routine visit^HL70276|30|min`,
        `TQ1|1||||||${hl7Time(start)}|${hl7Time(end)}`,
        `PID|1||P${k % 200}^^^&urn:bench&URI^MR||Patient${k % 200}^Bench||19700101|F`,
        'RGS|1|A',
        'AIS|1|A|11429006^Consultation^SCT',
        `AIP|1|A|HL7DR${k % 20}^Seven^Sam^^^^^^BENCH|D^Doctor`,
    ].join('\r');
}

/**
 * Runs the ingest against the MLLP listener on `port`; resolves with messages/s, send -> ACK latency percentiles (ms),
 * the AA count and errors (any other ACK code, and connection failures).
 */
export async function benchHl7({ port, seconds, connections = 8 }) {
    const clients = await Promise.all(Array.from({ length: connections }, () => mllpConnect(port)));
    const latencies = [];
    const codes = {};
    let next = 0;
    let socketErrors = 0;
    const t0 = performance.now();
    const deadline = t0 + seconds * 1000;
    await Promise.all(
        clients.map(async (c) => {
            while (performance.now() < deadline) {
                const sent = performance.now();
                try {
                    const ack = await c.send(s12(next++), { timeoutMs: 30_000 });
                    latencies.push(performance.now() - sent);
                    const code = get(ack, 'MSA-1');
                    codes[code] = (codes[code] || 0) + 1;
                } catch {
                    socketErrors++;
                    return;
                }
            }
        }),
    );
    const elapsed = (performance.now() - t0) / 1000;
    for (const c of clients) c.close();
    const acked = latencies.length;
    return {
        rps: round(acked / elapsed, 0),
        p50_ms: round(quantile(latencies, 0.5)),
        p99_ms: round(quantile(latencies, 0.99)),
        p999_ms: round(quantile(latencies, 0.999)),
        errors: acked - (codes.AA || 0) + socketErrors,
        unit: 'messages/s',
        connections,
        ack_codes: codes,
    };
}
