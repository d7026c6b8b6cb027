// The acceptor's one-timer deadlines (src/acceptor/deadlines.ts): items expire in the order they
// were added, once, only when their deadline passed; a deleted item never expires; the timer stops
// when nothing waits. Time is given to expire() explicitly: no sleeps.
import { afterEach, describe, expect, it } from 'vitest';
import { Deadlines } from '../../../src/acceptor/deadlines.js';

describe('Deadlines', () => {
  const made: Deadlines<string>[] = [];
  const queue = (timeoutMs: number, expired: string[]): Deadlines<string> => {
    const d = new Deadlines<string>(timeoutMs, (item) => expired.push(item));
    made.push(d);
    return d;
  };
  afterEach(() => { for (const d of made.splice(0)) d.clear(); });

  it('expires the items whose deadline passed, oldest first, and keeps the others', () => {
    const expired: string[] = [];
    const d = queue(1000, expired);
    d.add('a', 0);
    d.add('b', 10);
    d.add('c', 500);
    d.expire(999);
    expect(expired).toEqual([]);
    d.expire(1010);
    expect(expired).toEqual(['a', 'b']);
    expect(d.size).toBe(1);
    d.expire(1010);
    expect(expired).toEqual(['a', 'b']);
    d.expire(1500);
    expect(expired).toEqual(['a', 'b', 'c']);
    expect(d.size).toBe(0);
  });

  it('never expires a deleted item, and a deleted head does not hold back the next', () => {
    const expired: string[] = [];
    const d = queue(100, expired);
    d.add('a', 0);
    d.add('b', 1);
    d.add('c', 2);
    d.delete('a');
    d.delete('c');
    d.delete('not there');
    d.expire(1000);
    expect(expired).toEqual(['b']);
  });

  it('a new length applies to items added after it', () => {
    const expired: string[] = [];
    const d = queue(100, expired);
    d.add('old', 0);
    d.setTimeout(1000);
    d.add('new', 0);
    d.expire(100);
    expect(expired).toEqual(['old']);
    d.expire(999);
    expect(expired).toEqual(['old']);
    d.expire(1000);
    expect(expired).toEqual(['old', 'new']);
  });

  it('fires on its own timer, within a resolution of the deadline', async () => {
    const fired = new Promise<string>((resolve) => {
      const d = new Deadlines<string>(30, resolve);
      made.push(d);
      d.add('x');
    });
    // The event itself is awaited (vitest's test timeout bounds it); no duration is asserted.
    expect(await fired).toBe('x');
  });

  it('clear() forgets every item without expiring it', () => {
    const expired: string[] = [];
    const d = queue(10, expired);
    d.add('a', 0);
    d.clear();
    d.expire(1e9);
    expect(expired).toEqual([]);
    expect(d.size).toBe(0);
  });
});
