// A PositionIndex that computes a pointer's line:column when it is asked for, from the fast
// reader's node tree, instead of storing one entry per node up front (half a million for a config
// of 10,000 proxies). It is still a Map, so every consumer keeps working: get and has answer from
// the tree; anything that iterates or changes the map fills it completely first. Pure.

import type { NodePosition, Position } from './diagnostics.js';
import { joinPointer, splitPointer } from './pointer.js';
import { MAPPING, SEQUENCE, type YamlTree } from './yaml-node-tree.js';

const ARRAY_INDEX = /^(?:0|[1-9][0-9]*)$/;
/** Children (keys and values) of a mapping searched by a scan rather than a key index. */
const SCAN_LIMIT = 32;

/** The array index pointer[start, end) names (as ARRAY_INDEX: no sign, no leading zero), or undefined. */
function arrayIndexAt(pointer: string, start: number, end: number): number | undefined {
  if (end <= start || end - start > 15) return undefined;
  if (pointer.charCodeAt(start) === 0x30 /* 0 */) return end - start === 1 ? 0 : undefined;
  let n = 0;
  for (let i = start; i < end; i++) {
    const digit = pointer.charCodeAt(i) - 0x30;
    if (digit < 0 || digit > 9) return undefined;
    n = n * 10 + digit;
  }
  return n;
}

export class LazyPositionIndex extends Map<string, NodePosition> {
  private filled = false;
  private readonly keyIndexes = new Map<number, Map<string, number>>();

  /** `lineStarts`: offset of every line's first character, ascending, starting with 0. */
  constructor(
    private readonly tree: YamlTree,
    private readonly lineStarts: readonly number[],
  ) {
    super();
  }

  override get(pointer: string): NodePosition | undefined {
    return this.filled ? super.get(pointer) : this.find(pointer);
  }

  override has(pointer: string): boolean {
    return this.get(pointer) !== undefined;
  }

  override get size(): number {
    this.fill();
    return super.size;
  }

  override set(pointer: string, position: NodePosition): this {
    this.fill();
    return super.set(pointer, position);
  }

  override delete(pointer: string): boolean {
    this.fill();
    return super.delete(pointer);
  }

  override clear(): void {
    this.fill();
    super.clear();
  }

  override forEach(fn: (value: NodePosition, key: string, map: Map<string, NodePosition>) => void, thisArg?: unknown): void {
    this.fill();
    super.forEach(fn, thisArg);
  }

  override keys(): MapIterator<string> {
    this.fill();
    return super.keys();
  }

  override values(): MapIterator<NodePosition> {
    this.fill();
    return super.values();
  }

  override entries(): MapIterator<[string, NodePosition]> {
    this.fill();
    return super.entries();
  }

  override [Symbol.iterator](): MapIterator<[string, NodePosition]> {
    this.fill();
    return super.entries();
  }

  private find(pointer: string): NodePosition | undefined {
    if (pointer.includes('~')) return this.findEscaped(pointer);
    // Walked in place: tokens are compared where they stand in the pointer, no array of them nor
    // substrings made (every SourceRef of the normalized config is looked up here, ~70,000 for
    // 10,000 proxies).
    const { kind, first, count, children } = this.tree;
    let node = this.tree.root;
    let key = -1;
    for (let from = 0; from < pointer.length;) {
      const slash = pointer.indexOf('/', from + 1);
      const end = slash === -1 ? pointer.length : slash;
      if (kind[node] === MAPPING) {
        const i = this.keyPositionAt(node, pointer, from + 1, end);
        if (i === undefined) return undefined;
        key = children[first[node]! + i]!;
        node = children[first[node]! + i + 1]!;
      } else if (kind[node] === SEQUENCE) {
        const index = arrayIndexAt(pointer, from + 1, end);
        if (index === undefined || index >= count[node]!) return undefined;
        key = -1;
        node = children[first[node]! + index]!;
      } else {
        return undefined;
      }
      from = end;
    }
    return this.positionOf(node, key);
  }

  /** find() for a pointer with escaped tokens (~0, ~1): split and unescaped first. */
  private findEscaped(pointer: string): NodePosition | undefined {
    const { kind, first, count, children } = this.tree;
    let node = this.tree.root;
    let key = -1;
    for (const token of splitPointer(pointer)) {
      if (kind[node] === MAPPING) {
        const i = this.keyPosition(node, token);
        if (i === undefined) return undefined;
        key = children[first[node]! + i]!;
        node = children[first[node]! + i + 1]!;
      } else if (kind[node] === SEQUENCE && ARRAY_INDEX.test(token)) {
        const index = Number(token);
        if (index >= count[node]!) return undefined;
        key = -1;
        node = children[first[node]! + index]!;
      } else {
        return undefined;
      }
    }
    return this.positionOf(node, key);
  }

  /** The name of the key at `node`. */
  private nameOf(node: number): string {
    return String(this.tree.result[node]);
  }

  /** keyPosition of the token pointer[start, end), compared in place in a small map. */
  private keyPositionAt(map: number, pointer: string, start: number, end: number): number | undefined {
    const n = this.tree.count[map]!;
    if (n > SCAN_LIMIT) return this.keyIndex(map).get(pointer.slice(start, end));
    const base = this.tree.first[map]!;
    const length = end - start;
    for (let i = 0; i < n; i += 2) {
      const name = this.nameOf(this.tree.children[base + i]!);
      if (name.length === length && pointer.startsWith(name, start)) return i;
    }
    return undefined;
  }

  /**
   * The position of `token`'s key among the map's children. A small map (most of a config: a
   * proxy, a listen, a target) is scanned: a Map per small mapping cost more to build than it saved.
   */
  private keyPosition(map: number, token: string): number | undefined {
    const n = this.tree.count[map]!;
    if (n > SCAN_LIMIT) return this.keyIndex(map).get(token);
    const base = this.tree.first[map]!;
    for (let i = 0; i < n; i += 2) if (this.nameOf(this.tree.children[base + i]!) === token) return i;
    return undefined;
  }

  /** Key name -> position of the key among the map's children; built the first time it is needed. */
  private keyIndex(map: number): Map<string, number> {
    let index = this.keyIndexes.get(map);
    if (index === undefined) {
      index = new Map();
      const base = this.tree.first[map]!;
      for (let i = 0; i < this.tree.count[map]!; i += 2) index.set(this.nameOf(this.tree.children[base + i]!), i);
      this.keyIndexes.set(map, index);
    }
    return index;
  }

  private positionOf(node: number, key: number): NodePosition {
    const value = this.at(this.tree.start[node]!);
    return key >= 0 ? { key: this.at(this.tree.start[key]!), value } : { value };
  }

  /** As the `yaml` package's LineCounter.linePos: 1-based line, column in UTF-16 code units. */
  private at(offset: number): Position {
    let low = 0;
    let high = this.lineStarts.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (this.lineStarts[mid]! <= offset) low = mid + 1;
      else high = mid;
    }
    return { line: low, column: offset - this.lineStarts[low - 1]! + 1 };
  }

  private fill(): void {
    if (this.filled) return;
    const { kind, first, count, children } = this.tree;
    const visit = (node: number, pointer: string, key: number): void => {
      super.set(pointer, this.positionOf(node, key));
      const base = first[node]!;
      if (kind[node] === MAPPING) {
        for (let i = 0; i < count[node]!; i += 2) {
          const k = children[base + i]!;
          visit(children[base + i + 1]!, joinPointer(pointer, this.nameOf(k)), k);
        }
      } else if (kind[node] === SEQUENCE) {
        for (let i = 0; i < count[node]!; i++) visit(children[base + i]!, joinPointer(pointer, i), -1);
      }
    };
    visit(this.tree.root, '', -1);
    this.filled = true;
  }
}
