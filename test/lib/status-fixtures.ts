// A realistic StatusReport for report tests.

import { STATUS_REPORT_SCHEMA, type StatusReport } from '../../src/report/index.js';

export function sampleReport(node: string, over: Partial<StatusReport> = {}): StatusReport {
  const rev = 'a'.repeat(40);
  return {
    schema: STATUS_REPORT_SCHEMA,
    node,
    instance: 'default',
    source: { kind: 'git', url: 'http://127.0.0.1/config.git', ref: 'refs/heads/main', path: 'env/prod' },
    desiredRevision: rev,
    lastAppliedRevision: rev,
    lastAttemptedRevision: rev,
    result: 'applied',
    conditions: [
      { type: 'Ready', status: 'True', reason: 'ReconciliationSucceeded', message: `applied revision ${rev.slice(0, 12)}`, lastTransitionTime: '2024-05-01T10:00:00.000Z' },
    ],
    plan: { add: 2, change: 1, destroy: 0 },
    errors: [],
    dataPlane: { mode: 'native', interfaces: ['eth0'], listeners: 1, targets: 3 },
    timestamps: { lastAttemptedAt: '2024-05-01T10:00:00.000Z', lastAppliedAt: '2024-05-01T10:00:00.000Z', generatedAt: new Date().toISOString() },
    version: '0.1.0',
    ...over,
  };
}
