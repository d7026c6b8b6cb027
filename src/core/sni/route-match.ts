// Which SNI route a server name selects, by the rules of docs/config.md (sni-routes): names compare
// case-insensitively; an exact name wins over a wildcard, a longer wildcard over a shorter one; a
// wildcard "*.example.com" matches one or more labels before ".example.com", never "example.com".
// Built once per proxy, so a lookup costs one map probe per label of the name.

/** The part of a route the matcher reads (config SniRoute fits). */
export interface SniRouteName {
  /** Lower case, without the "*." of a wildcard. */
  hostname: string;
  wildcard: boolean;
}

export interface SniMatcher<R extends SniRouteName> {
  /** The route for a name (any case), or null: fall back to the source routes and the default target. */
  match(serverName: string | null): R | null;
}

export function sniMatcher<R extends SniRouteName>(routes: readonly R[]): SniMatcher<R> {
  const exact = new Map<string, R>();
  const wildcard = new Map<string, R>();
  for (const r of routes) {
    const table = r.wildcard ? wildcard : exact;
    const key = r.hostname.toLowerCase();
    // The config refuses duplicates; should one slip through, the first route keeps the name.
    if (!table.has(key)) table.set(key, r);
  }
  return {
    match(serverName) {
      if (serverName === null || serverName === '') return null;
      const name = serverName.toLowerCase();
      const hit = exact.get(name);
      if (hit) return hit;
      if (wildcard.size === 0) return null;
      // Suffixes from the longest ("b.example.com" of "a.b.example.com") to the shortest: the
      // first one found is the longest wildcard. A suffix starts after a dot that has a label before it.
      for (let dot = name.indexOf('.'); dot > 0 && dot < name.length - 1; dot = name.indexOf('.', dot + 1)) {
        const w = wildcard.get(name.slice(dot + 1));
        if (w) return w;
      }
      return null;
    },
  };
}
