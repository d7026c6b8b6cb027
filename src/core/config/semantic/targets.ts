// Target group checks: size (the data plane's LB_MAX_TARGETS), weights, duplicates, addresses and
// host names, PROXY protocol on UDP.

import { LB_MAX_TARGETS } from '../../abi.js';
import { groupsOf, targetsOf } from '../groups.js';
import { hostnameProblem } from '../hostname.js';
import { nonUnicastReason, parseIpv4 } from '../ipv4.js';
import { joinPointer } from '../pointer.js';
import type { SemanticContext } from './context.js';

export function checkTargets(ctx: SemanticContext): void {
  ctx.merged.proxies.forEach((proxy, i) => {
    const proxyPointer = joinPointer('/proxies', i);
    const tcpOnly = (proxy.listen.protocol ?? 'tcp') === 'tcp';
    for (const ref of groupsOf(proxy, proxyPointer)) {
      const targets = targetsOf(ref.group, ref.pointer);
      if (targets.length > LB_MAX_TARGETS) {
        ctx.error(ref.pointer, `this group has ${targets.length} targets; the data plane holds at most ${LB_MAX_TARGETS} per group (LB_MAX_TARGETS)`);
      }
      const weighted = targets.filter((t) => t.target.weight !== undefined);
      if (weighted.length > 0 && weighted.length < targets.length) {
        const example = weighted[0]!.pointer;
        for (const t of targets.filter((x) => x.target.weight === undefined)) {
          ctx.error(
            t.pointer,
            `weight missing: other targets of this group set one (${ctx.where(joinPointer(example, 'weight'), t.pointer)}); ` +
              'set weight on every target of the group, or on none for equal weights',
          );
        }
      }
      if (targets.length > 0 && weighted.length === targets.length && weighted.every((t) => t.target.weight === 0)) {
        ctx.warning(ref.pointer, 'every target of this group has weight 0: the group takes no new flows (established flows continue)');
      }
      const seen = new Map<string, string>();
      for (const { pointer, target } of targets) {
        const key = `${target.ip ?? target.host?.toLowerCase()}:${target.port}`;
        const first = seen.get(key);
        if (first !== undefined) {
          ctx.error(pointer, `duplicate target ${key} in this group (first at ${ctx.where(first, pointer)})`);
        } else {
          seen.set(key, pointer);
        }
        if (target.ip !== undefined) {
          const reason = nonUnicastReason(parseIpv4(target.ip) ?? 0);
          if (reason !== undefined) ctx.error(joinPointer(pointer, 'ip'), `a backend needs a unicast IPv4 address: ${reason}`);
        }
        if (target.host !== undefined) {
          const problem = hostnameProblem(target.host);
          if (problem !== undefined) ctx.error(joinPointer(pointer, 'host'), problem);
        }
        if (target['proxy-protocol'] === 'v2' && !tcpOnly) {
          ctx.error(
            joinPointer(pointer, 'proxy-protocol'),
            `proxy-protocol v2 is sent on TCP connections only, and this proxy listens on ${proxy.listen.protocol}`,
          );
        }
      }
    }
  });
}
