// SQL functions that migrations replaced for speed give the answers the originals gave. sched_ref_key keys busy
// rows, access tokens and Slot links: migration 0010 dropped its regular expression for the common shapes, and any
// difference would leave rows keyed one way and looked up another.
// Also the PostgreSQL behaviour a statement of src/sched/ops.c relies on (see the last test).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { PG_SH, createTestDatabase, psql } from '../lib/harness.mjs';

const PG_PORT = () => process.env.FHIRSCHED_TEST_PG_PORT;
let db;

before(async () => {
    db = await createTestDatabase();
});
after(async () => {
    await db?.drop();
});

// The expression of migration 0004, the definition of a reference's key.
const ORIGINAL = (x) => `substring(regexp_replace(${x}, '/_history/[^/]*$', '') FROM '([A-Z][A-Za-z]+/[A-Za-z0-9.-]{1,64})$')`;

test('sched_ref_key agrees with its original regular expression', async () => {
    const refs = [
        'Patient/1', 'Practitioner/abc-1.2', 'http://x/fhir/Practitioner/1/_history/2', 'Patient/1/_history/', '/_history/1',
        '_history/1', 'xPatient/1', 'abCdEf/1', 'fhir:Patient/1', 'Patient/', '/1', 'P/1', 'Pa/1', 'Patient/1/2',
        `Patient/${'a'.repeat(64)}`, `Patient/${'a'.repeat(65)}`, 'Patient/a_b', 'urn:uuid:123', '', 'Patient//1',
        'http://x/Patient/1/_history/2/_history/3', 'Patient/1/_history', 'Pat1ent/1', 'Ab1Cd/x', 'ÄPatient/1', 'Patient/é',
        'https://ehr.example.org/fhir/Location/room-1', 'Slot/s1/_history/7', 'Patient/1?x=y', '#contained', 'Patient/ 1',
    ];
    const values = refs.map((r) => `('${r.replace(/'/g, "''")}')`).join(', ');
    const out = await psql(PG_PORT(), `SELECT json_agg(json_build_array(ref, sched_ref_key(ref), ${ORIGINAL('ref')}))
                                          FROM (VALUES ${values}, (NULL)) v(ref)`, { db: db.name });
    const rows = JSON.parse(out.trim());
    assert.equal(rows.length, refs.length + 1);
    for (const [ref, now, original] of rows) assert.equal(now, original, `sched_ref_key(${JSON.stringify(ref)})`);
    // and the common shapes really are keyed
    assert.deepEqual(rows.slice(0, 3).map((r) => r[1]), ['Patient/1', 'Practitioner/abc-1.2', 'Practitioner/1']);
});

// $find saves its proposals with set_config('synchronous_commit', 'off', true) in the one statement (no session, no
// BEGIN): the commit of that statement's own transaction does not wait for the WAL flush, and the pooled connection's
// next statement, bookings included, is synchronous again. Each -c of psql is its own implicit transaction.
test('a transaction-local synchronous_commit in one statement ends with that statement', async () => {
    const { stdout } = await promisify(execFile)(PG_SH, [
        'psql', process.env.FHIRSCHED_TEST_PG_DIR || '-', String(PG_PORT()), '-q', '-tA', '-d', db.name,
        '-c', `SELECT current_setting('synchronous_commit') FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit`,
        '-c', 'SHOW synchronous_commit',
    ]);
    assert.deepEqual(stdout.trim().split('\n'), ['off', 'on']);
});

// sched_load (migration 0011) keeps one plan per session for any values; two of its branches are written so that
// the plan cannot read what the arguments do not ask for: busy rows actor by actor (actor and time both index
// conditions, not every actor's rows of the window), and "does the schedule publish Slots" stopping at the first
// Slot. auto_explain at NOTICE level shows the nested plan to this client.
test('sched_load reads busy rows of the asked actors only, and one Slot per schedule for "slotted"', async () => {
    const setup = `INSERT INTO sched_busy (actor, during, appointment_id)
        SELECT 'Practitioner/other-' || i, tstzrange('2031-05-05 09:00+00', '2031-05-05 09:30+00'), 'plan-' || i FROM generate_series(1, 3000) i;
        INSERT INTO sched_busy VALUES ('Practitioner/asked', tstzrange('2031-05-05 10:00+00', '2031-05-05 10:30+00'), 'plan-asked');
        ANALYZE sched_busy;`;
    await psql(PG_PORT(), setup, { db: db.name });
    const { stdout, stderr } = await promisify(execFile)(PG_SH, [
        'psql', process.env.FHIRSCHED_TEST_PG_DIR || '-', String(PG_PORT()), '-q', '-tA', '-d', db.name,
        '-c', `LOAD 'auto_explain'`,
        '-c', `SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on; SET auto_explain.log_analyze = on;
               SET auto_explain.log_format = 'json'; SET auto_explain.log_level = 'notice'`,
        '-c', `SELECT kind, key FROM sched_load(ARRAY['Practitioner/asked'], ARRAY['schedule=Schedule/none'],
               '2031-05-05 00:00+00', '2031-05-12 00:00+00', ARRAY[]::text[])`,
    ]);
    assert.deepEqual(stdout.trim().split('\n'), ['busy|Practitioner/asked']);
    const plans = [...stderr.matchAll(/NOTICE:\s+duration: [\d.]+ ms\s+plan:\s*(\{[\s\S]*?\n\})/g)].map((m) => JSON.parse(m[1]));
    const nested = plans.find((p) => /sched_busy/.test(p['Query Text']) && /RETURN|unnest\(p_actors\)/.test(p['Query Text']));
    assert.ok(nested, `the nested plan of sched_load was shown:\n${stderr.slice(0, 2000)}`);
    const nodes = [];
    (function walk(n) {
        nodes.push(n);
        for (const c of n.Plans ?? []) walk(c);
    })(nested.Plan);
    const busyScans = nodes.filter((n) => n['Relation Name'] === 'sched_busy' || (n['Index Name'] ?? '').startsWith('sched_busy'));
    assert.ok(busyScans.length > 0);
    for (const n of busyScans) {
        if (n['Index Cond'] !== undefined) assert.match(n['Index Cond'], /actor = /, `busy rows searched by actor: ${JSON.stringify(n)}`);
        assert.ok((n['Actual Rows'] ?? 0) <= 1, `only the asked actor's busy row is read: ${JSON.stringify(n)}`);
    }
    assert.ok(!nodes.some((n) => n['Node Type'] === 'Seq Scan' && n['Relation Name'] === 'sched_busy'));
    const slotScans = nodes.filter((n) => n['Relation Name'] === 'slot');
    assert.ok(slotScans.length > 0 && slotScans.every((n) => n['Node Type'] === 'Index Scan' && n['Index Name'] === 'slot_schedule_start'),
        `Slots by (schedule, start): ${JSON.stringify(slotScans)}`);
    assert.ok(nodes.some((n) => n['Node Type'] === 'Limit'), 'the slotted branch stops at the first Slot');
});
