// `lb convert`: a config file from EDN to YAML or back (or re-written in its own format), comments
// carried over where the target format has a place for them. Lossless for every value the readers
// produce: the converted text is read back and compared with the source's value before it is
// returned, so a conversion that would change the config is refused, never written. Pure.

import { parseDocument, type Document } from 'yaml';
import type { Diagnostic } from '../diagnostics.js';
import { configFormatOf, readSource, type ConfigFormat } from '../read-source.js';
import { ednDocument } from './edn-to-yaml.js';
import { EdnWriteError, yamlToEdn } from './yaml-to-edn.js';
import { styleYaml, yamlText } from './yaml-style.js';

export type ConvertResult = { ok: true; text: string } | { ok: false; diagnostics: Diagnostic[] };

/** The file name with the extension of `to` (lb.edn -> lb.yaml). */
export function convertedName(file: string, to: ConfigFormat): string {
  const dot = file.lastIndexOf('.');
  const slash = file.lastIndexOf('/');
  return `${dot > slash ? file.slice(0, dot) : file}.${to}`;
}

const fail = (file: string, message: string, line?: number, column?: number): ConvertResult => ({
  ok: false,
  diagnostics: [{ severity: 'error', stage: 'parse', file, pointer: '', message, ...(line !== undefined ? { line, column: column ?? 1 } : {}) }],
});

/** The YAML document of a config text in either format, comments attached. */
export function configDocument(file: string, text: string): { ok: true; doc: Document; value: unknown } | { ok: false; result: ConvertResult } {
  const read = readSource(file, text);
  if (!read.ok) {
    return { ok: false, result: { ok: false, diagnostics: read.errors.map((e) => ({ severity: 'error', stage: 'parse', file, pointer: '', message: e.message, line: e.line, column: e.column })) } };
  }
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  if (configFormatOf(file) === 'edn') return { ok: true, doc: ednDocument(body, read.value, read.positions), value: read.value };
  const doc = parseDocument(body, { keepSourceTokens: false });
  styleYaml(doc);
  return { ok: true, doc, value: read.value };
}

export function convertConfigText(file: string, text: string, to: ConfigFormat): ConvertResult {
  const got = configDocument(file, text);
  if (!got.ok) return got.result;
  let out: string;
  try {
    out = to === 'yaml' ? yamlText(got.doc) : yamlToEdn(got.doc);
  } catch (err) {
    if (err instanceof EdnWriteError) return fail(file, `cannot write it as EDN: ${err.message}`);
    throw err;
  }
  return checkSameValue(file, got.value, out, to);
}

/** Refuses an output that does not read back as the same value. */
export function checkSameValue(file: string, value: unknown, out: string, format: ConfigFormat): ConvertResult {
  const back = readSource(`out.${format}`, out);
  if (!back.ok) return fail(file, `the ${format.toUpperCase()} written would not read back (${back.errors[0]!.message}); nothing was written`);
  if (canonical(back.value) !== canonical(value)) return fail(file, `the ${format.toUpperCase()} written would read as a different value; nothing was written`);
  return { ok: true, text: out };
}

/** JSON with object keys sorted: equal for equal values whatever the key order. */
export function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (x !== null && typeof x === 'object' && !Array.isArray(x)
    ? Object.fromEntries(Object.keys(x).sort().map((k) => [k, (x as Record<string, unknown>)[k]]))
    : x));
}
