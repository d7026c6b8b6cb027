// stringifyYielding (src/daemon/json-yielding.ts): the text JSON.stringify gives, made in pieces
// with a turn of the event loop between them for a large value (the status file's report).
import { describe, expect, it } from 'vitest';
import { stringifyYielding } from '../../../src/daemon/json-yielding.js';

const report = (n: number): unknown => ({
  schema: 'lb.status/v1', at: new Date(0), skipped: undefined, fn: () => 1,
  runtime: { proxies: Array.from({ length: n }, (_, i) => ({ name: `svc-${i}`, targets: Array.from({ length: i % 50 === 0 ? 40 : 2 }, (_, j) => ({ addr: `10.0.${i % 250}.${j}:80`, weight: j, note: j % 2 ? undefined : 'x' })) })) },
  nested: { deeper: { rows: Array.from({ length: 40 }, (_, i) => [i, null, undefined, () => 0]) } },
  big: 12345678901234, text: 'quote " and \\ and \u0001',
});

describe('stringifyYielding', () => {
  it('gives exactly JSON.stringify\'s text, for small values and for a large report', async () => {
    const none = async (): Promise<void> => {};
    for (const v of [1, 'x', null, undefined, true, [], {}, [undefined, () => 1], { a: undefined }, { toJSON: () => ({ b: 2 }) }, report(3), report(5000)]) {
      expect(await stringifyYielding(v, none)).toBe(JSON.stringify(v) ?? '');
    }
  });

  it('pauses between pieces of a large value, never for a small one', async () => {
    let pauses = 0;
    const count = async (): Promise<void> => { pauses += 1; };
    await stringifyYielding(report(3), count);
    expect(pauses).toBe(0);
    const text = await stringifyYielding(report(5000), count);
    // Pieces of about 64 KB: at least one pause per 128 KB of text.
    expect(pauses).toBeGreaterThanOrEqual(Math.floor(text.length / (128 * 1024)));
  });
});
