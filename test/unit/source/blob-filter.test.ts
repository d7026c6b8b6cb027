// The upload-pack request amended for a partial fetch (src/source/http.ts): `filter` joins the
// capabilities of the first want, and `filter blob:limit=N` comes after the deepen line and before
// the flush that ends the wants; a request of another shape is left alone.

import { describe, expect, it } from 'vitest';
import { SideBandDemux, withBlobFilter } from '../../../src/source/http.js';

function pkt(s: string): string {
  return `${(Buffer.byteLength(s) + 4).toString(16).padStart(4, '0')}${s}`;
}

const OID = 'a'.repeat(40);

describe('withBlobFilter', () => {
  it('adds the capability and the filter line where protocol v1 wants them', () => {
    const req = Buffer.from(`${pkt(`want ${OID} side-band-64k ofs-delta\n`)}${pkt('deepen 1\n')}0000${pkt('done\n')}`);
    const out = withBlobFilter(req, 67108865)?.toString();
    expect(out).toBe(`${pkt(`want ${OID} side-band-64k ofs-delta filter\n`)}${pkt('deepen 1\n')}${pkt('filter blob:limit=67108865\n')}0000${pkt('done\n')}`);
  });

  it('leaves a request of another shape alone', () => {
    expect(withBlobFilter(Buffer.from(`${pkt('done\n')}`), 10)).toBeUndefined();
    expect(withBlobFilter(Buffer.from('zzzz'), 10)).toBeUndefined();
    expect(withBlobFilter(Buffer.from(`${pkt(`want ${OID}\n`)}`), 10)).toBeUndefined(); // no flush
  });
});

describe('SideBandDemux', () => {
  it('returns the pack bytes of band 1 only, across chunk boundaries', () => {
    const stream = Buffer.from(`${pkt('NAK\n')}${pkt('\u0001PA')}${pkt('\u0002progress\n')}0000${pkt('\u0001CK')}0000`);
    const d = new SideBandDemux('x');
    const out: Buffer[] = [];
    for (let i = 0; i < stream.length; i += 3) out.push(...d.push(stream.subarray(i, i + 3)));
    expect(Buffer.concat(out).toString()).toBe('PACK');
  });
});
