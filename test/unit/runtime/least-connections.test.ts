import { describe, expect, it } from 'vitest';
import { chooseTarget } from '../../../src/core/flow-hash.js';
import { leastConnectionsWeights } from '../../../src/runtime/least-connections.js';

describe('leastConnectionsWeights', () => {
  it('equal load gives the configured ratio, rescaled to 1000', () => {
    expect(leastConnectionsWeights([{ weight: 100, active: 0 }, { weight: 50, active: 0 }])).toEqual([1000, 500]);
    expect(leastConnectionsWeights([{ weight: 1, active: 7 }, { weight: 1, active: 7 }])).toEqual([1000, 1000]);
  });

  it('steers new flows away from the loaded backend: share ~ weight / (1 + active)', () => {
    expect(leastConnectionsWeights([{ weight: 100, active: 9 }, { weight: 100, active: 0 }, { weight: 100, active: 4 }])).toEqual([100, 1000, 200]);
  });

  it('is weighted: twice the weight carries twice the load for the same share', () => {
    const [a, b] = leastConnectionsWeights([{ weight: 200, active: 19 }, { weight: 100, active: 9 }]);
    expect(a).toBe(b);
  });

  it('keeps 0 for a zero weight and at least 1 for a loaded backend', () => {
    expect(leastConnectionsWeights([{ weight: 0, active: 0 }, { weight: 100, active: 0 }, { weight: 100, active: 100_000 }])).toEqual([0, 1000, 1]);
    expect(leastConnectionsWeights([{ weight: 0, active: 0 }])).toEqual([0]);
    expect(leastConnectionsWeights([])).toEqual([]);
  });

  it('ignores nonsense counts', () => {
    expect(leastConnectionsWeights([{ weight: 100, active: -5 }, { weight: 100, active: Number.NaN }])).toEqual([1000, 1000]);
  });

  it('under the data plane hash choice, new flows go mostly to the least loaded backend', () => {
    const weights = leastConnectionsWeights([{ weight: 100, active: 50 }, { weight: 100, active: 0 }]);
    const counts = [0, 0];
    for (let h = 0; h < 100_000; h += 7) counts[chooseTarget((h * 2654435761) >>> 0, weights)]! += 1;
    expect(counts[1]! / (counts[0]! + counts[1]!)).toBeGreaterThan(0.95);
  });
});
