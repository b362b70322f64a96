// Plain reads that arrive together share one database execution (store.h, batching; docs/performance.md). Each
// request must still get exactly its own answer: the right body and version, 404 for an unknown id, 410 for a deleted
// one, the live $find proposal for a prop- id, and a write committed before the read started is always seen.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { expectOutcome, fhir, put, sample, startServer, uniq } from '../lib/harness.mjs';

let server;
before(async () => {
    server = await startServer({ env: { FHIRSCHED_THREADS: '1', FHIRSCHED_DATABASE_POOL_SIZE: '1' } });
});
after(async () => {
    await server?.stop();
});

describe('reads queued together', () => {
    it('each of 150 concurrent reads of Patients gets its own resource, 404 or 410', async () => {
        const ids = [];
        for (let i = 0; i < 40; i++) {
            const id = uniq('rb');
            await put(server, sample('Patient', { id, name: [{ family: `Batch${i}` }] }));
            ids.push(id);
        }
        // a second version for some, a deletion for others
        for (let i = 0; i < 10; i++) await put(server, sample('Patient', { id: ids[i], name: [{ family: `Batch${i}-v2` }] }));
        for (let i = 30; i < 40; i++) assert.equal((await fhir(server, 'DELETE', `/Patient/${ids[i]}`)).status, 200);

        const asks = [];
        for (let k = 0; k < 150; k++) {
            const i = k % 45; // 40 known ids and 5 unknown ones, each asked several times in the same burst
            asks.push({ i, id: i < 40 ? ids[i] : `rb-unknown-${i}` });
        }
        const answers = await Promise.all(asks.map((a) => fhir(server, 'GET', `/Patient/${a.id}`)));
        answers.forEach((res, k) => {
            const { i, id } = asks[k];
            if (i >= 40) return expectOutcome(res, 404, 'not-found');
            if (i >= 30) return expectOutcome(res, 410, 'deleted');
            assert.equal(res.status, 200, `${id}: ${res.text}`);
            assert.equal(res.json.id, id);
            assert.equal(res.json.name[0].family, i < 10 ? `Batch${i}-v2` : `Batch${i}`);
            assert.equal(res.json.meta.versionId, i < 10 ? '2' : '1');
            assert.equal(res.headers.get('etag'), `W/"${res.json.meta.versionId}"`);
        });
    });

    it('reads of several types in one burst are answered per type, unknown Appointments after the proposals', async () => {
        const pat = uniq('rbp');
        const prac = uniq('rbd');
        await put(server, sample('Patient', { id: pat }));
        await put(server, sample('Practitioner', { id: prac }));
        // the same id under the other type does not exist
        const paths = [];
        for (let k = 0; k < 20; k++)
            paths.push(`/Patient/${pat}`, `/Practitioner/${prac}`, `/Patient/${prac}`, `/Practitioner/${pat}`, `/Appointment/prop-${k}-0`);
        const answers = await Promise.all(paths.map((p) => fhir(server, 'GET', p)));
        answers.forEach((res, k) => {
            const [, type, id] = paths[k].split('/');
            if (type === 'Appointment') {
                expectOutcome(res, 404, 'not-found'); // looked for among the $find proposals too
            } else if ((type === 'Patient') === (id === pat)) {
                assert.equal(res.status, 200, paths[k]);
                assert.equal(res.json.resourceType, type);
                assert.equal(res.json.id, id);
            } else {
                expectOutcome(res, 404, 'not-found');
            }
        });
    });

    it('a write acknowledged before a burst of reads is seen by every read in it', async () => {
        const id = uniq('rbw');
        await put(server, sample('Patient', { id, name: [{ family: 'Before' }] }));
        for (let round = 0; round < 5; round++) {
            const family = `After${round}`;
            assert.equal((await put(server, sample('Patient', { id, name: [{ family }] }))).status, 200);
            const answers = await Promise.all(Array.from({ length: 30 }, () => fhir(server, 'GET', `/Patient/${id}`)));
            for (const res of answers) {
                assert.equal(res.status, 200);
                assert.equal(res.json.name[0].family, family);
                assert.equal(res.json.meta.versionId, String(round + 2));
            }
        }
    });
});
