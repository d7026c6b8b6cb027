// The deepest YAML flow nesting (`[` and `{`) of a text, found in one linear pass before either
// YAML reader runs: both recurse per level, and the `yaml` package, which gets any text the fast
// reader declines, took minutes and most of a GiB on 200,000 nested `[`. Pure.
//
// Brackets inside quoted scalars and comments are not counted. Brackets inside block scalars
// (`|`, `>`) are: a block scalar of more than MAX_NESTING unclosed `[` is refused too, which no
// config of lb's has a use for.

import { MAX_NESTING } from './limits.js';

export interface TooDeep {
  message: string;
  line: number;
  column: number;
}

/** Characters after which a quote opens a quoted scalar (elsewhere it is part of a plain scalar). */
const TOKEN_START = new Set([' ', '\n', '[', '{', ',', ':', '-', '?']);

/** The first flow collection that opens past MAX_NESTING levels, or undefined. */
export function yamlTooDeep(text: string, max = MAX_NESTING): TooDeep | undefined {
  let depth = 0;
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\n') {
      line++;
      lineStart = i + 1;
    } else if (c === '[' || c === '{') {
      if (++depth > max) return { message: `nesting deeper than ${max} levels`, line, column: i - lineStart + 1 };
    } else if (c === ']' || c === '}') {
      if (depth > 0) depth--;
    } else if (c === '#' && (i === 0 || text[i - 1] === ' ' || text[i - 1] === '\n')) {
      const nl = text.indexOf('\n', i);
      i = (nl < 0 ? text.length : nl) - 1;
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
