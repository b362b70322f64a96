// The scaling run (issue 8): the Slot day search, both $finds and the Appointment search, at 10k, 100k and 1M Slots and
// Appointments, each probe at one connection so that its latency is the cost of one request, not queueing.
//
// It runs on a database of its own (fhirsched_scaling, in the bench's cluster), so nothing the scenarios wrote changes
// it: the standard dataset and 1,600 Appointments (20 practitioners x 10 days x 8) are written through the API, then
// grown in SQL by cloning those rows. Seeding a million Slots through the API would take longer than the whole bench.
// A clone is its template with a new id and its times shifted (Slots by whole 30-day blocks into the past, Appointments
// by 10-day blocks into the future), with the template's search columns (sp_date shifted), derived rows (sched_busy,
// shifted) and a history row. Clones never land on the days the probes ask about, so every probe finds as much at
// every size. Before timing, checkClones() proves the clones right: a cloned Slot and Appointment are read and found
// by search through the API as their templates are, and a sample derived again by the database's triggers and the
// server's own extraction (`fhirsched migrate`) comes out unchanged.
import path from 'node:path';
import { fhir, runMigrate, startServer } from '../lib/harness.mjs';
import { CONSULTATION, DAYS, DAY_MS, PRACTITIONERS, TREATMENT, iso, isoDay, postTransaction, seedStandard, seededDays } from './dataset.mjs';
import { PG_BIN, databaseUrl, psql, round, run, wrk } from './tools.mjs';

export const SIZES = [10_000, 100_000, 1_000_000];
const APPT_DAY0 = Date.UTC(2027, 5, 7); // after the seeded Slot days, before any clone of an Appointment
const APPT_DAYS = 10;
const APPTS_PER_DAY = 8; // 08:00, 09:00, ... 15:00, 30 minutes each
const SLOT_SHIFT_DAYS = 30; // a Slot clone is its template k * 30 days earlier
const APPT_SHIFT_DAYS = APPT_DAYS; // an Appointment clone is its template k * 10 days later
const CHUNK = 100_000; // rows per INSERT: bounded memory for the after-trigger queue, and progress to show

const SLOT_TEMPLATE = `id ~ '^bench-slot-[0-9]+-[0-9]+-[0-9]+$'`;
const APPT_TEMPLATE = `id ~ '^bench-appt-[0-9]+-[0-9]+-[0-9]+$'`;

/** The API-written Appointments that the Appointment search probe finds and that the clones copy. */
function appointmentEntries() {
    const entries = [];
    for (let p = 0; p < PRACTITIONERS; p++)
        for (let d = 0; d < APPT_DAYS; d++)
            for (let h = 0; h < APPTS_PER_DAY; h++) {
                const start = APPT_DAY0 + d * DAY_MS + (8 + h) * 3600_000;
                const id = `bench-appt-${p}-${d}-${h}`;
                entries.push({
                    resource: {
                        resourceType: 'Appointment', id, status: 'booked', start: iso(start), end: iso(start + 30 * 60_000),
                        participant: [
                            { actor: { reference: `Practitioner/bench-dr-${p}` }, status: 'accepted' },
                            { actor: { reference: `Patient/bench-pat-${(p * 10 + d) % 200}` }, status: 'accepted' },
                        ],
                    },
                    request: { method: 'PUT', url: `Appointment/${id}` },
                });
            }
    return entries;
}

/**
 * The SQL that adds copies `from`..`to` (at most `limit` rows) of the templates of one partition, shifted by k * `shiftDays`
 * (negative: into the past). Body text is edited in place (ids, start, end) so that it stays byte for byte what the
 * server would serve. The rows derived from a template are copied along, shifted the same way (a Slot's end in sp_sort
 * too): its derived access tokens (in sp_tokens, the same for a clone: same schedule, same participants) and its
 * sched_busy rows. The triggers
 * that would derive them again row by row (four fifths of the time) are off for this one transaction; checkReindex()
 * re-derives a sample with them on and compares.
 */
function cloneSql({ table, template, from, to, shiftDays, limit }) {
    const shifted = (field) => `to_char(((t.doc ->> '${field}')::timestamptz + c.shift) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')`;
    const shiftRange = (r, by) => `tstzrange(lower(${r}) + ${by}, upper(${r}) + ${by}, '[)')`;
    // whole days are added in UTC, whatever the server's TimeZone, so that no daylight saving change moves a clone
    return `
        SET TIME ZONE 'UTC';
        BEGIN;
        ALTER TABLE ${table} DISABLE TRIGGER USER;
        CREATE TEMP TABLE clones ON COMMIT DROP AS
            WITH t AS (SELECT r.*, r.body::jsonb AS doc FROM ${table} r WHERE ${template} AND NOT r.deleted),
            c AS (SELECT k, make_interval(days => k * ${shiftDays}) AS shift FROM generate_series(${from}, ${to}) k)
            SELECT t.id AS template_id, c.shift, t.res_type, t.id || '-c' || c.k AS id, t.version_id, t.last_updated,
                   replace(replace(replace(t.body,
                       '"id":"' || t.id || '"', '"id":"' || t.id || '-c' || c.k || '"'),
                       '"start":"' || (t.doc ->> 'start') || '"', '"start":"' || ${shifted('start')} || '"'),
                       '"end":"' || (t.doc ->> 'end') || '"', '"end":"' || ${shifted('end')} || '"') AS body,
                   t.sp_version, t.sp_tokens, t.sp_text, ${shiftRange('t.sp_date', 'c.shift')} AS sp_date,
                   CASE WHEN t.sp_sort ? '_end' THEN jsonb_set(t.sp_sort, '{_end}', to_jsonb(${shifted('end')})) ELSE t.sp_sort END AS sp_sort,
                   t.sp_geo
              FROM c, t ORDER BY c.k, t.id LIMIT ${limit};
        INSERT INTO resource (res_type, id, version_id, last_updated, deleted, body, sp_version, sp_tokens, sp_text, sp_date, sp_sort, sp_geo)
            SELECT res_type, id, version_id, last_updated, false, body, sp_version, sp_tokens, sp_text, sp_date, sp_sort, sp_geo FROM clones;
        INSERT INTO resource_history (res_type, id, version_id, last_updated, deleted, method, status, body)
            SELECT res_type, id, version_id, last_updated, false, 'PUT', 201, body FROM clones;
        INSERT INTO sched_busy (actor, during, appointment_id)
            SELECT b.actor, ${shiftRange('b.during', 'c.shift')}, c.id FROM clones c JOIN sched_busy b ON b.appointment_id = c.template_id;
        ALTER TABLE ${table} ENABLE TRIGGER USER;
        COMMIT;`;
}

/** Grows one partition by cloning its templates until it holds `size` live rows; resolves with the copy number reached. */
async function grow(url, { table, template, shiftDays, nextCopy, size, templates }) {
    let count = Number(await psql(url, `SELECT count(*) FROM ${table} WHERE NOT deleted`));
    while (count < size) {
        const limit = Math.min(CHUNK, size - count);
        const copies = Math.ceil(limit / templates);
        await psql(url, cloneSql({ table, template, from: nextCopy, to: nextCopy + copies - 1, shiftDays, limit }));
        nextCopy += copies;
        count += limit;
        process.stderr.write(`\rscaling: ${table} ${count}   `);
    }
    return nextCopy;
}

/** Reads and searches a clone and its template through the API; throws unless the clone looks exactly like an API write. */
async function checkClone(server, { type, templateId, copy, shiftDays, search }) {
    const cloneId = `${templateId}-c${copy}`;
    const [tmpl, clone] = await Promise.all([fhir(server, 'GET', `/${type}/${templateId}`), fhir(server, 'GET', `/${type}/${cloneId}`)]);
    if (tmpl.status !== 200 || clone.status !== 200) throw new Error(`reading ${type}/${cloneId}: ${clone.status} ${clone.text.slice(0, 300)}`);
    const shift = (t) => iso(Date.parse(t) + copy * shiftDays * DAY_MS);
    const expected = { ...tmpl.json, id: cloneId, start: shift(tmpl.json.start), end: shift(tmpl.json.end) };
    if (JSON.stringify(expected) !== JSON.stringify(clone.json)) throw new Error(`${type}/${cloneId} reads as\n${clone.text}\nnot as\n${JSON.stringify(expected)}`);
    for (const [id, start] of [[templateId, tmpl.json.start], [cloneId, clone.json.start]]) {
        const day = isoDay(start);
        const res = await fhir(server, 'GET', search(day, isoDay(Date.parse(day) + DAY_MS)));
        const ids = (res.json?.entry || []).map((e) => e.resource.id);
        if (res.status !== 200 || !ids.includes(id)) throw new Error(`${type}/${id} is not found by its day's search: ${res.text.slice(0, 300)}`);
    }
}

/** Search columns and sched_busy rows of `ids`, as text. */
const derivedRows = async (url, table, ids) => {
    const list = ids.map((i) => `'${i}'`).join(',');
    return psql(url, `SELECT id, row_to_json(x)::text FROM (SELECT id, sp_version, sp_tokens, sp_text, sp_date, sp_sort, sp_geo FROM ${table} WHERE id IN (${list})) x
                      UNION ALL SELECT appointment_id, row_to_json(b)::text FROM sched_busy b WHERE appointment_id IN (${list}) ORDER BY 1, 2`);
};

/**
 * Derives a sample of clones again as a write would: the triggers rewrite their access tokens and sched_busy rows
 * (a same-body update), and `fhirsched migrate` re-extracts their search columns (the server's own extraction code).
 * Nothing may change.
 */
async function checkReindex(url, samples) {
    const before = {};
    for (const [table, ids] of Object.entries(samples)) {
        before[table] = await derivedRows(url, table, ids);
        await psql(url, `UPDATE ${table} SET body = body, sp_version = 0 WHERE id IN (${ids.map((i) => `'${i}'`).join(',')})`);
    }
    await runMigrate(url);
    for (const [table, ids] of Object.entries(samples)) {
        const after = await derivedRows(url, table, ids);
        if (after !== before[table]) throw new Error(`deriving cloned ${table} rows again changed them:\nas cloned:\n${before[table]}\nas derived:\n${after}`);
    }
}

/**
 * The whole scaling run on its own database in `cluster`, with a server started with `env`; sizes up to `maxSlots`.
 * Resolves with one row per probe and size.
 */
export async function runScaling({ cluster, env, maxSlots, seconds }) {
    const url = databaseUrl(cluster.url, 'fhirsched_scaling');
    await run(path.join(PG_BIN, 'createdb'), ['-h', '127.0.0.1', '-p', String(cluster.port), '-U', 'postgres', 'fhirsched_scaling']);
    await runMigrate(url);
    const server = await startServer({ databaseUrl: url, env });
    const rows = [];
    try {
        await seedStandard(server);
        const appointments = appointmentEntries();
        for (let i = 0; i < appointments.length; i += 400) await postTransaction(server, appointments.slice(i, i + 400));
        const days = seededDays();
        const apptDays = Array.from({ length: APPT_DAYS + 1 }, (_, d) => isoDay(APPT_DAY0 + d * DAY_MS));
        const probes = [
            { probe: 'GET /Slot day search', script: 'slot-day.lua', check: `/Slot?schedule=Schedule/bench-sched-0&start=ge${days[0]}&start=lt${days[1]}&status=free` },
            { probe: '$find, 1 practitioner x 7 days', script: 'find-one.lua', env: { BENCH_VISIT_TYPE: CONSULTATION }, check: `/Appointment/$find?start=${days[0]}&end=${days[7]}&practitioner=Practitioner/bench-dr-0&visit-type=${CONSULTATION}` },
            { probe: '$find, 20 practitioners + room x 30 days', script: 'find-room.lua', env: { BENCH_VISIT_TYPE: TREATMENT }, check: `/Appointment/$find?start=${days[0]}&end=${days[DAYS]}&visit-type=${TREATMENT}` },
            { probe: 'GET /Appointment practitioner + day', script: 'appointment-search.lua', env: { BENCH_APPT_DAYS: apptDays.join(',') }, check: `/Appointment?practitioner=Practitioner/bench-dr-0&date=ge${apptDays[0]}&date=lt${apptDays[1]}` },
        ];
        const results = {};
        const state = { slotCopy: 1, apptCopy: 1 };
        const sizes = SIZES.filter((s, i) => i === 0 || s <= maxSlots);
        for (const size of sizes) {
            const t0 = performance.now();
            state.slotCopy = await grow(url, { table: 'slot', template: SLOT_TEMPLATE, shiftDays: -SLOT_SHIFT_DAYS, nextCopy: state.slotCopy, size, templates: PRACTITIONERS * DAYS * 16 });
            state.apptCopy = await grow(url, { table: 'appointment', template: APPT_TEMPLATE, shiftDays: APPT_SHIFT_DAYS, nextCopy: state.apptCopy, size, templates: appointments.length });
            const growSeconds = round((performance.now() - t0) / 1000, 1);
            if (state.slotCopy > 1 || state.apptCopy > 1) await checkClones(server, url, state);
            await psql(url, 'VACUUM ANALYZE');
            await psql(url, 'CHECKPOINT');
            const counts = (await psql(url, 'SELECT (SELECT count(*) FROM slot WHERE NOT deleted), (SELECT count(*) FROM appointment WHERE NOT deleted)')).trim().split('|').map(Number);
            process.stderr.write(`\rscaling: ${counts[0]} Slots, ${counts[1]} Appointments (grown in ${growSeconds} s)\n`);
            for (const p of probes) {
                const check = await fhir(server, 'GET', p.check);
                const found = check.json?.total ?? check.json?.entry?.length;
                results[p.probe] ??= found;
                if (check.status !== 200 || found !== results[p.probe]) throw new Error(`${p.probe} found ${found} at ${counts[0]} Slots, ${results[p.probe]} before: ${check.text.slice(0, 300)}`);
                const r = await wrk({ url: server.base, script: p.script, env: { BENCH_DAYS: days.join(','), ...p.env }, connections: 1, threads: 1, seconds });
                rows.push({ probe: p.probe, slots: counts[0], appointments: counts[1], p50_ms: round(r.p50), p99_ms: round(r.p99), rps: round(r.rps, 0), errors: r.errors, results: found, grow_seconds: growSeconds });
            }
        }
    } finally {
        await server.stop();
    }
    return rows;
}

/**
 * The checks of the clones made so far: the first clone of each type through the API (copy 1 of the first template:
 * clones are made in that order), and a random sample re-extracted.
 */
async function checkClones(server, url, state) {
    const sample = async (table) => (await psql(url, `SELECT id FROM ${table} WHERE id ~ '-c[0-9]+$' ORDER BY random() LIMIT 5`)).trim().split('\n').filter(Boolean);
    const samples = {};
    if (state.slotCopy > 1) {
        await checkClone(server, { type: 'Slot', templateId: 'bench-slot-0-0-0', copy: 1, shiftDays: -SLOT_SHIFT_DAYS, search: (a, b) => `/Slot?schedule=Schedule/bench-sched-0&start=ge${a}&start=lt${b}&_count=50` });
        samples.slot = await sample('slot');
    }
    if (state.apptCopy > 1) {
        await checkClone(server, { type: 'Appointment', templateId: 'bench-appt-0-0-0', copy: 1, shiftDays: APPT_SHIFT_DAYS, search: (a, b) => `/Appointment?practitioner=Practitioner/bench-dr-0&date=ge${a}&date=lt${b}` });
        const busy = (await psql(url, `SELECT (SELECT count(*) FROM sched_busy WHERE appointment_id = 'bench-appt-0-0-0'), (SELECT count(*) FROM sched_busy WHERE appointment_id = 'bench-appt-0-0-0-c1')`)).trim();
        if (busy !== '1|1') throw new Error(`sched_busy rows of an Appointment and of its clone: ${busy}`);
        samples.appointment = await sample('appointment');
    }
    await checkReindex(url, samples);
}
