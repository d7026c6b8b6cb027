// What `lb doctor` reads from the host: capabilities, mounts, sysctls of the current network
// namespace (/proc/sys/net shows the reader's namespace), links and routes over netlink, and the
// XDP programs on the config's interfaces. Reads only; each read that is refused or missing is
// reported as unknown by the checks rather than ending the run.

import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { xdpQuery } from '../../dataplane/attach.js';
import { isBpffs, BPFFS_ROOT, instanceDir } from '../../dataplane/bpffs.js';
import { VMLINUX_BTF } from '../../dataplane/bpf-features.js';
import { effectiveCapabilities, missingCapabilities } from '../../dataplane/capabilities.js';
import { progInfoById } from '../../dataplane/libbpf.js';
import { linkFacts } from '../../dataplane/link-facts.js';
import { routeGet } from '../../dataplane/route-lookup.js';
import type { HostFacts } from './checks.js';

function readSysctl(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

function readInt(path: string): number | null {
  const s = readSysctl(path);
  return s === null || !/^\d+$/.test(s) ? null : Number(s);
}

/** lb's programs are named after its entry points in bpf/*.bpf.c (lb_xdp_ingress, ...). */
const LB_PROGRAM = /^lb_/;

export function gatherFacts(instance: string): HostFacts {
  const routes = new Map<string, ReturnType<typeof routeGet>>();
  return {
    root: process.geteuid?.() === 0,
    missingCaps: missingCapabilities(effectiveCapabilities()),
    bpffs: isBpffs(BPFFS_ROOT),
    btf: existsSync(VMLINUX_BTF),
    kernel: release(),
    ipForward: readSysctl('/proc/sys/net/ipv4/ip_forward'),
    rpFilter: (ifname) => ({
      all: readInt('/proc/sys/net/ipv4/conf/all/rp_filter'),
      dev: /^[^/]+$/.test(ifname) ? readInt(`/proc/sys/net/ipv4/conf/${ifname}/rp_filter`) : null,
    }),
    links: linkFacts(),
    route: (dst) => {
      if (!routes.has(dst)) routes.set(dst, routeGet(dst));
      return routes.get(dst)!;
    },
    nfConntrackMax: readInt('/proc/sys/net/netfilter/nf_conntrack_max'),
    instance,
    pinned: existsSync(instanceDir(instance)),
    xdpProgram: (ifindex, ifname) => {
      try {
        const q = xdpQuery(ifindex, ifname);
        const id = q.drv || q.skb || q.hw;
        if (id === 0) return null;
        const info = progInfoById(id);
        const name = info?.name ?? '';
        return { id, name, lb: LB_PROGRAM.test(name) };
      } catch (err) {
        return { error: (err as Error).message.split('\n')[0]! };
      }
    },
  };
}
