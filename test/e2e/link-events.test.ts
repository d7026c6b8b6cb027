// Interfaces that come and go under a running `lb daemon`: the client-facing veth is deleted and
// created again with the same name and addresses (what a container or VM restart does). The new
// interface has a new ifindex and none of lb's programs; the daemon sees the link event
// (src/daemon/link-watch.ts), checks for drift at once, and its heal encodes the applied state
// for the new ifindex and attaches there (a heal that re-applied the old bytes failed its
// read-back on every tick, forever). Traffic through the VIP resumes; the time from the link
// coming up to the first answered request is measured and printed, not asserted.
// Needs root; fails (never skips) without it. Traffic stays inside the namespaces created here.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataPlane, instanceDir } from '../../src/dataplane/index.js';
import { createTopology, listNamespaces, run, waitUntil, type Topology } from '../../src/sandbox/index.js';
import { runDir } from '../../src/state/run-dir.js';
import { ensureBuilt } from '../lib/build.js';
import { runCli } from '../lib/cli.js';
import { curl, httpBatch, startStream, streamContinuity } from './lib/clients.js';
import { predictTcp, range } from './lib/config.js';
import { DaemonProcess, httpInNs, metric } from './lib/daemon.js';

if (process.getuid?.() !== 0) {
  throw new Error('link-events.test.ts must run as root: it loads BPF programs and creates network namespaces');
}

const instance = `le-${process.pid}-${randomBytes(2).toString('hex')}`;
/** The daemon's ops endpoints (its default address), inside the LB namespace. */
const OPS = 9180;

describe('lb daemon: an interface deleted and created again is served again without a commit', () => {
  let topo: Topology | undefined;
  let dir = '';
  let daemon: DaemonProcess | undefined;
  const t = (): Topology => {
    if (!topo) throw new Error('topology not created');
    return topo;
  };
  const lb = (args: string[]) => runCli(['--instance', instance, ...args], { ns: t().lbNs, timeoutMs: 30_000 });
  /** A condition of the daemon's status file, /run/lb/<instance>/status.json. */
  const condition = (type: string): { status: string; reason: string; message: string } | undefined => {
    try {
      const report = JSON.parse(readFileSync(join(runDir(instance), 'status.json'), 'utf8')) as { conditions: Array<{ type: string; status: string; reason: string; message: string }> };
      return report.conditions.find((c) => c.type === type);
    } catch {
      return undefined;
    }
  };
  const ask = async (): Promise<string | undefined> => {
    try {
      const r = await curl(t().clients[0]!.ns, `http://${t().vip}:80/`, 500);
      return r.status === 200 && r.remoteIp === t().vip ? r.body.trim() : undefined;
    } catch {
      return undefined;
    }
  };


  /** The client's link as the topology made it, created again (after it was deleted). */
  const createClientLink = async (): Promise<void> => {
    const c = t().clients[0]!;
    const ip = (ns: string, ...args: string[]) => run(['ip', '-n', ns, ...args], { timeoutMs: 10_000 });
    await ip(t().lbNs, 'link', 'add', 'veth-c1', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', c.ns);
    await ip(t().lbNs, 'addr', 'add', `${c.gateway}/${c.lbIface.prefixLen}`, 'dev', 'veth-c1');
    await ip(c.ns, 'addr', 'add', `${c.address}/${c.iface.prefixLen}`, 'dev', 'eth0');
    await ip(t().lbNs, 'link', 'set', 'veth-c1', 'up');
    await ip(c.ns, 'link', 'set', 'eth0', 'up');
    await ip(c.ns, 'route', 'add', 'default', 'via', c.gateway);
  };
  /** The container restart: the pair goes (with the client's end), and comes back as it was. */
  const recreateClientLink = async (afterDelete: () => Promise<void> = async () => undefined): Promise<void> => {
    await run(['ip', '-n', t().lbNs, 'link', 'del', 'veth-c1'], { timeoutMs: 10_000 });
    await afterDelete();
    await createClientLink();
  };

  beforeAll(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'lb-links-'));
    topo = await createTopology({ variant: 'default-veth', backends: 2, clients: 1 });
    await topo.startBackendServers();
    writeFileSync(join(dir, 'lb.yaml'), `proxies:
  - name: web
    listen: {interfaces: [veth-c1], port: 80, address: ${topo.vip}}
    default-target: [${topo.backends.map((b) => `{ip: ${b.address}, port: 8080}`).join(', ')}]
`);
    // The drift timer is an hour: only the link event can make the daemon look again.
    daemon = new DaemonProcess(topo.lbNs, instance, ['--config', join(dir, 'lb.yaml'), '--poll', '1h', '--drift-interval', '1h']);
    await daemon.started();
    await waitUntil(async () => (await ask()) ?? undefined, { timeoutMs: 20_000, intervalMs: 100, what: 'the first apply to serve the VIP' });
  });

  afterAll(async () => {
    const prefix = topo?.prefix;
    try {
      await daemon?.stop(5000).catch(() => undefined);
      if (topo && existsSync(instanceDir(instance))) lb(['down']);
      await topo?.destroy();
    } finally {
      topo?.destroySync();
      if (existsSync(instanceDir(instance))) DataPlane.down(instance);
      rmSync(runDir(instance), { recursive: true, force: true });
      if (dir) rmSync(dir, { recursive: true, force: true });
      if (prefix) expect((await listNamespaces()).filter((n) => n.startsWith(`${prefix}-`))).toEqual([]);
    }
  });

  it('re-attaches and re-keys the re-created client interface, and traffic resumes', async () => {
    const before = JSON.parse(lb(['show', 'maps', '--format', 'json']).stdout) as { attachments: Array<{ interface: string; ifindex: number; path: string }> };
    const old = before.attachments.find((a) => a.interface === 'veth-c1')!;
    expect(old.path).toBe('tc');

    await recreateClientLink(async () => {
      await daemon!.waitForLog((l) => l.component === 'links' && l.ifname === 'veth-c1' && l.deleted === true, 'the deletion to be seen');
      // While it is gone: Degraded, naming it; Ready stays (everything else serves).
      const degraded = await waitUntil(() => condition('Degraded'), { timeoutMs: 10_000, intervalMs: 50, what: 'the Degraded condition' });
      expect(degraded).toMatchObject({ status: 'True', reason: 'InterfaceMissing' });
      expect(degraded.message).toMatch(/^interface veth-c1 of revision .* is missing; everything else keeps serving/);
      expect(metric((await httpInNs(t().lbNs, OPS, '/metrics')).body, 'lb_interface_up', { interface: 'veth-c1' })).toBe(0);
    });
    const up = Date.now();

    const answer = await waitUntil(async () => (await ask()) ?? undefined, { timeoutMs: 20_000, intervalMs: 50, what: 'traffic through the re-created veth-c1' });
    console.log(`links: traffic resumed ${Date.now() - up} ms after veth-c1 came up again (answered by ${answer})`);
    await waitUntil(() => (condition('Degraded') === undefined ? true : undefined), { timeoutMs: 10_000, intervalMs: 50, what: 'Degraded to clear' });
    // The data-plane series are read at most once a second: wait for a read made after the link came back.
    await waitUntil(async () => metric((await httpInNs(t().lbNs, OPS, '/metrics')).body, 'lb_interface_up', { interface: 'veth-c1' }) === 1,
      { timeoutMs: 10_000, intervalMs: 100, what: 'lb_interface_up 1 for veth-c1' });
    expect(t().backends.map((b) => b.name)).toContain(answer);

    const after = JSON.parse(lb(['show', 'maps', '--format', 'json']).stdout) as {
      attachments: Array<{ interface: string; ifindex: number; path: string }>; state: { listeners: Array<{ iface: string }> };
    };
    const now = after.attachments.find((a) => a.interface === 'veth-c1')!;
    expect(now.path).toBe('tc');
    expect(now.ifindex).not.toBe(old.ifindex);
    expect(after.state.listeners.map((l) => l.iface)).toEqual(['veth-c1']); // re-keyed: no listener left on the old ifindex
    await daemon!.waitForLog((l) => l.component === 'drift' && typeof l.msg === 'string' && l.msg.startsWith('drift healed'), 'the heal to be logged');
    const plan = lb(['plan', '--config', join(dir, 'lb.yaml'), '--detailed-exitcode']);
    expect(plan.code, plan.stdout + plan.stderr).toBe(0);
  });

  it('a backend-side interface created again is a next hop again; a stream through another backend never notices', async () => {
    const b1 = t().backends[0]!;
    const c = t().clients[0]!;
    // A stream whose flow hashes to b2: it must run on, undisturbed, while b1's link is replaced.
    const port = range(30_000, 200).find((p) => predictTcp(t(), c.address, p, [100, 100]) === 'b2')!;
    const stream = startStream(t(), c.ns, t().vip, 80, '/stream?ms=20000', port);
    await waitUntil(() => (stream.lines().length >= 3 ? true : undefined), { timeoutMs: 10_000, intervalMs: 50, what: 'the stream to flow' });
    const ip = (ns: string, ...args: string[]) => run(['ip', '-n', ns, ...args], { timeoutMs: 10_000 });
    await ip(t().lbNs, 'link', 'del', b1.lbIface.name);
    await ip(t().lbNs, 'link', 'add', b1.lbIface.name, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', b1.ns);
    await ip(t().lbNs, 'addr', 'add', `${b1.gateway}/${b1.lbIface.prefixLen}`, 'dev', b1.lbIface.name);
    await ip(b1.ns, 'addr', 'add', `${b1.address}/${b1.iface.prefixLen}`, 'dev', 'eth0');
    await ip(t().lbNs, 'link', 'set', b1.lbIface.name, 'up');
    await ip(b1.ns, 'link', 'set', 'eth0', 'up');
    await ip(b1.ns, 'route', 'add', 'default', 'via', b1.gateway);
    const up = Date.now();
    // New connections from chosen ports that hash to b1: answered by b1 again.
    const toB1 = range(31_000, 400).filter((p) => predictTcp(t(), c.address, p, [100, 100]) === 'b1').slice(0, 40);
    let k = 0;
    await waitUntil(async () => {
      const p = toB1[k++ % toB1.length]!;
      const [a] = await httpBatch(c.ns, t().vip, 80, '/', [p], { timeoutMs: 500, totalTimeoutMs: 2000 });
      return a?.name === 'b1' ? true : undefined;
    }, { timeoutMs: 20_000, intervalMs: 20, what: 'b1 to answer through its re-created link' });
    console.log(`links: b1 answered again ${Date.now() - up} ms after its link came up`);
    await waitUntil(() => (stream.lines().length >= 8 ? true : undefined), { timeoutMs: 10_000, intervalMs: 50, what: 'more stream lines' });
    const cont = streamContinuity(stream.lines());
    console.log(`links: stream on b2 ${stream.lines().length} lines, max gap ${cont.maxGapMs} ms`);
    expect(cont).toMatchObject({ contiguous: true, names: ['b2'] });
    expect(stream.connections()).toBe(1);
    expect(stream.errors()).toEqual([]);
    await stream.proc.stop(1000);
  });

  it('lb plan shows a re-created interface as a re-key, and lb apply makes it serve again', async () => {
    await daemon!.stop(5000);
    daemon = undefined;
    const before = JSON.parse(lb(['show', 'maps', '--format', 'json']).stdout) as { attachments: Array<{ interface: string; ifindex: number }> };
    const old = before.attachments.find((a) => a.interface === 'veth-c1')!.ifindex;
    await recreateClientLink();
    const plan = lb(['plan', '--config', join(dir, 'lb.yaml'), '--detailed-exitcode']);
    expect(plan.code, plan.stderr).toBe(2);
    expect(plan.stdout).toMatch(new RegExp(`~ interface veth-c1 {2}\\(ifindex ${old} -> \\d+: created again, lb's programs and listeners move to it\\)`));
    expect(plan.stdout).not.toMatch(/^ +[-+~] +listener/m); // the listeners keep their name: nothing to destroy or create
    expect(plan.stdout).toContain('Plan: 0 to add, 1 to change, 0 to destroy.');
    const apply = lb(['apply', '--config', join(dir, 'lb.yaml'), '--auto-approve']);
    expect(apply.code, apply.stderr).toBe(0);
    expect(t().backends.map((b) => b.name)).toContain(await ask());
    expect(lb(['plan', '--config', join(dir, 'lb.yaml'), '--detailed-exitcode']).code).toBe(0);
  });

  it('an interface renamed away and back keeps serving: same device, same programs', async () => {
    const ip = (...args: string[]) => run(['ip', '-n', t().lbNs, ...args], { timeoutMs: 10_000 });
    const ifindex = (): number => (JSON.parse(lb(['show', 'maps', '--format', 'json']).stdout) as { attachments: Array<{ interface: string; ifindex: number }> })
      .attachments.find((a) => a.interface === 'veth-c1')?.ifindex ?? -1;
    const before = ifindex();
    for (const [from, to] of [['veth-c1', 'lbtmp0'], ['lbtmp0', 'veth-c1']] as const) {
      await ip('link', 'set', from, 'down'); // a running interface cannot be renamed
      await ip('link', 'set', from, 'name', to);
      await ip('link', 'set', to, 'up');
      await waitUntil(async () => (await ask()) ?? undefined, { timeoutMs: 20_000, intervalMs: 50, what: `traffic with the interface named ${to}` });
    }
    expect(ifindex()).toBe(before);
    expect(lb(['plan', '--config', join(dir, 'lb.yaml'), '--detailed-exitcode']).code).toBe(0);
  });

  it('an interface missing when the daemon starts is served once it appears', async () => {
    await daemon?.stop(5000);
    daemon = undefined;
    expect(lb(['down']).code).toBe(0);
    await run(['ip', '-n', t().lbNs, 'link', 'del', 'veth-c1'], { timeoutMs: 10_000 });
    daemon = new DaemonProcess(t().lbNs, instance, ['--config', join(dir, 'lb.yaml'), '--poll', '1h', '--drift-interval', '1h']);
    await daemon.started();
    const waiting = await waitUntil(() => { const c = condition('Ready'); return c && c.status !== 'Unknown' ? c : undefined; }, { timeoutMs: 15_000, intervalMs: 50, what: 'the first reconcile' });
    expect(waiting).toMatchObject({ status: 'False', reason: 'InterfaceMissing' });
    await createClientLink();
    const up = Date.now();
    await waitUntil(async () => (await ask()) ?? undefined, { timeoutMs: 20_000, intervalMs: 50, what: 'traffic once veth-c1 exists' });
    console.log(`links: veth-c1, missing at start, served ${Date.now() - up} ms after it came up`);
    // Traffic flows from the flip on; the status is written after the read-back: wait for it.
    await waitUntil(() => (condition('Ready')?.status === 'True' ? true : undefined), { timeoutMs: 10_000, intervalMs: 50, what: 'Ready True' });
  });
});
