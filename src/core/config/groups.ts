// Walking a proxy's target groups: the default target and each route's target(s), each target
// with its pointer. Shared by the semantic checks and normalization so they agree on pointers.

import { joinPointer } from './pointer.js';
import type { RawProxy, RawTarget, RawTargetGroup } from './raw-types.js';

export type GroupKind = 'default' | 'source-route' | 'sni-route';

export interface GroupRef {
  kind: GroupKind;
  /** Pointer of the group value (a target map or a list). */
  pointer: string;
  /** Index of the route within source-routes / sni-routes; -1 for the default target. */
  routeIndex: number;
  group: RawTargetGroup;
}

export interface TargetRef {
  pointer: string;
  target: RawTarget;
}

export function groupsOf(proxy: RawProxy, proxyPointer: string): GroupRef[] {
  const out: GroupRef[] = [
    { kind: 'default', pointer: joinPointer(proxyPointer, 'default-target'), routeIndex: -1, group: proxy['default-target'] },
  ];
  const routes: [GroupKind, 'source-routes' | 'sni-routes'][] = [
    ['source-route', 'source-routes'],
    ['sni-route', 'sni-routes'],
  ];
  for (const [kind, key] of routes) {
    (proxy[key] ?? []).forEach((route, i) => {
      const field = route.targets !== undefined ? 'targets' : 'target';
      const group = route[field];
      if (group !== undefined) out.push({ kind, pointer: joinPointer(proxyPointer, key, i, field), routeIndex: i, group });
    });
  }
  return out;
}

export function targetsOf(group: RawTargetGroup, groupPointer: string): TargetRef[] {
  if (Array.isArray(group)) return group.map((target, i) => ({ pointer: joinPointer(groupPointer, i), target }));
  return [{ pointer: groupPointer, target: group }];
}
