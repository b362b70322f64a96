// The database goes away and comes back: the server answers 503 meanwhile,
// stays up, and recovers by itself.

import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import {
    content,
    create,
    expectOutcome,
    expectStatus,
    fhir,
    raw,
    sample,
    sleep,
    startPrivateCluster,
    startServer,
} from '../lib/harness.mjs';

let cluster;
let server;
before(async () => {
    cluster = await startPrivateCluster();
    server = await startServer({ databaseUrl: cluster.url });
});
after(async () => {
    try {
        await server?.stop();
    } finally {
        await cluster?.destroy();
    }
});

it('503 while PostgreSQL is down, then recovery with the data intact', async () => {
    const p = await create(server, sample('Patient'));

    await cluster.stop();

    for (let i = 0; i < 5; i++) {
        const t0 = Date.now();
        const res = await fhir(server, 'GET', `/Patient/${p.id}`, { timeoutMs: 30_000 });
        expectOutcome(res, 503, ['transient', 'exception', 'timeout', 'no-store', 'lock-error']);
        assert.ok(Date.now() - t0 < 15_000, `a 503 took ${Date.now() - t0} ms`);
        await sleep(200);
    }
    expectOutcome(await fhir(server, 'POST', '/Patient', { body: sample('Patient') }), 503);
    expectOutcome(await fhir(server, 'GET', '/Patient?_count=1'), 503);
    expectStatus(await raw(server, 'GET', '/readyz'), 503);
    expectStatus(await raw(server, 'GET', '/healthz'), 200);
    assert.ok(server.alive(), 'the server process is still running');

    await cluster.start();

    const deadline = Date.now() + 15_000;
    let res;
    const statuses = [];
    while (Date.now() < deadline) {
        res = await fhir(server, 'GET', `/Patient/${p.id}`, { timeoutMs: 15_000 });
        statuses.push(res.status);
        if (res.status === 200) break;
        await sleep(250);
    }
    assert.equal(res.status, 200, `no recovery within 15 s after PostgreSQL came back (statuses: ${statuses.join(',')})`);
    assert.deepEqual(content(res.json), content(p));
    assert.equal(res.json.meta.versionId, '1');

    expectStatus(await fhir(server, 'POST', '/Patient', { body: sample('Patient') }), 201);
    expectStatus(await raw(server, 'GET', '/readyz'), 200);
    assert.ok(server.alive());
});
