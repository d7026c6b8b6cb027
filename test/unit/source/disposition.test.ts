import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/core/config/index.js';
import { LbError } from '../../../src/core/errors.js';
import { SourceError, dispositionOf, reasonFromCode } from '../../../src/source/index.js';

describe('dispositionOf', () => {
  it('reads a SourceError, an LbError with data.disposition, config errors, and unknowns', () => {
    const s = new SourceError('LB_SOURCE_UNREACHABLE', 'down', { disposition: 'transient', reason: 'RemoteUnreachable' });
    expect(dispositionOf(s)).toEqual({ disposition: 'transient', reason: 'RemoteUnreachable' });
    expect(s.data).toMatchObject({ disposition: 'transient', reason: 'RemoteUnreachable' });
    expect(dispositionOf(new LbError('LB_BPF_MAP', 'x', { disposition: 'waiting' })).disposition).toBe('waiting');
    const cfg = new ConfigError('schema', [{ severity: 'error', stage: 'schema', file: 'lb.yaml', pointer: '/a', line: 1, column: 1, message: 'bad' }]);
    expect(dispositionOf(cfg)).toEqual({ disposition: 'stalling', reason: 'ConfigSchema' });
    expect(dispositionOf(new LbError('LB_BPF_MAP', 'x'))).toEqual({ disposition: 'transient', reason: 'BpfMap' });
    expect(dispositionOf(new Error('?'))).toEqual({ disposition: 'transient', reason: 'InternalError' });
  });

  it('derives CamelCase reasons from codes', () => {
    expect(reasonFromCode('LB_SOURCE_REF_NOT_FOUND')).toBe('SourceRefNotFound');
  });
});
