// The plan: a pure diff of two LogicalStates into an ordered list of changes (Flux's inventory
// diff: data in, sorted data out, no client).
//
// Resources and their identity:
//   interface      name                         (programs attached; its data path an attribute)
//   settings       the one settings entry       (all-zero settings count as absent)
//   listener       iface|vip|port|proto
//   source-route   listener + prefix
//   target         listener + group (default, or a route's prefix) + addr:port
// A target's port is part of its identity, so a port change is a destroy and a create.
//
// Order (the order an apply performs them in): attach interfaces, creates, updates, deletes,
// detach interfaces. Within each phase: settings, then listeners by key; under a listener its
// default targets, then its routes by prefix. Creates go parent first, deletes children first.
//
// Order within a group matters to the data plane (the hash choice walks it). Targets created or
// destroyed reorder implicitly; when the targets on both sides keep their weights but come in a
// different relative order, the group's owner (listener or source route) gets an update of its
// `target_order`.

import {
  listenerKey, listenerLabel, targetLabel,
  type LogicalListener, type LogicalSettings, type LogicalSourceRoute, type LogicalState, type LogicalTarget,
} from '../state.js';

export type ChangeKind = 'create' | 'update' | 'delete';
export type ResourceType = 'interface' | 'settings' | 'listener' | 'source-route' | 'target';

export interface ResourceAddress {
  /** interface: its name. */
  interface?: string;
  /** listener, source-route, target: the owning proxy (null: unknown, a live listener outside the inventory). */
  proxy?: string | null;
  /** listener, source-route, target: the listener's human label, e.g. "eth0 *:80/tcp". */
  listener?: string;
  /** listener, source-route, target: listenerKey(), e.g. "eth0|0.0.0.0|80|tcp". */
  listenerKey?: string;
  /** source-route: its prefix; target: the route it belongs to (absent: the default target). */
  route?: string;
  /** target: "addr:port". */
  target?: string;
}

export type AttributeValue = string | number | boolean | null | string[];
export type ResourceValue = Record<string, AttributeValue>;

export interface Change {
  kind: ChangeKind;
  type: ResourceType;
  address: ResourceAddress;
  /** Human address without the proxy, e.g. "eth0 *:80/tcp source-route 10.0.0.0/8 target 10.0.0.2:80". */
  name: string;
  /** null for a create. */
  before: ResourceValue | null;
  /** null for a delete. */
  after: ResourceValue | null;
  /** The attributes this change sets: for an update the ones that differ, else every attribute. */
  changed: string[];
}

export interface PlanSummary {
  add: number;
  change: number;
  destroy: number;
}

export interface Plan {
  changes: Change[];
  summary: PlanSummary;
}

export function hasChanges(plan: Plan): boolean {
  return plan.changes.length > 0;
}

const PHASE = { attach: 0, create: 1, update: 2, delete: 3, detach: 4 } as const;

export function diffStates(desired: LogicalState, live: LogicalState): Plan {
  const out: Array<{ phase: number; change: Change }> = [];
  const emit = (change: Change): void => {
    const phase = change.type === 'interface' ? (change.kind === 'create' ? PHASE.attach : PHASE.detach) : PHASE[change.kind];
    out.push({ phase, change });
  };

  const wantIfaces = new Set(desired.interfaces);
  const haveIfaces = new Set(live.interfaces);
  for (const name of [...new Set([...desired.interfaces, ...live.interfaces])].sort(compareStrings)) {
    const want = interfaceValue(name, desired);
    const have = interfaceValue(name, live);
    const address = { interface: name };
    if (wantIfaces.has(name) && !haveIfaces.has(name)) emit(make('create', 'interface', address, `interface ${name}`, null, want));
    else if (!wantIfaces.has(name) && haveIfaces.has(name)) emit(make('delete', 'interface', address, `interface ${name}`, have, null));
    else if (wantIfaces.has(name)) {
      // A path still 'auto' on either side (an offline plan) is no change: only two chosen paths can differ.
      const changed = [
        ...(want.path !== 'auto' && have.path !== 'auto' && want.path !== have.path ? ['path'] : []),
        // lb turns route_localnet on where loopback targets need it, and never off (it may be the host's own setting).
        ...(want.route_localnet === true && have.route_localnet !== true ? ['route_localnet'] : []),
        ...(typeof want.ifindex === 'number' && typeof have.ifindex === 'number' && want.ifindex !== have.ifindex ? ['ifindex'] : []),
      ];
      if (changed.length > 0) emit({ ...make('update', 'interface', address, `interface ${name}`, have, want), changed });
    }
  }

  const settings = diffSettings(desired.settings, live.settings);
  if (settings && settings.kind !== 'delete') emit(settings);

  const want = new Map(desired.listeners.map((l) => [listenerKey(l), l]));
  const have = new Map(live.listeners.map((l) => [listenerKey(l), l]));
  for (const key of [...new Set([...want.keys(), ...have.keys()])].sort(compareStrings)) {
    const w = want.get(key);
    const h = have.get(key);
    // Most listeners of a steady-state plan are unchanged: skip them without building the maps and
    // labels diffListener compares with (a 1% change of 10,000 listeners).
    if (w && h && unchangedListener(w, h)) continue;
    diffListener(w, h, emit);
  }

  if (settings && settings.kind === 'delete') emit(settings);

  // A stable sort: the traversal order holds within each phase.
  const changes = out.sort((a, b) => a.phase - b.phase).map((c) => c.change);
  return {
    changes,
    summary: {
      add: changes.filter((c) => c.kind === 'create').length,
      change: changes.filter((c) => c.kind === 'update').length,
      destroy: changes.filter((c) => c.kind === 'delete').length,
    },
  };
}

function diffSettings(want: LogicalSettings, have: LogicalSettings): Change | null {
  // The rate limits are shown only when either side has one (plans without limits read as before).
  const limits = hasRateLimits(want) || hasRateLimits(have);
  const after = isZeroSettings(want) ? null : settingsValue(want, limits);
  const before = isZeroSettings(have) ? null : settingsValue(have, limits);
  if (!after && !before) return null;
  if (after && before) {
    const changed = differing(before, after);
    return changed.length === 0 ? null : { ...make('update', 'settings', {}, 'settings', before, after), changed };
  }
  return make(after ? 'create' : 'delete', 'settings', {}, 'settings', before, after);
}

function isZeroSettings(s: LogicalSettings): boolean {
  return s.tcpIdleSec === 0 && s.udpIdleSec === 0 && s.tcpFinSec === 0 && !s.perSource && !s.perBackend;
}

function hasRateLimits(s: LogicalSettings): boolean {
  return s.perSource !== undefined || s.perBackend !== undefined;
}

function settingsValue(s: LogicalSettings, limits: boolean): ResourceValue {
  const base = { tcp_idle_sec: s.tcpIdleSec, udp_idle_sec: s.udpIdleSec, tcp_fin_sec: s.tcpFinSec };
  const limit = (l: LogicalSettings['perSource']): string => (l ? `${l.rate}/s burst ${l.burst}` : 'none');
  return limits ? { ...base, rate_limit_per_source: limit(s.perSource), rate_limit_per_backend: limit(s.perBackend) } : base;
}

function diffListener(want: LogicalListener | undefined, have: LogicalListener | undefined, emit: (c: Change) => void): void {
  const l = (want ?? have)!;
  const base: ResourceAddress = { proxy: want ? want.proxy : have!.proxy, listener: listenerLabel(l), listenerKey: listenerKey(l) };
  const name = `${base.listener}`;
  const value = (x: LogicalListener): ResourceValue => ({
    iface: x.iface, vip: x.vip, port: x.port, proto: x.proto, proxy: x.proxy, persist: x.persist,
    target_order: x.defaultTargets.map(targetLabel),
  });

  if (want && !have) {
    emit(make('create', 'listener', base, `listener ${name}`, null, value(want)));
    diffGroup(base, undefined, want.defaultTargets, [], emit);
    for (const r of want.sourceRoutes) diffRoute(base, r, undefined, emit);
    return;
  }
  if (!want && have) {
    diffGroup(base, undefined, [], have.defaultTargets, emit);
    for (const r of have.sourceRoutes) diffRoute(base, undefined, r, emit);
    emit(make('delete', 'listener', base, `listener ${name}`, value(have), null));
    return;
  }
  const w = want!;
  const h = have!;
  const changed: string[] = [];
  if (w.persist !== h.persist) changed.push('persist');
  // The live owner is known only from the apply inventory; an unknown owner is no change.
  if (w.proxy !== null && h.proxy !== null && w.proxy !== h.proxy) changed.push('proxy');
  if (reordered(w.defaultTargets, h.defaultTargets)) changed.push('target_order');
  if (changed.length > 0) emit({ ...make('update', 'listener', base, `listener ${name}`, value(h), value(w)), changed });
  diffGroup(base, undefined, w.defaultTargets, h.defaultTargets, emit);

  const wantRoutes = new Map(w.sourceRoutes.map((r) => [r.prefix, r]));
  const haveRoutes = new Map(h.sourceRoutes.map((r) => [r.prefix, r]));
  for (const prefix of [...new Set([...wantRoutes.keys(), ...haveRoutes.keys()])].sort(compareStrings)) {
    diffRoute(base, wantRoutes.get(prefix), haveRoutes.get(prefix), emit);
  }
}

/**
 * True only when diffListener would find nothing: the same attributes, and the same targets and
 * routes in the same order. A group naming a target twice is left to diffListener (it compares
 * weights by label, so equal lists can still differ there).
 */
function unchangedListener(w: LogicalListener, h: LogicalListener): boolean {
  if (w.persist !== h.persist || w.proxy !== h.proxy || !sameTargets(w.defaultTargets, h.defaultTargets)) return false;
  if (w.sourceRoutes.length !== h.sourceRoutes.length) return false;
  const prefixes = new Set<string>();
  for (let i = 0; i < w.sourceRoutes.length; i++) {
    const a = w.sourceRoutes[i]!;
    const b = h.sourceRoutes[i]!;
    if (a.prefix !== b.prefix || prefixes.has(a.prefix) || !sameTargets(a.targets, b.targets)) return false;
    prefixes.add(a.prefix);
  }
  return true;
}

/** The same targets in the same order, none of them twice. */
function sameTargets(a: LogicalTarget[], b: LogicalTarget[]): boolean {
  if (a.length !== b.length) return false;
  // Groups are short: pairs compared; a long one is checked for a repeated target with a set.
  const seen = a.length > 16 ? new Set<string>() : undefined;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.addr !== y.addr || x.port !== y.port || x.weight !== y.weight) return false;
    if (seen) {
      const label = targetLabel(x);
      if (seen.has(label)) return false;
      seen.add(label);
    } else {
      for (let j = 0; j < i; j++) if (a[j]!.addr === x.addr && a[j]!.port === x.port) return false;
    }
  }
  return true;
}

function diffRoute(listener: ResourceAddress, want: LogicalSourceRoute | undefined, have: LogicalSourceRoute | undefined, emit: (c: Change) => void): void {
  const prefix = (want ?? have)!.prefix;
  const address: ResourceAddress = { ...listener, route: prefix };
  const name = `listener ${listener.listener} source-route ${prefix}`;
  const value = (r: LogicalSourceRoute): ResourceValue => ({ prefix: r.prefix, target_order: r.targets.map(targetLabel) });
  if (want && !have) {
    emit(make('create', 'source-route', address, name, null, value(want)));
    diffGroup(listener, prefix, want.targets, [], emit);
  } else if (!want && have) {
    diffGroup(listener, prefix, [], have.targets, emit);
    emit(make('delete', 'source-route', address, name, value(have), null));
  } else {
    if (reordered(want!.targets, have!.targets)) {
      emit({ ...make('update', 'source-route', address, name, value(have!), value(want!)), changed: ['target_order'] });
    }
    diffGroup(listener, prefix, want!.targets, have!.targets, emit);
  }
}

function diffGroup(listener: ResourceAddress, route: string | undefined, want: LogicalTarget[], have: LogicalTarget[], emit: (c: Change) => void): void {
  const haveBy = new Map(have.map((t) => [targetLabel(t), t]));
  const wantBy = new Map(want.map((t) => [targetLabel(t), t]));
  const where = route === undefined ? `listener ${listener.listener} default-target` : `listener ${listener.listener} source-route ${route} target`;
  const address = (t: LogicalTarget): ResourceAddress => ({ ...listener, ...(route !== undefined ? { route } : {}), target: targetLabel(t) });
  const value = (t: LogicalTarget): ResourceValue => ({ addr: t.addr, port: t.port, weight: t.weight });
  for (const t of want) {
    const old = haveBy.get(targetLabel(t));
    if (!old) emit(make('create', 'target', address(t), `${where} ${targetLabel(t)}`, null, value(t)));
    else if (old.weight !== t.weight) emit({ ...make('update', 'target', address(t), `${where} ${targetLabel(t)}`, value(old), value(t)), changed: ['weight'] });
  }
  for (const t of have) {
    if (!wantBy.has(targetLabel(t))) emit(make('delete', 'target', address(t), `${where} ${targetLabel(t)}`, value(t), null));
  }
}

/** True when the targets both sides have come in a different relative order. */
function reordered(want: LogicalTarget[], have: LogicalTarget[]): boolean {
  const haveKeys = new Set(have.map(targetLabel));
  const wantKeys = new Set(want.map(targetLabel));
  const a = want.map(targetLabel).filter((k) => haveKeys.has(k));
  const b = have.map(targetLabel).filter((k) => wantKeys.has(k));
  return a.some((k, i) => k !== b[i]);
}

function interfaceValue(name: string, state: LogicalState): ResourceValue {
  const p = state.paths?.[name];
  return {
    name, path: p?.path ?? 'auto', ...(p?.reason !== undefined ? { reason: p.reason } : {}), ...(p?.routeLocalnet ? { route_localnet: true } : {}),
    ...(p?.ifindex !== undefined ? { ifindex: p.ifindex } : {}),
  };
}

function make(kind: ChangeKind, type: ResourceType, address: ResourceAddress, name: string, before: ResourceValue | null, after: ResourceValue | null): Change {
  const changed = before && after ? differing(before, after) : Object.keys((after ?? before)!);
  return { kind, type, address, name, before, after, changed };
}

function differing(before: ResourceValue, after: ResourceValue): string[] {
  return Object.keys(after).filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]));
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
