// Helpers for the daemon e2e tests: the built `lb daemon` as a child process in a network namespace
// of the test's own (nsenter keeps /sys/fs/bpf), its JSON log lines, the ops endpoints and webhooks
// reached from inside that namespace (its loopback), and the smart-HTTP git server running there
// too (src/sandbox/git-server-main.ts), so the daemon fetches from 127.0.0.1 of its namespace.
// Pushes go to the bare repository by path (no network). Every wait is bounded.
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { controlRequest, controlSocketPath } from '../../../src/daemon/control-socket.js';
import type { DaemonStatus } from '../../../src/daemon/daemon.js';
import { readStatusFile } from '../../../src/daemon/status-file.js';
import { isLbError } from '../../../src/core/errors.js';
import type { StatusReport } from '../../../src/report/types.js';
import { ManagedProcess, execIn, waitUntil } from '../../../src/sandbox/index.js';
import { hmacSha256 } from '../../../src/webhook/signature.js';
import { CLI, ROOT } from '../../lib/cli.js';

export type LogLine = Record<string, unknown> & { msg?: string; level?: string; component?: string };

/** Where every test daemon's whole output is written when it exits (docs/testing.md). */
export const TEST_LOG_DIR = process.env['LB_TEST_LOGS'] ?? '/tmp/lb-test-logs';
let daemonsStarted = 0;

/** `lb --instance I daemon ARGS` in network namespace `ns`. */
export class DaemonProcess {
  readonly proc: ManagedProcess;
  readonly instance: string;
  readonly ns: string;

  constructor(ns: string, instance: string, args: readonly string[]) {
    this.ns = ns;
    this.instance = instance;
    this.proc = new ManagedProcess(['nsenter', `--net=/run/netns/${ns}`, process.execPath, CLI, '--instance', instance, 'daemon', ...args], {
      env: { ...process.env, NO_COLOR: '1', LB_FAULT_INJECT: '', LB_GIT_TOKEN: '', LB_GIT_PASSWORD: '' },
      label: `lb daemon (${instance} in ${ns})`,
    });
    // The error of a failed wait shows the log's tail; the whole log is kept here for the post-mortem.
    const file = join(TEST_LOG_DIR, `${instance}-${++daemonsStarted}.log`);
    void this.proc.exited.then((status) => {
      try {
        mkdirSync(TEST_LOG_DIR, { recursive: true });
        writeFileSync(file, `# ${this.proc.label}: ${JSON.stringify(status)}\n# stdout\n${this.proc.stdout}\n# stderr\n${this.proc.stderr}`);
      } catch {
        // a log that cannot be kept must not fail the test
      }
    });
  }

  /** Resolves once the daemon logged that it started (its endpoints listen). */
  async started(timeoutMs = 15_000): Promise<void> {
    await this.proc.waitForOutput(/"msg":"lb daemon started"/, timeoutMs);
  }

  logs(): LogLine[] {
    return this.proc.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => {
      try { return JSON.parse(l) as LogLine; } catch { return {}; }
    });
  }

  waitForLog(pred: (l: LogLine) => boolean, what: string, timeoutMs = 15_000): Promise<LogLine> {
    return waitUntil(() => {
      if (!this.proc.running) throw new Error(`${this.proc.label} exited: ${this.proc.stderr.slice(-2000)}`);
      return this.logs().find(pred);
    }, { timeoutMs, intervalMs: 50, what: `${what}\n--- daemon log tail (whole log: ${TEST_LOG_DIR}/${this.instance}-*.log once it exits) ---\n${this.proc.stdout.slice(-3000)}` });
  }

  /** SIGKILL of the daemon alone (nsenter execs node: the pid is the daemon's). */
  async kill9(): Promise<void> {
    if (this.proc.pid !== undefined) process.kill(this.proc.pid, 'SIGKILL');
    await this.proc.exited;
  }

  /** SIGTERM, bounded; the exit status. */
  stop(graceMs = 10_000) {
    return this.proc.stop(graceMs);
  }
}

/** GET http://127.0.0.1:PORT/PATH from inside `ns` (curl); status and body. */
export async function httpInNs(ns: string, port: number, path: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; body: string }> {
  const argv = ['curl', '-sS', '--noproxy', '*', '--max-time', '5', '-o', '-', '-w', '\n%{http_code}'];
  if (opts.method) argv.push('-X', opts.method);
  for (const [k, v] of Object.entries(opts.headers ?? {})) argv.push('-H', `${k}: ${v}`);
  if (opts.body !== undefined) argv.push('--data-binary', opts.body);
  argv.push(`http://127.0.0.1:${port}${path}`);
  const r = await execIn(ns, argv, { via: 'nsenter', timeoutMs: 10_000, allowFailure: true });
  if (r.code !== 0) throw new Error(`curl ${path} in ${ns} failed (exit ${r.code}): ${r.stderr.trim()}`);
  const i = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(i + 1)), body: r.stdout.slice(0, i) };
}

/** The value of one sample of a metric in an exposition text (labels matched exactly as given), or undefined. */
export function metric(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = (m[2] ?? '').split(/,(?=[a-zA-Z_]+=")/).filter(Boolean);
    if (want.every((w) => have.includes(w)) && have.length === want.length) return Number(m[3]);
  }
  return undefined;
}

/** The sum of every sample of a metric (all label values). */
export function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{.*\})? (\S+)$/.exec(line);
    if (m && m[1] === name) sum += Number(m[2]);
  }
  return sum;
}

export async function metricsText(ns: string, port: number): Promise<string> {
  const r = await httpInNs(ns, port, '/metrics');
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
  return r.body;
}

export interface StatusView {
  daemon: { running: boolean; ready?: boolean; reconciles?: number; idle?: boolean };
  status: StatusReport | null;
}

/**
 * What `lb status --format json` shows, read the way it does (the control socket, else the status
 * file) but without spawning the CLI: tests poll it often.
 */
export async function lbStatus(instance: string): Promise<StatusView> {
  try {
    const r = (await controlRequest(controlSocketPath(instance), 'status', {}, { timeoutMs: 5000 })) as DaemonStatus;
    return { daemon: { running: true, ready: r.daemon.ready, reconciles: r.daemon.reconciles, idle: r.daemon.idle }, status: r.report };
  } catch (err) {
    if (!(isLbError(err, 'LB_DAEMON_CONTROL') && err.data['reason'] === 'unreachable')) throw err;
    return { daemon: { running: false }, status: readStatusFile(instance) };
  }
}

/** Polls the status until pred holds (bounded). */
export function waitForStatus(instance: string, pred: (s: StatusView) => boolean, what: string, timeoutMs = 20_000): Promise<StatusView> {
  let last: StatusView | undefined;
  return waitUntil(async () => {
    last = await lbStatus(instance);
    return pred(last) ? last : undefined;
  }, { timeoutMs, intervalMs: 100, what: `${what} (last status: ${JSON.stringify(last?.status ? { result: last.status.result, applied: last.status.lastAppliedRevision, attempted: last.status.lastAttemptedRevision, conditions: last.status.conditions } : last)})` });
}

/** The git server (src/sandbox/git-server-main.ts) on 127.0.0.1 of `ns`; stop() and start() again on the same port. */
export class NsGitServer {
  proc: ManagedProcess | undefined;
  port = 0;
  constructor(readonly ns: string, readonly root: string) {}

  async start(): Promise<void> {
    const script = join(ROOT, 'dist', 'src', 'sandbox', 'git-server-main.js');
    this.proc = new ManagedProcess(['nsenter', `--net=/run/netns/${this.ns}`, process.execPath, script, '--root', this.root, '--port', String(this.port)], { label: `git server in ${this.ns}` });
    const m = await this.proc.waitForOutput(/"ready":true,"port":(\d+)/, 10_000);
    this.port = Number(m[1]);
  }

  async stop(): Promise<void> {
    await this.proc?.stop(3000);
    this.proc = undefined;
  }

  url(name: string): string {
    return `http://127.0.0.1:${this.port}/${name}`;
  }
}

export interface WebhookPost { provider?: 'github'; body: string; secret: string; deliveryId?: string; signature?: string }

/**
 * POSTs GitHub push webhooks to 127.0.0.1:PORT/hooks/github from inside `ns`, all at once (one
 * Node process, one connection each); resolves with the HTTP statuses in order.
 */
export async function postWebhooks(ns: string, port: number, posts: readonly WebhookPost[]): Promise<number[]> {
  const requests = posts.map((p) => ({
    body: p.body,
    headers: {
      'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': p.deliveryId ?? randomUUID(),
      'x-hub-signature-256': p.signature ?? `sha256=${hmacSha256(p.secret, Buffer.from(p.body)).toString('hex')}`,
    },
  }));
  const script = `
const http = require('node:http');
const [port, json] = process.argv.slice(1);
const reqs = JSON.parse(json);
Promise.all(reqs.map((r) => new Promise((resolve) => {
  const q = http.request({ host: '127.0.0.1', port: Number(port), path: '/hooks/github', method: 'POST', agent: false, timeout: 10000,
    headers: { ...r.headers, 'content-length': Buffer.byteLength(r.body) } }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
  q.on('timeout', () => q.destroy(new Error('timeout')));
  q.on('error', () => resolve(0));
  q.end(r.body);
}))).then((s) => process.stdout.write(JSON.stringify(s)));
`;
  const r = await execIn(ns, [process.execPath, '-e', script, String(port), JSON.stringify(requests)], { via: 'nsenter', timeoutMs: 30_000 });
  return JSON.parse(r.stdout) as number[];
}

/** A push event's body; `nonce` makes bodies of one sha distinct, as a provider's separate deliveries are (each has its own push time). */
export function pushBody(sha: string, ref = 'refs/heads/main', nonce?: string): string {
  return JSON.stringify({ ref, before: '0'.repeat(40), after: sha, repository: { full_name: 'test/config' }, ...(nonce !== undefined ? { head_commit: { timestamp: nonce } } : {}) });
}
