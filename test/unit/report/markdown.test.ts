import { describe, expect, it } from 'vitest';
import { renderStatusMarkdown } from '../../../src/report/index.js';
import { GENERATED_AT, sampleRuntimeStatus } from '../../lib/runtime-status-fixture.js';
import { sampleReport } from '../../lib/status-fixtures.js';

describe('renderStatusMarkdown', () => {
  it('shows result, revisions, conditions, plan and data plane', () => {
    const md = renderStatusMarkdown(sampleReport('lb-1', { timestamps: { lastAttemptedAt: '2024-05-01T10:00:00.000Z', lastAppliedAt: '2024-05-01T10:00:00.000Z', generatedAt: '2024-05-01T10:00:01.000Z' } }));
    expect(md).toContain('# lb status: lb-1');
    expect(md).toContain('**Ready**: applied (ReconciliationSucceeded)');
    expect(md).toContain(`| Desired revision | \`${'a'.repeat(12)}\` |`);
    expect(md).toContain('| Ready | True | ReconciliationSucceeded |');
    expect(md).toContain('Plan: 2 to add, 1 to change, 0 to destroy.');
    expect(md).toContain('- Interfaces: `eth0`');
    expect(md).not.toContain('## Errors');
  });

  it('lists errors with file:line:column and pointer, escaping table syntax', () => {
    const md = renderStatusMarkdown(
      sampleReport('lb-1', {
        result: 'stalled',
        conditions: [
          { type: 'Ready', status: 'False', reason: 'ConfigInvalid', message: 'a | b\nc <script>', lastTransitionTime: '2024-05-01T10:00:00.000Z' },
          { type: 'Stalled', status: 'True', reason: 'ConfigInvalid', message: '1 error', lastTransitionTime: '2024-05-01T10:00:00.000Z' },
        ],
        plan: null,
        dataPlane: null,
        errors: [{ code: 'LB_CONFIG_SCHEMA', message: 'expected an integer 1..65535, got "eighty"', file: 'env/prod/lb.yaml', line: 12, column: 7, pointer: '/proxies/0/listen/port' }],
      }),
    );
    expect(md).toContain('**Stalled**: stalled');
    expect(md).toContain('| `env/prod/lb.yaml:12:7` | `/proxies/0/listen/port` | expected an integer 1..65535, got "eighty" | `LB_CONFIG_SCHEMA` |');
    expect(md).toContain('a \\| b<br>c &lt;script&gt;');
    expect(md).toContain('No plan was made.');
    expect(md).toContain('Not loaded.');
  });

  it('shows the runtime state per target and the DNS hosts', () => {
    const md = renderStatusMarkdown(sampleReport('lb-1', {
      runtime: sampleRuntimeStatus(), timestamps: { lastAttemptedAt: GENERATED_AT, lastAppliedAt: GENERATED_AT, generatedAt: GENERATED_AT },
    }));
    expect(md).toContain('## Targets');
    expect(md).toContain('| Proxy | Group | Target | Weight | Health | Circuit | Drain |');
    expect(md).toContain('| web | default | 10.0.0.2:8080 | 0/100 | unhealthy (ECONNREFUSED) | closed | draining (3 active, 25s left) |');
    expect(md).toContain('| api.test | stale | 10.0.1.1, 10.0.1.2 | ESERVFAIL |');
    expect(renderStatusMarkdown(sampleReport('lb-1'))).not.toContain('## Targets');
  });
});
