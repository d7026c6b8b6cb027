// The streaming pack check (src/source/pack-guard.ts): a real pack from git passes whatever the
// chunking, an object whose header is over the cap is refused before any of it is inflated, and a
// header that understates the inflated size, a delta whose result is over the cap, or a pack that
// inflates past the total cap is refused too.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SourceError } from '../../../src/source/disposition.js';
import { PackInspector, type PackLimits } from '../../../src/source/pack-guard.js';
import { isolatedEnv, removeDir, tempDir } from '../../lib/git-fixtures.js';

const MiB = 1024 * 1024;
const ROOMY: PackLimits = { maxObjectBytes: 64 * MiB, maxInflatedBytes: 1024 * MiB };

let dir: string;
let gitPack: Buffer;
let gitObjectsTotal = 0;

/** A pack entry header: type and inflated size as git writes them. */
function entryHeader(type: number, size: number): Buffer {
  const bytes: number[] = [];
  let b = (type << 4) | (size & 15);
  let rest = Math.floor(size / 16);
  while (rest > 0) {
    bytes.push(b | 0x80);
    b = rest & 0x7f;
    rest = Math.floor(rest / 128);
  }
  bytes.push(b);
  return Buffer.from(bytes);
}

function varint(n: number): Buffer {
  const bytes: number[] = [];
  let rest = n;
  do {
    let b = rest & 0x7f;
    rest = Math.floor(rest / 128);
    if (rest > 0) b |= 0x80;
    bytes.push(b);
  } while (rest > 0);
  return Buffer.from(bytes);
}

function pack(entries: Buffer[]): Buffer {
  const head = Buffer.alloc(12);
  head.write('PACK', 0, 'latin1');
  head.writeUInt32BE(2, 4);
  head.writeUInt32BE(entries.length, 8);
  const body = Buffer.concat([head, ...entries]);
  return Buffer.concat([body, createHash('sha1').update(body).digest()]);
}

async function inspect(bytes: Buffer, limits: PackLimits, chunk = 4096): Promise<PackInspector> {
  const g = new PackInspector(limits, 'http://127.0.0.1/x.git');
  try {
    for (let i = 0; i < bytes.length; i += chunk) await g.push(bytes.subarray(i, i + chunk));
  } finally {
    g.close();
  }
  return g;
}

async function refusal(p: Promise<unknown>): Promise<SourceError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected a refusal').toBeInstanceOf(SourceError);
  return err as SourceError;
}

beforeAll(async () => {
  dir = await tempDir('lb-packguard-');
  const env = isolatedEnv(dir);
  const g = (args: string[], input?: string): Buffer => execFileSync('git', ['-C', join(dir, 'r'), ...args], { env, ...(input !== undefined ? { input } : {}) });
  execFileSync('git', ['init', '-q', '-b', 'main', join(dir, 'r')], { env });
  const big = Array.from({ length: 20_000 }, (_, i) => `${i}`).join('\n');
  for (let i = 0; i < 30; i++) writeFileSync(join(dir, 'r', `f${i}.txt`), `file ${i} ${'x'.repeat(i)}\n`);
  writeFileSync(join(dir, 'r', 'big.txt'), `${big}\n`);
  g(['add', '.']);
  g(['commit', '-qm', 'one']);
  writeFileSync(join(dir, 'r', 'big.txt'), `${big}\nmore\n`);
  g(['commit', '-qam', 'two']);
  const objects = g(['rev-list', '--objects', '--all']).toString();
  gitPack = execFileSync('git', ['-C', join(dir, 'r'), 'pack-objects', '--stdout'], { env, input: objects, maxBuffer: 64 * MiB });
  writeFileSync(join(dir, 'p.pack'), gitPack);
  execFileSync('git', ['index-pack', '-o', join(dir, 'p.idx'), join(dir, 'p.pack')], { env });
  const verify = execFileSync('git', ['verify-pack', '-v', join(dir, 'p.idx')], { env }).toString();
  // verify-pack prints "<oid> <type> <size> <size-in-pack> <offset> [<depth> <base>]"; for a delta, size is the delta's.
  for (const m of verify.matchAll(/^[0-9a-f]{40} \w+ +(\d+) +\d+ +\d+/gm)) gitObjectsTotal += Number(m[1]);
  expect(verify).toMatch(/^[0-9a-f]{40} blob +\d+ +\d+ +\d+ +1 +[0-9a-f]{40}$/m); // the fixture holds a delta
});

afterAll(async () => {
  await removeDir(dir);
});

describe('PackInspector', () => {
  it('passes a pack git wrote, whatever the chunking', async () => {
    for (const chunk of [1, 7, 4096, gitPack.length]) {
      const g = await inspect(gitPack, ROOMY, chunk);
      expect(g.totals.inflatedBytes, `chunk ${chunk}`).toBe(gitObjectsTotal);
    }
  });

  it('refuses an object whose header is over the cap, before inflating any of it', async () => {
    // The header says 2 GiB; the data that follows is not even a zlib stream: it is never read.
    const bomb = pack([Buffer.concat([entryHeader(3, 2 * 1024 * MiB), Buffer.from('not zlib at all')])]);
    const err = await refusal(inspect(bomb, ROOMY));
    expect(err.code).toBe('LB_SOURCE_CHECKOUT');
    expect(err.reason).toBe('ObjectTooLarge');
    expect(err.disposition).toBe('stalling');
    expect(err.message).toContain('blob of 2 GiB (2147483648 bytes), over the 64 MiB object cap');
  });

  it('refuses an object that inflates past the size its header declares', async () => {
    const lie = pack([Buffer.concat([entryHeader(3, 10), deflateSync(Buffer.alloc(4 * MiB))])]);
    const err = await refusal(inspect(lie, ROOMY));
    expect(err.code).toBe('LB_SOURCE_FETCH');
    expect(err.message).toContain('inflates past the 10 bytes its header declares');
  });

  it('refuses a delta whose result is over the cap', async () => {
    const base = Buffer.from('base\n');
    const delta = Buffer.concat([varint(base.length), varint(3 * 1024 * MiB), Buffer.from([0x90, 0x05])]);
    const ofs = Buffer.concat([entryHeader(6, delta.length), Buffer.from([0x40 + 2]), deflateSync(delta)]);
    const p = pack([Buffer.concat([entryHeader(3, base.length), deflateSync(base)]), ofs]);
    const err = await refusal(inspect(p, ROOMY));
    expect(err.reason).toBe('ObjectTooLarge');
    expect(err.message).toContain('delta result of 3 GiB');
  });

  it('refuses a pack whose objects inflate past the total cap', async () => {
    const one = Buffer.concat([entryHeader(3, MiB), deflateSync(Buffer.alloc(MiB))]);
    const err = await refusal(inspect(pack([one, one, one, one]), { maxObjectBytes: 2 * MiB, maxInflatedBytes: 3 * MiB }));
    expect(err.reason).toBe('PackTooLarge');
    expect(err.message).toContain('more than 3 MiB in all');
  });

  it('refuses what is not a pack', async () => {
    const err = await refusal(inspect(Buffer.from('HTTP/1.1 200 OK\r\n\r\nhello'), ROOMY));
    expect(err.message).toContain('does not start with "PACK"');
  });
});
