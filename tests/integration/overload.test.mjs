// Back-pressure and stuck queries: a full database queue answers 503 with Retry-After; a query that outlives
// database.query_timeout_ms is abandoned with a 503, its connection is reset, and the server carries on.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, fhir, expectStatus, expectOutcome } from '../lib/harness.mjs';

/** A transaction of `n` Patient creates: enough work to keep a connection busy for a while. */
function bigTransaction(n) {
    return {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: Array.from({ length: n }, (_, i) => ({
            request: { method: 'POST', url: 'Patient' },
            resource: { resourceType: 'Patient', name: [{ family: `Load${i}` }] },
        })),
    };
}

describe('overload and timeouts', () => {
    const servers = [];
    after(async () => {
        for (const s of servers) await s.stop();
    });

    it('a full queue gets 503 + Retry-After with an OperationOutcome, and the rest is served', async () => {
        const server = await startServer({ env: { FHIRSCHED_DATABASE_POOL_SIZE: '1', FHIRSCHED_DATABASE_QUEUE_LIMIT: '1' } });
        servers.push(server);
        const requests = Array.from({ length: 12 }, () => fhir(server, 'POST', '', { body: bigTransaction(200) }));
        const results = await Promise.all(requests);
        const statuses = results.map((r) => r.status);
        assert.ok(statuses.includes(200), `no transaction succeeded: ${statuses}`);
        const refused = results.filter((r) => r.status === 503);
        assert.ok(refused.length > 0, `nothing was refused: ${statuses}`);
        for (const r of refused) {
            expectOutcome(r, 503, 'transient');
            assert.equal(r.headers.get('retry-after'), '1');
        }
        assert.deepEqual([...new Set(statuses)].sort(), [200, 503]);
        expectStatus(await fhir(server, 'GET', '/metadata'), 200);
        expectStatus(await fhir(server, 'GET', '/Patient?_count=1'), 200);
    });

    it('a query slower than the timeout is abandoned with 503, and the server recovers', async () => {
        const server = await startServer({ env: { FHIRSCHED_DATABASE_QUERY_TIMEOUT_MS: '10', FHIRSCHED_DATABASE_POOL_SIZE: '1' } });
        servers.push(server);
        // 3,000 OR-ed date values: planning 3,000 range conditions takes far longer than 10 ms.
        const dates = Array.from({ length: 3000 }, (_, i) => `${1000 + i}-01-01`).join(',');
        const slow = await fhir(server, 'GET', `/Patient?birthdate=${dates}&_count=1`);
        expectOutcome(slow, 503, 'transient');
        assert.match(slow.json.issue[0].diagnostics, /timed out/);
        // The connection was reset and reconnects by itself; quick requests work again.
        let ok = false;
        for (let i = 0; i < 50 && !ok; i++) {
            ok = (await fhir(server, 'GET', '/Patient?_count=1&_summary=count')).status === 200;
            if (!ok) await new Promise((r) => setTimeout(r, 100));
        }
        assert.ok(ok, 'the server did not recover after a timeout');
    });
});
