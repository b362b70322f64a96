// The access tokens migration 0005 derives into resource.sp_tokens for row-level access (docs/security.md, "Clinic
// roles"): `_site=Location/<id>` for every clinic a resource belongs to (through the partOf chain of its Locations),
// `_site=none` when it belongs to none, `_owner=Practitioner/<id>` for the practitioners whose schedule it is. The
// resources are written over REST; the tokens are read from PostgreSQL directly. Also: a PractitionerRole's
// Practitioner and a Schedule's Slots follow their changes without a new version, token-only updates fire no other
// trigger, and audit_purge() deletes old AuditEvents with their history.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { expectStatus, fhir, psql, sample, startServer } from '../lib/harness.mjs';

const BASE_ELSEWHERE = 'http://elsewhere.example/fhir';

let server;
let dbName;
// Clinic A: a building with rooms; clinic B: one room. Written once, top down, for every test below.
before(async () => {
    server = await startServer();
    dbName = new URL(server.databaseUrl).pathname.slice(1);
    await put(location('clinic-a'));
    await put(location('building-a', 'Location/clinic-a'));
    await put(location('room-a1', 'Location/building-a'));
    await put(location('room-a2', `${BASE_ELSEWHERE}/Location/building-a`)); // absolute references count too
    await put(location('clinic-b'));
    await put(location('room-b1', 'Location/clinic-b/_history/1'));
});
after(async () => {
    await server?.stop();
});

/** Runs SQL on the suite's database; the result of the last statement as trimmed text. */
async function sql(text) {
    return (await psql(process.env.FHIRSCHED_TEST_PG_PORT, text, { db: dbName })).trim();
}

/** SQL text literal (ids and types here are plain, but quote them anyway). */
const lit = (s) => `'${String(s).replaceAll("'", "''")}'`;

/** The derived tokens (`_site=`, `_owner=`) of a stored row, sorted; duplicates kept, so that they show. */
async function derived(type, id) {
    const out = await sql(
        `SELECT coalesce(json_agg(t ORDER BY t), '[]') FROM resource r, unnest(r.sp_tokens) t
          WHERE r.res_type = ${lit(type)} AND r.id = ${lit(id)} AND (starts_with(t, '_site=') OR starts_with(t, '_owner='))`,
    );
    return JSON.parse(out);
}

/** What a token-only recomputation must leave alone: version, timestamp, body, history. */
async function versionState(type, id) {
    return JSON.parse(
        await sql(
            `SELECT json_build_object('v', version_id, 'lu', last_updated, 'body', md5(body),
                    'history', (SELECT count(*) FROM resource_history h WHERE h.res_type = r.res_type AND h.id = r.id))
               FROM resource r WHERE r.res_type = ${lit(type)} AND r.id = ${lit(id)}`,
        ),
    );
}

async function put(resource) {
    const res = await fhir(server, 'PUT', `/${resource.resourceType}/${resource.id}`, { body: resource });
    expectStatus(res, [200, 201]);
    return res.json;
}

async function del(type, id) {
    expectStatus(await fhir(server, 'DELETE', `/${type}/${id}`), [200, 204]);
}

const site = (...ids) => ids.map((id) => `_site=Location/${id}`);
const owner = (...ids) => ids.map((id) => `_owner=Practitioner/${id}`);
const sorted = (a) => [...a].sort();
const ref = (reference) => ({ reference });

function location(id, partOf, extra = {}) {
    return { resourceType: 'Location', id, status: 'active', name: id, ...(partOf ? { partOf: ref(partOf) } : {}), ...extra };
}
function role(id, practitioner, locations) {
    return {
        resourceType: 'PractitionerRole',
        id,
        active: true,
        ...(practitioner ? { practitioner: ref(practitioner) } : {}),
        ...(locations.length ? { location: locations.map(ref) } : {}),
    };
}
function schedule(id, actors) {
    return { resourceType: 'Schedule', id, active: true, actor: actors.map(ref) };
}
function slot(id, scheduleRef, start = '2031-03-03T09:00:00Z') {
    const end = new Date(Date.parse(start) + 30 * 60_000).toISOString().replace('.000Z', 'Z');
    return { resourceType: 'Slot', id, schedule: ref(scheduleRef), status: 'free', start, end };
}
function appointment(id, actors, slots = [], extra = {}) {
    return {
        resourceType: 'Appointment',
        id,
        status: 'proposed', // blocks nothing: these tests are about tokens, not busy time
        participant: actors.map((a) => ({ actor: ref(a), status: 'needs-action' })),
        ...(slots.length ? { slot: slots.map(ref) } : {}),
        ...extra,
    };
}

describe('Locations', () => {
    it('a Location belongs to itself and to every partOf ancestor', async () => {
        assert.deepEqual(await derived('Location', 'clinic-a'), site('clinic-a'));
        assert.deepEqual(await derived('Location', 'building-a'), sorted(site('building-a', 'clinic-a')));
        assert.deepEqual(await derived('Location', 'room-a1'), sorted(site('room-a1', 'building-a', 'clinic-a')));
        assert.deepEqual(await derived('Location', 'room-a2'), sorted(site('room-a2', 'building-a', 'clinic-a')));
        assert.deepEqual(await derived('Location', 'room-b1'), sorted(site('room-b1', 'clinic-b')));
    });

    it('a partOf cycle ends where it closes; identifier-only and contained partOf give nothing', async () => {
        await put(location('loop-x', 'Location/loop-y'));
        await put(location('loop-y', 'Location/loop-x'));
        assert.deepEqual(await derived('Location', 'loop-y'), site('loop-x', 'loop-y'));
        await put(location('loop-x', 'Location/loop-x'));
        assert.deepEqual(await derived('Location', 'loop-x'), site('loop-x'));
        await put({ ...location('by-identifier'), partOf: { identifier: { system: 'urn:loc', value: 'clinic-a' } } });
        assert.deepEqual(await derived('Location', 'by-identifier'), site('by-identifier'));
    });

    it('the walk follows at most 16 partOf steps', async () => {
        const ids = Array.from({ length: 20 }, (_, i) => `deep-${i}`);
        for (let i = ids.length - 1; i >= 0; i--) await put(location(ids[i], i + 1 < ids.length ? `Location/${ids[i + 1]}` : null));
        assert.deepEqual(await derived('Location', 'deep-0'), sorted(site(...ids.slice(0, 17))));
        await put(role('deep-role', null, ['Location/deep-0']));
        assert.deepEqual(await derived('PractitionerRole', 'deep-role'), sorted(site(...ids.slice(0, 17))));
    });

    it('moving a Location is not propagated to the Locations below it (documented limit)', async () => {
        await put(location('move-top'));
        await put(location('move-mid', 'Location/move-top'));
        await put(location('move-leaf', 'Location/move-mid'));
        await put(location('move-mid', 'Location/clinic-b'));
        assert.deepEqual(await derived('Location', 'move-mid'), sorted(site('move-mid', 'clinic-b')));
        assert.deepEqual(await derived('Location', 'move-leaf'), sorted(site('move-leaf', 'move-mid', 'move-top')));
        await put(location('move-leaf', 'Location/move-mid', { description: 'written again' }));
        assert.deepEqual(await derived('Location', 'move-leaf'), sorted(site('move-leaf', 'move-mid', 'clinic-b')));
    });
});

describe('directory', () => {
    it('PractitionerRole, HealthcareService and Device: their locations with ancestors; none without', async () => {
        await put(role('dir-role', 'Practitioner/dir-p', ['Location/room-a1', 'Location/room-b1']));
        assert.deepEqual(
            await derived('PractitionerRole', 'dir-role'),
            sorted([...site('room-a1', 'building-a', 'clinic-a', 'room-b1', 'clinic-b'), ...owner('dir-p')]),
        );
        await put({ resourceType: 'HealthcareService', id: 'dir-hs', active: true, name: 'X-ray', location: [ref('Location/building-a')] });
        assert.deepEqual(await derived('HealthcareService', 'dir-hs'), sorted(site('building-a', 'clinic-a')));
        await put({ ...sample('Device'), id: 'dir-dev', location: ref('Location/room-b1') });
        assert.deepEqual(await derived('Device', 'dir-dev'), sorted(site('room-b1', 'clinic-b')));
        const loose = sample('Device');
        delete loose.location;
        await put({ ...loose, id: 'dir-dev-loose' });
        assert.deepEqual(await derived('Device', 'dir-dev-loose'), ['_site=none']);
        await put(role('dir-role-nowhere', null, []));
        assert.deepEqual(await derived('PractitionerRole', 'dir-role-nowhere'), ['_site=none']);
    });

    it('a Practitioner has the sites of their roles and follows every change of them, without a new version', async () => {
        await put({ ...sample('Practitioner'), id: 'doc-1' });
        assert.deepEqual(await derived('Practitioner', 'doc-1'), ['_owner=Practitioner/doc-1', '_site=none']);
        const v1 = await versionState('Practitioner', 'doc-1');

        await put(role('doc-1-a', 'Practitioner/doc-1', ['Location/room-a1']));
        assert.deepEqual(await derived('Practitioner', 'doc-1'), sorted([...owner('doc-1'), ...site('room-a1', 'building-a', 'clinic-a')]));
        await put(role('doc-1-b', `${server.base}/Practitioner/doc-1`, ['Location/clinic-b'])); // our own base: the same reference
        assert.deepEqual(
            await derived('Practitioner', 'doc-1'),
            sorted([...owner('doc-1'), ...site('room-a1', 'building-a', 'clinic-a', 'clinic-b')]),
        );

        // a role that moves, changes practitioner, or is deleted
        await put(role('doc-1-a', 'Practitioner/doc-1', ['Location/room-b1']));
        assert.deepEqual(await derived('Practitioner', 'doc-1'), sorted([...owner('doc-1'), ...site('room-b1', 'clinic-b')]));
        await put(role('doc-1-a', 'Practitioner/doc-2', ['Location/room-b1']));
        assert.deepEqual(await derived('Practitioner', 'doc-1'), sorted([...owner('doc-1'), ...site('clinic-b')]));
        await del('PractitionerRole', 'doc-1-b');
        assert.deepEqual(await derived('Practitioner', 'doc-1'), ['_owner=Practitioner/doc-1', '_site=none']);

        assert.deepEqual(await versionState('Practitioner', 'doc-1'), v1, 'propagation makes no version, history or body change');

        // a Practitioner written after its roles finds them
        await put({ ...sample('Practitioner'), id: 'doc-2' });
        assert.deepEqual(await derived('Practitioner', 'doc-2'), sorted([...owner('doc-2'), ...site('room-b1', 'clinic-b')]));
    });

    it('no duplicates after repeated writes and recomputations', async () => {
        await put({ ...sample('Practitioner'), id: 'dup-p' });
        for (let i = 0; i < 3; i++) {
            await put(role('dup-r', 'Practitioner/dup-p', ['Location/room-a1', 'Location/building-a']));
            await sql(`UPDATE resource SET sp_tokens = sp_tokens WHERE res_type IN ('Practitioner', 'PractitionerRole') AND id LIKE 'dup-%'`);
        }
        const want = sorted([...site('room-a1', 'building-a', 'clinic-a'), ...owner('dup-p')]);
        assert.deepEqual(await derived('PractitionerRole', 'dup-r'), want);
        assert.deepEqual(await derived('Practitioner', 'dup-p'), want);
        // the searchable tokens are still there, once
        const tokens = JSON.parse(await sql(`SELECT to_json(sp_tokens) FROM resource WHERE res_type = 'PractitionerRole' AND id = 'dup-r'`));
        assert.equal(tokens.filter((t) => t === 'practitioner=Practitioner/dup-p').length, 1);
        assert.equal(new Set(tokens).size, tokens.length);
    });
});

describe('scheduling', () => {
    before(async () => {
        await put({ ...sample('Practitioner'), id: 'sch-p' });
        await put(role('sch-r', 'Practitioner/sch-p', ['Location/room-a1']));
        await put({ ...sample('Practitioner'), id: 'sch-q' });
        await put(role('sch-q-r', 'Practitioner/sch-q', ['Location/room-b1']));
        await put({ resourceType: 'HealthcareService', id: 'sch-hs', active: true, name: 'Lab', location: [ref('Location/clinic-b')] });
    });

    it('Schedule: the sites of its actors; owners are its Practitioners and the practitioners of its roles', async () => {
        await put(schedule('s-pract', ['Practitioner/sch-p']));
        assert.deepEqual(await derived('Schedule', 's-pract'), sorted([...site('room-a1', 'building-a', 'clinic-a'), ...owner('sch-p')]));
        await put(schedule('s-mixed', ['PractitionerRole/sch-q-r', 'Location/room-a2', 'HealthcareService/sch-hs', 'Patient/x']));
        assert.deepEqual(
            await derived('Schedule', 's-mixed'),
            sorted([...site('room-b1', 'clinic-b', 'room-a2', 'building-a', 'clinic-a'), ...owner('sch-q')]),
        );
        await put(schedule('s-device', ['Device/dir-dev-loose']));
        assert.deepEqual(await derived('Schedule', 's-device'), ['_site=none']);
    });

    it('Slot: its Schedule’s tokens, also when the Schedule changes or comes later, without a new version', async () => {
        await put(schedule('s-move', ['Practitioner/sch-p']));
        await put(slot('sl-1', 'Schedule/s-move'));
        await put(slot('sl-2', 'Schedule/s-move', '2031-03-03T10:00:00Z'));
        const want = sorted([...site('room-a1', 'building-a', 'clinic-a'), ...owner('sch-p')]);
        assert.deepEqual(await derived('Slot', 'sl-1'), want);
        const before1 = await versionState('Slot', 'sl-1');

        await put(schedule('s-move', ['Location/clinic-b']));
        assert.deepEqual(await derived('Slot', 'sl-1'), site('clinic-b'));
        assert.deepEqual(await derived('Slot', 'sl-2'), site('clinic-b'));
        assert.deepEqual(await versionState('Slot', 'sl-1'), before1, 'propagation makes no version, history or body change');

        // a Schedule update that changes nothing derived leaves the Slots alone (not even a token-only update)
        const xmin = await sql(`SELECT xmin FROM resource WHERE res_type = 'Slot' AND id = 'sl-1'`);
        await put({ ...schedule('s-move', ['Location/clinic-b']), comment: 'same actors' });
        assert.equal(await sql(`SELECT xmin FROM resource WHERE res_type = 'Slot' AND id = 'sl-1'`), xmin);

        await del('Schedule', 's-move');
        assert.deepEqual(await derived('Slot', 'sl-1'), ['_site=none']);

        await put(slot('sl-early', 'Schedule/s-late'));
        assert.deepEqual(await derived('Slot', 'sl-early'), ['_site=none']);
        await put(schedule('s-late', ['PractitionerRole/sch-q-r']));
        assert.deepEqual(await derived('Slot', 'sl-early'), sorted([...site('room-b1', 'clinic-b'), ...owner('sch-q')]));
    });

    it('Appointment: its participants’ sites and its Slots’; owners from Practitioners and roles', async () => {
        await put(schedule('s-appt', ['Location/room-b1']));
        await put(slot('sl-appt', 'Schedule/s-appt'));
        await put(appointment('a-1', ['Patient/p1', 'PractitionerRole/sch-r', 'Location/room-a2'], ['Slot/sl-appt']));
        assert.deepEqual(
            await derived('Appointment', 'a-1'),
            sorted([...site('room-a1', 'building-a', 'clinic-a', 'room-a2', 'room-b1', 'clinic-b'), ...owner('sch-p')]),
        );
        await put(appointment('a-2', ['Patient/p1', 'Practitioner/sch-q', 'HealthcareService/sch-hs']));
        assert.deepEqual(await derived('Appointment', 'a-2'), sorted([...site('room-b1', 'clinic-b'), ...owner('sch-q')]));
        await put(appointment('a-none', ['Patient/p1', 'Device/dir-dev']));
        assert.deepEqual(await derived('Appointment', 'a-none'), ['_site=none']);
        // contained and identifier-only actors count for nothing
        await put(
            appointment('a-odd', ['Patient/p1'], [], {
                participant: [
                    { actor: ref('Patient/p1'), status: 'accepted' },
                    { actor: { identifier: { system: 'urn:agb', value: 'sch-p' } }, status: 'accepted' },
                ],
            }),
        );
        assert.deepEqual(await derived('Appointment', 'a-odd'), ['_site=none']);
    });

    it('AppointmentResponse: its Appointment’s sites; its actor (or the actor role’s practitioner) as owner', async () => {
        await put(appointment('a-resp', ['Patient/p1', 'PractitionerRole/sch-r']));
        const base = { resourceType: 'AppointmentResponse', appointment: ref('Appointment/a-resp'), participantStatus: 'accepted' };
        await put({ ...base, id: 'ar-role', actor: ref('PractitionerRole/sch-r') });
        assert.deepEqual(
            await derived('AppointmentResponse', 'ar-role'),
            sorted([...site('room-a1', 'building-a', 'clinic-a'), ...owner('sch-p')]),
        );
        await put({ ...base, id: 'ar-pract', actor: ref('Practitioner/sch-q') });
        assert.deepEqual(await derived('AppointmentResponse', 'ar-pract'), sorted([...site('room-a1', 'building-a', 'clinic-a'), ...owner('sch-q')]));
        await put({ ...base, id: 'ar-patient', actor: ref('Patient/p1') });
        assert.deepEqual(await derived('AppointmentResponse', 'ar-patient'), site('room-a1', 'building-a', 'clinic-a').sort());
        await put({ ...base, id: 'ar-nowhere', appointment: ref('Appointment/a-none'), actor: ref('Patient/p1') });
        assert.deepEqual(await derived('AppointmentResponse', 'ar-nowhere'), ['_site=none']);
    });

    it('a deleted resource has no derived tokens; a revived one gets them back', async () => {
        await put(appointment('a-del', ['PractitionerRole/sch-r']));
        await del('Appointment', 'a-del');
        assert.deepEqual(await derived('Appointment', 'a-del'), []);
        await put(appointment('a-del', ['PractitionerRole/sch-r']));
        assert.deepEqual(await derived('Appointment', 'a-del'), sorted([...site('room-a1', 'building-a', 'clinic-a'), ...owner('sch-p')]));
    });

    it('token-only updates (backfill, propagation) fire neither the busy-time trigger nor a chain of updates', async () => {
        // a pending hold: sched_appointment_sync would rewrite its sched_hold row if it ran
        const start = '2031-04-01T09:00:00Z';
        await put(
            appointment('a-hold', ['PractitionerRole/sch-r'], [], {
                status: 'pending',
                start,
                end: '2031-04-01T09:30:00Z',
                extension: [{ url: 'http://fhirsched.org/fhir/StructureDefinition/hold-expires', valueInstant: '2031-04-01T08:00:00Z' }],
            }),
        );
        const holdXmin = await sql(`SELECT xmin FROM sched_hold WHERE appointment_id = 'a-hold'`);
        assert.ok(holdXmin, 'the hold is recorded');
        const calls = async (statements) =>
            JSON.parse(
                (
                    await sql(
                        `SET track_functions = 'pl'; ${statements};
                         SELECT coalesce(json_object_agg(funcname, calls), '{}') FROM pg_stat_xact_user_functions
                          WHERE funcname IN ('sched_appointment_sync', 'sec_access_tokens', 'sec_practitionerrole_changed',
                                             'sec_schedule_changed')`,
                    )
                )
                    .split('\n')
                    .pop(),
            );
        // the migration's backfill, run again: one recomputation per row, nothing else
        const n = Number(await sql(`SELECT count(*) FROM appointment WHERE NOT deleted`));
        assert.deepEqual(await calls(`UPDATE appointment SET sp_tokens = sp_tokens WHERE NOT deleted`), { sec_access_tokens: n });
        assert.equal(await sql(`SELECT xmin FROM sched_hold WHERE appointment_id = 'a-hold'`), holdXmin);
        // a role whose derived tokens do not change stops there; one whose tokens change recomputes its practitioner,
        // and that is all (the stored tokens are made stale with the session's triggers off)
        assert.deepEqual(await calls(`UPDATE practitionerrole SET sp_tokens = sp_tokens WHERE id = 'sch-r'`), {
            sec_access_tokens: 1,
            sec_practitionerrole_changed: 1,
        });
        await sql(`SET session_replication_role = replica;
                   UPDATE practitionerrole SET sp_tokens = array_remove(sp_tokens, '_owner=Practitioner/sch-p') WHERE id = 'sch-r'`);
        assert.deepEqual(await calls(`UPDATE practitionerrole SET sp_tokens = sp_tokens WHERE id = 'sch-r'`), {
            sec_access_tokens: 2,
            sec_practitionerrole_changed: 1,
        });
        assert.deepEqual(await derived('PractitionerRole', 'sch-r'), sorted([...site('room-a1', 'building-a', 'clinic-a'), ...owner('sch-p')]));
        // and the Appointment tokens are what they were
        assert.deepEqual(await derived('Appointment', 'a-hold'), sorted([...site('room-a1', 'building-a', 'clinic-a'), ...owner('sch-p')]));
    });
});

describe('audit_purge', () => {
    it('deletes up to the limit of AuditEvents recorded before the cut-off, with their history, and counts them', async () => {
        const ids = { old: [], recent: [] };
        for (const [kind, recorded] of [
            ['old', '2020-01-01T10:00:00Z'],
            ['old', '2020-06-01T10:00:00.5Z'],
            ['old', '2024-12-31T23:59:59Z'],
            ['recent', '2025-01-01T00:00:00Z'],
            ['recent', '2030-01-01T00:00:00Z'],
        ]) {
            const res = await fhir(server, 'POST', '/AuditEvent', { body: sample('AuditEvent', { recorded }) });
            expectStatus(res, 201);
            ids[kind].push(res.json.id);
        }
        const count = async (table, list) =>
            Number(await sql(`SELECT count(*) FROM ${table} WHERE res_type = 'AuditEvent' AND id = ANY(ARRAY[${list.map(lit).join(',')}])`));
        assert.equal(await count('resource_history', ids.old), 3);
        const other = await sql(`SELECT count(*) FROM resource WHERE res_type <> 'AuditEvent'`);

        assert.equal(await sql(`SELECT audit_purge('2025-01-01T00:00:00Z', 2)`), '2');
        assert.equal(await count('resource', ids.old), 1);
        assert.equal(await sql(`SELECT audit_purge('2025-01-01T00:00:00Z', 2)`), '1');
        assert.equal(await sql(`SELECT audit_purge('2025-01-01T00:00:00Z', 2)`), '0');
        assert.equal(await count('resource', ids.old), 0);
        assert.equal(await count('resource_history', ids.old), 0);
        assert.equal(await count('resource', ids.recent), 2);
        assert.equal(await count('resource_history', ids.recent), 2);
        assert.equal(await sql(`SELECT count(*) FROM resource WHERE res_type <> 'AuditEvent'`), other);
        assert.equal(await sql(`SELECT audit_purge('2100-01-01T00:00:00Z', 0)`), '0');

        const gone = await fhir(server, 'GET', `/AuditEvent/${ids.old[0]}`);
        expectStatus(gone, 404);
        expectStatus(await fhir(server, 'GET', `/AuditEvent/${ids.recent[0]}`), 200);
    });
});

describe('sec_backfill', () => {
    it('recomputes every derived token, in dependency order, to what the triggers gave', async () => {
        const snapshot = async () =>
            sql(`SELECT json_agg(json_build_array(res_type, id, x.tokens) ORDER BY res_type, id)
                   FROM resource r, LATERAL (SELECT array_agg(t ORDER BY t) AS tokens FROM unnest(r.sp_tokens) t
                                              WHERE starts_with(t, '_site=') OR starts_with(t, '_owner=')) x
                  WHERE r.res_type <> 'AuditEvent'`);
        const before = await snapshot();
        assert.ok(JSON.parse(before).length > 50);
        // wipe them with the session's triggers off (as in a database migrated from before these tokens), then rebuild
        await sql(`SET session_replication_role = replica;
                   UPDATE resource SET sp_tokens = ARRAY(SELECT t FROM unnest(sp_tokens) t
                                                          WHERE NOT starts_with(t, '_site=') AND NOT starts_with(t, '_owner='))`);
        assert.notEqual(await snapshot(), before);
        await sql(`SELECT sec_backfill()`);
        assert.equal(await snapshot(), before);
    });
});
