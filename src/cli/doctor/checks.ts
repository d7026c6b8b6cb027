// The checks of `lb doctor`, pure: the facts gathered about the host (./facts.ts) and the config
// in, one line per check out, each PASS, WARN or FAIL with what to do about it. docs/cli.md lists
// them and why each matters.

import { choosePath, type LinkInfo, type PathRequest } from '../../core/data-path-choice.js';
import { LB_MAX_FLOWS } from '../../core/abi.js';
import type { LbConfig } from '../../core/config/types.js';
import type { CapName } from '../../dataplane/capabilities.js';
import type { LinkFacts } from '../../dataplane/link-facts.js';
import type { RouteAnswer } from '../../dataplane/route-lookup.js';

export type Status = 'PASS' | 'WARN' | 'FAIL';

export interface Check {
  status: Status;
  /** What was checked: 'ip-forward', 'interface eth0', 'backend 10.0.0.2:8080', ... */
  check: string;
  message: string;
  /** What to do, for WARN and FAIL. */
  fix?: string;
}

export interface HostFacts {
  root: boolean;
  missingCaps: CapName[];
  bpffs: boolean;
  btf: boolean;
  kernel: string;
  /** '0', '1', or null when unreadable. */
  ipForward: string | null;
  /** rp_filter of conf/all and per interface; null when unreadable (no such interface). */
  rpFilter: (ifname: string) => { all: number | null; dev: number | null };
  links: LinkFacts[];
  route: (dst: string) => RouteAnswer | null;
  /** The kernel's nf_conntrack_max, or null when conntrack is not loaded. */
  nfConntrackMax: number | null;
  instance: string;
  /** The instance's pins exist under bpffs. */
  pinned: boolean;
  /** The XDP program on an interface: null for none; owner 'lb' when it is one of lb's programs. */
  xdpProgram: (ifindex: number, ifname: string) => { id: number; name: string; lb: boolean } | null | { error: string };
}

const pass = (check: string, message: string): Check => ({ status: 'PASS', check, message });
const warn = (check: string, message: string, fix: string): Check => ({ status: 'WARN', check, message, fix });
const fail = (check: string, message: string, fix: string): Check => ({ status: 'FAIL', check, message, fix });

export function hostChecks(h: HostFacts): Check[] {
  const out: Check[] = [];
  if (h.root) out.push(pass('privileges', 'running as root'));
  else if (h.missingCaps.length === 0) out.push(pass('privileges', 'CAP_BPF and CAP_NET_ADMIN are effective'));
  else {
    out.push(fail('privileges', `not root, and ${h.missingCaps.map((c) => `CAP_${c}`).join(' and ')} ${h.missingCaps.length === 1 ? 'is' : 'are'} missing: lb cannot load or attach its programs`,
      'run lb as root (sudo lb ...), or give it CAP_BPF and CAP_NET_ADMIN (systemd: AmbientCapabilities=CAP_BPF CAP_NET_ADMIN) with write access to /run/lb and /sys/fs/bpf'));
  }
  out.push(h.bpffs ? pass('bpffs', 'mounted at /sys/fs/bpf')
    : warn('bpffs', '/sys/fs/bpf is not a bpffs: lb mounts it at the first apply, which needs CAP_SYS_ADMIN', 'mount -t bpf bpf /sys/fs/bpf (and in /etc/fstab: bpffs /sys/fs/bpf bpf defaults 0 0)'));
  out.push(h.btf ? pass('btf', '/sys/kernel/btf/vmlinux is present')
    : warn('btf', 'the kernel has no BTF (/sys/kernel/btf/vmlinux): lb does not need it, but bpftool shows the maps without their types', 'a kernel built with CONFIG_DEBUG_INFO_BTF=y'));
  out.push(kernelCheck(h.kernel));
  if (h.ipForward === '1') out.push(pass('ip-forward', 'net.ipv4.ip_forward = 1'));
  else {
    out.push(fail('ip-forward', `net.ipv4.ip_forward = ${h.ipForward ?? 'unreadable'}: packets lb hands to the kernel (TTL expiring, too big, no route) and the backends' replies are not forwarded`,
      'sysctl -w net.ipv4.ip_forward=1, and keep it: echo net.ipv4.ip_forward=1 > /etc/sysctl.d/90-lb.conf'));
  }
  out.push(h.pinned ? pass('instance', `instance ${h.instance} is set up (pinned under /sys/fs/bpf/lb/${h.instance}): lb apply changes it in place`)
    : pass('instance', `instance ${h.instance} is not set up yet: the first lb apply creates it`));
  return out;
}

function kernelCheck(release: string): Check {
  const m = /^(\d+)\.(\d+)/.exec(release);
  const v = m ? Number(m[1]) * 1000 + Number(m[2]) : 0;
  if (v < 5015) return fail('kernel', `kernel ${release}: lb needs 5.15 or later (XDP, TC clsact, bpf_redirect_neigh, batch map operations)`, 'upgrade the kernel to 5.15 or later');
  if (v < 6003) return warn('kernel', `kernel ${release}: it does not report xdp_features (6.3 or later does), so listen.mode auto runs the TC path everywhere`, 'a 6.3 or later kernel for native XDP under auto, or listen.mode: xdp where you know the driver');
  return pass('kernel', `kernel ${release}`);
}

const toLinkInfo = (links: readonly LinkFacts[]): LinkInfo[] => links.map((l) => ({
  name: l.name, kind: l.kind, master: l.master === null ? null : { kind: l.master.kind }, up: l.up,
  xdp: l.xdp === null ? null : { basic: l.xdp.basic, redirect: l.xdp.redirect, ndoXmit: l.xdp.ndoXmit },
}));

/** The interfaces the config listens on, each with the path requested for it and the proxies on it. */
function listenInterfaces(config: LbConfig): Map<string, { mode: PathRequest; proxies: string[] }> {
  const out = new Map<string, { mode: PathRequest; proxies: string[] }>();
  for (const p of config.proxies) {
    for (const i of p.listen.interfaces) {
      const e = out.get(i) ?? { mode: 'auto' as PathRequest, proxies: [] };
      if (e.mode === 'auto') e.mode = p.listen.mode;
      e.proxies.push(p.name);
      out.set(i, e);
    }
  }
  return out;
}

interface Backend { id: string; ip: string | null; proxy: string }

function backends(config: LbConfig): Backend[] {
  const seen = new Map<string, Backend>();
  for (const p of config.proxies) {
    for (const g of [p.defaultTarget, ...p.sourceRoutes.map((r) => r.targets), ...p.sniRoutes.map((r) => r.targets)]) {
      for (const t of g.targets) if (!seen.has(t.id)) seen.set(t.id, { id: t.id, ip: t.kind === 'ip' ? t.ip : null, proxy: p.name });
    }
  }
  return [...seen.values()];
}

const RP_NAMES = ['off', 'strict', 'loose'];

export function configChecks(h: HostFacts, config: LbConfig): Check[] {
  const out: Check[] = [];
  const infos = toLinkInfo(h.links);
  const byName = new Map(h.links.map((l) => [l.name, l]));
  const byIndex = new Map(h.links.map((l) => [l.ifindex, l]));
  const listen = listenInterfaces(config);
  const egress = new Set<string>();
  const blockedReported = new Set<string>();

  for (const [ifname, { mode, proxies }] of listen) {
    const link = byName.get(ifname);
    const where = `proxy ${proxies.join(', ')}`;
    if (!link) {
      out.push(fail(`interface ${ifname}`, `${ifname} (${where}) does not exist in this network namespace`, `create ${ifname}, or correct listen.interfaces of ${where}`));
      continue;
    }
    out.push(link.up ? pass(`interface ${ifname}`, `${ifname} exists (${link.kind ?? 'physical NIC'}${link.master ? `, port of a ${link.master.kind ?? 'master'}` : ''}) and is up`)
      : warn(`interface ${ifname}`, `${ifname} exists but is down: it receives nothing`, `ip link set ${ifname} up`));
    const features = link.xdp === null ? 'unknown (the kernel reports xdp_features from 6.3)'
      : `${link.xdp.basic && link.xdp.redirect ? 'yes' : 'no'} (xdp_features: ${xdpNames(link.xdp.raw)})`;
    out.push(pass(`xdp ${ifname}`, `native XDP: ${features}`));
    const auto = choosePath('auto', ifname, infos);
    if (mode === 'auto') out.push(pass(`path ${ifname}`, `listen.mode auto chooses ${auto.path.toUpperCase()}: ${auto.reason}`));
    else if (mode === 'tc' || auto.path === 'xdp') out.push(pass(`path ${ifname}`, `listen.mode ${mode}${mode === 'xdp' ? ' (auto would choose XDP too)' : ''}`));
    else if (/cannot transmit XDP frames/.test(auto.reason)) {
      out.push(fail(`path ${ifname}`, `listen.mode xdp on ${ifname}, but ${auto.reason}: flows forwarded there black-hole`, `listen.mode: auto (lb then runs the TC path on ${ifname}), or tc`));
    } else {
      out.push(warn(`path ${ifname}`, `listen.mode xdp on ${ifname}, where auto would not: ${auto.reason}`, 'listen.mode: auto, unless you know this driver handles it'));
    }
    const attached = h.xdpProgram(link.ifindex, ifname);
    if (attached !== null && 'error' in attached) out.push(warn(`attached ${ifname}`, `cannot tell which XDP program runs on ${ifname}: ${attached.error}`, 'run lb doctor as root'));
    else if (attached !== null && !attached.lb) {
      out.push(fail(`attached ${ifname}`, `${ifname} runs another XDP program (id ${attached.id}, ${attached.name || 'unnamed'}); lb does not replace it`, `detach it (ip link set dev ${ifname} xdp off), or listen elsewhere`));
    } else if (attached !== null) out.push(pass(`attached ${ifname}`, `lb's XDP program (id ${attached.id}) runs on ${ifname}`));
  }

  for (const b of backends(config)) {
    const name = `backend ${b.id}`;
    if (b.ip === null) {
      out.push(warn(name, `a DNS target (proxy ${b.proxy}): its addresses are known only at run time, so its route is not checked here`, `check each address it resolves to with: ip route get ADDRESS`));
      continue;
    }
    const r = h.route(b.ip);
    if (r === null || r.type === 'unreachable' || r.type === 'blackhole' || r.type === 'prohibit') {
      out.push(fail(name, `no route to ${b.ip} (proxy ${b.proxy})${r ? `: the route is ${r.type}` : ''}: flows sent there are dropped`, `add a route to ${b.ip} on a network of this host, or correct the target`));
      continue;
    }
    if (r.type === 'local') {
      out.push(pass(name, `${b.ip} is an address of this host (a local target): its replies stay on this host`));
      continue;
    }
    const dev = r.oif === null ? undefined : byIndex.get(r.oif);
    if (dev) egress.add(dev.name);
    if (r.gateway !== null) {
      out.push(fail(name, `${b.ip} is reached through the router ${r.gateway}${dev ? ` on ${dev.name}` : ''}: lb rewrites only the destination, so its replies go to the clients by its own route, which does not pass this host unless that router sends them here`,
        `put ${b.ip} on a network of this host and make this host (${r.prefsrc ?? 'its address there'}) its default gateway, or route the client networks on ${r.gateway} back through this host`));
      continue;
    }
    out.push(pass(name, `${b.ip} is on a network of this host (${dev?.name ?? `ifindex ${r.oif}`}): its replies come back here when its default route (or a policy route) is ${r.prefsrc ?? 'this host'}`));
    const blocked = dev && !blockedReported.has(dev.name) && [...listen].some(([i, l]) => l.mode === 'xdp' && i !== dev.name && !(dev.xdp?.ndoXmit ?? false));
    if (blocked && dev) {
      blockedReported.add(dev.name);
      out.push(fail(`egress ${dev.name}`, `flows to ${b.ip} leave by ${dev.name} (${dev.kind ?? 'physical NIC'}), which cannot transmit XDP frames, while listen.mode is xdp: the kernel drops those redirects`, 'listen.mode: auto (lb then runs the TC path), or tc'));
    }
  }

  const clientNets = [...new Set(config.proxies.flatMap((p) => p.sourceRoutes.map((r) => r.prefix)))];
  for (const prefix of clientNets) {
    // A client's address: skip this host's own ones (the prefix may hold its address, often .1).
    const candidates = clientAddresses(prefix).map((a) => h.route(a));
    const r = candidates.find((x) => x === null || (x.type !== 'local' && x.type !== 'broadcast')) ?? candidates[0] ?? null;
    if (r === null || r.type === 'unreachable' || r.type === 'blackhole' || r.type === 'prohibit') {
      out.push(fail(`clients ${prefix}`, `no route back to the clients of source route ${prefix}: the replies to them are dropped here`, `add a route to ${prefix}`));
    } else out.push(pass(`clients ${prefix}`, `replies to ${prefix} leave by ${byIndex.get(r.oif ?? -1)?.name ?? 'this host'}${r.gateway ? ` via ${r.gateway}` : ''}`));
  }

  for (const ifname of [...new Set([...listen.keys(), ...egress])].filter((i) => byName.has(i))) {
    const { all, dev } = h.rpFilter(ifname);
    const effective = Math.max(all ?? 0, dev ?? 0);
    if (effective === 1) {
      out.push(warn(`rp-filter ${ifname}`, `strict reverse-path filtering on ${ifname} (net.ipv4.conf.{all,${ifname}}.rp_filter): packets whose way back leaves by another interface are dropped (asymmetric routes, clients behind another link)`,
        `sysctl -w net.ipv4.conf.${ifname}.rp_filter=2 and net.ipv4.conf.all.rp_filter=2 (loose)`));
    } else out.push(pass(`rp-filter ${ifname}`, `rp_filter ${RP_NAMES[effective] ?? effective}`));
  }

  const capacity = LB_MAX_FLOWS / 2;
  const max = config.settings.maxConnections;
  out.push(max <= capacity ? pass('flow-table', `max-connections ${max} fits lb's flow table (${capacity} flows)`)
    : warn('flow-table', `max-connections ${max} exceeds lb's flow table (${capacity} flows): beyond it the least recently used flows are evicted`, `settings.max-connections: ${capacity} or less`));
  if (h.nfConntrackMax !== null && h.nfConntrackMax < max) {
    out.push(warn('nf-conntrack', `the kernel's connection tracking holds ${h.nfConntrackMax} entries (net.netfilter.nf_conntrack_max), fewer than max-connections ${max}: forwarded replies and flows on the TC path may be dropped when it is full`,
      `sysctl -w net.netfilter.nf_conntrack_max=${max}`));
  } else if (h.nfConntrackMax !== null) out.push(pass('nf-conntrack', `nf_conntrack_max ${h.nfConntrackMax} >= max-connections ${max}`));
  return out;
}

/** A few addresses of a client prefix to look the way back up for: the first two hosts and the last. */
function clientAddresses(prefix: string): string[] {
  const [net, lenText] = prefix.split('/');
  const len = Number(lenText ?? 32);
  const base = net!.split('.').reduce((acc, p) => acc * 256 + Number(p), 0);
  if (len >= 31) return [net!];
  const size = 2 ** (32 - len);
  const text = (n: number): string => [24, 16, 8, 0].map((sh) => Math.floor(n / 2 ** sh) % 256).join('.');
  return [...new Set([base + 1, base + 2, base + size - 2])].map(text);
}

const XDP_BITS: Array<[bigint, string]> = [[1n, 'basic'], [2n, 'redirect'], [4n, 'ndo-xmit'], [8n, 'xsk-zerocopy'], [16n, 'hw-offload'], [32n, 'rx-sg'], [64n, 'ndo-xmit-sg']];
function xdpNames(raw: bigint): string {
  const names = XDP_BITS.filter(([bit]) => (raw & bit) !== 0n).map(([, n]) => n);
  return names.length > 0 ? names.join(' ') : 'none';
}
