// ClientHellos for the SNI tests: the real ones captured by scripts/capture-client-hellos.mjs, and
// a builder for what Node and OpenSSL do not send here (GREASE, ECH, odd framings).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const DIR = join(import.meta.dirname, '..', '..', 'fixtures', 'client-hello');

export interface Captured { name: string; bytes: Buffer }

export function capturedHellos(): Captured[] {
  return readdirSync(DIR).filter((f) => f.endsWith('.hex')).sort().map((f) => ({
    name: f.replace(/\.hex$/, ''),
    bytes: Buffer.from(readFileSync(join(DIR, f), 'utf8').trim(), 'hex'),
  }));
}

export function captured(name: string): Buffer {
  const hit = capturedHellos().find((h) => h.name === name);
  if (!hit) throw new Error(`no captured hello ${name}`);
  return hit.bytes;
}

const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
const vec16 = (b: Buffer): Buffer => Buffer.concat([u16(b.length), b]);

export function extension(type: number, body: Buffer): Buffer {
  return Buffer.concat([u16(type), vec16(body)]);
}

export function serverNameExt(...names: string[]): Buffer {
  const list = Buffer.concat(names.map((n) => Buffer.concat([Buffer.from([0]), vec16(Buffer.from(n, 'latin1'))])));
  return extension(0, vec16(list));
}

/** A handshake message body of a ClientHello with these extensions (null: none at all, as TLS 1.0 may). */
export function helloBody(extensions: Buffer[] | null, version = 0x0303): Buffer {
  const fixed = Buffer.concat([u16(version), Buffer.alloc(32, 7), Buffer.from([0]), vec16(Buffer.from([0x13, 0x01, 0x0a, 0x0a])), Buffer.from([1, 0])]);
  return extensions === null ? fixed : Buffer.concat([fixed, vec16(Buffer.concat(extensions))]);
}

/** The body as a handshake message split into records of at most recordSize payload bytes. */
export function records(body: Buffer, recordSize = 16384, recordVersion = 0x0301): Buffer {
  const message = Buffer.concat([Buffer.from([1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
  const out: Buffer[] = [];
  for (let at = 0; at < message.length; at += recordSize) {
    const part = message.subarray(at, at + recordSize);
    out.push(Buffer.concat([Buffer.from([22]), u16(recordVersion), u16(part.length), part]));
  }
  return Buffer.concat(out);
}
