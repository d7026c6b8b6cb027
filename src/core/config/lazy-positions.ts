// A PositionIndex that computes a pointer's line:column when it is asked for, from the fast
// reader's node tree, instead of storing one entry per node up front (half a million for a config
// of 10,000 proxies). It is still a Map, so every consumer keeps working: get and has answer from
// the tree; anything that iterates or changes the map fills it completely first. Pure.

import type { NodePosition, Position } from './diagnostics.js';
import { joinPointer, splitPointer } from './pointer.js';
import type { YamlNode } from './yaml-node-tree.js';

const ARRAY_INDEX = /^(?:0|[1-9][0-9]*)$/;
/** Children (keys and values) of a mapping searched by a scan rather than a key index. */
const SCAN_LIMIT = 32;

export class LazyPositionIndex extends Map<string, NodePosition> {
  private filled = false;
  private readonly keyIndexes = new Map<YamlNode, Map<string, number>>();

  /** `lineStarts`: offset of every line's first character, ascending, starting with 0. */
  constructor(
    private readonly root: YamlNode,
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
    let node = this.root;
    let key: YamlNode | undefined;
    for (const token of splitPointer(pointer)) {
      if (node.kind === 'mapping') {
        const i = this.keyPosition(node, token);
        if (i === undefined) return undefined;
        key = node.children[i];
        node = node.children[i + 1]!;
      } else if (node.kind === 'sequence' && ARRAY_INDEX.test(token)) {
        const item = node.children[Number(token)];
        if (item === undefined) return undefined;
        key = undefined;
        node = item;
      } else {
        return undefined;
      }
    }
    return this.positionOf(node, key);
  }

  /**
   * The index of `token`'s key among the map's children. A small map (most of a config: a proxy,
   * a listen, a target) is scanned: a Map per small mapping cost more to build than it saved.
   */
  private keyPosition(map: YamlNode, token: string): number | undefined {
    if (map.children.length > SCAN_LIMIT) return this.keyIndex(map).get(token);
    for (let i = 0; i < map.children.length; i += 2) if (String(map.children[i]!.result) === token) return i;
    return undefined;
  }

  /** Key name -> index of the key among the map's children; built the first time it is needed. */
  private keyIndex(map: YamlNode): Map<string, number> {
    let index = this.keyIndexes.get(map);
    if (index === undefined) {
      index = new Map();
      for (let i = 0; i < map.children.length; i += 2) index.set(String(map.children[i]!.result), i);
      this.keyIndexes.set(map, index);
    }
    return index;
  }

  private positionOf(node: YamlNode, key: YamlNode | undefined): NodePosition {
    const value = this.at(node.start);
    return key ? { key: this.at(key.start), value } : { value };
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
    const visit = (node: YamlNode, pointer: string, key: YamlNode | undefined): void => {
      super.set(pointer, this.positionOf(node, key));
      if (node.kind === 'mapping') {
        for (let i = 0; i < node.children.length; i += 2) {
          const k = node.children[i]!;
          visit(node.children[i + 1]!, joinPointer(pointer, String(k.result)), k);
        }
      } else if (node.kind === 'sequence') {
        node.children.forEach((item, i) => visit(item, joinPointer(pointer, i), undefined));
      }
    };
    visit(this.root, '', undefined);
    this.filled = true;
  }
}
