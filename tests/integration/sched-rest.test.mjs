// Plain REST cannot bypass the scheduling invariants (docs/scheduling-contract.md, "Who blocks what"): the database
// refuses overlapping blocking Appointments for one practitioner, role, room or slot, whatever the interface (POST,
// PUT, PATCH, transaction and batch Bundles), with 409 and an OperationOutcome naming the actor. Buildings, patients
// and services are shared; proposed, cancelled, noshow, entered-in-error and waitlist Appointments block nothing,
// nor do declined participants or expired holds. Slots referenced by a booked Appointment turn busy and back to free.
// Rules (working hours, leave ...) are not applied to plain writes: every time here is far outside anybody's hours.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { create, expectOutcome, expectStatus, fhir, sleep, startServer, uniq } from '../lib/harness.mjs';

const EXT = 'http://fhirsched.org/fhir/StructureDefinition/';
const UCUM = 'http://unitsofmeasure.org';
const ROOM = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/location-physical-type', code: 'ro' }] };
const BUILDING = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/location-physical-type', code: 'bu' }] };

let server;
before(async () => {
    server = await startServer();
});
after(async () => {
    await server?.stop();
});

// Every test works on its own actors, on a day of its own in 2030 (no rules apply to REST writes, and nothing else
// books there), so that the tests are independent.
let dayCounter = 0;
function freshDay() {
    dayCounter += 1;
    const d = new Date(Date.UTC(2030, 0, 1) + dayCounter * 86400_000);
    return d.toISOString().slice(0, 10);
}
/** Instant on `day` at hh:mm UTC. */
const at = (day, hhmm) => `${day}T${hhmm}:00Z`;

async function practitioner() {
    return create(server, { resourceType: 'Practitioner', active: true, name: [{ family: uniq('Rest'), given: ['Test'] }] });
}
async function room(physicalType = ROOM) {
    return create(server, { resourceType: 'Location', status: 'active', name: uniq('Room'), mode: 'instance', physicalType });
}
async function patient() {
    return create(server, { resourceType: 'Patient', name: [{ family: uniq('Pat') }] });
}

function appt(day, from, to, actors, extra = {}) {
    return {
        resourceType: 'Appointment',
        status: 'booked',
        start: at(day, from),
        end: at(day, to),
        participant: actors.map((a) => (typeof a === 'string' ? { actor: { reference: a }, status: 'accepted' } : a)),
        ...extra,
    };
}
const duration = (minutes) => ({ value: minutes, unit: 'min', system: UCUM, code: 'min' });

async function post(resource) {
    return fhir(server, 'POST', `/${resource.resourceType}`, { body: resource });
}

/** A 409 whose OperationOutcome says conflict and names the actor that is taken. */
function expectConflict(res, actor) {
    const oo = expectOutcome(res, 409, 'conflict');
    if (actor) {
        const text = JSON.stringify(oo.issue);
        assert.ok(text.includes(actor), `the conflict names ${actor}: ${text}`);
    }
    return oo;
}

async function countAppointments(query) {
    const res = await fhir(server, 'GET', `/Appointment?${query}&_summary=count`);
    expectStatus(res, 200);
    return res.json.total;
}

describe('overlap of one exclusive actor', () => {
    it('POST of an overlapping booking for the same practitioner is 409 and is not stored', async () => {
        const dr = await practitioner();
        const pat = await patient();
        const day = freshDay();
        const first = await create(server, appt(day, '09:00', '09:30', [`Practitioner/${dr.id}`, `Patient/${pat.id}`]));
        assert.equal(first.status, 'booked');
        for (const [from, to] of [
            ['09:00', '09:30'], // the same time
            ['09:15', '09:45'], // overlapping the end
            ['08:45', '09:15'], // overlapping the start
            ['09:10', '09:20'], // inside
            ['08:00', '10:00'], // around
        ]) {
            const res = await post(appt(day, from, to, [`Practitioner/${dr.id}`]));
            expectConflict(res, `Practitioner/${dr.id}`);
        }
        assert.equal(await countAppointments(`practitioner=Practitioner/${dr.id}`), 1);
        // Touching is not overlapping: [09:30, 10:00) after [09:00, 09:30).
        await create(server, appt(day, '09:30', '10:00', [`Practitioner/${dr.id}`]));
        await create(server, appt(day, '08:30', '09:00', [`Practitioner/${dr.id}`]));
        assert.equal(await countAppointments(`practitioner=Practitioner/${dr.id}`), 3);
    });

    it('other statuses that block: pending, arrived, checked-in, fulfilled', async () => {
        const dr = await practitioner();
        const day = freshDay();
        const slots = [
            ['pending', '08:00', '08:30'],
            ['arrived', '09:00', '09:30'],
            ['checked-in', '10:00', '10:30'],
            ['fulfilled', '11:00', '11:30'],
        ];
        for (const [status, from, to] of slots) {
            await create(server, appt(day, from, to, [`Practitioner/${dr.id}`], { status }));
            expectConflict(await post(appt(day, from, to, [`Practitioner/${dr.id}`])), `Practitioner/${dr.id}`);
        }
    });

    it('PUT (update-as-create, and moving an existing booking) onto a taken time is 409; the stored one is unchanged', async () => {
        const dr = await practitioner();
        const day = freshDay();
        await create(server, appt(day, '10:00', '10:30', [`Practitioner/${dr.id}`]));
        const id = uniq('rest-put');
        expectConflict(
            await fhir(server, 'PUT', `/Appointment/${id}`, { body: { ...appt(day, '10:15', '10:45', [`Practitioner/${dr.id}`]), id } }),
            `Practitioner/${dr.id}`,
        );
        expectStatus(await fhir(server, 'GET', `/Appointment/${id}`), 404);

        const second = await create(server, appt(day, '11:00', '11:30', [`Practitioner/${dr.id}`]));
        const moved = { ...second, start: at(day, '10:20'), end: at(day, '10:50') };
        expectConflict(await fhir(server, 'PUT', `/Appointment/${second.id}`, { body: moved }), `Practitioner/${dr.id}`);
        const now = await fhir(server, 'GET', `/Appointment/${second.id}`);
        expectStatus(now, 200);
        assert.equal(now.json.meta.versionId, second.meta.versionId, 'no new version');
        assert.equal(Date.parse(now.json.start), Date.parse(at(day, '11:00')));
        // Moving within its own time (overlapping only itself) is fine.
        const self = { ...now.json, start: at(day, '11:10'), end: at(day, '11:40') };
        expectStatus(await fhir(server, 'PUT', `/Appointment/${second.id}`, { body: self }), 200);
    });

    it('PATCH moving a booking onto a taken time is 409', async () => {
        const dr = await practitioner();
        const day = freshDay();
        await create(server, appt(day, '13:00', '14:00', [`Practitioner/${dr.id}`]));
        const b = await create(server, appt(day, '15:00', '15:30', [`Practitioner/${dr.id}`]));
        const res = await fhir(server, 'PATCH', `/Appointment/${b.id}`, {
            headers: { 'content-type': 'application/json-patch+json' },
            body: JSON.stringify([
                { op: 'replace', path: '/start', value: at(day, '13:30') },
                { op: 'replace', path: '/end', value: at(day, '14:00') },
            ]),
        });
        expectConflict(res, `Practitioner/${dr.id}`);
        const ok = await fhir(server, 'PATCH', `/Appointment/${b.id}`, {
            headers: { 'content-type': 'application/json-patch+json' },
            body: JSON.stringify([
                { op: 'replace', path: '/start', value: at(day, '14:00') },
                { op: 'replace', path: '/end', value: at(day, '14:30') },
            ]),
        });
        expectStatus(ok, 200);
    });

    it('the same room for two practitioners is 409; different rooms at the same time are fine', async () => {
        const [a, b, c] = [await practitioner(), await practitioner(), await practitioner()];
        const [r1, r2] = [await room(), await room()];
        const day = freshDay();
        await create(server, appt(day, '09:00', '10:00', [`Practitioner/${a.id}`, `Location/${r1.id}`]));
        expectConflict(await post(appt(day, '09:30', '10:30', [`Practitioner/${b.id}`, `Location/${r1.id}`])), `Location/${r1.id}`);
        await create(server, appt(day, '09:30', '10:30', [`Practitioner/${b.id}`, `Location/${r2.id}`]));
        await create(server, appt(day, '09:00', '10:00', [`Practitioner/${c.id}`]));
    });

    it('a bed is exclusive like a room', async () => {
        const bed = await room({ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/location-physical-type', code: 'bd' }] });
        const day = freshDay();
        await create(server, appt(day, '09:00', '10:00', [`Location/${bed.id}`]));
        expectConflict(await post(appt(day, '09:00', '10:00', [`Location/${bed.id}`])), `Location/${bed.id}`);
    });

    it('a Device is exclusive', async () => {
        const device = await create(server, { resourceType: 'Device', status: 'active' });
        const day = freshDay();
        const [a, b] = [await practitioner(), await practitioner()];
        await create(server, appt(day, '09:00', '10:00', [`Practitioner/${a.id}`, `Device/${device.id}`]));
        expectConflict(await post(appt(day, '09:30', '10:30', [`Practitioner/${b.id}`, `Device/${device.id}`])), `Device/${device.id}`);
        await create(server, appt(day, '10:00', '11:00', [`Practitioner/${b.id}`, `Device/${device.id}`]));
    });

    it('buildings do not block: the demo-like clinic building holds many appointments at once', async () => {
        const building = await room(BUILDING);
        const day = freshDay();
        for (let i = 0; i < 3; i++) {
            const dr = await practitioner();
            await create(server, appt(day, '09:00', '10:00', [`Practitioner/${dr.id}`, `Location/${building.id}`]));
        }
        // A Location without any physicalType is not exclusive either.
        const plain = await create(server, { resourceType: 'Location', status: 'active', name: uniq('Anywhere') });
        const [x, y] = [await practitioner(), await practitioner()];
        await create(server, appt(day, '11:00', '12:00', [`Practitioner/${x.id}`, `Location/${plain.id}`]));
        await create(server, appt(day, '11:00', '12:00', [`Practitioner/${y.id}`, `Location/${plain.id}`]));
    });

    it('patients and services are not exclusive', async () => {
        const pat = await patient();
        const svc = await create(server, { resourceType: 'HealthcareService', active: true, name: uniq('Svc') });
        const day = freshDay();
        const [a, b] = [await practitioner(), await practitioner()];
        await create(server, appt(day, '09:00', '10:00', [`Practitioner/${a.id}`, `Patient/${pat.id}`, `HealthcareService/${svc.id}`]));
        await create(server, appt(day, '09:00', '10:00', [`Practitioner/${b.id}`, `Patient/${pat.id}`, `HealthcareService/${svc.id}`]));
    });

    it('a PractitionerRole blocks its practitioner, and the practitioner blocks the role', async () => {
        const dr = await practitioner();
        const role = await create(server, { resourceType: 'PractitionerRole', active: true, practitioner: { reference: `Practitioner/${dr.id}` } });
        const day = freshDay();
        await create(server, appt(day, '09:00', '10:00', [`PractitionerRole/${role.id}`]));
        expectConflict(await post(appt(day, '09:30', '10:30', [`Practitioner/${dr.id}`])), `Practitioner/${dr.id}`);
        await create(server, appt(day, '11:00', '12:00', [`Practitioner/${dr.id}`]));
        expectConflict(await post(appt(day, '11:30', '12:30', [`PractitionerRole/${role.id}`])));
        // The role's own booking is in the way; the conflict may name the role or its practitioner (the actor blocked).
        const oo = expectConflict(await post(appt(day, '09:30', '09:45', [`PractitionerRole/${role.id}`])));
        const text = JSON.stringify(oo.issue);
        assert.ok(text.includes(`PractitionerRole/${role.id}`) || text.includes(`Practitioner/${dr.id}`), text);
    });

    it('a declined participant does not block', async () => {
        const dr = await practitioner();
        const day = freshDay();
        await create(
            server,
            appt(day, '09:00', '10:00', [{ actor: { reference: `Practitioner/${dr.id}` }, status: 'declined' }]),
        );
        await create(server, appt(day, '09:00', '10:00', [`Practitioner/${dr.id}`]));
    });

    it('buffers stored on an Appointment widen the time it blocks', async () => {
        const dr = await practitioner();
        const day = freshDay();
        await create(
            server,
            appt(day, '10:00', '10:30', [`Practitioner/${dr.id}`], {
                extension: [
                    { url: `${EXT}buffer-before`, valueDuration: duration(10) },
                    { url: `${EXT}buffer-after`, valueDuration: duration(15) },
                ],
            }),
        );
        expectConflict(await post(appt(day, '10:30', '11:00', [`Practitioner/${dr.id}`])), `Practitioner/${dr.id}`);
        expectConflict(await post(appt(day, '09:30', '09:55', [`Practitioner/${dr.id}`])), `Practitioner/${dr.id}`);
        await create(server, appt(day, '10:45', '11:15', [`Practitioner/${dr.id}`]));
        await create(server, appt(day, '09:20', '09:50', [`Practitioner/${dr.id}`]));
    });
});

describe('statuses that do not block', () => {
    for (const status of ['proposed', 'cancelled', 'noshow', 'entered-in-error', 'waitlist']) {
        it(`${status} does not block a booking, nor is it blocked`, async () => {
            const dr = await practitioner();
            const day = freshDay();
            await create(server, appt(day, '09:00', '10:00', [`Practitioner/${dr.id}`], { status }));
            await create(server, appt(day, '09:00', '10:00', [`Practitioner/${dr.id}`]));
            await create(server, appt(day, '09:00', '10:00', [`Practitioner/${dr.id}`], { status }));
        });
    }

    it('a proposed Appointment turned booked over a taken time is 409', async () => {
        const dr = await practitioner();
        const day = freshDay();
        const proposed = await create(server, appt(day, '09:00', '10:00', [`Practitioner/${dr.id}`], { status: 'proposed' }));
        await create(server, appt(day, '09:30', '10:30', [`Practitioner/${dr.id}`]));
        expectConflict(await fhir(server, 'PUT', `/Appointment/${proposed.id}`, { body: { ...proposed, status: 'booked' } }));
        const now = await fhir(server, 'GET', `/Appointment/${proposed.id}`);
        assert.equal(now.json.status, 'proposed');
    });

    it('cancelling frees the time; so does deleting', async () => {
        const dr = await practitioner();
        const day = freshDay();
        const a = await create(server, appt(day, '09:00', '10:00', [`Practitioner/${dr.id}`]));
        expectConflict(await post(appt(day, '09:00', '10:00', [`Practitioner/${dr.id}`])));
        expectStatus(await fhir(server, 'PUT', `/Appointment/${a.id}`, { body: { ...a, status: 'cancelled' } }), 200);
        const b = await create(server, appt(day, '09:00', '10:00', [`Practitioner/${dr.id}`]));
        expectStatus(await fhir(server, 'DELETE', `/Appointment/${b.id}`), [200, 204]);
        await create(server, appt(day, '09:00', '10:00', [`Practitioner/${dr.id}`]));
    });

    it('a pending hold blocks until its hold-expires instant, then no longer', async () => {
        const dr = await practitioner();
        const day = freshDay();
        const expires = new Date(Date.now() + 2000).toISOString();
        const hold = await create(
            server,
            appt(day, '09:00', '10:00', [`Practitioner/${dr.id}`], {
                status: 'pending',
                extension: [{ url: `${EXT}hold-expires`, valueInstant: expires }],
            }),
        );
        expectConflict(await post(appt(day, '09:30', '10:30', [`Practitioner/${dr.id}`])), `Practitioner/${dr.id}`);
        await sleep(Date.parse(expires) - Date.now() + 300);
        await create(server, appt(day, '09:30', '10:30', [`Practitioner/${dr.id}`]));
        // The expired hold cannot come back into force over the new booking.
        const again = await fhir(server, 'PUT', `/Appointment/${hold.id}`, {
            body: { ...hold, extension: [{ url: `${EXT}hold-expires`, valueInstant: new Date(Date.now() + 60_000).toISOString() }] },
        });
        expectConflict(again);
        // A hold written already expired blocks nothing.
        const past = new Date(Date.now() - 1000).toISOString();
        await create(
            server,
            appt(day, '11:00', '12:00', [`Practitioner/${dr.id}`], {
                status: 'pending',
                extension: [{ url: `${EXT}hold-expires`, valueInstant: past }],
            }),
        );
        await create(server, appt(day, '11:00', '12:00', [`Practitioner/${dr.id}`]));
    });

    it('a blocking status without start and end is 422', async () => {
        const dr = await practitioner();
        const res = await post({
            resourceType: 'Appointment',
            status: 'booked',
            participant: [{ actor: { reference: `Practitioner/${dr.id}` }, status: 'accepted' }],
        });
        expectOutcome(res, 422);
        // Proposed without times is fine (R4 app-3 only asks for times once it is booked etc.).
        await create(server, {
            resourceType: 'Appointment',
            status: 'proposed',
            participant: [{ actor: { reference: `Practitioner/${dr.id}` }, status: 'needs-action' }],
        });
    });
});

describe('Slots referenced by Appointments', () => {
    async function slotFor(day, from, to, status = 'free') {
        const dr = await practitioner();
        const sched = await create(server, {
            resourceType: 'Schedule',
            active: true,
            actor: [{ reference: `Practitioner/${dr.id}` }],
        });
        const slot = await create(server, {
            resourceType: 'Slot',
            schedule: { reference: `Schedule/${sched.id}` },
            status,
            start: at(day, from),
            end: at(day, to),
        });
        return { dr, sched, slot };
    }
    async function slotStatus(id) {
        const res = await fhir(server, 'GET', `/Slot/${id}`);
        expectStatus(res, 200);
        return res.json;
    }

    it('a booked Appointment makes its free Slot busy (a new Slot version); cancelling makes it free again', async () => {
        const day = freshDay();
        const { dr, slot } = await slotFor(day, '09:00', '09:30');
        const a = await create(server, appt(day, '09:00', '09:30', [`Practitioner/${dr.id}`], { slot: [{ reference: `Slot/${slot.id}` }] }));
        let s = await slotStatus(slot.id);
        assert.equal(s.status, 'busy');
        assert.ok(Number(s.meta.versionId) > Number(slot.meta.versionId), 'the Slot got a new version');
        expectStatus(await fhir(server, 'PUT', `/Appointment/${a.id}`, { body: { ...a, status: 'cancelled' } }), 200);
        s = await slotStatus(slot.id);
        assert.equal(s.status, 'free');
    });

    it('deleting the Appointment makes the Slot free again', async () => {
        const day = freshDay();
        const { dr, slot } = await slotFor(day, '10:00', '10:30');
        const a = await create(server, appt(day, '10:00', '10:30', [`Practitioner/${dr.id}`], { slot: [{ reference: `Slot/${slot.id}` }] }));
        assert.equal((await slotStatus(slot.id)).status, 'busy');
        expectStatus(await fhir(server, 'DELETE', `/Appointment/${a.id}`), [200, 204]);
        assert.equal((await slotStatus(slot.id)).status, 'free');
    });

    it('a Slot is exclusive: a second booking of the same Slot is 409 even with other actors', async () => {
        const day = freshDay();
        const { dr, slot } = await slotFor(day, '11:00', '11:30');
        await create(server, appt(day, '11:00', '11:30', [`Practitioner/${dr.id}`], { slot: [{ reference: `Slot/${slot.id}` }] }));
        const other = await practitioner();
        expectConflict(
            await post(appt(day, '11:00', '11:30', [`Practitioner/${other.id}`], { slot: [{ reference: `Slot/${slot.id}` }] })),
            `Slot/${slot.id}`,
        );
    });

    it('a proposed Appointment leaves its Slot free; booking it makes the Slot busy', async () => {
        const day = freshDay();
        const { dr, slot } = await slotFor(day, '12:00', '12:30');
        const p = await create(
            server,
            appt(day, '12:00', '12:30', [`Practitioner/${dr.id}`], { status: 'proposed', slot: [{ reference: `Slot/${slot.id}` }] }),
        );
        assert.equal((await slotStatus(slot.id)).status, 'free');
        expectStatus(await fhir(server, 'PUT', `/Appointment/${p.id}`, { body: { ...p, status: 'booked' } }), 200);
        assert.equal((await slotStatus(slot.id)).status, 'busy');
    });

    it('moving an Appointment from one Slot to another frees the first and takes the second', async () => {
        const day = freshDay();
        const { dr, sched, slot } = await slotFor(day, '13:00', '13:30');
        const second = await create(server, {
            resourceType: 'Slot',
            schedule: { reference: `Schedule/${sched.id}` },
            status: 'free',
            start: at(day, '14:00'),
            end: at(day, '14:30'),
        });
        const a = await create(server, appt(day, '13:00', '13:30', [`Practitioner/${dr.id}`], { slot: [{ reference: `Slot/${slot.id}` }] }));
        assert.equal((await slotStatus(slot.id)).status, 'busy');
        const moved = { ...a, start: at(day, '14:00'), end: at(day, '14:30'), slot: [{ reference: `Slot/${second.id}` }] };
        expectStatus(await fhir(server, 'PUT', `/Appointment/${a.id}`, { body: moved }), 200);
        assert.equal((await slotStatus(slot.id)).status, 'free');
        assert.equal((await slotStatus(second.id)).status, 'busy');
    });
});

describe('Bundles', () => {
    it('a transaction with two overlapping appointments is refused whole; nothing is stored', async () => {
        const dr = await practitioner();
        const day = freshDay();
        const mrn = uniq('mrn');
        const bundle = {
            resourceType: 'Bundle',
            type: 'transaction',
            entry: [
                {
                    fullUrl: 'urn:uuid:0b7e4f6a-1111-4c1e-9a55-3d2f8e4b7a10',
                    resource: { resourceType: 'Patient', identifier: [{ system: 'urn:oid:2.999.40.9', value: mrn }] },
                    request: { method: 'POST', url: 'Patient' },
                },
                {
                    resource: appt(day, '09:00', '09:30', [`Practitioner/${dr.id}`, 'urn:uuid:0b7e4f6a-1111-4c1e-9a55-3d2f8e4b7a10']),
                    request: { method: 'POST', url: 'Appointment' },
                },
                {
                    resource: appt(day, '09:15', '09:45', [`Practitioner/${dr.id}`]),
                    request: { method: 'POST', url: 'Appointment' },
                },
            ],
        };
        const res = await fhir(server, 'POST', '', { body: bundle });
        expectConflict(res);
        assert.equal(await countAppointments(`practitioner=Practitioner/${dr.id}`), 0);
        const pats = await fhir(server, 'GET', `/Patient?identifier=urn:oid:2.999.40.9|${mrn}&_summary=count`);
        assert.equal(pats.json.total, 0, 'the Patient of the refused transaction is not stored');
        // Without the overlap the same transaction goes through.
        bundle.entry[2].resource = appt(day, '09:30', '10:00', [`Practitioner/${dr.id}`]);
        const ok = await fhir(server, 'POST', '', { body: bundle });
        expectStatus(ok, 200);
        assert.equal(await countAppointments(`practitioner=Practitioner/${dr.id}`), 2);
    });

    it('a transaction that overlaps a stored booking is refused whole', async () => {
        const dr = await practitioner();
        const day = freshDay();
        await create(server, appt(day, '09:00', '10:00', [`Practitioner/${dr.id}`]));
        const res = await fhir(server, 'POST', '', {
            body: {
                resourceType: 'Bundle',
                type: 'transaction',
                entry: [
                    { resource: appt(day, '11:00', '12:00', [`Practitioner/${dr.id}`]), request: { method: 'POST', url: 'Appointment' } },
                    { resource: appt(day, '09:30', '10:30', [`Practitioner/${dr.id}`]), request: { method: 'POST', url: 'Appointment' } },
                ],
            },
        });
        expectConflict(res);
        assert.equal(await countAppointments(`practitioner=Practitioner/${dr.id}`), 1);
    });

    it('a transaction may move two bookings past each other (swap) when the end state has no overlap', async () => {
        const dr = await practitioner();
        const day = freshDay();
        const a = await create(server, appt(day, '09:00', '09:30', [`Practitioner/${dr.id}`]));
        const b = await create(server, appt(day, '10:00', '10:30', [`Practitioner/${dr.id}`]));
        // Move b out of the way first, then a into b's old time: each step is free in order.
        const res = await fhir(server, 'POST', '', {
            body: {
                resourceType: 'Bundle',
                type: 'transaction',
                entry: [
                    { resource: { ...b, start: at(day, '11:00'), end: at(day, '11:30') }, request: { method: 'PUT', url: `Appointment/${b.id}` } },
                    { resource: { ...a, start: at(day, '10:00'), end: at(day, '10:30') }, request: { method: 'PUT', url: `Appointment/${a.id}` } },
                ],
            },
        });
        expectStatus(res, 200);
        assert.equal(Date.parse((await fhir(server, 'GET', `/Appointment/${a.id}`)).json.start), Date.parse(at(day, '10:00')));
    });

    it('in a batch only the overlapping entry fails, with 409 in its response', async () => {
        const dr = await practitioner();
        const day = freshDay();
        const res = await fhir(server, 'POST', '', {
            body: {
                resourceType: 'Bundle',
                type: 'batch',
                entry: [
                    { resource: appt(day, '09:00', '09:30', [`Practitioner/${dr.id}`]), request: { method: 'POST', url: 'Appointment' } },
                    { resource: appt(day, '09:15', '09:45', [`Practitioner/${dr.id}`]), request: { method: 'POST', url: 'Appointment' } },
                ],
            },
        });
        expectStatus(res, 200);
        assert.equal(res.json.type, 'batch-response');
        assert.match(res.json.entry[0].response.status, /^201/);
        assert.match(res.json.entry[1].response.status, /^409/);
        const oo = res.json.entry[1].response.outcome;
        assert.equal(oo?.resourceType, 'OperationOutcome', 'the failed entry carries an OperationOutcome');
        assert.equal(oo.issue[0].code, 'conflict');
        assert.equal(await countAppointments(`practitioner=Practitioner/${dr.id}`), 1);
    });
});

describe('concurrency', () => {
    it('of many simultaneous POSTs for one practitioner and time, exactly one is stored', async () => {
        const dr = await practitioner();
        const day = freshDay();
        const results = await Promise.all(
            Array.from({ length: 8 }, (_, i) => post(appt(day, '09:00', `09:${String(10 + i).padStart(2, '0')}`, [`Practitioner/${dr.id}`]))),
        );
        const statuses = results.map((r) => r.status).sort();
        assert.equal(statuses.filter((s) => s === 201).length, 1, `statuses: ${statuses}`);
        assert.equal(statuses.filter((s) => s === 409).length, 7, `statuses: ${statuses}`);
        assert.equal(await countAppointments(`practitioner=Practitioner/${dr.id}`), 1);
    });
});
