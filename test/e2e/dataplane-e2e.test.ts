// The data plane end to end: real clients (curl, Node sockets) in client namespaces talk to the VIP
// 10.200.0.10, which the XDP program in the LB namespace DNATs to three backends; TC reverse-NATs
// their replies. The data plane is held by src/dataplane/agent.ts (the stand-in daemon), run in the
// LB namespace with nsenter, so it can be reloaded (SIGHUP), killed and restarted like a daemon.
//
// Flows use chosen source ports, so every new connection's backend is known in advance from the
// TS mirror of the flow hash: the checks compare with those predictions, never with luck.
// Needs root; fails (never skips) without it. Traffic stays inside the namespaces created here.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataPlane, instanceDir, type StatName } from '../../src/dataplane/index.js';
import {
  createTopology, listNamespaces, udpCountBackends, udpRequest, waitUntil, type Topology,
} from '../../src/sandbox/index.js';
import { Agent, agentDown, startAgent, teardownAgentSandbox, writeAgentConfig } from './lib/agent.js';
import { ensureBuilt } from '../lib/build.js';
import { ingressPathSeen, tcEgressProgIds, tcProgIds, xdpAttached } from './lib/kernel.js';
import { curl, httpBatch, startStream, streamContinuity, type BatchAnswer, type StreamClient } from './lib/clients.js';
import {
  ROUTED_BACKEND, TCP_PORT, UDP_PORT, e2eConfig, predictTcp, range, tcpTargetId, udpTargetId,
} from './lib/config.js';

if (process.getuid?.() !== 0) {
  throw new Error('dataplane-e2e.test.ts must run as root: it loads BPF programs and creates network namespaces');
}

const WEIGHTS = [50, 30, 20];
const DRAINED = [0, 30, 20]; // backend 1 takes no new flows

const count = (answers: BatchAnswer[]): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const a of answers) if (a.name) out[a.name] = (out[a.name] ?? 0) + 1;
  return out;
};

// Both ingress paths, on the sandbox's tuned veths: the TC path is what auto picks on a veth; the
// XDP path is what a NIC gets, exercised here with the offloads the sandbox sets for it.
for (const path of ['tc', 'xdp'] as const) describe(`data plane end to end, ${path} path: 2 clients, LB, 3 backends`, () => {
  const instance = `e2e-${path}-${process.pid}-${randomBytes(3).toString('hex')}`;
  let topo: Topology | undefined;
  let dir: string | undefined;
  let configPath = '';
  let agent: Agent | undefined;
  let dp: DataPlane | undefined; // this process's read handle on the agent's pins (counters)
  let stream: StreamClient | undefined;
  let streamBackend = '';
  const t = (): Topology => {
    if (!topo) throw new Error('topology not created');
    return topo;
  };
  const c1 = (): Topology['clients'][number] => t().clients[0]!;
  const c2 = (): Topology['clients'][number] => t().clients[1]!;

  beforeAll(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'lb-e2e-'));
    configPath = join(dir, 'agent.json');
    topo = await createTopology({ backends: 3, clients: 2 });
    await topo.startBackendServers();
    writeAgentConfig(configPath, e2eConfig(topo, WEIGHTS));
    agent = await startAgent(topo, instance, configPath, { path });
    dp = DataPlane.open({ instance });
  });

  afterAll(() => teardownAgentSandbox({ instance, topo, agent, dp, dir }));

  it(`starts the agent: fresh load, the ${path} path and TC egress on the client veths`, () => {
    const ready = agent!.ready;
    console.log(`e2e: agent ready: path=${path} xdpMode=${ready.xdpMode} adopted=${ready.adopted} txPorts=${ready.txPorts.join(',')}`);
    const xdpMode = path === 'xdp' ? 'native' : null;
    expect(ready).toMatchObject({ adopted: false, xdpMode: xdpMode ?? 'none', installed: true, pid: agent!.pid });
    expect(ready.interfaces.map((i) => [i.ifname, i.path, i.xdpMode, i.xdpChanged, i.tcChanged])).toEqual([
      ['veth-c1', path, xdpMode, path === 'xdp', true], ['veth-c2', path, xdpMode, path === 'xdp', true]]);
    expect(ready.interfaces[0]!.pathReason).toBe(`listen.mode: ${path} in the config`);
    expect(dp!.adopted).toBe(true);
    for (const ifname of ['veth-c1', 'veth-c2']) {
      expect(ingressPathSeen(t().lbNs, ifname, { xdp: dp!.programs.xdp.id, tcIngress: dp!.programs.tc_ingress.id })).toBe(path);
      if (path === 'xdp') expect(xdpAttached(t().lbNs, ifname)).toEqual({ mode: 'native', progId: dp!.programs.xdp.id });
      expect(tcEgressProgIds(t().lbNs, ifname)).toEqual([dp!.programs.tc.id]);
    }
  });

  it('carries TCP (curl) and UDP through the VIP: replies come from the VIP, backends see the client', async () => {
    const who = await curl(c1().ns, `http://${t().vip}:${TCP_PORT}/whoami`);
    expect(who).toMatchObject({ status: 200, remoteIp: t().vip, remotePort: TCP_PORT });
    const seen = JSON.parse(who.body) as { name: string; remoteAddress: string; localAddress: string; localPort: number };
    const backend = t().backends.find((b) => b.name === seen.name)!;
    expect(seen).toMatchObject({ remoteAddress: c1().address, localAddress: backend.address, localPort: 8080 });

    const plain = await curl(c1().ns, `http://${t().vip}:${TCP_PORT}/`);
    expect(plain.status).toBe(200);
    expect(plain.body).toMatch(/^b[123]\n$/);

    // An unconnected UDP socket takes a reply from anyone: the source address is what TC wrote.
    const udp = await udpRequest(c1().ns, t().vip, UDP_PORT, 'whoami', { sourcePort: 40053, timeoutMs: 2000 });
    expect(udp.from).toEqual({ address: t().vip, port: UDP_PORT });
    expect(JSON.parse(udp.reply!.toString())).toMatchObject({ remoteAddress: c1().address, remotePort: 40053, localPort: 9000 });

    const many = await udpCountBackends(c1().ns, t().vip, UDP_PORT, 60, { timeoutMs: 1000, totalTimeoutMs: 20_000 });
    console.log(`e2e: 60 UDP flows: ${JSON.stringify(many.counts)}`);
    expect(many).toMatchObject({ attempted: 60, failures: 0 });
    expect(Object.keys(many.counts).sort()).toEqual(['b1', 'b2', 'b3']);
  });

  it('spreads 300 new connections over weights 50/30/20 within 8 points, each where the hash says', async () => {
    const ports = range(20_000, 300);
    const answers = await httpBatch(c1().ns, t().vip, TCP_PORT, '/', ports, { concurrency: 10 });
    expect(answers.filter((a) => a.error)).toEqual([]);
    expect(answers).toHaveLength(300);
    expect(new Set(answers.map((a) => a.remoteAddress))).toEqual(new Set([t().vip]));
    expect(answers.map((a) => a.name)).toEqual(ports.map((p) => predictTcp(t(), c1().address, p, WEIGHTS)));
    const counts = count(answers);
    const shares = t().backends.map((b) => (100 * (counts[b.name] ?? 0)) / answers.length);
    console.log(`e2e: 300 connections, weights 50/30/20: ${JSON.stringify(counts)} -> ${shares.map((s) => s.toFixed(1)).join('/')} %`);
    shares.forEach((s, k) => expect(Math.abs(s - WEIGHTS[k]!)).toBeLessThanOrEqual(8));
  });

  it("sends client 2's subnet to its source route's target while client 1 follows the default group", async () => {
    const ports = range(22_000, 20);
    const [routed, plain] = await Promise.all([
      httpBatch(c2().ns, t().vip, TCP_PORT, '/', ports),
      httpBatch(c1().ns, t().vip, TCP_PORT, '/', ports),
    ]);
    const target = t().backends[ROUTED_BACKEND - 1]!.name;
    expect(routed.map((a) => a.name)).toEqual(ports.map(() => target));
    // Without the route, the default group would have spread the same flows over other backends.
    expect(ports.map((p) => predictTcp(t(), c2().address, p, WEIGHTS)).filter((n) => n !== target).length).toBeGreaterThan(5);
    expect(plain.map((a) => a.name)).toEqual(ports.map((p) => predictTcp(t(), c1().address, p, WEIGHTS)));
    expect(new Set(plain.map((a) => a.name)).size).toBeGreaterThan(1);
    console.log(`e2e: source route: client 2 ${JSON.stringify(count(routed))}, client 1 ${JSON.stringify(count(plain))}`);
  });

  it('keeps a long-lived stream on its backend when that backend goes to weight 0; new flows avoid it', async () => {
    // A source port whose flow the hash sends to backend 1, the one about to be drained.
    const sport = range(31_000, 200).find((p) => predictTcp(t(), c1().address, p, WEIGHTS) === 'b1')!;
    stream = startStream(t(), c1().ns, t().vip, TCP_PORT, '/stream?ms=30000', sport);
    await waitUntil(() => stream!.lines().length >= 5, { timeoutMs: 5000, intervalMs: 50, what: 'the first stream lines' });
    streamBackend = stream.lines()[0]!.name;
    expect(streamBackend).toBe('b1');

    writeAgentConfig(configPath, e2eConfig(t(), DRAINED));
    expect(await agent!.reload()).toMatchObject({ reloaded: true, installed: true });
    const before = stream.lines().length;

    const ports = range(21_000, 60);
    const answers = await httpBatch(c1().ns, t().vip, TCP_PORT, '/', ports);
    expect(answers.map((a) => a.name)).toEqual(ports.map((p) => predictTcp(t(), c1().address, p, DRAINED)));
    expect(count(answers).b1).toBeUndefined();
    // These ports would have gone to b1 had the weights not changed: the drain did something.
    expect(ports.filter((p) => predictTcp(t(), c1().address, p, WEIGHTS) === 'b1').length).toBeGreaterThan(10);

    await waitUntil(() => stream!.lines().length >= before + 5, { timeoutMs: 3000, intervalMs: 50, what: 'stream lines after the drain' });
    expect(streamContinuity(stream.lines())).toMatchObject({ contiguous: true, names: ['b1'] });
  });

  it('keeps the same stream flowing through kill -9 of the agent and a restart that adopts the pins', async () => {
    expect(stream, 'the previous test starts the stream').toBeDefined();
    const s = stream!;
    const oldPid = agent!.pid;
    await agent!.kill9();
    const killedAt = Date.now();
    const atKill = s.lines().length;
    // No process holds the data plane now: the kernel keeps forwarding on pinned, attached programs.
    await waitUntil(() => s.lines().length >= atKill + 5, { timeoutMs: 3000, intervalMs: 50, what: 'stream lines with no agent running' });
    const restartedAt = Date.now();
    agent = await startAgent(t(), instance, configPath, { path });
    expect(agent.pid).not.toBe(oldPid);
    expect(agent.ready).toMatchObject({ adopted: true, xdpMode: path === 'xdp' ? 'native' : 'none', installed: false });
    expect(agent.ready.interfaces.map((i) => [i.ifname, i.xdpChanged, i.tcChanged])).toEqual([['veth-c1', false, false], ['veth-c2', false, false]]);
    const atRestart = s.lines().length;
    await waitUntil(() => s.lines().length >= atRestart + 10, { timeoutMs: 5000, intervalMs: 50, what: 'stream lines after the restart' });

    // The restart kept the drained config: new flows still avoid b1.
    const ports = range(23_000, 30);
    const answers = await httpBatch(c1().ns, t().vip, TCP_PORT, '/', ports);
    expect(answers.map((a) => a.name)).toEqual(ports.map((p) => predictTcp(t(), c1().address, p, DRAINED)));

    const lines = s.lines();
    const c = streamContinuity(lines);
    console.log(`e2e: stream: ${lines.length} lines on ${c.names.join(',')}, counter contiguous=${c.contiguous}, max gap ${c.maxGapMs} ms ` +
      `(agent dead for ${restartedAt - killedAt} ms, restart took ${Date.now() - restartedAt} ms incl. the checks)`);
    expect(c).toMatchObject({ contiguous: true, names: [streamBackend] });
    expect(c.maxGapMs).toBeLessThan(500); // lines come every 100 ms; a TCP retransmission would stall far longer
    expect(s.connections()).toBe(1);
    expect(s.errors()).toEqual([]);
    await s.proc.stop(1000);
  });

  it('uses the fast path: lb_stats shows redirects and reverse NAT, per-target counters follow the flows', () => {
    const forwarded: StatName = path === 'xdp' ? 'redirect' : 'redirect_neigh';
    const stats = dp!.readStats();
    const nonZero = Object.fromEntries(Object.entries(stats).filter(([, v]) => v !== 0n).map(([k, v]) => [k, Number(v)]));
    const tcp = [1, 2, 3].map((j) => dp!.readTargetStats(tcpTargetId(j)));
    const udp = [1, 2, 3].map((j) => dp!.readTargetStats(udpTargetId(j)));
    console.log(`e2e: lb_stats ${JSON.stringify(nonZero)}; new flows per backend TCP ${tcp.map((s) => s.newFlows).join('/')}, ` +
      `UDP ${udp.map((s) => s.newFlows).join('/')}`);
    const at = (k: StatName): bigint => stats[k];
    expect(at(forwarded)).toBeGreaterThan(0n);
    expect(at('tc_revnat')).toBeGreaterThan(0n);
    // Static neighbours and routes to every backend: the FIB resolves every packet, none falls back.
    expect(at('fib_pass')).toBe(0n);
    expect(at('redirect_err')).toBe(0n);
    expect(at(forwarded)).toBe(at('ct_new') + at('ct_hit'));
    expect(at(path === 'xdp' ? 'redirect_neigh' : 'redirect')).toBe(0n);
    // At least the 430 batch connections (distinct chosen ports); curls, the stream and the UDP
    // flows add more (UDP's ephemeral ports may repeat a 5-tuple, which is then a conntrack hit).
    expect(at('ct_new')).toBeGreaterThanOrEqual(430n);
    expect([...tcp, ...udp].reduce((sum, s) => sum + s.newFlows, 0n)).toBe(at('ct_new'));
    expect(at('ct_hit')).toBeGreaterThan(0n);
    expect(at('no_target')).toBe(0n);
    expect(at('malformed')).toBe(0n);
    for (const s of [...tcp, ...udp]) expect(s.newFlows).toBeGreaterThan(0n);
  });

  it('leaves the data plane running when the agent exits, and --down removes pins and attachments', async () => {
    const status = await agent!.proc.stop(3000);
    expect(status).toEqual({ code: 0, signal: null });
    expect(ingressPathSeen(t().lbNs, 'veth-c1', { xdp: dp!.programs.xdp.id, tcIngress: dp!.programs.tc_ingress.id })).toBe(path);
    expect(existsSync(instanceDir(instance))).toBe(true);
    const who = await curl(c2().ns, `http://${t().vip}:${TCP_PORT}/`);
    expect(who).toMatchObject({ status: 200, body: `${t().backends[ROUTED_BACKEND - 1]!.name}\n`, remoteIp: t().vip });

    dp!.close();
    const down = await agentDown(t(), instance);
    expect(down.detached.map((d) => [d.ifname, d.xdp, d.tc]).sort()).toEqual([['veth-c1', path === 'xdp', true], ['veth-c2', path === 'xdp', true]]);
    expect([...down.unpinned].sort()).toEqual(expect.arrayContaining(['lb_flows', 'lb_groups', 'lb_tx_ports', 'prog_tc', 'prog_tc_in', 'prog_xdp', 'link_redirect_err']));
    expect(down.removedDir).toBe(true);
    expect(existsSync(instanceDir(instance))).toBe(false);
    for (const ifname of ['veth-c1', 'veth-c2']) {
      expect(xdpAttached(t().lbNs, ifname)).toBeUndefined();
      expect(tcEgressProgIds(t().lbNs, ifname)).toEqual([]);
      expect(tcProgIds(t().lbNs, ifname, 'ingress')).toEqual([]);
    }

    const prefix = t().prefix;
    await t().destroy();
    expect((await listNamespaces()).filter((n) => n.startsWith(`${prefix}-`))).toEqual([]);
  });
});

describe('data plane end to end in generic XDP mode (the fallback for drivers without native XDP)', () => {
  const genericInstance = `e2e-g-${process.pid}-${randomBytes(3).toString('hex')}`;
  let topo: Topology | undefined;
  let dir: string | undefined;

  afterAll(async () => {
    const prefix = topo?.prefix;
    try {
      if (topo && existsSync(instanceDir(genericInstance))) await agentDown(topo, genericInstance).catch(() => undefined);
      await topo?.destroy();
    } finally {
      topo?.destroySync();
      if (existsSync(instanceDir(genericInstance))) DataPlane.down(genericInstance);
      if (dir) rmSync(dir, { recursive: true, force: true });
      if (prefix) expect((await listNamespaces()).filter((n) => n.startsWith(`${prefix}-`))).toEqual([]);
      expect(existsSync(instanceDir(genericInstance))).toBe(false);
    }
  });

  it('balances TCP and UDP through the VIP with redirects and reverse NAT, then tears down cleanly', async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'lb-e2e-'));
    const configPath = join(dir, 'agent.json');
    topo = await createTopology({ backends: 3, clients: 1 });
    const c = topo.clients[0]!;
    await topo.startBackendServers();
    writeAgentConfig(configPath, e2eConfig(topo, WEIGHTS));
    const agent = await startAgent(topo, genericInstance, configPath, { path: 'xdp', xdpMode: 'generic' });
    console.log(`e2e: generic agent ready: xdpMode=${agent.ready.xdpMode}`);
    expect(agent.ready).toMatchObject({ adopted: false, xdpMode: 'generic', txRefused: [] });
    expect(xdpAttached(topo.lbNs, 'veth-c1')?.mode).toBe('generic');

    const who = await curl(c.ns, `http://${topo.vip}:${TCP_PORT}/whoami`);
    expect(who).toMatchObject({ status: 200, remoteIp: topo.vip });
    expect(JSON.parse(who.body)).toMatchObject({ remoteAddress: c.address, localPort: 8080 });
    const udp = await udpRequest(c.ns, topo.vip, UDP_PORT, 'whoami', { sourcePort: 40054 });
    expect(udp.from).toEqual({ address: topo.vip, port: UDP_PORT });
    const ports = range(20_000, 50);
    const answers = await httpBatch(c.ns, topo.vip, TCP_PORT, '/', ports);
    expect(answers.map((a) => a.name)).toEqual(ports.map((p) => predictTcp(topo!, c.address, p, WEIGHTS)));

    const dp = DataPlane.open({ instance: genericInstance });
    let stats: Record<StatName, bigint>;
    try {
      stats = dp.readStats();
    } finally {
      dp.close();
    }
    console.log(`e2e: generic lb_stats redirect=${stats.redirect} tc_revnat=${stats.tc_revnat} ct_new=${stats.ct_new} fib_pass=${stats.fib_pass}`);
    expect(stats.redirect).toBeGreaterThan(0n);
    expect(stats.tc_revnat).toBeGreaterThan(0n);
    expect(stats.fib_pass).toBe(0n);

    expect(await agent.proc.stop(3000)).toEqual({ code: 0, signal: null });
    const down = await agentDown(topo, genericInstance);
    expect(down.detached.map((d) => d.ifname)).toEqual(['veth-c1']);
    expect(down.removedDir).toBe(true);
    expect(xdpAttached(topo.lbNs, 'veth-c1')).toBeUndefined();
    expect(tcEgressProgIds(topo.lbNs, 'veth-c1')).toEqual([]);
    const prefix = topo.prefix;
    await topo.destroy();
    expect((await listNamespaces()).filter((n) => n.startsWith(`${prefix}-`))).toEqual([]);
  });
});
