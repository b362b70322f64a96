// The private PostgreSQL cluster of scripts/pg.sh (make demo, make test, make bench): its backends run with the
// allocator settings the script gives the postmaster (docs/performance.md, "PostgreSQL's allocator"), and a value
// the caller sets wins.
import { after, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PG_SH, freePort, postmasterAllocatorSettings } from '../lib/harness.mjs';

const execFileP = promisify(execFile);
const dirs = [];

after(async () => {
    for (const dir of dirs) {
        await execFileP(PG_SH, ['stop', dir]).catch(() => {});
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

/** Starts a cluster with the given extra environment; returns its postmaster's allocator settings. */
async function startAndInspect(extraEnv) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fhirsched-pgenv-'));
    dirs.push(dir);
    const port = String(await freePort());
    const env = { ...process.env, ...extraEnv };
    for (const name of ['MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_']) if (!(name in extraEnv)) delete env[name];
    await execFileP(PG_SH, ['start', dir, port], { env, timeout: 120_000 });
    return postmasterAllocatorSettings(dir);
}

it('the postmaster, whose allocator every backend inherits, gets the allocator settings by default', async () => {
    assert.deepEqual(await startAndInspect({}), { MALLOC_MMAP_THRESHOLD_: '4194304', MALLOC_TRIM_THRESHOLD_: '8388608' });
});

it("the caller's own allocator settings win", async () => {
    assert.deepEqual(await startAndInspect({ MALLOC_TRIM_THRESHOLD_: '131072' }), { MALLOC_MMAP_THRESHOLD_: '4194304', MALLOC_TRIM_THRESHOLD_: '131072' });
});
