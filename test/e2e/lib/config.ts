// The e2e configuration (one TCP and one UDP listener on the VIP, on every client-facing veth, and
// a source route for client 2's subnet) and the predictions of where a flow goes, from the TS
// mirror of the data plane's hash.
import type { AgentConfig } from '../../../src/dataplane/agent.js';
import { IPPROTO_TCP, IPPROTO_UDP, LB_LF_SRC_ROUTES, ipv4ToU32 } from '../../../src/core/abi.js';
import { chooseTarget, flowHash } from '../../../src/core/flow-hash.js';
import { VIP, type Topology } from '../../../src/sandbox/index.js';

export const TCP_PORT = 80;
export const UDP_PORT = 53;
export const TCP_LISTENER = 1;
export const UDP_LISTENER = 2;
export const TCP_GROUP = 1;
export const UDP_GROUP = 2;
export const ROUTE_GROUP = 3;
/** Client 2's subnet: its source route sends it to backend 3 alone. */
export const ROUTED_SUBNET = { addr: '10.201.2.0', prefixLen: 24 };
export const ROUTED_BACKEND = 3;

/** lb_tstats slot of backend j (1-based) for TCP; UDP targets use 3 + j. */
export const tcpTargetId = (j: number): number => j;
export const udpTargetId = (j: number): number => 3 + j;

/** The agent's config for `topo` with these default-group weights (one per backend, TCP and UDP alike). */
export function e2eConfig(topo: Topology, weights: readonly number[]): AgentConfig {
  const targets = (port: number, id: (j: number) => number): AgentConfig['groups'][number]['targets'] =>
    topo.backends.map((b, k) => ({ addr: b.address, port, weight: weights[k] ?? 0, targetId: id(b.index) }));
  const routed = topo.backends[ROUTED_BACKEND - 1]!;
  const ifnames = topo.clients.map((c) => c.lbIface.name);
  return {
    interfaces: ifnames,
    listeners: ifnames.flatMap((ifname) => [
      { ifname, vip: topo.vip, port: TCP_PORT, proto: IPPROTO_TCP, listenerId: TCP_LISTENER, defaultGroup: TCP_GROUP, flags: LB_LF_SRC_ROUTES },
      { ifname, vip: topo.vip, port: UDP_PORT, proto: IPPROTO_UDP, listenerId: UDP_LISTENER, defaultGroup: UDP_GROUP, flags: 0 },
    ]),
    groups: [
      { id: TCP_GROUP, targets: targets(8080, tcpTargetId) },
      { id: UDP_GROUP, targets: targets(9000, udpTargetId) },
      { id: ROUTE_GROUP, targets: [{ addr: routed.address, port: 8080, weight: 1, targetId: tcpTargetId(ROUTED_BACKEND) }] },
    ],
    srcRoutes: [{ listenerId: TCP_LISTENER, ...ROUTED_SUBNET, group: ROUTE_GROUP }],
  };
}

/**
 * An lb.yaml for the CLI and the daemon: proxy `web` on veth-c1, port 80 of the VIP, default
 * target backend j at 10.202.j.2:8080 with weights[j - 1] (a string makes a deliberately bad config).
 */
/**
 * The proxy `web` on VIP:80 over the sandbox's backends with these weights; `interfaces` it listens
 * on (default veth-c1) and `settings`, extra lines under settings: (each indented two spaces).
 */
export function webProxyYaml(weights: ReadonlyArray<number | string>, opts: { interfaces?: readonly string[]; settings?: readonly string[] } = {}): string {
  return `proxies:
  - name: web
    listen: {interfaces: [${(opts.interfaces ?? ['veth-c1']).join(', ')}], port: 80, address: ${VIP}}
    default-target:
${weights.map((w, i) => `      - {ip: 10.202.${i + 1}.2, port: 8080, weight: ${w}}`).join('\n')}
settings:
  connection-timeout-sec: 60
${(opts.settings ?? []).map((l) => `  ${l}\n`).join('')}`;
}

/** The backend name the data plane picks for a new TCP flow client:sport -> VIP:80 over `weights`. */
export function predictTcp(topo: Topology, clientAddr: string, sport: number, weights: readonly number[]): string {
  return topo.backends[predictTcpChoice({ vip: topo.vip, port: TCP_PORT }, clientAddr, sport, weights)]!.name;
}

/** The index (config order) of the target the flow hash picks for a new TCP connection from clientAddr:sport to the listener. */
export function predictTcpChoice(listener: { vip: string; port: number }, clientAddr: string, sport: number, weights: readonly number[]): number {
  return chooseTarget(flowHash({ saddr: ipv4ToU32(clientAddr), daddr: ipv4ToU32(listener.vip), sport, dport: listener.port, proto: IPPROTO_TCP }), weights);
}

export const range = (from: number, count: number): number[] => Array.from({ length: count }, (_, i) => from + i);
