import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileConfig } from '../../../src/core/compile/compile.js';
import { checkMaglevTables, decodeGeneration } from '../../../src/core/compile/decode.js';
import { encodeState, maglevTable, MAX_SRC_ROUTES_PER_GENERATION } from '../../../src/core/compile/encode.js';
import { loadConfig } from '../../../src/source/load-config.js';
import {
  IPPROTO_TCP, IPPROTO_UDP, LB_LF_PERSIST, LB_LF_SRC_ROUTES, LB_MAGLEV_SIZE, LB_MAX_LISTENERS, LB_MAX_MAGLEV_GROUPS, LB_MAX_TARGET_IDS,
} from '../../../src/core/abi.js';
import { decodeGeneration as decodeRaw, encodeGeneration, type EncodedGeneration, type GenerationConfig } from '../../../src/core/generation.js';
import { isLbError } from '../../../src/core/errors.js';
import { buildMaglevTable } from '../../../src/core/maglev.js';
import { listenerKey, type LogicalListener, type LogicalState, type LogicalTarget } from '../../../src/core/state.js';
import { PLANS_DIR, configPath, ifindex, ifname, planCases, roundTrip } from '../plan/golden-support.js';

const SETTINGS = { tcpIdleSec: 300, udpIdleSec: 60, tcpFinSec: 10 };

function listener(over: Partial<LogicalListener> & Pick<LogicalListener, 'iface' | 'port'>): LogicalListener {
  return { vip: '0.0.0.0', proto: 'tcp', proxy: 'p', persist: false, defaultTargets: [], sourceRoutes: [], ...over };
}

function state(listeners: LogicalListener[]): LogicalState {
  const sorted = [...listeners].sort((a, b) => (listenerKey(a) < listenerKey(b) ? -1 : 1));
  return { interfaces: [...new Set(listeners.map((l) => l.iface))].sort(), settings: SETTINGS, listeners: sorted };
}

const env = (live: Array<[string, number]> = []) => ({ ifindex, liveTargetIds: new Map(live) });

describe('encodeState', () => {
  const s = state([
    listener({
      iface: 'eth1', port: 80, persist: true,
      defaultTargets: [{ addr: '10.0.0.1', port: 80, weight: 3 }, { addr: '10.0.0.2', port: 80, weight: 1 }],
      sourceRoutes: [
        { prefix: '10.0.0.0/8', targets: [{ addr: '10.0.0.2', port: 80, weight: 5 }] },
        { prefix: '192.168.1.0/24', targets: [{ addr: '10.0.0.3', port: 80, weight: 5 }] },
      ],
    }),
    listener({ iface: 'eth0', port: 53, proto: 'udp', vip: '192.0.2.1', defaultTargets: [{ addr: '10.0.0.1', port: 53, weight: 1 }] }),
  ]);

  it('numbers listeners and groups in sorted order and sets the listener flags', () => {
    const { generation } = encodeState(s, env());
    expect(generation.settings).toEqual({ ...SETTINGS, flags: 0 });
    expect(generation.listeners).toEqual([
      { key: { ifindex: 2, vip: '192.0.2.1', port: 53, proto: IPPROTO_UDP }, value: { listenerId: 0, defaultGroup: 0, flags: 0 } },
      { key: { ifindex: 3, vip: '0.0.0.0', port: 80, proto: IPPROTO_TCP }, value: { listenerId: 1, defaultGroup: 1, flags: LB_LF_SRC_ROUTES | LB_LF_PERSIST } },
    ]);
    expect(generation.srcRoutes).toEqual([
      { listenerId: 1, addr: '10.0.0.0', prefixLen: 8, group: 2 },
      { listenerId: 1, addr: '192.168.1.0', prefixLen: 24, group: 3 },
    ]);
    expect(generation.groups.map((g) => g.id)).toEqual([0, 1, 2, 3]);
  });

  it('gives one target id per backend across groups, lowest first', () => {
    const { generation, targetIds } = encodeState(s, env());
    expect([...targetIds]).toEqual([['10.0.0.1:53', 0], ['10.0.0.1:80', 1], ['10.0.0.2:80', 2], ['10.0.0.3:80', 3]]);
    const ids = generation.groups.map((g) => g.group.targets.map((t) => t.targetId));
    expect(ids).toEqual([[0], [1, 2], [2], [3]]);
  });

  it('keeps the live ids and never hands out an id a live backend holds', () => {
    // 10.0.0.2:80 is live as id 0; 10.9.9.9:1 is live (being removed) as id 1: new backends get 2, 3, 4.
    const { targetIds } = encodeState(s, env([['10.0.0.2:80', 0], ['10.9.9.9:1', 1]]));
    expect(Object.fromEntries(targetIds)).toEqual({ '10.0.0.2:80': 0, '10.0.0.1:53': 2, '10.0.0.1:80': 3, '10.0.0.3:80': 4 });
  });

  it('reuses a removed backend\'s id only when no other id is free', () => {
    const live = Array.from({ length: LB_MAX_TARGET_IDS - 1 }, (_, i) => [`10.200.${i >> 8}.${i & 255}:1`, i] as [string, number]);
    const { targetIds } = encodeState(s, env(live));
    expect([...targetIds.values()].sort((a, b) => a - b)).toEqual([0, 1, 2, LB_MAX_TARGET_IDS - 1]);
  });

  it('rejects an unknown interface with LB_COMPILE_IFACE', () => {
    const bad = state([listener({ iface: 'wlan9', port: 80 })]);
    try {
      encodeState(bad, env());
      expect.unreachable();
    } catch (err) {
      expect(isLbError(err, 'LB_COMPILE_IFACE')).toBe(true);
      expect((err as Error).message).toContain('wlan9');
      expect((err as { data: unknown }).data).toEqual({ interfaces: ['wlan9'] });
    }
  });

  it('rejects a state over the data plane capacities with LB_COMPILE_LIMIT', () => {
    const many = Array.from({ length: LB_MAX_LISTENERS + 1 }, (_, i) => listener({ iface: 'eth0', port: i + 1 }));
    expect(() => encodeState(state(many), env())).toThrow(expect.objectContaining({ code: 'LB_COMPILE_LIMIT' }));
    const routes = Array.from({ length: MAX_SRC_ROUTES_PER_GENERATION + 1 }, (_, i) => ({ prefix: `10.${i >> 8}.${i & 255}.0/24`, targets: [] }));
    expect(() => encodeState(state([listener({ iface: 'eth0', port: 1, sourceRoutes: routes })]), env())).toThrow(expect.objectContaining({ code: 'LB_COMPILE_LIMIT' }));
  });
});

describe('decodeGeneration', () => {
  const gen: GenerationConfig = {
    settings: { tcpIdleSec: 1, udpIdleSec: 2, tcpFinSec: 3, flags: 0 },
    listeners: [
      { key: { ifindex: 42, vip: '0.0.0.0', port: 80, proto: IPPROTO_TCP }, value: { listenerId: 7, defaultGroup: 9, flags: LB_LF_PERSIST } },
      { key: { ifindex: 2, vip: '0.0.0.0', port: 81, proto: IPPROTO_TCP }, value: { listenerId: 8, defaultGroup: 1, flags: LB_LF_SRC_ROUTES } },
    ],
    groups: [{ id: 1, group: { targets: [{ addr: '10.0.0.1', port: 80, weight: 4, targetId: 5 }] } }],
    srcRoutes: [
      { listenerId: 7, addr: '10.0.0.0', prefixLen: 8, group: 1 },
      { listenerId: 8, addr: '192.168.0.0', prefixLen: 16, group: 1 },
      { listenerId: 8, addr: '10.0.0.0', prefixLen: 8, group: 77 },
    ],
  };
  const live = decodeGeneration(gen, { ifname, proxyOf: (k) => (k === 'eth0|0.0.0.0|81|tcp' ? 'web' : null), interfaces: ['eth1', 'eth0'] });

  it('names interfaces, shows an unnamed ifindex as if#N, and sorts', () => {
    expect(live.interfaces).toEqual(['eth0', 'eth1']);
    expect(live.listeners.map(listenerKey)).toEqual(['eth0|0.0.0.0|81|tcp', 'if#42|0.0.0.0|80|tcp']);
    expect(live.listeners.map((l) => l.proxy)).toEqual(['web', null]);
    expect(live.settings).toEqual({ tcpIdleSec: 1, udpIdleSec: 2, tcpFinSec: 3 });
  });

  it('shows what packets see: routes only with LB_LF_SRC_ROUTES, a missing group as empty', () => {
    const [withRoutes, withoutFlag] = live.listeners;
    expect(withRoutes!.sourceRoutes).toEqual([
      { prefix: '10.0.0.0/8', targets: [] },
      { prefix: '192.168.0.0/16', targets: [{ addr: '10.0.0.1', port: 80, weight: 4 }] },
    ]);
    expect(withoutFlag!.sourceRoutes).toEqual([]);
    expect(withoutFlag!.defaultTargets).toEqual([]);
    expect(withoutFlag!.persist).toBe(true);
  });

  it('refuses a protocol lb never writes', () => {
    const bad = { ...gen, listeners: [{ key: { ifindex: 2, vip: '0.0.0.0', port: 1, proto: 1 }, value: { listenerId: 0, defaultGroup: 0, flags: 0 } }] };
    expect(() => decodeGeneration(bad, { ifname, proxyOf: () => null, interfaces: [] })).toThrow(expect.objectContaining({ code: 'LB_BPF_ABI' }));
  });
});

describe('decode(encode(s)) == s', () => {
  const sources: string[] = [];
  for (const c of planCases()) {
    for (const side of ['before', 'after'] as const) {
      const path = configPath(join(PLANS_DIR, c), side);
      if (path) sources.push(path);
    }
  }
  const anyIface = (name: string): number => 10 + [...name].reduce((h, ch) => (h * 31 + ch.charCodeAt(0)) % 100000, 0);

  for (const path of [...sources, 'test/fixtures/config/full/lb.yaml']) {
    it(path, async () => {
      const { config } = await loadConfig(path);
      const { state: s } = compileConfig(config, { resolve: (host) => [`10.77.0.${host.length}`, '10.77.1.1'] });
      expect(roundTrip(s)).toEqual(s);

      // Through the bytes of the maps as well, as the live reader sees them (empty groups are not read back).
      const names = new Map(s.interfaces.map((n) => [anyIface(n), n]));
      const { generation } = encodeState(s, { ifindex: anyIface, liveTargetIds: new Map() });
      const raw: EncodedGeneration = encodeGeneration(1, generation);
      raw.groups = raw.groups.filter(([, v]) => v.readUInt32LE(0) > 0);
      const owners = new Map(s.listeners.map((l) => [listenerKey(l), l.proxy]));
      const back = decodeGeneration(decodeRaw(1, raw), { ifname: (i) => names.get(i), proxyOf: (k) => owners.get(k) ?? null, interfaces: s.interfaces, paths: s.paths });
      expect(back).toEqual(s);
    });
  }

  it('an empty group (every DNS target unresolved) survives the live reader skipping empty groups', () => {
    const s = state([listener({ iface: 'eth0', port: 80, sourceRoutes: [{ prefix: '10.0.0.0/8', targets: [] }] })]);
    const { generation } = encodeState(s, env());
    const raw = encodeGeneration(0, generation);
    raw.groups = raw.groups.filter(([, v]) => v.readUInt32LE(0) > 0);
    expect(raw.groups).toEqual([]);
    const back = decodeGeneration(decodeRaw(0, raw), { ifname, proxyOf: () => 'p', interfaces: ['eth0'] });
    expect(back).toEqual(s);
  });

  it('covers every fixture', () => {
    expect(sources.length).toBeGreaterThanOrEqual(readdirSync(PLANS_DIR).length);
  });
});

describe('Maglev tables of persistent listeners', () => {
  const t = (addr: string, weight: number, port = 80): LogicalTarget => ({ addr, port, weight });
  const s = state([
    listener({
      iface: 'eth1', port: 80, persist: true,
      defaultTargets: [t('10.0.0.1', 3), t('10.0.0.2', 1), t('10.0.0.3', 0)],
      sourceRoutes: [
        { prefix: '10.0.0.0/8', targets: [t('10.0.0.4', 5)] },
        { prefix: '192.168.1.0/24', targets: [t('10.0.0.5', 0)] },
      ],
    }),
    listener({ iface: 'eth0', port: 81, defaultTargets: [t('10.0.0.1', 1), t('10.0.0.2', 1)] }),
  ]);

  it('every group of a persistent listener that has weight gets the table buildMaglevTable gives; no other group', () => {
    const { generation } = encodeState(s, env());
    // groups: 0 = eth0:81 (not persistent), 1 = eth1:80 default, 2 = route 10/8, 3 = route 192.168.1/24 (weight 0)
    expect(generation.maglev!.map((m) => m.group)).toEqual([1, 2]);
    const backends = [{ id: '10.0.0.1:80', weight: 3 }, { id: '10.0.0.2:80', weight: 1 }, { id: '10.0.0.3:80', weight: 0 }];
    expect([...generation.maglev![0]!.table]).toEqual([...buildMaglevTable(backends, LB_MAGLEV_SIZE)]);
    const share = (i: number): number => generation.maglev![0]!.table.filter((x) => x === i).length / LB_MAGLEV_SIZE;
    expect(share(2), 'weight 0 owns no slot').toBe(0);
    expect(share(0)).toBeCloseTo(0.75, 2);
    expect(generation.maglev![1]!.table.every((x) => x === 0)).toBe(true);
    expect(checkMaglevTables(generation)).toBeNull();
  });

  it('decode ignores the tables: decode(encode(s)) == s', () => {
    const { generation } = encodeState(s, env());
    expect(roundTrip(s)).toEqual(s);
    const back = decodeGeneration({ ...generation, maglev: [] }, { ifname, proxyOf: () => 'p', interfaces: s.interfaces });
    expect(back).toEqual(decodeGeneration(generation, { ifname, proxyOf: () => 'p', interfaces: s.interfaces }));
  });

  it('checkMaglevTables finds a missing, a wrong and an unused table', () => {
    const { generation } = encodeState(s, env());
    expect(checkMaglevTables({ ...generation, maglev: generation.maglev!.slice(1) })).toMatch(/group 1 of a persistent listener has no Maglev table/);
    const wrong = structuredClone(generation);
    wrong.maglev![0]!.table = Buffer.from(wrong.maglev![0]!.table.map((x) => (x === 0 ? 1 : x)));
    expect(checkMaglevTables(wrong)).toMatch(/table of group 1 is not the one/);
    const extra = { ...generation, maglev: [...generation.maglev!, { group: 0, table: generation.maglev![0]!.table }] };
    expect(checkMaglevTables(extra)).toMatch(/group 0 has a Maglev table but no persistent listener/);
  });

  it('a backend listed twice in a group gets a table all the same (its second entry is a backend of its own)', () => {
    const table = maglevTable([t('10.0.0.1', 1), t('10.0.0.1', 1), t('10.0.0.2', 2)])!;
    expect(new Set(table)).toEqual(new Set([0, 1, 2]));
    expect(maglevTable([t('10.0.0.1', 0)])).toBeNull();
  });

  it('the table follows identity, not order: reordering the targets permutes the indexes only', () => {
    const a = maglevTable([t('10.0.0.1', 1), t('10.0.0.2', 1), t('10.0.0.3', 1)])!;
    const b = maglevTable([t('10.0.0.3', 1), t('10.0.0.1', 1), t('10.0.0.2', 1)])!;
    const addrA = ['10.0.0.1', '10.0.0.2', '10.0.0.3'];
    const addrB = ['10.0.0.3', '10.0.0.1', '10.0.0.2'];
    expect([...a].map((i) => addrA[i])).toEqual([...b].map((i) => addrB[i]));
  });

  it(`rejects more than LB_MAX_MAGLEV_GROUPS (${LB_MAX_MAGLEV_GROUPS}) tables per generation with LB_COMPILE_LIMIT`, () => {
    const many = Array.from({ length: LB_MAX_MAGLEV_GROUPS + 1 }, (_, i) => listener({ iface: 'eth0', port: i + 1, persist: true, defaultTargets: [t('10.0.0.1', 1)] }));
    expect(() => encodeState(state(many), env())).toThrow(expect.objectContaining({ code: 'LB_COMPILE_LIMIT' }));
    expect(encodeState(state(many.slice(1)), env()).generation.maglev).toHaveLength(LB_MAX_MAGLEV_GROUPS);
  });
});
