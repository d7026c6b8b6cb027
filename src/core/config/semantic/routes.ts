// Route checks: source prefixes (host bits, duplicates), SNI names (duplicates), and the data
// plane's capacity for routes and groups.

import { LB_GENERATIONS, LB_MAX_GROUPS, LB_MAX_SRC_ROUTES } from '../../abi.js';
import { formatPrefix, networkOf, parseIpv4Prefix } from '../ipv4.js';
import { normalizeSniHostname } from '../hostname.js';
import { joinPointer } from '../pointer.js';
import type { SemanticContext } from './context.js';

/** Both generations share the LPM trie, so one config may use half of it (docs/design.md §3). */
const MAX_SOURCE_ROUTES_PER_CONFIG = LB_MAX_SRC_ROUTES / LB_GENERATIONS;

export function checkRoutes(ctx: SemanticContext): void {
  let sourceRoutes = 0;
  let sniRoutes = 0;
  let groups = 0;
  ctx.merged.proxies.forEach((proxy, i) => {
    const proxyPointer = joinPointer('/proxies', i);
    const prefixes = new Map<string, string>();
    (proxy['source-routes'] ?? []).forEach((route, k) => {
      sourceRoutes++;
      const pointer = joinPointer(proxyPointer, 'source-routes', k, 'source');
      const prefix = parseIpv4Prefix(route.source);
      if (!prefix) return; // the schema has reported it
      const network = networkOf(prefix);
      const canonical = formatPrefix(network, prefix.length);
      if (network !== prefix.address) {
        ctx.error(pointer, `host bits set in ${route.source}; did you mean ${canonical}?`, { expected: canonical });
        return;
      }
      const first = prefixes.get(canonical);
      if (first !== undefined) {
        ctx.error(pointer, `duplicate source prefix ${canonical} in this proxy (first at ${ctx.where(first, pointer)})`);
        return;
      }
      prefixes.set(canonical, pointer);
    });
    const names = new Map<string, string>();
    (proxy['sni-routes'] ?? []).forEach((route, k) => {
      sniRoutes++;
      const pointer = joinPointer(proxyPointer, 'sni-routes', k, 'sni-hostname');
      const { hostname, wildcard } = normalizeSniHostname(route['sni-hostname']);
      const key = `${wildcard ? '*.' : ''}${hostname}`;
      const first = names.get(key);
      if (first !== undefined) {
        ctx.error(pointer, `duplicate sni-hostname ${key} in this proxy (first at ${ctx.where(first, pointer)}); names match case-insensitively`);
        return;
      }
      names.set(key, pointer);
    });
    groups += 1 + (proxy['source-routes'] ?? []).length + (proxy['sni-routes'] ?? []).length;
  });
  if (sourceRoutes > MAX_SOURCE_ROUTES_PER_CONFIG) {
    ctx.error('/proxies', `the config has ${sourceRoutes} source routes; at most ${MAX_SOURCE_ROUTES_PER_CONFIG} fit (LB_MAX_SRC_ROUTES / LB_GENERATIONS: the old and new generation share the trie)`);
  }
  if (groups > LB_MAX_GROUPS) {
    ctx.error('/proxies', `the config has ${groups} target groups (default targets and routes); the data plane holds at most ${LB_MAX_GROUPS} (LB_MAX_GROUPS)`);
  }
  const maxSni = ctx.merged.settings['max-sni-routes'];
  if (maxSni !== undefined && sniRoutes > maxSni) {
    ctx.error('/settings/max-sni-routes', `the config has ${sniRoutes} SNI routes, more than max-sni-routes (${maxSni})`);
  }
}
