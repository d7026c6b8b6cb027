// SYN flood end to end: trafgen in client namespace c2 sends TCP SYNs from random source
// addresses (198.18.0.0/16, random ports) to the VIP as fast as it can, while client c1 holds an
// HTTP keep-alive connection (a request every 50 ms), a long HTTP stream and an idle connection (a
// request whose last header line is sent only after the flood) through the VIP. During the flood
// the backend set changes (`lb apply`: all the weight moves to a backend none of them uses), so a
// flow the flood evicted from conntrack would be sent to another backend by its next packet and
// break: a reset stream, failed requests. With the defence (bpf/lib/halfopen.h) the spoofed SYNs
// only churn lb_halfopen: zero failed requests, the stream whole on its one connection, the idle
// request answered. The flood runs until it has created twice as many flows as lb_flows holds
// (bounded in time). Without the defence the kernel's LRU still spares the busy connections (their
// entries are referenced all the time), but not the idle one: that is the check that fails then.
// Traffic stays in the namespaces created here: the spoofed sources are routed to c2, which drops
// the backends' SYN-ACKs to them.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../lib/build.js';
import { endCliInstance } from './lib/teardown.js';
import { DataPlane, LB_DIR_FORWARD, LB_MAX_FLOWS, decodeFlow, decodeFlowKey, type StatName } from '../../src/dataplane/index.js';
import { VIP, createTopology, execIn, httpGet, waitUntil, type ManagedProcess, type Topology } from '../../src/sandbox/index.js';
import { runCli, type CliResult } from '../lib/cli.js';
import {
  startIdleRequest, startKeepAlive, startStream, streamContinuity, type IdleRequest, type KeepAliveClient, type StreamClient,
} from './lib/clients.js';
import { webProxyYaml } from './lib/config.js';

if (process.getuid?.() !== 0) throw new Error('synflood-e2e.test.ts must run as root: it loads BPF programs and creates network namespaces');

const instance = `e2e-syn-${process.pid}-${randomBytes(3).toString('hex')}`;
const BACKENDS = ['b1', 'b2', 'b3', 'b4'];
/** Longest the flood may run: it stops earlier once it made more half-open flows than lb_flows holds. */
const FLOOD_MAX_MS = 30_000;

function yaml(weights: readonly number[]): string {
  return webProxyYaml(weights, { interfaces: ['veth-c1', 'veth-c2'] });
}

describe('SYN flood from random sources: established connections keep their backends', () => {
  let topo: Topology | undefined;
  let dir = '';
  let stream: StreamClient | undefined;
  let keepAlive: KeepAliveClient | undefined;
  let idle: IdleRequest | undefined;
  let flood: ManagedProcess | undefined;
  const t = (): Topology => {
    if (!topo) throw new Error('topology not created');
    return topo;
  };
  const lb = (args: string[]): CliResult => runCli([...args, '--instance', instance], { ns: t().lbNs, timeoutMs: 60_000 });
  const withDp = <T>(fn: (dp: DataPlane) => T): T => {
    const dp = DataPlane.open({ instance });
    try {
      return fn(dp);
    } finally {
      dp.close();
    }
  };
  const stats = (): Record<StatName, bigint> => withDp((dp) => dp.readStats());
  /** The backend (b1..b4) lb_flows holds for the connection from c1's source port. */
  const backendOf = (sport: number): string | undefined => withDp((dp) => {
    const fwd = dp.maps.lb_flows.lookupBatch().map(([k, v]) => ({ key: decodeFlowKey(k), value: decodeFlow(v) }))
      .find((f) => f.key.sport === sport && f.value.dir === LB_DIR_FORWARD);
    return fwd ? `b${fwd.value.natAddr.split('.')[2]}` : undefined;
  });

  beforeAll(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'lb-syn-e2e-'));
    topo = await createTopology({ variant: 'default-veth', backends: 4, clients: 2 });
    await topo.startBackendServers();
    const c2 = topo.clients[1]!;
    // The spoofed sources are routed back to c2 (which owns none of them and drops what it gets):
    // the backends' SYN-ACKs pass lb's TC egress and touch the flood's conntrack entries, as they
    // would on a balancer with a default route, so the kernel's LRU cannot tell them from real flows.
    await execIn(topo.lbNs, ['ip', 'route', 'add', '198.18.0.0/16', 'via', c2.address]);
    writeFileSync(join(dir, 'flood.cfg'), [
      '/* SYNs from random sources in 198.18.0.0/16, random ports, to the VIP */',
      '{',
      `  eth(da=${c2.lbIface.mac}, sa=${c2.iface.mac}, type=0x0800),`,
      `  ipv4(sa=198.18.0.1, sa[2]=drnd(), sa[3]=drnd(), da=${VIP}, ttl=64),`,
      '  tcp(sp=drnd(), dp=80, seq=drnd(), syn, win=64240)',
      '}',
      '',
    ].join('\n'));
  });

  afterAll(async () => {
    await endCliInstance({
      instance, topo, dir, lb,
      stop: async () => {
        await flood?.stop(2000);
        await keepAlive?.stop(2000);
        await idle?.proc.stop(2000);
        stream?.proc.child.kill('SIGKILL');
      },
    });
  });

  it('a flood of spoofed SYNs and a backend change during it: zero failed requests, the stream unbroken', async () => {
    const apply = (weights: number[]): void => {
      writeFileSync(join(dir, 'lb.yaml'), yaml(weights));
      const r = lb(['apply', '--config', join(dir, 'lb.yaml'), '--auto-approve']);
      expect(r.code, r.stderr).toBe(0);
    };
    apply([1, 1, 1]);
    const c1 = t().clients[0]!.ns;
    stream = startStream(t(), c1, VIP, 80, '/stream?ms=60000', 30999);
    keepAlive = startKeepAlive(t(), c1, VIP, 80, '/', 30998, { gapMs: 50, maxMs: 60_000 });
    await waitUntil(() => stream!.lines().length >= 3 && keepAlive!.answers().length >= 3, { timeoutMs: 10_000, what: 'the stream and the keep-alive requests to flow' });
    idle = startIdleRequest(t(), c1, VIP, 80, 30997);
    const idleOn = await waitUntil(() => idle!.connected() && backendOf(30997), { timeoutMs: 10_000, what: 'the idle connection in lb_flows' });
    const used = new Set([stream.lines()[0]!.name, keepAlive.answers()[0]!.name!, idleOn]);
    const free = BACKENDS.findIndex((b) => !used.has(b));
    expect(free, `a backend neither connection uses (they use ${[...used].join(', ')})`).toBeGreaterThanOrEqual(0);

    const s0 = stats();
    flood = t().spawnIn('c2', ['timeout', '-k', '1', String(Math.ceil(FLOOD_MAX_MS / 1000) + 5), 'trafgen', '-i', join(dir, 'flood.cfg'), '-o', 'eth0',
      '-P', '1', '--no-sock-mem', '--notouch-irq'], { label: 'trafgen SYN flood' });
    const t0 = process.hrtime.bigint();
    // ct_new: flows the flood created (half-open ones with the defence; every one counts either way).
    const created = (): number => Number(stats().ct_new - s0.ct_new);
    await waitUntil(() => created() > 10_000, { timeoutMs: 10_000, what: 'the flood to reach the balancer' });
    // The backend set changes under the flood: every new flow goes to the free backend now.
    apply(BACKENDS.map((_, i) => (i === free ? 1 : 0)));
    await waitUntil(() => !flood!.running || created() > LB_MAX_FLOWS + 10_000, { timeoutMs: FLOOD_MAX_MS, intervalMs: 250, what: 'the flood to make twice as many flows as lb_flows holds' })
      .catch(() => { /* bounded: the figures below say how far it got */ });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    expect(flood.running, `trafgen ran through the flood: ${flood.stderr.trim()}`).toBe(true);
    await flood.stop(2000);
    const d = stats();
    const made = Number(d.ct_new - s0.ct_new);
    console.log(`flood: ${made} new flows (${Number(d.ho_new - s0.ho_new)} half-open) in ${seconds.toFixed(1)} s ` +
      `(${Math.round(made / seconds)}/s at the balancer), ${Number(d.ho_promoted - s0.ho_promoted)} promoted; ` +
      `keep-alive answers ${keepAlive.answers().length}, stream lines ${stream.lines().length}`);
    expect(made, 'the flood made more flows than lb_flows holds').toBeGreaterThan(LB_MAX_FLOWS / 2);

    // Both connections go on after the flood, on their backends.
    const n = keepAlive.answers().length;
    const lines = stream.lines().length;
    await waitUntil(() => keepAlive!.answers().length >= n + 5 && stream!.lines().length >= lines + 5, { timeoutMs: 10_000, what: 'both connections to go on after the flood' });
    await keepAlive.stop(5000);
    const answers = keepAlive.answers();
    expect(answers.filter((a) => a.error), 'failed keep-alive requests').toEqual([]);
    expect(new Set(answers.map((a) => a.local)).size, 'keep-alive connections').toBe(1);
    expect(new Set(answers.map((a) => a.name)).size, 'keep-alive backends').toBe(1);
    expect(stream.errors()).toEqual([]);
    expect(stream.connections()).toBe(1);
    const c = streamContinuity(stream.lines());
    expect(c.contiguous).toBe(true);
    expect(c.names).toHaveLength(1);
    // The idle connection, silent through the flood, is still on its backend.
    idle.finish();
    const answer = await waitUntil(() => idle!.result(), { timeoutMs: 10_000, what: 'the idle request\'s answer' });
    expect(answer, 'the idle connection after the flood').toEqual({ name: idleOn });
    // New connections follow the new weights.
    const fresh = await httpGet(c1, `http://${VIP}/`);
    expect(fresh.body.trim()).toBe(BACKENDS[free]);
  });
});
