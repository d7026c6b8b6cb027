// Proxy-level checks: at least one proxy, unique names.

import { joinPointer } from '../pointer.js';
import type { SemanticContext } from './context.js';

export function checkProxies(ctx: SemanticContext): void {
  const { proxies } = ctx.merged;
  if (proxies.length === 0) {
    ctx.error('/proxies', 'the config defines no proxies; at least one is required (`lb down` removes everything)');
    return;
  }
  const first = new Map<string, number>();
  proxies.forEach((proxy, i) => {
    const pointer = joinPointer('/proxies', i, 'name');
    const earlier = first.get(proxy.name);
    if (earlier === undefined) {
      first.set(proxy.name, i);
      return;
    }
    const other = joinPointer('/proxies', earlier, 'name');
    ctx.error(pointer, `duplicate proxy name "${proxy.name}": already defined at ${ctx.where(other, pointer)}`);
  });
}
