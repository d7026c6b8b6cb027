// Every error code in the registry is documented in docs/errors.md, and the doc names no code
// that does not exist (fastify's errors test).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, LbError, isLbError } from '../../src/core/errors.js';

describe('error registry', () => {
  const doc = readFileSync('docs/errors.md', 'utf8');
  const documented = new Set([...doc.matchAll(/`(LB_[A-Z0-9_]+)`/g)].map((m) => m[1]));

  it('documents every code', () => {
    const missing = Object.keys(ERROR_CODES).filter((c) => !documented.has(c));
    expect(missing).toEqual([]);
  });

  it('documents no code that does not exist', () => {
    const unknown = [...documented].filter((c) => !(c! in ERROR_CODES));
    expect(unknown).toEqual([]);
  });

  it('codes follow LB_<AREA>_<WHAT>', () => {
    for (const code of Object.keys(ERROR_CODES)) expect(code).toMatch(/^LB_[A-Z0-9]+_[A-Z0-9_]+$/);
  });

  it('LbError carries code, data and cause', () => {
    const cause = new Error('root');
    const err = new LbError('LB_BPF_MAP', 'update failed', { map: 'lb_ctl' }, { cause });
    expect(isLbError(err, 'LB_BPF_MAP')).toBe(true);
    expect(isLbError(err, 'LB_BPF_LOAD')).toBe(false);
    expect(err.data).toEqual({ map: 'lb_ctl' });
    expect(err.cause).toBe(cause);
  });
});
