// The scheduling model (services, roles, locations, schedules, devices) is kept per loop thread between operations
// (src/sched/ops.c, STMT_MODEL) and re-read only when the database's version of it (sched_model_version) changes. Two server instances
// on one database: after any committed change of the model on one, the very next $find on the other answers from the
// new model, never from the one it holds - a new practitioner's role, changed hours, a deactivated role, a deleted
// Schedule and a changed service.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createTestDatabase, expectStatus, fhir, startServer, uniq } from '../lib/harness.mjs';

const SERVICE_TYPE = 'http://terminology.hl7.org/CodeSystem/service-type';
const VISIT = `${SERVICE_TYPE}|cache-visit`;
const MONDAY = '2031-03-03'; // a Monday
const tag = uniq('cache').toLowerCase().replace(/[^a-z0-9-]/g, '-');
const minutes = (tail, value) => ({ url: `http://fhirsched.org/fhir/StructureDefinition/${tail}`, valueDuration: { value, unit: 'min', system: 'http://unitsofmeasure.org', code: 'min' } });
const hours = (from, to) => [{ daysOfWeek: ['mon', 'tue', 'wed', 'thu', 'fri'], availableStartTime: from, availableEndTime: to }];

let db;
let a;
let b;
// Every server's threads: the requests below go round them so that each thread's model is exercised.
const THREADS = { FHIRSCHED_THREADS: '2' };

before(async () => {
    db = await createTestDatabase();
    a = await startServer({ databaseUrl: db.url, env: THREADS });
    b = await startServer({ databaseUrl: db.url, env: THREADS });
    await put(a, { resourceType: 'Location', id: `${tag}-clinic`, status: 'active', name: 'Cache clinic', mode: 'instance' });
    await put(a, service(30));
    await addPractitioner(a, 0, hours('09:00:00', '12:00:00'));
});

after(async () => {
    await a?.stop();
    await b?.stop();
    await db?.drop();
});

async function put(server, resource) {
    const res = await fhir(server, 'PUT', `/${resource.resourceType}/${resource.id}`, { body: resource });
    assert.ok([200, 201].includes(res.status), `PUT ${resource.resourceType}/${resource.id}: ${res.status} ${res.text.slice(0, 300)}`);
    return res.json;
}

async function addPractitioner(server, n, availableTime) {
    await put(server, { resourceType: 'Practitioner', id: `${tag}-dr-${n}`, active: true, name: [{ family: `Cache${n}` }] });
    await put(server, role(n, availableTime));
    await put(server, { resourceType: 'Schedule', id: `${tag}-sched-${n}`, active: true, actor: [{ reference: `Practitioner/${tag}-dr-${n}` }] });
}

/** The one service, of `duration` minutes on a 30-minute grid. */
function service(duration) {
    return {
        resourceType: 'HealthcareService',
        id: `${tag}-svc`,
        active: true,
        name: 'Cache visit',
        location: [{ reference: `Location/${tag}-clinic` }],
        type: [{ coding: [{ system: SERVICE_TYPE, code: 'cache-visit' }] }],
        extension: [minutes('service-duration', duration), minutes('slot-alignment', 30)],
    };
}

function role(n, availableTime, extra = {}) {
    return {
        resourceType: 'PractitionerRole',
        id: `${tag}-role-${n}`,
        active: true,
        practitioner: { reference: `Practitioner/${tag}-dr-${n}` },
        location: [{ reference: `Location/${tag}-clinic` }],
        healthcareService: [{ reference: `HealthcareService/${tag}-svc` }],
        availableTime,
        ...extra,
    };
}

/** Every offer of one $find on `server` over the Monday, as "practitioner@HH:MM" sorted. */
async function offers(server) {
    const res = await fhir(server, 'GET', `/Appointment/$find?start=${MONDAY}T00:00:00Z&end=${MONDAY}T23:59:00Z&visit-type=${VISIT}&_count=200`);
    expectStatus(res, 200);
    return (res.json.entry || [])
        .filter((e) => e.resource.resourceType === 'Appointment') // an empty answer carries an OperationOutcome
        .map((e) => {
            const who = e.resource.participant.map((p) => p.actor?.reference).find((r) => r?.startsWith('Practitioner/'));
            return `${who.split('/')[1].replace(`${tag}-`, '')}@${e.resource.start.slice(11, 16)}`;
        })
        .sort();
}

/** Asks every thread of `server` (a few requests each) and expects the same answer from all. */
async function offersEverywhere(server) {
    const answers = await Promise.all(Array.from({ length: 4 }, () => offers(server)));
    for (const x of answers.slice(1)) assert.deepEqual(x, answers[0], 'two threads of one instance answered differently');
    return answers[0];
}

const times = (dr, from, to) => {
    const out = [];
    for (let m = from * 60; m + 30 <= to * 60; m += 30) out.push(`${dr}@${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`);
    return out;
};

test('a model change on one instance is seen by the next $find on the other', async () => {
    // both instances (every thread) now hold the model with one practitioner, 09:00-12:00 UTC
    assert.deepEqual(await offersEverywhere(a), times('dr-0', 9, 12));
    assert.deepEqual(await offersEverywhere(b), times('dr-0', 9, 12));

    // a second practitioner, written on a: b offers her at once
    await addPractitioner(a, 1, hours('13:00:00', '15:00:00'));
    assert.deepEqual(await offersEverywhere(b), [...times('dr-0', 9, 12), ...times('dr-1', 13, 15)].sort());

    // changed hours, written on b: a answers with them
    await put(b, role(0, hours('10:00:00', '11:00:00')));
    assert.deepEqual(await offersEverywhere(a), [...times('dr-0', 10, 11), ...times('dr-1', 13, 15)].sort());

    // a deactivated role, written on a
    await put(a, role(1, hours('13:00:00', '15:00:00'), { active: false }));
    assert.deepEqual(await offersEverywhere(b), times('dr-0', 10, 11));

    // a longer service, on b: one hour fits 10:00-11:00 once
    await put(b, service(60));
    assert.deepEqual(await offersEverywhere(a), ['dr-0@10:00']);

    // a deleted Schedule, on a: its practitioner is offered nowhere
    const del = await fhir(a, 'DELETE', `/Schedule/${tag}-sched-0`);
    assert.ok([200, 204].includes(del.status), `DELETE Schedule: ${del.status}`);
    assert.deepEqual(await offersEverywhere(b), []);
});
