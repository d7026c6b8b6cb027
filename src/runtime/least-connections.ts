// Weighted least-connections expressed as weights. Pure.
//
// The data plane cannot look at live counts per packet: it picks a new flow's backend from the
// flow hash over the group's cumulative weights. So least-connections is approximated by
// re-weighting every update-interval-ms:
//
//   r_i   = w_i / (1 + a_i)                     w_i: weight (after health, drain, breaker)
//   eff_i = w_i == 0 ? 0 : max(1, round(r_i * MAX_WEIGHT / max_j r_j))     a_i: active flows
//
// so the share of new flows a backend gets in the next interval is proportional to its weight
// divided by its load. Why this and not "all new flows to the argmin": the counts are up to one
// interval old and the kernel cannot update them per flow, so an argmin would send a whole
// interval's new flows to one backend (herding) and oscillate; proportional shares move load
// toward the less loaded backends smoothly and converge to the configured ratio as the counts
// even out (equal counts -> the configured weights, rescaled). Weighted: w_i is the configured
// weight; `weighted: false` makes every non-zero w_i equal before the health factors apply.
// The +1 keeps an idle backend finite and ranks idle backends by weight.
//
// Rescaling to MAX_WEIGHT keeps the resolution of the ratios (a backend with 300 flows and one with
// 500 still differ), and the floor of 1 keeps a loaded backend in the group: it still takes a
// trickle of new flows, so its count can be seen to fall and it never looks "removed".

import { MAX_WEIGHT } from '../core/compile/compile.js';

export interface LeastConnectionsInput {
  /** Weight after health, drain and breaker factors (0 = takes no new flows). */
  weight: number;
  /** Active flows of the backend now (negative or non-finite counts as 0). */
  active: number;
}

export function leastConnectionsWeights(inputs: readonly LeastConnectionsInput[]): number[] {
  const ratios = inputs.map(({ weight, active }) => {
    const a = Number.isFinite(active) && active > 0 ? active : 0;
    return weight > 0 ? weight / (1 + a) : 0;
  });
  const max = Math.max(0, ...ratios);
  if (max === 0) return inputs.map(() => 0);
  return ratios.map((r) => (r === 0 ? 0 : Math.min(MAX_WEIGHT, Math.max(1, Math.round((r * MAX_WEIGHT) / max)))));
}
