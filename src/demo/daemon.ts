// `lb daemon` as the demo runs it: inside the LB namespace (nsenter keeps /sys/fs/bpf), following
// the served config repo with polling and a GitHub webhook receiver, reporting to the status
// branch. Its JSON log lines go to a file; the demo shows a few of them, readably.

import type { StatusReport } from '../report/types.js';
import { SandboxError } from '../sandbox/index.js';
import type { LbCli } from './lb-cli.js';
import { DemoProcess } from './processes.js';

export interface DaemonOptions {
  lb: LbCli;
  repoUrl: string;
  branch: string;
  poll: string;
  /** The webhook receiver (with its secret); without it the daemon only polls. */
  webhookListen?: string;
  webhookSecretFile?: string;
  /** Report to this branch; without it, no status commits. */
  statusBranch?: string;
  node: string;
  /** The daemon's clone and checkouts (default /var/lib/lb/<instance>): inside the demo's work directory. */
  workDir: string;
  logFile: string;
  /** More `lb daemon` flags (the benchmark's). */
  extraArgs?: readonly string[];
}

/** The daemon's command line (after `lb --instance I`). */
export function daemonArgs(o: DaemonOptions): string[] {
  return [
    'daemon',
    '--repo', o.repoUrl,
    '--ref', o.branch,
    '--poll', o.poll,
    ...(o.webhookListen !== undefined ? ['--webhook-listen', o.webhookListen] : []),
    ...(o.webhookSecretFile !== undefined ? ['--webhook-secret-file', o.webhookSecretFile] : []),
    ...(o.statusBranch !== undefined ? ['--status-branch', o.statusBranch] : []),
    '--node', o.node,
    '--work-dir', o.workDir,
    ...(o.extraArgs ?? []),
  ];
}

export class DemoDaemon {
  readonly opts: DaemonOptions;
  readonly process: DemoProcess;
  private shownUpTo = 0;

  private constructor(opts: DaemonOptions, proc: DemoProcess) {
    this.opts = opts;
    this.process = proc;
  }

  static start(opts: DaemonOptions): DemoDaemon {
    const proc = DemoProcess.start({
      ns: opts.lb.ns,
      argv: opts.lb.argv(daemonArgs(opts)),
      logFile: opts.logFile,
      label: 'lb daemon',
      env: { ...process.env, NO_COLOR: '1' },
    });
    return new DemoDaemon(opts, proc);
  }

  /**
   * Polls `lb status` until the daemon reports `revision` as applied (bounded). Rejects at once
   * when the daemon exits or reports that revision stalled or failed.
   */
  async waitForApplied(revision: string, timeoutMs: number): Promise<StatusReport> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.process.assertRunning();
      const { report: last, problem } = await this.opts.lb.status();
      if (last?.lastAppliedRevision === revision) return last;
      if (last && last.lastAttemptedRevision === revision && (last.result === 'stalled' || last.result === 'failed')) {
        const errs = last.errors.map((e) => `${e.code}: ${e.message}`).join('; ');
        throw new SandboxError(`the daemon did not apply ${revision.slice(0, 12)}: ${last.result}${errs ? ` (${errs})` : ''}`);
      }
      if (Date.now() >= deadline) {
        const seen = last ? `last report: result ${last.result}, applied ${last.lastAppliedRevision ?? 'none'}, attempted ${last.lastAttemptedRevision ?? 'none'}` : problem || 'no status report';
        throw new SandboxError(`the daemon did not apply ${revision.slice(0, 12)} within ${timeoutMs / 1000} s (${seen}); daemon log: ${this.process.logFile}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** Log lines written since the last call, formatted for reading. */
  newLogLines(): string[] {
    const text = this.process.log();
    const fresh = text.slice(this.shownUpTo);
    const end = fresh.lastIndexOf('\n');
    if (end < 0) return [];
    this.shownUpTo += end + 1;
    return fresh.slice(0, end).split('\n').filter((l) => l.trim() !== '').flatMap(formatLogLine);
  }

  stop(): Promise<'exited' | 'killed'> {
    return this.process.stop(10_000);
  }
}

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
/** Fields every line has, or that the demo shows otherwise. */
const HIDDEN = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'v', 'name', 'instance', 'node', 'component', 'changes']);
const MAX_FIELD = 40;

/**
 * A pino JSON line for reading: `12:00:01.234 INFO  reconcile  message key=value ...`, long values
 * shortened (a revision to 12 characters), and the plan's `changes` one per line below it.
 * Lines that are not JSON come back unchanged.
 */
export function formatLogLine(line: string): string[] {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return [line];
  }
  if (o === null || typeof o !== 'object') return [line];
  const time = typeof o.time === 'number' || typeof o.time === 'string' ? new Date(o.time).toISOString().slice(11, 23) : '';
  const level = (typeof o.level === 'number' ? LEVELS[o.level] : typeof o.level === 'string' ? o.level.toUpperCase() : undefined) ?? '';
  const component = typeof o.component === 'string' ? o.component : '';
  const fields = Object.entries(o)
    .filter(([k, v]) => !HIDDEN.has(k) && v !== undefined && v !== null && (typeof v !== 'object' || Array.isArray(v)))
    .map(([k, v]) => `${k}=${shorten(Array.isArray(v) ? v.join(',') : String(v))}`);
  const head = [time, level.padEnd(5), component.padEnd(9), String(o.msg ?? ''), ...fields].filter((s) => s !== '').join(' ');
  const changes = Array.isArray(o.changes) ? o.changes.map((c) => `    ${String(c)}`) : [];
  return [head, ...changes];
}

function shorten(v: string): string {
  if (/^[0-9a-f]{40}$/.test(v)) return v.slice(0, 12);
  const quoted = /\s/.test(v) ? JSON.stringify(v) : v;
  return quoted.length > MAX_FIELD ? `${quoted.slice(0, MAX_FIELD - 3)}...` : quoted;
}
