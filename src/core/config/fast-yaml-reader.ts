// The fast YAML reader: js-yaml for the value, positions computed only when looked up. The
// `yaml` package (yaml-reader.ts) keeps the last word: any text this reader cannot prove it reads
// exactly as that one does, value and positions alike, goes to it, and so does every text with a
// syntax error, so its messages are unchanged. Pure.
//
// It reads a 10,000-proxy config several times faster than the `yaml` package, whose
// concrete-syntax-tree parse alone takes most of the time.

import type { ReadResult } from './diagnostics.js';
import { LazyPositionIndex } from './lazy-positions.js';
import { buildYamlTree } from './yaml-node-tree.js';
import { readYaml } from './yaml-reader.js';

/**
 * The `yaml` package's reader (with `strict`) rejects things js-yaml lets through, or reads them
 * differently; texts with any of these go to it:
 * - tabs (indentation rules), a carriage return not before a line feed (a line break to js-yaml
 *   only), a byte-order mark inside the text;
 * - `#` right after a token (`"a"#b` is an error there, a comment to js-yaml; also catches `a#b`);
 * - directives and document markers (`%`, `---`, `...` at a line start), except one `---` line
 *   opening the file;
 * - lines over 1000 characters (its 1024-character limit on implicit keys).
 */
const UNSUPPORTED_CHARACTERS = /\t|\r(?!\n)|\uFEFF|\S#/;
const MARKER = /^(?:%|---|\.\.\.)/gm;
const LEADING_DOCUMENT_START = /^---\r?\n/;
const MAX_LINE = 1000;

export function readYamlFast(text: string): ReadResult {
  return tryReadYamlFast(text) ?? readYaml(text);
}

/** The fast path alone: undefined when the text must go to the `yaml` package. */
export function tryReadYamlFast(text: string): ReadResult | undefined {
  if (UNSUPPORTED_CHARACTERS.test(text) || hasMarkers(text)) return undefined;
  const lineStarts = lineStartsOf(text);
  if (lineStarts === undefined) return undefined;
  const built = buildYamlTree(text);
  if (built === undefined) return undefined;
  return { ok: true, value: built.value, positions: new LazyPositionIndex(built.tree, lineStarts) };
}

function hasMarkers(text: string): boolean {
  for (const m of text.matchAll(MARKER)) {
    if (m.index !== 0 || !LEADING_DOCUMENT_START.test(text)) return true;
  }
  return false;
}

/** Offsets of the first character of every line; undefined when a line is too long. */
function lineStartsOf(text: string): number[] | undefined {
  const starts = [0];
  for (let nl = text.indexOf('\n'); nl !== -1; nl = text.indexOf('\n', nl + 1)) {
    if (nl - starts[starts.length - 1]! > MAX_LINE) return undefined;
    starts.push(nl + 1);
  }
  return text.length - starts[starts.length - 1]! > MAX_LINE ? undefined : starts;
}
