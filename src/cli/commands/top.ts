// `lb top`: a live view of the running daemon (its status over the control socket, every
// --interval): per proxy and backend connections/s, active, bytes/s, health, circuit, drain,
// latency p50/p99, and the recent closes. The screen is redrawn in place until Ctrl-C.
// `--once --format json` takes two samples one interval apart and prints the view once.

import { controlRequest, controlSocketPath } from '../../daemon/control-socket.js';
import type { DaemonStatus } from '../../daemon/daemon.js';
import { LbError, isLbError } from '../../core/errors.js';
import { topText, topView, type TopView } from '../top-view.js';
import type { StatusReport } from '../../report/types.js';
import { stdio, type CliIo } from '../output.js';

export interface TopOptions {
  instance: string;
  intervalMs: number;
  once: boolean;
  format: 'text' | 'json';
  /** Refreshes before returning (tests; default: until interrupted). */
  iterations?: number;
}

async function report(instance: string): Promise<StatusReport> {
  try {
    const r = (await controlRequest(controlSocketPath(instance), 'status', {}, { timeoutMs: 5000 })) as DaemonStatus;
    return r.report;
  } catch (err) {
    if (isLbError(err, 'LB_DAEMON_CONTROL') && err.data['reason'] === 'unreachable') {
      throw new LbError('LB_DAEMON_CONTROL', `lb top needs the running daemon of instance ${instance} (no answer on ${controlSocketPath(instance)})`, { instance, reason: 'unreachable' });
    }
    throw err;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function runTop(options: TopOptions, io: CliIo = stdio()): Promise<number> {
  let prev = await report(options.instance);
  let prevAt = Date.now();
  const render = (v: TopView): string => (options.format === 'json' ? JSON.stringify(v, null, 2) : topText(v));
  if (options.once) {
    await sleep(options.intervalMs);
    const cur = await report(options.instance);
    io.out(render(topView(options.instance, prev, cur, (Date.now() - prevAt) / 1000)));
    return 0;
  }
  let stop = false;
  const onInt = (): void => { stop = true; };
  process.once('SIGINT', onInt);
  try {
    for (let i = 0; !stop && (options.iterations === undefined || i < options.iterations); i++) {
      await sleep(options.intervalMs);
      const cur = await report(options.instance);
      const now = Date.now();
      const text = render(topView(options.instance, prev, cur, (now - prevAt) / 1000));
      // Home, clear the screen below: the view is redrawn in place.
      io.out(options.format === 'json' ? text : `\x1b[H\x1b[2J${text}`);
      prev = cur;
      prevAt = now;
    }
  } finally {
    process.off('SIGINT', onInt);
  }
  return 0;
}
