// native/door_sni.c (the door's fast path for the SNI) against its authority, parseClientHello in
// src/core/sni/client-hello.ts. A C driver linking door_sni.c reads every input from stdin and
// prints one verdict a line; it runs once over all of them. The contract checked on each input:
// NAME or NONE only where TS reads a hello with that serverName (or null), and ASK wherever TS
// reads a hello whole in the first record with at most 64 extensions (the fast path's scope), so
// the C side can neither lie nor quietly slow-path what it should read.
// Inputs: real hellos (the captured fixtures, and Node's tls and openssl s_client captured live on
// 127.0.0.1), hand-built hellos for each rule, every truncation of the real ones, and a seeded
// mutation fuzz. LB_DOOR_SNI_SANITIZE=1 builds the driver with ASan and UBSan; CC picks the
// compiler (clang by default; CC=gcc where clang's sanitizer runtime is not installed).
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_HELLO_BYTES, parseClientHello } from '../../../src/core/sni/client-hello.js';
import { capturedHellos, extension, helloBody, records, serverNameExt } from '../../unit/sni/hellos.js';
import { prng } from '../../lib/prng.js';

const NATIVE = join(import.meta.dirname, '..', '..', '..', 'native');
const SANITIZE = process.env.LB_DOOR_SNI_SANITIZE === '1';
const CC = process.env.CC ?? 'clang';
const FUZZ_CASES = 8000;
const SEED = 0xd005e1;
/** door_sni.c's SEEN_MAX: a hello with more extensions is slow-pathed on purpose. */
const SEEN_MAX = 64;

const dir = mkdtempSync(join(tmpdir(), 'lb-door-sni-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Each input: u32 LE max_hello_bytes, u32 LE length, the bytes. Each copy is malloc'd to its exact
// size and the name buffer to its 254 bytes, so the sanitizers see any read or write past them.
const DRIVER = `
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef DOOR_SNI_API
#define DOOR_SNI_API
enum door_sni { DOOR_SNI_ASK = 0, DOOR_SNI_NONE = 1, DOOR_SNI_NAME = 2 };
int door_sni_read(const unsigned char *buf, size_t len, unsigned max_hello_bytes, char *name, size_t *name_len);
#endif
static uint32_t le32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
int main(void) {
	unsigned char head[8];
	while (fread(head, 1, sizeof head, stdin) == sizeof head) {
		uint32_t max = le32(head), len = le32(head + 4);
		unsigned char *buf = malloc(len ? len : 1);
		char *name = malloc(254);
		if (!buf || !name || fread(buf, 1, len, stdin) != len) { fprintf(stderr, "bad input\\n"); return 2; }
		memset(name, 0x5a, 254);
		size_t name_len = 999;
		int v = door_sni_read(buf, len, max, name, &name_len);
		if (v == DOOR_SNI_ASK) puts("ASK");
		else if (v == DOOR_SNI_NONE) puts("NONE");
		else if (v == DOOR_SNI_NAME && name_len >= 1 && name_len <= 253 && memchr(name, 0, 254) == name + name_len) printf("NAME %s\\n", name);
		else printf("BAD %d %zu\\n", v, name_len);
		free(buf);
		free(name);
	}
	return 0;
}
`;

let driver = '';
beforeAll(() => {
  const src = join(dir, 'driver.c');
  writeFileSync(src, DRIVER);
  driver = join(dir, 'driver');
  const san = SANITIZE ? ['-fsanitize=address,undefined', '-fno-sanitize-recover=all', '-fno-omit-frame-pointer'] : [];
  execFileSync(CC, ['-O2', '-g', '-Wall', '-Wextra', '-Werror', '-std=gnu11', '-I', NATIVE, ...san, '-o', driver, src, join(NATIVE, 'door_sni.c')]);
});

interface Case {
  cat: string;
  label: string;
  bytes: Uint8Array;
  max: number;
  /** What the C side must say: a verdict line, 'fast' (NAME or NONE, whichever TS says), or nothing beyond the contract. */
  want?: string;
}

/** The C verdicts, one per case, from one run of the driver. */
function runDriver(cases: Case[]): string[] {
  const parts: Buffer[] = [];
  for (const c of cases) {
    const head = Buffer.alloc(8);
    head.writeUInt32LE(c.max, 0);
    head.writeUInt32LE(c.bytes.length, 4);
    parts.push(head, Buffer.from(c.bytes));
  }
  const out = execFileSync(driver, { input: Buffer.concat(parts), encoding: 'latin1', maxBuffer: 256 << 20 });
  const lines = out.split('\n');
  lines.pop();
  return lines;
}

/** parseClientHello as the driver prints it: anything but a hello is ASK. */
function tsVerdict(bytes: Uint8Array, max: number): string {
  const v = parseClientHello(bytes, max);
  if (v.kind !== 'hello') return 'ASK';
  return v.hello.serverName === null ? 'NONE' : `NAME ${v.hello.serverName}`;
}

/**
 * For an input TS reads as a hello: whether it is in the fast path's scope (the whole handshake
 * message in the first record's payload, at most SEEN_MAX extensions). The walk is safe: TS
 * checked the structure it follows.
 */
function inScope(b: Uint8Array): boolean {
  const available = Math.min((b[3]! << 8) | b[4]!, b.length - 5);
  const bodyLength = (b[6]! << 16) | (b[7]! << 8) | b[8]!;
  if (available < 4 || 4 + bodyLength > available) return false;
  let at = 9 + 2 + 32;
  at += 1 + b[at]!;
  at += 2 + ((b[at]! << 8) | b[at + 1]!);
  at += 1 + b[at]!;
  const end = 9 + bodyLength;
  if (at === end) return true;
  at += 2;
  let count = 0;
  while (at < end) {
    count++;
    at += 4 + ((b[at + 2]! << 8) | b[at + 3]!);
  }
  return count <= SEEN_MAX;
}

interface Tally { cases: number; fast: number; slowHellos: number; tsRefused: number }

/** Runs the cases and checks the contract on each; returns the figures per category. */
function check(cases: Case[]): Record<string, Tally> {
  const got = runDriver(cases);
  expect(got.length).toBe(cases.length);
  const problems: string[] = [];
  const tally: Record<string, Tally> = {};
  cases.forEach((c, i) => {
    const cv = got[i]!;
    const ts = tsVerdict(c.bytes, c.max);
    const t = (tally[c.cat] ??= { cases: 0, fast: 0, slowHellos: 0, tsRefused: 0 });
    t.cases++;
    if (cv !== 'ASK') t.fast++;
    else if (ts !== 'ASK') t.slowHellos++;
    if (ts === 'ASK') t.tsRefused++;
    const why = (msg: string): number => problems.push(`${c.cat}/${c.label} (max ${c.max}, ${Buffer.from(c.bytes).toString('hex').slice(0, 120)}): ${msg}`);
    if (!/^(ASK|NONE|NAME [a-z0-9._-]{1,253})$/.test(cv)) why(`driver said ${cv}`);
    else if (cv !== 'ASK' && cv !== ts) why(`C says ${cv}, TS says ${ts}`);
    else if (cv === 'ASK' && ts !== 'ASK' && inScope(c.bytes)) why(`C says ASK on a hello in its scope, TS says ${ts}`);
    if (c.want === 'fast' ? cv === 'ASK' : c.want !== undefined && cv !== c.want) why(`C says ${cv}, the case wants ${c.want}`);
  });
  expect(problems.slice(0, 20)).toEqual([]);
  return tally;
}

function report(tally: Record<string, Tally>): void {
  for (const [cat, t] of Object.entries(tally)) {
    console.log(`door_sni ${cat}: ${t.cases} cases, ${t.fast} fast (NAME/NONE), ${t.slowHellos} hellos slow-pathed (ASK), ${t.tsRefused} not a hello for TS`);
  }
}

// ---- builders ----

const u16 = (n: number): Buffer => Buffer.from([n >> 8, n & 0xff]);
const vec16 = (b: Buffer): Buffer => Buffer.concat([u16(b.length), b]);
const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');

/** One server_name list entry. */
const entry = (type: number, name: Buffer | string): Buffer => Buffer.concat([Buffer.from([type]), vec16(typeof name === 'string' ? latin1(name) : name)]);

/** A server_name extension around a raw list (length given or right), then any bytes after it. */
function sniRaw(list: Buffer, listLength = list.length, after = Buffer.alloc(0)): Buffer {
  return extension(0, Buffer.concat([u16(listLength), list, after]));
}

interface Body { version?: number; sessionId?: number; suites?: Buffer; compression?: Buffer; exts?: Buffer | null; extsLength?: number; after?: Buffer }

/** A ClientHello body with each field settable, right or wrong; exts is the extensions block's content. */
function rawBody(o: Body): Buffer {
  const sid = o.sessionId ?? 0;
  const parts = [u16(o.version ?? 0x0303), Buffer.alloc(32, 7), Buffer.from([sid]), Buffer.alloc(sid, 3), o.suites ?? vec16(Buffer.from([0x13, 0x01, 0x00, 0x2f])), o.compression ?? Buffer.from([1, 0])];
  if (o.exts !== null) {
    const exts = o.exts ?? serverNameExt('raw.example.com');
    parts.push(u16(o.extsLength ?? exts.length), exts);
  }
  if (o.after) parts.push(o.after);
  return Buffer.concat(parts);
}

/** A handshake message (type 1 unless told) in one record of the given type and version. */
function oneRecord(body: Buffer, o: { recordType?: number; recordVersion?: number; handshakeType?: number; recordLength?: number; extra?: Buffer } = {}): Buffer {
  const message = Buffer.concat([Buffer.from([o.handshakeType ?? 1, body.length >> 16, (body.length >> 8) & 0xff, body.length & 0xff]), body, o.extra ?? Buffer.alloc(0)]);
  return Buffer.concat([Buffer.from([o.recordType ?? 22]), u16(o.recordVersion ?? 0x0301), u16(o.recordLength ?? message.length), message]);
}

const ext = (type: number, len = 0, fill = 0): Buffer => extension(type, Buffer.alloc(len, fill));
const hello = (...exts: Buffer[]): Buffer => records(helloBody(exts));

// ---- real hellos, captured live on loopback ----

/** Starts a client at the port; returns how to stop it. */
type Client = (port: number) => () => void;

function nodeClient(options: tls.ConnectionOptions): Client {
  return (port) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options });
    s.on('error', () => {});
    return () => s.destroy();
  };
}

function opensslClient(args: string[]): Client {
  return (port) => {
    const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...args], { stdio: ['pipe', 'ignore', 'ignore'] });
    p.on('error', () => {});
    return () => { p.kill(); };
  };
}

/** The first hello a client sends to a plain TCP server on 127.0.0.1 (no TLS answer: the hello is all it needs). */
function captureHello(client: Client): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let stop = (): void => {};
    let done = false;
    const finish = (err: Error | null, bytes?: Buffer): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      server.close();
      stop();
      if (err) reject(err);
      else resolve(bytes!);
    };
    const server = net.createServer((sock) => {
      let buf = Buffer.alloc(0);
      sock.on('error', () => {});
      sock.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        const v = parseClientHello(buf);
        if (v.kind === 'incomplete' && buf.length < 65536) return;
        sock.destroy();
        finish(null, v.kind === 'hello' ? buf.subarray(0, v.hello.helloEnd) : buf);
      });
    });
    const timer = setTimeout(() => finish(new Error('no hello within 10 s')), 10_000);
    server.on('error', (e) => finish(e));
    server.listen(0, '127.0.0.1', () => { stop = client((server.address() as net.AddressInfo).port); });
  });
}

const LIVE: Array<[string, Client, string | null]> = [
  ['node mixed case', nodeClient({ servername: 'Live.Example.COM' }), 'live.example.com'],
  ['node odd chars', nodeClient({ servername: 'a-b_c.9.example' }), 'a-b_c.9.example'],
  ['node IP host, no SNI', nodeClient({}), null],
  ['node TLS 1.2 ALPN', nodeClient({ servername: 'tls12.example.com', maxVersion: 'TLSv1.2', ALPNProtocols: ['h2', 'http/1.1'] }), 'tls12.example.com'],
  ['openssl TLS 1.3 mixed case', opensslClient(['-servername', 'MiXed.Example.ORG', '-tls1_3']), 'mixed.example.org'],
  ['openssl TLS 1.2', opensslClient(['-servername', 'www.example.net', '-tls1_2']), 'www.example.net'],
  ['openssl TLS 1.0', opensslClient(['-servername', 'older.example.com', '-tls1', '-cipher', 'DEFAULT@SECLEVEL=0']), 'older.example.com'],
  ['openssl -noservername', opensslClient(['-noservername']), null],
  ['openssl IP host', opensslClient([]), null],
];

const real: Array<{ label: string; bytes: Buffer; want?: string }> = [];
beforeAll(async () => {
  for (const h of capturedHellos()) real.push({ label: `fixture ${h.name}`, bytes: h.bytes });
  for (const [label, client, name] of LIVE) {
    real.push({ label: `live ${label}`, bytes: await captureHello(client), want: name === null ? 'NONE' : `NAME ${name}` });
  }
});

// ---- hand-built hellos: each rule of client-hello.ts, with the verdict the C side must give ----

function handBuilt(): Case[] {
  const D = DEFAULT_MAX_HELLO_BYTES;
  const out: Case[] = [];
  const add = (label: string, bytes: Buffer, want: string, max = D): void => { out.push({ cat: 'hand-built', label, bytes, max, want }); };
  const a253 = `${'a'.repeat(61)}.${'b'.repeat(61)}.${'c'.repeat(61)}.${'d'.repeat(61)}.abcde`;
  expect(a253.length).toBe(253);

  // Names.
  add('mixed case', hello(serverNameExt('MiXeD.ExAmPlE.CoM')), 'NAME mixed.example.com');
  add('every allowed kind of byte', hello(serverNameExt('Az-09_.x')), 'NAME az-09_.x');
  add('a lone dot', hello(serverNameExt('.')), 'NAME .');
  add('253 bytes', hello(serverNameExt(a253)), `NAME ${a253}`);
  add('253 bytes upper case', hello(serverNameExt(a253.toUpperCase())), `NAME ${a253}`);
  add('254 bytes', hello(serverNameExt(`${a253}h`)), 'NONE');
  add('empty name', hello(serverNameExt('')), 'NONE');
  for (const bad of ['bad name', 'caf\xe9.example.com', 'a@b', 'x\0y', 'a/b', 'a:443', 'A[b', 'a`b', 'a{b', 'a\x7fb', '\xc1.example']) add(`invalid ${JSON.stringify(bad)}`, hello(serverNameExt(bad)), 'NONE');
  for (let b = 0; b < 256; b++) add(`byte 0x${b.toString(16)}`, hello(sniRaw(entry(0, Buffer.from([0x61, b, 0x62])))), 'fast');
  add('first host_name invalid, second good', hello(serverNameExt('bad name', 'Good.Example.com')), 'NAME good.example.com');
  add('first host_name empty, second good', hello(serverNameExt('', 'good.example.com')), 'NAME good.example.com');
  add('two good host_names: the first', hello(serverNameExt('a.example.com', 'b.example.com')), 'NAME a.example.com');
  add('good, then a bad one', hello(serverNameExt('a.example.com', 'bad name')), 'NAME a.example.com');
  add('two bad host_names', hello(serverNameExt('bad name', 'x'.repeat(300))), 'NONE');
  add('another name type, then host_name', hello(sniRaw(Buffer.concat([entry(1, 'other.example.com'), entry(0, 'host.example.com')]))), 'NAME host.example.com');
  add('another name type only', hello(sniRaw(entry(1, 'other.example.com'))), 'NONE');
  add('host_name, then another type', hello(sniRaw(Buffer.concat([entry(0, 'host.example.com'), entry(7, 'x')]))), 'NAME host.example.com');
  add('empty list', hello(sniRaw(Buffer.alloc(0))), 'NONE');
  add('bytes after the list, in the extension', hello(sniRaw(entry(0, 'after.example.com'), undefined, Buffer.from([1, 2, 3]))), 'NAME after.example.com');
  add('list shorter than its entries (entry cut)', hello(sniRaw(entry(0, 'cut.example.com'), 10, Buffer.alloc(0))), 'ASK');
  add('list longer than the extension', hello(sniRaw(entry(0, 'long.example.com'), 40)), 'ASK');
  add('entry header cut', hello(sniRaw(Buffer.from([0, 0]))), 'ASK');
  add('entry type only', hello(sniRaw(Buffer.from([0]))), 'ASK');
  add('server_name empty', hello(ext(0)), 'ASK');
  add('server_name one byte', hello(ext(0, 1)), 'ASK');
  add('bad entry cut after a good one', hello(sniRaw(Buffer.concat([entry(0, 'good.example.com'), Buffer.from([0, 0, 9, 0x61])]))), 'ASK');

  // Extensions.
  add('no server_name', hello(ext(10, 4), ext(13, 6)), 'NONE');
  add('duplicate server_name', hello(serverNameExt('a.example.com'), serverNameExt('b.example.com')), 'ASK');
  add('duplicate other type', hello(ext(21, 3), serverNameExt('dup.example.com'), ext(21, 1)), 'ASK');
  add('duplicate GREASE', hello(ext(0x0a0a), serverNameExt('dup.example.com'), ext(0x0a0a)), 'ASK');
  add('GREASE everywhere', hello(ext(0x0a0a), serverNameExt('grease.example.com'), extension(43, Buffer.from([4, 0x7a, 0x7a, 0x03, 0x04])), ext(0xfafa, 1)), 'NAME grease.example.com');
  add('ECH: the outer name', hello(serverNameExt('public.example.com'), ext(0xfe0d, 40, 1)), 'NAME public.example.com');
  add('ECH without a name', hello(ext(0xfe0d, 40, 1)), 'NONE');
  add('server_name last', hello(ext(10, 4), ext(21, 300), serverNameExt('last.example.com')), 'NAME last.example.com');
  add('supported_versions right', hello(serverNameExt('sv.example.com'), extension(43, Buffer.from([4, 0x7a, 0x7a, 3, 4]))), 'NAME sv.example.com');
  add('supported_versions empty', hello(serverNameExt('sv.example.com'), ext(43)), 'ASK');
  add('supported_versions list past the extension', hello(serverNameExt('sv.example.com'), extension(43, Buffer.from([5, 3, 4]))), 'ASK');
  add('supported_versions odd list', hello(serverNameExt('sv.example.com'), extension(43, Buffer.from([3, 3, 4, 0x7a]))), 'NAME sv.example.com');
  add('supported_versions list shorter than the extension', hello(serverNameExt('sv.example.com'), extension(43, Buffer.from([2, 3, 4, 9, 9]))), 'NAME sv.example.com');
  add('supported_versions empty list', hello(serverNameExt('sv.example.com'), extension(43, Buffer.from([0]))), 'NAME sv.example.com');
  add('supported_versions before a cut server_name', hello(extension(43, Buffer.from([2, 3, 4])), ext(0, 1)), 'ASK');
  const many = (n: number): Buffer[] => Array.from({ length: n }, (_, i) => ext(100 + i));
  add(`${SEEN_MAX} extensions`, hello(...many(SEEN_MAX - 1), serverNameExt('many.example.com')), 'NAME many.example.com');
  add(`${SEEN_MAX + 1} extensions (slow-pathed)`, hello(...many(SEEN_MAX), serverNameExt('many.example.com')), 'ASK');
  add(`${SEEN_MAX + 1} extensions, a duplicate last`, records(helloBody([...many(SEEN_MAX), ext(100)])), 'ASK');

  // The fixed fields.
  add('TLS 1.0 without extensions', records(helloBody(null, 0x0301)), 'NONE');
  add('TLS 1.2 without extensions', records(helloBody(null)), 'NONE');
  add('empty extensions block', oneRecord(rawBody({ exts: Buffer.alloc(0) })), 'NONE');
  add('one byte after compression', oneRecord(rawBody({ exts: null, after: Buffer.from([0]) })), 'ASK');
  add('bytes after the extensions', oneRecord(rawBody({ after: Buffer.from([0, 0]) })), 'ASK');
  add('extensions block past the body', oneRecord(rawBody({ extsLength: 200 })), 'ASK');
  add('extensions block shorter than its extension', oneRecord(rawBody({ extsLength: 5 })), 'ASK');
  add('extension header cut', oneRecord(rawBody({ exts: Buffer.from([0, 0, 0]) })), 'ASK');
  add('session id 32', oneRecord(rawBody({ sessionId: 32 })), 'NAME raw.example.com');
  add('session id 33', oneRecord(rawBody({ sessionId: 33 })), 'ASK');
  for (const s of [0, 1, 3]) add(`cipher suites of ${s} bytes`, oneRecord(rawBody({ suites: vec16(Buffer.alloc(s, 0x2f)) })), 'ASK');
  add('cipher suites past the body', oneRecord(rawBody({ suites: u16(0x2000) })), 'ASK');
  add('no compression method', oneRecord(rawBody({ compression: Buffer.from([0]) })), 'ASK');
  add('two compression methods', oneRecord(rawBody({ compression: Buffer.from([2, 1, 0]) })), 'NAME raw.example.com');
  for (const [v, want] of [[0x0300, 'ASK'], [0x0200, 'ASK'], [0x0403, 'ASK'], [0x0301, 'NAME raw.example.com'], [0x0304, 'NAME raw.example.com'], [0x03ff, 'NAME raw.example.com']] as const) {
    add(`legacy version 0x${v.toString(16)}`, oneRecord(rawBody({ version: v })), want);
  }
  add('body of 1 byte', oneRecord(Buffer.from([3])), 'ASK');
  add('body of 0 bytes', oneRecord(Buffer.alloc(0)), 'ASK');
  add('random cut', oneRecord(Buffer.concat([u16(0x0303), Buffer.alloc(20)])), 'ASK');

  // The record and the handshake header.
  const body = rawBody({});
  for (const rv of [0x0300, 0x0303, 0x03ff]) add(`record version 0x${rv.toString(16)}`, oneRecord(body, { recordVersion: rv }), 'NAME raw.example.com');
  add('record version major 2', oneRecord(body, { recordVersion: 0x0201 }), 'ASK');
  add('record type 23', oneRecord(body, { recordType: 23 }), 'ASK');
  add('handshake type 2 (server_hello)', oneRecord(body, { handshakeType: 2 }), 'ASK');
  add('record length 0', Buffer.concat([Buffer.from([22, 3, 1, 0, 0]), body]), 'ASK');
  add('record length 16385', oneRecord(body, { recordLength: 16385 }), 'ASK');
  add('more handshake bytes in the record', oneRecord(body, { extra: Buffer.from([20, 0, 0, 0]) }), 'NAME raw.example.com');
  add('a record after the hello', Buffer.concat([oneRecord(body), Buffer.from([23, 3, 3, 0, 2, 9, 9])]), 'NAME raw.example.com');
  add('record longer than the bytes so far, hello whole', oneRecord(body, { recordLength: 1000 }), 'NAME raw.example.com');
  add('not TLS', latin1('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), 'ASK');
  add('SSL 2 hello', Buffer.from([0x80, 0x2e, 0x01, 0x03, 0x01, 0, 0x15, 0, 0, 0, 0x10]), 'ASK');
  add('nothing', Buffer.alloc(0), 'ASK');

  // Size: against max_hello_bytes, and the 16 KiB record.
  add('body length = max_hello_bytes', oneRecord(body), 'NAME raw.example.com', body.length);
  add('body length = max_hello_bytes + 1', oneRecord(body), 'ASK', body.length - 1);
  add('max_hello_bytes 0', oneRecord(body), 'ASK', 0);
  add('max_hello_bytes 2^32 - 1', oneRecord(body), 'NAME raw.example.com', 0xffffffff);
  const fullName = serverNameExt('full.example.com');
  const full = rawBody({ exts: Buffer.concat([fullName, ext(21, 16384 - 4 - rawBody({ exts: fullName }).length - 4)]) });
  expect(oneRecord(full).length).toBe(5 + 16384);
  add('a full 16 KiB record', oneRecord(full), 'NAME full.example.com');
  add('a full 16 KiB record over max_hello_bytes', oneRecord(full), 'ASK', full.length - 1);
  const big = helloBody([serverNameExt('big.example.com'), ext(21, 20000)]);
  add('a 20 KB hello in two records (slow-pathed)', records(big), 'ASK', 32768);

  // Split over records: TS joins them, the fast path leaves them to it.
  const split = helloBody([serverNameExt('split.example.com'), ext(10, 8)]);
  for (const size of [1, 4, 5, 50, 4 + split.length - 1]) add(`split into ${size}-byte records (slow-pathed)`, records(split, size), 'ASK');
  add('one record, as control', records(split), 'NAME split.example.com');
  return out;
}

// ---- fuzz ----

/** Where the length fields of a whole, single-record hello are: [offset, width in bytes]. */
function lengthFields(b: Buffer): Array<[number, number]> {
  const f: Array<[number, number]> = [[3, 2], [6, 3]];
  const end = 9 + ((b[6]! << 16) | (b[7]! << 8) | b[8]!);
  let at = 9 + 2 + 32;
  f.push([at, 1]);
  at += 1 + b[at]!;
  f.push([at, 2]);
  at += 2 + b.readUInt16BE(at);
  f.push([at, 1]);
  at += 1 + b[at]!;
  if (at >= end) return f;
  f.push([at, 2]);
  at += 2;
  while (at + 4 <= end) {
    const type = b.readUInt16BE(at);
    const len = b.readUInt16BE(at + 2);
    f.push([at + 2, 2]);
    if (type === 0) f.push([at + 4, 2], [at + 6, 1], [at + 7, 2]);
    if (type === 43) f.push([at + 4, 1]);
    at += 4 + len;
  }
  return f;
}

/** One mutation of b; fields are the length fields of the valid hello b was made from. */
function mutate(from: Buffer, fields: Array<[number, number]>, rand: () => number): Buffer {
  const pick = (n: number): number => Math.floor(rand() * n);
  const b = Buffer.from(from);
  if (b.length === 0) return b;
  switch (pick(7)) {
    case 0: for (let i = 1 + pick(3); i > 0; i--) { const at = pick(b.length); b[at] = b[at]! ^ (1 << pick(8)); } return b;
    case 1: for (let i = 1 + pick(3); i > 0; i--) b[pick(b.length)] = pick(256); return b;
    case 2: return b.subarray(0, pick(b.length + 1));
    case 3: { // a length field nudged, zeroed, maxed or random
      const [at, width] = fields[pick(fields.length)]!;
      if (at + width > b.length) return b.subarray(0, pick(b.length + 1));
      const old = b.readUIntBE(at, width);
      const top = 2 ** (8 * width) - 1;
      const v = [old + 1, old - 1, old + 2 + pick(8), old - 2 - pick(8), 0, top, pick(top + 1)][pick(7)]!;
      b.writeUIntBE(Math.max(0, Math.min(top, v)), at, width);
      return b;
    }
    case 4: { // a byte of the name set to a printable one or a boundary of the allowed sets
      const name = b.indexOf('example');
      const at = name >= 0 ? name + pick(7) : pick(b.length);
      b[at] = [0x20 + pick(95), 0x40, 0x5b, 0x60, 0x7b, 0x2f, 0x3a, 0x41, 0x5a, 0x80 + pick(128)][pick(10)]!;
      return b;
    }
    case 5: { const at = pick(b.length); return Buffer.concat([b.subarray(0, at), Buffer.from([pick(256), pick(256)]).subarray(0, 1 + pick(2)), b.subarray(at)]); }
    default: { const at = pick(b.length); return Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + pick(8))]); }
  }
}

function fuzzCases(bases: Buffer[]): Case[] {
  const rand = prng(SEED);
  const fields = bases.map(lengthFields);
  const out: Case[] = [];
  for (let i = 0; i < FUZZ_CASES; i++) {
    const base = bases[i % bases.length]!;
    let bytes = mutate(base, fields[i % bases.length]!, rand);
    if (rand() < 0.25) bytes = mutate(bytes, fields[i % bases.length]!, rand);
    const bodyLength = base.length >= 9 ? (base[6]! << 16) | (base[7]! << 8) | base[8]! : 0;
    const r = rand();
    const max = r < 0.7 ? DEFAULT_MAX_HELLO_BYTES : r < 0.9 ? Math.max(0, bodyLength - 1 + Math.floor(rand() * 3)) : Math.floor(rand() * 4096);
    out.push({ cat: 'fuzz', label: `#${i}`, bytes, max });
  }
  return out;
}

describe('door_sni_read against parseClientHello', () => {
  it('reads the real hellos (captured and live) on the fast path, and every truncation of them is ASK', () => {
    expect(real.length).toBe(capturedHellos().length + LIVE.length);
    const cases: Case[] = [];
    for (const r of real) {
      cases.push({ cat: 'real', label: r.label, bytes: r.bytes, max: DEFAULT_MAX_HELLO_BYTES, want: r.want ?? 'fast' });
      for (let n = 0; n < r.bytes.length; n++) cases.push({ cat: 'truncated', label: `${r.label} [0, ${n})`, bytes: r.bytes.subarray(0, n), max: DEFAULT_MAX_HELLO_BYTES, want: 'ASK' });
      // The same message over two records, cut at a few places: TS joins them, C asks.
      const message = r.bytes.subarray(5);
      for (const cut of [1, 4, 40, message.length - 1]) {
        const rec = (m: Buffer): Buffer => Buffer.concat([Buffer.from([22, 3, 1]), u16(m.length), m]);
        cases.push({ cat: 'two records', label: `${r.label} cut at ${cut}`, bytes: Buffer.concat([rec(message.subarray(0, cut)), rec(message.subarray(cut))]), max: DEFAULT_MAX_HELLO_BYTES, want: 'ASK' });
      }
    }
    const tally = check(cases);
    report(tally);
    expect(tally.real!.fast).toBe(real.length);
  });

  it('gives each hand-built hello the verdict client-hello.ts implies', () => {
    const cases = handBuilt();
    const tally = check(cases);
    report(tally);
    expect(tally['hand-built']!.fast).toBeGreaterThan(cases.length / 2);
  });

  it(`agrees with parseClientHello on ${FUZZ_CASES} mutated hellos (seed 0x${SEED.toString(16)})`, () => {
    const bases = [
      ...real.map((r) => r.bytes),
      hello(ext(0x0a0a), serverNameExt('Fuzz.Example.com'), extension(43, Buffer.from([4, 0x7a, 0x7a, 3, 4])), ext(0xfe0d, 8, 1)),
      hello(serverNameExt('bad name', 'second.example.com')),
      oneRecord(rawBody({ sessionId: 32, exts: Buffer.concat([ext(21, 3), serverNameExt('fuzz2.example.com')]) }), { extra: Buffer.from([20, 0, 0, 0]) }),
      records(helloBody(null, 0x0301)),
    ];
    const tally = check(fuzzCases(bases));
    report(tally);
    // Every kind of outcome is reached, so the mutations exercise both sides.
    const t = tally.fuzz!;
    expect(t.fast).toBeGreaterThan(FUZZ_CASES / 10);
    expect(t.tsRefused).toBeGreaterThan(FUZZ_CASES / 10);
  });
});
