// Chooses the data path of each interface on this host: the pure rule (src/core/data-path-choice.ts)
// applied to the links of the calling thread's network namespace, as the kernel reports them.

import { choosePath, type PathChoice, type PathRequest } from '../core/data-path-choice.js';
import type { InterfacePath } from '../core/state.js';
import { linkFacts } from './link-facts.js';

export type ChosenPath = PathChoice & Omit<InterfacePath, 'path' | 'reason'>;

/**
 * The path for each interface: a chosen path is kept, 'auto' (or none) is chosen from the host's
 * links. The rest of each interface's settings (route_localnet) is carried over.
 */
export function choosePaths(interfaces: readonly string[], requested: Readonly<Record<string, InterfacePath>> = {}): Record<string, ChosenPath> {
  const out: Record<string, ChosenPath> = {};
  let links: ReturnType<typeof linkFacts> | undefined;
  for (const name of interfaces) {
    const want = requested[name];
    if (want !== undefined && want.path !== 'auto' && want.reason !== undefined) {
      out[name] = { ...want, path: want.path, reason: want.reason };
      continue;
    }
    links ??= linkFacts();
    out[name] = { ...want, ...choosePath((want?.path ?? 'auto') as PathRequest, name, links) };
  }
  return out;
}
