// EDN reader with source positions, for the original's config files (clj-ebpf-lb).
//
// No npm EDN reader keeps positions, and diagnostics must name line:column, so this is a small
// reader of the data subset configs use: maps, vectors, lists, sets, keywords, strings, numbers,
// booleans, nil, `;` comments, commas as whitespace and `#_` discard. Keywords become strings
// (`:http` -> "http", map key `:dns-refresh-seconds` -> "dns-refresh-seconds"); vectors, lists
// and sets become arrays. Tagged literals, symbols, characters, ratios, metadata and reader macros
// are rejected with the reason, never guessed at. Pure: text in, value and positions out.

import type { NodePosition, Position, PositionIndex, ReadResult } from './diagnostics.js';
import { echo } from './echo.js';
import { joinPointer } from './pointer.js';
import { setOwn } from './own.js';
import { MAX_NESTING } from './limits.js';

/** Deeper nesting than any config needs; bounds the recursion on hostile input. */
const MAX_DEPTH = MAX_NESTING;

const DELIMITERS = new Set(['(', ')', '[', ']', '{', '}', '"', ';']);
const CLOSERS: Record<string, string> = { '(': ')', '[': ']', '{': '}' };
const COLLECTION_NAMES: Record<string, string> = { '(': 'list', '[': 'vector', '{': 'map', '#{': 'set' };

class EdnSyntaxError extends Error {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

/** A keyword read from the text; kept apart from strings until it is placed. */
class Keyword {
  constructor(readonly name: string) {}
}

/** A symbol: valid EDN, so allowed in discarded forms, but never a config value. */
class Sym {
  constructor(readonly name: string) {}
}

interface Form {
  value: unknown;
  offset: number;
}

export function readEdn(text: string): ReadResult {
  const reader = new EdnReader(text);
  try {
    return { ok: true, value: reader.readDocument(), positions: reader.positions };
  } catch (err) {
    if (!(err instanceof EdnSyntaxError)) throw err;
    const { line, column } = reader.position(err.offset);
    return { ok: false, errors: [{ message: err.message, line, column }] };
  }
}

class EdnReader {
  readonly positions: PositionIndex = new Map();
  private pos = 0;
  private readonly lineStarts: number[] = [0];

  constructor(private readonly text: string) {
    for (let i = 0; i < text.length; i++) if (text[i] === '\n') this.lineStarts.push(i + 1);
  }

  position(offset: number): Position {
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: offset - this.lineStarts[lo]! + 1 };
  }

  readDocument(): unknown {
    this.skipTrivia(0);
    if (this.pos >= this.text.length) {
      this.record('', { value: this.position(0) });
      return null;
    }
    const form = this.readForm('', 0, true);
    this.record('', { value: this.position(form.offset) });
    this.skipTrivia(0);
    if (this.pos < this.text.length) {
      throw new EdnSyntaxError('unexpected content after the top-level form; a config file holds one map', this.pos);
    }
    return toValue(form);
  }

  private record(pointer: string, position: NodePosition, live = true): void {
    if (live) this.positions.set(pointer, position);
  }

  /** Skips whitespace, commas, comments and `#_` discarded forms. */
  private skipTrivia(depth: number): void {
    if (depth > MAX_DEPTH) throw new EdnSyntaxError(`nesting deeper than ${MAX_DEPTH} levels`, this.pos);
    const t = this.text;
    while (this.pos < t.length) {
      const c = t[this.pos]!;
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === ',' || c === '\f' || c === '\v') {
        this.pos++;
      } else if (c === ';') {
        while (this.pos < t.length && t[this.pos] !== '\n') this.pos++;
      } else if (c === '#' && t[this.pos + 1] === '_') {
        const start = this.pos;
        this.pos += 2;
        // Nested discards (#_ #_ a b) recurse: count them as depth so hostile input cannot
        // exhaust the stack.
        this.skipTrivia(depth + 1);
        if (this.pos >= t.length || ')]}'.includes(t[this.pos]!)) {
          throw new EdnSyntaxError('#_ must be followed by the form it discards', start);
        }
        this.readForm('', depth + 1, false);
      } else {
        return;
      }
    }
  }

  /** Reads one form at this.pos (trivia already skipped). `live` false: discarded, no positions. */
  private readForm(pointer: string, depth: number, live: boolean): Form {
    if (depth > MAX_DEPTH) throw new EdnSyntaxError(`nesting deeper than ${MAX_DEPTH} levels`, this.pos);
    const t = this.text;
    const start = this.pos;
    const c = t[start];
    if (c === undefined) throw new EdnSyntaxError('unexpected end of input', start);
    if (c === '{' || c === '[' || c === '(') {
      this.pos++;
      return { value: this.readCollection(c, start, pointer, depth, live), offset: start };
    }
    if (c === ')' || c === ']' || c === '}') throw new EdnSyntaxError(`unmatched '${c}'`, start);
    if (c === '"') return { value: this.readString(), offset: start };
    if (c === '#') return this.readDispatch(pointer, depth, live);
    if (c === '\\') throw new EdnSyntaxError('character literals (\\c) are not supported; write a string', start);
    if (c === '^') throw new EdnSyntaxError('metadata (^) is not supported in a config', start);
    if (c === "'" || c === '`' || c === '~' || c === '@') {
      throw new EdnSyntaxError(`reader macro '${c}' is not EDN`, start);
    }
    return { value: this.readToken(), offset: start };
  }

  private readDispatch(pointer: string, depth: number, live: boolean): Form {
    const start = this.pos;
    const next = this.text[start + 1];
    if (next === '{') {
      this.pos += 2;
      return { value: this.readCollection('#{', start, pointer, depth, live), offset: start };
    }
    if (next !== undefined && /[A-Za-z]/.test(next)) {
      this.pos++;
      const tag = this.readRawToken();
      throw new EdnSyntaxError(
        `tagged literal #${echo(tag)} is not supported; a config holds plain data (maps, vectors, strings, numbers, keywords, booleans, nil)`,
        start,
      );
    }
    if (next === '#') throw new EdnSyntaxError('symbolic values (##Inf, ##NaN) are not supported', start);
    throw new EdnSyntaxError(`'#${echo(next ?? '')}' is not EDN (only #{...} sets and #_ discard are)`, start);
  }

  private readCollection(open: string, start: number, pointer: string, depth: number, live: boolean): unknown {
    const close = CLOSERS[open === '#{' ? '{' : open]!;
    const name = COLLECTION_NAMES[open]!;
    const t = this.text;
    const isMap = open === '{';
    const map: Record<string, unknown> = {};
    const keyOffsets = new Map<string, number>();
    const items: unknown[] = [];
    // A set's scalar members so far: a duplicate is found in O(1), not by scanning the set.
    const members = open === '#{' ? new Set<unknown>() : undefined;
    let pendingKey: { name: string; offset: number } | null = null;
    for (;;) {
      this.skipTrivia(depth + 1);
      if (this.pos >= t.length) throw new EdnSyntaxError(`unterminated ${name}: '${open}' is never closed with '${close}'`, start);
      const c = t[this.pos]!;
      if (c === ')' || c === ']' || c === '}') {
        if (c !== close) {
          const { line, column } = this.position(start);
          throw new EdnSyntaxError(`expected '${close}' to close the ${name} opened at ${line}:${column}, found '${c}'`, this.pos);
        }
        if (pendingKey) throw new EdnSyntaxError(`map key :${echo(pendingKey.name)} has no value`, pendingKey.offset);
        this.pos++;
        break;
      }
      if (isMap && pendingKey === null) {
        const keyForm = this.readForm('', depth + 1, false);
        if (!(keyForm.value instanceof Keyword)) {
          throw new EdnSyntaxError(`map keys must be keywords like :name, found ${describeForm(keyForm.value)}`, keyForm.offset);
        }
        const keyName = keyForm.value.name;
        const first = keyOffsets.get(keyName);
        if (first !== undefined) {
          const { line, column } = this.position(first);
          throw new EdnSyntaxError(`duplicate key :${echo(keyName)} (first at ${line}:${column})`, keyForm.offset);
        }
        keyOffsets.set(keyName, keyForm.offset);
        pendingKey = { name: keyName, offset: keyForm.offset };
        continue;
      }
      const childPointer = isMap ? joinPointer(pointer, pendingKey!.name) : joinPointer(pointer, items.length);
      const form = this.readForm(childPointer, depth + 1, live);
      const value = live ? toValue(form) : form.value;
      const valuePos = this.position(form.offset);
      if (isMap) {
        this.record(childPointer, { key: this.position(pendingKey!.offset), value: valuePos }, live);
        setOwn(map, pendingKey!.name, value);
        pendingKey = null;
      } else {
        if (members) checkSetMember(members, value, form.offset);
        this.record(childPointer, { value: valuePos }, live);
        items.push(value);
      }
    }
    return isMap ? map : items;
  }

  private readString(): string {
    const t = this.text;
    const start = this.pos;
    this.pos++;
    let out = '';
    for (;;) {
      if (this.pos >= t.length) throw new EdnSyntaxError('unterminated string', start);
      const c = t[this.pos]!;
      if (c === '"') {
        this.pos++;
        return out;
      }
      if (c !== '\\') {
        out += c;
        this.pos++;
        continue;
      }
      const e = t[this.pos + 1];
      const simple: Record<string, string> = { t: '\t', r: '\r', n: '\n', '\\': '\\', '"': '"', b: '\b', f: '\f' };
      if (e !== undefined && simple[e] !== undefined) {
        out += simple[e];
        this.pos += 2;
      } else if (e === 'u' && /^[0-9A-Fa-f]{4}$/.test(t.slice(this.pos + 2, this.pos + 6))) {
        out += String.fromCharCode(parseInt(t.slice(this.pos + 2, this.pos + 6), 16));
        this.pos += 6;
      } else {
        throw new EdnSyntaxError(`invalid escape \\${echo(e ?? '')} in string`, this.pos);
      }
    }
  }

  private readRawToken(): string {
    const t = this.text;
    const start = this.pos;
    while (this.pos < t.length) {
      const c = t[this.pos]!;
      if (DELIMITERS.has(c) || c === ',' || /\s/.test(c)) break;
      this.pos++;
    }
    return t.slice(start, this.pos);
  }

  /** A number, keyword, true / false / nil, or another symbol (placed only if discarded). */
  private readToken(): unknown {
    const start = this.pos;
    const token = this.readRawToken();
    if (token === '') throw new EdnSyntaxError(`unexpected character '${this.text[start]}'`, start);
    if (/^[+-]?\d/.test(token)) return parseNumber(token, start);
    if (token.startsWith(':')) {
      if (token.startsWith('::')) throw new EdnSyntaxError(`auto-resolved keyword ${echo(token)} is not EDN`, start);
      const name = token.slice(1);
      if (!isSymbolName(name)) throw new EdnSyntaxError(`invalid keyword ${echo(token)}`, start);
      return new Keyword(name);
    }
    if (token === 'true') return true;
    if (token === 'false') return false;
    if (token === 'nil') return null;
    if (!isSymbolName(token)) throw new EdnSyntaxError(`invalid token ${echo(token)}`, start);
    return new Sym(token);
  }
}

/**
 * Scalars compare by value (Set's SameValueZero is === for the numbers, strings, booleans and nil
 * a reader yields); collections and discarded forms are not compared, as before.
 */
function checkSetMember(members: Set<unknown>, value: unknown, offset: number): void {
  if (value !== null && typeof value === 'object') return;
  if (members.has(value)) throw new EdnSyntaxError(`duplicate set element ${echo(JSON.stringify(value))}`, offset);
  members.add(value);
}

/** A keyword in value position becomes its name: `:http` -> "http". A symbol is an error. */
function toValue(form: Form): unknown {
  const v = form.value;
  if (v instanceof Sym) throw new EdnSyntaxError(`unexpected symbol ${echo(v.name)}; write a string "${echo(v.name)}" or a keyword :${echo(v.name)}`, form.offset);
  return v instanceof Keyword ? v.name : v;
}

function isSymbolName(name: string): boolean {
  return /^[A-Za-z*+!\-_?<>=.&$%|][A-Za-z0-9*+!\-_?<>=.&$%|:#'/]*$/.test(name) && !name.endsWith('/');
}

function parseNumber(token: string, offset: number): number {
  const int = /^([+-]?)(\d+)N?$/.exec(token);
  if (int) {
    if (int[2]!.length > 1 && int[2]!.startsWith('0')) {
      throw new EdnSyntaxError(`number ${echo(token)} has a leading zero (Clojure would read it as octal); write it without`, offset);
    }
    const n = Number(`${int[1]}${int[2]}`);
    if (!Number.isSafeInteger(n)) throw new EdnSyntaxError(`integer ${echo(token)} is too large`, offset);
    return n;
  }
  const float = /^[+-]?(0|[1-9]\d*)(\.\d*)?([eE][+-]?\d+)?M?$/.exec(token);
  if (float && (float[2] !== undefined || float[3] !== undefined || token.endsWith('M'))) {
    const n = Number(token.replace(/M$/, ''));
    if (!Number.isFinite(n)) throw new EdnSyntaxError(`number ${echo(token)} is out of range`, offset);
    return n;
  }
  if (/^[+-]?\d+\/\d+$/.test(token)) throw new EdnSyntaxError(`ratio ${echo(token)} is not supported; write an integer`, offset);
  throw new EdnSyntaxError(`invalid number ${echo(token)}`, offset);
}

function describeForm(value: unknown): string {
  if (value === null) return 'nil';
  if (value instanceof Sym) return `the symbol ${value.name}`;
  if (typeof value === 'string') return `the string ${echo(JSON.stringify(value))}`;
  if (Array.isArray(value)) return 'a collection';
  if (typeof value === 'object') return 'a map';
  return String(value);
}
