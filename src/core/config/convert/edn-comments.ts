// The `;` comments of an EDN text, and where each belongs in the value the reader made of it, so a
// conversion can carry them over (EDN -> YAML). The reader (../edn.ts) skips comments; this scan
// finds them again: outside strings, a `;` starts a comment to the end of the line. Pure.

import type { Position, PositionIndex } from '../diagnostics.js';

export interface EdnComment {
  /** The text after the leading semicolons, e.g. " Primary web traffic handler". */
  text: string;
  line: number;
  column: number;
  /** Code precedes it on its line, not ending in an opening bracket: it comments that code. */
  trailing: boolean;
}

export function scanEdnComments(text: string): EdnComment[] {
  const out: EdnComment[] = [];
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\n') {
      line++;
      lineStart = i + 1;
    } else if (c === '"') {
      // Skip the string; a newline inside it still counts.
      for (i++; i < text.length && text[i] !== '"'; i++) {
        if (text[i] === '\\') i++;
        else if (text[i] === '\n') {
          line++;
          lineStart = i + 1;
        }
      }
    } else if (c === ';') {
      let end = text.indexOf('\n', i);
      if (end < 0) end = text.length;
      const before = text.slice(lineStart, i);
      out.push({ text: text.slice(i, end).replace(/^;+/, '').replace(/\s+$/, ''), line, column: i - lineStart + 1, trailing: /[^\s,]/.test(before) && !/[[{(]\s*$/.test(before) });
      i = end - 1;
    }
  }
  return out;
}

/** Where a comment goes: before or after the value at `pointer` ('' with `document`: the file's head or tail). */
export interface CommentPlacement {
  pointer: string;
  where: 'before' | 'after' | 'document-head' | 'document-tail';
  text: string;
}

interface Anchor {
  pointer: string;
  at: Position;
  depth: number;
}

const before = (a: Position, b: Position): boolean => a.line < b.line || (a.line === b.line && a.column < b.column);

/**
 * A full-line comment goes before the next value (the outermost one starting there); a trailing
 * comment after the value that starts last before it on its line (else the last one before it).
 * Comments before the root value head the document; those after every value end it.
 */
export function placeComments(comments: readonly EdnComment[], positions: PositionIndex): CommentPlacement[] {
  const root = positions.get('')?.value;
  const anchors: Anchor[] = [];
  for (const [pointer, pos] of positions) {
    if (pointer === '') continue;
    anchors.push({ pointer, at: pos.key ?? pos.value, depth: pointer.split('/').length });
  }
  // By position; at one position the outermost first.
  anchors.sort((a, b) => a.at.line - b.at.line || a.at.column - b.at.column || a.depth - b.depth);
  return comments.map((c): CommentPlacement => {
    const at: Position = { line: c.line, column: c.column };
    if (root === undefined || before(at, root)) return { pointer: '', where: 'document-head', text: c.text };
    if (c.trailing) {
      const target = trailingTarget(anchors, c.line, at) ?? anchors.filter((a) => before(a.at, at)).at(-1);
      if (target) return { pointer: target.pointer, where: 'after', text: c.text };
    }
    const next = anchors.find((a) => before(at, a.at));
    return next ? { pointer: next.pointer, where: 'before', text: c.text } : { pointer: '', where: 'document-tail', text: c.text };
  });
}

const within = (a: Anchor, outer: Anchor): boolean => a.pointer.startsWith(`${outer.pointer}/`);

/**
 * The value a trailing comment ends the line of: the outermost one starting on that line, unless
 * that value goes on past the line (a collection opened here), then the outermost of its members
 * on the line, and so on: `:listen {:interfaces [...] ; c` comments interfaces, not listen.
 */
function trailingTarget(anchors: readonly Anchor[], line: number, at: Position): Anchor | undefined {
  let onLine = anchors.filter((a) => a.at.line === line && before(a.at, at));
  let target = onLine.reduce<Anchor | undefined>((best, a) => (best === undefined || a.depth < best.depth ? a : best), undefined);
  while (target !== undefined && anchors.some((a) => a.at.line > line && within(a, target!))) {
    const outer: Anchor = target;
    onLine = onLine.filter((a) => within(a, outer));
    target = onLine.reduce<Anchor | undefined>((best, a) => (best === undefined || a.depth < best.depth ? a : best), undefined);
  }
  return target;
}
