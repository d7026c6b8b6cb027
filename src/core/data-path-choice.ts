// Which ingress path an interface runs: native XDP or TC (skb). Pure: facts about the host's links
// in, a path and the reason for it out. docs/dataplane.md ("Two paths") explains the rule.
//
// XDP is fastest but only safe where the driver runs it natively and every device a redirect may
// target can transmit XDP frames: on virtual devices XDP sees frames with offloaded (partial)
// checksums that an in-place rewrite corrupts, and a redirect into a device without
// ndo_xdp_xmit (a bridge, a veth whose peer has no NAPI) is dropped by the kernel. The TC path
// rewrites through the skb helpers and forwards with bpf_redirect_neigh: it works on every device.

export type DataPath = 'xdp' | 'tc';
/** listen.mode in the config. */
export type PathRequest = 'auto' | DataPath;
export const PATH_REQUESTS: readonly PathRequest[] = ['auto', 'xdp', 'tc'];

/** The facts the choice needs about one link (src/dataplane/link-facts.ts reads them from the kernel). */
export interface LinkInfo {
  name: string;
  /** rtnetlink IFLA_INFO_KIND ('veth', 'bridge', 'vlan', 'bond', 'tun', ...); null for a physical NIC. */
  kind: string | null;
  /** The master's kind when the link is a port of a bridge or bond. */
  master: { kind: string | null } | null;
  up: boolean;
  /** xdp_features of the driver; null when the kernel does not report them (before 6.3). */
  xdp: { basic: boolean; redirect: boolean; ndoXmit: boolean } | null;
}

export interface PathChoice {
  path: DataPath;
  /** One sentence for plan, show, status and metrics. */
  reason: string;
}

/**
 * The path for `ifname`. An explicit request is followed (the operator knows the host); auto picks
 * XDP only when it cannot black-hole: a physical NIC whose driver does XDP natively (basic and
 * redirect), on a kernel that says so, with every other up link able to transmit XDP frames.
 */
export function choosePath(request: PathRequest, ifname: string, links: readonly LinkInfo[]): PathChoice {
  if (request !== 'auto') return { path: request, reason: `listen.mode: ${request} in the config` };
  const link = links.find((l) => l.name === ifname);
  if (link === undefined) return { path: 'tc', reason: `${ifname} does not exist yet; the TC path works on any device` };
  if (link.kind !== null) return { path: 'tc', reason: `${ifname} is a virtual interface (${link.kind}): XDP there sees offloaded checksums and redirects it cannot deliver` };
  if (link.master !== null) return { path: 'tc', reason: `${ifname} is a port of a ${link.master.kind ?? 'master device'}` };
  if (link.xdp === null) return { path: 'tc', reason: 'this kernel does not report XDP features (6.3 or later does); the TC path is safe on any driver' };
  if (!link.xdp.basic || !link.xdp.redirect) return { path: 'tc', reason: `the driver of ${ifname} has no native XDP redirect` };
  const blocked = links.filter((l) => l.name !== ifname && l.name !== 'lo' && l.up && !(l.xdp?.ndoXmit ?? false)).map((l) => l.name);
  if (blocked.length > 0) {
    return { path: 'tc', reason: `${blocked.slice(0, 3).join(', ')}${blocked.length > 3 ? ` and ${blocked.length - 3} more` : ''} cannot transmit XDP frames (no ndo_xdp_xmit): redirects there would be dropped` };
  }
  return { path: 'xdp', reason: `${ifname} runs native XDP and every egress device can transmit XDP frames` };
}
