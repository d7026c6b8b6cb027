// The deepest YAML nesting of a text, found in one linear pass before either YAML reader runs:
// both recurse per level. The `yaml` package, which gets any text the fast reader declines, took
// minutes and most of a GiB on 200,000 nested `[`, and 900 block mappings indented one space more
// each ran it out of stack. Pure.
//
// Two kinds of nesting, each bounded by MAX_NESTING (either reader's stack takes both at once):
// - flow collections (`[`, `{`), by their brackets; brackets inside quoted scalars and comments are
//   not counted. Brackets inside block scalars (`|`, `>`) are: a block scalar of more than
//   MAX_NESTING unclosed `[` is refused too, which no config of lb's has a use for;
// - block collections, by indentation: each line outside flow collections and block scalars opens
//   a level when it is indented deeper than the open levels, and closes those indented as deep or
//   deeper; every `- ` (or `? `) that starts a line's content opens one more (`- - x` is two
//   sequences). A plain scalar continued on ever deeper lines counts as nesting too (no config
//   does that a hundred times).

import { MAX_NESTING } from './limits.js';

export interface TooDeep {
  message: string;
  line: number;
  column: number;
}

/** Characters after which a quote opens a quoted scalar (elsewhere it is part of a plain scalar). */
const TOKEN_START = new Set([' ', '\n', '[', '{', ',', ':', '-', '?']);

/** A line whose value is a block scalar header: `|` or `>` with optional indicators, then at most a comment. */
const BLOCK_SCALAR_HEADER = /(?:^|[\s:-])[|>][0-9+-]{0,2}[ \t]*(?:#.*)?$/;

/** The first collection that opens past `max` levels, or undefined. */
export function yamlTooDeep(text: string, max = MAX_NESTING): TooDeep | undefined {
  let flow = 0;
  /** Indentation of each open block level, increasing. */
  const block: number[] = [];
  /** Indentation of the line that opened a block scalar, while its lines are being skipped; else -1. */
  let scalarParent = -1;
  let line = 1;
  let lineStart = 0;
  const tooDeep = (at: number): TooDeep => ({ message: `nesting deeper than ${max} levels`, line, column: at - lineStart + 1 });
  for (let i = 0; i < text.length; i++) {
    if (i === lineStart && flow === 0) {
      const end = lineEnd(text, i);
      let col = i;
      while (col < end && text[col] === ' ') col++;
      const blank = col === end || text[col] === '#' || text[col] === '\r';
      if (scalarParent >= 0 && (blank || col - i > scalarParent)) {
        // A line of a block scalar: its content is text, not structure. (An empty line is its
        // line break alone, handled below.)
        if (end > i) {
          i = end - 1;
          continue;
        }
      } else if (!blank) {
        scalarParent = -1;
        const indent = col - i;
        while (block.length > 0 && block[block.length - 1]! >= indent) block.pop();
        block.push(indent);
        if (block.length > max) return tooDeep(col);
        // `- - x`: each indicator opens a sequence inside the one before.
        while ((text[col] === '-' || text[col] === '?') && (text[col + 1] === ' ' || col + 1 === end)) {
          col += 2;
          while (col < end && text[col] === ' ') col++;
          if (col >= end) break;
          block.push(col - i);
          if (block.length > max) return tooDeep(col);
        }
        if (BLOCK_SCALAR_HEADER.test(text.slice(col, end))) scalarParent = indent;
      }
    }
    const c = text[i]!;
    if (c === '\n') {
      line++;
      lineStart = i + 1;
    } else if (c === '[' || c === '{') {
      if (++flow > max) return tooDeep(i);
    } else if (c === ']' || c === '}') {
      if (flow > 0) flow--;
    } else if (c === '#' && (i === 0 || text[i - 1] === ' ' || text[i - 1] === '\n')) {
      i = lineEnd(text, i) - 1;
    } else if ((c === '"' || c === "'") && (i === 0 || TOKEN_START.has(text[i - 1]!))) {
      // Skip the quoted scalar, counting the line breaks it spans.
      let j = i + 1;
      for (; j < text.length; j++) {
        const d = text[j]!;
        if (d === '\n') {
          line++;
          lineStart = j + 1;
        } else if (c === '"' && d === '\\') j++;
        else if (d === c) {
          if (c === "'" && text[j + 1] === "'") j++;
          else break;
        }
      }
      i = j;
    }
  }
  return undefined;
}

function lineEnd(text: string, from: number): number {
  const nl = text.indexOf('\n', from);
  return nl < 0 ? text.length : nl;
}
