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
