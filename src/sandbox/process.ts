// Child processes for the sandbox: one-shot commands with a hard timeout, and long-running
// processes owned by a topology. Every child leads its own process group, so a timeout or a
// teardown kills whatever it forked too (curl helpers, shells, servers).

import { spawn, type ChildProcess } from 'node:child_process';
import { LbError } from '../core/errors.js';

/** Errors of the sandbox topology used by the demo, the benchmarks and the e2e tests. */
export class SandboxError extends LbError {
  constructor(message: string, data: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super('LB_SANDBOX_FAILED', message, data, options);
    this.name = 'SandboxError';
  }
}

export interface RunOptions {
  /** Kill the process group after this long. Default 10 s. */
  timeoutMs?: number;
  /** Written to stdin, which is then closed. */
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  /** Resolve instead of rejecting on a non-zero exit or a timeout. */
  allowFailure?: boolean;
}

export interface RunResult {
  argv: readonly string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

const MAX_CAPTURE = 4 * 1024 * 1024;

/** Sends `signal` to the process group led by `pid`; false when it no longer exists. */
export function killGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether process `pid` exists: how runs recognise what a crashed earlier run left (names carry
 * the owner's pid). EPERM means it exists under another user.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function appendCapped(acc: string, chunk: Buffer): string {
  const next = acc + chunk.toString('utf8');
  return next.length > MAX_CAPTURE ? next.slice(next.length - MAX_CAPTURE) : next;
}

function describe(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

/** Runs a command to completion, bounded by `timeoutMs`. Rejects on failure unless `allowFailure`. */
export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const [cmd, ...args] = argv;
  if (cmd === undefined) return Promise.reject(new SandboxError('run: empty argv'));
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawn(cmd, args, { detached: true, stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    } catch (err) {
      reject(new SandboxError(`cannot start ${describe(argv)}`, { argv }, { cause: err }));
      return;
    }
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let spawnError: Error | undefined;
    child.stdout?.on('data', (c: Buffer) => { stdout = appendCapped(stdout, c); });
    child.stderr?.on('data', (c: Buffer) => { stderr = appendCapped(stderr, c); });
    child.stdin?.on('error', () => { /* the command may exit without reading its input */ });
    child.stdin?.end(opts.input ?? '');
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => { spawnError = err; });
    // The group may hold stragglers (a forked helper) that keep the pipes open after the leader
    // exited: reap them now, while the group id cannot have been reused.
    child.on('exit', () => { if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL'); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result: RunResult = { argv, code, signal, stdout, stderr, timedOut };
      if (opts.allowFailure) { resolve(result); return; }
      if (spawnError) { reject(new SandboxError(`cannot start ${describe(argv)}: ${spawnError.message}`, { argv }, { cause: spawnError })); return; }
      if (timedOut) { reject(new SandboxError(`timed out after ${timeoutMs} ms: ${describe(argv)}`, { ...result })); return; }
      if (code !== 0) {
        reject(new SandboxError(`exit ${code ?? signal}: ${describe(argv)}${stderr.trim() ? `\n${stderr.trim()}` : ''}`, { ...result }));
        return;
      }
      resolve(result);
    });
  });
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  /** Label used in errors and by `describe()`. Default: the argv. */
  label?: string;
}

export interface ExitStatus { code: number | null; signal: NodeJS.Signals | null }

/**
 * A long-running child in its own process group. Output is captured (the last 4 MiB of each
 * stream). stdin stays open as a pipe: a child that watches it (backend-server's
 * --exit-with-parent) exits when this process dies, even by SIGKILL.
 */
export class ManagedProcess {
  readonly argv: readonly string[];
  readonly label: string;
  readonly child: ChildProcess;
  /** Settles when the process has exited (never rejects). */
  readonly exited: Promise<ExitStatus>;
  private out = '';
  private err = '';
  private exitStatus: ExitStatus | undefined;
  private readonly waiters = new Set<() => void>();

  constructor(argv: readonly string[], opts: SpawnOptions = {}) {
    const [cmd, ...args] = argv;
    if (cmd === undefined) throw new SandboxError('spawn: empty argv');
    this.argv = argv;
    this.label = opts.label ?? describe(argv);
    this.child = spawn(cmd, args, { detached: true, stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    this.child.stdin?.on('error', () => { /* the child closed its end */ });
    this.child.stdout?.on('data', (c: Buffer) => { this.out = appendCapped(this.out, c); this.notify(); });
    this.child.stderr?.on('data', (c: Buffer) => { this.err = appendCapped(this.err, c); this.notify(); });
    this.exited = new Promise((resolve) => {
      this.child.on('error', (e) => {
        this.err += `\nspawn error: ${e.message}`;
        this.exitStatus ??= { code: null, signal: null };
        this.notify();
        resolve(this.exitStatus);
      });
      this.child.on('exit', (code, signal) => {
        this.exitStatus = { code, signal };
        // Reap helpers the leader left in its group now, while the group id cannot be reused.
        if (this.child.pid !== undefined) killGroup(this.child.pid, 'SIGKILL');
        this.notify();
        resolve(this.exitStatus);
      });
    });
  }

  get pid(): number | undefined { return this.child.pid; }
  get stdout(): string { return this.out; }
  get stderr(): string { return this.err; }
  get running(): boolean { return this.exitStatus === undefined && this.child.pid !== undefined; }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Resolves with the first match of `pattern` in stdout; rejects on exit or after `timeoutMs`. */
  waitForOutput(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const m = this.out.match(pattern);
        if (m) { done(); resolve(m); return true; }
        if (this.exitStatus) {
          done();
          reject(new SandboxError(`${this.label} exited (${this.exitStatus.code ?? this.exitStatus.signal}) before printing ${pattern}\n${this.err.trim()}`, { stdout: this.out, stderr: this.err }));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        done();
        reject(new SandboxError(`${this.label}: no ${pattern} within ${timeoutMs} ms\nstdout: ${this.out.slice(-2000)}\nstderr: ${this.err.slice(-2000)}`));
      }, timeoutMs);
      const waiter = (): void => { check(); };
      const done = (): void => { clearTimeout(timer); this.waiters.delete(waiter); };
      this.waiters.add(waiter);
      check();
    });
  }

  /** SIGTERM to the group, SIGKILL after `graceMs`; resolves once the process has exited. */
  async stop(graceMs = 2000): Promise<ExitStatus> {
    const pid = this.child.pid;
    if (pid === undefined) return this.exited;
    if (this.running) killGroup(pid, 'SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const status = await Promise.race([
      this.exited,
      new Promise<undefined>((r) => { timer = setTimeout(() => r(undefined), graceMs); }),
    ]);
    clearTimeout(timer);
    if (status) return status;
    killGroup(pid, 'SIGKILL');
    return await Promise.race([
      this.exited,
      new Promise<ExitStatus>((r) => setTimeout(() => r({ code: null, signal: 'SIGKILL' }), 2000).unref()),
    ]);
  }

  /** Synchronous SIGKILL of the group, for exit and signal handlers. */
  killSync(): void {
    if (this.running && this.child.pid !== undefined) killGroup(this.child.pid, 'SIGKILL');
  }
}

/**
 * Polls `probe` every `intervalMs` until it returns a value other than undefined/false, for at
 * most `timeoutMs`; probe errors count as "not yet" (the last one is reported on timeout).
 */
export async function waitUntil<T>(probe: () => Promise<T | undefined | false> | T | undefined | false,
  opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  let lastError: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      throw new SandboxError(`timed out waiting for ${opts.what ?? 'condition'}`, {}, lastError === undefined ? undefined : { cause: lastError });
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
}
