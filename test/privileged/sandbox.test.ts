// The sandbox topology (src/sandbox): namespaces, addressing, forwarding through the LB namespace,
// backend servers, clients, offload choices and teardown. Needs root; fails (never skips) without.
// The backend server runs from dist/: this file rebuilds it when dist is missing or stale.
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../lib/build.js';
import {
  ManagedProcess, VIP, createTopology, destroyStale, httpCountBackends, httpGet, listNamespaces, run,
  udpCountBackends, udpRequest, waitUntil, type Topology,
} from '../../src/sandbox/index.js';
import { packageRoot } from '../../src/package-root.js';

const ROOT = packageRoot();
const DIST_INDEX = join(ROOT, 'dist', 'src', 'sandbox', 'index.js');
const isRoot = process.getuid?.() === 0;

function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

/** Rebuilds dist/ when a compiled sandbox file is missing or older than its source. */

it('runs as root (the sandbox tests fail rather than skip without it)', () => {
  expect(isRoot, 'run the privileged tests as root').toBe(true);
});

describe('sandbox topology with 3 backends', () => {
  let topo: Topology | undefined;
  const t = (): Topology => {
    if (!topo) throw new Error('topology not created');
    return topo;
  };

  beforeAll(async () => {
    if (!isRoot) throw new Error('the sandbox tests need root');
    ensureBuilt();
    topo = await createTopology({ backends: 3, clients: 2 });
    await topo.startBackendServers();
  });

  afterAll(async () => {
    const prefix = topo?.prefix;
    try {
      await topo?.destroy();
    } finally {
      topo?.destroySync(); // no-op after a complete destroy(); the last resort otherwise
      if (prefix) expect((await listNamespaces()).filter((n) => n.startsWith(`${prefix}-`))).toEqual([]);
    }
  });

  it('names namespaces by run prefix and keeps interface names short', () => {
    const { prefix } = t();
    expect(prefix).toMatch(new RegExp(`^lbt${process.pid}[a-z]{3}$`));
    expect(t().namespaces().map((n) => [n.name, n.role])).toEqual([
      [`${prefix}-lb`, 'lb'], [`${prefix}-c1`, 'client'], [`${prefix}-c2`, 'client'],
      [`${prefix}-b1`, 'backend'], [`${prefix}-b2`, 'backend'], [`${prefix}-b3`, 'backend'],
    ]);
    for (const ns of t().namespaces()) {
      for (const i of ns.interfaces) {
        expect(i.name.length).toBeLessThanOrEqual(15);
        expect(i.mac).toMatch(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
        expect(i.ifindex).toBeGreaterThan(0);
      }
    }
  });

  it('addresses every link and reports interfaces as seen inside their namespace', async () => {
    const topo = t();
    expect(topo.clients.map((c) => [c.address, c.gateway, c.lbIface.name])).toEqual([
      ['10.201.1.2', '10.201.1.1', 'veth-c1'], ['10.201.2.2', '10.201.2.1', 'veth-c2']]);
    expect(topo.backends.map((b) => [b.name, b.address, b.gateway, b.lbIface.name])).toEqual([
      ['b1', '10.202.1.2', '10.202.1.1', 'veth-b1'], ['b2', '10.202.2.2', '10.202.2.1', 'veth-b2'], ['b3', '10.202.3.2', '10.202.3.1', 'veth-b3']]);
    for (const h of [...topo.clients, ...topo.backends]) {
      const link = JSON.parse((await topo.exec(h.ns, ['ip', '-j', 'link', 'show', 'eth0'])).stdout) as Array<{ ifindex: number; address: string }>;
      expect(link[0]).toMatchObject({ ifindex: h.iface.ifindex, address: h.iface.mac });
      const route = (await topo.exec(h.ns, ['ip', 'route', 'show', 'default'])).stdout;
      expect(route).toContain(`default via ${h.gateway} dev eth0`);
    }
    const lbLinks = JSON.parse((await topo.exec('lb', ['ip', '-j', 'link', 'show'])).stdout) as Array<{ ifname: string; ifindex: number }>;
    for (const i of [...topo.lbClientIfaces, ...topo.lbBackendIfaces]) {
      expect(lbLinks.find((l) => l.ifname === i.name)?.ifindex).toBe(i.ifindex);
    }
  });

  it('assigns the VIP to no interface', async () => {
    for (const ns of t().namespaces()) {
      expect((await t().exec(ns.name, ['ip', '-4', 'addr', 'show'])).stdout).not.toContain(VIP);
    }
    expect((await t().exec('lb', ['ip', 'route', 'get', VIP], { allowFailure: true })).stdout).not.toMatch(/local/);
  });

  it('forwards in the LB namespace with rp_filter off', async () => {
    const sysctl = async (key: string): Promise<string> => (await t().exec('lb', ['sysctl', '-n', key])).stdout.trim();
    expect(await sysctl('net.ipv4.ip_forward')).toBe('1');
    expect(await sysctl('net.ipv4.conf.all.rp_filter')).toBe('0');
    for (const i of [...t().lbClientIfaces, ...t().lbBackendIfaces]) expect(await sysctl(`net.ipv4.conf.${i.name}.rp_filter`)).toBe('0');
  });

  it('turns TX checksum offload off and GRO on at every client and backend eth0', async () => {
    for (const h of [...t().clients, ...t().backends]) {
      const k = (await t().exec(h.ns, ['ethtool', '-k', 'eth0'])).stdout;
      expect(k).toMatch(/^tx-checksumming: off/m);
      expect(k).toMatch(/^generic-receive-offload: on/m);
    }
  });

  it('lets a client reach each backend directly through kernel forwarding in the LB namespace', async () => {
    for (const c of t().clients) {
      for (const b of t().backends) {
        const r = await httpGet(c.ns, `http://${b.address}:8080/`, { timeoutMs: 5000 });
        expect(r).toEqual({ status: 200, body: `${b.name}\n`, localPort: expect.any(Number) as number });
        expect(r.localPort).toBeGreaterThan(1023);
      }
    }
    // The backend sees the client's own address: plain routing, no NAT in the sandbox itself.
    const who = await httpGet(t().clients[1]!.ns, `http://${t().backends[2]!.address}:8080/whoami`);
    expect(JSON.parse(who.body)).toMatchObject({ name: 'b3', remoteAddress: '10.201.2.2', localAddress: '10.202.3.2', localPort: 8080 });
  });

  it('echoes UDP with the backend name', async () => {
    const c = t().clients[0]!;
    for (const b of t().backends) {
      const r = await udpRequest(c.ns, b.address, 9000, 'ping', { timeoutMs: 2000 });
      expect(r.reply?.toString()).toBe(`${b.name}\n`);
      expect(r.from).toEqual({ address: b.address, port: 9000 });
    }
    const fixed = await udpRequest(c.ns, t().backends[0]!.address, 9000, 'whoami', { sourcePort: 40123 });
    expect(fixed.localPort).toBe(40123);
    expect(JSON.parse(fixed.reply!.toString())).toMatchObject({ name: 'b1', remoteAddress: '10.201.1.2', remotePort: 40123 });
    // Nothing listens on 9001: no reply, within the timeout.
    const none = await udpRequest(c.ns, t().backends[0]!.address, 9001, 'x', { timeoutMs: 300 });
    expect(none.reply).toBeNull();
  });

  it('serves health, a health switch and a bounded stream', async () => {
    const ns = t().clients[0]!.ns;
    const b = `http://${t().backends[1]!.address}:8080`;
    expect(await httpGet(ns, `${b}/health`)).toMatchObject({ status: 200, body: 'ok b2\n' });
    expect((await httpGet(ns, `${b}/admin/health?code=503`, { method: 'POST' })).status).toBe(200);
    expect((await httpGet(ns, `${b}/health`)).status).toBe(503);
    expect((await httpGet(ns, `${b}/admin/health?code=200`, { method: 'POST' })).status).toBe(200);
    expect((await httpGet(ns, `${b}/health`)).status).toBe(200);
    const started = Date.now();
    const stream = await httpGet(ns, `${b}/stream?ms=350`);
    expect(stream.body).toBe('b2 0\nb2 1\nb2 2\n');
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });

  it('counts answers per backend in bounded loops', async () => {
    const c = t().clients[0]!;
    const http = await httpCountBackends(c.ns, `http://${t().backends[0]!.address}:8080/`, 5);
    expect(http).toMatchObject({ counts: { b1: 5 }, attempted: 5, failures: 0, errors: [] });
    // Each answer with its connection's source port: five connections, five ports.
    expect(http.answers.map((a) => a.backend)).toEqual(['b1', 'b1', 'b1', 'b1', 'b1']);
    expect(new Set(http.answers.map((a) => a.localPort)).size).toBe(5);
    const udp = await udpCountBackends(c.ns, t().backends[2]!.address, 9000, 20);
    expect(udp).toEqual({ counts: { b3: 20 }, attempted: 20, failures: 0, errors: [] });
    const refused = await httpCountBackends(c.ns, `http://${t().backends[0]!.address}:8081/`, 2);
    expect(refused.failures).toBe(2);
    expect(refused.errors[0]).toMatch(/curl/);
  });

  it('bounds commands in time and offers nsenter for lb', async () => {
    const started = Date.now();
    await expect(t().exec('lb', ['sleep', '30'], { timeoutMs: 300 })).rejects.toThrow(/timed out after 300 ms/);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(t().nsenterArgs('lb')).toEqual(['nsenter', `--net=/run/netns/${t().prefix}-lb`]);
    // nsenter keeps the host's bpffs visible; ip netns exec remounts /sys and hides it.
    const viaNsenter = await t().exec('lb', ['stat', '-f', '-c', '%T', '/sys/fs/bpf'], { via: 'nsenter' });
    expect(viaNsenter.stdout.trim()).toBe('bpf_fs');
    const viaNetns = await t().exec('lb', ['stat', '-f', '-c', '%T', '/sys/fs/bpf'], { allowFailure: true });
    expect(viaNetns.stdout.trim()).not.toBe('bpf_fs');
    const ns = (await t().exec('lb', ['ip', '-j', 'link', 'show', 'veth-b1'], { via: 'nsenter' })).stdout;
    expect(JSON.parse(ns)[0].ifindex).toBe(t().backends[0]!.lbIface.ifindex);
  });

  it('rejects namespaces that are not its own', () => {
    expect(() => t().ns('b9')).toThrow(/not a namespace of topology/);
    expect(t().ns('b2')).toBe(`${t().prefix}-b2`);
  });
});

function isSymlink(path: string): boolean {
  try { return lstatSync(path).isSymbolicLink(); } catch { return false; }
}

describe('veth XDP_REDIRECT and checksum offload on this kernel', () => {
  // The claims topology.ts relies on, checked with a tiny XDP program on the LB's client-side
  // veth that redirects every IPv4 packet for b1's address straight to veth-b1.
  let topo: Topology | undefined;
  let dir: string | undefined;
  // `ip link set ... obj` makes iproute2 create these bpffs directories; remove the ones it made.
  const iprouteDirs = ['/sys/fs/bpf/tc/globals', '/sys/fs/bpf/tc', '/sys/fs/bpf/ip', '/sys/fs/bpf/xdp'];
  const preexisting = new Set(iprouteDirs.filter((d) => existsSync(d) || isSymlink(d)));

  afterAll(async () => {
    try {
      await topo?.destroy();
    } finally {
      topo?.destroySync();
      if (dir) rmSync(dir, { recursive: true, force: true });
      for (const d of iprouteDirs) {
        if (preexisting.has(d)) continue;
        try {
          if (isSymlink(d)) unlinkSync(d); else rmdirSync(d);
        } catch { /* not empty or gone: leave it */ }
      }
    }
  });

  it('redirects only when the peer has GRO (NAPI), and needs full checksums from the sender', async () => {
    if (!isRoot) throw new Error('needs root');
    ensureBuilt();
    topo = await createTopology({ backends: 1, clients: 1 });
    await topo.startBackendServers();
    const c = topo.clients[0]!;
    const b = topo.backends[0]!;
    const hex = (mac: string): string => mac.split(':').map((x) => `0x${x}`).join(',');
    const ipHex = `0x${b.address.split('.').map((n) => Number(n).toString(16).padStart(2, '0')).join('')}`;
    dir = mkdtempSync(join(tmpdir(), 'lb-sandbox-'));
    writeFileSync(join(dir, 'redirect.bpf.c'), `
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
SEC("xdp")
int redirect_to_b1(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->daddr != bpf_htonl(DST_IP))
		return XDP_PASS;
	unsigned char src[6] = { SRC_MAC }, dst[6] = { DST_MAC };
	__builtin_memcpy(eth->h_source, src, 6);
	__builtin_memcpy(eth->h_dest, dst, 6);
	return bpf_redirect(IFINDEX, 0);
}
char LICENSE[] SEC("license") = "GPL";
`);
    const triplet = (await run(['gcc', '-dumpmachine'])).stdout.trim();
    await run(['clang', '-O2', '-g', '-target', 'bpf', '-I', `/usr/include/${triplet}`, `-DIFINDEX=${b.lbIface.ifindex}`,
      `-DSRC_MAC=${hex(b.lbIface.mac)}`, `-DDST_MAC=${hex(b.iface.mac)}`, `-DDST_IP=${ipHex}`,
      '-c', join(dir, 'redirect.bpf.c'), '-o', join(dir, 'redirect.bpf.o')], { timeoutMs: 60_000 });
    await topo.exec('lb', ['ip', 'link', 'set', 'dev', 'veth-c1', 'xdpdrv', 'obj', join(dir, 'redirect.bpf.o'), 'sec', 'xdp']);

    const ethStats = async (ns: string, dev: string): Promise<Record<string, number>> => {
      const out = (await topo!.exec(ns, ['ethtool', '-S', dev])).stdout;
      return Object.fromEntries([...out.matchAll(/^\s*(\S+): (\d+)$/gm)].map((m) => [m[1]!, Number(m[2])]));
    };
    const udpCsumErrors = async (): Promise<number> => {
      const lines = (await topo!.exec(b.ns, ['cat', '/proc/net/snmp'])).stdout.split('\n').filter((l) => l.startsWith('Udp:'));
      const [names, values] = lines.map((l) => l.split(/\s+/));
      return Number(values![names!.indexOf('InCsumErrors')]);
    };
    const probe = async (): Promise<{ reply: string | null; redirected: number; drops: number; csumErrors: number }> => {
      const before = await ethStats(topo!.lbNs, 'veth-c1');
      const csumBefore = await udpCsumErrors();
      const r = await udpRequest(c.ns, b.address, 9000, 'x', { timeoutMs: 1000 });
      const after = await ethStats(topo!.lbNs, 'veth-c1');
      return {
        reply: r.reply?.toString() ?? null,
        redirected: (after.rx_queue_0_xdp_redirect ?? 0) - (before.rx_queue_0_xdp_redirect ?? 0),
        drops: (after.rx_queue_0_drops ?? 0) - (before.rx_queue_0_drops ?? 0),
        csumErrors: (await udpCsumErrors()) - csumBefore,
      };
    };

    // As built: backend GRO on, client TX checksum offload off. The request crosses by redirect.
    expect(await probe()).toEqual({ reply: 'b1\n', redirected: 1, drops: 0, csumErrors: 0 });

    // Backend GRO off: veth-b1's peer has no NAPI, ndo_xdp_xmit refuses, the frame is dropped.
    await topo.exec(b.ns, ['ethtool', '-K', 'eth0', 'gro', 'off']);
    expect(await probe()).toEqual({ reply: null, redirected: 0, drops: 1, csumErrors: 0 });
    await topo.exec(b.ns, ['ethtool', '-K', 'eth0', 'gro', 'on']);

    // Client TX checksum offload on: XDP gets the CHECKSUM_PARTIAL bytes (pseudo-header sum only);
    // the redirected frame loses that state and the backend rejects the checksum.
    await topo.exec(c.ns, ['ethtool', '-K', 'eth0', 'tx', 'on']);
    expect(await probe()).toEqual({ reply: null, redirected: 1, drops: 0, csumErrors: 1 });
    await topo.exec(c.ns, ['ethtool', '-K', 'eth0', 'tx', 'off']);

    expect(await probe()).toEqual({ reply: 'b1\n', redirected: 1, drops: 0, csumErrors: 0 });
  });
});

describe('teardown', () => {
  it('destroy() kills spawned processes, removes the namespaces and is idempotent', async () => {
    if (!isRoot) throw new Error('needs root');
    ensureBuilt();
    const topo = await createTopology({ backends: 2 });
    let sleeper: ManagedProcess | undefined;
    try {
      await topo.startBackendServers();
      sleeper = topo.spawnIn('c1', ['sh', '-c', 'sleep 300 & sleep 300; wait']);
      // A process started outside the topology's handles, as lb under nsenter might be.
      const stray = await run([...topo.nsenterArgs('b1'), 'sh', '-c', 'setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!']);
      const strayPid = Number(stray.stdout.trim());
      const pids = [...topo.backends.map((b) => b.server!.pid!), sleeper.pid!, strayPid];
      await Promise.all([topo.destroy(), topo.destroy()]);
      await topo.destroy();
      // SIGKILLed orphans are reaped by PID 1 whenever it gets to it: a zombie counts as gone.
      await waitUntil(() => pids.every(gone), { timeoutMs: 5000, what: `processes ${pids.join(', ')} to end` });
      expect(sleeper.running).toBe(false);
      expect((await listNamespaces()).filter((n) => n.startsWith(`${topo.prefix}-`))).toEqual([]);
      expect(() => topo.spawnIn('c1', ['true'])).toThrow(/destroyed/);
    } finally {
      topo.destroySync();
    }
  });

  it('cleans up when the owning process gets SIGTERM', async () => {
    if (!isRoot) throw new Error('needs root');
    ensureBuilt();
    const script = `import(${JSON.stringify(DIST_INDEX)}).then(async (m) => {
      const t = await m.createTopology({ backends: 1 });
      console.log(JSON.stringify({ prefix: t.prefix }));
      setTimeout(() => process.exit(3), 30000);
    });`;
    const child = new ManagedProcess([process.execPath, '-e', script], { label: 'topology owner' });
    let prefix: string | undefined;
    try {
      prefix = JSON.parse((await child.waitForOutput(/\{"prefix":"[^"]+"\}/, 30_000))[0]).prefix as string;
      expect((await listNamespaces()).filter((n) => n.startsWith(`${prefix}-`))).toHaveLength(3);
      process.kill(child.pid!, 'SIGTERM');
      const status = await child.exited;
      expect(status.signal).toBe('SIGTERM');
      expect((await listNamespaces()).filter((n) => n.startsWith(`${prefix}-`))).toEqual([]);
    } finally {
      await child.stop(1000);
      if (prefix) for (const n of await listNamespaces()) if (n.startsWith(`${prefix}-`)) await run(['ip', 'netns', 'del', n], { allowFailure: true });
    }
  });

  it('destroyStale() removes leftovers of dead runs and leaves live runs alone', async () => {
    if (!isRoot) throw new Error('needs root');
    const dead = spawnSync('true');
    const deadPid = dead.pid!;
    const stale = [`lbt${deadPid}qqq-lb`, `lbt${deadPid}qqq-b1`];
    const alive = `lbt${process.pid}qqq-lb`;
    try {
      for (const n of [...stale, alive]) await run(['ip', 'netns', 'add', n]);
      const removed = await destroyStale('lbt');
      expect(removed).toEqual(expect.arrayContaining(stale));
      expect(removed).not.toContain(alive);
      const left = await listNamespaces();
      expect(left).toContain(alive);
      for (const n of stale) expect(left).not.toContain(n);
    } finally {
      for (const n of [...stale, alive]) await run(['ip', 'netns', 'del', n], { allowFailure: true });
    }
  });
});
