import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/core/config/index.js';
import { reportErrorsFrom } from '../../../src/report/index.js';
import { SourceError } from '../../../src/source/index.js';

describe('reportErrorsFrom', () => {
  it('gives one entry per config diagnostic, with repository-relative file and position', () => {
    const root = '/var/lib/lb/default/source/checkouts/abc-1234';
    const err = new ConfigError('schema', [
      { severity: 'error', stage: 'schema', file: `${root}/env/prod/lb.yaml`, pointer: '/proxies/0/listen/port', line: 12, column: 7, message: 'expected an integer' },
      { severity: 'warning', stage: 'schema', file: `${root}/env/prod/lb.yaml`, pointer: '/x', line: 1, column: 1, message: 'just a warning' },
    ]);
    expect(reportErrorsFrom(err, root)).toEqual([
      { code: 'LB_CONFIG_SCHEMA', message: 'expected an integer', file: 'env/prod/lb.yaml', line: 12, column: 7, pointer: '/proxies/0/listen/port' },
    ]);
  });

  it('gives one entry with the code for other errors', () => {
    const err = new SourceError('LB_SOURCE_REF_NOT_FOUND', 'ref "x" not found', { disposition: 'stalling', reason: 'RefNotFound' });
    expect(reportErrorsFrom(err)).toEqual([{ code: 'LB_SOURCE_REF_NOT_FOUND', message: 'ref "x" not found' }]);
  });
});
