// What flush() of the status-branch reporter means: "the latest report is published, or its
// publish has failed" (the retry policy gave up, or the reporter was stopped), never "a publish is
// waiting to retry". On a local repository (no server): a fresh `<ref>.lock` held by "another
// writer" makes a publish fail (with one push attempt per publish), removing it lets the retry
// land. Retries run when the test fires them (ManualScheduler), not after a real delay.

import * as fs from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as git from 'isomorphic-git';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StatusBranchReporter, type PublishOutcome, type StatusReport, type StatusBranchReporterOptions } from '../../../src/report/index.js';
import { ManualScheduler, turn } from '../../lib/manual-scheduler.js';
import { sampleReport } from '../../lib/status-fixtures.js';

const REF = 'refs/heads/lb-status';
let dir: string;
let repo: string;
const reporters: StatusBranchReporter[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lb-flush-'));
  repo = join(dir, 'repo.git');
  await git.init({ fs, dir: repo, bare: true, defaultBranch: 'main' });
});

afterEach(async () => {
  await Promise.all(reporters.splice(0).map((r) => r.close()));
  await rm(dir, { recursive: true, force: true });
});

function reporter(sched: ManualScheduler, over: Partial<StatusBranchReporterOptions> = {}): StatusBranchReporter {
  const rep = new StatusBranchReporter({ url: repo, node: 'node-a', workDir: join(dir, 'work'), maxAttempts: 1, schedule: sched.schedule, ...over });
  reporters.push(rep);
  return rep;
}

/** Another writer holds the branch's lock: publishes fail until it is released. */
const holdLock = (): Promise<void> => writeFile(join(repo, `${REF}.lock`), '');
const releaseLock = (): Promise<void> => rm(join(repo, `${REF}.lock`), { force: true });

async function committedReport(): Promise<StatusReport> {
  const oid = await git.resolveRef({ fs, gitdir: repo, ref: REF });
  const { blob } = await git.readBlob({ fs, gitdir: repo, oid, filepath: 'node-a/status.json' });
  return JSON.parse(Buffer.from(blob).toString('utf8')) as StatusReport;
}

/** flush(), and whether it has resolved yet. */
function tracked(p: Promise<PublishOutcome | undefined>): { done: () => boolean; outcome: Promise<PublishOutcome | undefined> } {
  let done = false;
  const outcome = p.then((o) => {
    done = true;
    return o;
  });
  return { done: () => done, outcome };
}

describe('StatusBranchReporter.flush', () => {
  it('with nothing reported resolves at once; after a publish, with its outcome', async () => {
    const rep = reporter(new ManualScheduler());
    expect(await rep.flush()).toBeUndefined();
    rep.report(sampleReport('node-a'));
    expect((await rep.flush())?.result).toBe('committed');
    expect((await rep.flush())?.result).toBe('committed'); // nothing new: the same answer
  });

  it('does not resolve while a failed publish waits to retry; resolves once the retry published the latest report', async () => {
    const sched = new ManualScheduler();
    const rep = reporter(sched);
    await holdLock();
    rep.report(sampleReport('node-a', { plan: { add: 1, change: 0, destroy: 0 } }));
    const flushed = tracked(rep.flush());
    await sched.scheduled(); // the first publish failed; its retry is waiting
    rep.report(sampleReport('node-a', { plan: { add: 2, change: 0, destroy: 0 } })); // a newer report while it waits
    const flushedLater = tracked(rep.flush());
    await turn();
    expect(flushed.done()).toBe(false);
    expect(flushedLater.done()).toBe(false);
    expect(sched.size).toBe(1); // the new report did not start a publish of its own: the backoff holds

    await releaseLock();
    sched.fire();
    expect(await flushed.outcome).toMatchObject({ result: 'committed', attempts: 1 });
    expect(await flushedLater.outcome).toMatchObject({ result: 'committed' });
    expect((await committedReport()).plan?.add).toBe(2);
    expect(sched.size).toBe(0);
  });

  it('keeps waiting through several failed retries (no give-up by default)', async () => {
    const sched = new ManualScheduler();
    const rep = reporter(sched);
    await holdLock();
    rep.report(sampleReport('node-a'));
    const flushed = tracked(rep.flush());
    for (let i = 0; i < 3; i++) {
      await sched.scheduled();
      await turn();
      expect(flushed.done(), `after failure ${i + 1}`).toBe(false);
      if (i === 2) await releaseLock();
      sched.fire();
    }
    expect((await flushed.outcome)?.result).toBe('committed');
    expect(sched.delays).toHaveLength(3);
    expect(sched.size).toBe(0);
  });

  it('resolves with the failure when the retry policy gives up (maxRetries), and schedules nothing more', async () => {
    const sched = new ManualScheduler();
    const rep = reporter(sched, { maxRetries: 1 });
    await holdLock();
    rep.report(sampleReport('node-a'));
    const flushed = tracked(rep.flush());
    await sched.scheduled();
    await turn();
    expect(flushed.done()).toBe(false); // one retry left
    sched.fire();
    const o = await flushed.outcome;
    expect(o).toMatchObject({ result: 'failed', error: { code: 'LB_REPORT_PUSH' } });
    expect(sched.size).toBe(0);
    // The next report counts again from zero: it gets its retry.
    await releaseLock();
    rep.report(sampleReport('node-a', { plan: { add: 9, change: 0, destroy: 0 } }));
    expect((await rep.flush())?.result).toBe('committed');
    expect((await committedReport()).plan?.add).toBe(9);
  });

  it('resolves as failed when the reporter is stopped while a retry waits; reports after that are ignored', async () => {
    const sched = new ManualScheduler();
    const rep = reporter(sched);
    await holdLock();
    rep.report(sampleReport('node-a'));
    const flushed = tracked(rep.flush());
    await sched.scheduled();
    await rep.close();
    const o = await flushed.outcome;
    expect(o).toMatchObject({ result: 'failed', attempts: 0, error: { code: 'LB_REPORT_PUSH', data: { reason: 'stopped' } } });
    expect(sched.size).toBe(0); // the retry was cancelled
    rep.report(sampleReport('node-a', { plan: { add: 5, change: 0, destroy: 0 } }));
    expect(await rep.flush()).toBe(o);
  });

  it('close() lets a publish in flight finish: its flush() gets the real outcome', async () => {
    const rep = reporter(new ManualScheduler());
    rep.report(sampleReport('node-a', { plan: { add: 3, change: 0, destroy: 0 } }));
    const flushed = rep.flush();
    await rep.close();
    expect((await flushed)?.result).toBe('committed');
    expect((await committedReport()).plan?.add).toBe(3);
  });
});
