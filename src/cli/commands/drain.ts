// `lb drain PROXY TARGET [--timeout DURATION] [--wait]` and `lb undrain PROXY TARGET`, through the
// daemon's control socket. A drained target gets no new flows in any group of the proxy; its
// established flows continue; the drain is done when they reach 0 or the timeout passes, and the
// weight stays 0 until `lb undrain`. TARGET is how the config names it: ip:port or host:port.

import type { DrainState } from '../../runtime/drain.js';
import { parseDuration } from '../../source/index.js';
import { daemonRequest } from '../daemon-request.js';
import { stdio, type CliIo } from '../output.js';

const WHY = 'a drain is kept and applied by the daemon';

export interface DrainOptions {
  instance: string;
  proxy: string;
  target: string;
  /** A duration (30s, 5m); default settings.default-drain-timeout-ms. */
  timeout?: string;
  wait?: boolean;
}

export async function runDrain(options: DrainOptions, io: CliIo = stdio()): Promise<number> {
  const timeoutMs = options.timeout !== undefined ? parseDuration(options.timeout) : undefined;
  // --wait lasts as long as the drain may: its timeout (or the default, at most a day) and a margin.
  const waitMs = options.wait ? (timeoutMs ?? 86_400_000) + 30_000 : 30_000;
  const r = (await daemonRequest(options.instance, 'drain', {
    proxy: options.proxy, target: options.target, ...(timeoutMs !== undefined ? { timeoutMs } : {}), ...(options.wait ? { wait: true } : {}),
  }, { timeoutMs: waitMs, why: WHY })) as { drain: DrainState | null; applied: boolean };
  const d = r.drain;
  const what = `${options.target} of proxy ${options.proxy}`;
  if (!r.applied) io.err(`lb: warning: the new weights are not applied yet (a reconcile is pending or failing; see \`lb status\`)`);
  if (!d) {
    io.out(`The drain of ${what} was ended (undrained, or the target left the config).`);
    return 0;
  }
  switch (d.status) {
    case 'draining':
      io.out(`Draining ${what}: no new flows${r.applied ? '' : ' (once applied)'}; ${flows(d.activeFlows)} active; done when none is left, or at the timeout in ${seconds(d.deadline - Date.now())}.`);
      io.out(`\`lb status\` shows its progress; \`lb undrain ${options.proxy} ${options.target}\` puts it back.`);
      return 0;
    case 'drained':
      io.out(`Drained ${what}: no active flows left; it takes no new flows until \`lb undrain ${options.proxy} ${options.target}\`.`);
      return 0;
    case 'timed-out':
      io.out(`The drain of ${what} timed out after ${seconds(d.timeoutMs)} with ${flows(d.activeFlows)} active; it takes no new flows until \`lb undrain ${options.proxy} ${options.target}\`.`);
      return options.wait ? 2 : 0;
  }
}

export interface UndrainOptions {
  instance: string;
  proxy: string;
  target: string;
}

export async function runUndrain(options: UndrainOptions, io: CliIo = stdio()): Promise<number> {
  const r = (await daemonRequest(options.instance, 'undrain', { proxy: options.proxy, target: options.target }, { why: WHY })) as { undrained: DrainState | null; applied: boolean };
  if (!r.applied) io.err(`lb: warning: the new weights are not applied yet (a reconcile is pending or failing; see \`lb status\`)`);
  io.out(r.undrained
    ? `Undrained ${options.target} of proxy ${options.proxy} (it was ${r.undrained.status}): it takes new flows again${r.applied ? '' : ' once applied'}.`
    : `${options.target} of proxy ${options.proxy} was not drained; nothing changed.`);
  return 0;
}

function flows(n: number | null): string {
  return n === null ? 'an unknown number of flows' : `${n} flow${n === 1 ? '' : 's'}`;
}

function seconds(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return s < 120 ? `${s}s` : `${Math.round(s / 60)}m`;
}
