// The daemon's local control socket, /run/lb/<instance>/control.sock (mode 0600: root only).
// Protocol: JSON lines. Each request line is {"command": NAME, "args": {...}?, "id": any?}; each
// answer line is {"id", "ok": true, "result": ...} or {"id", "ok": false, "error": {code, message}}.
// Several requests may share a connection; answers come in request order.
//
// Commands live in a registry: the daemon registers `status`, `reconcile`, `drift` and `commands`;
// the runtime services add theirs (`drain`, `undrain`) with register().
//
// Memory per connection is bounded (src/daemon/control-connection.ts): a client that pipelines
// requests and never reads the answers is paused, then closed when idle; others are still served.
//
// A pathname socket is not tied to a network namespace: `lb status` in the host namespace reaches
// a daemon started with `nsenter --net=...`.

import { chmodSync, existsSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { LbError, isLbError } from '../core/errors.js';
import { errFields, silentLogger, type Logger } from '../log.js';
import { runDir } from '../state/run-dir.js';
import { ControlConnection, DEFAULT_CONTROL_LIMITS, type ControlLimits } from './control-connection.js';

export function controlSocketPath(instance: string): string {
  return join(runDir(instance), 'control.sock');
}

export type ControlHandler = (args: Record<string, unknown>) => unknown;

export interface ControlCommand {
  name: string;
  description: string;
  handler: ControlHandler;
}

export class ControlServer {
  readonly path: string;
  private readonly log: Logger;
  private readonly commandsByName = new Map<string, ControlCommand>();
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  readonly limits: ControlLimits;

  constructor(opts: { path: string; log?: Logger; limits?: Partial<ControlLimits> }) {
    this.path = opts.path;
    this.log = opts.log ?? silentLogger;
    this.limits = { ...DEFAULT_CONTROL_LIMITS, ...opts.limits };
    this.register('commands', 'list the commands this daemon answers', () =>
      [...this.commandsByName.values()].map((c) => ({ name: c.name, description: c.description })));
  }

  /** Adds a command; a name can be registered once. */
  register(name: string, description: string, handler: ControlHandler): void {
    if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new LbError('LB_DAEMON_CONTROL', `invalid control command name ${JSON.stringify(name)}`, { name });
    if (this.commandsByName.has(name)) throw new LbError('LB_DAEMON_CONTROL', `control command ${name} is registered already`, { name });
    this.commandsByName.set(name, { name, description, handler });
  }

  get commands(): string[] {
    return [...this.commandsByName.keys()].sort();
  }

  async listen(): Promise<void> {
    if (existsSync(this.path)) {
      if (await answers(this.path)) {
        throw new LbError('LB_DAEMON_RUNNING', `a daemon already answers on ${this.path}`, { path: this.path });
      }
      rmSync(this.path, { force: true }); // left by a daemon that died
    }
    const server = createServer((socket) => this.serve(socket));
    server.maxConnections = this.limits.maxConnections;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(new LbError('LB_DAEMON_LISTEN', `the control socket cannot listen on ${this.path}: ${err.code ?? err.message}`, { path: this.path }, { cause: err })));
      server.listen(this.path, () => resolve());
    });
    chmodSync(this.path, 0o600);
    this.server = server;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(this.path, { force: true });
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    new ControlConnection(socket, (line) => this.answer(line), this.limits);
  }

  private async answer(line: string): Promise<Record<string, unknown>> {
    let req: { command?: unknown; args?: unknown; id?: unknown };
    try {
      req = JSON.parse(line) as typeof req;
    } catch {
      return { ok: false, error: { code: 'LB_DAEMON_CONTROL', message: 'the request is not JSON' } };
    }
    const id = req.id ?? null;
    const command = typeof req.command === 'string' ? this.commandsByName.get(req.command) : undefined;
    if (!command) {
      return { id, ok: false, error: { code: 'LB_DAEMON_CONTROL', message: `unknown command ${JSON.stringify(req.command)}; known: ${this.commands.join(', ')}` } };
    }
    const args = typeof req.args === 'object' && req.args !== null && !Array.isArray(req.args) ? (req.args as Record<string, unknown>) : {};
    try {
      return { id, ok: true, result: (await command.handler(args)) ?? null };
    } catch (err) {
      this.log.warn({ component: 'control', command: command.name, ...errFields(err) }, `control command ${command.name} failed`);
      return { id, ok: false, error: { code: isLbError(err) ? err.code : 'LB_DAEMON_CONTROL', message: err instanceof Error ? err.message : String(err) } };
    }
  }
}

/** Whether something answers on the socket path (a live daemon). */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const done = (v: boolean): void => {
      s.destroy();
      resolve(v);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(1000, () => done(false));
  });
}

/**
 * Sends one command to the daemon of `path` and resolves with its result. Rejects with
 * LB_DAEMON_CONTROL: data.reason 'unreachable' when no daemon answers, 'error' when the daemon
 * reported an error (data.code is its code).
 */
export function controlRequest(path: string, command: string, args: Record<string, unknown> = {}, opts: { timeoutMs?: number } = {}): Promise<unknown> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    let buffer = '';
    let settled = false;
    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      fn();
    };
    const unreachable = (why: string): void => finish(() => reject(new LbError('LB_DAEMON_CONTROL', `no daemon answers on ${path} (${why})`, { path, reason: 'unreachable' })));
    const timer = setTimeout(() => unreachable(`no answer within ${timeoutMs} ms`), timeoutMs);
    socket.setEncoding('utf8');
    socket.once('error', (err: NodeJS.ErrnoException) => unreachable(err.code ?? err.message));
    socket.once('connect', () => socket.write(`${JSON.stringify({ command, args })}\n`));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const nl = buffer.indexOf('\n');
      if (nl < 0) return;
      let answer: { ok?: boolean; result?: unknown; error?: { code?: string; message?: string } };
      try {
        answer = JSON.parse(buffer.slice(0, nl)) as typeof answer;
      } catch {
        finish(() => reject(new LbError('LB_DAEMON_CONTROL', `the daemon on ${path} answered something that is not JSON`, { path, reason: 'error' })));
        return;
      }
      if (answer.ok === true) finish(() => resolve(answer.result));
      else finish(() => reject(new LbError('LB_DAEMON_CONTROL', `the daemon refused ${command}: ${answer.error?.message ?? 'unknown error'}`, { path, reason: 'error', code: answer.error?.code })));
    });
    socket.once('close', () => unreachable('connection closed'));
  });
}
