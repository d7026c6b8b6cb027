// An EDN config as YAML, its comments carried over (placed by edn-comments.ts). Keys keep the
// source order; keywords become plain strings, as the reader reads them. Pure.

import { Document, isCollection, isMap, isPair, isScalar, isSeq, type Node } from 'yaml';
import type { PositionIndex } from '../diagnostics.js';
import { splitPointer } from '../pointer.js';
import { placeComments, scanEdnComments } from './edn-comments.js';
import { styleYaml, yamlText } from './yaml-style.js';

/** The YAML document of an EDN text the reader read (`value`, `positions`), with its comments. */
export function ednDocument(text: string, value: unknown, positions: PositionIndex): Document {
  const doc = new Document(value);
  const head: string[] = [];
  const tail: string[] = [];
  for (const p of placeComments(scanEdnComments(text), positions)) {
    if (p.where === 'document-head') head.push(p.text);
    else if (p.where === 'document-tail') tail.push(p.text);
    else attach(doc, p.pointer, p.where, p.text);
  }
  if (head.length > 0) doc.commentBefore = head.join('\n');
  if (tail.length > 0) doc.comment = tail.join('\n');
  styleYaml(doc);
  return doc;
}

export function ednToYaml(text: string, value: unknown, positions: PositionIndex): string {
  return yamlText(ednDocument(text, value, positions));
}

const append = (prev: string | null | undefined, text: string): string => (prev ? `${prev}\n${text}` : text);

/** Puts a comment before or after the node at `pointer`: on a map entry's key, or on a sequence item. */
function attach(doc: Document, pointer: string, where: 'before' | 'after', text: string): void {
  const tokens = splitPointer(pointer);
  const last = tokens.pop()!;
  const parent = nodeAt(doc.contents, tokens);
  if (isMap(parent)) {
    const pair = parent.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === last);
    if (!pair || !isScalar(pair.key)) return;
    // Before an entry: above its key. After it: at the end of its value's line (styleYaml moves
    // it to the key's line when the value is written as a block).
    if (where === 'before') pair.key.commentBefore = append(pair.key.commentBefore, text);
    else if (isScalar(pair.value) || isCollection(pair.value)) pair.value.comment = append(pair.value.comment, text);
  } else if (isSeq(parent)) {
    const item = parent.items[Number(last)] as Node | undefined;
    if (!item) return;
    if (where === 'before') item.commentBefore = append(item.commentBefore, text);
    else item.comment = append(item.comment, text);
  }
}

/** The node a pointer's tokens lead to: map keys compared as strings, sequence items by index. */
export function nodeAt(root: unknown, tokens: readonly string[]): unknown {
  let node = root;
  for (const t of tokens) {
    if (isMap(node)) node = node.items.find((p) => isScalar(p.key) && String(p.key.value) === t)?.value;
    else if (isSeq(node)) node = node.items[Number(t)];
    else return undefined;
  }
  return node;
}
