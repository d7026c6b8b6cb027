// Health check checks: keys that do not apply to the check's type, and timeouts longer than the
// interval of the check that will run.

import { groupsOf, targetsOf } from '../groups.js';
import { effectiveHealthCheck } from '../health.js';
import { joinPointer } from '../pointer.js';
import type { RawHealthCheck } from '../raw-types.js';
import type { SemanticContext } from './context.js';

const HTTP_ONLY_KEYS = ['path', 'expected-codes'] as const;

export function checkHealthChecks(ctx: SemanticContext): void {
  const { settings, proxies } = ctx.merged;
  const defaults = settings['health-check-defaults'];
  const defaultsPointer = '/settings/health-check-defaults';
  if (defaults) checkTiming(ctx, effectiveHealthCheck({ defaults }), [[defaults, defaultsPointer]]);
  proxies.forEach((proxy, i) => {
    const proxyPointer = joinPointer('/proxies', i);
    const proxyCheck = proxy['health-check'];
    const proxyCheckPointer = joinPointer(proxyPointer, 'health-check');
    if (proxyCheck) {
      checkKeys(ctx, proxyCheck, proxyCheckPointer);
      checkTiming(ctx, effectiveHealthCheck({ defaults, proxy: proxyCheck }), [[proxyCheck, proxyCheckPointer], [defaults, defaultsPointer]]);
    }
    for (const group of groupsOf(proxy, proxyPointer)) {
      for (const { pointer, target } of targetsOf(group.group, group.pointer)) {
        const own = target['health-check'];
        if (!own) continue;
        const ownPointer = joinPointer(pointer, 'health-check');
        checkKeys(ctx, own, ownPointer);
        checkTiming(ctx, effectiveHealthCheck({ defaults, proxy: proxyCheck, target: own }), [
          [own, ownPointer],
          [proxyCheck, proxyCheckPointer],
          [defaults, defaultsPointer],
        ]);
      }
    }
  });
}

/** A check written with type tcp or none does not use path / expected-codes; saying so is a mistake. */
function checkKeys(ctx: SemanticContext, check: RawHealthCheck, pointer: string): void {
  if (check.type === 'none') {
    const others = Object.keys(check).filter((k) => k !== 'type');
    if (others.length > 0) ctx.error(joinPointer(pointer, others[0]!), `type none turns the check off, so ${others[0]} has no effect; remove it`, { onKey: true });
    return;
  }
  if (check.type !== 'tcp') return;
  for (const key of HTTP_ONLY_KEYS) {
    if (check[key] !== undefined) ctx.error(joinPointer(pointer, key), `${key} applies to http and https checks only, and this check's type is tcp`, { onKey: true });
  }
}

/** Blames the most specific level that sets either value. */
function checkTiming(ctx: SemanticContext, check: ReturnType<typeof effectiveHealthCheck>, levels: [RawHealthCheck | undefined, string][]): void {
  if (!check || check['timeout-ms'] <= check['interval-ms']) return;
  const blamed = levels.find(([c]) => c && (c['timeout-ms'] !== undefined || c['interval-ms'] !== undefined));
  const [c, pointer] = blamed ?? levels[0]!;
  const key = c?.['timeout-ms'] !== undefined ? 'timeout-ms' : 'interval-ms';
  ctx.error(joinPointer(pointer, key), `timeout-ms (${check['timeout-ms']}) exceeds interval-ms (${check['interval-ms']}): a check must end before the next one starts`);
}
