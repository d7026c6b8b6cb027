// `lb down`: takes an instance out of the kernel and off the disk: ends the SNI acceptor's socket
// holder (src/acceptor/holder.ts), pair keeper (pair-keeper.ts: its spliced connections
// close) and native front door (door-process.ts: its relays are reset), removes its VIPs' local routes (local-routes.ts), detaches its programs from every
// interface of this network namespace, unpins its maps and programs (flows are lost), and
// removes /run/lb/<instance> (inventory, journal, lock). Idempotent: a second run removes nothing.

import { existsSync, rmSync } from 'node:fs';
import { withInstanceLock } from '../../apply/index.js';
import { DataPlane, instanceDir } from '../../dataplane/index.js';
import { runDir } from '../../state/run-dir.js';
import { endHolder } from '../../acceptor/holder.js';
import { endPairKeeper } from '../../acceptor/pair-keeper.js';
import { endDoor } from '../../acceptor/door-process.js';
import { removeLocalRoutes } from '../../acceptor/local-routes.js';
import { stdio, type CliIo } from '../output.js';

export interface DownOptions {
  instance: string;
}

export async function runDown(options: DownOptions, io: CliIo = stdio()): Promise<number> {
  const dir = runDir(options.instance);
  const hadRunDir = existsSync(dir);
  const lines: string[] = [];
  // The lock keeps a running apply from being cut in half; it lives in the directory removed last.
  await withInstanceLock(options.instance, () => {
    // First the socket holder: then nothing accepts or queues the SNI listeners' connections.
    if (endHolder(options.instance)) lines.push('Ended the SNI acceptor\'s socket holder.');
    if (endPairKeeper(options.instance)) lines.push('Ended the SNI acceptor\'s pair keeper (the connections it relayed or kept close).');
    if (endDoor(options.instance)) lines.push('Ended the native SNI front door (the connections it relayed are reset).');
    const routes = removeLocalRoutes(options.instance);
    if (routes.length > 0) lines.push(`Removed the SNI acceptor's local routes (${routes.join(', ')}).`);
    const r = DataPlane.down(options.instance);
    for (const d of r.detached) lines.push(`Detached lb from ${d.ifname} (${[d.xdp ? 'XDP' : '', d.tc ? 'TC' : ''].filter(Boolean).join(', ')}).`);
    if (r.unpinned.length > 0) lines.push(`Unpinned ${r.unpinned.length} objects from ${instanceDir(options.instance)} (${r.unpinned.join(', ')}).`);
    else if (r.removedDir) lines.push(`Removed the empty ${instanceDir(options.instance)}.`);
    rmSync(dir, { recursive: true, force: true });
  });
  if (hadRunDir) lines.push(`Removed ${dir}.`);
  io.out(lines.length === 0 ? `Instance ${options.instance}: nothing to remove.` : lines.join('\n'));
  return 0;
}
