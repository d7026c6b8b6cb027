// What the gitops benchmark reads back from the daemon: /run/lb/<instance>/status.json, polled
// every few milliseconds to timestamp "applied" (the daemon rewrites it atomically at every status
// change, after the apply's verify step; /run is not namespaced, so it is read from here), the
// daemon's reconcile log lines (their durationMs is the figure lb_reconcile_duration_seconds
// observes), and the live maps (`lb show maps --format json` in the LB namespace).

import { performance } from 'node:perf_hooks';
import { readStatusFile } from '../../src/daemon/status-file.js';
import type { DemoProcess } from '../../src/demo/processes.js';
import type { LbCli } from '../../src/demo/lb-cli.js';
import type { StatusReport } from '../../src/report/types.js';
import { BenchError } from './errors.js';
import { sleep } from './stats.js';

/** Interval of the status-file poll: the resolution of every "applied" timestamp. */
export const STATUS_POLL_MS = 2;

export interface Applied {
  /** performance.now() right after the read that first showed the revision as applied. */
  at: number;
  report: StatusReport;
}

/**
 * Resolves when status.json says `revision` is the last applied one. Rejects when the daemon
 * exits, reports that revision stalled or failed, or after `timeoutMs`.
 */
export async function waitForApplied(instance: string, revision: string, daemon: DemoProcess, timeoutMs: number): Promise<Applied> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const last = readStatusFile(instance);
    const at = performance.now();
    if (last?.lastAppliedRevision === revision) return { at, report: last };
    if (last && last.lastAttemptedRevision === revision && (last.result === 'stalled' || last.result === 'failed')) {
      const errs = last.errors.map((e) => `${e.code}: ${e.message}`).join('; ');
      throw new BenchError(`the daemon did not apply ${revision.slice(0, 12)}: ${last.result}${errs ? ` (${errs})` : ''}`);
    }
    daemon.assertRunning();
    if (at >= deadline) {
      const seen = last ? `status: result ${last.result}, applied ${last.lastAppliedRevision ?? 'none'}, attempted ${last.lastAttemptedRevision ?? 'none'}` : 'no status.json';
      throw new BenchError(`the daemon did not apply ${revision.slice(0, 12)} within ${timeoutMs / 1000} s (${seen}); log: ${daemon.logFile}`);
    }
    await sleep(STATUS_POLL_MS);
  }
}

export interface ReconcileLine {
  result: string;
  revision: string | null;
  durationMs: number;
  triggers: string[];
}

/** The daemon's reconcile outcome lines (applied and noop; they carry durationMs). */
export function reconcileLines(log: string): ReconcileLine[] {
  const out: ReconcileLine[] = [];
  for (const line of log.split('\n')) {
    if (!line.includes('"durationMs"')) continue;
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    if (o.component !== 'reconcile' || typeof o.durationMs !== 'number' || typeof o.result !== 'string') continue;
    out.push({
      result: o.result,
      revision: typeof o.revision === 'string' ? o.revision : null,
      durationMs: o.durationMs,
      triggers: Array.isArray(o.triggers) ? o.triggers.map(String) : [],
    });
  }
  return out;
}

/** Waits (bounded) for the daemon's first reconcile outcome line. */
export async function waitForFirstReconcile(daemon: DemoProcess, timeoutMs: number): Promise<ReconcileLine> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const first = reconcileLines(daemon.log())[0];
    if (first) return first;
    daemon.assertRunning();
    if (performance.now() >= deadline) throw new BenchError(`lb daemon: no reconcile within ${timeoutMs / 1000} s (log: ${daemon.logFile})`);
    await sleep(20);
  }
}

export interface LiveWeights {
  /** The apply inventory's revision (what the last apply recorded), if any. */
  revision: string | null;
  /** Effective weight per "addr:port" of the listener's default targets, in map order. */
  weights: Array<{ target: string; weight: number }>;
}

interface ShowMaps {
  exists?: boolean;
  last_apply?: { revision?: string | null } | null;
  state?: { listeners?: Array<{ vip: string; port: number; defaultTargets: Array<{ addr: string; port: number; weight: number }> }> };
}

/** The active generation's default-target weights of the listener vip:port, read from the maps. */
export async function liveWeights(lb: LbCli, vip: string, port: number): Promise<LiveWeights> {
  const r = await lb.run(['show', 'maps', '--format', 'json'], 30_000);
  if (r.code !== 0) throw new BenchError(`lb show maps failed (exit ${r.code ?? r.signal}): ${r.stderr.trim()}`);
  const j = JSON.parse(r.stdout) as ShowMaps;
  const listener = j.state?.listeners?.find((l) => l.vip === vip && l.port === port);
  if (!j.exists || !listener) throw new BenchError(`lb show maps: no listener ${vip}:${port} in the active generation`);
  return {
    revision: j.last_apply?.revision ?? null,
    weights: listener.defaultTargets.map((t) => ({ target: `${t.addr}:${t.port}`, weight: t.weight })),
  };
}
