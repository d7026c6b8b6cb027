// Long-running processes of the demo (backend servers, the git server, the daemon): each runs in a
// namespace of the demo, in its own process group, with stdout and stderr appended to a log file,
// not to a pipe. So a demo kept up with --keep can exit and leave them running (a pipe would break
// under them), and `--clean` finds them by namespace. Waiting for a line reads the log file,
// bounded in time.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { SandboxError, killGroup, nsenterArgs } from '../sandbox/index.js';

export interface StartOptions {
  /** Network namespace to run in (nsenter --net: /sys/fs/bpf stays visible). */
  ns: string;
  argv: readonly string[];
  logFile: string;
  label: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class DemoProcess {
  readonly label: string;
  readonly logFile: string;
  readonly pid: number;
  private readonly child: ChildProcess;
  private exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private spawnError: Error | undefined;
  readonly exited: Promise<void>;

  private constructor(opts: StartOptions) {
    this.label = opts.label;
    this.logFile = opts.logFile;
    const fd = openSync(opts.logFile, 'a', 0o600);
    try {
      const [cmd, ...args] = [...nsenterArgs(opts.ns), ...opts.argv];
      this.child = spawn(cmd!, args, {
        detached: true, stdio: ['ignore', fd, fd], env: opts.env ?? process.env, ...(opts.cwd ? { cwd: opts.cwd } : {}),
      });
    } finally {
      closeSync(fd);
    }
    this.exited = new Promise((resolve) => {
      this.child.on('error', (err) => { this.exit ??= { code: null, signal: null }; this.spawnError = err; resolve(); });
      this.child.on('exit', (code, signal) => { this.exit = { code, signal }; resolve(); });
    });
    if (this.child.pid === undefined) this.exit = { code: null, signal: null };
    this.pid = this.child.pid ?? -1;
  }

  static start(opts: StartOptions): DemoProcess {
    return new DemoProcess(opts);
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** The log so far. */
  log(): string {
    return existsSync(this.logFile) ? readFileSync(this.logFile, 'utf8') : '';
  }

  private exitText(): string {
    if (this.spawnError) return `could not start: ${this.spawnError.message}`;
    return `exited (${this.exit?.code ?? this.exit?.signal ?? '?'})`;
  }

  /** Resolves with the first match of `pattern` in the log; rejects when the process exits first or after `timeoutMs`. */
  async waitForLog(pattern: RegExp, timeoutMs: number, what = String(pattern)): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.log().match(pattern);
      if (m) return m;
      if (!this.running) throw new SandboxError(`${this.label} ${this.exitText()} before ${what} (log: ${this.logFile})`);
      if (Date.now() >= deadline) throw new SandboxError(`${this.label}: no ${what} within ${timeoutMs / 1000} s (log: ${this.logFile})`);
      await sleep(100);
    }
  }

  /** Fails when the process is no longer running, with the end of its log. */
  assertRunning(): void {
    if (!this.running) throw new SandboxError(`${this.label} ${this.exitText()} (log: ${this.logFile})`);
  }

  /** SIGTERM to the process group, SIGKILL after `graceMs`. Resolves with how it ended. */
  async stop(graceMs = 5000): Promise<'exited' | 'killed'> {
    if (!this.running) return 'exited';
    killGroup(this.pid, 'SIGTERM');
    const done = await Promise.race([this.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (done) return 'exited';
    killGroup(this.pid, 'SIGKILL');
    await Promise.race([this.exited, sleep(2000)]);
    return 'killed';
  }

  /** Lets this process (the demo) exit while the child runs on (--keep). */
  detach(): void {
    this.child.unref();
  }
}

/** The last `n` lines of a text. */
export function tail(text: string, n: number): string {
  const lines = text.replace(/\n+$/, '').split('\n');
  return lines.slice(-n).join('\n');
}

const ERROR_LINE = /error|fail|unknown|invalid|refused|denied|"level":(40|50|60)\b|"level":"(warn|error|fatal)"/i;

/** What explains a failure in a log: its first few error-looking lines, then its last lines. */
export function logExcerpt(text: string, maxErrors = 5, tailLines = 10): string {
  const lines = text.replace(/\n+$/, '').split('\n');
  const last = lines.slice(-tailLines);
  const firstTail = lines.length - last.length;
  const errors = lines.slice(0, firstTail).filter((l) => ERROR_LINE.test(l)).slice(0, maxErrors);
  return [...errors, ...(errors.length > 0 || firstTail > 0 ? ['...'] : []), ...last].join('\n');
}
