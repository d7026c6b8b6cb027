// The control socket: JSON lines, a registry of commands, errors as answers; the client tells an
// absent daemon from a refusing one; listen-address parsing.
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ControlServer, controlRequest } from '../../../src/daemon/control-socket.js';
import { parseListenAddress } from '../../../src/daemon/listen-address.js';
import { LbError, isLbError } from '../../../src/core/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'lb-control-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('control socket', () => {
  it('answers registered commands, lists them, and reports errors as answers', async () => {
    const path = join(dir, 'a.sock');
    const server = new ControlServer({ path });
    server.register('status', 'status', () => ({ ready: true }));
    server.register('echo', 'echo', async (args) => args);
    server.register('boom', 'fails', () => { throw new LbError('LB_RUNTIME_UNKNOWN_TARGET', 'no such target 10.0.0.9:80'); });
    expect(() => server.register('status', 'again', () => null)).toThrow(/registered already/);
    await server.listen();
    try {
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(await controlRequest(path, 'status')).toEqual({ ready: true });
      expect(await controlRequest(path, 'echo', { force: true })).toEqual({ force: true });
      expect(await controlRequest(path, 'commands')).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'echo' })]));
      await expect(controlRequest(path, 'boom')).rejects.toMatchObject({ code: 'LB_DAEMON_CONTROL', data: { reason: 'error', code: 'LB_RUNTIME_UNKNOWN_TARGET' } });
      await expect(controlRequest(path, 'drain')).rejects.toThrow(/unknown command "drain"/);
      // Several requests on one connection, answered in order.
      const answers = await new Promise<string>((resolve) => {
        const s = connect(path);
        let buf = '';
        s.on('data', (d) => { buf += String(d); if (buf.split('\n').length > 3) { s.destroy(); resolve(buf); } });
        s.write('{"id":1,"command":"echo","args":{"n":1}}\n{"id":2,"command":"status"}\nnot json\n');
      });
      expect(answers.trim().split('\n').map((l) => JSON.parse(l))).toEqual([
        { id: 1, ok: true, result: { n: 1 } },
        { id: 2, ok: true, result: { ready: true } },
        { ok: false, error: { code: 'LB_DAEMON_CONTROL', message: 'the request is not JSON' } },
      ]);
      // A second server on the same live path refuses to start.
      await expect(new ControlServer({ path }).listen()).rejects.toMatchObject({ code: 'LB_DAEMON_RUNNING' });
    } finally {
      await server.close();
    }
  });

  it('no daemon: the client says unreachable; a stale socket file is replaced', async () => {
    const path = join(dir, 'b.sock');
    const err = await controlRequest(path, 'status', {}, { timeoutMs: 2000 }).catch((e: unknown) => e);
    expect(isLbError(err, 'LB_DAEMON_CONTROL') && err.data['reason']).toBe('unreachable');
    writeFileSync(path, ''); // not a socket: nothing answers
    const server = new ControlServer({ path });
    server.register('status', 's', () => 'up');
    await server.listen();
    try {
      expect(await controlRequest(path, 'status')).toBe('up');
    } finally {
      await server.close();
    }
  });
});

describe('listen addresses', () => {
  it('parses ADDR:PORT and [v6]:PORT, refuses the rest', () => {
    expect(parseListenAddress('127.0.0.1:9180', '--ops-listen')).toEqual({ host: '127.0.0.1', port: 9180 });
    expect(parseListenAddress('[::1]:0', '--ops-listen')).toEqual({ host: '::1', port: 0 });
    expect(parseListenAddress('localhost:80', '--ops-listen')).toEqual({ host: 'localhost', port: 80 });
    for (const bad of ['9180', '127.0.0.1', '127.0.0.1:99999', '::1:80', '[zz]:1', 'a b:1']) {
      expect(() => parseListenAddress(bad, '--ops-listen'), bad).toThrow(/is not ADDR:PORT/);
    }
  });
});
