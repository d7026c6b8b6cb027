// The fast half of YAML reading: js-yaml builds the value, and its parse events are kept as a
// small tree of node start offsets, so a line:column can be computed later for just the nodes a
// diagnostic or a source reference names. Pure.
//
// The tree records where the `yaml` package (yaml-reader.ts, the reference) would put each node:
// its first character, or for an empty map value the place right after the ":" and its spaces.
// Whatever this cannot prove it records the same way makes buildYamlTree return undefined, and
// the caller reads the text with the `yaml` package instead: anchors, aliases and tags;
// multi-line scalars and flow collections; empty values other than a block map's; keys that are
// not strings, numbers or booleans; anything js-yaml rejects.

import { load } from 'js-yaml';
import { YAML_CORE_SCHEMA } from './yaml-core-schema.js';

/** A node's kind: EMPTY is an empty value (`key:` with nothing after it). */
export const EMPTY = 0;
export const SCALAR = 1;
export const MAPPING = 2;
export const SEQUENCE = 3;
export type YamlNodeKind = typeof EMPTY | typeof SCALAR | typeof MAPPING | typeof SEQUENCE;

/**
 * The nodes of a document, by index, in flat arrays rather than an object per node: a
 * 10,000-proxy config has 300,000 of them, and as objects (with an array of children each) they
 * doubled the time of reading it, most of it the garbage collector's.
 */
export interface YamlTree {
  /** The root node's index. */
  readonly root: number;
  /** Offset (UTF-16 code units) where the `yaml` package's range of each node starts. */
  readonly start: Int32Array;
  readonly kind: Uint8Array;
  /** The value js-yaml made of each node (a key's name is String(result)). */
  readonly result: readonly unknown[];
  /**
   * A container's children are children[first, first + count): for a mapping key, value, key,
   * value, ... in document order; for a sequence the items.
   */
  readonly first: Int32Array;
  readonly count: Int32Array;
  readonly children: Int32Array;
}

/** The old reader reports nesting deeper than 100 levels; deeper trees go to it. */
const MAX_EVENT_DEPTH = 100;

/** What js-yaml's event listener sees of its state (fields beyond @types/js-yaml's State). */
interface ParserState {
  position: number;
  kind: string | null;
  result: unknown;
  tag: string | null;
  anchor: string | null;
}

/** Thrown from the listener to stop js-yaml as soon as the fast path cannot vouch for the text. */
class Unsupported extends Error {}

/** A growable list of int32. */
class IntList {
  data = new Int32Array(1024);
  length = 0;

  push(v: number): void {
    if (this.length === this.data.length) {
      const bigger = new Int32Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = v;
  }

  pop(): number {
    return this.data[--this.length]!;
  }

  trimmed(): Int32Array {
    return this.data.subarray(0, this.length);
  }
}

/** The tree as it is built: one entry per node in each list. */
class Builder {
  readonly start = new IntList();
  readonly kind: number[] = [];
  readonly result: unknown[] = [];
  readonly first = new IntList();
  readonly count = new IntList();
  readonly children = new IntList();
  /** Closed nodes whose parent is still open, in document order. */
  readonly pending = new IntList();

  add(start: number, kind: YamlNodeKind, result: unknown, mark: number, n: number): number {
    const id = this.kind.length;
    this.start.push(start);
    this.kind.push(kind);
    this.result.push(result);
    this.first.push(this.children.length);
    this.count.push(n);
    for (let i = mark; i < mark + n; i++) this.children.push(this.pending.data[i]!);
    return id;
  }

  tree(root: number): YamlTree {
    return {
      root, start: this.start.trimmed(), kind: Uint8Array.from(this.kind), result: this.result,
      first: this.first.trimmed(), count: this.count.trimmed(), children: this.children.trimmed(),
    };
  }
}

function kindOf(kind: string | null): YamlNodeKind | undefined {
  switch (kind) {
    case null: return EMPTY;
    case 'scalar': return SCALAR;
    case 'mapping': return MAPPING;
    case 'sequence': return SEQUENCE;
    default: return undefined;
  }
}

/** The value and node tree of a one-document text, or undefined: read it with the `yaml` package. */
export function buildYamlTree(text: string): { value: unknown; tree: YamlTree } | undefined {
  const b = new Builder();
  // Per open node: where it opened, and how many closed nodes were pending then (its children
  // are those pending above that mark when it closes).
  const opens = new IntList();
  const marks = new IntList();
  let root = -1;
  const listener = (event: 'open' | 'close', state: ParserState): void => {
    if (event === 'open') {
      if (opens.length >= MAX_EVENT_DEPTH) throw new Unsupported();
      opens.push(state.position);
      marks.push(b.pending.length);
      return;
    }
    const mark = marks.pop();
    const id = closeNode(b, text, opens.pop(), mark, b.pending.length - mark, state);
    b.pending.length = mark;
    b.pending.push(id);
    if (opens.length === 0) root = id;
  };
  let value: unknown;
  try {
    value = load(text, { schema: YAML_CORE_SCHEMA, listener: listener as never });
  } catch {
    // Unsupported, or a YAML error: the `yaml` package words syntax errors as lb always has.
    return undefined;
  }
  if (root === -1 || b.kind[root] === EMPTY) return undefined;
  return { value, tree: b.tree(root) };
}

/** The node a close event ends, children pending[mark, mark + n]: its index. */
function closeNode(b: Builder, text: string, open: number, mark: number, n: number, state: ParserState): number {
  if (state.anchor !== null || state.tag === '!') throw new Unsupported();
  const kind = kindOf(state.kind);
  if (kind === undefined) throw new Unsupported();
  // js-yaml reads a block sequence item or map value by first trying a block map, whose would-be
  // key turns out to be the whole value: the same node, reported twice.
  if (kind !== EMPTY && n === 1) {
    const only = b.pending.data[mark]!;
    if (b.kind[only] === kind && b.result[only] === state.result) return only;
  }
  if (kind === EMPTY) {
    if (n > 0 || state.result !== null) throw new Unsupported();
    return b.add(skipSpaces(text, open), kind, null, mark, 0);
  }
  const start = skipTrivia(text, open);
  if (kind === SCALAR) {
    if (n > 0 || spansLines(text, start, state.position)) throw new Unsupported();
    return b.add(start, kind, state.result, mark, 0);
  }
  const flow = text.charCodeAt(start) === 0x7b /* { */ || text.charCodeAt(start) === 0x5b; /* [ */
  if (flow && spansLines(text, start, state.position)) throw new Unsupported();
  if (kind === MAPPING) checkMapping(b, mark, n, state.result, flow);
  else checkSequence(b, mark, n, state.result);
  return b.add(start, kind, state.result, mark, n);
}

function checkMapping(b: Builder, mark: number, n: number, result: unknown, flow: boolean): void {
  if (n % 2 !== 0 || result === null || typeof result !== 'object') throw new Unsupported();
  if (Object.keys(result).length * 2 !== n) throw new Unsupported();
  const values = result as Record<string, unknown>;
  for (let i = mark; i < mark + n; i += 2) {
    const key = b.pending.data[i]!;
    const value = b.pending.data[i + 1]!;
    const keyResult = b.result[key];
    const keyType = typeof keyResult;
    if (b.kind[key] !== SCALAR || (keyType !== 'string' && keyType !== 'number' && keyType !== 'boolean')) throw new Unsupported();
    // Each pair of events must be the very key and value the map holds.
    const name = String(keyResult);
    if (!Object.hasOwn(values, name) || !Object.is(values[name], b.result[value])) throw new Unsupported();
    // An empty value in a flow map sits where the `yaml` package decides; not worth copying.
    if (flow && b.kind[value] === EMPTY) throw new Unsupported();
  }
}

function checkSequence(b: Builder, mark: number, n: number, result: unknown): void {
  // js-yaml emits no event for an empty item, and a flow pair ([a: 1]) emits two: either shows
  // here as a count that differs from the items.
  if (!Array.isArray(result) || result.length !== n) throw new Unsupported();
  // An explicit flow pair ([? a]) is one event, a scalar, for an item that is a map.
  for (let i = 0; i < n; i++) {
    const item = b.pending.data[mark + i]!;
    if (b.kind[item] === EMPTY || !Object.is(b.result[item], result[i])) throw new Unsupported();
  }
}

function spansLines(text: string, start: number, end: number): boolean {
  const nl = text.indexOf('\n', start);
  return nl !== -1 && nl < end;
}

function skipSpaces(text: string, i: number): number {
  while (text.charCodeAt(i) === 0x20) i++;
  return i;
}

/** Past spaces, line breaks and comments (the caller has ruled out tabs and `#` inside a token). */
function skipTrivia(text: string, i: number): number {
  for (;;) {
    const c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x0a || c === 0x0d) i++;
    else if (c === 0x23 /* # */) {
      const nl = text.indexOf('\n', i);
      if (nl === -1) return text.length;
      i = nl + 1;
    } else return i;
  }
}
