// The daemon's FileSource (`lb daemon --config DIR`) against hostile entries in the watched
// directory: a FIFO must make the run Stalled with a clear error (not wedge the loop), a link to
// /dev/zero must not be read, and a link to a secret must not have its lines echoed into the
// status. The reconcile loop is the real one, over the fake kernel engine of the reconcile tests.

import { execFileSync } from 'node:child_process';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Reconciler } from '../../../src/reconcile/index.js';
import { FileSource, SourceError, type FileWatch } from '../../../src/source/index.js';
import { removeDir, tempDir } from '../../lib/git-fixtures.js';
import { FakeClock } from '../reconcile/fake-clock.js';
import { config, FakeEngine, removeRevisions } from '../reconcile/fakes.js';

afterAll(removeRevisions);

let base: string;
let dir: string;
const watches: FileWatch[] = [];

beforeEach(async () => {
  base = await tempDir('lb-filesrc-hostile-');
  dir = join(base, 'config');
  await mkdir(dir);
  await writeFile(join(dir, 'a.yaml'), config([1, 1]));
});

afterEach(async () => {
  for (const w of watches.splice(0)) w.close();
  await removeDir(base);
});

/** What fetch() throws, with its wall time and RSS growth printed. */
async function fetchFailure(label: string, src: FileSource): Promise<SourceError> {
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  const err = await src.fetch().then(
    () => undefined,
    (e: unknown) => e,
  );
  console.log(`[file-source] ${label}: fetch failed in ${(performance.now() - t0).toFixed(1)} ms, RSS growth ${((process.memoryUsage().rss - rss0) / 2 ** 20).toFixed(1)} MiB`);
  if (!(err instanceof SourceError)) throw new Error(`expected a SourceError, got ${String(err)}`);
  return err;
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  for (let i = 0; i < ms / 20 && !cond(); i++) await new Promise((r) => setTimeout(r, 20));
}

function reconcilerOver(source: FileSource) {
  const engine = new FakeEngine();
  const r = new Reconciler({
    clock: new FakeClock(),
    instance: 'unit',
    node: 'n1',
    source,
    sourceInfo: { kind: 'file', url: dir, ref: '', path: '' },
    engine,
    retry: { initialMs: 20, maxMs: 2000, jitter: 0 },
  });
  const run = async (): Promise<void> => {
    r.trigger('startup');
    await r.whenIdle();
  };
  return { r, engine, run };
}

const stalled = (r: Reconciler) => r.report().conditions.find((c) => c.type === 'Stalled');

describe('FileSource against hostile entries', () => {
  it('a FIFO in the watched directory stalls the run with an error naming it, and the loop goes on', async () => {
    execFileSync('mkfifo', [join(dir, 'b.yaml')]);
    const src = new FileSource({ path: dir });
    const err = await fetchFailure('FIFO in the directory', src);
    expect(err).toMatchObject({ code: 'LB_SOURCE_FILE', disposition: 'stalling', reason: 'ConfigUnreadable' });
    expect(err.message).toBe(
      `cannot read the config ${dir}: ${join(dir, 'b.yaml')}: is a FIFO (named pipe); a config file must be a regular file (config directories are not read recursively)`,
    );

    const { r, engine, run } = reconcilerOver(src);
    await run();
    expect(stalled(r)).toMatchObject({ status: 'True', reason: 'ConfigUnreadable' });
    expect(stalled(r)?.message).toContain('b.yaml: is a FIFO (named pipe)');
    expect(engine.applies).toHaveLength(0);

    // Not wedged: once the FIFO is gone, the next run applies.
    await rm(join(dir, 'b.yaml'));
    await run();
    expect(stalled(r)).toBeUndefined();
    expect(engine.applies).toHaveLength(1);
  });

  it('the watch reports a FIFO appearing as "unreadable" rather than hanging, and sees the next real change', async () => {
    const src = new FileSource({ path: dir, debounceMs: 30 });
    const seen: (string | undefined)[] = [];
    watches.push(src.watch((rev) => seen.push(rev)));
    // Real changes first, until one is seen: then the watch is up and knows a good revision (a
    // change made before its first look is not a change to it).
    for (let k = 2; k < 22 && seen.length === 0; k++) {
      await writeFile(join(dir, 'a.yaml'), config([1, k]));
      await waitFor(() => seen.length >= 1, 500);
    }
    const good = (await src.fetch()).revision;
    expect(seen).toEqual([good]);
    execFileSync('mkfifo', [join(dir, 'b.yaml')]);
    await waitFor(() => seen.length >= 2);
    expect(seen).toEqual([good, undefined]);
    await rm(join(dir, 'b.yaml'));
    await waitFor(() => seen.length >= 3);
    expect(seen).toEqual([good, undefined, good]);
  });

  it('a link to /dev/zero in the watched directory is refused without reading it', async () => {
    await symlink('/dev/zero', join(dir, 'zero.yaml'));
    const err = await fetchFailure('link to /dev/zero in the directory', new FileSource({ path: dir }));
    expect(err.message).toBe(
      `cannot read the config ${dir}: ${join(dir, 'zero.yaml')}: is a symbolic link that leads outside the config directory ${dir}; only links that stay inside it are followed`,
    );
  });

  it('a link to a secret outside the directory: refused, and no line of it reaches the status', async () => {
    await writeFile(join(base, 'shadow'), 'root:$6$saltsalt$TOPSECRETHASHVALUE:19000:0:99999:7:::\n');
    await symlink(join(base, 'shadow'), join(dir, 'shadow.yaml'));
    const src = new FileSource({ path: dir });
    const err = await fetchFailure('link to a secret outside', src);
    expect(err.message).not.toContain('TOPSECRET');

    const { r, run } = reconcilerOver(src);
    await run();
    expect(stalled(r)).toMatchObject({ status: 'True', reason: 'ConfigUnreadable' });
    const report = JSON.stringify(r.report());
    expect(report).toContain('shadow.yaml');
    expect(report).not.toContain('TOPSECRET');
    expect(JSON.stringify(r.readiness())).not.toContain('TOPSECRET');
  });
});
