// The data the bench runs on, written through the server's own API.
//
// The standard dataset (issue 8): 1 clinic, 20 practitioners with roles and weekday hours, 20 schedules, 20 x 30 days x
// 16 half-hour Slots = 9,600 Slots, 200 Patients. Extra, for $find with a room: 4 rooms in the clinic (2 treatment
// rooms, 2 consultation rooms) and a second HealthcareService that needs a treatment room, offered by all 20 roles.
//
// The booking fixtures ($hold/$book): 20 more practitioners whose Schedules publish no Slots, so their hours offer as
// many free times as a run can book, far from the days the other scenarios read. They are written only when a booking
// scenario runs, after the $find scenarios, so those read the standard model.
import { checkFhirAnswer, fhirUnchecked } from '../lib/harness.mjs';

export const DAY0 = new Date(Date.UTC(2027, 0, 4)); // a Monday, in the future of any run
export const DAYS = 30;
export const PRACTITIONERS = 20;
export const SLOTS_PER_DAY = 16; // 08:00-16:00 UTC
export const DAY_MS = 86400_000;
export const iso = (d) => new Date(d).toISOString().replace('.000Z', 'Z');
export const isoDay = (d) => iso(d).slice(0, 10);

const SERVICE_TYPE = 'http://terminology.hl7.org/CodeSystem/service-type';
const ROOM_TYPE = 'http://fhirsched.org/fhir/CodeSystem/room-type';
const EXT = 'http://fhirsched.org/fhir/StructureDefinition/';
/** visit-type of the plain consultation (no room) and of the treatment that needs a treatment room. */
export const CONSULTATION = `${SERVICE_TYPE}|124`;
export const TREATMENT = `${SERVICE_TYPE}|221`;
export const TREATMENT_ROOMS = ['Location/bench-room-0', 'Location/bench-room-1'];
/** visit-type of the booking fixtures' service. */
export const BOOKING = `${SERVICE_TYPE}|bench-booking`;

const code = (system, c) => ({ coding: [{ system, code: c }] });
const duration = (tail, minutes) => ({ url: `${EXT}${tail}`, valueDuration: { value: minutes, unit: 'min', system: 'http://unitsofmeasure.org', code: 'min' } });
const weekdayHours = [{ daysOfWeek: ['mon', 'tue', 'wed', 'thu', 'fri'], availableStartTime: '08:00:00', availableEndTime: '16:00:00' }];
const put = (r) => ({ fullUrl: `urn:uuid:${r.id}`, resource: r, request: { method: 'PUT', url: `${r.resourceType}/${r.id}` } });

/** The seeded days as YYYY-MM-DD, one past the last (so that day i to day i + 1 is always a pair). */
export const seededDays = () => Array.from({ length: DAYS + 1 }, (_, d) => isoDay(DAY0.getTime() + d * DAY_MS));

/** The standard dataset as PUT entries: `base` (everything but Slots) and `slots`. */
export function standardDataset() {
    const resources = [
        { resourceType: 'Location', id: 'bench-clinic', status: 'active', name: 'Bench clinic', mode: 'instance' },
        {
            resourceType: 'HealthcareService',
            id: 'bench-svc',
            active: true,
            name: 'General consultation',
            location: [{ reference: 'Location/bench-clinic' }],
            type: [code(SERVICE_TYPE, CONSULTATION.split('|')[1])],
        },
        {
            resourceType: 'HealthcareService',
            id: 'bench-treatment-svc',
            extension: [{ url: `${EXT}required-location-type`, valueCodeableConcept: code(ROOM_TYPE, 'treatment-room') }],
            active: true,
            name: 'Minor treatment',
            location: [{ reference: 'Location/bench-clinic' }],
            type: [code(SERVICE_TYPE, TREATMENT.split('|')[1])],
        },
    ];
    for (let r = 0; r < 4; r++)
        resources.push({
            resourceType: 'Location',
            id: `bench-room-${r}`,
            status: 'active',
            name: `Bench room ${r}`,
            mode: 'instance',
            type: [code(ROOM_TYPE, r < 2 ? 'treatment-room' : 'consultation-room')],
            physicalType: code('http://terminology.hl7.org/CodeSystem/location-physical-type', 'ro'),
            partOf: { reference: 'Location/bench-clinic' },
        });
    for (let p = 0; p < PRACTITIONERS; p++) {
        resources.push({ resourceType: 'Practitioner', id: `bench-dr-${p}`, active: true, name: [{ family: `Bench${p}` }] });
        resources.push({
            resourceType: 'PractitionerRole',
            id: `bench-role-${p}`,
            active: true,
            practitioner: { reference: `Practitioner/bench-dr-${p}` },
            location: [{ reference: 'Location/bench-clinic' }],
            healthcareService: [{ reference: 'HealthcareService/bench-svc' }, { reference: 'HealthcareService/bench-treatment-svc' }],
            availableTime: weekdayHours,
        });
        resources.push({
            resourceType: 'Schedule',
            id: `bench-sched-${p}`,
            active: true,
            actor: [{ reference: `Practitioner/bench-dr-${p}` }, { reference: 'Location/bench-clinic' }],
        });
    }
    for (let i = 0; i < 200; i++)
        resources.push({ resourceType: 'Patient', id: `bench-pat-${i}`, name: [{ family: `Patient${i}` }], identifier: [{ system: 'urn:bench', value: `P${i}` }] });
    const slots = [];
    for (let p = 0; p < PRACTITIONERS; p++)
        for (let d = 0; d < DAYS; d++)
            for (let h = 0; h < SLOTS_PER_DAY; h++) {
                const start = DAY0.getTime() + d * DAY_MS + (8 * 60 + h * 30) * 60_000;
                slots.push(put({ resourceType: 'Slot', id: `bench-slot-${p}-${d}-${h}`, schedule: { reference: `Schedule/bench-sched-${p}` }, status: 'free', start: iso(start), end: iso(start + 30 * 60_000) }));
            }
    return { base: resources.map(put), slots };
}

const transactionRequest = (entries) => ({
    body: { resourceType: 'Bundle', type: 'transaction', entry: entries },
    headers: { prefer: 'return=minimal' },
    timeoutMs: 120_000,
});

/** Throws unless a transaction's answer says it succeeded and is valid FHIR. */
function checkTransaction(res) {
    if (res.status !== 200) throw new Error(`transaction answered ${res.status}: ${res.text.slice(0, 500)}`);
    checkFhirAnswer(res);
}

/** POSTs a transaction Bundle of `entries`; throws unless it succeeded. */
export async function postTransaction(server, entries) {
    checkTransaction(await fhirUnchecked(server, 'POST', '/', transactionRequest(entries)));
}

/**
 * Writes the standard dataset; resolves with the Slot seeding rate (Slots/s, in transactions of 400). The clock runs
 * while the Bundles are sent and answered only: the harness's checks of each answer (JSON Schema validation of the
 * 400-entry response, about a quarter of a second each) run after it stops, as a loader would not make them.
 */
export async function seedStandard(server) {
    const { base, slots } = standardDataset();
    await postTransaction(server, base);
    const answers = [];
    const t0 = performance.now();
    for (let i = 0; i < slots.length; i += 400) answers.push(await fhirUnchecked(server, 'POST', '/', transactionRequest(slots.slice(i, i + 400))));
    const rate = Math.round(slots.length / ((performance.now() - t0) / 1000));
    answers.forEach(checkTransaction);
    return rate;
}

/** First day of the uncontended bookings, and of the race: Mondays years after the seeded days, and years apart. */
export const BOOKING_DAY0 = Date.UTC(2029, 0, 1);
export const RACE_DAY0 = Date.UTC(2033, 0, 3);

/**
 * The booking fixtures: a service of 30-minute appointments on a 30-minute grid (so one $find never offers two
 * overlapping times of one practitioner), 20 practitioners with weekday hours and Schedules without Slots.
 */
export async function seedBookingFixtures(server) {
    const resources = [
        {
            resourceType: 'HealthcareService',
            id: 'bench-booking-svc',
            extension: [duration('service-duration', 30), duration('slot-alignment', 30)],
            active: true,
            name: 'Booking bench',
            location: [{ reference: 'Location/bench-clinic' }],
            type: [code(SERVICE_TYPE, BOOKING.split('|')[1])],
        },
    ];
    for (let p = 0; p < PRACTITIONERS; p++) {
        resources.push({ resourceType: 'Practitioner', id: `bench-book-dr-${p}`, active: true, name: [{ family: `Booker${p}` }] });
        resources.push({
            resourceType: 'PractitionerRole',
            id: `bench-book-role-${p}`,
            active: true,
            practitioner: { reference: `Practitioner/bench-book-dr-${p}` },
            location: [{ reference: 'Location/bench-clinic' }],
            healthcareService: [{ reference: 'HealthcareService/bench-booking-svc' }],
            availableTime: weekdayHours,
        });
        resources.push({ resourceType: 'Schedule', id: `bench-book-sched-${p}`, active: true, actor: [{ reference: `Practitioner/bench-book-dr-${p}` }] });
    }
    await postTransaction(server, resources.map(put));
}

/** The n-th weekday (Monday to Friday) counted from the Monday `day0` (ms), as ms. */
export const weekday = (day0, n) => day0 + (Math.floor(n / 5) * 7 + (n % 5)) * DAY_MS;
