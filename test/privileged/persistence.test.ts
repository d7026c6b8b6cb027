// Session persistence through the real program: a persistent listener compiled by encodeState (so
// its group gets a Maglev table in lb_maglev), 50 client addresses, one SYN each through
// lb_xdp_ingress with BPF_PROG_TEST_RUN. Then, for each backend in turn, that backend fails
// (weight 0, a new generation), recovers at 25%, and recovers fully. The clients of the other backends must keep
// their backends throughout; the failed backend's clients move away and, on full recovery, come
// back exactly. Every answer must be the one the TS table predicts. Behaviour: docs/dataplane.md,
// "Session persistence".
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeState } from '../../src/core/compile/encode.js';
import { chooseTarget, flowHash } from '../../src/core/flow-hash.js';
import { LB_LF_PERSIST, installConfig, ipv4ToU32, type GroupTarget } from '../../src/dataplane/index.js';
import type { LogicalState, LogicalTarget } from '../../src/core/state.js';
import {
  XDP_PASS, clearFlows, closeHarness, openHarness, predictMaglev, tcpSpec, type Endpoint, type Harness,
} from '../lib/fixture-harness.js';
import { TCP_SYN, buildFrame } from '../lib/packet.js';

const VIP: Endpoint = { addr: '10.100.0.1', port: 80 };
const BACKENDS = ['10.0.10.1', '10.0.10.2', '10.0.10.3', '10.0.10.4', '10.0.10.5'];
const CLIENTS = Array.from({ length: 50 }, (_, i) => `172.20.${1 + (i >> 4)}.${1 + ((i * 37) % 250)}`);

function state(weights: Record<string, number>): LogicalState {
  const targets: LogicalTarget[] = BACKENDS.map((addr) => ({ addr, port: 8080, weight: weights[addr] ?? 100 }));
  return {
    interfaces: ['lo'],
    settings: { tcpIdleSec: 300, udpIdleSec: 60, tcpFinSec: 10 },
    listeners: [{ iface: 'lo', vip: VIP.addr, port: VIP.port, proto: 'tcp', proxy: 'web', persist: true, defaultTargets: targets, sourceRoutes: [] }],
  };
}

const ids = new Map<string, number>();
/** encodeState for lo, keeping target ids across generations as the apply does. */
function compile(weights: Record<string, number>): { targets: GroupTarget[]; generation: ReturnType<typeof encodeState>['generation'] } {
  const { generation, targetIds } = encodeState(state(weights), { ifindex: (n) => (n === 'lo' ? 1 : undefined), liveTargetIds: ids });
  for (const [k, v] of targetIds) ids.set(k, v);
  return { targets: generation.groups[0]!.group.targets, generation };
}

let h: Harness | undefined;
beforeAll(() => { h = openHarness('persist'); });
afterAll(() => { closeHarness(h); });

let nextPort = 20000;
/** Where each client's new connection (a fresh source port) goes now: backend address per client. */
function answers(targets: GroupTarget[]): string[] {
  const dp = h!.dp;
  clearFlows(dp);
  return CLIENTS.map((client) => {
    const res = dp.testRun('xdp', buildFrame(tcpSpec({ addr: client, port: nextPort++ }, VIP, TCP_SYN)), { ifindex: 1 });
    expect(res.retval, `${client}: verdict`).toBe(XDP_PASS);
    const dst = `${res.data[30]}.${res.data[31]}.${res.data[32]}.${res.data[33]}`;
    expect(dst, `${client}: the backend the TS Maglev table predicts`).toBe(predictMaglev(targets, client)!.addr);
    return dst;
  });
}

describe('session persistence with Maglev tables (50 clients, 5 backends)', () => {
  const full = compile({});
  let before: string[] = [];

  it('compiles a Maglev table for the persistent group; every backend gets clients', () => {
    expect(full.generation.maglev?.map((m) => m.group)).toEqual([0]);
    expect(full.generation.listeners[0]!.value.flags & LB_LF_PERSIST).toBe(LB_LF_PERSIST);
    installConfig(h!.dp, full.generation);
    before = answers(full.targets);
    // Every backend has clients, so each "another backend" below really has some to move.
    expect(new Set(before).size).toBe(BACKENDS.length);
  });

  for (const victim of BACKENDS) {
    it(`${victim} fails, ramps back at 25% and recovers: only its own clients move, and they come back`, () => {
      const dp = h!.dp;
      const own = CLIENTS.filter((_, i) => before[i] === victim);
      const others = CLIENTS.filter((_, i) => before[i] !== victim);
      expect(own.length).toBeGreaterThan(0);

      const failed = compile({ [victim]: 0 });
      installConfig(dp, failed.generation);
      const during = answers(failed.targets);
      const movedOthers = others.filter((c) => during[CLIENTS.indexOf(c)] !== before[CLIENTS.indexOf(c)]);
      expect(movedOthers, 'clients of the other backends that moved when one failed').toEqual([]);
      for (const c of own) expect(during[CLIENTS.indexOf(c)], `${c} left the failed backend`).not.toBe(victim);

      // Gradual recovery (25%): clients move onto the recovering backend, plus Maglev's small
      // epsilon (<= 1.5% of the slots; docs/dataplane.md): at most one of the 50 elsewhere.
      const ramp = compile({ [victim]: 25 });
      installConfig(dp, ramp.generation);
      const ramped = answers(ramp.targets);
      const movedElsewhere = CLIENTS.filter((c, i) => ramped[i] !== during[i] && ramped[i] !== victim);
      expect(movedElsewhere.length, `clients that moved to a backend other than the recovering one: ${movedElsewhere.join(', ')}`).toBeLessThanOrEqual(1);
      expect(CLIENTS.filter((c, i) => ramped[i] === victim).length, 'the recovering backend gets clients back').toBeGreaterThan(0);

      // Full recovery: the table is a function of the backends and weights, so everyone is home.
      installConfig(dp, full.generation);
      expect(answers(full.targets)).toEqual(before);

      // Why Maglev: the cumulative choice over the same client-address hash moves many of the others.
      const cumulative = (targets: GroupTarget[], c: string): number =>
        chooseTarget(flowHash({ saddr: ipv4ToU32(c), daddr: 0, sport: 0, dport: 0, proto: 0 }, true), targets.map((t) => t.weight));
      const cumulativeMoved = others.filter((c) => cumulative(full.targets, c) !== cumulative(failed.targets, c));
      console.log(`persistence: ${victim} failed: its ${own.length} clients moved; of the other ${others.length}, ` +
        `Maglev moved ${movedOthers.length}, the cumulative choice would have moved ${cumulativeMoved.length}`);
      expect(cumulativeMoved.length).toBeGreaterThan(0);
    });
  }
});
