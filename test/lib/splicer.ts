// The in-kernel relay (src/acceptor/splice.ts) for a test file: lb_splice loaded into a bpffs
// instance directory of its own before the file's tests, removed after them, with the per-test
// cleanups the acceptor helpers (test/lib/acceptor.ts) take. Call at the top level of the file.
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { Splicer } from '../../src/acceptor/splice.js';
import { ensureInstanceDir, removeInstanceDir } from '../../src/dataplane/bpffs.js';
import type { Cleanups } from './acceptor.js';
import { ensureBuilt } from './build.js';

export interface SplicerFixture {
  /** The loaded Splicer (set once the file's beforeAll ran). */
  readonly splicer: Splicer;
  /** Run in reverse after each test. */
  cleanups: Cleanups;
}

export function useSplicer(prefix: string): SplicerFixture {
  const instance = `${prefix}-${process.pid}${randomBytes(2).toString('hex')}`;
  let splicer: Splicer | undefined;
  const cleanups: Cleanups = [];
  afterEach(async () => { for (const c of cleanups.splice(0).reverse()) await c(); });
  beforeAll(async () => {
    await ensureBuilt();
    splicer = Splicer.open(ensureInstanceDir(instance), 'build/bpf');
  });
  afterAll(() => {
    splicer?.close();
    removeInstanceDir(instance);
  });
  return {
    get splicer(): Splicer {
      if (!splicer) throw new Error('useSplicer: the splicer is loaded in beforeAll');
      return splicer;
    },
    cleanups,
  };
}
