// A plan host with no kernel: an instance that does not exist yet, `lo` as the only interface, and
// every interface on the tc path. For plans and saved plans in unit tests.

import type { PlanHost } from '../../../src/apply/prepare.js';
import { EMPTY_SETTINGS, encodeGeneration } from '../../../src/core/generation.js';
import { EMPTY_STATE } from '../../../src/core/state.js';
import type { LiveState } from '../../../src/state/live.js';

export const EMPTY_LIVE: LiveState = {
  instance: 'unit', exists: false, ctl: { activeGen: 0, serial: 0 },
  raw: encodeGeneration(0, { settings: EMPTY_SETTINGS, listeners: [], groups: [], srcRoutes: [] }),
  generation: { settings: EMPTY_SETTINGS, listeners: [], groups: [], srcRoutes: [] },
  attachments: [], interfaces: [], inventory: null, state: structuredClone(EMPTY_STATE), targetIds: new Map(), digest: '0',
};

export const FAKE_HOST: PlanHost = {
  readLive: () => EMPTY_LIVE,
  ifindex: (name) => (name === 'lo' ? 1 : undefined),
  choosePaths: (interfaces, requested = {}) => Object.fromEntries(interfaces.map((n) => [n, { ...requested[n], path: 'tc' as const, reason: 'the fake host' }])),
};
