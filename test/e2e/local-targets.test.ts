// Local targets: the original's first example, simple-proxy.edn (eth0:80 -> 127.0.0.1:8080), applied
// unchanged, and targets on the host's own address. A client at the other end of eth0 reaches
// services that listen on 127.0.0.1 and on the LB host's address, over TCP and UDP; lb turns
// route_localnet on for eth0 (the kernel drops a packet for 127.0.0.0/8 arriving on another
// interface otherwise, and the reply could not leave), says so in the plan, and the service keeps
// answering through a kill -9 and restart of `lb daemon`.
//
//   <prefix>-c (eth0 10.230.1.2) ──veth── (eth0 10.230.1.1) <prefix>-lb
//                                           servers: 127.0.0.1:8080/tcp + :9000/udp ("lo")
//                                                    10.230.1.1:8081/tcp + :9001/udp ("host")
// Needs root; fails (never skips) without it. Traffic stays inside the namespaces created here.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instanceDir } from '../../src/dataplane/index.js';
import { ManagedProcess, backendServerScript, udpRequest, waitUntil } from '../../src/sandbox/index.js';
import { runDir } from '../../src/state/run-dir.js';
import { ensureBuilt } from '../lib/build.js';
import { runCli, type CliResult } from '../lib/cli.js';
import { createLbClientPair, destroyLbClientPair } from '../lib/lb-client-pair.js';
import { curl } from './lib/clients.js';
import { DaemonProcess } from './lib/daemon.js';

if (process.getuid?.() !== 0) {
  throw new Error('local-targets.test.ts must run as root: it loads BPF programs and creates network namespaces');
}

const SIMPLE = 'test/fixtures/seed-configs/simple-proxy.edn';
const run = `${process.pid}${randomBytes(2).toString('hex')}`;
const LB = `lbt${run}-lb`;
const CLIENT = `lbt${run}-c`;
const LB_ADDR = '10.230.1.1';
const CLIENT_ADDR = '10.230.1.2';
const instance = `lt-${run}`;
const PAIR = { lb: LB, client: CLIENT, lbAddr: LB_ADDR, clientAddr: CLIENT_ADDR };

const sh = (argv: string[]): string => execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 15_000 });

describe('local targets: 127.0.0.1 and the host\'s own address behind a listener on eth0', () => {
  let dir = '';
  const servers: ManagedProcess[] = [];
  let daemon: DaemonProcess | undefined;
  const lb = (args: string[]): CliResult => runCli(['--instance', instance, ...args], { ns: LB, timeoutMs: 60_000 });

  const localnetInLb = (): string => sh(['ip', 'netns', 'exec', LB, 'sysctl', '-n', 'net.ipv4.conf.eth0.route_localnet']).trim();
  const localnetOutside = (): string => sh(['sysctl', '-n', 'net.ipv4.conf.all.route_localnet']).trim();
  let rootLocalnet = '';
  beforeAll(async () => {
    ensureBuilt();
    rootLocalnet = localnetOutside();
    dir = mkdtempSync(join(tmpdir(), 'lb-local-'));
    createLbClientPair(PAIR, { ipv6: false });
    for (const [name, bind, http, udp] of [['lo', '127.0.0.1', 8080, 9000], ['host', LB_ADDR, 8081, 9001]] as const) {
      const p = new ManagedProcess(['ip', 'netns', 'exec', LB, process.execPath, backendServerScript(), '--name', name, '--http', String(http),
        '--udp', String(udp), '--bind', bind, '--exit-with-parent'], { label: `server ${name}` });
      servers.push(p);
      await p.waitForOutput(/"ready":true/, 10_000);
    }
    writeFileSync(join(dir, 'udp-and-host.yaml'), `proxies:
  - name: dns-local
    listen: {interfaces: [eth0], port: 53, protocol: udp}
    default-target: {ip: 127.0.0.1, port: 9000}
  - name: on-host
    listen: {interfaces: [eth0], port: 81, protocol: both}
    default-target: [{ip: ${LB_ADDR}, port: 8081}]
  - name: on-host-udp
    listen: {interfaces: [eth0], port: 82, protocol: udp}
    default-target: {ip: ${LB_ADDR}, port: 9001}
`);
  });

  afterAll(async () => {
    try {
      await daemon?.stop(5000).catch(() => undefined);
      for (const s of servers) await s.stop(2000).catch(() => undefined);
    } finally {
      destroyLbClientPair(PAIR, instance);
      if (dir) rmSync(dir, { recursive: true, force: true });
      expect(existsSync(instanceDir(instance))).toBe(false);
    }
  });

  it('without lb, nothing answers on eth0:80 (the service listens on 127.0.0.1:8080 only)', async () => {
    expect(localnetInLb()).toBe('0');
    const r = await curl(CLIENT, `http://${LB_ADDR}:80/`, 1500).catch((e: Error) => ({ status: 0, body: e.message }));
    expect(r.status).toBe(0);
  });

  it('plans simple-proxy.edn with the local target and route_localnet, then serves 127.0.0.1:8080 through eth0:80', async () => {
    const plan = lb(['plan', '--config', SIMPLE]);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain('+ interface eth0  (attach the tc data path: eth0 is a virtual interface (veth): ');
    expect(plan.stdout).toMatch(/; set route_localnet=1: loopback targets \(127.0.0.0\/8\) are delivered to this host through it\)\n/);
    expect(plan.stdout).toContain('default-target 127.0.0.1:8080 (local)');
    const apply = lb(['apply', '--config', SIMPLE, '--auto-approve']);
    expect(apply.code, apply.stderr).toBe(0);
    expect(localnetInLb()).toBe('1');
    const answers = await Promise.all([1, 2, 3].map(() => curl(CLIENT, `http://${LB_ADDR}:80/whoami`)));
    for (const a of answers) {
      expect(a).toMatchObject({ status: 200, remoteIp: LB_ADDR, remotePort: 80 });
      expect(JSON.parse(a.body)).toMatchObject({ name: 'lo', localAddress: '127.0.0.1', localPort: 8080, remoteAddress: CLIENT_ADDR });
    }
    expect(lb(['plan', '--config', SIMPLE, '--detailed-exitcode']).code, 'nothing left to change').toBe(0);
  });

  it('serves UDP to 127.0.0.1, and TCP and UDP to the host\'s own address', async () => {
    const apply = lb(['apply', '--config', join(dir, 'udp-and-host.yaml'), '--auto-approve']);
    expect(apply.code, apply.stderr).toBe(0);
    const udp = await udpRequest(CLIENT, LB_ADDR, 53, 'whoami', { sourcePort: 40_053, timeoutMs: 2000 });
    expect(udp.from).toEqual({ address: LB_ADDR, port: 53 });
    expect(JSON.parse(udp.reply!.toString())).toMatchObject({ name: 'lo', localAddress: '127.0.0.1', localPort: 9000, remoteAddress: CLIENT_ADDR, remotePort: 40_053 });
    const tcp = await curl(CLIENT, `http://${LB_ADDR}:81/whoami`);
    expect(tcp).toMatchObject({ status: 200, remoteIp: LB_ADDR, remotePort: 81 });
    expect(JSON.parse(tcp.body)).toMatchObject({ name: 'host', localPort: 8081, remoteAddress: CLIENT_ADDR });
    const hostUdp = await udpRequest(CLIENT, LB_ADDR, 82, 'whoami', { sourcePort: 40_082, timeoutMs: 2000 });
    expect(hostUdp.from).toEqual({ address: LB_ADDR, port: 82 });
    expect(JSON.parse(hostUdp.reply!.toString())).toMatchObject({ name: 'host', localPort: 9001, remoteAddress: CLIENT_ADDR });
  });

  it('keeps serving 127.0.0.1:8080 through a kill -9 and restart of lb daemon', async () => {
    const statusOf = (): { lastAppliedRevision?: string | null; result?: string } | undefined => {
      try { return JSON.parse(readFileSync(join(runDir(instance), 'status.json'), 'utf8')) as { lastAppliedRevision?: string; result?: string }; } catch { return undefined; }
    };
    const appliedSimple = (): boolean => /127\.0\.0\.1:8080/.test(lb(['show', 'maps']).stdout);
    daemon = new DaemonProcess(LB, instance, ['--config', SIMPLE, '--poll', '1h']);
    await daemon.started();
    await waitUntil(() => appliedSimple() || undefined, { timeoutMs: 20_000, intervalMs: 200, what: 'the daemon to apply simple-proxy.edn' });
    expect(statusOf()?.result).toBe('applied');
    const ask = async (): Promise<string> => JSON.parse((await curl(CLIENT, `http://${LB_ADDR}:80/whoami`)).body).name as string;
    expect(await ask()).toBe('lo');
    await daemon.kill9();
    expect(await ask(), 'the data plane outlives the daemon').toBe('lo');
    daemon = new DaemonProcess(LB, instance, ['--config', SIMPLE, '--poll', '1h']);
    await daemon.started();
    expect(await ask(), 'and the restarted daemon keeps it').toBe('lo');
    expect(localnetInLb()).toBe('1');
    expect(localnetOutside(), 'the root namespace is never touched').toBe(rootLocalnet);
  });
});
