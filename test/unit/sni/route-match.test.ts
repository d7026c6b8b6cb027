// SNI route selection as docs/config.md defines it: case-insensitive, exact over wildcard, longer
// wildcard over shorter, a wildcard never matching its own base name.
import { describe, expect, it } from 'vitest';
import { sniMatcher } from '../../../src/core/sni/route-match.js';

const routes = [
  { id: 'exact-api', hostname: 'api.example.com', wildcard: false },
  { id: 'any-example', hostname: 'example.com', wildcard: true },
  { id: 'any-eu', hostname: 'eu.example.com', wildcard: true },
  { id: 'exact-eu', hostname: 'shop.eu.example.com', wildcard: false },
];
const m = sniMatcher(routes);
const id = (name: string | null): string | null => m.match(name)?.id ?? null;

describe('sniMatcher', () => {
  it('matches exact names in any case', () => {
    expect(id('api.example.com')).toBe('exact-api');
    expect(id('API.Example.COM')).toBe('exact-api');
  });

  it('matches a wildcard for one or more labels, not for its base name', () => {
    expect(id('www.example.com')).toBe('any-example');
    expect(id('a.b.c.example.com')).toBe('any-example');
    expect(id('example.com')).toBeNull();
    expect(id('notexample.com')).toBeNull();
  });

  it('prefers an exact name, then the longest wildcard', () => {
    expect(id('shop.eu.example.com')).toBe('exact-eu');
    expect(id('x.eu.example.com')).toBe('any-eu');
    expect(id('eu.example.com')).toBe('any-example');
  });

  it('has no route for no name, an empty one or an unknown one', () => {
    expect(id(null)).toBeNull();
    expect(id('')).toBeNull();
    expect(id('example.org')).toBeNull();
    expect(sniMatcher([]).match('api.example.com')).toBeNull();
  });
});
