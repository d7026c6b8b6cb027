// The SNI front door end to end: `lb daemon` in a namespace serves proxies with SNI routes and a
// PROXY v2 proxy through its acceptor (lb_sk_lookup steers the VIP's SYNs to it; the VIP is only a
// local route, bound on no interface). Real TLS: backends with different certificates, so the
// certificate a client receives names the backend that answered; Node tls and openssl s_client
// clients in their own namespace.
//
//   <prefix>-c (eth0 10.231.1.2) ──veth── (eth0 10.231.1.1) <prefix>-lb   VIP 10.231.9.10 (local route)
//                                           TLS backends on 127.0.0.1: api-a :9441, api-b :9445,
//                                           wild :9442, default :9443, pp (PROXY v2) :9444
// Needs root; fails (never skips) without it. Traffic stays inside the namespaces created here.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LB_ROUTE_PROTO } from '../../src/acceptor/local-routes.js';
import { instanceDir } from '../../src/dataplane/index.js';
import { ManagedProcess, execIn, waitUntil } from '../../src/sandbox/index.js';
import { packageRoot } from '../../src/package-root.js';
import { runDir } from '../../src/state/run-dir.js';
import type { ClientResult } from '../../src/sandbox/tls-client.js';
import { ensureBuilt } from '../lib/build.js';
import { runCli } from '../lib/cli.js';
import { createLbClientPair, destroyLbClientPair } from '../lib/lb-client-pair.js';
import { DaemonProcess, metric, metricsText, type LogLine } from './lib/daemon.js';

if (process.getuid?.() !== 0) {
  throw new Error('sni-acceptor.test.ts must run as root: it loads BPF programs and creates network namespaces');
}

// Run twice: with the default, the native front door (native/lb_door.c holds the connections, the
// daemon decides), and with LB_SNI_RELAY=splice (Node's acceptor, pairs relayed by the pair keeper).
for (const relay of ['native', 'splice'] as const) {
  const run = `${process.pid}${randomBytes(2).toString('hex')}`;
  const LB = `lbs${run}-lb`;
  const CLIENT = `lbs${run}-c`;
  const LB_ADDR = '10.231.1.1';
  const CLIENT_ADDR = '10.231.1.2';
  const VIP = '10.231.9.10';
  const instance = `sni-${run}`;
  const PAIR = { lb: LB, client: CLIENT, lbAddr: LB_ADDR, clientAddr: CLIENT_ADDR };
  const BACKENDS = [['api-a', 9441, false], ['api-b', 9445, false], ['wild', 9442, false], ['default', 9443, false], ['pp', 9444, true]] as const;
  const DIST = join(packageRoot(), 'dist', 'src', 'sandbox');
  /** The daemon's /metrics, on the LB namespace's loopback (the namespace is this test's own). */
  const OPS_PORT = 19_180;
  const GIB = 1024 ** 3;
  /** Nothing listens there: the acceptor's connects to it are refused. */
  const DEAD_PORT = 9459;

  const sh = (argv: string[]): string => execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 15_000, stdio: ['ignore', 'pipe', 'pipe'] });

  async function tlsClients(opts: { port?: number; servername?: string; count?: number; concurrency?: number; bytes?: number; split?: boolean; timeoutMs?: number; untilFile?: string }): Promise<ClientResult[]> {
    const argv = [process.execPath, join(DIST, 'tls-client.js'), '--host', VIP, '--port', String(opts.port ?? 443), '--servername', opts.servername ?? '',
      '--count', String(opts.count ?? 1), '--concurrency', String(opts.concurrency ?? 1), '--bytes', String(opts.bytes ?? 0),
      '--timeout-ms', String(opts.timeoutMs ?? 10_000), ...(opts.split ? ['--split-hello'] : []), ...(opts.untilFile ? ['--until-file', opts.untilFile] : [])];
    const r = await execIn(CLIENT, argv, { timeoutMs: 200_000 });
    return (JSON.parse(r.stdout) as { results: ClientResult[] }).results;
  }

  /** The daemon's JSON access log (settings.access-log of the test's config). */
  function accessLog(dir: string): Array<Record<string, unknown>> {
    const file = join(dir, 'access.log');
    return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) : [];
  }

  /** The pid the instance's socket holder runs as, from its record (src/acceptor/holder.ts). */
  function holderPid(): number | undefined {
    try {
      return (JSON.parse(readFileSync(join(runDir(instance), 'acceptor-holder.json'), 'utf8')) as { pid: number }).pid;
    } catch {
      return undefined;
    }
  }

  /** The native door's pid, from its record (src/acceptor/door-process.ts). */
  function doorPid(): number | undefined {
    try {
      return (JSON.parse(readFileSync(join(runDir(instance), 'door.json'), 'utf8')) as { pid: number }).pid;
    } catch {
      return undefined;
    }
  }

  /** The accept queue (Recv-Q) of the listening socket a process holds, in the LB namespace. */
  function acceptQueue(pid: number): number {
    const line = sh(['ip', 'netns', 'exec', LB, 'ss', '-Hltnp']).split('\n').find((l) => l.includes(`pid=${pid},`));
    return line ? Number(line.trim().split(/\s+/)[1]) : -1;
  }

  /** Running (a zombie waiting for its reaper has exited). */
  function processAlive(pid: number): boolean {
    try {
      return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return false;
    }
  }

  async function opensslCn(servername: string | null): Promise<string> {
    const r = await execIn(CLIENT, ['openssl', 's_client', '-connect', `${VIP}:443`, ...(servername === null ? ['-noservername'] : ['-servername', servername])],
      { timeoutMs: 15_000, input: '', allowFailure: true });
    const m = /subject=CN ?= ?([\w.-]+)/.exec(r.stdout);
    return m ? m[1]! : `no subject in: ${r.stdout.slice(0, 300)} ${r.stderr.slice(0, 300)}`;
  }

  describe(`SNI routing and PROXY protocol v2 through the daemon's acceptor (${relay})`, () => {
    let dir = '';
    const backends = new Map<string, ManagedProcess>();
    let daemon: DaemonProcess | undefined;
    let config = '';
    const DAEMON_ARGS = (): string[] => ['--config', config, '--poll', '1h', '--ops-listen', `127.0.0.1:${OPS_PORT}`];

    const startBackend = async (name: string, port: number, pp: boolean): Promise<void> => {
      const p = new ManagedProcess(['ip', 'netns', 'exec', LB, process.execPath, join(DIST, 'tls-backend.js'), '--name', name, '--port', String(port),
        '--cert', join(dir, `${name}.crt`), '--key', join(dir, `${name}.key`), ...(pp ? ['--proxy-v2'] : []), '--exit-with-parent'], { label: `tls ${name}` });
      backends.set(name, p);
      await p.waitForOutput(/"ready":true/, 10_000);
    };
    const acceptorApplies = (): number => daemon!.logs().filter((l) => l.msg === 'SNI acceptor serving').length;

    beforeAll(async () => {
      // Read by DaemonProcess's environment when it starts a daemon.
      // The default is measured as the default: LB_SNI_RELAY unset.
      if (relay === 'splice') process.env['LB_SNI_RELAY'] = 'splice';
      else delete process.env['LB_SNI_RELAY'];
      ensureBuilt();
      dir = mkdtempSync(join(tmpdir(), 'lb-sni-'));
      createLbClientPair(PAIR);
      sh(['ip', '-n', CLIENT, 'route', 'add', `${VIP}/32`, 'via', LB_ADDR]);
      for (const [name] of BACKENDS) {
        sh(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
          '-subj', `/CN=${name}`, '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.crt`)]);
      }
      for (const [name, port, pp] of BACKENDS) await startBackend(name, port, pp);
      config = join(dir, 'lb.yaml');
      writeFileSync(config, `proxies:
  - name: tls
    listen: {interfaces: [eth0], port: 443, address: ${VIP}}
    default-target: {ip: 127.0.0.1, port: 9443}
    sni-routes:
      - {sni-hostname: api.example.com, targets: [{ip: 127.0.0.1, port: 9441}, {ip: 127.0.0.1, port: 9445}]}
      - {sni-hostname: '*.example.com', target: {ip: 127.0.0.1, port: 9442}}
  - name: pp
    listen: {interfaces: [eth0], port: 8443, address: ${VIP}}
    proxy-protocol: v2
    default-target: {ip: 127.0.0.1, port: 9444}
  - name: cb
    listen: {interfaces: [eth0], port: 9000, address: ${VIP}}
    default-target: {ip: 127.0.0.1, port: 9443}
    sni-routes:
      - {sni-hostname: cb.example.com, targets: [{ip: 127.0.0.1, port: 9443}, {ip: 127.0.0.1, port: ${DEAD_PORT}}]}
settings:
  access-log: {enabled: true, format: json, path: ${join(dir, 'access.log')}}
  circuit-breaker: {enabled: true, error-threshold-pct: 50, min-requests: 5, open-duration-ms: 600000}
`);
      daemon = new DaemonProcess(LB, instance, DAEMON_ARGS());
      await daemon.started();
      await daemon.waitForLog((l) => l.msg === 'SNI acceptor serving', 'the acceptor to serve the config', 30_000);
      expect(daemon.logs().find((l) => l.msg === 'SNI acceptor serving')).toMatchObject({ relay });
    }, 120_000);

    afterAll(async () => {
      try {
        await daemon?.stop(5000).catch(() => undefined);
        for (const s of backends.values()) await s.stop(2000).catch(() => undefined);
      } finally {
        destroyLbClientPair(PAIR, instance);
        if (dir) rmSync(dir, { recursive: true, force: true });
        expect(existsSync(instanceDir(instance))).toBe(false);
      }
    });

    it('routes exact, mixed-case and wildcard names, and no or unknown names to the default target (Node tls)', async () => {
      const cn = async (servername: string): Promise<string | undefined> => (await tlsClients({ servername }))[0]!.cn;
      expect(await cn('api.example.com')).toMatch(/^api-[ab]$/);
      expect(await cn('API.Example.COM')).toMatch(/^api-[ab]$/);
      expect(await cn('shop.example.com')).toBe('wild');
      expect(await cn('a.b.example.com')).toBe('wild');
      expect(await cn('example.com')).toBe('default');
      expect(await cn('unknown.test')).toBe('default');
      expect(await cn('')).toBe('default');
      // The VIP is a route, not an address: nothing in the namespace holds it on an interface.
      expect(sh(['ip', '-n', LB, '-o', 'addr', 'show'])).not.toContain(VIP);
    });

    it('routes openssl s_client the same way', async () => {
      expect(await opensslCn('api.example.com')).toMatch(/^api-[ab]$/);
      expect(await opensslCn('www.example.com')).toBe('wild');
      expect(await opensslCn(null)).toBe('default');
    });

    it('reads a ClientHello sent one byte per segment', async () => {
      const [r] = await tlsClients({ servername: 'split.example.com', split: true });
      expect(r).toMatchObject({ cn: 'wild', line: { name: 'wild' } });
    });

    it('spreads 1,000 concurrent handshakes over the route\'s two backends, none lost', async () => {
      const rs = await tlsClients({ servername: 'api.example.com', count: 1000, concurrency: 1000, timeoutMs: 90_000 });
      expect(rs).toHaveLength(1000);
      expect(rs.filter((r) => r.error)).toEqual([]);
      const names = new Map<string, number>();
      for (const r of rs) names.set(r.line!.name, (names.get(r.line!.name) ?? 0) + 1);
      expect([...names.keys()].sort()).toEqual(['api-a', 'api-b']);
    }, 150_000);

    it('relays 1 GiB both ways with the SHA-256 compared end to end', async () => {
      const [r] = await tlsClients({ servername: 'www.example.com', bytes: GIB, timeoutMs: 180_000 });
      expect(r, JSON.stringify(r)).toMatchObject({ cn: 'wild', echoOk: true, echoed: GIB });
    }, 200_000);

    it('sends a PROXY v2 header with the client address and the server name', async () => {
      const [r] = await tlsClients({ port: 8443, servername: 'mail.example.org' });
      expect(r!.cn).toBe('pp');
      expect(r!.line!.proxy).toEqual({ clientIp: CLIENT_ADDR, clientPort: r!.localPort, localIp: VIP, localPort: 8443, authority: 'mail.example.org', length: 28 + 3 + 16 });
    });

    it('puts each relayed connection in the connection event stream with its SNI route: access log, counters, latency', async () => {
      // A name no other case sends, in mixed case: the lines are found by it (client ports get reused).
      const name = `Events-${run}.Example.com`;
      const rs = await tlsClients({ servername: name, count: 5, concurrency: 5, bytes: 4096 });
      expect(rs.filter((r) => r.error)).toEqual([]);
      const lines = await waitUntil(() => {
        const mine = accessLog(dir).filter((l) => l['sni'] === name.toLowerCase());
        return mine.filter((l) => l['event'] === 'conn-close').length === 5 ? mine : undefined;
      }, { timeoutMs: 20_000, intervalMs: 100, what: `the 5 connections' closes in the access log (last lines: ${JSON.stringify(accessLog(dir).slice(-3))})` });
      expect(new Set(lines.map((l) => l['client']))).toEqual(new Set(rs.map((r) => `${CLIENT_ADDR}:${r.localPort}`)));
      const common = { proxy: 'tls', listener: `eth0 ${VIP}:443/tcp`, proto: 'tcp', vip: `${VIP}:443`, backend: '127.0.0.1:9442', route: 'sni:*.example.com', sni: name.toLowerCase() };
      expect(lines.filter((l) => l['event'] === 'conn-open')).toHaveLength(5);
      for (const l of lines) expect(l).toMatchObject(common);
      for (const l of lines.filter((x) => x['event'] === 'conn-close')) {
        expect(l).toMatchObject({ reason: 'fin' });
        // Up: the TLS records of the hello, the 4,096 bytes and the close; down: the certificate, the line and the echo.
        expect(l['bytes_in']).toBeGreaterThan(4096);
        expect(l['bytes_out']).toBeGreaterThan(4096);
        expect(l['duration_ms']).toBeGreaterThan(0);
      }
      const text = await metricsText(LB, OPS_PORT);
      const labels = { proxy: 'tls', backend: '127.0.0.1:9442' };
      expect(metric(text, 'lb_connections_total', labels)).toBeGreaterThanOrEqual(5);
      expect(metric(text, 'lb_connections_closed_total', { ...labels, reason: 'fin' })).toBeGreaterThanOrEqual(5);
      expect(metric(text, 'lb_backend_latency_seconds_count', labels)).toBeGreaterThanOrEqual(5);
      expect(metric(text, 'lb_bytes_total', { ...labels, direction: 'in' })).toBeGreaterThan(5 * 4096);
    });

    it('opens the circuit of a backend that refuses the acceptor\'s connects, then sends it nothing', async () => {
      // Sequential: each connection is routed with the weights of the moment (half go to the dead port at first).
      const first = await tlsClients({ port: 9000, servername: 'cb.example.com', count: 40, concurrency: 1, timeoutMs: 20_000 });
      expect(first.filter((r) => r.error).length, 'some went to the refusing backend').toBeGreaterThan(0);
      const opened = (l: LogLine): boolean => String(l.msg).startsWith(`circuit 127.0.0.1:${DEAD_PORT}: closed -> open`);
      await daemon!.waitForLog(opened, 'the circuit of the refusing backend to open', 30_000);
      // The runtime change triggers a reconcile; the acceptor takes its weights after it.
      await daemon!.waitForLog(() => {
        const logs = daemon!.logs();
        return logs.slice(logs.findIndex(opened)).some((l) => l.msg === 'SNI acceptor serving');
      }, 'the acceptor to take the open circuit', 30_000);
      const after = await tlsClients({ port: 9000, servername: 'cb.example.com', count: 20, concurrency: 5 });
      expect(after.map((r) => r.cn ?? r.error)).toEqual(Array(20).fill('default'));
    });

    it('sends no new connection to a drained backend', async () => {
      const before = acceptorApplies();
      const d = runCli(['--instance', instance, 'drain', 'tls', '127.0.0.1:9441']);
      expect(d.code, d.stderr).toBe(0);
      await daemon!.waitForLog(() => acceptorApplies() > before, 'the acceptor to take the drain');
      const rs = await tlsClients({ servername: 'api.example.com', count: 40, concurrency: 10 });
      expect(new Set(rs.map((r) => r.line?.name ?? r.error))).toEqual(new Set(['api-b']));
      expect(runCli(['--instance', instance, 'undrain', 'tls', '127.0.0.1:9441']).code).toBe(0);
    });

    it('resets the client of a killed backend instead of leaving it hanging', async () => {
      await backends.get('wild')!.stop(2000);
      const [r] = await tlsClients({ servername: 'www.example.com', timeoutMs: 20_000 });
      expect(r!.error).toBeDefined();
      expect(r!.error).not.toBe('timeout');
      await startBackend('wild', 9442, false);
      expect((await tlsClients({ servername: 'www.example.com' }))[0]!.cn).toBe('wild');
    });

    it('counts the acceptor\'s connections on /metrics, per SNI route', async () => {
      const text = await metricsText(LB, OPS_PORT);
      const value = (re: RegExp): number => Number(re.exec(text)?.[1] ?? NaN);
      expect(value(/^lb_sni_route_connections_total\{proxy_name="tls",group="sni:api.example.com"\} (\d+)$/m)).toBeGreaterThanOrEqual(1000);
      expect(value(/^lb_sni_route_connections_total\{proxy_name="tls",group="sni:\*.example.com"\} (\d+)$/m)).toBeGreaterThanOrEqual(3);
      expect(value(/^lb_sni_route_bytes_total\{proxy_name="tls",group="sni:\*.example.com",direction="up"\} (\d+)$/m)).toBeGreaterThanOrEqual(GIB);
      expect(value(/^lb_sni_acceptor_events_total\{event="connect_failed"\} (\d+)$/m)).toBeGreaterThanOrEqual(1);
      expect(value(/^lb_sni_acceptor_events_total\{event="accepted"\} (\d+)$/m)).toBeGreaterThan(1000);
    });

    // The door dying under a running daemon: the daemon starts another on the holder's socket.
    if (relay === 'native') it('starts a new door when the door is killed under the daemon, and serves on', async () => {
      const before = doorPid()!;
      process.kill(before, 'SIGKILL');
      await daemon!.waitForLog((l) => l.msg === 'native SNI front door started' && l['door'] !== before, 'a new door', 30_000);
      expect(doorPid()).not.toBe(before);
      expect((await tlsClients({ servername: 'api.example.com' }))[0]!.cn).toMatch(/^api-[ab]$/);
    });

    it('answers every connection opened across a kill -9 and a restart of the daemon: the holder keeps the listening socket', async () => {
      const linkId = (): number => (JSON.parse(sh(['bpftool', '-j', 'link', 'show', 'pinned', join(instanceDir(instance), 'link_sk_lookup')])) as { id: number }).id;
      const linkBefore = linkId();
      const holderBefore = holderPid();
      expect(holderBefore, 'the first daemon started a holder').toBeDefined();
      const accepted = async (): Promise<number> => Number(/^lb_sni_acceptor_events_total\{event="accepted"\} (\d+)$/m.exec(await metricsText(LB, OPS_PORT))?.[1] ?? NaN);
      // Connections back to back, 8 at a time, until the stop file appears (at most 20,000).
      const stop = join(dir, 'stop-clients');
      const clients = tlsClients({ servername: 'api.example.com', count: 20_000, concurrency: 8, timeoutMs: 90_000, untilFile: stop });
      const first = await accepted();
      await waitUntil(async () => (await accepted()) >= first + 50, { timeoutMs: 60_000, intervalMs: 100, what: 'the clients to be served before the kill' });
      await daemon!.kill9();
      const killedAt = Date.now();
      // 40 more clients while no daemon runs. The native door decides them from the last daemon's
      // table and relays them: answered with no daemon at all. Node's acceptors: their handshakes
      // wait in the held socket's accept queue (its Recv-Q) for the next daemon. Nothing refuses them.
      const gap = tlsClients({ servername: 'api.example.com', count: 40, concurrency: 40, timeoutMs: 90_000 });
      if (relay === 'native') {
        const answered = await gap;
        expect(answered.filter((r) => r.error || !/^api-[ab]$/.test(r.cn ?? '')), 'every connection opened while no daemon runs is answered by the door alone').toEqual([]);
        expect(daemon!.proc.running, 'no daemon ran meanwhile').toBe(false);
      } else {
        await waitUntil(() => acceptQueue(holderBefore!) >= 40, { timeoutMs: 30_000, intervalMs: 100, what: 'the 40 handshakes to queue on the held socket' });
      }
      daemon = new DaemonProcess(LB, instance, DAEMON_ARGS());
      await daemon.started();
      await daemon.waitForLog((l) => l.msg === 'SNI acceptor serving', 'the restarted acceptor to serve', 30_000);
      expect(daemon.logs().find((l) => l.msg === 'SNI acceptor socket taken over from its holder')).toMatchObject({ adopted: true, holder: holderBefore });
      const second = await accepted();
      await waitUntil(async () => (await accepted()) >= second + 50, { timeoutMs: 60_000, intervalMs: 100, what: 'the clients to be served after the restart' });
      writeFileSync(stop, '');
      const queued = await gap;
      expect(queued.filter((r) => r.error || !/^api-[ab]$/.test(r.cn ?? '')), 'every connection opened while no daemon ran is answered').toEqual([]);
      const rs = await clients;
      const after = rs.filter((r) => r.startedAt! > killedAt);
      expect(after.filter((r) => r.error || !/^api-[ab]$/.test(r.cn ?? '')), 'every connection opened after the kill is answered by its backend').toEqual([]);
      // Before the kill: only the connections the killed daemon was relaying (at most one per client loop) end with it.
      const before = rs.filter((r) => r.startedAt! <= killedAt);
      expect(before.filter((r) => r.error).length).toBeLessThanOrEqual(8);
      expect(before.filter((r) => !r.error).length).toBeGreaterThanOrEqual(50);
      expect(linkId(), 'the pinned link is adopted, not attached again').toBe(linkBefore);
      expect(holderPid(), 'the same holder keeps the socket').toBe(holderBefore);
    }, 240_000);

    it('after a clean stop the holder still queues connections; lb down ends it and removes the VIP\'s local route, and then nothing answers the VIP', async () => {
      await daemon!.stop(10_000);
      const pid = holderPid()!;
      expect(processAlive(pid)).toBe(true);
      const down = runCli(['--instance', instance, 'down'], { ns: LB, timeoutMs: 60_000 });
      expect(down.code, down.stderr).toBe(0);
      expect(down.stdout).toContain('Ended the SNI acceptor\'s socket holder.');
      expect(down.stdout).toContain(`Removed the SNI acceptor's local routes (${VIP}).`);
      expect(sh(['ip', '-n', LB, 'route', 'show', 'table', 'local', 'proto', String(LB_ROUTE_PROTO)])).toBe('');
      await waitUntil(() => !processAlive(pid), { timeoutMs: 10_000, intervalMs: 50, what: `the holder ${pid} to exit` });
      // Without its local route the VIP is no longer delivered in the LB namespace: refused, unreachable or unanswered.
      const [r] = await tlsClients({ servername: 'api.example.com', timeoutMs: 5000 });
      expect(r!.error).toMatch(/ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|^timeout$/);
    });
  });
}
