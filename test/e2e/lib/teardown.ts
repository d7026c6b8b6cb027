// The end of an e2e file that drives one instance through the CLI in a sandbox topology: stop the
// file's own clients, take the instance down, destroy the topology. The synchronous destroy and
// the removal of the run and config directories happen also when a step before them fails, so a
// failed file leaves no namespace, link, pin or directory behind.

import { existsSync, rmSync } from 'node:fs';
import { instanceDir } from '../../../src/dataplane/index.js';
import type { Topology } from '../../../src/sandbox/index.js';
import { runDir } from '../../../src/state/run-dir.js';
import type { CliResult } from '../../lib/cli.js';

export interface CliInstanceEnd {
  instance: string;
  topo: Topology | undefined;
  /** The file's config directory ('' when none was made). */
  dir: string;
  /** The file's CLI runner (`lb down` runs through it). */
  lb: (args: string[]) => CliResult;
  /** The file's clients and processes, stopped first. */
  stop?: () => Promise<void> | void;
}

export async function endCliInstance(e: CliInstanceEnd): Promise<void> {
  try {
    await e.stop?.();
    if (e.topo && existsSync(instanceDir(e.instance))) e.lb(['down']);
    await e.topo?.destroy();
  } finally {
    e.topo?.destroySync();
    rmSync(runDir(e.instance), { recursive: true, force: true });
    if (e.dir) rmSync(e.dir, { recursive: true, force: true });
  }
}
