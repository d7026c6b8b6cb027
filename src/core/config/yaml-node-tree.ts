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

export type YamlNodeKind = 'scalar' | 'mapping' | 'sequence';

export interface YamlNode {
  /** Offset (UTF-16 code units) where the `yaml` package's range of this node starts. */
  start: number;
  /** null: an empty value (`key:` with nothing after it). */
  kind: YamlNodeKind | null;
  /** For a mapping: key, value, key, value, ... in document order; for a sequence: the items. */
  children: YamlNode[];
  /** The value js-yaml made of the node (a key's name is String(result)). */
  result: unknown;
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

interface Frame {
  open: number;
  children: YamlNode[];
}

/** Thrown from the listener to stop js-yaml as soon as the fast path cannot vouch for the text. */
class Unsupported extends Error {}

const NO_CHILDREN: YamlNode[] = [];

/** The value and node tree of a one-document text, or undefined: read it with the `yaml` package. */
export function buildYamlTree(text: string): { value: unknown; root: YamlNode } | undefined {
  const stack: Frame[] = [];
  let root: YamlNode | undefined;
  const listener = (event: 'open' | 'close', state: ParserState): void => {
    if (event === 'open') {
      if (stack.length >= MAX_EVENT_DEPTH) throw new Unsupported();
      stack.push({ open: state.position, children: [] });
      return;
    }
    const node = closeNode(text, stack.pop()!, state);
    const parent = stack[stack.length - 1];
    if (parent) parent.children.push(node);
    else root = node;
  };
  let value: unknown;
  try {
    value = load(text, { schema: YAML_CORE_SCHEMA, listener: listener as never });
  } catch {
    // Unsupported, or a YAML error: the `yaml` package words syntax errors as lb always has.
    return undefined;
  }
  if (root === undefined || root.kind === null) return undefined;
  return { value, root };
}

function closeNode(text: string, frame: Frame, state: ParserState): YamlNode {
  if (state.anchor !== null || state.tag === '!') throw new Unsupported();
  const kind = state.kind as YamlNodeKind | null;
  const children = frame.children;
  // js-yaml reads a block sequence item or map value by first trying a block map, whose would-be
  // key turns out to be the whole value: the same node, reported twice.
  if (kind !== null && children.length === 1 && children[0]!.kind === kind && children[0]!.result === state.result) {
    return children[0]!;
  }
  if (kind === null) {
    if (children.length > 0 || state.result !== null) throw new Unsupported();
    return { start: skipSpaces(text, frame.open), kind, children: NO_CHILDREN, result: null };
  }
  const start = skipTrivia(text, frame.open);
  if (kind === 'scalar') {
    if (children.length > 0 || spansLines(text, start, state.position)) throw new Unsupported();
    return { start, kind, children: NO_CHILDREN, result: state.result };
  }
  const flow = text.charCodeAt(start) === 0x7b /* { */ || text.charCodeAt(start) === 0x5b; /* [ */
  if (flow && spansLines(text, start, state.position)) throw new Unsupported();
  if (kind === 'mapping') checkMapping(children, state.result, flow);
  else if (kind === 'sequence') checkSequence(children, state.result);
  else throw new Unsupported();
  return { start, kind, children, result: state.result };
}

function checkMapping(children: YamlNode[], result: unknown, flow: boolean): void {
  if (children.length % 2 !== 0 || result === null || typeof result !== 'object') throw new Unsupported();
  if (Object.keys(result).length * 2 !== children.length) throw new Unsupported();
  const values = result as Record<string, unknown>;
  for (let i = 0; i < children.length; i += 2) {
    const key = children[i]!;
    const value = children[i + 1]!;
    const keyType = typeof key.result;
    if (key.kind !== 'scalar' || (keyType !== 'string' && keyType !== 'number' && keyType !== 'boolean')) throw new Unsupported();
    // Each pair of events must be the very key and value the map holds.
    if (!Object.hasOwn(values, String(key.result)) || !Object.is(values[String(key.result)], value.result)) throw new Unsupported();
    // An empty value in a flow map sits where the `yaml` package decides; not worth copying.
    if (flow && value.kind === null) throw new Unsupported();
  }
}

function checkSequence(children: YamlNode[], result: unknown): void {
  // js-yaml emits no event for an empty item, and a flow pair ([a: 1]) emits two: either shows
  // here as a count that differs from the items.
  if (!Array.isArray(result) || result.length !== children.length) throw new Unsupported();
  // An explicit flow pair ([? a]) is one event, a scalar, for an item that is a map.
  children.forEach((c, i) => {
    if (c.kind === null || !Object.is(c.result, result[i])) throw new Unsupported();
  });
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
