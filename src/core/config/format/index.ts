// `lb fmt`: the canonical YAML of a config. Keys in the order the schema lists them (keys it does
// not know keep their order, after the known ones), short collections of plain values in flow
// style, strings quoted only where a plain scalar would read as something else and then with
// double quotes (convert/yaml-style.ts). Comments stay with the entry they are attached to.
// The result must read back as the same value, and formatting it again changes nothing. Pure.

import { isMap, isPair, isScalar, isSeq, parseDocument, type Document, type Pair } from 'yaml';
import { checkSameValue, type ConvertResult } from '../convert/index.js';
import { styleYaml, yamlText } from '../convert/yaml-style.js';
import { readSource } from '../read-source.js';
import { childOfList, childOfMap, keyOrder, orderIndex, rootPlace, type SchemaPlace } from './schema-order.js';

const MAX_DEPTH = 100;

function reorder(node: unknown, place: SchemaPlace, depth: number): void {
  if (depth > MAX_DEPTH) return;
  if (isMap(node)) {
    const order = keyOrder(place);
    const keyOf = (p: Pair): string => (isScalar(p.key) ? String(p.key.value) : '');
    // A stable sort: unknown keys keep their relative order.
    const indexed = node.items.map((p, i) => ({ p, i, o: orderIndex(order, keyOf(p)) }));
    indexed.sort((a, b) => a.o - b.o || a.i - b.i);
    node.items = indexed.map((x) => x.p);
    for (const p of node.items) if (isPair(p)) reorder(p.value, childOfMap(place, keyOf(p)), depth + 1);
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => reorder(item, childOfList(place, i), depth + 1));
  }
}

/** The comment above the root's first key heads the file (a modeline, a title): it stays at the top whatever key comes first. */
function pinHeader(doc: Document): void {
  const root = doc.contents;
  if (!isMap(root)) return;
  const first = root.items[0]?.key;
  if (isScalar(first) && first.commentBefore) {
    root.commentBefore = root.commentBefore ? `${root.commentBefore}\n${first.commentBefore}` : first.commentBefore;
    first.commentBefore = undefined;
  }
}

export function formatYamlText(file: string, text: string): ConvertResult {
  const read = readSource(file, text);
  if (!read.ok) {
    return { ok: false, diagnostics: read.errors.map((e) => ({ severity: 'error', stage: 'parse', file, pointer: '', message: e.message, line: e.line, column: e.column })) };
  }
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  const doc = parseDocument(body);
  pinHeader(doc);
  reorder(doc.contents, rootPlace(), 0);
  styleYaml(doc);
  return checkSameValue(file, read.value, yamlText(doc), 'yaml');
}
