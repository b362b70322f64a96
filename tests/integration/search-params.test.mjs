// Every search parameter of the 10 types, with its modifiers and prefixes
// (issue 3's behaviour contract; FHIR R4 search.html where it is silent).
//
// One server, one fixed set of fixtures (tests/integration/fixtures/search-fixtures.mjs)
// stored once by PUT in two transactions, then table-driven rows
// `[query, expected]`: `expected` is the exact set of matching ids among the
// fixtures of that type, or `{ has, not }` where the contract leaves the rest
// open (`ap`, `ne` on resources without the element). Rows run in order but
// only read, so any one of them can fail alone.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { expectFhirJson, expectOutcome, expectStatus, fhir, link, sleep, startServer } from '../lib/harness.mjs';
import {
    BCP47,
    BSN,
    ESCSYS,
    FIXTURES,
    FOREIGN,
    HAS_IDENTIFIER,
    IDSYS,
    IDSYS2,
    PREFIX,
    PROF_A,
    PROF_B,
    PROF_C,
    ROLECODE,
    ROLE_SYS,
    SCT,
    SEC,
    SVC_CAT,
    SVC_TYPE,
    TAGSYS,
    TAGSYS2,
    UZI,
    AGB,
    V2_0116,
    V2_0203,
    V2_0276,
    idsOf,
    isLate,
    putTransaction,
} from './fixtures/search-fixtures.mjs';

let server;
/** 'Type/id' -> meta.lastUpdated (ms since the epoch) as stored. */
const stored = new Map();
/** A second-precision instant between batch A and batch B (ms since the epoch). */
let cut;

before(async () => {
    server = await startServer();
    const all = Object.entries(FIXTURES).flatMap(([type, list]) => list.map((r) => ({ type, r })));
    const early = all.filter(({ type, r }) => !isLate(type, r.id)).map(({ r }) => r);
    const late = all.filter(({ type, r }) => isLate(type, r.id)).map(({ r }) => r);

    await transaction(early);
    const aTimes = await readBack(early);
    const aMax = Math.max(...aTimes);
    // The cut: a whole second at least 100 ms after every batch A write; batch B
    // starts more than a second after the cut, so second-precision prefixes on
    // the cut separate the batches whatever their rounding.
    cut = Math.ceil((aMax + 100) / 1000) * 1000;
    const wait = cut + 1300 - Date.now();
    if (wait > 0) await sleep(wait);
    await transaction(late);
    const bTimes = await readBack(late);
    assert.ok(Math.min(...bTimes) > cut + 1000, `setup: batch B (${new Date(Math.min(...bTimes)).toISOString()}) is not clear of the cut ${new Date(cut).toISOString()}`);
});

after(async () => {
    await server?.stop();
});

async function transaction(resources) {
    const res = await fhir(server, 'POST', '', { body: putTransaction(server.base, resources) });
    expectStatus(res, 200);
    assert.equal(res.json?.type, 'transaction-response', 'fixture transaction answered a transaction-response');
}

async function readBack(resources) {
    return Promise.all(
        resources.map(async (r) => {
            const res = await fhir(server, 'GET', `/${r.resourceType}/${r.id}`);
            expectStatus(res, 200);
            const t = Date.parse(res.json.meta?.lastUpdated);
            assert.ok(Number.isFinite(t), `${r.resourceType}/${r.id} has meta.lastUpdated`);
            stored.set(`${r.resourceType}/${r.id}`, t);
            return t;
        }),
    );
}

// ---------------------------------------------------------------------------
// Requests

/** A query-string value: percent-encoded, but `| , : /` left readable (they mean the same either way). */
function encValue(v) {
    return encodeURIComponent(v).replace(/%7C/g, '|').replace(/%2C/g, ',').replace(/%3A/g, ':').replace(/%2F/g, '/');
}

/** 'a=1&b:mod=x y' -> encoded query string; `{base}` stands for the server's FHIR base. */
function encQuery(q) {
    return q
        .replaceAll('{base}', server.base)
        .split('&')
        .map((pair) => {
            const i = pair.indexOf('=');
            return i < 0 ? pair : `${pair.slice(0, i)}=${encValue(pair.slice(i + 1))}`;
        })
        .join('&');
}

/** Checks the searchset shape of a 200 answer and returns the Bundle. */
function checkSearchset(res) {
    expectStatus(res, 200);
    expectFhirJson(res);
    const b = res.json;
    assert.equal(b.resourceType, 'Bundle');
    assert.equal(b.type, 'searchset');
    assert.ok(link(b, 'self'), 'searchset has a self link');
    for (const e of b.entry || []) {
        assert.ok(e.resource, 'entry.resource');
        if (e.search?.mode === 'outcome') {
            assert.equal(e.resource.resourceType, 'OperationOutcome', 'an outcome entry is an OperationOutcome');
            continue;
        }
        assert.equal(e.search?.mode, 'match', `entry.search.mode of ${e.fullUrl}`);
        assert.equal(e.fullUrl, `${server.base}/${e.resource.resourceType}/${e.resource.id}`, 'entry.fullUrl');
    }
    const n = matches(b).length;
    if (b.total !== undefined && !link(b, 'next')) assert.equal(b.total, n, 'total counts the matches');
    return b;
}

const matches = (b) => (b.entry || []).filter((e) => e.search?.mode === 'match');
const ids = (b) => matches(b).map((e) => e.resource.id).sort();
const keys = (b) => matches(b).map((e) => `${e.resource.resourceType}/${e.resource.id}`).sort();

async function get(path, headers = {}) {
    return fhir(server, 'GET', path, { headers });
}

async function postForm(path, form, headers = {}) {
    return fhir(server, 'POST', path, {
        body: form,
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    });
}

function checkExpected(got, expected, what) {
    if (Array.isArray(expected)) {
        assert.deepEqual(got, [...expected].sort(), `${what}: expected [${[...expected].sort()}], got [${got}]`);
    } else {
        for (const id of expected.has || []) assert.ok(got.includes(id), `${what}: expected ${id} among [${got}]`);
        for (const id of expected.not || []) assert.ok(!got.includes(id), `${what}: did not expect ${id} among [${got}]`);
    }
}

/** Runs a table: one test per row `[query, expected]` (query: string, or [label, () => string]). */
function table(type, rows) {
    for (const [query, expected] of rows) {
        const label = Array.isArray(query) ? query[0] : query;
        test(`${type}?${label}`, async () => {
            const q = Array.isArray(query) ? query[1]() : query;
            const path = `/${type}?${encQuery(q)}`;
            const b = checkSearchset(await get(path));
            checkExpected(ids(b), typeof expected === 'function' ? expected() : expected, `GET ${path}`);
        });
    }
}

/**
 * Expectation for an `ap` row: `has` (values inside the searched day or month) must match; each of
 * `others` (id -> its value) must not, when it lies clearly outside "about 10% of the distance to now"
 * (more than twice that, plus a day, from `target`), so the row holds whatever day the suite runs.
 */
function approx(target, has, others) {
    return () => {
        const t = Date.parse(target);
        const slack = 2 * 0.1 * Math.abs(t - Date.now()) + 86_400_000;
        return { has, not: Object.keys(others).filter((id) => Math.abs(Date.parse(others[id]) - t) > slack) };
    };
}

/** Every text in an OperationOutcome's issues (diagnostics, details.text, expression, location). */
function outcomeText(oo) {
    return (oo.issue || [])
        .flatMap((i) => [i.diagnostics, i.details?.text, ...(i.expression || []), ...(i.location || [])])
        .filter(Boolean)
        .join(' | ');
}

// ---------------------------------------------------------------------------
// The parameters every type has: _id, _lastUpdated, _tag, _profile, _security, identifier

function commonRows(type) {
    const p = PREFIX[type];
    const one = `${p}-1`;
    const two = `${p}-2`;
    const all = idsOf(type);
    const rest = all.filter((i) => i !== one && i !== two);
    const minus = (...x) => all.filter((i) => !x.includes(i));
    const rows = [
        [`_id=${one}`, [one]],
        [`_id=${one},${two}`, [one, two]],
        [`_id=${p}-99`, []],
        [`_id=${one}&_id=${two}`, []],
        [`_id=${one},${two}&_id=${two}`, [two]],
        [`_tag=${TAGSYS}|vip`, [one]],
        ['_tag=vip', [one, two]],
        [`_tag=${TAGSYS2}|vip`, [two]],
        ['_tag=|nosys', [two]],
        ['_tag=nosys', [two]],
        ['_tag=|vip', []],
        [`_tag=${TAGSYS}|`, [one]],
        [`_tag=${TAGSYS}|nosys`, []],
        [`_tag=${TAGSYS}|vip,|nosys`, [one, two]],
        [`_tag=vip&_tag=${TAGSYS2}|`, [two]],
        [`_tag:not=${TAGSYS}|vip`, minus(one)],
        ['_tag:text=vi', [one]],
        ['_tag:missing=true', rest],
        ['_tag:missing=false', [one, two]],
        [`_profile=${PROF_A}`, [one]],
        [`_profile=${PROF_C}`, [two]],
        [`_profile=${PROF_A},${PROF_B}`, [one, two]],
        ['_profile=http://example.org/fhir/StructureDefinition/search-prof', []],
        ['_profile:missing=true', rest],
        [`_security=${SEC}|R`, [one]],
        ['_security=N', [two]],
        [`_security=${SEC}|`, [one, two]],
        ['_security=|R', []],
        [`_security=${SEC}|V`, []],
        [`_security:not=${SEC}|R`, minus(one)],
        ['_security:missing=true', rest],
    ];
    if (HAS_IDENTIFIER.has(type)) {
        const identified = all.filter((id) => FIXTURES[type].find((r) => r.id === id).identifier);
        rows.push(
            [`identifier=${IDSYS}|T-001`, [one]],
            ['identifier=T-001', [one, two]],
            [`identifier=${IDSYS2}|`, [two]],
            ['identifier=|nosys-T', [two]],
            ['identifier=|T-001', []],
            [`identifier=${IDSYS}|T-002`, []],
            [`identifier=${IDSYS}|T-001,|nosys-T`, [one, two]],
            [`identifier=${IDSYS}|T-001&identifier=${IDSYS2}|T-001`, []],
            ['identifier=T-001&identifier=|nosys-T', [two]],
            [`identifier:of-type=${V2_0203}|MR|T-001`, [one]],
            [`identifier:of-type=${V2_0203}|MR|T-999`, []],
            [`identifier:of-type=${V2_0203}|PPN|T-001`, []],
            ['identifier:text=medical', [one]],
            ['identifier:text=MEDICAL REC', [one]],
            ['identifier:text=passport', []],
            [`identifier:not=${IDSYS}|T-001`, minus(one)],
            ['identifier:missing=true', all.filter((i) => !identified.includes(i))],
            ['identifier:missing=false', identified],
        );
    }
    // _lastUpdated: "<p>-2" was stored after the cut, everything else before it.
    const iso = (ms) => new Date(ms).toISOString().replace('.000Z', 'Z');
    const zoned = (ms, offsetMin) => {
        const local = new Date(ms + offsetMin * 60_000).toISOString().slice(0, 19);
        const sign = offsetMin < 0 ? '-' : '+';
        const a = Math.abs(offsetMin);
        return `${local}${sign}${String(Math.floor(a / 60)).padStart(2, '0')}:${String(a % 60).padStart(2, '0')}`;
    };
    const lu = (id) => stored.get(`${type}/${id}`);
    const dayOf = (ms) => new Date(ms).toISOString().slice(0, 10);
    rows.push(
        [['_lastUpdated=ge<cut>', () => `_lastUpdated=ge${iso(cut)}`], [two]],
        [['_lastUpdated=gt<cut>', () => `_lastUpdated=gt${iso(cut)}`], [two]],
        [['_lastUpdated=sa<cut>', () => `_lastUpdated=sa${iso(cut)}`], [two]],
        [['_lastUpdated=lt<cut>', () => `_lastUpdated=lt${iso(cut)}`], minus(two)],
        [['_lastUpdated=le<cut>', () => `_lastUpdated=le${iso(cut)}`], minus(two)],
        [['_lastUpdated=eb<cut>', () => `_lastUpdated=eb${iso(cut)}`], minus(two)],
        [['_lastUpdated=<cut> (eq, second precision)', () => `_lastUpdated=${iso(cut)}`], []],
        [['_lastUpdated=eq<cut>', () => `_lastUpdated=eq${iso(cut)}`], []],
        [['_lastUpdated=ne<cut>', () => `_lastUpdated=ne${iso(cut)}`], all],
        [['_lastUpdated=ge<cut as +05:30>', () => `_lastUpdated=ge${zoned(cut, 330)}`], [two]],
        [['_lastUpdated=lt<cut as -03:00>', () => `_lastUpdated=lt${zoned(cut, -180)}`], minus(two)],
        [['_lastUpdated=ge<cut>&_lastUpdated=lt<cut+1h>', () => `_lastUpdated=ge${iso(cut)}&_lastUpdated=lt${iso(cut + 3600_000)}`], [two]],
        [
            ['_lastUpdated=gt<minute before every write> (minute precision)', () => `_lastUpdated=gt${iso(Math.floor(Math.min(...all.map(lu)) / 60_000) * 60_000 - 60_000).slice(0, 16)}Z`],
            all,
        ],
        [
            ['_lastUpdated=lt<minute before every write> (minute precision)', () => `_lastUpdated=lt${iso(Math.floor(Math.min(...all.map(lu)) / 60_000) * 60_000 - 60_000).slice(0, 16)}Z`],
            [],
        ],
        [['_lastUpdated=<day of the late write>', () => `_lastUpdated=${dayOf(lu(two))}`], () => all.filter((i) => dayOf(lu(i)) === dayOf(lu(two)))],
        [['_lastUpdated=<year of the late write>', () => `_lastUpdated=${dayOf(lu(two)).slice(0, 4)}`], () => all.filter((i) => dayOf(lu(i)).slice(0, 4) === dayOf(lu(two)).slice(0, 4))],
        ['_lastUpdated=lt2000-01-01', []],
        ['_lastUpdated=gt2000', all],
    );
    return rows;
}

// ---------------------------------------------------------------------------
// Per-type parameters

const ROWS = {
    Practitioner: [
        // string, HumanName: family, given, prefix, suffix, text; case- and accent-insensitive starts-with
        ['name=bak', ['prac-1']],
        ['name=BAK', ['prac-1']],
        ['name=Bakker', ['prac-1']],
        ['name=jose', ['prac-1']],
        ['name=JOSÉ', ['prac-1']],
        ['name=Jose\u0301', ['prac-1']],
        // SQL LIKE wildcards are plain characters
        ['name=%', []],
        ['name=_ak', []],
        ['name:contains=%', []],
        ['name:contains=_', []],
        ["name=' OR 1=1 --", []],
        ['name=maria', ['prac-1']],
        ['name=dr', ['prac-1']],
        ['name=phd', ['prac-1']],
        ['name=Dr. Jos', ['prac-1']],
        ['name=muller', ['prac-2']],
        ['name=Müll', ['prac-2']],
        ['name=smith', ['prac-2']],
        ['name=annchen', ['prac-2']],
        ['name=ng', ['prac-3']],
        ['name=jones', []],
        ['name=keizers', []],
        ['name=zzz', []],
        ['name:contains=JONES', ['prac-2']],
        ['name:contains=akk', ['prac-1']],
        ['name:contains=ÜLLE', ['prac-2']],
        ['name:contains=ulle', ['prac-2']],
        ['name:contains=xyz', []],
        ['name:exact=Bakker', ['prac-1']],
        ['name:exact=bakker', []],
        ['name:exact=Bak', []],
        ['name:exact=José', ['prac-1']],
        ['name:exact=Jose', []],
        ['name:exact=Dr. José Maria Bakker PhD', ['prac-1']],
        ['name:missing=true', ['prac-4']],
        ['name:missing=false', ['prac-1', 'prac-2', 'prac-3']],
        ['name=bak,smith', ['prac-1', 'prac-2']],
        ['name=bak&name=jose', ['prac-1']],
        ['name=bak&name=anna', []],
        ['family=bakker', ['prac-1']],
        ['family=mül', ['prac-2']],
        ['family=jose', []],
        ['family:exact=Müller', ['prac-2']],
        ['family:exact=Muller', []],
        ['family:contains=KK', ['prac-1']],
        ['family:missing=true', ['prac-4']],
        ['family:missing=false', ['prac-1', 'prac-2', 'prac-3']],
        ['given=jos', ['prac-1']],
        ['given=maria', ['prac-1']],
        ['given=ÄNN', ['prac-2']],
        ['given=bakker', []],
        ['given:exact=Maria', ['prac-1']],
        ['given:exact=maria', []],
        ['given:contains=nch', ['prac-2']],
        ['given:missing=true', ['prac-3', 'prac-4']],
        // token, boolean
        ['active=true', ['prac-1', 'prac-4']],
        ['active=false', ['prac-2']],
        ['active:not=true', ['prac-2', 'prac-3']],
        ['active:missing=true', ['prac-3']],
        ['active:missing=false', ['prac-1', 'prac-2', 'prac-4']],
        // token, code with implicit system
        ['gender=male', ['prac-1']],
        ['gender=female', ['prac-2']],
        ['gender=http://hl7.org/fhir/administrative-gender|female', ['prac-2']],
        ['gender=http://hl7.org/fhir/administrative-gender|', ['prac-1', 'prac-2']],
        ['gender=http://example.org/other|female', []],
        ['gender=|female', []],
        ['gender=MALE', []],
        ['gender=male,female', ['prac-1', 'prac-2']],
        ['gender:not=male', ['prac-2', 'prac-3', 'prac-4']],
        ['gender:missing=true', ['prac-3', 'prac-4']],
        // token, ContactPoint
        ['telecom=+31-20-555-0101', ['prac-1']],
        ['telecom=phone|+31-20-555-0101', ['prac-1']],
        ['telecom=email|+31-20-555-0101', []],
        ['telecom=anna@example.org', ['prac-2']],
        ['telecom=email|', ['prac-1', 'prac-2']],
        ['telecom=+31-20-555-0102', []],
        ['telecom:missing=true', ['prac-3']],
        ['phone=+31-20-555-0101', ['prac-1']],
        ['phone=555-0199', ['prac-4']],
        ['phone=anna@example.org', []],
        ['phone:missing=false', ['prac-1', 'prac-4']],
        ['phone:not=555-0199', ['prac-1', 'prac-2', 'prac-3']],
        ['email=jose.bakker@example.org', ['prac-1']],
        ['email=anna@example.org', ['prac-2']],
        ['email=+31-20-555-0101', []],
        ['email:missing=true', ['prac-3', 'prac-4']],
        // string, Address: line, city, district, state, postalCode, country, text
        ['address=keizers', ['prac-1']],
        ['address=amsterdam', ['prac-1']],
        ['address=CENTRUM', ['prac-1']],
        ['address=noord', ['prac-1']],
        ['address=1015', ['prac-1']],
        ['address=nl', ['prac-1']],
        ['address=rotter', ['prac-2']],
        ['address=3011', ['prac-2']],
        ['address=utrecht', []],
        ['address=dam', []],
        ['address:contains=dam', ['prac-1', 'prac-2']],
        ['address:exact=Amsterdam', ['prac-1']],
        ['address:exact=amsterdam', []],
        ['address:missing=true', ['prac-3', 'prac-4']],
        ['address-city=amster', ['prac-1']],
        ['address-city=ROTTERDAM', ['prac-2']],
        ['address-city=keizers', []],
        ['address-city:contains=DAM', ['prac-1', 'prac-2']],
        ['address-city:exact=Rotterdam', ['prac-2']],
        ['address-city:missing=true', ['prac-3', 'prac-4']],
        // token, CodeableConcept
        ['communication=nl', ['prac-1']],
        [`communication=${BCP47}|en`, ['prac-2']],
        [`communication=${BCP47}|de`, []],
        [`communication=${BCP47}|`, ['prac-1', 'prac-2']],
        ['communication=|nl', []],
        ['communication:text=neder', ['prac-1']],
        ['communication:text=dutch', ['prac-1']],
        ['communication:text=ENGL', ['prac-2']],
        ['communication:text=fren', []],
        ['communication:not=nl', ['prac-2', 'prac-3', 'prac-4']],
        ['communication:missing=true', ['prac-3', 'prac-4']],
    ],

    Patient: [
        ['name=jose', ['pat-1']],
        ['name=JOSÉ', ['pat-1']],
        ['name=garc', ['pat-1']],
        ['name=garcia', ['pat-1']],
        ['name=sr', ['pat-1']],
        ['name=jr', ['pat-5']],
        ['name=kim', ['pat-3']],
        ['name=lee', []],
        ['name=bak', ['pat-2', 'pat-5']],
        ['name=zzz', []],
        ['name:contains=LEE', ['pat-3']],
        ['name:contains=arcí', ['pat-1']],
        ['name:exact=bakker', ['pat-5']],
        ['name:exact=Bakker', ['pat-2']],
        ['name:exact=Kim Lee', ['pat-3']],
        ['name:exact=García', ['pat-1']],
        ['name:exact=Garcia', []],
        ['name:missing=true', ['pat-4']],
        ['name:missing=false', ['pat-1', 'pat-2', 'pat-3', 'pat-5']],
        ['family=bakker', ['pat-2', 'pat-5']],
        ['family=garcía', ['pat-1']],
        ['family=kim', []],
        ['family:exact=Bakker', ['pat-2']],
        ['family:missing=true', ['pat-3', 'pat-4']],
        ['given=ole', ['pat-5']],
        ['given=san', ['pat-2']],
        ['given=garcia', []],
        ['given=jose,ole', ['pat-1', 'pat-5']],
        ['identifier=T-00%', []],
        ['identifier=T-00_', []],
        // date, Patient.birthDate (pat-3 has year precision: 1980; pat-4 has none)
        ['birthdate=1980', ['pat-1', 'pat-3']],
        ['birthdate=1980-05', ['pat-1']],
        ['birthdate=1980-05-01', ['pat-1']],
        ['birthdate=eq1975-07-14', ['pat-2']],
        ['birthdate=1981', []],
        ['birthdate=1980-05-02', []],
        ['birthdate=lt1980-05-01', ['pat-2', 'pat-3', 'pat-5']],
        ['birthdate=le1980-05-01', ['pat-1', 'pat-2', 'pat-3', 'pat-5']],
        ['birthdate=gt1980-05-01', ['pat-3']],
        ['birthdate=ge1980-05-01', ['pat-1', 'pat-3']],
        ['birthdate=gt1980', []],
        ['birthdate=lt1952-03-10', []],
        ['birthdate=sa1978', ['pat-1', 'pat-3']],
        ['birthdate=sa1980-05-01', []],
        ['birthdate=eb1976', ['pat-2', 'pat-5']],
        ['birthdate=eb1975-07-14', ['pat-5']],
        ['birthdate=ne1980', { has: ['pat-2', 'pat-5'], not: ['pat-1', 'pat-3'] }],
        ['birthdate=ap1952-03', approx('1952-03-01', ['pat-5'], { 'pat-1': '1980-05-01', 'pat-2': '1975-07-14', 'pat-3': '1980-01-01' })],
        ['birthdate=lt1980-05-01T12:00Z', ['pat-1', 'pat-2', 'pat-3', 'pat-5']],
        ['birthdate=gt1980-05-01T12:00Z', ['pat-1', 'pat-3']],
        ['birthdate=ge1975-07-14&birthdate=lt1980-01-01', ['pat-2']],
        ['birthdate=1975-07-14,1952-03-10', ['pat-2', 'pat-5']],
        ['birthdate:missing=true', ['pat-4']],
        ['birthdate:missing=false', ['pat-1', 'pat-2', 'pat-3', 'pat-5']],
        ['gender=female', ['pat-2']],
        ['gender=other', ['pat-3']],
        ['gender=male,other', ['pat-1', 'pat-3', 'pat-5']],
        ['gender=unknown', []],
        ['gender:not=female', ['pat-1', 'pat-3', 'pat-4', 'pat-5']],
        ['gender:missing=true', ['pat-4']],
        ['telecom=+34-91-555-0000', ['pat-1']],
        ['telecom=email|jose@example.es', ['pat-1']],
        ['telecom=phone|jose@example.es', []],
        ['phone=+34-91-555-0000', ['pat-1']],
        ['phone=sanne@example.nl', []],
        ['email=sanne@example.nl', ['pat-2']],
        ['email=+34-91-555-0000', []],
        ['email:missing=false', ['pat-1', 'pat-2']],
        ['address=madrid', ['pat-1']],
        ['address=calle', ['pat-1']],
        ['address=es', ['pat-1']],
        ['address=AMST', ['pat-2']],
        ['address=paris', []],
        ['address:missing=true', ['pat-3', 'pat-4', 'pat-5']],
        ['address-postalcode=1015', ['pat-2']],
        ['address-postalcode=28013', ['pat-1']],
        ['address-postalcode=99', []],
        ['address-postalcode:exact=1015 CJ', ['pat-2']],
        ['address-postalcode:missing=true', ['pat-3', 'pat-4', 'pat-5']],
        // reference
        ['general-practitioner=Practitioner/prac-1', ['pat-1']],
        ['general-practitioner=prac-1', ['pat-1']],
        ['general-practitioner={base}/Practitioner/prac-1', ['pat-1']],
        ['general-practitioner=PractitionerRole/role-1', ['pat-2']],
        ['general-practitioner=role-1', ['pat-2']],
        ['general-practitioner=Practitioner/prac-2', []],
        ['general-practitioner=Organization/prac-1', []],
        ['general-practitioner:Practitioner=prac-1', ['pat-1']],
        ['general-practitioner:PractitionerRole=prac-1', []],
        ['general-practitioner:PractitionerRole=role-1', ['pat-2']],
        ['general-practitioner=Practitioner/prac-1,PractitionerRole/role-1', ['pat-1', 'pat-2']],
        [`general-practitioner:identifier=${AGB}|01234567`, ['pat-3']],
        [`general-practitioner:identifier=${AGB}|7654321`, []],
        ['general-practitioner:missing=true', ['pat-4', 'pat-5']],
        ['general-practitioner:missing=false', ['pat-1', 'pat-2', 'pat-3']],
        ['active=true', ['pat-1', 'pat-4']],
        ['active=false', ['pat-2']],
        ['active:not=false', ['pat-1', 'pat-3', 'pat-4', 'pat-5']],
    ],

    PractitionerRole: [
        ['practitioner=Practitioner/prac-1', ['role-1']],
        ['practitioner=prac-2', ['role-2']],
        ['practitioner={base}/Practitioner/prac-2', ['role-2']],
        ['practitioner:Practitioner=prac-1', ['role-1']],
        ['practitioner=prac-3', []],
        [`practitioner:identifier=${UZI}|UZI-42`, ['role-3']],
        [`practitioner:identifier=${UZI}|UZI-43`, []],
        ['practitioner:missing=false', ['role-1', 'role-2', 'role-3']],
        ['practitioner:missing=true', ['role-4']],
        ['location=Location/loc-1', ['role-1', 'role-2']],
        ['location=loc-2', ['role-2']],
        ['location=loc-3', []],
        ['location=Location/loc-1&location=Location/loc-2', ['role-2']],
        ['location:missing=true', ['role-3', 'role-4']],
        ['service=HealthcareService/hs-1', ['role-1']],
        ['service=hs-2', []],
        ['service:HealthcareService=hs-1', ['role-1']],
        ['service:missing=true', ['role-2', 'role-3', 'role-4']],
        ['specialty=394814009', ['role-1']],
        [`specialty=${SCT}|419772000`, ['role-2']],
        [`specialty=${SCT}|`, ['role-1', 'role-2']],
        ['specialty=http://loinc.org|394814009', []],
        ['specialty:text=general', ['role-1']],
        ['specialty:text=FAMILY', ['role-2']],
        ['specialty:text=GÉNÉRAL PRAC', ['role-1']],
        ['specialty:text=surgery', []],
        ['specialty:not=394814009', ['role-2', 'role-3', 'role-4']],
        ['specialty:missing=true', ['role-3', 'role-4']],
        ['role=doctor', ['role-1']],
        [`role=${ROLE_SYS}|nurse`, ['role-2']],
        ['role=pharmacist', []],
        ['role:text=family', ['role-1']],
        ['role:text=doc', ['role-1']],
        ['role:text=practice', ['role-2']],
        ['role:text=xyz', []],
        ['role:missing=true', ['role-3', 'role-4']],
        ['organization=Organization/org-1', ['role-1']],
        ['organization=org-2', ['role-2']],
        ['organization=Organization/org-3', []],
        ['organization:missing=true', ['role-3', 'role-4']],
        ['active=true', ['role-1']],
        ['active=false', ['role-2']],
        ['active:missing=true', ['role-3', 'role-4']],
        // date, Period: role-1 2020-01-01..2024-12-31, role-2 from 2025-05-31T22:00Z open-ended, role-3 none,
        // role-4 up to 2019-06-30 with no start
        ['date=2022', []],
        ['date=2020-01-01', []],
        ['date=2019', []],
        ['date=lt2025-01-01', ['role-1', 'role-4']],
        ['date=gt2025-01-01', ['role-2']],
        ['date=gt2019', ['role-1', 'role-2']],
        ['date=ge2030', ['role-2']],
        ['date=le2019', ['role-4']],
        ['date=lt1900', ['role-4']],
        ['date=eb2025', ['role-1', 'role-4']],
        ['date=eb2019-08', ['role-4']],
        ['date=sa2024', ['role-2']],
        ['date=sa2019', ['role-1', 'role-2']],
        ['date=sa1900', ['role-1', 'role-2']],
        ['date=lt2025-06-01', ['role-1', 'role-2', 'role-4']],
        ['date=lt2025-05-31', ['role-1', 'role-4']],
        ['date=lt2025-06-01T00:00:00+02:00', ['role-1', 'role-4']],
        ['date=ne2022', { has: ['role-1', 'role-2', 'role-4'] }],
        ['date=ge2020-01-01&date=le2024-12-31', ['role-1']],
        ['date=lt2019-01-01&date=gt2018-01-01', ['role-4']],
        ['date=gt2030&date=lt2010', []],
        ['date=gt2021&date=lt2020-06', ['role-1']],
        ['date:missing=true', ['role-3']],
        ['date:missing=false', ['role-1', 'role-2', 'role-4']],
    ],

    Location: [
        ['name=amsterdam', ['loc-1']],
        ['name=noordk', ['loc-1']],
        ['name=clinique', ['loc-1']],
        ['name=utr', ['loc-2']],
        ['name=ROOM', ['loc-3']],
        ['name=mobile', ['loc-4']],
        ['name=centrum', []],
        ['name:contains=centrum', ['loc-2']],
        ['name:contains=nord', ['loc-1']],
        ['name:exact=Room 3', ['loc-3']],
        ['name:exact=room 3', []],
        // an escaped comma is part of the value; a plain comma separates values
        ['name:exact=Mobile unit\\, north', ['loc-4']],
        ['name:exact=Mobile unit,Room 3', ['loc-3']],
        ['name=mobile unit\\, no', ['loc-4']],
        // `\\` is a backslash, `\|` a bar (alias "Unit\7|B")
        ['name:exact=Unit\\\\7\\|B', ['loc-4']],
        ['name=unit\\\\7', ['loc-4']],
        [`identifier=${ESCSYS}|A\\|B\\,C`, ['loc-2']],
        [`identifier=${ESCSYS}|A`, []],
        ['address=buikslo', ['loc-1']],
        ['address=amsterdam', ['loc-1']],
        ['address=3511', ['loc-2']],
        ['address=nl', ['loc-1']],
        ['address=paris', []],
        ['address:missing=true', ['loc-3', 'loc-4']],
        ['address-city=utrecht', ['loc-2']],
        ['address-city=ams', ['loc-1']],
        ['address-city=noord', []],
        ['address-postalcode=1025', ['loc-1']],
        ['address-postalcode=3511', ['loc-2']],
        ['address-postalcode=1015', []],
        ['status=active', ['loc-1']],
        ['status=http://hl7.org/fhir/location-status|suspended', ['loc-2']],
        ['status=http://hl7.org/fhir/location-status|', ['loc-1', 'loc-2', 'loc-3']],
        ['status=active,inactive', ['loc-1', 'loc-3']],
        ['status:not=active', ['loc-2', 'loc-3', 'loc-4']],
        ['status:missing=true', ['loc-4']],
        ['type=HOSP', ['loc-1']],
        [`type=${ROLECODE}|PC`, ['loc-2']],
        ['type=PC,HOSP', ['loc-1', 'loc-2']],
        ['type=HOSP&type=PC', []],
        ['type=ER', []],
        ['type:text=gp', ['loc-2']],
        ['type:text=hosp', ['loc-1']],
        ['type:text=primary', ['loc-2']],
        ['type:text=clinic', []],
        ['type:missing=true', ['loc-3', 'loc-4']],
        ['operational-status=O', ['loc-1']],
        [`operational-status=${V2_0116}|O`, ['loc-1']],
        ['operational-status=K', []],
        ['operational-status:missing=true', ['loc-2', 'loc-3', 'loc-4']],
        ['partof=Location/loc-1', ['loc-2']],
        ['partof=loc-2', ['loc-3']],
        ['partof:Location=loc-1', ['loc-2']],
        ['partof={base}/Location/loc-2', ['loc-3']],
        ['partof=Location/loc-3', []],
        ['partof:missing=true', ['loc-1', 'loc-4']],
        // near: loc-1 (52.3676, 4.9041); loc-3 0.67 km away; loc-2 34.2 km away; loc-4 has no position
        ['near=52.3676|4.9041|1|km', ['loc-1', 'loc-3']],
        ['near=52.3676|4.9041|1', ['loc-1', 'loc-3']],
        ['near=52.3676|4.9041|0.5|km', ['loc-1']],
        ['near=52.3676|4.9041|30|km', ['loc-1', 'loc-3']],
        ['near=52.3676|4.9041|50|km', ['loc-1', 'loc-2', 'loc-3']],
        ['near=52.3676|4.9041|1000|m', ['loc-1', 'loc-3']],
        ['near=52.3676|4.9041|500|m', ['loc-1']],
        ['near=52.3676|4.9041|25|mi', ['loc-1', 'loc-2', 'loc-3']],
        ['near=52.3676|4.9041|15|mi', ['loc-1', 'loc-3']],
        ['near=52.3676|4.9041|15|[mi_i]', ['loc-1', 'loc-3']],
        ['near=52.0907|5.1214|5|km', ['loc-2']],
        ['near=0|0|10|km', []],
        ['near=52.3676|4.9041|1|km&status=inactive', ['loc-3']],
        ['near=52.3676|4.9041|1|km&near=52.3702|4.8952|0.1|km', ['loc-3']],
        ['near=52.3676|4.9041|0.5|km,52.0907|5.1214|1|km', ['loc-1', 'loc-2']],
    ],

    HealthcareService: [
        ['name=huisarts', ['hs-1']],
        ['name=HUIS', ['hs-1']],
        ['name=fysio', ['hs-2']],
        ['name=eze', ['hs-3']],
        ['name=ÉZÉ', ['hs-3']],
        ['name=eik', []],
        ['name=clinic', []],
        ['name:contains=eik', ['hs-1']],
        ['name:contains=CLINIC', ['hs-3']],
        ['name:exact=Ézé Clinic', ['hs-3']],
        ['name:exact=Eze Clinic', []],
        ['name:missing=false', ['hs-1', 'hs-2', 'hs-3']],
        ['location=Location/loc-1', ['hs-1']],
        ['location=loc-2', ['hs-2']],
        ['location=Location/loc-3', []],
        ['location:missing=true', ['hs-3']],
        ['service-type=708175003', ['hs-1']],
        [`service-type=${SVC_TYPE}|124`, ['hs-2']],
        [`service-type=${SCT}|124`, []],
        ['service-type:text=walk', ['hs-2']],
        ['service-type:text=family', ['hs-1']],
        ['service-type:missing=true', ['hs-3']],
        ['service-category=17', ['hs-1']],
        [`service-category=${SVC_CAT}|8`, ['hs-2']],
        ['service-category=8,17', ['hs-1', 'hs-2']],
        ['service-category=99', []],
        ['service-category:not=17', ['hs-2', 'hs-3']],
        [`specialty=${SCT}|394814009`, ['hs-1']],
        ['specialty=394814009', ['hs-1']],
        ['specialty=419772000', []],
        ['specialty:missing=true', ['hs-2', 'hs-3']],
        ['active=true', ['hs-1']],
        ['active=false', ['hs-2']],
        ['active:not=true', ['hs-2', 'hs-3']],
        ['organization=Organization/org-1', ['hs-1']],
        ['organization=org-2', ['hs-2']],
        ['organization=Organization/org-9', []],
        ['organization:missing=true', ['hs-3']],
    ],

    Schedule: [
        ['actor=Practitioner/prac-1', ['sch-1']],
        ['actor=loc-1', ['sch-1']],
        ['actor=role-2', ['sch-2']],
        ['actor=PractitionerRole/role-2', ['sch-2']],
        ['actor:HealthcareService=hs-1', ['sch-3']],
        ['actor:Practitioner=hs-1', []],
        ['actor=Practitioner/prac-1,HealthcareService/hs-1', ['sch-1', 'sch-3']],
        ['actor=Practitioner/prac-1&actor=Location/loc-1', ['sch-1']],
        ['actor=Practitioner/prac-1&actor=Practitioner/prac-2', []],
        ['actor={base}/Practitioner/prac-2', ['sch-4']],
        [`actor=${FOREIGN}/Practitioner/prac-1`, ['sch-4']],
        ['actor=Practitioner/prac-9', []],
        ['actor:missing=false', ['sch-1', 'sch-2', 'sch-3', 'sch-4']],
        ['active=true', ['sch-1']],
        ['active=false', ['sch-2']],
        ['active:missing=true', ['sch-3', 'sch-4']],
        ['active:not=false', ['sch-1', 'sch-3', 'sch-4']],
        // date, Period: sch-1 2026-11-01T00:00Z..2026-11-30T23:59:59Z, sch-2 2026-12-01..2026-12-31,
        // sch-3 from 2026-10-15T08:00Z open-ended, sch-4 none
        ['date=2026-11', ['sch-1']],
        ['date=2026-11-15', []],
        ['date=2026', ['sch-1', 'sch-2']],
        ['date=2026-12', ['sch-2']],
        ['date=lt2026-11-15', ['sch-1', 'sch-3']],
        ['date=gt2026-11-15', ['sch-1', 'sch-2', 'sch-3']],
        ['date=ge2027', ['sch-3']],
        ['date=sa2026-11-29', ['sch-2']],
        ['date=eb2026-12-02', ['sch-1']],
        ['date=le2026-10-20', ['sch-3']],
        ['date=lt2026-10-15T08:00:00Z', []],
        ['date=lt2026-10-15T09:00:00+01:00', []],
        ['date=lt2026-10-15T08:00:01Z', ['sch-3']],
        ['date=ne2026', { has: ['sch-3'], not: ['sch-1', 'sch-2'] }],
        ['date:missing=true', ['sch-4']],
        // both bounds: long periods may satisfy both even when the bounds cross
        ['date=ge2026-11-15&date=le2026-11-16', ['sch-1', 'sch-3']],
        ['date=gt2026-11-20&date=lt2026-11-10', ['sch-1', 'sch-3']],
        ['date=sa2026-10-31&date=eb2027-01-02', ['sch-1', 'sch-2']],
        ['service-category=17', ['sch-1']],
        [`service-category=${SVC_CAT}|17`, ['sch-1']],
        ['service-category:text=counsel', ['sch-2']],
        ['service-category=18', []],
        ['service-category:missing=true', ['sch-3', 'sch-4']],
        ['service-type=124', ['sch-1']],
        [`service-type=${SVC_TYPE}|57`, ['sch-2']],
        ['service-type=57,124', ['sch-1', 'sch-2']],
        ['service-type=58', []],
        ['service-type:text=general', ['sch-1']],
        ['specialty=419772000', ['sch-2']],
        ['specialty=394814009', ['sch-1']],
        ['specialty=1234', []],
        ['specialty:not=419772000', ['sch-1', 'sch-3', 'sch-4']],
    ],

    Slot: [
        ['schedule=Schedule/sch-1', ['slot-1', 'slot-2']],
        ['schedule=sch-2', ['slot-3', 'slot-4']],
        ['schedule={base}/Schedule/sch-3', ['slot-5', 'slot-6']],
        ['schedule:Schedule=sch-1', ['slot-1', 'slot-2']],
        ['schedule=Schedule/sch-4', []],
        ['schedule=sch-1,sch-2', ['slot-1', 'slot-2', 'slot-3', 'slot-4']],
        ['schedule:missing=false', ['slot-1', 'slot-2', 'slot-3', 'slot-4', 'slot-5', 'slot-6']],
        ['status=free', ['slot-3']],
        ['status=http://hl7.org/fhir/slotstatus|free', ['slot-3']],
        ['status=http://hl7.org/fhir/slotstatus|', ['slot-1', 'slot-2', 'slot-3', 'slot-4', 'slot-5', 'slot-6']],
        ['status=http://example.org/other|free', []],
        ['status=|free', []],
        ['status=bus', []],
        ['status=FREE', []],
        ['status=busy-unavailable', ['slot-4']],
        ['status=busy,busy-tentative', ['slot-1', 'slot-2', 'slot-5']],
        ['status:not=free', ['slot-1', 'slot-2', 'slot-4', 'slot-5', 'slot-6']],
        ['status:missing=false', ['slot-1', 'slot-2', 'slot-3', 'slot-4', 'slot-5', 'slot-6']],
        ['schedule=sch-2&status=free', ['slot-3']],
        ['service-category=17', ['slot-1']],
        ['service-category=8', []],
        ['service-category:missing=true', ['slot-2', 'slot-3', 'slot-4', 'slot-5', 'slot-6']],
        ['service-type=124', ['slot-1']],
        [`service-type=${SVC_TYPE}|57`, ['slot-2']],
        ['service-type:missing=false', ['slot-1', 'slot-2']],
        ['specialty=394814009', ['slot-1']],
        ['specialty=419772000', []],
        ['appointment-type=ROUTINE', ['slot-1']],
        [`appointment-type=${V2_0276}|WALKIN`, ['slot-2']],
        [`appointment-type=${V2_0276}|CHECKUP`, []],
        ['appointment-type:text=walk', ['slot-2']],
        ['appointment-type:text=routine', ['slot-1']],
        ['appointment-type:text=a previously', ['slot-2']],
        ['appointment-type:missing=true', ['slot-3', 'slot-4', 'slot-5', 'slot-6']],
        // date, instants (UTC): slot-1 2026-11-22T10:00:00, slot-2 10:00:30, slot-3 11:30:00,
        // slot-4 22:30:00, slot-5 2027-02-01T08:00:00, slot-6 2026-01-01T00:30:00
        ['start=2026', ['slot-1', 'slot-2', 'slot-3', 'slot-4', 'slot-6']],
        ['start=2025', []],
        ['start=2026-11', ['slot-1', 'slot-2', 'slot-3', 'slot-4']],
        ['start=2026-11-22', ['slot-1', 'slot-2', 'slot-3', 'slot-4']],
        ['start=eq2026-11-22', ['slot-1', 'slot-2', 'slot-3', 'slot-4']],
        ['start=2026-11-23', []],
        ['start=2026-11-22T10:00Z', ['slot-1', 'slot-2']],
        ['start=2026-11-22T10:00', ['slot-1', 'slot-2']],
        ['start=2026-11-22T10:00:00Z', ['slot-1']],
        ['start=2026-11-22T11:00+01:00', ['slot-1', 'slot-2']],
        ['start=2026-11-22T12:30:00+01:00', ['slot-3']],
        ['start=2026-11-22T11:30:00', ['slot-3']],
        ['start=2026-11-23T00:30:00+02:00', ['slot-4']],
        ['start=2025-12-31T23:30:00-01:00', ['slot-6']],
        ['start=ne2026-11-22', ['slot-5', 'slot-6']],
        ['start=lt2026-11-22T10:00:30Z', ['slot-1', 'slot-6']],
        ['start=le2026-11-22T10:00:30Z', ['slot-1', 'slot-2', 'slot-6']],
        ['start=gt2026-11-22T10:00:30Z', ['slot-3', 'slot-4', 'slot-5']],
        ['start=ge2026-11-22T10:00:30Z', ['slot-2', 'slot-3', 'slot-4', 'slot-5']],
        ['start=gt2026-11-22', ['slot-5']],
        ['start=ge2026-11-22', ['slot-1', 'slot-2', 'slot-3', 'slot-4', 'slot-5']],
        ['start=lt2026-11-22', ['slot-6']],
        ['start=le2026-11-22', ['slot-1', 'slot-2', 'slot-3', 'slot-4', 'slot-6']],
        ['start=lt2026-11-22T11:00+01:00', ['slot-6']],
        ['start=gt2026-11-22T23:00+01:00', ['slot-4', 'slot-5']],
        ['start=sa2026-11-22T12:00Z', ['slot-4', 'slot-5']],
        ['start=sa2026-12', ['slot-5']],
        ['start=sa2027', []],
        ['start=eb2026-11-22T11:30:00Z', ['slot-1', 'slot-2', 'slot-6']],
        ['start=eb2026-06', ['slot-6']],
        ['start=eb2026', []],
        ['start=ap2027-02-01', approx('2027-02-01', ['slot-5'], { 'slot-1': '2026-11-22T10:00:00Z', 'slot-6': '2026-01-01T00:30:00Z' })],
        ['start=ge2026-11-22&start=lt2026-11-23', ['slot-1', 'slot-2', 'slot-3', 'slot-4']],
        ['start=ge2026-11-22T10:00:30Z&start=le2026-11-22T12:30:00+01:00', ['slot-2', 'slot-3']],
        ['start=2026-11-22T10:00:00Z,2027-02-01', ['slot-1', 'slot-5']],
        ['start=sa2026-11-22T10:00:30Z&start=eb2026-11-22T22:30:00Z', ['slot-3']],
        ['start=ge2026-11-22&start=ne2026-11-22T10:00:00Z', ['slot-2', 'slot-3', 'slot-4', 'slot-5']],
        ['start=gt2026-11-23&start=lt2026-11-22', []],
        ['start=le2026-11-22T10:00:00Z,ge2027&start=ge2026-06', ['slot-1', 'slot-5']],
        ['start=ge2026-11-22&start=lt2026-11-23&status=free', ['slot-3']],
        ['start:missing=false', ['slot-1', 'slot-2', 'slot-3', 'slot-4', 'slot-5', 'slot-6']],
    ],

    Appointment: [
        ['actor=Patient/pat-1', ['appt-1', 'appt-4']],
        ['actor=prac-1', ['appt-1']],
        ['actor=role-2', ['appt-2']],
        ['actor=Location/loc-1', ['appt-1']],
        ['actor:Location=loc-2', ['appt-4']],
        ['actor=HealthcareService/hs-1', ['appt-2']],
        ['actor={base}/Patient/pat-2', ['appt-2']],
        [`actor:identifier=${BSN}|999999990`, ['appt-3']],
        [`actor:identifier=${BSN}|111222333`, []],
        ['actor:identifier=999999990', ['appt-3']],
        ['actor=Patient/pat-9', []],
        ['actor=Patient/pat-1&actor=Location/loc-2', ['appt-4']],
        ['practitioner=Practitioner/prac-1', ['appt-1']],
        ['practitioner=prac-2', ['appt-3']],
        ['practitioner=role-2', []],
        ['practitioner={base}/Practitioner/prac-1', ['appt-1']],
        ['actor={base}/Practitioner/pat-1', []],
        ['practitioner:Practitioner=prac-1', ['appt-1']],
        ['practitioner:missing=true', ['appt-2', 'appt-4']],
        ['practitioner:missing=false', ['appt-1', 'appt-3']],
        ['patient=Patient/pat-1', ['appt-1', 'appt-4']],
        ['patient=pat-2', ['appt-2']],
        ['patient=prac-1', []],
        ['patient:Patient=pat-2', ['appt-2']],
        ['patient=Patient/pat-1,Patient/pat-2', ['appt-1', 'appt-2', 'appt-4']],
        ['patient=Patient/pat-1&practitioner=Practitioner/prac-1', ['appt-1']],
        ['patient:missing=true', ['appt-3']],
        ['location=Location/loc-1', ['appt-1']],
        ['location=loc-2', ['appt-4']],
        ['location=loc-3', []],
        ['location:missing=true', ['appt-2', 'appt-3']],
        // date = Appointment.start (UTC): appt-1 2026-11-22T09:00:00, appt-2 09:30:00, appt-3 none, appt-4 2027-03-01T16:00:00
        ['date=2026-11-22', ['appt-1', 'appt-2']],
        ['date=2026-11-21', []],
        ['date=2026-11-22T09:30Z', ['appt-2']],
        ['date=2026-11-22T14:30+05:00', ['appt-2']],
        ['date=2026-11-22T09:00:00Z', ['appt-1']],
        ['date=lt2026-11-22T09:30Z', ['appt-1']],
        ['date=le2026-11-22T09:30:00Z', ['appt-1', 'appt-2']],
        ['date=gt2026-11-22T09:00:00Z', ['appt-2', 'appt-4']],
        ['date=ge2027', ['appt-4']],
        ['date=2027-03', ['appt-4']],
        ['date=sa2026-11-22', ['appt-4']],
        ['date=eb2027-03-01T16:00:00Z', ['appt-1', 'appt-2']],
        ['date=ne2026-11-22', { has: ['appt-4'], not: ['appt-1', 'appt-2'] }],
        ['date=ap2027-03-01', approx('2027-03-01', ['appt-4'], { 'appt-1': '2026-11-22T09:00:00Z', 'appt-2': '2026-11-22T09:30:00Z' })],
        ['date:missing=true', ['appt-3']],
        ['date=ge2026-11-22&date=lt2026-11-23&actor=Practitioner/prac-1', ['appt-1']],
        ['status=booked', ['appt-1']],
        ['status=http://hl7.org/fhir/appointmentstatus|arrived', ['appt-2']],
        ['status:not=booked', ['appt-2', 'appt-3', 'appt-4']],
        ['status=booked,cancelled', ['appt-1', 'appt-4']],
        ['status=fulfilled', []],
        ['part-status=accepted', ['appt-1', 'appt-2', 'appt-4']],
        ['part-status=declined', ['appt-4']],
        ['part-status=tentative', ['appt-2']],
        ['part-status=needs-action', ['appt-2', 'appt-3']],
        ['part-status=http://hl7.org/fhir/participationstatus|declined', ['appt-4']],
        ['part-status:not=accepted', ['appt-3']],
        ['slot=Slot/slot-1', ['appt-1']],
        ['slot=slot-5', ['appt-2']],
        ['slot=Slot/slot-4', []],
        ['slot:missing=true', ['appt-3', 'appt-4']],
        ['service-category=17', ['appt-1']],
        ['service-category=18', []],
        ['service-type=124', ['appt-1']],
        ['service-type=57', []],
        ['specialty=394814009', ['appt-1']],
        ['specialty:missing=true', ['appt-2', 'appt-3', 'appt-4']],
        ['appointment-type=WALKIN', ['appt-2']],
        [`appointment-type=${V2_0276}|ROUTINE`, ['appt-1']],
        ['appointment-type=CHECKUP', []],
        ['reason-code=386661006', ['appt-1']],
        [`reason-code=${SCT}|25064002`, ['appt-2']],
        ['reason-code=http://loinc.org|25064002', []],
        ['reason-code:text=fever', ['appt-1']],
        ['reason-code:text=HEADACHE', ['appt-2']],
        ['reason-code:text=cough', []],
        ['reason-code:missing=true', ['appt-3', 'appt-4']],
        ['reason-reference=Condition/cond-1', ['appt-1']],
        ['reason-reference=obs-1', ['appt-2']],
        ['reason-reference:Observation=obs-1', ['appt-2']],
        ['reason-reference:Condition=obs-1', []],
        ['reason-reference=Condition/cond-9', []],
        ['based-on=ServiceRequest/sr-1', ['appt-1']],
        ['based-on=ServiceRequest/sr-2', []],
        ['based-on:missing=true', ['appt-2', 'appt-3', 'appt-4']],
        ['supporting-info=DocumentReference/doc-1', ['appt-1']],
        ['supporting-info=Patient/pat-2', ['appt-2']],
        ['supporting-info=pat-2', ['appt-2']],
        ['supporting-info=Patient/pat-1', []],
    ],

    AppointmentResponse: [
        ['appointment=Appointment/appt-1', ['ar-1', 'ar-3']],
        ['appointment=appt-2', ['ar-2']],
        ['appointment={base}/Appointment/appt-3', ['ar-4']],
        ['appointment=Appointment/appt-4', []],
        ['actor=Patient/pat-1', ['ar-1']],
        ['actor=prac-1', ['ar-2']],
        ['actor:Location=loc-1', ['ar-3']],
        ['actor=Patient/pat-2', []],
        ['actor:missing=true', ['ar-4']],
        ['practitioner=Practitioner/prac-1', ['ar-2']],
        ['practitioner=pat-1', []],
        ['patient=pat-1', ['ar-1']],
        ['patient=Patient/pat-2', []],
        ['location=Location/loc-1', ['ar-3']],
        ['location=loc-2', []],
        ['part-status=accepted', ['ar-1']],
        ['part-status=http://hl7.org/fhir/participationstatus|declined', ['ar-3']],
        ['part-status=needs-action,tentative', ['ar-2', 'ar-4']],
        ['part-status:not=accepted', ['ar-2', 'ar-3', 'ar-4']],
        ['part-status=in-process', []],
    ],

    Subscription: [
        // the server manages the status: every fixture is stored "off" (a "requested" one would be checked and move on)
        ['status=off', ['sub-1', 'sub-2', 'sub-3']],
        ['status=requested', []],
        ['status=http://hl7.org/fhir/subscription-status|off', ['sub-1', 'sub-2', 'sub-3']],
        ['status=active', []],
        ['status:not=off', []],
        ['criteria=appointment', ['sub-1', 'sub-3']],
        ['criteria=SLOT', ['sub-2']],
        ['criteria=patient', []],
        ['criteria:contains=status', ['sub-1', 'sub-2']],
        ['criteria:exact=Appointment?status=booked', ['sub-1']],
        ['criteria:exact=appointment?status=booked', []],
        ['type=rest-hook', ['sub-1', 'sub-3']],
        ['type=email', []],
        ['type=http://hl7.org/fhir/subscription-channel-type|websocket', ['sub-2']],
        ['type=websocket', ['sub-2']],
        ['url=https://hooks.example.org/fhir/appointments', ['sub-1']],
        ['url=mailto:desk@example.org', ['sub-2']],
        ['url=https://hooks.example.org', []],
        ['url:missing=false', ['sub-1', 'sub-2', 'sub-3']],
        ['criteria:missing=true', []],
        ['url=https://hooks.example.org/other,mailto:desk@example.org', ['sub-2', 'sub-3']],
    ],
};

for (const type of Object.keys(PREFIX)) {
    describe(`${type}: common parameters`, () => table(type, commonRows(type)));
    describe(`${type}: its own parameters`, () => table(type, ROWS[type]));
}

// ---------------------------------------------------------------------------
// POST [type]/_search, system-level search

describe('POST [type]/_search (form-encoded)', () => {
    const cases = [
        ['/Patient/_search', 'family=bakker', ['pat-2', 'pat-5']],
        ['/Patient/_search?gender=female', 'family=bakker', ['pat-2']],
        ['/Patient/_search', 'name=Jos%C3%A9', ['pat-1']],
        ['/Practitioner/_search', 'name=Dr.+Jos', ['prac-1']],
        ['/Practitioner/_search', 'telecom=%2B31-20-555-0101', ['prac-1']],
        ['/Slot/_search', 'start=ge2026-11-22&start=lt2026-11-23&status=free', ['slot-3']],
        ['/Slot/_search?start=ge2026-11-22', 'start=lt2026-11-23&status=busy', ['slot-1', 'slot-2']],
        ['/Location/_search', 'near=52.3676%7C4.9041%7C1%7Ckm', ['loc-1', 'loc-3']],
        ['/Appointment/_search', 'patient=Patient%2Fpat-1&status=cancelled', ['appt-4']],
        ['/Patient/_search', '', ['pat-1', 'pat-2', 'pat-3', 'pat-4', 'pat-5']],
    ];
    for (const [path, form, expected] of cases) {
        test(`POST ${path} ${form || '(empty body)'}`, async () => {
            const b = checkSearchset(await postForm(path, form));
            checkExpected(ids(b), expected, `POST ${path} ${form}`);
        });
    }
});

describe('system-level search', () => {
    const cases = [
        ['?_type=Patient,Practitioner&_id=pat-1,prac-1,slot-1', ['Patient/pat-1', 'Practitioner/prac-1']],
        ['?_type=Patient,Practitioner&name=bak', ['Patient/pat-2', 'Patient/pat-5', 'Practitioner/prac-1']],
        [`?_type=Patient,Practitioner&identifier=${IDSYS}|T-001`, ['Patient/pat-1', 'Practitioner/prac-1']],
        [`?_type=Slot,Schedule&_security=${SEC}|N`, ['Schedule/sch-2', 'Slot/slot-2']],
        [`?_type=Location,HealthcareService&_tag=${TAGSYS}|vip`, ['HealthcareService/hs-1', 'Location/loc-1']],
        [`?_type=Appointment,Subscription&_profile=${PROF_A}`, ['Appointment/appt-1', 'Subscription/sub-1']],
        ['?_id=slot-1,appt-4', ['Appointment/appt-4', 'Slot/slot-1']],
        ['?_type=Patient&_id=slot-1', []],
    ];
    for (const [q, expected] of cases) {
        test(`GET [base]${q}`, async () => {
            const path = `?${encQuery(q.slice(1))}`;
            const b = checkSearchset(await get(path));
            checkExpected(keys(b), expected, `GET ${path}`);
        });
    }
    test('GET [base]?_type=Location,HealthcareService&_lastUpdated=ge<cut>', async () => {
        const iso = new Date(cut).toISOString().replace('.000Z', 'Z');
        const b = checkSearchset(await get(`?_type=Location,HealthcareService&_lastUpdated=ge${encValue(iso)}`));
        checkExpected(keys(b), ['HealthcareService/hs-2', 'Location/loc-2'], '_lastUpdated');
    });
    test('POST [base]/_search with _type in the body', async () => {
        const form = `_type=Slot,Appointment&_tag=${encodeURIComponent(`${TAGSYS}|vip`)}`;
        const b = checkSearchset(await postForm('/_search', form));
        checkExpected(keys(b), ['Appointment/appt-1', 'Slot/slot-1'], `POST /_search ${form}`);
    });
});

// ---------------------------------------------------------------------------
// Unknown parameters, unknown modifiers, malformed values

describe('unknown parameters', () => {
    async function lenient(headers) {
        const res = await get('/Patient?family=bakker&foo-bar=1', headers);
        const b = checkSearchset(res);
        assert.deepEqual(ids(b), ['pat-2', 'pat-5'], 'the unknown parameter is ignored');
        const outcomes = (b.entry || []).filter((e) => e.search?.mode === 'outcome');
        assert.equal(outcomes.length, 1, `one outcome entry: ${res.text.slice(0, 1500)}`);
        const oo = outcomes[0].resource;
        assert.ok(
            oo.issue.some((i) => i.severity === 'warning'),
            `the outcome has a warning: ${JSON.stringify(oo)}`,
        );
        assert.match(outcomeText(oo), /foo-bar/, 'the outcome names the parameter');
        const self = link(b, 'self');
        assert.ok(!self.includes('foo-bar'), `self link leaves the unknown parameter out: ${self}`);
        assert.match(self, /family=/, `self link keeps the parameters used: ${self}`);
        assert.equal(b.total, 2);
    }
    test('ignored by default: outcome entry, not in the self link', () => lenient({}));
    test('ignored with Prefer: handling=lenient', () => lenient({ Prefer: 'handling=lenient' }));
    test('Prefer: handling=strict: 400 naming the parameter', async () => {
        const res = await get('/Patient?family=bakker&foo-bar=1', { Prefer: 'handling=strict' });
        const oo = expectOutcome(res, 400);
        assert.match(outcomeText(oo), /foo-bar/, 'the outcome names the parameter');
    });
    test('Prefer with several preferences (return=representation, handling=strict): 400', async () => {
        const res = await get('/Patient?family=bakker&foo-bar=1', { Prefer: 'return=representation, handling=strict' });
        const oo = expectOutcome(res, 400);
        assert.match(outcomeText(oo), /foo-bar/, 'the outcome names the parameter');
    });
    test('Prefer: handling=strict with only known parameters: 200', async () => {
        const b = checkSearchset(await get('/Patient?family=bakker', { Prefer: 'handling=strict' }));
        assert.deepEqual(ids(b), ['pat-2', 'pat-5']);
        assert.equal((b.entry || []).filter((e) => e.search?.mode === 'outcome').length, 0, 'no outcome entry');
    });
    test('a parameter of another type is unknown here (Practitioner?birthdate), strict: 400', async () => {
        const res = await get('/Practitioner?birthdate=1980', { Prefer: 'handling=strict' });
        const oo = expectOutcome(res, 400);
        assert.match(outcomeText(oo), /birthdate/);
    });
    test('system level: a parameter not every listed type defines is unknown (lenient: outcome entry)', async () => {
        const b = checkSearchset(await get('?_type=Patient,Practitioner&_id=pat-1,prac-1&birthdate=1980'));
        assert.deepEqual(keys(b), ['Patient/pat-1', 'Practitioner/prac-1'], 'birthdate is ignored');
        const outcomes = (b.entry || []).filter((e) => e.search?.mode === 'outcome');
        assert.equal(outcomes.length, 1, 'one outcome entry');
        assert.match(outcomeText(outcomes[0].resource), /birthdate/);
    });
    test('system level: a parameter not every listed type defines, strict: 400', async () => {
        const oo = expectOutcome(await get('?_type=Patient,Practitioner&birthdate=1980', { Prefer: 'handling=strict' }), 400);
        assert.match(outcomeText(oo), /birthdate/);
    });
    test('POST _search: an unknown body parameter is ignored by default', async () => {
        const b = checkSearchset(await postForm('/Patient/_search', 'family=bakker&foo-bar=1'));
        assert.deepEqual(ids(b), ['pat-2', 'pat-5']);
        assert.ok(!link(b, 'self').includes('foo-bar'), 'self link leaves it out');
    });
});

describe('unknown modifiers and malformed values: 400 naming the parameter', () => {
    const cases = [
        ['/Patient?family:fuzzy=bak', 'family'],
        ['/Slot?status:contains=free', 'status'],
        ['/Patient?birthdate:exact=1980', 'birthdate'],
        ['/Appointment?actor:Banana=pat-1', 'actor'],
        ['/Patient?gender:missing=maybe', 'gender'],
        ['/Patient?identifier:of-type=MR|T-001', 'identifier'],
        ['/Patient?birthdate=1980-13-01', 'birthdate'],
        ['/Patient?birthdate=notadate', 'birthdate'],
        ['/Slot?start=xx2026-11-22', 'start'],
        ['/Patient?birthdate=xx2020', 'birthdate'],
        ['/Slot?start=gt', 'start'],
        ['/Slot?start=2026-11-22T25:00:00Z', 'start'],
        ['/Slot?start=2026-11-22T10Z', 'start'],
        ['/Appointment?date=2026-11-22T10:00:00+25:00', 'date'],
        ['/Schedule?date=2026-02-30', 'date'],
        ['/Patient?_lastUpdated=2026-02-30', '_lastUpdated'],
        ['/Patient?family=', 'family'],
        ['/Slot?status=', 'status'],
        ['/Slot?start=', 'start'],
        ['/Patient?_lastUpdated=xx2020', '_lastUpdated'],
        ['/Slot?start=2026-11-22T10:00:00+0100', 'start'],
        ['/Slot?start=2026-1-22', 'start'],
        ['/Patient?birthdate=1980-05-01T', 'birthdate'],
        ['/Location?near=52.3676|4.9041|-1|km', 'near'],
        ['/Location?near=52.3676|200|1|km', 'near'],
        ['/Patient?family:exact:contains=bakker', 'family'],
        ['/Patient?gender:Patient=male', 'gender'],
        ['/Patient?_count=abc', '_count'],
        // modifiers that exist, but not for the parameter's type
        ['/Patient?family:not=bakker', 'family'],
        ['/Patient?name:text=bak', 'name'],
        ['/Slot?start:not=2026', 'start'],
        ['/Appointment?patient:exact=pat-1', 'patient'],
        ['/Patient?gender:contains=mal', 'gender'],
        ['/Location?near=52.3676', 'near'],
        ['/Location?near=north|east|1|km', 'near'],
        ['/Location?near=52.3676|4.9041|1|parsec', 'near'],
        ['/Location?near=52.3676|4.9041|far|km', 'near'],
        ['/Location?near=95|4.9041|1|km', 'near'],
    ];
    for (const [path, param] of cases) {
        test(`GET ${path}`, async () => {
            const url = path.replace(/\?(.*)$/, (_, q) => `?${encQuery(q)}`);
            const oo = expectOutcome(await get(url), 400);
            assert.ok(outcomeText(oo).includes(param), `the outcome names ${param}: ${JSON.stringify(oo)}`);
        });
    }
    test('an unknown modifier is a 400 even under Prefer: handling=lenient', async () => {
        const oo = expectOutcome(await get('/Patient?family:fuzzy=bak', { Prefer: 'handling=lenient' }), 400);
        assert.ok(outcomeText(oo).includes('family'));
    });
    test('a malformed value in a POST _search body: 400', async () => {
        const oo = expectOutcome(await postForm('/Slot/_search', 'start=xx2026-11-22'), 400);
        assert.ok(outcomeText(oo).includes('start'));
    });
});
