// Seeded random generations (GenerationConfig) with what the apply meets: routes of several prefix
// lengths, empty groups, Maglev tables; and changed copies of them (entries added, removed and
// changed). The same seed gives the same generations on every run.
import { LB_MAGLEV_SIZE, type GenerationConfig } from '../../src/dataplane/index.js';
import { prng } from './prng.js';

export function randomGeneration(seed: number, size: number): GenerationConfig {
  const r = prng(seed);
  const int = (n: number): number => Math.floor(r() * n);
  const ip = (): string => `${1 + int(223)}.${int(256)}.${int(256)}.${int(256)}`;
  const cfg: GenerationConfig = { settings: { tcpIdleSec: 300 + int(3), udpIdleSec: 60, tcpFinSec: 10, flags: int(2) }, listeners: [], groups: [], srcRoutes: [], maglev: [] };
  const vips = new Set<string>();
  for (let i = 0; i < size; i++) {
    const key = { ifindex: 1 + int(3), vip: ip(), port: 1 + int(65535), proto: r() < 0.5 ? 6 : 17 };
    const id = `${key.ifindex}/${key.vip}/${key.port}/${key.proto}`;
    if (vips.has(id)) continue;
    vips.add(id);
    cfg.listeners.push({ key, value: { listenerId: i, defaultGroup: int(size * 2), flags: int(4) } });
  }
  const groupIds = new Set<number>();
  for (let i = 0; i < size * 2; i++) {
    const id = int(size * 4);
    if (groupIds.has(id)) continue;
    groupIds.add(id);
    const targets = Array.from({ length: int(4) }, () => ({ addr: ip(), port: 1 + int(65535), weight: int(100), targetId: int(16384) })); // some empty
    cfg.groups.push({ id, group: { targets } });
    if (r() < 0.05) cfg.maglev!.push({ group: id, table: Buffer.from(Array.from({ length: LB_MAGLEV_SIZE }, () => int(Math.max(1, targets.length)))) });
  }
  const routes = new Set<string>();
  for (let i = 0; i < size * 8; i++) {
    const prefixLen = [8, 16, 24, 31, 32][int(5)]!;
    const listenerId = int(size);
    const addr = ip();
    const mask = prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
    const masked = addr.split('.').reduce((v, o) => v * 256 + Number(o), 0) & mask;
    const id = `${listenerId}/${masked}/${prefixLen}`;
    if (routes.has(id)) continue; // one entry per prefix, as compile makes them
    routes.add(id);
    cfg.srcRoutes.push({ listenerId, addr, prefixLen, group: int(size * 4) });
  }
  return cfg;
}

/** Another generation: some entries kept, some changed, some removed, some new. */
export function changed(base: GenerationConfig, seed: number): GenerationConfig {
  const r = prng(seed);
  const other = randomGeneration(seed + 1000, Math.max(1, base.listeners.length >> 2));
  const keep = <T>(list: T[], edit: (x: T) => T): T[] => list.filter(() => r() > 0.2).map((x) => (r() < 0.1 ? edit(structuredClone(x)) : x));
  return {
    settings: r() < 0.5 ? base.settings : { ...base.settings, tcpIdleSec: base.settings.tcpIdleSec + 1 },
    listeners: [...keep(base.listeners, (l) => ({ ...l, value: { ...l.value, flags: l.value.flags ^ 1 } })), ...other.listeners.map((l) => ({ ...l, key: { ...l.key, port: 0 } }))],
    groups: keep(base.groups, (g) => ({ ...g, group: { targets: g.group.targets.map((t) => ({ ...t, weight: t.weight + 1 })) } })),
    srcRoutes: [...keep(base.srcRoutes, (s) => ({ ...s, group: s.group + 1 })), ...other.srcRoutes.map((s) => ({ ...s, listenerId: s.listenerId + 100_000 }))],
    maglev: keep(base.maglev ?? [], (m) => m),
  };
}
