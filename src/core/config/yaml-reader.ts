// YAML reader with source positions: the `yaml` package's document tree, walked into a plain JS
// value and a JSON pointer -> line:column index. YAML 1.2 core schema (so `on`, `yes` and `010`
// are what they look like), one document per file, unique keys, no custom tags. Anchors and
// aliases work; merge keys (<<) are a YAML 1.1 feature and are not supported. Pure.

import { LineCounter, isAlias, isMap, isScalar, isSeq, parseAllDocuments } from 'yaml';
import type { Document, Node, ParsedNode } from 'yaml';
import type { Position, PositionIndex, ReadResult, SyntaxIssue } from './diagnostics.js';
import { joinPointer } from './pointer.js';
import { setOwn } from './own.js';

const MAX_DEPTH = 100;
/** Values reached through aliases; bounds "billion laughs" expansion. */
const MAX_ALIAS_NODES = 10_000;

export function readYaml(text: string): ReadResult {
  const lineCounter = new LineCounter();
  const at = (offset: number): Position => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  let docs: ReturnType<typeof parseAllDocuments>;
  try {
    docs = parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: true, strict: true });
  } catch (err) {
    // The parser recurses; absurd nesting can exhaust the stack. Report it, never crash.
    return { ok: false, errors: [{ message: `YAML could not be parsed: ${(err as Error).message}`, line: 1, column: 1 }] };
  }
  const positions: PositionIndex = new Map();
  if (!Array.isArray(docs) || docs.length === 0) {
    positions.set('', { value: { line: 1, column: 1 } });
    return { ok: true, value: null, positions };
  }
  const errors: SyntaxIssue[] = [];
  const doc = docs[0]!;
  for (const e of [...doc.errors, ...doc.warnings]) errors.push({ message: e.message, ...at(e.pos[0]) });
  if (docs.length > 1) {
    const second = docs[1]!;
    errors.push({
      message: 'a config file holds one YAML document; put further proxies in the same list or in another file',
      ...at(second.range?.[0] ?? 0),
    });
  }
  if (errors.length > 0) return { ok: false, errors };
  const walker = new Walker(doc, at, positions, errors);
  const value = walker.walk(doc.contents as Node | null, '', 0, { line: 1, column: 1 });
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, value, positions };
}

class Walker {
  private aliasNodes = 0;

  constructor(
    private readonly doc: Document,
    private readonly at: (offset: number) => Position,
    private readonly positions: PositionIndex,
    private readonly errors: SyntaxIssue[],
  ) {}

  /** `fallback`: where an empty value (`key:` with nothing after it) is reported. */
  walk(node: Node | null, pointer: string, depth: number, fallback: Position, key?: Position, viaAlias = false): unknown {
    const here = node?.range ? this.at(node.range[0]) : fallback;
    if (!viaAlias) this.positions.set(pointer, key ? { key, value: here } : { value: here });
    if (depth > MAX_DEPTH) {
      this.errors.push({ message: `nesting deeper than ${MAX_DEPTH} levels (a recursive alias?)`, ...here });
      return null;
    }
    if (node === null) return null;
    if (isAlias(node)) {
      const target = node.resolve(this.doc);
      if (!target) {
        this.errors.push({ message: `unknown alias *${node.source}`, ...here });
        return null;
      }
      return this.walk(target, pointer, depth + 1, here, key, true);
    }
    if (viaAlias && ++this.aliasNodes > MAX_ALIAS_NODES) {
      // Said once: every alias still to walk would say it again (an alias bomb printed 80 lines).
      if (this.aliasNodes === MAX_ALIAS_NODES + 1) this.errors.push({ message: `aliases expand to more than ${MAX_ALIAS_NODES} values`, ...here });
      return null;
    }
    if (isScalar(node)) {
      const v = node.value;
      return typeof v === 'bigint' ? Number(v) : v;
    }
    if (isSeq(node)) {
      return node.items.map((item, i) =>
        this.walk(item as ParsedNode | null, joinPointer(pointer, i), depth + 1, here, undefined, viaAlias),
      );
    }
    if (isMap(node)) {
      const out: Record<string, unknown> = {};
      for (const pair of node.items) {
        const keyNode = pair.key as ParsedNode | null;
        const keyPos = keyNode?.range ? this.at(keyNode.range[0]) : here;
        if (!isScalar(keyNode) || !['string', 'number', 'boolean'].includes(typeof keyNode.value)) {
          this.errors.push({ message: 'map keys must be plain strings', ...keyPos });
          continue;
        }
        const name = String(keyNode.value);
        const valueNode = pair.value as ParsedNode | null;
        const valueFallback = keyNode.range ? this.at(keyNode.range[1]) : keyPos;
        setOwn(out, name, this.walk(valueNode, joinPointer(pointer, name), depth + 1, valueFallback, keyPos, viaAlias));
      }
      return out;
    }
    this.errors.push({ message: 'unsupported YAML node', ...here });
    return null;
  }
}
