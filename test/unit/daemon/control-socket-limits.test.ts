// The control socket under a client that does not play along: 100k pipelined requests whose
// answers are never read cost the daemon (this process) a bounded amount of memory, and other
// clients are still answered; a connection's request count is capped; idle connections are closed,
// but not while their command runs.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ControlServer, controlRequest } from '../../../src/daemon/control-socket.js';

const dir = mkdtempSync(join(tmpdir(), 'lb-control-limits-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MiB = 1024 * 1024;
/** Growth of this process's peak RSS the flood may cause (the old server grew by gigabytes). */
const FLOOD_RSS_BOUND = 48 * MiB;
const FLOOD_REQUESTS = 100_000;

function procStatusBytes(field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/self/status`);
  return Number(m[1]) * 1024;
}

/** Resolves when the promise does, or with 'timeout' after ms (a bound on a wait, never asserted as a duration). */
function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), ms); })]).finally(() => clearTimeout(timer));
}

const closed = (s: Socket): Promise<void> => new Promise((r) => s.once('close', () => r()));

/** Reads answer lines from a socket until it closes. */
function collect(s: Socket): Promise<unknown[]> {
  let buf = '';
  s.setEncoding('utf8');
  s.on('data', (d: string) => { buf += d; });
  return closed(s).then(() => buf.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as unknown));
}

// The flooding client runs in its own process so that what it buffers is not counted here.
const FLOOD_CLIENT = `
const net = require('node:net');
const [path, count] = process.argv.slice(1);
const s = net.connect(path);
s.pause(); // never reads an answer
s.on('connect', () => {
  s.write(JSON.stringify({ command: 'big' }).concat('\\n').repeat(Number(count)));
  process.stdout.write('sent\\n');
});
s.on('close', () => process.exit(0));
s.on('error', () => process.exit(0));
`;

describe('control socket limits', () => {
  it(`${FLOOD_REQUESTS} pipelined requests never read: bounded memory, other clients answered, the flooder closed when idle`, async () => {
    const path = join(dir, 'flood.sock');
    const server = new ControlServer({ path, limits: { idleTimeoutMs: 1000 } });
    const answer = 'x'.repeat(4096); // like a `drain` or `status` answer: kilobytes each
    let answered = 0;
    server.register('big', 'a 4 KiB answer', () => { answered += 1; return answer; });
    server.register('ping', 'a short answer', () => 'pong');
    await server.listen();
    try {
      const rssBefore = procStatusBytes('VmRSS');
      writeFileSync('/proc/self/clear_refs', '5'); // resets VmHWM (the peak RSS) to the current RSS
      const child = spawn(process.execPath, ['-e', FLOOD_CLIENT, path, String(FLOOD_REQUESTS)], { stdio: ['ignore', 'pipe', 'inherit'] });
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      await within(new Promise<void>((r) => child.stdout.once('data', () => r())), 30_000);

      // A normal client during the flood.
      expect(await controlRequest(path, 'ping', {}, { timeoutMs: 20_000 })).toBe('pong');

      const exit = await within(exited, 30_000);
      const peakGrowth = procStatusBytes('VmHWM') - rssBefore;
      console.log(`control flood: ${FLOOD_REQUESTS} requests sent, ${answered} answered; RSS before ${(rssBefore / MiB).toFixed(1)} MiB, ` +
        `peak growth ${(peakGrowth / MiB).toFixed(1)} MiB (bound ${FLOOD_RSS_BOUND / MiB} MiB); flooder ${exit === 'timeout' ? 'still connected' : 'closed'}`);
      expect(peakGrowth).toBeLessThan(FLOOD_RSS_BOUND);
      expect(answered, 'the server stopped answering a client that does not read').toBeLessThan(FLOOD_REQUESTS / 10);
      if (exit === 'timeout') child.kill();
      expect(exit, 'the idle flooder was disconnected by the server').toBe(0);
      expect(await controlRequest(path, 'ping')).toBe('pong');
    } finally {
      await server.close();
    }
  });

  it('answers at most maxRequestsPerConnection requests on one connection, then an error and the end', async () => {
    const path = join(dir, 'cap.sock');
    const server = new ControlServer({ path, limits: { maxRequestsPerConnection: 5, maxPendingRequests: 2 } });
    server.register('ping', 'pong', () => 'pong');
    await server.listen();
    try {
      const s = connect(path);
      const answers = collect(s);
      s.write(`${'{"command":"ping"}\n'.repeat(8)}`);
      const got = await within(answers, 20_000);
      expect(got).not.toBe('timeout');
      expect(got).toEqual([
        ...Array.from({ length: 5 }, () => ({ id: null, ok: true, result: 'pong' })),
        { ok: false, error: { code: 'LB_DAEMON_CONTROL', message: 'more than 5 requests on one connection; connect again' } },
      ]);
      expect(await controlRequest(path, 'ping'), 'a new connection is served').toBe('pong');
    } finally {
      await server.close();
    }
  });

  it('closes a connection that sends nothing, but not one whose command is still running', async () => {
    const path = join(dir, 'idle.sock');
    const server = new ControlServer({ path, limits: { idleTimeoutMs: 300 } });
    let release = (): void => {};
    const gate = new Promise<void>((r) => { release = r; });
    server.register('slow', 'answers when the test says so', async () => { await gate; return 'done'; });
    await server.listen();
    try {
      // The busy connection's idle timer starts first, so it has expired by the time the silent one is closed.
      const busy = connect(path);
      const busyAnswers = collect(busy);
      busy.write('{"command":"slow","id":7}\n');
      await new Promise<void>((r) => busy.once('connect', () => r()));
      const silent = connect(path);
      expect(await within(closed(silent), 20_000), 'the silent connection was closed by the server').not.toBe('timeout');
      expect(busy.destroyed, 'the connection with a running command is still open').toBe(false);
      release();
      const line = await new Promise<string>((r) => busy.once('data', (d) => r(String(d))));
      expect(JSON.parse(line)).toEqual({ id: 7, ok: true, result: 'done' });
      busy.destroy();
      await busyAnswers;
    } finally {
      await server.close();
    }
  });

  it('caps the connections open at once', async () => {
    const path = join(dir, 'conns.sock');
    const server = new ControlServer({ path, limits: { maxConnections: 2 } });
    server.register('ping', 'pong', () => 'pong');
    await server.listen();
    const held: Socket[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const s = connect(path);
        held.push(s);
        s.write('{"command":"ping"}\n');
        await new Promise<void>((r) => s.once('data', () => r())); // accepted and served
      }
      await expect(controlRequest(path, 'ping', {}, { timeoutMs: 20_000 })).rejects.toMatchObject({ code: 'LB_DAEMON_CONTROL', data: { reason: 'unreachable' } });
      held.pop()!.destroy();
      // The server learns of the close asynchronously: retry a bounded number of times.
      let answer: unknown;
      for (let i = 0; i < 50 && answer === undefined; i++) {
        answer = await controlRequest(path, 'ping', {}, { timeoutMs: 20_000 }).catch(() => undefined);
      }
      expect(answer).toBe('pong');
    } finally {
      for (const s of held) s.destroy();
      await server.close();
    }
  });
});
