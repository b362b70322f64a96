// SQL functions that migrations replaced for speed give the answers the originals gave. sched_ref_key keys busy
// rows, access tokens and Slot links: migration 0010 dropped its regular expression for the common shapes, and any
// difference would leave rows keyed one way and looked up another.
// Also the PostgreSQL behaviour a statement of src/sched/ops.c relies on (see the last test).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import path from 'node:path';
import { PG_SH, SOURCE_DIR, createTestDatabase, psql } from '../lib/harness.mjs';

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

/**
 * A function as an earlier migration defined it, created again under another name (to compare answers with); `calls`
 * renames the functions it calls, so that it runs on their originals too.
 */
async function createOriginal(migration, name, as, calls = {}) {
    const text = fs.readFileSync(path.join(SOURCE_DIR, 'migrations', migration), 'utf8');
    const m = new RegExp(`CREATE (?:OR REPLACE )?FUNCTION ${name}\\([\\s\\S]*?\\n\\$\\$;`).exec(text);
    assert.ok(m, `${name} in ${migration}`);
    let sql = m[0].replace(/^CREATE (?:OR REPLACE )?FUNCTION [a-z_]+\(/, `CREATE OR REPLACE FUNCTION ${as}(`);
    for (const [from, to] of Object.entries(calls)) sql = sql.replaceAll(`${from}(`, `${to}(`);
    await psql(PG_PORT(), sql, { db: db.name });
}

test('fhir_date_range answers as migration 0002 did, for every precision and for invalid values', async () => {
    await createOriginal('0002_search_functions.sql', 'fhir_date_range', 'original_date_range');
    const odd = ['2026', '2026-03', '2026-03-04', '2026-03-04T10:00', '2026-03-04T10:00Z', '2026-03-04T10:00+02:00', '2026-03-04T10:00:00',
        '2026-03-04T10:00:00Z', '2026-03-04T10:00:00-05:30', '2026-03-04T10:00:00.123Z', '2026-03-04T10:00:00.5', '2026-02-30T10:00:00Z',
        '2026-13-01', '2026-03-04T25:00:00Z', '2026-03-04T10:00:60Z', 'abc', '', '2026-3-4', '2026-03-04T10:00:00+2', '20260',
        '2026-03-04 10:00:00Z', '0000', '9999-12-31T23:59:59Z'];
    const values = odd.map((v) => `('${v}')`).join(', ');
    const formats = ['YYYY', 'YYYY-MM', 'YYYY-MM-DD', 'YYYY-MM-DD"T"HH24:MI', 'YYYY-MM-DD"T"HH24:MI:SS"Z"', 'YYYY-MM-DD"T"HH24:MI:SS.MS"+01:00"',
        'YYYY-MM-DD"T"HH24:MI:SS'].map((f) => `'${f}'`).join(', ');
    const out = await psql(PG_PORT(), `SELECT count(*), json_agg(v) FILTER (WHERE fhir_date_range(v) IS DISTINCT FROM original_date_range(v))
        FROM (SELECT v FROM (VALUES ${values}, (NULL)) x(v)
              UNION ALL SELECT to_char(timestamptz '2020-01-01' + g * interval '7 hours 13 minutes 17.25 seconds', f)
                FROM generate_series(1, 2000) g, unnest(ARRAY[${formats}]) f) s`, { db: db.name });
    assert.equal(out.trim(), `${odd.length + 1 + 14000}|`, 'no value answered differently');
});

test('Slots\' and Appointments\' derived access tokens are the ones migration 0005 derived', async () => {
    await createOriginal('0005_security.sql', 'sec_actor_tokens', 'original_actor_tokens');
    await createOriginal('0005_security.sql', 'sec_derived_tokens', 'original_derived_tokens', { sec_actor_tokens: 'original_actor_tokens' });
    // rows with sites and owners (tokens as the trigger stores them, which it is kept from recomputing), one deleted
    await psql(PG_PORT(), `SET session_replication_role = replica;
        INSERT INTO resource (res_type, id, version_id, last_updated, deleted, body, sp_tokens) VALUES
          ('Schedule', 'tok-s1', 1, now(), false, '{"resourceType":"Schedule","id":"tok-s1"}',
           '{actor=Practitioner/p1,_owner=Practitioner/p1,_site=Location/l1,_site=Location/l2}'),
          ('Schedule', 'tok-s2', 1, now(), false, '{"resourceType":"Schedule","id":"tok-s2"}', '{_owner=Practitioner/p2,_site=none}'),
          ('Schedule', 'tok-gone', 2, now(), true, NULL, '{_site=Location/gone}'),
          ('Practitioner', 'tok-p1', 1, now(), false, '{"resourceType":"Practitioner","id":"tok-p1"}', '{_owner=Practitioner/tok-p1,_site=Location/l1}'),
          ('PractitionerRole', 'tok-r1', 1, now(), false, '{"resourceType":"PractitionerRole","id":"tok-r1"}', '{_owner=Practitioner/tok-p2,_site=Location/l2}'),
          ('HealthcareService', 'tok-h1', 1, now(), false, '{"resourceType":"HealthcareService","id":"tok-h1"}', '{_site=Location/l3}'),
          ('Location', 'tok-l4', 1, now(), false, '{"resourceType":"Location","id":"tok-l4","partOf":{"reference":"Location/tok-l5"}}', '{}'),
          ('Location', 'tok-l5', 1, now(), false, '{"resourceType":"Location","id":"tok-l5"}', '{}'),
          ('Slot', 'tok-sl1', 1, now(), false, '{"resourceType":"Slot","id":"tok-sl1"}', '{_site=Location/l6,_owner=Practitioner/p9}')`, { db: db.name });
    const actors = (...refs) => refs.map((reference) => ({ actor: { reference } }));
    const docs = [
        ['Slot', { schedule: { reference: 'Schedule/tok-s1' } }], ['Slot', { schedule: { reference: 'http://x/fhir/Schedule/tok-s1' } }],
        ['Slot', { schedule: { reference: 'Schedule/tok-s1/_history/1' } }], ['Slot', { schedule: { reference: 'Schedule/tok-s2' } }],
        ['Slot', { schedule: { reference: 'Schedule/tok-gone' } }], ['Slot', { schedule: { reference: 'Schedule/unknown' } }],
        ['Slot', { schedule: { reference: 'Practitioner/p1' } }], ['Slot', { schedule: { reference: 'tok-s1' } }], ['Slot', { schedule: {} }],
        ['Slot', {}], // (Slot.schedule is one Reference: an array is never stored)
        ['Appointment', { participant: actors('Practitioner/tok-p1') }],
        ['Appointment', { participant: actors('PractitionerRole/tok-r1', 'HealthcareService/tok-h1', 'Patient/x') }],
        ['Appointment', { participant: actors('Location/tok-l4') }],
        ['Appointment', { participant: actors('http://x/fhir/Location/tok-l5', 'Device/d1') }],
        ['Appointment', { participant: actors('Practitioner/tok-p1'), slot: [{ reference: 'Slot/tok-sl1' }, { reference: 'Slot/unknown' }] }],
        ['Appointment', { participant: actors('Practitioner/tok-p1'), slot: [] }], ['Appointment', { slot: [{ reference: 'Slot/tok-sl1' }] }],
        ['Appointment', {}],
    ].map(([type, doc]) => `('${type}', '${JSON.stringify(doc)}'::jsonb)`);
    const out = await psql(PG_PORT(), `SELECT json_agg(json_build_array(type, doc, sec_derived_tokens(type, 'x', doc), original_derived_tokens(type, 'x', doc)))
        FROM (VALUES ${docs.join(', ')}) d(type, doc)`, { db: db.name });
    const rows = JSON.parse(out.trim());
    assert.equal(rows.length, docs.length);
    for (const [type, doc, now, original] of rows) assert.deepEqual(now, original, `${type} ${JSON.stringify(doc)}`);
    assert.deepEqual(rows[0][2], ['_owner=Practitioner/p1', '_site=Location/l1', '_site=Location/l2']);
    assert.deepEqual(rows[4][2], ['_site=none']);
    assert.deepEqual(rows[12][2], ['_site=Location/tok-l4', '_site=Location/tok-l5'], 'a Location actor and the ones it is part of');
    assert.deepEqual(rows[14][2], ['_owner=Practitioner/tok-p1', '_site=Location/l1', '_site=Location/l6'], 'an Appointment\'s Slots add their sites');
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

/** Runs `sql` in psql with auto_explain at NOTICE level: its output, and the plans of every statement, nested ones too. */
async function withPlans(sql) {
    const { stdout, stderr } = await promisify(execFile)(PG_SH, [
        'psql', process.env.FHIRSCHED_TEST_PG_DIR || '-', String(PG_PORT()), '-q', '-tA', '-d', db.name,
        '-c', `LOAD 'auto_explain'`,
        '-c', `SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on; SET auto_explain.log_analyze = on;
               SET auto_explain.log_format = 'json'; SET auto_explain.log_level = 'notice'`,
        '-c', sql,
    ]);
    const plans = [...stderr.matchAll(/NOTICE:\s+duration: [\d.]+ ms\s+plan:\s*(\{[\s\S]*?\n\})/g)].map((m) => JSON.parse(m[1]));
    return { stdout, plans, stderr };
}

/** Every node of an auto_explain JSON plan, the root first. */
function planNodes(plan) {
    return [plan, ...(plan.Plans ?? []).flatMap(planNodes)];
}

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
    const { stdout, plans, stderr } = await withPlans(`SELECT kind, key FROM sched_load(ARRAY['Practitioner/asked'], ARRAY['schedule=Schedule/none'],
               '2031-05-05 00:00+00', '2031-05-12 00:00+00', ARRAY[]::text[])`);
    assert.deepEqual(stdout.trim().split('\n'), ['busy|Practitioner/asked']);
    const nested = plans.find((p) => /sched_busy/.test(p['Query Text']) && /RETURN|unnest\(p_actors\)/.test(p['Query Text']));
    assert.ok(nested, `the nested plan of sched_load was shown:\n${stderr.slice(0, 2000)}`);
    const nodes = planNodes(nested.Plan);
    const busyScans = nodes.filter((n) => n['Relation Name'] === 'sched_busy' || (n['Index Name'] ?? '').startsWith('sched_busy'));
    assert.ok(busyScans.length > 0);
    for (const n of busyScans) {
        if (n['Index Cond'] !== undefined) assert.match(n['Index Cond'], /actor_key = /, `busy rows searched by actor: ${JSON.stringify(n)}`);
        assert.ok((n['Actual Rows'] ?? 0) <= 1, `only the asked actor's busy row is read: ${JSON.stringify(n)}`);
    }
    assert.ok(!nodes.some((n) => n['Node Type'] === 'Seq Scan' && n['Relation Name'] === 'sched_busy'));
    const slotScans = nodes.filter((n) => n['Relation Name'] === 'slot');
    assert.ok(slotScans.length > 0 && slotScans.every((n) => n['Node Type'] === 'Index Scan' && n['Index Name'] === 'slot_schedule_start'),
        `Slots by (schedule, start): ${JSON.stringify(slotScans)}`);
    assert.ok(nodes.some((n) => n['Node Type'] === 'Limit'), 'the slotted branch stops at the first Slot');
});

// Migration 0017 keys the busy rows' exclusion constraint by a bigint of the actor. Every reader of busy rows by actor
// must ask by that key, or it reads the whole table: the Slot follow-up (sched_slot_changes) and a blocking write
// clearing the busy rows of expired holds in its way (sched_appointment_sync). The constraint still refuses one
// actor's overlapping times and allows another actor's.
test('readers of busy rows by actor use the key, and the key still excludes one actor\'s overlaps only', async () => {
    await psql(PG_PORT(), `INSERT INTO sched_busy (actor, during, appointment_id)
        SELECT 'Practitioner/key-other-' || i, tstzrange('2034-02-06 09:00+00', '2034-02-06 09:30+00'), 'key-plan-' || i FROM generate_series(1, 3000) i;
        INSERT INTO sched_busy (actor, during, appointment_id) VALUES ('Practitioner/key-dr', tstzrange('2034-02-06 09:00+00', '2034-02-06 09:30+00'), 'key-expired');
        INSERT INTO sched_hold (appointment_id, expires_at) VALUES ('key-expired', now() - interval '1 minute');
        ANALYZE sched_busy;
        SELECT count(*) FROM fhir_write('Slot', 'key-slot', '{"resourceType":"Slot","id":"key-slot","meta":{"versionId":"',
            '},"schedule":{"reference":"Schedule/key-none"},"status":"free","start":"2034-02-06T09:00:00Z","end":"2034-02-06T09:30:00Z"}',
            NULL, 'create', '{"v":2}');`, { db: db.name });
    const booking = `SELECT outcome FROM fhir_write('Appointment', 'key-appt', '{"resourceType":"Appointment","id":"key-appt","meta":{"versionId":"',
        '},"status":"booked","start":"2034-02-06T09:00:00Z","end":"2034-02-06T09:30:00Z","slot":[{"reference":"Slot/key-slot"}],
        "participant":[{"actor":{"reference":"Practitioner/key-dr"},"status":"accepted"}]}', NULL, 'create', '{"v":2}');
        SELECT slot_id || ' ' || status FROM sched_slot_changes('key-appt', 1);`;
    const { stdout, plans, stderr } = await withPlans(booking);
    assert.deepEqual(stdout.trim().split('\n'), ['created', 'key-slot busy']);
    const readers = plans.filter((p) => /FROM sched_busy/.test(p['Query Text']) && /DELETE FROM sched_busy b|EXISTS \(SELECT 1 FROM sched_busy b/.test(p['Query Text']));
    assert.ok(readers.length >= 2, `the expired holds' clearing and the Slot follow-up were shown:\n${stderr.slice(0, 3000)}`);
    for (const p of readers) {
        const nodes = planNodes(p.Plan);
        assert.ok(!nodes.some((n) => n['Node Type'] === 'Seq Scan' && n['Relation Name'] === 'sched_busy'), `no sequential scan: ${p['Query Text']}`);
        assert.ok(nodes.some((n) => n['Index Name'] === 'sched_busy_actor_during_excl' && /actor_key = /.test(n['Index Cond'] ?? '')),
            `busy rows by key: ${JSON.stringify(p.Plan)}`);
    }
    const rows = await psql(PG_PORT(), `SELECT appointment_id || ' ' || actor FROM sched_busy
        WHERE appointment_id IN ('key-expired', 'key-appt') ORDER BY 1`, { db: db.name });
    assert.deepEqual(rows.trim().split('\n'), ['key-appt Practitioner/key-dr', 'key-appt Slot/key-slot']);
    const overlap = (actor, id) => `INSERT INTO sched_busy (actor, during, appointment_id)
        VALUES ('${actor}', tstzrange('2034-02-06 09:15+00', '2034-02-06 09:45+00'), '${id}')`;
    await assert.rejects(psql(PG_PORT(), overlap('Practitioner/key-dr', 'key-twice'), { db: db.name }),
        /conflicting key value violates exclusion constraint "sched_busy_actor_during_excl"/);
    await psql(PG_PORT(), overlap('Practitioner/key-dr-2', 'key-other-dr'), { db: db.name });
});

// Migration 0016 tests the status of a patient's Appointments by their sort key, which no index serves, instead of by
// their tokens: as a second condition on the token index, that read the index entries of every booked Appointment in
// the database at every $book with a patient.
test('sched_load finds a patient\'s Appointments by the patient\'s token alone, and the ones migration 0011 found', async () => {
    await createOriginal('0011_find_load_plans.sql', 'sched_load', 'original_load');
    const statuses = ['proposed', 'pending', 'booked', 'arrived', 'fulfilled', 'cancelled', 'noshow', 'entered-in-error', 'checked-in', 'waitlist'];
    const row = (id, patient, status, { deleted = false, day = '2031-06-03' } = {}) => `('Appointment', '${id}', 1, now(), ${deleted},
        '{"resourceType":"Appointment","id":"${id}","status":"${status}"}', ARRAY['status=${status}', 'patient=${patient}'],
        tstzrange('${day} 09:00+00', '${day} 09:30+00'), '{"status":"${status}"}')`;
    const rows = [
        ...statuses.map((st) => row(`pl-${st}`, 'Patient/pl-1', st)),
        row('pl-deleted', 'Patient/pl-1', 'booked', { deleted: true }),
        row('pl-later', 'Patient/pl-1', 'booked', { day: '2031-07-01' }),
        row('pl-before', 'Patient/pl-1', 'booked', { day: '2031-05-29' }),
        row('pl-earlier', 'Patient/pl-1', 'booked', { day: '2031-05-20' }),
        row('pl-other', 'Patient/pl-2', 'booked'),
    ];
    await psql(PG_PORT(), `SET session_replication_role = replica;
        INSERT INTO resource (res_type, id, version_id, last_updated, deleted, body, sp_tokens, sp_date, sp_sort) VALUES ${rows.join(', ')};
        INSERT INTO resource (res_type, id, version_id, last_updated, deleted, body, sp_tokens, sp_date, sp_sort)
             SELECT 'Appointment', 'pl-many-' || i, 1, now(), false, '{"resourceType":"Appointment","status":"booked"}',
                    ARRAY['status=booked', 'patient=Patient/pl-many-' || i], tstzrange('2031-06-03 10:00+00', '2031-06-03 10:30+00'),
                    '{"status":"booked"}'
               FROM generate_series(1, 2000) i;
        ANALYZE appointment;`, { db: db.name });
    const load = (fn) => `SELECT kind, key, extra FROM ${fn}(ARRAY[]::text[], ARRAY[]::text[], '2031-06-02 00:00+00', '2031-06-05 00:00+00',
        ARRAY['Patient/pl-1']) ORDER BY extra`;
    const now = await psql(PG_PORT(), load('sched_load'), { db: db.name });
    assert.equal(now, await psql(PG_PORT(), load('original_load'), { db: db.name }));
    assert.deepEqual(now.trim().split('\n').map((l) => JSON.parse(l.split('|')[2]).id),
        ['pl-arrived', 'pl-before', 'pl-booked', 'pl-checked-in', 'pl-pending'], 'blocking statuses, from a week before the window');
    const { plans, stderr } = await withPlans(load('sched_load'));
    const nodes = planNodes(plans.find((p) => /unnest\(p_patients\)/.test(p['Query Text']))?.Plan ?? {});
    const scans = nodes.filter((n) => n['Index Name'] === 'appointment_sp_tokens_idx');
    assert.ok(scans.length > 0, `the patient's Appointments are found by the token index:\n${stderr.slice(0, 3000)}`);
    for (const n of scans) assert.doesNotMatch(n['Index Cond'], /status=/, `the token index answers for the patient alone: ${n['Index Cond']}`);
});

// Migration 0009's query, the definition of which actors an Appointment books exclusively: migration 0012 walks the
// participants instead, and must find the same set (a difference would let one booking through the exclusion
// constraint, or refuse one that does not clash).
const ORIGINAL_EXCLUSIVE = (doc) => `
    WITH refs AS (
        SELECT sched_ref_key(p -> 'actor' ->> 'reference') AS k
          FROM jsonb_array_elements(coalesce(${doc} -> 'participant', '[]')) p
         WHERE coalesce(p ->> 'status', '') <> 'declined'
    ), keyed AS (
        SELECT k, split_part(k, '/', 1) AS t, split_part(k, '/', 2) AS i FROM refs WHERE k IS NOT NULL
    )
    SELECT k FROM keyed WHERE t IN ('Practitioner', 'PractitionerRole', 'Device')
    UNION
    SELECT sched_ref_key(r.body::jsonb -> 'practitioner' ->> 'reference')
      FROM keyed JOIN resource r ON r.res_type = 'PractitionerRole' AND r.id = keyed.i AND NOT r.deleted
     WHERE keyed.t = 'PractitionerRole' AND r.body::jsonb -> 'practitioner' ->> 'reference' IS NOT NULL
    UNION
    SELECT keyed.k
      FROM keyed JOIN resource r ON r.res_type = 'Location' AND r.id = keyed.i AND NOT r.deleted
     WHERE keyed.t = 'Location'
       AND jsonb_path_exists(r.body::jsonb, '$.physicalType.coding[*] ? (@.code == "ro" || @.code == "bd")')
    UNION
    SELECT 'Slot/' || split_part(sched_ref_key(s ->> 'reference'), '/', 2)
      FROM jsonb_array_elements(coalesce(${doc} -> 'slot', '[]')) s
     WHERE sched_ref_key(s ->> 'reference') LIKE 'Slot/%'`;

test('sched_exclusive_actors finds the set migration 0009 found', async () => {
    const row = (type, id, body) => `('${type}', '${id}', 1, now(), false, '${JSON.stringify({ resourceType: type, id, ...body })}')`;
    await psql(PG_PORT(), `INSERT INTO resource (res_type, id, version_id, last_updated, deleted, body) VALUES
        ${row('PractitionerRole', 'xa-role', { practitioner: { reference: 'Practitioner/xa-dr' } })},
        ${row('PractitionerRole', 'xa-role-nobody', {})},
        ${row('PractitionerRole', 'xa-role-url', { practitioner: { reference: 'http://x/fhir/Practitioner/xa-dr2/_history/3' } })},
        ${row('Location', 'xa-room', { physicalType: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/location-physical-type', code: 'ro' }] } })},
        ${row('Location', 'xa-bed', { physicalType: { coding: [{ code: 'x' }, { code: 'bd' }] } })},
        ${row('Location', 'xa-site', { physicalType: { coding: [{ code: 'si' }] } })}`, { db: db.name });
    await psql(PG_PORT(), `INSERT INTO resource (res_type, id, version_id, last_updated, deleted, body) VALUES
        ${row('PractitionerRole', 'xa-role-gone', { practitioner: { reference: 'Practitioner/xa-dr3' } })},
        ${row('Location', 'xa-room-gone', { physicalType: { coding: [{ code: 'ro' }] } })};
        UPDATE resource SET deleted = true, version_id = 2 WHERE id IN ('xa-role-gone', 'xa-room-gone')`, { db: db.name });
    const part = (reference, status = 'accepted') => ({ actor: { reference }, status });
    const docs = [
        {},
        { participant: [] },
        { participant: [part('Practitioner/xa-dr'), part('PractitionerRole/xa-role'), part('Location/xa-room'), part('HealthcareService/xa-svc')] },
        { participant: [part('PractitionerRole/xa-role'), part('Practitioner/xa-dr', 'declined'), part('Patient/xa-pat'), part('Location/xa-site')] },
        { participant: [part('PractitionerRole/xa-role-nobody'), part('PractitionerRole/xa-role-url'), part('PractitionerRole/xa-missing')] },
        { participant: [part('PractitionerRole/xa-role-gone'), part('Location/xa-room-gone'), part('Location/xa-bed'), part('Device/xa-dev')] },
        { participant: [part('http://x/fhir/Practitioner/xa-dr/_history/1'), part('Location/xa-room', 'declined'), { status: 'accepted' }, { actor: { display: 'x' } }] },
        { participant: [part('Practitioner/xa-dr'), part('Practitioner/xa-dr')], slot: [{ reference: 'Slot/xa-s1' }, { reference: 'http://x/Slot/xa-s2/_history/4' }, { reference: 'Schedule/xa' }, {}] },
        { slot: [{ reference: 'Slot/xa-s1' }, { reference: 'Slot/xa-s1' }] },
    ];
    const values = docs.map((d, n) => `(${n}, '${JSON.stringify(d)}'::jsonb)`).join(', ');
    const out = await psql(PG_PORT(), `SELECT json_agg(json_build_array(n,
            ARRAY(SELECT a FROM sched_exclusive_actors(doc) a ORDER BY a),
            ARRAY(SELECT a FROM (${ORIGINAL_EXCLUSIVE('doc')}) o(a) ORDER BY a)) ORDER BY n)
          FROM (VALUES ${values}) v(n, doc)`, { db: db.name });
    const rows = JSON.parse(out.trim());
    assert.equal(rows.length, docs.length);
    for (const [n, now, original] of rows) assert.deepEqual(now, original, `participants ${JSON.stringify(docs[n])}`);
    // and the cases really exercise each branch
    assert.deepEqual(rows[2][1], ['Location/xa-room', 'Practitioner/xa-dr', 'PractitionerRole/xa-role']);
    assert.deepEqual(rows[4][1], ['Practitioner/xa-dr2', 'PractitionerRole/xa-missing', 'PractitionerRole/xa-role-nobody', 'PractitionerRole/xa-role-url']);
    assert.deepEqual(rows[7][1], ['Practitioner/xa-dr', 'Slot/xa-s1', 'Slot/xa-s2']);
});

// The scheduling model's version (migration 0012, asked by every operation instead of a fingerprint of the rows):
// a committed write of a model type moves it on, at the commit; a rolled-back one, a Slot or an Appointment does not.
test('sched_model_version moves on at the commit of a model write, and only then', async () => {
    const version = async (sql = '') =>
        Number((await psql(PG_PORT(), `${sql} SELECT version FROM sched_model_version`, { db: db.name })).trim().split('\n').pop());
    const insert = (type, id) => `INSERT INTO resource (res_type, id, version_id, last_updated, deleted, body)
        VALUES ('${type}', '${id}', 1, now(), false, '{"resourceType":"${type}","id":"${id}"}');`;
    const v0 = await version();
    // inside the writing transaction nothing has moved yet: the trigger is deferred to the commit
    assert.equal(await version(`BEGIN; ${insert('Schedule', 'mv-sched')}`), v0);
    assert.equal(await version(), v0, 'a transaction that never committed');
    assert.equal(await version(`${insert('Schedule', 'mv-sched')}`), v0, 'seen inside its own statement');
    const v1 = await version();
    assert.ok(v1 > v0, 'a committed Schedule');
    await psql(PG_PORT(), `${insert('Slot', 'mv-slot')} ${insert('Practitioner', 'mv-dr')}
        INSERT INTO resource (res_type, id, version_id, last_updated, deleted, body) VALUES ('Appointment', 'mv-appt', 1, now(), false,
            '{"resourceType":"Appointment","id":"mv-appt","status":"proposed"}');`, { db: db.name });
    assert.equal(await version(), v1, 'Slots, Appointments and Practitioners are not the model');
    for (const [type, id] of [['Location', 'mv-loc'], ['PractitionerRole', 'mv-role'], ['HealthcareService', 'mv-svc'], ['Device', 'mv-dev']]) {
        const before = await version();
        await psql(PG_PORT(), insert(type, id), { db: db.name });
        assert.ok((await version()) > before, `a committed ${type}`);
    }
    const before = await version();
    await psql(PG_PORT(), `UPDATE resource SET deleted = true, version_id = 2 WHERE res_type = 'Location' AND id = 'mv-loc'`, { db: db.name });
    assert.ok((await version()) > before, 'a deleted Location');
});

/**
 * A psql session that runs `sql` inside a transaction it keeps open; resolves once it ran. `commit()` ends it and
 * resolves with psql's exit code; `kill()` abandons it.
 */
async function openTransaction(sql) {
    const session = spawn(PG_SH, ['psql', process.env.FHIRSCHED_TEST_PG_DIR || '-', String(PG_PORT()), '-q', '-tA', '-d', db.name]);
    let out = '';
    session.stdout.on('data', (d) => (out += d));
    session.stderr.on('data', (d) => (out += d));
    const done = new Promise((resolve) => session.on('close', resolve));
    session.stdin.write(`BEGIN;\n${sql}\nSELECT 'transaction wrote';\n`);
    for (let i = 0; i < 200 && !out.includes('transaction wrote'); i++) await new Promise((r) => setTimeout(r, 50));
    if (!out.includes('transaction wrote')) {
        session.kill();
        assert.fail(`the transaction did not run:\n${out}`);
    }
    return {
        output: () => out,
        commit: () => (session.stdin.end('COMMIT;\n'), done),
        kill: () => session.kill(),
    };
}

/** The lock types this test database's sessions wait for, once some session waits (or after 10 s). */
async function awaitedLocks() {
    let waits = [];
    for (let i = 0; i < 200 && waits.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 50));
        waits = (await psql(PG_PORT(), `SELECT l.locktype FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                                         WHERE NOT l.granted AND a.datname = current_database()`, { db: db.name })).trim().split('\n').filter(Boolean);
    }
    return waits;
}

// Writers of overlapping busy rows queue before they insert them (migration 0013), instead of both inserting and then
// each waiting in the exclusion constraint's check for the other's transaction: a deadlock PostgreSQL finds only after
// deadlock_timeout. A second writer of a time the first holds uncommitted waits on an advisory lock, and meets the
// committed row once the first commits: a clean exclusion violation.
test('a second writer of a held time waits on the busy lock, then gets a clean conflict', async () => {
    const appointment = (id, start, end) => `INSERT INTO resource (res_type, id, version_id, last_updated, deleted, body)
        VALUES ('Appointment', '${id}', 1, now(), false, '{"resourceType":"Appointment","id":"${id}","status":"booked",
        "start":"${start}","end":"${end}","participant":[{"actor":{"reference":"Practitioner/lock-dr"},"status":"accepted"}]}');`;
    const first = await openTransaction(appointment('lock-a', '2031-09-01T09:00:00Z', '2031-09-01T10:00:00Z'));
    try {
        // overlapping in the second half hour only: the shared hour is what they queue on
        const second = psql(PG_PORT(), appointment('lock-b', '2031-09-01T09:30:00Z', '2031-09-01T11:00:00Z'), { db: db.name }).then(
            () => null,
            (e) => e,
        );
        assert.deepEqual(await awaitedLocks(), ['advisory'], 'the second writer waits for the busy lock, before inserting its busy rows');

        assert.equal(await first.commit(), 0, first.output());
        const err = await second;
        assert.ok(err, 'the second writer was refused');
        assert.match(err.message, /conflicting key value violates exclusion constraint "sched_busy_actor_during_excl"/);
        assert.doesNotMatch(err.message, /deadlock/);
    } finally {
        first.kill();
    }
    const busy = await psql(PG_PORT(), `SELECT appointment_id FROM sched_busy WHERE actor = 'Practitioner/lock-dr'`, { db: db.name });
    assert.deepEqual(busy.trim().split('\n'), ['lock-a']);
});

// The busy locks are held to the transaction's end, in PostgreSQL's shared lock table: an import of many Appointments
// in one transaction must stop taking them (at 256) rather than exhaust it ("out of shared memory"), and still store
// every busy row, the constraint deciding alone past that count.
test('one transaction writing many Appointments holds at most 256 busy locks', async () => {
    const out = await psql(PG_PORT(), `BEGIN;
        INSERT INTO resource (res_type, id, version_id, last_updated, deleted, body)
        SELECT 'Appointment', 'many-' || i, 1, now(), false, json_build_object('resourceType', 'Appointment', 'id', 'many-' || i,
               'status', 'booked',
               'start', to_char((timestamptz '2032-01-05 00:30+00' + i * interval '2 hours') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
               'end', to_char((timestamptz '2032-01-05 01:30+00' + i * interval '2 hours') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
               'participant', json_build_array(json_build_object('actor', json_build_object('reference', 'Practitioner/many-dr'))))::text
          FROM generate_series(1, 300) i;
        SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid();
        COMMIT;
        SELECT count(*) FROM sched_busy WHERE actor = 'Practitioner/many-dr';`, { db: db.name });
    assert.deepEqual(out.trim().split('\n'), ['256', '300']);
});

// A new Appointment has no busy or hold rows of its own (only sched_appointment_sync writes them, keyed by its id), so
// a create skips the trigger's statements about them (migration 0015): each connection kept a plan for them, a
// sequential scan when it was made on an empty sched_busy, which then read every busy row at every create. An update
// still runs them: its rows move with it.
test('an Appointment create runs no statement about its own busy rows; an update does', async () => {
    const appointment = (id, start) => `{"resourceType":"Appointment","id":"${id}","meta":{"versionId":"`;
    const tail = (start, end) => `},"status":"booked","start":"${start}","end":"${end}","participant":[{"actor":{"reference":"Practitioner/own-dr"}}]}`;
    const writeAppt = (mode, start, end) => `SELECT outcome || ' ' || version_id FROM fhir_write('Appointment', 'own-1', '${appointment('own-1')}',
        '${tail(start, end)}', NULL, '${mode}', '{"v":2}')`;
    const ownRows = (plans) => plans.filter((p) => /sched_(busy|hold)/.test(p['Query Text']) && /appointment_id = NEW\.id/.test(p['Query Text']));
    const created = await withPlans(writeAppt('create', '2033-03-07T09:00:00Z', '2033-03-07T09:30:00Z'));
    assert.equal(created.stdout.trim(), 'created 1');
    assert.ok(created.plans.some((p) => /INSERT INTO sched_busy/.test(p['Query Text'])), `the busy row was written:\n${created.stderr.slice(0, 2000)}`);
    assert.deepEqual(ownRows(created.plans).map((p) => p['Query Text'].trim()), []);
    const moved = await withPlans(writeAppt('update', '2033-03-07T10:00:00Z', '2033-03-07T10:30:00Z'));
    assert.equal(moved.stdout.trim(), 'updated 2');
    assert.ok(ownRows(moved.plans).length >= 2, 'the update reads and replaces its busy rows');
    const busy = await psql(PG_PORT(), `SELECT actor || ' ' || lower(during) FROM sched_busy WHERE appointment_id = 'own-1'`, { db: db.name });
    assert.equal(busy.trim(), 'Practitioner/own-dr 2033-03-07 10:00:00+00');
});

// fhir_write() skips its row lookup (migration 0014): a create inserts at once, and an update, patch or delete reads
// the current version from the history. What each write decides must be what the lookup decided.
const write = (id, mode, { ifMatch = 'NULL', family = 'W' } = {}) =>
    `SELECT outcome || ' ' || coalesce(version_id::text, '-') FROM fhir_write('Patient', '${id}',
        '{"resourceType":"Patient","id":"${id}","meta":{"versionId":"', '},"name":[{"family":"${family}"}]}', ${ifMatch}, '${mode}', '{"v":2}');`;
const refusal = (sql) => psql(PG_PORT(), sql, { db: db.name }).then((out) => `answered ${out.trim()}`, (e) => e.message);

test('fhir_write decides creates, updates and deletes without its row lookup as it did with it', async () => {
    const run = async (sql) => (await psql(PG_PORT(), sql, { db: db.name })).trim();
    assert.equal(await run(write('w-1', 'create')), 'created 1');
    assert.match(await refusal(write('w-1', 'create')), /Patient\/w-1 already exists/);
    assert.equal(await run(write('w-1', 'update')), 'updated 2');
    assert.match(await refusal(write('w-1', 'update', { ifMatch: 1 })), /is at version 2, not 1/);
    assert.equal(await run(write('w-1', 'patch', { ifMatch: 2 })), 'updated 3');
    assert.equal(await run(write('w-1', 'delete')), 'deleted 4');
    assert.equal(await run(write('w-1', 'delete')), 'unchanged 4');
    assert.match(await refusal(write('w-1', 'create')), /Patient\/w-1 already exists/, 'a deleted id is not free for a create');
    assert.equal(await run(write('w-1', 'update')), 'created 5', 'a PUT brings a deleted resource back');
    assert.equal(await run(write('w-2', 'update')), 'created 1', 'a PUT of a new id creates it');
    assert.equal(await run(write('w-3', 'delete')), 'absent -');
    assert.match(await refusal(write('w-3', 'update', { ifMatch: 1 })), /is at version none, not 1/);
    assert.equal(
        await run(`SELECT string_agg(id || ':' || version_id || ':' || method || ':' || status || ':' || deleted, ' ' ORDER BY id, version_id)
                     FROM resource_history WHERE res_type = 'Patient' AND id LIKE 'w-%'`),
        'w-1:1:POST:201:false w-1:2:PUT:200:false w-1:3:PATCH:200:false w-1:4:DELETE:200:true w-1:5:PUT:201:false w-2:1:PUT:201:false',
    );
    assert.equal(
        await run(`SELECT string_agg(id || ':' || version_id || ':' || deleted || ':' || (body::jsonb #>> '{meta,versionId}'), ' ' ORDER BY id)
                     FROM resource WHERE res_type = 'Patient' AND id LIKE 'w-%'`),
        'w-1:5:false:5 w-2:1:false:1',
    );
});

// A writer that read the version from the history while another transaction was moving the row on waits for it, then
// decides again on the row it finds under its lock: writes on top of it, refuses a stale If-Match, or finds it deleted.
test('fhir_write after a concurrent write of the same resource decides on the version that write left', async () => {
    await psql(PG_PORT(), ['c-up', 'c-match', 'c-del'].map((id) => write(id, 'create')).join('\n'), { db: db.name });
    const cases = [
        { id: 'c-up', first: write('c-up', 'update', { family: 'First' }), second: write('c-up', 'update', { family: 'Second' }), expect: /answered updated 3/ },
        { id: 'c-match', first: write('c-match', 'update'), second: write('c-match', 'update', { ifMatch: 1 }), expect: /is at version 2, not 1/ },
        { id: 'c-del', first: write('c-del', 'delete'), second: write('c-del', 'delete'), expect: /answered unchanged 2/ },
    ];
    for (const c of cases) {
        const first = await openTransaction(c.first);
        try {
            const second = refusal(c.second);
            assert.deepEqual(await awaitedLocks(), ['transactionid'], `${c.id}: the second writer waits for the first`);
            assert.equal(await first.commit(), 0, first.output());
            assert.match(await second, c.expect, c.id);
        } finally {
            first.kill();
        }
    }
    const rows = await psql(PG_PORT(), `SELECT string_agg(id || ':' || version_id || ':' || (body::jsonb #>> '{name,0,family}'), ' ' ORDER BY id)
                                          FROM resource WHERE res_type = 'Patient' AND id = 'c-up'`, { db: db.name });
    assert.equal(rows.trim(), 'c-up:3:Second');
    const history = await psql(PG_PORT(), `SELECT string_agg(id || ':' || version_id, ' ' ORDER BY id, version_id)
                                             FROM resource_history WHERE res_type = 'Patient' AND id LIKE 'c-%'`, { db: db.name });
    assert.equal(history.trim(), 'c-del:1 c-del:2 c-match:1 c-match:2 c-up:1 c-up:2 c-up:3');
});
