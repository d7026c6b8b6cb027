// Settings checks that span values or the data plane's capacities.

import { LB_MAX_FLOWS } from '../../abi.js';
import type { SemanticContext } from './context.js';

/** The conntrack table holds two entries per flow (forward and reverse). */
const FLOW_CAPACITY = LB_MAX_FLOWS / 2;

export function checkSettings(ctx: SemanticContext): void {
  const maxConnections = ctx.merged.settings['max-connections'];
  if (maxConnections !== undefined && maxConnections > FLOW_CAPACITY) {
    ctx.warning(
      '/settings/max-connections',
      `max-connections ${maxConnections} exceeds the connection table's capacity of ${FLOW_CAPACITY} flows (LB_MAX_FLOWS / 2); beyond it the least recently used flows are evicted`,
    );
  }
}
