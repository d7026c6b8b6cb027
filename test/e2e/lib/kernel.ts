// What the kernel says is attached, read with iproute2 independently of the loader's own queries.
import { execFileSync } from 'node:child_process';

const XDP_MODES: Record<number, 'native' | 'generic' | 'offload'> = { 1: 'native', 2: 'generic', 3: 'offload' };

function json(cmd: string, args: string[]): unknown[] {
  const out = execFileSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  return JSON.parse(out.trim() === '' ? '[]' : out) as unknown[];
}

/** The XDP program on an interface of namespace `ns` and its mode (`ip -d link`), or undefined. */
export function xdpAttached(ns: string, ifname: string): { mode: string; progId: number } | undefined {
  const [link] = json('ip', ['-n', ns, '-j', '-d', 'link', 'show', 'dev', ifname]) as Array<{ xdp?: { mode: number; prog?: { id: number } } }>;
  const xdp = link?.xdp;
  return xdp?.prog ? { mode: XDP_MODES[xdp.mode] ?? String(xdp.mode), progId: xdp.prog.id } : undefined;
}

/** Ids of the BPF programs among the TC filters of one clsact hook of an interface of namespace `ns`. */
export function tcProgIds(ns: string, ifname: string, hook: 'ingress' | 'egress'): number[] {
  const filters = json('tc', ['-n', ns, '-j', 'filter', 'show', 'dev', ifname, hook]) as Array<{ options?: { prog?: { id: number } } }>;
  return filters.flatMap((f) => (f.options?.prog ? [f.options.prog.id] : []));
}

export function tcEgressProgIds(ns: string, ifname: string): number[] {
  return tcProgIds(ns, ifname, 'egress');
}

/** Which of lb's ingress paths runs on an interface, as iproute2 sees it: 'xdp', 'tc', or null. */
export function ingressPathSeen(ns: string, ifname: string, progs: { xdp: number; tcIngress: number }): 'xdp' | 'tc' | null {
  const xdp = xdpAttached(ns, ifname)?.progId === progs.xdp;
  const tc = tcProgIds(ns, ifname, 'ingress').includes(progs.tcIngress);
  if (xdp && tc) throw new Error(`${ifname} runs both ingress paths`);
  return xdp ? 'xdp' : tc ? 'tc' : null;
}
