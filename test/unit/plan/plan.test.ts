import { describe, expect, it } from 'vitest';
import { diffStates, hasChanges, type Change, type Plan } from '../../../src/core/plan/plan.js';
import { EMPTY_STATE, listenerKey, targetLabel, type LogicalListener, type LogicalState, type LogicalTarget } from '../../../src/core/state.js';

const SETTINGS = { tcpIdleSec: 300, udpIdleSec: 60, tcpFinSec: 10 };
const t = (addr: string, weight = 100, port = 80): LogicalTarget => ({ addr, port, weight });

function listener(over: Partial<LogicalListener> = {}): LogicalListener {
  return { iface: 'eth0', vip: '0.0.0.0', port: 80, proto: 'tcp', proxy: 'web', persist: false, defaultTargets: [t('10.0.0.1')], sourceRoutes: [], ...over };
}

function state(listeners: LogicalListener[], over: Partial<LogicalState> = {}): LogicalState {
  return {
    interfaces: [...new Set(listeners.map((l) => l.iface))].sort(),
    settings: SETTINGS,
    listeners: [...listeners].sort((a, b) => (listenerKey(a) < listenerKey(b) ? -1 : 1)),
    ...over,
  };
}

const brief = (plan: Plan): string[] => plan.changes.map((c) => `${c.kind} ${c.type} ${c.name}`);

describe('diffStates', () => {
  it('finds no change between equal states', () => {
    const s = state([listener({ sourceRoutes: [{ prefix: '10.0.0.0/8', targets: [t('10.0.0.2')] }] })]);
    const plan = diffStates(s, structuredClone(s));
    expect(plan).toEqual({ changes: [], summary: { add: 0, change: 0, destroy: 0 } });
    expect(hasChanges(plan)).toBe(false);
  });

  it('orders: attach, creates (parents first), updates, deletes (children first), detach', () => {
    const live = state([
      listener({ iface: 'eth0', defaultTargets: [t('10.0.0.1', 50)] }),
      listener({ iface: 'eth1', proxy: 'old', sourceRoutes: [{ prefix: '10.0.0.0/8', targets: [t('10.0.0.9')] }] }),
    ]);
    const desired = state([
      listener({ iface: 'eth0', defaultTargets: [t('10.0.0.1', 70)] }),
      listener({ iface: 'eth2', sourceRoutes: [{ prefix: '10.0.0.0/8', targets: [t('10.0.0.3')] }] }),
    ], { settings: { ...SETTINGS, tcpIdleSec: 600 } });
    const plan = diffStates(desired, live);
    expect(brief(plan)).toEqual([
      'create interface interface eth2',
      'create listener listener eth2 *:80/tcp',
      'create target listener eth2 *:80/tcp default-target 10.0.0.1:80',
      'create source-route listener eth2 *:80/tcp source-route 10.0.0.0/8',
      'create target listener eth2 *:80/tcp source-route 10.0.0.0/8 target 10.0.0.3:80',
      'update settings settings',
      'update target listener eth0 *:80/tcp default-target 10.0.0.1:80',
      'delete target listener eth1 *:80/tcp default-target 10.0.0.1:80',
      'delete target listener eth1 *:80/tcp source-route 10.0.0.0/8 target 10.0.0.9:80',
      'delete source-route listener eth1 *:80/tcp source-route 10.0.0.0/8',
      'delete listener listener eth1 *:80/tcp',
      'delete interface interface eth1',
    ]);
    expect(plan.summary).toEqual({ add: 5, change: 2, destroy: 5 });
    const weight = plan.changes.find((c) => c.type === 'target' && c.kind === 'update')!;
    expect(weight).toMatchObject({ before: { weight: 50 }, after: { weight: 70 }, changed: ['weight'] });
    expect(plan.changes.find((c) => c.type === 'settings')).toMatchObject({ changed: ['tcp_idle_sec'], before: { tcp_idle_sec: 300 }, after: { tcp_idle_sec: 600 } });
  });

  it('treats all-zero settings as absent: created on a first apply, destroyed by a teardown', () => {
    const s = state([listener()]);
    const up = diffStates(s, EMPTY_STATE);
    expect(up.changes.filter((c) => c.type === 'settings').map((c) => c.kind)).toEqual(['create']);
    const down = diffStates(EMPTY_STATE, s);
    expect(brief(down)).toEqual([
      'delete target listener eth0 *:80/tcp default-target 10.0.0.1:80',
      'delete listener listener eth0 *:80/tcp',
      'delete settings settings',
      'delete interface interface eth0',
    ]);
    expect(down.summary).toEqual({ add: 0, change: 0, destroy: 4 });
  });

  it('compares a group naming a target twice by label, also where both sides are the same (no shortcut for equal listeners there)', () => {
    // Equal lists, but the live side's weight of 10.0.0.1 is taken from its last entry: the first
    // desired entry differs from it. The same answer for a default group, a route's, and a long group.
    const twice = [t('10.0.0.1', 1), t('10.0.0.1', 2)];
    const long = [...Array.from({ length: 20 }, (_, i) => t(`10.0.1.${i + 1}`)), ...twice];
    for (const s of [
      state([listener({ defaultTargets: twice })]),
      state([listener({ sourceRoutes: [{ prefix: '10.0.0.0/8', targets: twice }] })]),
      state([listener({ defaultTargets: long })]),
    ]) {
      const plan = diffStates(s, structuredClone(s));
      expect(plan.changes.map((c) => [c.kind, c.type, c.before?.['weight'], c.after?.['weight']])).toEqual([['update', 'target', 2, 1]]);
    }
  });

  it('updates a listener for persistence and a known owner change, not for an unknown live owner', () => {
    const desired = state([listener({ persist: true, proxy: 'new' })]);
    expect(diffStates(desired, state([listener()])).changes.map((c) => c.changed)).toEqual([['persist', 'proxy']]);
    expect(diffStates(desired, state([listener({ persist: true, proxy: null })])).changes).toEqual([]);
  });

  it('makes a port change a destroy and a create (the port is part of a target\'s identity)', () => {
    const plan = diffStates(state([listener({ defaultTargets: [t('10.0.0.1', 100, 81)] })]), state([listener()]));
    expect(brief(plan)).toEqual([
      'create target listener eth0 *:80/tcp default-target 10.0.0.1:81',
      'delete target listener eth0 *:80/tcp default-target 10.0.0.1:80',
    ]);
  });

  it('reports a changed relative order of a group, not the shifts that creates and deletes cause', () => {
    const routes = (targets: LogicalTarget[]) => [{ prefix: '10.0.0.0/8', targets }];
    const live = state([listener({ sourceRoutes: routes([t('10.0.0.1'), t('10.0.0.2'), t('10.0.0.3')]) })]);
    const shifted = diffStates(state([listener({ sourceRoutes: routes([t('10.0.0.9'), t('10.0.0.1'), t('10.0.0.3')]) })]), live);
    expect(shifted.changes.map((c) => `${c.kind} ${c.type}`)).toEqual(['create target', 'delete target']);
    const swapped = diffStates(state([listener({ sourceRoutes: routes([t('10.0.0.3'), t('10.0.0.1'), t('10.0.0.2')]) })]), live);
    expect(swapped.changes).toHaveLength(1);
    expect(swapped.changes[0]).toMatchObject({ kind: 'update', type: 'source-route', changed: ['target_order'], address: { route: '10.0.0.0/8' } });
  });

  it('changes an interface for its data path and for route_localnet; an unresolved auto and a localnet lb need not turn off are no change', () => {
    const loopback = [listener({ defaultTargets: [t('127.0.0.1', 100, 8080)] })];
    const live = state(loopback, { paths: { eth0: { path: 'xdp' } } });
    const want = state(loopback, { paths: { eth0: { path: 'tc', reason: 'eth0 is a virtual interface (veth)', routeLocalnet: true } } });
    const plan = diffStates(want, live);
    expect(plan.changes).toHaveLength(1);
    expect(plan.changes[0]).toMatchObject({
      kind: 'update', type: 'interface', changed: ['path', 'route_localnet'],
      before: { name: 'eth0', path: 'xdp' }, after: { name: 'eth0', path: 'tc', reason: 'eth0 is a virtual interface (veth)', route_localnet: true },
    });
    expect(diffStates(state(loopback, { paths: { eth0: { path: 'auto', routeLocalnet: true } } }), state(loopback, { paths: { eth0: { path: 'tc', routeLocalnet: true } } })).changes).toEqual([]);
    expect(diffStates(state(loopback, { paths: { eth0: { path: 'tc' } } }), state(loopback, { paths: { eth0: { path: 'tc', routeLocalnet: true } } })).changes).toEqual([]);
    expect(diffStates(state(loopback, { paths: { eth0: { path: 'tc', routeLocalnet: true } } }), state(loopback, { paths: { eth0: { path: 'tc' } } })).changes
      .map((c) => c.changed)).toEqual([['route_localnet']]);
  });

  it('is deterministic whatever the input order', () => {
    const a = [listener({ iface: 'eth1' }), listener({ iface: 'eth0', port: 443 }), listener({ proto: 'udp' })];
    const desired = state(a);
    const plan1 = diffStates(desired, EMPTY_STATE);
    const plan2 = diffStates({ ...desired, listeners: [...desired.listeners].reverse(), interfaces: [...desired.interfaces].reverse() }, EMPTY_STATE);
    expect(plan2).toEqual(plan1);
  });

  it('property: applying the plan to the live state yields the desired state', () => {
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const randomTargets = (): LogicalTarget[] => {
      const picked = new Map<string, LogicalTarget>();
      for (let i = rand(4); i > 0; i--) {
        const x = t(`10.0.0.${rand(5)}`, rand(3) * 50, 80 + rand(2));
        picked.set(targetLabel(x), x);
      }
      return [...picked.values()];
    };
    const randomState = (): LogicalState => {
      const ls = new Map<string, LogicalListener>();
      for (let i = rand(5); i > 0; i--) {
        const l = listener({
          iface: `eth${rand(3)}`, port: 80 + rand(2), proto: rand(2) ? 'tcp' : 'udp', persist: rand(2) === 1,
          defaultTargets: randomTargets(),
          sourceRoutes: [...new Set(Array.from({ length: rand(3) }, () => `10.${rand(3)}.0.0/16`))].sort().map((prefix) => ({ prefix, targets: randomTargets() })),
        });
        ls.set(listenerKey(l), l);
      }
      return state([...ls.values()], { settings: rand(4) === 0 ? EMPTY_STATE.settings : { ...SETTINGS, tcpIdleSec: 100 * rand(3) + 1 } });
    };
    for (let round = 0; round < 300; round++) {
      const desired = randomState();
      const live = randomState();
      const plan = diffStates(desired, live);
      expect(normalize(apply(live, plan.changes))).toEqual(normalize(desired));
      expect(plan.summary.add + plan.summary.change + plan.summary.destroy).toBe(plan.changes.length);
    }
  });
});

/** Applies changes to a state the way a naive apply would (order within groups is not modelled). */
function apply(live: LogicalState, changes: Change[]): LogicalState {
  const s = structuredClone(live);
  const byKey = new Map(s.listeners.map((l) => [listenerKey(l), l]));
  const group = (c: Change): LogicalTarget[] => {
    const l = byKey.get(c.address.listenerKey!)!;
    return c.address.route === undefined ? l.defaultTargets : l.sourceRoutes.find((r) => r.prefix === c.address.route)!.targets;
  };
  for (const c of changes) {
    // A test model: the value shape follows c.type.
    const after = c.after as Record<string, any>;
    switch (c.type) {
      case 'interface':
        s.interfaces = c.kind === 'create' ? [...s.interfaces, c.address.interface!] : s.interfaces.filter((i) => i !== c.address.interface);
        break;
      case 'settings':
        s.settings = c.kind === 'delete' ? { ...EMPTY_STATE.settings } : { tcpIdleSec: after.tcp_idle_sec, udpIdleSec: after.udp_idle_sec, tcpFinSec: after.tcp_fin_sec };
        break;
      case 'listener':
        if (c.kind === 'create') {
          const l: LogicalListener = { iface: after.iface, vip: after.vip, port: after.port, proto: after.proto, proxy: after.proxy, persist: after.persist, defaultTargets: [], sourceRoutes: [] };
          byKey.set(c.address.listenerKey!, l);
        } else if (c.kind === 'delete') {
          expect(byKey.get(c.address.listenerKey!)!.defaultTargets).toEqual([]);
          byKey.delete(c.address.listenerKey!);
        } else {
          Object.assign(byKey.get(c.address.listenerKey!)!, { persist: after.persist, proxy: after.proxy });
        }
        break;
      case 'source-route': {
        const l = byKey.get(c.address.listenerKey!)!;
        if (c.kind === 'create') l.sourceRoutes.push({ prefix: c.address.route!, targets: [] });
        if (c.kind === 'delete') l.sourceRoutes = l.sourceRoutes.filter((r) => r.prefix !== c.address.route);
        break;
      }
      case 'target': {
        const g = group(c);
        const i = g.findIndex((x) => targetLabel(x) === c.address.target);
        if (c.kind === 'create') g.push(t(after.addr, after.weight, after.port));
        else if (c.kind === 'delete') g.splice(i, 1);
        else g[i]!.weight = after.weight;
        break;
      }
    }
  }
  s.listeners = [...byKey.values()];
  return s;
}

function normalize(s: LogicalState): unknown {
  const sortTargets = (ts: LogicalTarget[]) => [...ts].sort((a, b) => (targetLabel(a) < targetLabel(b) ? -1 : 1));
  return {
    interfaces: [...s.interfaces].sort(),
    settings: s.settings,
    listeners: [...s.listeners].sort((a, b) => (listenerKey(a) < listenerKey(b) ? -1 : 1)).map((l) => ({
      ...l,
      defaultTargets: sortTargets(l.defaultTargets),
      sourceRoutes: [...l.sourceRoutes].sort((a, b) => (a.prefix < b.prefix ? -1 : 1)).map((r) => ({ ...r, targets: sortTargets(r.targets) })),
    })),
  };
}
