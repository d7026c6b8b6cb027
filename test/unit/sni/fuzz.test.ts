// Fuzz: random mutations and truncations of the captured ClientHellos (deterministic, seeded), fed
// whole and in random segments. The parser must never throw, must give the same verdict however
// the bytes are cut, and must never report a name that is not a lower-case DNS name.
import { describe, expect, it } from 'vitest';
import { parseClientHello } from '../../../src/core/sni/client-hello.js';
import { capturedHellos, helloBody, records, serverNameExt } from './hellos.js';
import { prng } from '../../lib/prng.js';

const CASES = 20000;
const SEED = 0x5e1ec7;
const NAME = /^[a-z0-9._-]{1,253}$/;

function mutate(base: Buffer, rand: () => number): Buffer {
  const b = Buffer.from(base);
  const pick = (n: number): number => Math.floor(rand() * n);
  switch (pick(5)) {
    case 0: for (let i = 1 + pick(4); i > 0; i--) b[pick(b.length)] = pick(256); return b;
    case 1: return b.subarray(0, pick(b.length + 1));
    case 2: { const at = pick(b.length); return Buffer.concat([b.subarray(0, at), Buffer.from([pick(256), pick(256)]), b.subarray(at)]); }
    case 3: { const at = pick(b.length - 1); b.writeUInt16BE([0, 1, 0xffff, pick(65536)][pick(4)]!, at); return b; }
    default: { const at = pick(b.length); return Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + pick(8))]); }
  }
}

describe('parseClientHello fuzz', () => {
  it(`survives ${CASES} mutated hellos, whole and cut into segments`, () => {
    const rand = prng(SEED);
    const bases = [...capturedHellos().map((h) => h.bytes), records(helloBody([serverNameExt('f.example.com')]), 3)];
    const kinds = { hello: 0, invalid: 0, incomplete: 0 };
    for (let i = 0; i < CASES; i++) {
      const bytes = mutate(bases[i % bases.length]!, rand);
      const whole = parseClientHello(bytes);
      kinds[whole.kind]++;
      if (whole.kind === 'hello' && whole.hello.serverName !== null) expect(whole.hello.serverName).toMatch(NAME);
      // As the acceptor sees it: growing prefixes. Once decided, the verdict holds for every longer prefix.
      let decided: string | null = null;
      for (let cut = 0; cut <= bytes.length; cut += 1 + Math.floor(rand() * 64)) {
        const v = parseClientHello(bytes.subarray(0, cut));
        if (decided !== null) expect(JSON.stringify(v)).toBe(decided);
        else if (v.kind !== 'incomplete') decided = JSON.stringify(v);
      }
      if (decided !== null) expect(JSON.stringify(whole)).toBe(decided);
    }
    // Each outcome is reached, so the mutations exercise the parser and not one early return.
    expect(Math.min(kinds.hello, kinds.invalid, kinds.incomplete)).toBeGreaterThan(CASES / 50);
  });
});
