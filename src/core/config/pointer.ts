// JSON pointers (RFC 6901): how diagnostics and the position index name a place in a config.

/** Escapes one reference token (~ -> ~0, / -> ~1). */
export function escapeToken(token: string | number): string {
  const s = String(token);
  return s.includes('~') || s.includes('/') ? s.replace(/~/g, '~0').replace(/\//g, '~1') : s;
}

/** Appends reference tokens to a pointer: joinPointer('/proxies', 0, 'name') -> '/proxies/0/name'. */
export function joinPointer(pointer: string, ...tokens: (string | number)[]): string {
  let out = pointer;
  for (const t of tokens) out += typeof t === 'number' ? `/${t}` : `/${escapeToken(t)}`;
  return out;
}

/** Splits a pointer into its unescaped reference tokens ('' -> []). */
export function splitPointer(pointer: string): string[] {
  if (pointer === '') return [];
  const tokens = pointer.slice(1).split('/');
  // Most pointers escape nothing: no two regex passes per token then (every SourceRef of the
  // normalized config is located through here, ~70,000 for 10,000 proxies).
  return pointer.includes('~') ? tokens.map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~')) : tokens;
}

/** The pointer of the enclosing value ('' for the root and its children). */
export function parentPointer(pointer: string): string {
  const i = pointer.lastIndexOf('/');
  return i <= 0 ? '' : pointer.slice(0, i);
}
