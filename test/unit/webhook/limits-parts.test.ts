// The receiver's bounding parts on their own: the in-flight byte budget's eviction order, the
// per-digest replay window, the secret-file flags, and the cleartext check for GitLab.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BodyReplayLimit, cameInCleartext, InFlightBudget, loadSecretFiles, parseSecretFileFlags } from '../../../src/webhook/index.js';

describe('InFlightBudget', () => {
  it('charges within the limit, then evicts the largest other holder, or refuses the largest itself', () => {
    const b = new InFlightBudget(100);
    const evicted: string[] = [];
    const a = b.open(() => evicted.push('a'));
    const c = b.open(() => evicted.push('c'));
    const d = b.open(() => evicted.push('d'));
    expect(b.charge(a, 50)).toBe(true);
    expect(b.charge(c, 30)).toBe(true);
    expect(b.charge(d, 10)).toBe(true);
    expect(b.used).toBe(90);
    // d needs 20 more: a (50) is the largest and gives way.
    expect(b.charge(d, 20)).toBe(true);
    expect(evicted).toEqual(['a']);
    expect([b.used, b.holders]).toEqual([60, 2]);
    // c would hold 30 + 50 = 80 > d's 30: c is refused, nothing is evicted.
    expect(b.charge(c, 50)).toBe(false);
    expect(evicted).toEqual(['a']);
    b.release(c);
    b.release(c);
    expect([b.used, b.holders]).toEqual([30, 1]);
    expect(b.charge(a, 1)).toBe(false); // a released: its account is closed
  });
});

describe('BodyReplayLimit', () => {
  it('admits a key at most `limit` times in a sliding window and forgets the oldest key at capacity', () => {
    let now = 0;
    const l = new BodyReplayLimit({ limit: 2, windowMs: 1000, capacity: 2, now: () => now });
    expect([l.admit('x'), l.admit('x'), l.admit('x')]).toEqual([true, true, false]);
    now = 999;
    expect(l.admit('x')).toBe(false);
    now = 1000;
    expect(l.admit('x')).toBe(true);
    l.admit('y');
    l.admit('z'); // capacity 2: 'x' (least recently accepted) is forgotten
    expect(l.size).toBe(2);
    expect([l.admit('x'), l.admit('x'), l.admit('x')]).toEqual([true, true, false]);
    expect(BodyReplayLimit.keyOf('github', Buffer.from('a'))).not.toBe(BodyReplayLimit.keyOf('gitea', Buffer.from('a')));
  });
});

describe('--webhook-secret-file', () => {
  it('a bare FILE serves github and gitea; PROVIDER=FILE adds or overrides one provider', () => {
    expect(parseSecretFileFlags(['/etc/lb/hook.secret'])).toEqual({ github: '/etc/lb/hook.secret', gitea: '/etc/lb/hook.secret' });
    expect(parseSecretFileFlags(['gitlab=/g', '/s', 'github=/h'])).toEqual({ github: '/h', gitea: '/s', gitlab: '/g' });
    expect(parseSecretFileFlags(['gitlab=/g'])).toEqual({ gitlab: '/g' });
    expect(parseSecretFileFlags(['./a=b'])).toEqual({ github: './a=b', gitea: './a=b' });
  });

  it('refuses a provider twice, two bare files, an unknown provider and an empty path', () => {
    expect(() => parseSecretFileFlags(['github=/a', 'github=/b'])).toThrow(/github is given twice \(\/a and \/b\)/);
    expect(() => parseSecretFileFlags(['/a', '/b'])).toThrow(/two shared secret files/);
    expect(() => parseSecretFileFlags(['bitbucket=/a'])).toThrow(/"bitbucket" is not a provider.*write \.\/bitbucket=\/a/);
    expect(() => parseSecretFileFlags(['gitlab='])).toThrow(/the file path is empty/);
  });

  it('loads each file once, without its trailing newline; an empty file is refused', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lb-hook-secrets-'));
    try {
      await writeFile(join(dir, 'hmac'), 'k1\n');
      await writeFile(join(dir, 'gl'), 'k2');
      await writeFile(join(dir, 'empty'), '\n');
      expect(await loadSecretFiles(parseSecretFileFlags([join(dir, 'hmac'), `gitlab=${join(dir, 'gl')}`]))).toEqual({ github: 'k1', gitea: 'k1', gitlab: 'k2' });
      await expect(loadSecretFiles({ gitlab: join(dir, 'empty') })).rejects.toThrow(/is empty/);
      await expect(loadSecretFiles({ github: join(dir, 'missing') })).rejects.toThrow(/cannot read the webhook secret file .*missing \(ENOENT\)/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('GitLab over cleartext', () => {
  it('is suspected unless the peer is on loopback or a proxy says https', () => {
    expect(cameInCleartext('203.0.113.7', undefined)).toBe(true);
    expect(cameInCleartext('203.0.113.7', 'http')).toBe(true);
    expect(cameInCleartext('203.0.113.7', 'https')).toBe(false);
    expect(cameInCleartext('203.0.113.7', 'HTTPS, http')).toBe(false);
    expect(cameInCleartext('127.0.0.1', undefined)).toBe(false);
    expect(cameInCleartext('::1', undefined)).toBe(false);
    expect(cameInCleartext('::ffff:127.0.0.1', undefined)).toBe(false);
  });
});
