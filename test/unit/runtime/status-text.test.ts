// The runtime status as rows for `lb status` and status.md.
import { describe, expect, it } from 'vitest';
import { alignRows, dnsRows, targetRows, TARGET_COLUMNS } from '../../../src/runtime/status-text.js';
import { GENERATED_AT, sampleRuntimeStatus } from '../../lib/runtime-status-fixture.js';

describe('runtime status rows', () => {
  it('one row per target: weight effective/configured, health with the recovery share, circuit (forced), drain progress', () => {
    expect(targetRows(sampleRuntimeStatus(), Date.parse(GENERATED_AT))).toEqual([
      ['web', 'default', '10.0.0.1:8080', '50/100', 'recovering 50%', 'closed', '-'],
      ['web', 'default', '10.0.0.2:8080', '0/100', 'unhealthy (ECONNREFUSED)', 'closed', 'draining (3 active, 25s left)'],
      ['web', 'default', 'api.test:8080', '50/100', '10.0.1.1 unchecked; 10.0.1.2 unchecked', '10.0.1.1 open (forced); 10.0.1.2 closed', '-'],
    ]);
    expect(dnsRows(sampleRuntimeStatus())).toEqual([['api.test', 'stale', '10.0.1.1, 10.0.1.2', 'ESERVFAIL']]);
  });

  it('aligns columns', () => {
    expect(alignRows([[...TARGET_COLUMNS].slice(0, 3), ['web', 'default', '10.0.0.1:8080']])).toEqual(['PROXY  GROUP    TARGET', 'web    default  10.0.0.1:8080']);
  });
});
