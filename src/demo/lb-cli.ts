// The lb CLI as the demo runs it: `node dist/src/cli/main.js ... --instance I` inside the LB
// namespace with nsenter (which keeps the host's /sys/fs/bpf, where the pins live), bounded in time.

import { execIn, type RunResult } from '../sandbox/index.js';
import type { StatusReport } from '../report/types.js';

const LOCK_RETRIES = 20;

export class LbCli {
  readonly cli: string;
  readonly ns: string;
  readonly instance: string;

  constructor(opts: { cli: string; ns: string; instance: string }) {
    this.cli = opts.cli;
    this.ns = opts.ns;
    this.instance = opts.instance;
  }

  /** argv of `lb ARGS` for this instance (without the namespace part). */
  argv(args: readonly string[]): string[] {
    return [process.execPath, this.cli, '--instance', this.instance, ...args];
  }

  /** How the command reads for a person (`lb --instance demo plan ...`). */
  display(args: readonly string[]): string {
    return ['lb', '--instance', this.instance, ...args].join(' ');
  }

  /**
   * Runs `lb ARGS`; resolves with any exit code. A command refused because the daemon holds the
   * instance lock for a moment (LB_APPLY_LOCKED) is retried, a bounded number of times.
   */
  async run(args: readonly string[], timeoutMs = 60_000): Promise<RunResult> {
    for (let attempt = 0; ; attempt++) {
      const r = await execIn(this.ns, this.argv(args), { via: 'nsenter', timeoutMs, allowFailure: true, env: { ...process.env, NO_COLOR: '1' } });
      if (r.code === 0 || attempt >= LOCK_RETRIES || !/LB_APPLY_LOCKED|is locked|holds the lock/i.test(r.stderr)) return r;
      await new Promise((res) => setTimeout(res, 250));
    }
  }

  /** `lb status --format json`: the daemon's report (null when there is none yet), and what lb said on stderr. */
  async status(): Promise<{ report: StatusReport | null; problem: string }> {
    const r = await execIn(this.ns, this.argv(['status', '--format', 'json']), { via: 'nsenter', timeoutMs: 15_000, allowFailure: true });
    const problem = r.code === 0 ? '' : `lb status exited ${r.code ?? r.signal}: ${r.stderr.trim()}`;
    try {
      return { report: findReport(JSON.parse(r.stdout) as unknown), problem };
    } catch {
      return { report: null, problem: problem || `lb status printed no JSON: ${r.stdout.slice(0, 200)}` };
    }
  }
}

/** The report in `lb status --format json` output: the report itself, or nested under a key. */
function findReport(v: unknown): StatusReport | null {
  if (v === null || typeof v !== 'object') return null;
  const o = v as Record<string, unknown>;
  if ('lastAppliedRevision' in o && 'result' in o) return o as unknown as StatusReport;
  for (const key of ['report', 'status', 'daemon']) {
    const inner = findReport(o[key]);
    if (inner) return inner;
  }
  return null;
}
