// Slot?schedule=…&start=ge…&start=lt… is restated by src/fhir/search.c for the Slot partition's (schedule, start)
// btree (migrations/0010, slot_schedule_start): the schedule's sort key, and the start within the window less a second.
// Those extra conditions must never change an answer. The twin of every search is the same search with the type
// modifier (schedule:Schedule=…), which the restatement leaves alone; both must find exactly the Slots that the
// definition of the date prefixes gives, on starts at the edges: a second before and at the window's bounds, with
// milliseconds, in other zones, and for every form of the schedule's reference (relative, bare id, absolute).
// The restated search is also the one whose statement each database connection keeps prepared (store.h, keep_plan):
// after five executions PostgreSQL may run it with one plan for any values, and a new connection must prepare it anew.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { create, createTestDatabase, entryIds, expectStatus, fhir, psql, sleep, startServer, uniq } from '../lib/harness.mjs';

let db;
let server;
let schedule;
let other;
const slots = new Map(); // id -> start (ms since 1970)

const STARTS = [
    '2031-03-09T23:59:59Z',
    '2031-03-10T00:00:00Z',
    '2031-03-10T00:00:00.400Z',
    '2031-03-10T09:00:00Z',
    '2031-03-10T09:00:00.999+00:00',
    '2031-03-10T10:00:00+01:00', // 09:00Z
    '2031-03-10T23:59:59Z',
    '2031-03-10T23:59:59.999Z',
    '2031-03-11T00:00:00Z',
    '2031-03-10T20:30:00-05:00', // 2031-03-11T01:30Z
];

before(async () => {
    db = await createTestDatabase();
    server = await startServer({ databaseUrl: db.url });
    const sched = await create(server, { resourceType: 'Schedule', actor: [{ display: 'ordered search' }] });
    const sched2 = await create(server, { resourceType: 'Schedule', actor: [{ display: 'another schedule' }] });
    schedule = sched.id;
    other = sched2.id;
    for (const [i, start] of STARTS.entries()) {
        const end = new Date(Date.parse(start) + 15 * 60_000).toISOString();
        for (const [s, status] of [
            [schedule, i % 3 === 0 ? 'busy' : 'free'],
            [other, 'free'],
        ]) {
            const slot = await create(server, { resourceType: 'Slot', identifier: [{ value: uniq('ord') }], schedule: { reference: `Schedule/${s}` }, status, start, end });
            if (s === schedule) slots.set(slot.id, { start: Date.parse(start), width: start.includes('.') ? 1 : 1000, status });
        }
    }
});
after(async () => {
    await server?.stop();
    await db?.drop();
});

/** The bounds a search value stands for (FHIR R4 search, date precision), in ms. */
function valueRange(v) {
    const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/.exec(v);
    const [, y, mo, d, h, mi, s, frac, zone] = m;
    if (mo === undefined) return [Date.UTC(+y, 0, 1), Date.UTC(+y + 1, 0, 1)];
    if (d === undefined) return [Date.UTC(+y, +mo - 1, 1), Date.UTC(+y, +mo, 1)];
    if (h === undefined) return [Date.UTC(+y, +mo - 1, +d), Date.UTC(+y, +mo - 1, +d + 1)];
    const lo = Date.parse(`${y}-${mo}-${d}T${h}:${mi}:${s ?? '00'}${frac ?? ''}${zone ?? 'Z'}`);
    return [lo, lo + (s === undefined ? 60_000 : frac === undefined ? 1000 : 1)];
}

/** Whether a Slot start (stored as [t, t + its precision)) satisfies a prefixed value, after search.c's date conditions. */
function matches({ start, width }, prefixed) {
    const prefix = prefixed.slice(0, 2);
    const [lo, hi] = valueRange(prefixed.slice(2));
    const [a, b] = [start, start + width];
    if (prefix === 'ge') return b > hi || (a >= lo && b <= hi);
    if (prefix === 'gt') return b > hi;
    if (prefix === 'lt') return a < lo;
    if (prefix === 'le') return a < lo || (a >= lo && b <= hi);
    throw new Error(prefix);
}

const WINDOWS = [
    ['ge2031-03-10', 'lt2031-03-11'],
    ['ge2031-03-10T00:00:00Z', 'lt2031-03-10T23:59:59Z'],
    ['gt2031-03-09T23:59:58Z', 'le2031-03-10T00:00:00Z'],
    ['ge2031-03-10T00:00:00.500Z', 'lt2031-03-10T09:00:01Z'],
    ['ge2031-03-10T10:00:00%2B01:00', 'lt2031-03-10T10:00:01%2B01:00'],
    ['ge2031-03-10T08:59', 'le2031-03-10T09:00'],
    ['ge2031-03-10T23:59:59.999Z', 'lt2031-03-11T02:00:00%2B01:00'],
    ['ge2031-03', 'lt2031-04'],
    ['ge2031-03-11', 'lt2031-03-10'], // crossed: no window
];

/** The Slots of the schedule that a window (and optional status filter) must find, by the prefixes' definition. */
function expectedIds(lo, hi, status) {
    return [...slots]
        .filter(([, s]) => matches(s, decodeURIComponent(lo)) && matches(s, decodeURIComponent(hi)))
        .filter(([, s]) => status === '' || s.status === 'free')
        .map(([id]) => id)
        .sort();
}

async function ids(query) {
    const res = await fhir(server, 'GET', `/Slot?${query}&_count=100`);
    expectStatus(res, 200);
    return entryIds(res.json).sort();
}

describe('Slot search by schedule and start window: the (schedule, start) index form changes no answer', () => {
    it('equals its unrestated twin and the definition of the prefixes, for every edge window', async () => {
        for (const [lo, hi] of WINDOWS) {
            for (const status of ['', '&status=free']) {
                const tail = `&start=${lo}&start=${hi}${status}`;
                const expected = expectedIds(lo, hi, status);
                const twin = await ids(`schedule:Schedule=${schedule}${tail}`);
                assert.deepEqual(twin, expected, `schedule:Schedule=…${tail}`);
                for (const ref of [`Schedule/${schedule}`, schedule, `${server.base}/Schedule/${schedule}`]) {
                    assert.deepEqual(await ids(`schedule=${encodeURIComponent(ref)}${tail}`), expected, `schedule=${ref}${tail}`);
                }
            }
        }
    });

    it('keeps other schedules out, and a foreign absolute reference matches nothing', async () => {
        const tail = '&start=ge2031-03-10&start=lt2031-03-11';
        const mine = await ids(`schedule=Schedule/${schedule}${tail}`);
        const theirs = await ids(`schedule=Schedule/${other}${tail}`);
        assert.ok(mine.length > 0 && theirs.length > 0);
        assert.equal(mine.filter((id) => theirs.includes(id)).length, 0);
        assert.deepEqual(await ids(`schedule=${encodeURIComponent(`http://elsewhere.example/fhir/Schedule/${schedule}`)}${tail}`), []);
        // two schedules at once are searched the ordinary way
        assert.deepEqual(await ids(`schedule=Schedule/${schedule},Schedule/${other}${tail}`), [...mine, ...theirs].sort());
    });

    it('stays right when run by a kept statement with a plan for any values, and on connections made anew', async () => {
        const everyWindow = async (what) => {
            for (const [lo, hi] of WINDOWS) {
                const expected = expectedIds(lo, hi, '&status=free');
                const query = `schedule=Schedule/${schedule}&start=${lo}&start=${hi}&status=free`;
                assert.deepEqual(await ids(query), expected, `${what}: ${lo} ${hi}`);
                // a full page of one: the total is counted by the count statement, kept alike
                const counted = await fhir(server, 'GET', `/Slot?${query}&_count=1&_total=accurate`);
                expectStatus(counted, 200);
                assert.equal(counted.json.total, expected.length, `${what}: total for ${lo} ${hi}`);
            }
        };
        // more executions of one statement than any connection of the pool needs before PostgreSQL may keep one plan
        for (let round = 0; round !== 6; ++round) await everyWindow(`round ${round}`);
        // the server's connections are cut: their prepared statements are gone with them
        await psql(process.env.FHIRSCHED_TEST_PG_PORT, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${db.name}' AND pid <> pg_backend_pid()`);
        for (let tries = 0; ; ++tries) {
            const res = await fhir(server, 'GET', `/Slot?schedule=Schedule/${schedule}&start=ge2031-03-10&start=lt2031-03-11&status=free`);
            if (res.status === 200) break;
            assert.equal(res.status, 503, 'while reconnecting');
            assert.ok(tries < 100, 'the server reconnects');
            await sleep(100);
        }
        for (let round = 0; round !== 2; ++round) await everyWindow(`reconnected, round ${round}`);
    });
});
