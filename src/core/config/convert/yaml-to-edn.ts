// A YAML config as EDN, the format of the original clj-ebpf-lb, its comments carried over: a
// comment above a node becomes `;;` lines above it, one after it `;` at the end of its line.
// Map keys become keywords; string values stay strings (the reader reads :kw and "kw" alike).
// Short maps and vectors of plain values go on one line. Pure.

import { isAlias, isMap, isPair, isScalar, isSeq, type Document, type Node } from 'yaml';
import { FLOW_MAX_CHARS } from './yaml-style.js';

export class EdnWriteError extends Error {}

/** A keyword name the EDN reader accepts (../edn.ts, isSymbolName), not starting like a number. */
const KEYWORD = /^[A-Za-z*+!\-_?<>=.&$%|][A-Za-z0-9*+!\-_?<>=.&$%|:#'/]*$/;

export function yamlToEdn(doc: Document): string {
  const lines: string[] = [];
  for (const c of commentLines(doc.commentBefore)) lines.push(`;;${c}`);
  // A comment right above the first key is the root map's (or that key's) in YAML; in EDN it
  // heads the file, above the opening brace. (The document is the caller's own copy: moved here.)
  const root = doc.contents as Node | null;
  for (const c of commentLines(root?.commentBefore)) lines.push(`;;${c}`);
  const firstKey = isMap(root) ? root.items[0]?.key : undefined;
  if (isScalar(firstKey) && firstKey.commentBefore) {
    for (const c of commentLines(firstKey.commentBefore)) lines.push(`;;${c}`);
    firstKey.commentBefore = undefined;
  }
  const body = doc.contents === null ? 'nil' : write(doc, doc.contents as Node, 0, true);
  lines.push(body);
  for (const c of commentLines(doc.comment)) lines.push(`;;${c}`);
  return `${lines.join('\n')}\n`;
}

function commentLines(c: string | null | undefined): string[] {
  return c ? c.split('\n').map((l) => (l === '' || l.startsWith(' ') ? l : ` ${l}`)) : [];
}

function resolve(doc: Document, node: unknown): unknown {
  return isAlias(node) ? node.resolve(doc) : node;
}

export function ednScalar(v: unknown): string {
  if (v === null || v === undefined) return 'nil';
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new EdnWriteError(`${v} has no EDN form lb reads`);
    return String(v);
  }
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'string') return ednString(v);
  throw new EdnWriteError(`a ${typeof v} value has no EDN form`);
}

function ednString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const code = ch.charCodeAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (code < 0x20 || code === 0x7f) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

function keyword(doc: Document, key: unknown): string {
  const k = resolve(doc, key);
  const name = isScalar(k) ? k.value : k;
  if (typeof name !== 'string' || !KEYWORD.test(name) || /^[+-]?\d/.test(name)) {
    throw new EdnWriteError(`the key ${JSON.stringify(name)} cannot be an EDN keyword (lb reads only keyword keys)`);
  }
  return `:${name}`;
}

function hasComments(n: unknown): boolean {
  const c = n as { commentBefore?: string | null; comment?: string | null } | null;
  return c !== null && typeof c === 'object' && ((c.commentBefore ?? '') !== '' || (c.comment ?? '') !== '');
}

/** One line, when the collection holds only commentless scalars and is short. */
function inline(doc: Document, node: Node): string | null {
  if (isMap(node)) {
    const parts: string[] = [];
    for (const p of node.items) {
      const v = resolve(doc, p.value);
      if (!isScalar(v) || hasComments(p.key) || hasComments(v)) return null;
      parts.push(`${keyword(doc, p.key)} ${ednScalar(v.value)}`);
    }
    const s = `{${parts.join(' ')}}`;
    return s.length <= FLOW_MAX_CHARS ? s : null;
  }
  if (isSeq(node)) {
    const parts: string[] = [];
    for (const i of node.items) {
      const v = resolve(doc, i);
      if (!isScalar(v) || hasComments(v)) return null;
      parts.push(ednScalar(v.value));
    }
    const s = `[${parts.join(' ')}]`;
    return s.length <= FLOW_MAX_CHARS ? s : null;
  }
  return null;
}

/** The EDN text of `node`, whose first character sits at column `col` (0-based); later lines are indented absolutely. */
function write(doc: Document, raw: unknown, col: number, leadDone = false): string {
  const node = resolve(doc, raw);
  if (isScalar(node)) return ednScalar(node.value);
  if (!isMap(node) && !isSeq(node)) throw new EdnWriteError('an unsupported YAML node (a tag lb does not read?)');
  const one = inline(doc, node);
  if (one !== null) return one;
  const pad = ' '.repeat(col + 1);
  const entries: string[] = [];
  let lastTrailing = false;
  const items = node.items as unknown[];
  items.forEach((item, i) => {
    const lines: string[] = [];
    // A comment above a block collection's first member is the collection's own in YAML; in EDN
    // it goes after the opening bracket, above that member.
    if (i === 0 && !leadDone) for (const c of commentLines(node.commentBefore)) lines.push(`;;${c}`);
    const lead = isPair(item) ? (resolve(doc, item.key) as Node) : (resolve(doc, item) as Node);
    for (const c of commentLines(lead?.commentBefore)) lines.push(`;;${c}`);
    let text: string;
    let trailing: string[];
    if (isPair(item)) {
      const k = keyword(doc, item.key);
      const v = resolve(doc, item.value) as Node | null;
      const value = v === null ? 'nil' : write(doc, v, col + 1 + k.length + 1);
      // A comment after the key (YAML `key: # ...` above a block) or after the value.
      trailing = [...commentLines(isScalar(item.key) ? item.key.comment : null), ...commentLines(v?.comment)];
      text = `${k} ${value}`;
    } else {
      text = write(doc, item, col + 1, true);
      trailing = commentLines((resolve(doc, item) as Node | null)?.comment);
    }
    // The first comment ends the line; more lines follow as comments of their own.
    if (trailing.length > 0) text += ` ;${trailing[0]!}${trailing.slice(1).map((c) => `\n${pad};;${c}`).join('')}`;
    lastTrailing = trailing.length > 0 && i === items.length - 1;
    lines.push(text);
    entries.push(lines.join(`\n${pad}`));
  });
  const [open, close] = isMap(node) ? ['{', '}'] : ['[', ']'];
  // After a trailing comment the closer needs a line of its own, or the comment would swallow it.
  return `${open}${entries.join(`\n${pad}`)}${lastTrailing ? `\n${' '.repeat(col)}` : ''}${close}`;
}
