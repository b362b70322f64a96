// Error handling: every failure is an OperationOutcome with the right HTTP
// status (FHIR R4 http.html#general, #mime-type, json.html, operationoutcome.html),
// content negotiation, request ids and the request body limit.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
    INVALID_CODES,
    create,
    expectFhirJson,
    expectOutcome,
    expectStatus,
    fhir,
    raw,
    sample,
    startServer,
    uniq,
} from '../lib/harness.mjs';

let server;
before(async () => {
    server = await startServer();
});
after(async () => {
    await server?.stop();
});

const post = (path, body, headers) => fhir(server, 'POST', path, { body, headers });

describe('malformed requests: 400', () => {
    it('unparseable JSON', async () => {
        const res = await post('/Patient', '{"resourceType": "Patient", "active": tru');
        expectOutcome(res, 400, INVALID_CODES);
    });

    it('JSON that is not an object', async () => {
        expectOutcome(await post('/Patient', '[{"resourceType": "Patient"}]'), 400, INVALID_CODES);
        expectOutcome(await post('/Patient', '"Patient"'), 400, INVALID_CODES);
    });

    it('an empty body', async () => {
        expectOutcome(await post('/Patient', ''), 400, INVALID_CODES);
    });

    it('no resourceType', async () => {
        expectOutcome(await post('/Patient', { active: true }), [400, 422], INVALID_CODES);
    });

    it('resourceType that does not match the URL', async () => {
        expectOutcome(await post('/Patient', sample('Practitioner')), [400, 422]);
        const id = uniq('mismatch');
        const res = await fhir(server, 'PUT', `/Patient/${id}`, { body: sample('Practitioner', { id }) });
        expectOutcome(res, [400, 422]);
        expectOutcome(await fhir(server, 'GET', `/Patient/${id}`), 404);
    });

    it('PUT with an id in the body that differs from the URL', async () => {
        const p = await create(server, sample('Patient'));
        const res = await fhir(server, 'PUT', `/Patient/${p.id}`, { body: sample('Patient', { id: uniq('other') }) });
        expectOutcome(res, 400);
    });

    it('PUT with no id in the body', async () => {
        const p = await create(server, sample('Patient'));
        const res = await fhir(server, 'PUT', `/Patient/${p.id}`, { body: sample('Patient') });
        expectOutcome(res, 400);
        assert.equal((await fhir(server, 'GET', `/Patient/${p.id}`)).json.meta.versionId, '1');
    });

    it('an invalid id in the URL', async () => {
        expectOutcome(await fhir(server, 'GET', '/Patient/bad_id'), 400);
        expectOutcome(await fhir(server, 'GET', '/Patient/a%20b'), 400);
        const long = 'a'.repeat(65);
        expectOutcome(await fhir(server, 'GET', `/Patient/${long}`), 400);
        expectOutcome(await fhir(server, 'PUT', `/Patient/${long}`, { body: sample('Patient', { id: long }) }), 400);
        expectOutcome(await fhir(server, 'PUT', '/Patient/bad_id', { body: sample('Patient', { id: 'bad_id' }) }), 400);
        // 64 characters is still a valid id.
        const ok = 'b'.repeat(64);
        expectStatus(await fhir(server, 'PUT', `/Patient/${ok}`, { body: sample('Patient', { id: ok }) }), 201);
    });
});

describe('unknown resource types and routes: 404', () => {
    it('unknown resource type', async () => {
        expectOutcome(await fhir(server, 'GET', '/Foo/1'), [400, 404]);
        expectOutcome(await post('/Foo', { resourceType: 'Foo' }), [400, 404]);
        expectOutcome(await fhir(server, 'GET', '/Foo'), [400, 404]);
    });

    it('resource types are case-sensitive', async () => {
        expectOutcome(await fhir(server, 'GET', '/patient/1'), [400, 404]);
    });

    it('a valid R4 type this server does not support', async () => {
        expectOutcome(await fhir(server, 'GET', '/Observation/1'), [400, 404]);
        expectOutcome(await post('/Observation', { resourceType: 'Observation', status: 'final', code: { text: 'x' } }), [400, 404]);
    });

    it('unknown route below the FHIR base', async () => {
        expectOutcome(await fhir(server, 'GET', '/Patient/1/foo/bar/baz'), 404);
        expectOutcome(await fhir(server, 'GET', '/Patient/1/_history/1/extra'), 404);
    });

    it('unknown route outside the FHIR base', async () => {
        const res = await fhir(server, 'GET', `${server.root}/no/such/thing`);
        expectOutcome(res, 404);
    });
});

describe('unsupported method: 405', () => {
    it('POST to an instance', async () => {
        const p = await create(server, sample('Patient'));
        expectOutcome(await post(`/Patient/${p.id}`, sample('Patient', { id: p.id })), 405);
    });

    it('DELETE of the CapabilityStatement', async () => {
        expectOutcome(await fhir(server, 'DELETE', '/metadata'), 405);
    });
});

describe('invalid content: 422 with a FHIRPath expression', () => {
    it('unknown element', async () => {
        const res = await post('/Patient', sample('Patient', { foo: 'bar' }));
        expectOutcome(res, 422, INVALID_CODES, { expression: 'Patient.foo' });
    });

    it('unknown element inside a datatype', async () => {
        const res = await post('/Patient', sample('Patient', { name: [{ family: 'Doe', foo: 1 }] }));
        expectOutcome(res, 422, INVALID_CODES, { expression: 'Patient.name[0].foo' });
    });

    it('wrong JSON type for a primitive', async () => {
        const res = await post('/Patient', sample('Patient', { active: 'true' }));
        expectOutcome(res, 422, INVALID_CODES, { expression: 'Patient.active' });
    });

    it('wrong JSON type inside an array', async () => {
        const res = await post('/Patient', sample('Patient', { name: [{ family: 'Doe', given: ['Ann', 5] }] }));
        expectOutcome(res, 422, INVALID_CODES, { expression: 'Patient.name[0].given[1]' });
    });

    it('a single value where the element repeats', async () => {
        const res = await post('/Patient', sample('Patient', { name: { family: 'Doe' } }));
        expectOutcome(res, 422, INVALID_CODES, { expression: /^Patient\.name/ });
    });

    it('code outside a required value set', async () => {
        const res = await post('/Appointment', sample('Appointment', { status: 'foo' }));
        expectOutcome(res, 422, INVALID_CODES, { expression: 'Appointment.status' });
    });

    it('Appointment with start but no end (app-2)', async () => {
        const a = sample('Appointment');
        delete a.end;
        expectOutcome(await post('/Appointment', a), 422, INVALID_CODES, { expression: true });
    });

    it('booked Appointment without start and end (app-3)', async () => {
        const a = sample('Appointment');
        delete a.start;
        delete a.end;
        expectOutcome(await post('/Appointment', a), 422, INVALID_CODES, { expression: true });
    });

    it('Slot whose end is before its start', async () => {
        const res = await post('/Slot', sample('Slot', { start: '2030-01-07T10:00:00Z', end: '2030-01-07T09:00:00Z' }));
        expectOutcome(res, 422, undefined, { expression: true });
    });

    it('missing required element', async () => {
        const s = sample('Slot');
        delete s.schedule;
        expectOutcome(await post('/Slot', s), 422, INVALID_CODES, { expression: /^Slot(\.schedule)?$/ });
        const a = sample('Appointment');
        delete a.participant;
        expectOutcome(await post('/Appointment', a), 422, INVALID_CODES, { expression: /^Appointment(\.participant)?$/ });
    });

    it('a date that does not exist', async () => {
        const res = await post('/Patient', sample('Patient', { birthDate: '2020-02-30' }));
        expectOutcome(res, 422, INVALID_CODES, { expression: 'Patient.birthDate' });
    });

    it('a badly formatted date', async () => {
        const res = await post('/Patient', sample('Patient', { birthDate: '01/02/2020' }));
        expectOutcome(res, 422, INVALID_CODES, { expression: 'Patient.birthDate' });
    });

    it('an instant without a time zone', async () => {
        const res = await post('/Slot', sample('Slot', { start: '2030-01-07T09:00:00' }));
        expectOutcome(res, 422, INVALID_CODES, { expression: 'Slot.start' });
    });

    it('null, empty strings, empty arrays and empty objects are not allowed in FHIR JSON', async () => {
        expectOutcome(await post('/Patient', sample('Patient', { gender: null })), [400, 422], INVALID_CODES);
        expectOutcome(await post('/Patient', sample('Patient', { gender: '' })), 422, INVALID_CODES, { expression: 'Patient.gender' });
        expectOutcome(await post('/Patient', sample('Patient', { name: [] })), 422, INVALID_CODES, { expression: /^Patient\.name/ });
        expectOutcome(await post('/Patient', sample('Patient', { maritalStatus: {} })), 422, INVALID_CODES, {
            expression: /^Patient\.maritalStatus/,
        });
    });

    it('a 422 leaves nothing behind', async () => {
        const id = uniq('invalid');
        const res = await fhir(server, 'PUT', `/Patient/${id}`, { body: sample('Patient', { id, gender: 'robot' }) });
        expectOutcome(res, 422, INVALID_CODES, { expression: 'Patient.gender' });
        expectOutcome(await fhir(server, 'GET', `/Patient/${id}`), 404);
    });
});

describe('content negotiation', () => {
    it('Accept: application/fhir+xml or application/xml: 406 (XML is not supported yet)', async () => {
        const p = await create(server, sample('Patient'));
        for (const accept of ['application/fhir+xml', 'application/xml']) {
            const res = await fhir(server, 'GET', `/Patient/${p.id}`, { headers: { Accept: accept } });
            expectOutcome(res, 406);
        }
    });

    it('_format=xml: 406', async () => {
        const p = await create(server, sample('Patient'));
        expectOutcome(await fhir(server, 'GET', `/Patient/${p.id}?_format=xml`), 406);
        expectOutcome(await fhir(server, 'GET', `/Patient/${p.id}?_format=application/fhir%2Bxml`), 406);
    });

    it('_format=json, application/fhir+json and application/json give JSON', async () => {
        const p = await create(server, sample('Patient'));
        for (const f of ['json', 'application/fhir%2Bjson', 'application/json']) {
            const res = await fhir(server, 'GET', `/Patient/${p.id}?_format=${f}`);
            expectStatus(res, 200);
            assert.match(res.headers.get('content-type'), /^application\/(fhir\+)?json/);
            assert.equal(res.json.id, p.id);
        }
        const res = await fhir(server, 'GET', `/Patient/${p.id}?_format=json`);
        expectFhirJson(res);
    });

    it('_format overrides the Accept header', async () => {
        const p = await create(server, sample('Patient'));
        const res = await fhir(server, 'GET', `/Patient/${p.id}?_format=json`, { headers: { Accept: 'application/fhir+xml' } });
        expectStatus(res, 200);
        assert.equal(res.json.id, p.id);
    });

    it('Accept: */*, a list with JSON in it, and fhirVersion / charset parameters give JSON', async () => {
        const p = await create(server, sample('Patient'));
        for (const accept of [
            '*/*',
            'application/fhir+xml;q=0.9, application/fhir+json',
            'application/fhir+json; fhirVersion=4.0',
            'application/fhir+json; charset=utf-8',
        ]) {
            const res = await fhir(server, 'GET', `/Patient/${p.id}`, { headers: { Accept: accept } });
            expectStatus(res, 200);
            expectFhirJson(res);
        }
    });

    it('responses declare charset=utf-8 (R4: requests and responses SHALL set it)', async () => {
        const p = await create(server, sample('Patient'));
        const res = await fhir(server, 'GET', `/Patient/${p.id}`);
        assert.match(res.headers.get('content-type'), /^application\/fhir\+json;\s*charset=utf-8$/i);
        const err = await fhir(server, 'GET', `/Patient/${uniq('nope')}`);
        assert.match(err.headers.get('content-type'), /^application\/fhir\+json;\s*charset=utf-8$/i);
    });

    it('Content-Type text/plain or XML on POST: 415', async () => {
        const body = JSON.stringify(sample('Patient'));
        expectOutcome(await post('/Patient', body, { 'Content-Type': 'text/plain' }), 415);
        expectOutcome(await post('/Patient', '<Patient xmlns="http://hl7.org/fhir"/>', { 'Content-Type': 'application/fhir+xml' }), 415);
    });

    it('Content-Type with a charset parameter is accepted', async () => {
        const res = await post('/Patient', JSON.stringify(sample('Patient')), { 'Content-Type': 'application/fhir+json; charset=utf-8' });
        expectStatus(res, 201);
    });

    it('_pretty=true indents the body', async () => {
        const p = await create(server, sample('Patient'));
        const res = await fhir(server, 'GET', `/Patient/${p.id}?_pretty=true`);
        expectStatus(res, 200);
        assert.match(res.text, /\n[ \t]+"resourceType"/, 'indented');
        assert.equal(res.json.id, p.id);
        const compact = await fhir(server, 'GET', `/Patient/${p.id}?_pretty=false`);
        expectStatus(compact, 200);
        assert.deepEqual(compact.json, res.json);
    });
});

describe('request ids', () => {
    it('X-Request-Id sent is echoed back', async () => {
        const res = await fhir(server, 'GET', '/metadata', { headers: { 'X-Request-Id': 'it-test-0123456789' } });
        expectStatus(res, 200);
        assert.equal(res.headers.get('x-request-id'), 'it-test-0123456789');
        const err = await fhir(server, 'GET', `/Patient/${uniq('nope')}`, { headers: { 'X-Request-Id': 'it-test-err' } });
        expectOutcome(err, 404);
        assert.equal(err.headers.get('x-request-id'), 'it-test-err');
    });

    it('an X-Request-Id is generated when absent, different for each request', async () => {
        const a = await fhir(server, 'GET', '/metadata');
        const b = await fhir(server, 'GET', '/metadata');
        const ida = a.headers.get('x-request-id');
        const idb = b.headers.get('x-request-id');
        assert.ok(ida && ida.length >= 8, `generated X-Request-Id: ${ida}`);
        assert.ok(idb && idb !== ida, 'a new id per request');
    });
});

describe('every error response is an OperationOutcome in application/fhir+json', () => {
    it('a sample of error paths', async () => {
        const cases = [
            ['GET', '/Patient/does-not-exist-here', undefined, {}],
            ['GET', '/Nope', undefined, {}],
            ['POST', '/Patient', '{', {}],
            ['POST', '/Patient', JSON.stringify(sample('Patient')), { 'Content-Type': 'text/plain' }],
            ['GET', '/metadata', undefined, { Accept: 'application/fhir+xml' }],
            ['PUT', '/Patient/x1', JSON.stringify(sample('Patient', { id: 'x2' })), {}],
        ];
        for (const [method, path, body, headers] of cases) {
            const res = await fhir(server, method, path, { body, headers });
            assert.ok(res.status >= 400, `${method} ${path}: ${res.status}`);
            expectOutcome(res, res.status);
        }
    });
});

describe('request body size limit', () => {
    let small;
    before(async () => {
        small = await startServer({ env: { FHIRSCHED_HTTP_MAX_BODY_BYTES: '10000' } });
    });
    after(async () => {
        await small?.stop();
    });

    const bigPatient = (bytes) => sample('Patient', { name: [{ family: 'Doe', text: 'x'.repeat(bytes) }] });

    it('a body under the limit is accepted', async () => {
        const res = await fhir(small, 'POST', '/Patient', { body: bigPatient(5000) });
        expectStatus(res, 201);
    });

    it('a body over the limit: 413 with an OperationOutcome', async () => {
        const res = await fhir(small, 'POST', '/Patient', { body: bigPatient(50_000) });
        expectOutcome(res, 413);
        const search = await fhir(small, 'GET', '/Patient?_count=100');
        assert.ok((search.json.entry || []).every((e) => (e.resource.name?.[0]?.text ?? '').length < 10_000), 'nothing stored');
    });

    it('a chunked body over the limit (no Content-Length): 413', async () => {
        const payload = new TextEncoder().encode(JSON.stringify(bigPatient(50_000)));
        const stream = new ReadableStream({
            start(controller) {
                for (let i = 0; i < payload.length; i += 4096) controller.enqueue(payload.slice(i, i + 4096));
                controller.close();
            },
        });
        let res;
        try {
            res = await fetch(`${small.base}/Patient`, {
                method: 'POST',
                body: stream,
                duplex: 'half',
                headers: { 'content-type': 'application/fhir+json', accept: 'application/fhir+json' },
            });
        } catch (e) {
            assert.fail(`the server cut the connection instead of answering 413: ${e.cause?.code || e.message}`);
        }
        assert.equal(res.status, 413);
        assert.match(res.headers.get('content-type') ?? '', /^application\/fhir\+json/);
        const oo = await res.json();
        assert.equal(oo.resourceType, 'OperationOutcome');
    });

    it('the server is still healthy afterwards', async () => {
        expectStatus(await raw(small, 'GET', '/healthz'), 200);
        expectStatus(await fhir(small, 'POST', '/Patient', { body: sample('Patient') }), 201);
    });
});
