// FileSource: content-hash revisions and a watcher that survives editors' rename-over saves.

import { mkdir, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FileSource, type FileWatch } from '../../../src/source/index.js';
import { removeDir, tempDir } from '../../lib/git-fixtures.js';

let dir: string;
const watches: FileWatch[] = [];

beforeEach(async () => {
  dir = await tempDir('lb-filesrc-');
});

afterEach(async () => {
  for (const w of watches.splice(0)) w.close();
  await removeDir(dir);
});

async function waitFor(cond: () => boolean, ms = 3000): Promise<void> {
  for (let i = 0; i < ms / 20 && !cond(); i++) await new Promise((r) => setTimeout(r, 20));
}

const settle = (ms = 300): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits for `cond` on the real clock while timers are faked (setImmediate is not). */
async function untilReal(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

describe('FileSource.fetch', () => {
  it('names a file revision by the sha256 of its content', async () => {
    const file = join(dir, 'lb.yaml');
    await writeFile(file, 'proxies: []\n');
    const src = new FileSource({ path: file });
    const r1 = await src.fetch();
    expect(r1.revision).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(r1.configPath).toBe(file);
    expect(r1.rootDir).toBe(dir);
    await utimes(file, new Date(), new Date(Date.now() + 5000));
    expect((await src.fetch()).revision).toBe(r1.revision);
    await writeFile(file, 'proxies: [] # changed\n');
    expect((await src.fetch()).revision).not.toBe(r1.revision);
  });

  it('hashes the config files of a directory (names and contents), not other files', async () => {
    await writeFile(join(dir, 'a.yaml'), 'proxies: []\n');
    await writeFile(join(dir, 'b.edn'), '{}\n');
    const src = new FileSource({ path: dir });
    const r1 = await src.fetch();
    expect(r1.rootDir).toBe(dir);
    await writeFile(join(dir, 'notes.txt'), 'ignored\n');
    await writeFile(join(dir, '.a.yaml.swp'), 'editor junk\n');
    expect((await src.fetch()).revision).toBe(r1.revision);
    await rename(join(dir, 'b.edn'), join(dir, 'c.edn'));
    expect((await src.fetch()).revision).not.toBe(r1.revision);
  });

  it('stalls with LB_SOURCE_FILE when the config is missing', async () => {
    await expect(new FileSource({ path: join(dir, 'missing.yaml') }).fetch()).rejects.toMatchObject({ code: 'LB_SOURCE_FILE', disposition: 'stalling' });
  });
});

describe('FileSource.watch', () => {
  it('fires once per real change, including a save by rename, and not for a touch', async () => {
    const file = join(dir, 'lb.yaml');
    await writeFile(file, 'v: 1\n');
    const src = new FileSource({ path: file, debounceMs: 50 });
    const seen: (string | undefined)[] = [];
    watches.push(src.watch((rev) => seen.push(rev)));
    await settle(100);

    // An editor's save: write a temporary, rename it over the original (new inode).
    await writeFile(join(dir, '.lb.yaml.tmp'), 'v: 2\n');
    await rename(join(dir, '.lb.yaml.tmp'), file);
    await waitFor(() => seen.length === 1);
    expect(seen).toEqual([(await src.fetch()).revision]);

    // The watch survived the rename: a plain write is seen too.
    await writeFile(file, 'v: 3\n');
    await waitFor(() => seen.length === 2);
    expect(seen[1]).toBe((await src.fetch()).revision);

    // Same content again, and a touch: no change.
    await writeFile(file, 'v: 3\n');
    await utimes(file, new Date(), new Date());
    await settle();
    expect(seen).toHaveLength(2);
  });

  it('debounces a burst of writes into one change', async () => {
    const file = join(dir, 'lb.yaml');
    await writeFile(file, 'v: 0\n');
    const src = new FileSource({ path: file, debounceMs: 100 });
    const seen: (string | undefined)[] = [];
    watches.push(src.watch((rev) => seen.push(rev)));
    await settle(100);
    // The debounce clock stands still while the burst is written, so a busy host that spreads the
    // writes over more than the debounce window still makes one burst; the test moves the clock.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      for (let i = 1; i <= 10; i++) await writeFile(file, `v: ${i}\n`);
      await untilReal(() => vi.getTimerCount() > 0, 'the watcher to see the burst');
      expect(vi.getTimerCount()).toBe(1); // every event of the burst re-armed the one debounce timer
      await vi.advanceTimersByTimeAsync(100);
      await untilReal(() => seen.length >= 1, 'the change');
    } finally {
      vi.useRealTimers();
    }
    await settle(); // events of the burst arriving late find the same revision: no second change
    expect(seen).toHaveLength(1);
    expect(seen[0]).toBe((await src.fetch()).revision);
  });

  it('reports a deleted config (undefined) and its return', async () => {
    const sub = join(dir, 'conf');
    await mkdir(sub);
    await writeFile(join(sub, 'lb.yaml'), 'v: 1\n');
    const src = new FileSource({ path: join(sub, 'lb.yaml'), debounceMs: 30 });
    const seen: (string | undefined)[] = [];
    watches.push(src.watch((rev) => seen.push(rev)));
    await settle(100);
    await rm(join(sub, 'lb.yaml'));
    await waitFor(() => seen.length === 1);
    expect(seen).toEqual([undefined]);
    await writeFile(join(sub, 'lb.yaml'), 'v: 1\n');
    await waitFor(() => seen.length === 2);
    expect(seen[1]).toMatch(/^sha256:/);
  });

  it('watches a directory config', async () => {
    await writeFile(join(dir, 'a.yaml'), 'v: 1\n');
    const src = new FileSource({ path: dir, debounceMs: 30 });
    const seen: (string | undefined)[] = [];
    watches.push(src.watch((rev) => seen.push(rev)));
    await settle(100);
    await writeFile(join(dir, 'b.yaml'), 'v: 2\n');
    await waitFor(() => seen.length === 1);
    expect(seen).toHaveLength(1);
  });
});
