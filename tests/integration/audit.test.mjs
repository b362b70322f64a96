// The audit trail (docs/security.md, "Audit trail"): reads, searches, writes, the scheduling operations and refused
// requests leave R4 AuditEvents with the documented content (type rest, subtype, action, outcome, agent from the
// token, source, entities, the search query, the request id); a write's AuditEvent is committed with the write
// (there right after the 201) and a failed write leaves no success trace; AuditEvents are append-only (405) and
// searchable by the documented parameters; old ones are removed by the sweeper (retention).
//
// Each request sends an X-Request-Id of its own; the AuditEvent of that request is found by its request-id detail.
// Reads and refusals are recorded in batches, so those are polled for (up to 3 s); writes are looked up at once.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
    ISSUER,
    api,
    auditRequestId,
    auditsFor,
    expectForbidden,
    makeKeys,
    pollUntil,
    requestId,
    startAuthServer,
    tempDir,
    tokenFor,
} from '../lib/auth.mjs';
import { expectOutcome, expectStatus, fhir, psql, uniq } from '../lib/harness.mjs';

const SYS = 'http://fhirsched.org/fhir/test-audit';
const EXT = 'http://fhirsched.org/fhir/StructureDefinition/';
const AUDIT_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-event-type';
const RESTFUL = 'http://hl7.org/fhir/restful-interaction';
const SOURCE_TYPE = 'http://terminology.hl7.org/CodeSystem/security-source-type';
const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';
const DR = 'Practitioner/dr-audit';
const PAT = 'Patient/pat-audit';

let server;
let sys; // system-admin: seeds, writes
let doc; // doctor with fhirUser: reads
let cadmin; // clinic-admin: reads the audit trail
let engine; // no role, no fhirUser: agent by identifier
let visit;
const SUB = { sys: 'admin-sub-1', engine: 'engine-sub-7', doc: 'doc-sub-3' };
const CLIENT = { sys: 'audit-admin-client', doc: 'audit-portal', engine: 'audit-engine' };

before(async () => {
    const keys = makeKeys(tempDir());
    server = await startAuthServer({
        keys,
        env: { FHIRSCHED_AUDIT_RETENTION_DAYS: '1', FHIRSCHED_SCHEDULING_SWEEP_INTERVAL_MS: '200' },
    });
    sys = api(server, tokenFor('system-admin', { server, sub: SUB.sys, clientId: CLIENT.sys }));
    doc = api(server, tokenFor('doctor', { server, sub: SUB.doc, clientId: CLIENT.doc, fhirUser: DR }));
    cadmin = api(server, tokenFor('clinic-admin', { server, clientId: 'audit-reports' }));
    engine = api(server, tokenFor(null, { server, sub: SUB.engine, clientId: CLIENT.engine, scope: 'system/*.*' }));

    await sys.upsert({ resourceType: 'Practitioner', id: 'dr-audit', active: true, name: [{ family: 'Audit', given: ['Dr'] }] });
    await sys.upsert({ resourceType: 'Patient', id: 'pat-audit', name: [{ family: 'Audited' }] });
    await sys.upsert({ resourceType: 'Location', id: 'clinic-audit', status: 'active', name: 'Audit clinic', mode: 'instance' });
    visit = uniq('visit');
    await sys.upsert({
        resourceType: 'HealthcareService',
        id: 'svc-audit',
        active: true,
        location: [{ reference: 'Location/clinic-audit' }],
        type: [{ coding: [{ system: SYS, code: visit }] }],
        extension: [{ url: `${EXT}service-duration`, valueDuration: { value: 30, unit: 'min', system: 'http://unitsofmeasure.org', code: 'min' } }],
    });
    await sys.upsert({
        resourceType: 'PractitionerRole',
        id: 'role-audit',
        active: true,
        practitioner: { reference: DR },
        location: [{ reference: 'Location/clinic-audit' }],
        healthcareService: [{ reference: 'HealthcareService/svc-audit' }],
        availableTime: [{ availableStartTime: '09:00:00', availableEndTime: '12:00:00' }],
    });
    await sys.upsert({ resourceType: 'Schedule', id: 'sched-audit', active: true, actor: [{ reference: DR }] });
});
after(async () => {
    await server?.stop();
});

// ---------------------------------------------------------------------------
// helpers

const rid = () => requestId('audit');
const withRid = (id, opts = {}) => ({ ...opts, headers: { 'x-request-id': id, ...(opts.headers || {}) } });
/** A lower bound for _lastUpdated of the AuditEvents of requests made from now on. */
const since = () => `_lastUpdated=ge${new Date(Date.now() - 5000).toISOString()}`;
const decode64 = (s) => Buffer.from(s, 'base64').toString('utf8');
const unescape = (s) => {
    try {
        return decodeURIComponent(s.replace(/\+/g, ' '));
    } catch {
        return s;
    }
};
const codings = (cc) => (cc ? (Array.isArray(cc) ? cc : [cc]).flatMap((c) => c.coding || (c.code ? [c] : [])) : []);

/** Every AuditEvent of request `id` (polled up to 3 s until there is one), looked up by sys. */
async function auditsOf(id, { query = since() } = {}) {
    const found = await auditsFor(sys, id, { query });
    assert.ok(found.length >= 1, `an AuditEvent for request ${id}`);
    return found;
}
/** The AuditEvent of request `id` whose subtype is `subtype` (an operation may also leave the write's own). */
async function auditWithSubtype(id, subtype) {
    const all = await auditsOf(id);
    const ev = all.find((e) => (e.subtype || []).some((c) => c.code === subtype));
    assert.ok(ev, `an AuditEvent with subtype ${subtype} for request ${id}; found subtypes ${JSON.stringify(all.map((e) => e.subtype))}`);
    return ev;
}

/** The one AuditEvent of request `id` (polled unless `now`), looked up by sys. */
async function auditOf(id, { now = false, query = since() } = {}) {
    const found = await auditsFor(sys, id, { query, timeoutMs: now ? 0 : 3000 });
    assert.equal(found.length, 1, `one AuditEvent for request ${id}${now ? ', right after the response' : ''}; found ${found.length}`);
    return found[0];
}

function requestor(ev) {
    const agents = ev.agent || [];
    return agents.find((a) => a.requestor) ?? agents[0];
}

/**
 * The documented content of an AuditEvent. want: subtype, action (string or list), outcome, who (reference) or
 * sub (identifier value, system = issuer), altId, roles, what (reference, a version suffix allowed), patient, query
 * (a substring of the decoded query), rid.
 */
function checkAudit(ev, want) {
    const problems = [];
    const check = (ok, msg) => {
        if (!ok) problems.push(msg);
    };
    assert.equal(ev.resourceType, 'AuditEvent');
    check(codings(ev.type).some((c) => c.system === AUDIT_TYPE && c.code === 'rest'), `type is ${AUDIT_TYPE}|rest: ${JSON.stringify(ev.type)}`);
    if (want.subtype) {
        check(
            (ev.subtype || []).some((c) => c.code === want.subtype && (!c.system || c.system === RESTFUL)),
            `subtype ${want.subtype}: ${JSON.stringify(ev.subtype)}`,
        );
    }
    if (want.action) {
        const actions = Array.isArray(want.action) ? want.action : [want.action];
        check(actions.includes(ev.action), `action ${ev.action}, expected ${actions.join('/')}`);
    }
    check(ev.recorded && Math.abs(Date.now() - Date.parse(ev.recorded)) < 120_000, `recorded is now: ${ev.recorded}`);
    if (want.outcome !== undefined) check(ev.outcome === want.outcome, `outcome ${ev.outcome}, expected ${want.outcome}`);
    if (want.outcome && want.outcome !== '0') check(typeof ev.outcomeDesc === 'string' && ev.outcomeDesc.length > 0, 'outcomeDesc of a failure');

    const agent = requestor(ev);
    if (!agent) {
        problems.push('no agent');
    } else {
        check(agent.requestor === true, 'agent.requestor is true');
        if (want.who) check(agent.who?.reference === want.who, `agent.who is ${want.who}: ${JSON.stringify(agent.who)}`);
        if (want.sub) {
            check(agent.who?.identifier?.value === want.sub, `agent.who.identifier.value is ${want.sub}: ${JSON.stringify(agent.who)}`);
            check(agent.who?.identifier?.system === ISSUER, `agent.who.identifier.system is the issuer: ${JSON.stringify(agent.who)}`);
        }
        if (want.altId) check(agent.altId === want.altId, `agent.altId is the client id ${want.altId}: ${agent.altId}`);
        for (const role of want.roles || []) {
            const texts = (agent.role || []).flatMap((r) => [r.text, ...(r.coding || []).map((c) => c.code)]);
            check(texts.includes(role), `agent.role has ${role}: ${JSON.stringify(agent.role)}`);
        }
        check(agent.network?.address === '127.0.0.1', `agent.network.address is the peer: ${JSON.stringify(agent.network)}`);
    }

    check(ev.source?.site === server.base, `source.site is the base URL: ${ev.source?.site}`);
    check(ev.source?.observer?.display === 'fhirsched', `source.observer.display: ${JSON.stringify(ev.source?.observer)}`);
    check(codings(ev.source?.type).some((c) => c.code === '4' && (!c.system || c.system === SOURCE_TYPE)), `source.type 4: ${JSON.stringify(ev.source?.type)}`);

    const entities = ev.entity || [];
    const refIs = (r, want) => r === want || (typeof r === 'string' && r.startsWith(`${want}/_history/`));
    if (want.what) check(entities.some((e) => refIs(e.what?.reference, want.what)), `an entity is ${want.what}`);
    if (want.patient) {
        check(
            entities.some((e) => refIs(e.what?.reference, want.patient) && codings(e.role).some((c) => c.code === '1' && (!c.system || c.system === OBJECT_ROLE))),
            `a patient entity (role ${OBJECT_ROLE}|1) ${want.patient}`,
        );
    }
    if (want.query) {
        const queries = entities.filter((e) => e.query).map((e) => unescape(decode64(e.query)));
        check(queries.some((q) => q.includes(want.query)), `an entity query holds "${want.query}": ${JSON.stringify(queries)}`);
    }
    if (want.rid) check(auditRequestId(ev) === want.rid, `the request-id detail is ${want.rid}`);
    if (problems.length) assert.fail(`AuditEvent content: ${problems.join('; ')}\nin ${JSON.stringify(ev)}`);
}

/** Runs checks without stopping at the first failure: soft(fn) records its assertion error in `errors`. */
function collector() {
    const errors = [];
    const soft = async (fn) => {
        try {
            await fn();
        } catch (e) {
            errors.push(e.message.slice(0, 2500));
        }
    };
    return { errors, soft };
}

/** Waits until the batched AuditEvent of a fresh read exists: every AuditEvent recorded before it is then stored. */
async function flushMarker() {
    const id = rid();
    expectStatus(await doc.get(`/${PAT}`, withRid(id)), 200);
    await auditOf(id);
}

/** A booked Appointment of the patient with a practitioner of its own, at a time of its own. */
let apptCounter = 0;
function appointment(extra = {}) {
    apptCounter += 1;
    const start = new Date(Date.UTC(2030, 6, 1, 8) + apptCounter * 3600_000);
    return {
        resourceType: 'Appointment',
        status: 'booked',
        start: start.toISOString().replace('.000Z', 'Z'),
        end: new Date(start.getTime() + 30 * 60_000).toISOString().replace('.000Z', 'Z'),
        participant: [
            { actor: { reference: PAT }, status: 'accepted' },
            { actor: { reference: DR }, status: 'accepted' },
        ],
        ...extra,
    };
}

// ---------------------------------------------------------------------------

describe('what is recorded', () => {
    it('a read: subtype read, action R, outcome 0, agent from the token (fhirUser, client id, role), source, entity, patient, request id', async () => {
        const id = rid();
        const res = await doc.get(`/${PAT}`, withRid(id));
        expectStatus(res, 200);
        assert.equal(res.headers.get('x-request-id'), id);
        const ev = await auditOf(id);
        checkAudit(ev, { subtype: 'read', action: 'R', outcome: '0', who: DR, altId: CLIENT.doc, roles: ['doctor'], what: PAT, rid: id });
        checkAudit(ev, { patient: PAT });
    });

    it('a search: subtype search-type, the query in base64', async () => {
        const id = rid();
        expectStatus(await doc.get(`/Appointment?patient=${PAT}&status=booked`, withRid(id)), 200);
        checkAudit(await auditOf(id), { subtype: 'search-type', action: ['E', 'R'], outcome: '0', who: DR, altId: CLIENT.doc, query: `patient=${PAT}`, rid: id });
    });

    it('a token without fhirUser is recorded by identifier: issuer + sub', async () => {
        const id = rid();
        expectStatus(await engine.get(`/${PAT}`, withRid(id)), 200);
        checkAudit(await auditOf(id), { subtype: 'read', action: 'R', outcome: '0', sub: SUB.engine, altId: CLIENT.engine, what: PAT, rid: id });
    });

    it('create, update, patch and delete: their AuditEvents exist right after the response (same transaction)', async () => {
        const { errors, soft } = collector();
        let id = rid();
        const created = await sys.post('/Appointment', appointment(), withRid(id));
        expectStatus(created, 201);
        const ref = `Appointment/${created.json.id}`;
        let ev = await auditOf(id, { now: true });
        await soft(() => checkAudit(ev, { subtype: 'create', action: 'C', outcome: '0', sub: SUB.sys, altId: CLIENT.sys, roles: ['system-admin'], what: ref, rid: id }));
        await soft(() => checkAudit(ev, { what: ref, patient: PAT }));

        id = rid();
        expectStatus(await sys.put(`/${ref}`, { ...created.json, comment: 'updated' }, withRid(id)), 200);
        ev = await auditOf(id, { now: true });
        await soft(() => checkAudit(ev, { subtype: 'update', action: 'U', outcome: '0', what: ref, rid: id }));
        await soft(() => checkAudit(ev, { patient: PAT }));

        id = rid();
        expectStatus(await sys.patch(`/${ref}`, [{ op: 'replace', path: '/comment', value: 'patched' }], withRid(id)), 200);
        await soft(async () => checkAudit(await auditOf(id, { now: true }), { subtype: 'patch', action: 'U', outcome: '0', what: ref, rid: id }));

        id = rid();
        expectStatus(await sys.del(`/${ref}`, withRid(id)), [200, 204]);
        await soft(async () => checkAudit(await auditOf(id, { now: true }), { subtype: 'delete', action: 'D', outcome: '0', what: ref, rid: id }));

        // a write of a directory resource too ("every write of any resource")
        id = rid();
        const loc = await sys.post('/Location', { resourceType: 'Location', status: 'active', name: uniq('Room') }, withRid(id));
        expectStatus(loc, 201);
        await soft(async () => checkAudit(await auditOf(id, { now: true }), { subtype: 'create', action: 'C', outcome: '0', what: `Location/${loc.json.id}`, rid: id }));
        assert.deepEqual(errors, [], 'the AuditEvents of the writes');
    });

    it('$find, $hold and $book: subtype operation', async () => {
        const day = new Date(Date.now() + 3 * 86400_000).toISOString().slice(0, 10);
        let id = rid();
        const found = await doc.get(`/Appointment/$find?start=${day}&end=${day}&visit-type=${encodeURIComponent(`${SYS}|${visit}`)}`, withRid(id));
        expectStatus(found, 200);
        checkAudit(await auditWithSubtype(id, 'operation'), { subtype: 'operation', action: ['E', 'R'], outcome: '0', who: DR, rid: id });
        const offers = found.json.entry.map((e) => e.resource).filter((r) => r.resourceType === 'Appointment');
        assert.ok(offers.length >= 3, 'proposals');
        const param = (o) => ({ resourceType: 'Parameters', parameter: [{ name: 'appointment-reference', valueReference: { reference: `Appointment/${o.id}` } }] });

        // both operations run before either is checked, so that one failing check does not hide the other
        const { errors, soft } = collector();
        const holdId = rid();
        expectStatus(await sys.post('/Appointment/$hold', param(offers[0]), withRid(holdId)), 200);
        await soft(async () =>
            checkAudit(await auditWithSubtype(holdId, 'operation'), { subtype: 'operation', action: ['E', 'C', 'U'], outcome: '0', rid: holdId, what: `Appointment/${offers[0].id}` }),
        );

        id = rid();
        const booking = param(offers[0]);
        booking.parameter.push({ name: 'patient-resource', resource: { resourceType: 'Patient', id: 'pat-audit', name: [{ family: 'Audited' }] } });
        expectStatus(await sys.post('/Appointment/$book', booking, withRid(id)), 200);
        await soft(async () =>
            checkAudit(await auditWithSubtype(id, 'operation'), { subtype: 'operation', action: ['E', 'C', 'U'], outcome: '0', rid: id, what: `Appointment/${offers[0].id}`, patient: PAT }),
        );
        assert.deepEqual(errors, [], 'the AuditEvents of $hold and $book');
    });

    it('refused requests: 401 and 403 are recorded with outcome 4', async () => {
        let id = rid();
        expectOutcome(await fhir(server, 'GET', `/${PAT}`, withRid(id)), 401);
        checkAudit(await auditOf(id, { query: `outcome=4&${since()}` }), { outcome: '4', rid: id });

        id = rid();
        expectForbidden(await doc.post('/Patient', { resourceType: 'Patient', name: [{ family: 'Nope' }] }, withRid(id)));
        checkAudit(await auditOf(id, { query: `outcome=4&${since()}` }), { outcome: '4', who: DR, altId: CLIENT.doc, roles: ['doctor'], rid: id });
    });
});

describe('no trace of a write that did not happen', () => {
    it('a 409 double booking and a 422 invalid resource leave no success AuditEvent', async () => {
        const first = appointment();
        expectStatus(await sys.post('/Appointment', first), 201);
        const clash = rid();
        const mark = uniq('clash');
        const res409 = await sys.post('/Appointment', { ...first, identifier: [{ system: SYS, value: mark }] }, withRid(clash));
        expectOutcome(res409, 409, 'conflict');
        const bad = rid();
        const res422 = await sys.post('/Patient', { resourceType: 'Patient', gender: 'robot', identifier: [{ system: SYS, value: mark }] }, withRid(bad));
        expectOutcome(res422, [400, 422]);
        // once a later request's batched AuditEvent is stored, anything about the failures would be too
        await flushMarker();
        const all = await sys.get(`/AuditEvent?${since()}&_count=500`);
        expectStatus(all, 200);
        for (const [id, what] of [
            [clash, '409'],
            [bad, '422'],
        ]) {
            const evs = (all.json.entry || []).map((e) => e.resource).filter((r) => auditRequestId(r) === id);
            assert.ok(!evs.some((e) => e.outcome === '0'), `no success AuditEvent for the ${what}: ${JSON.stringify(evs)}`);
            for (const e of evs) assert.notEqual(e.outcome, undefined);
        }
        const stored = await sys.get(`/Appointment?identifier=${encodeURIComponent(`${SYS}|${mark}`)}&_summary=count`);
        assert.equal(stored.json.total, 0);
    });
});

describe('append-only and searchable', () => {
    it('PUT, PATCH and DELETE on an AuditEvent are 405, also for a system-admin', async () => {
        const id = rid();
        expectStatus(await doc.get(`/${PAT}`, withRid(id)), 200);
        const ev = await auditOf(id);
        expectOutcome(await sys.put(`/AuditEvent/${ev.id}`, { ...ev, outcome: '0', outcomeDesc: 'rewritten' }), 405);
        expectOutcome(await sys.patch(`/AuditEvent/${ev.id}`, [{ op: 'replace', path: '/outcome', value: '8' }]), 405);
        expectOutcome(await sys.del(`/AuditEvent/${ev.id}`), 405);
        expectOutcome(await sys.del(`/AuditEvent?outcome=0`), 405);
        const again = await sys.get(`/AuditEvent/${ev.id}`);
        expectStatus(again, 200);
        assert.equal(again.json.meta.versionId, ev.meta.versionId, 'unchanged');
        // and in a transaction
        const tx = await sys.post('', { resourceType: 'Bundle', type: 'transaction', entry: [{ request: { method: 'DELETE', url: `AuditEvent/${ev.id}` } }] });
        expectStatus(tx, [400, 405, 409, 422]);
        expectStatus(await sys.get(`/AuditEvent/${ev.id}`), 200);
    });

    it('clinic-admin searches by date, agent, entity, patient, type, subtype, action, outcome, altid', async () => {
        const id = rid();
        expectStatus(await doc.get(`/${PAT}`, withRid(id)), 200);
        await auditOf(id);
        const today = new Date().toISOString().slice(0, 10);
        const hit = async (query) => {
            const res = await cadmin.get(`/AuditEvent?${query}&${since()}&_count=500`);
            expectStatus(res, 200);
            return (res.json.entry || []).some((e) => e.resource && auditRequestId(e.resource) === id);
        };
        for (const q of [
            `date=ge${today}`,
            `agent=${DR}`,
            `entity=${PAT}`,
            `patient=${PAT}`,
            'type=rest',
            `type=${encodeURIComponent(`${AUDIT_TYPE}|rest`)}`,
            'subtype=read',
            'action=R',
            'outcome=0',
            `altid=${CLIENT.doc}`,
        ]) {
            assert.ok(await hit(q), `AuditEvent?${q} finds the read`);
        }
        for (const q of ['date=lt2001-01-01', `agent=Practitioner/${uniq('other')}`, 'action=C', 'outcome=4', 'subtype=create', `patient=Patient/${uniq('other')}`]) {
            assert.ok(!(await hit(q)), `AuditEvent?${q} does not find it`);
        }
    });
});

describe('retention', () => {
    it('AuditEvents older than audit.retention_days are deleted by the sweeper; recent ones stay', async () => {
        // an old event: POSTed with an old `recorded` and, in case the server stamps its own time, back-dated in SQL
        const old = await sys.post('/AuditEvent', {
            resourceType: 'AuditEvent',
            type: { system: AUDIT_TYPE, code: 'rest' },
            action: 'R',
            recorded: '2001-01-01T00:00:00Z',
            outcome: '0',
            agent: [{ requestor: true, who: { display: 'imported' } }],
            source: { observer: { display: 'legacy system' } },
        });
        let oldId;
        if (old.status === 201) {
            oldId = old.json.id;
        } else {
            // the server refuses client-made AuditEvents: take one of its own
            const id = rid();
            expectStatus(await doc.get(`/${PAT}`, withRid(id)), 200);
            oldId = (await auditOf(id)).id;
        }
        const recentId = rid();
        expectStatus(await doc.get(`/${PAT}`, withRid(recentId)), 200);
        const recent = await auditOf(recentId);
        const port = process.env.FHIRSCHED_TEST_PG_PORT;
        const db = new URL(server.databaseUrl).pathname.slice(1);
        await psql(port, `UPDATE resource SET last_updated = now() - interval '400 days' WHERE res_type = 'AuditEvent' AND id = '${oldId}'`, { db });
        await psql(port, `UPDATE resource_history SET last_updated = now() - interval '400 days' WHERE res_type = 'AuditEvent' AND id = '${oldId}'`, { db });

        const gone = await pollUntil(
            async () => {
                const r = await sys.get(`/AuditEvent/${oldId}`);
                return [404, 410].includes(r.status);
            },
            { timeoutMs: 10_000, intervalMs: 200 },
        );
        assert.ok(gone, `the old AuditEvent ${oldId} was swept (sweep interval 200 ms, retention 1 day)`);
        expectStatus(await sys.get(`/AuditEvent/${recent.id}`), 200);
    });
});
