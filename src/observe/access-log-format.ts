// The access log's lines, JSON or CLF-style, written from a batch's records in place: one reused
// row per record (no object per event, no JSON.stringify), address strings from a cache, and the
// time stamps' text reused while the second does not change (a batch's records share it). The
// lines of a batch become one string, queued whole. jsonLine / clfLine format one ConnRecord the
// same way (one formatter for both: the tests hold the batch path to them).
//
// Each line is written into a byte buffer as soon as it is formatted (LineBuffer): one short-lived
// string per line, no text of a whole batch built by concatenation (a rope of 4096 pieces that the
// write then flattens: more than half the consumer's time went to the garbage collector).

import type { AcceptorRoute, ConnBatch, ConnRecord } from './events/conn-batch.js';
import { ipString } from './events/conn-batch.js';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const PROTO: Record<number, string> = { 6: 'tcp', 17: 'udp' };

/** One line's fields; counters as numbers (exact below 2^53). */
interface Row {
  close: boolean;
  timeMs: number;
  openMs: number;
  proxy: string | null;
  listener: string | null;
  proto: number;
  client: string;
  clientPort: number;
  vip: string;
  vipPort: number;
  backend: string;
  backendPort: number;
  reason: string;
  durationSec: number;
  bytesIn: number;
  bytesOut: number;
  packetsIn: number;
  packetsOut: number;
  /** The SNI acceptor's route and server name, or null for a data-plane flow. */
  acceptor: AcceptorRoute | null;
}

const emptyRow = (): Row => ({
  close: false, timeMs: 0, openMs: 0, proxy: null, listener: null, proto: 0, client: '', clientPort: 0, vip: '', vipPort: 0, backend: '',
  backendPort: 0, reason: '', durationSec: 0, bytesIn: 0, bytesOut: 0, packetsIn: 0, packetsOut: 0, acceptor: null,
});

const pad2 = (n: number): string => (n < 10 ? `0${n}` : String(n));
const pad3 = (n: number): string => (n < 10 ? `00${n}` : n < 100 ? `0${n}` : String(n));

/** A time stamp's text up to the second, kept while the second is the same. */
class SecondCache {
  private sec = Number.NaN;
  private text = '';
  constructor(private readonly render: (d: Date) => string) {}
  get(ms: number): string {
    const sec = Math.floor(ms / 1000);
    if (sec !== this.sec) {
      this.sec = sec;
      this.text = this.render(new Date(sec * 1000));
    }
    return this.text;
  }
}

const isoSecond = (d: Date): string => d.toISOString().slice(0, 20); // 2026-12-07T00:25:13.
const clfSecond = (d: Date): string =>
  `[${pad2(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())} +0000]`;

/** JSON text of a name (proxy and listener names are few: escaped once). */
const quoted = new Map<string, string>();
function jsonString(s: string | null): string {
  if (s === null) return 'null';
  let q = quoted.get(s);
  if (q === undefined) {
    if (quoted.size >= 10_000) quoted.clear();
    q = JSON.stringify(s);
    quoted.set(s, q);
  }
  return q;
}

export class LineFormatter {
  private readonly row = emptyRow();
  private readonly isoTime = new SecondCache(isoSecond);
  private readonly isoStart = new SecondCache(isoSecond);
  private readonly clfTime = new SecondCache(clfSecond);

  constructor(readonly format: 'json' | 'clf') {}

  private iso(cache: SecondCache, ms: number): string {
    return `${cache.get(ms)}${pad3(Math.floor(ms) % 1000)}Z`;
  }

  private line(r: Row): string {
    const proto = PROTO[r.proto] ?? String(r.proto);
    if (this.format === 'json') {
      let s = `{"time":"${this.iso(this.isoTime, r.timeMs)}","event":"${r.close ? 'conn-close' : 'conn-open'}","proxy":${jsonString(r.proxy)},` +
        `"listener":${jsonString(r.listener)},"proto":"${proto}","client":"${r.client}:${r.clientPort}","vip":"${r.vip}:${r.vipPort}",` +
        `"backend":"${r.backend}:${r.backendPort}"`;
      if (r.acceptor) s += `,"route":${JSON.stringify(r.acceptor.route)},"sni":${JSON.stringify(r.acceptor.serverName)}`;
      if (r.close) {
        s += `,"reason":"${r.reason}","start":"${this.iso(this.isoStart, r.openMs)}","duration_ms":${Math.round(r.durationSec * 1e6) / 1e3},` +
          `"bytes_in":${r.bytesIn},"bytes_out":${r.bytesOut},"packets_in":${r.packetsIn},"packets_out":${r.packetsOut}`;
      }
      return `${s}}`;
    }
    // Common Log Format, adapted: host ident user [time] "request" status bytes, where the request
    // is `OPEN|CLOSE proto vip:port backend:port`, the status the close reason ("-" for an open)
    // and bytes the bytes sent to the client; then proxy, duration and bytes from the client.
    const base = `${r.client} - - ${this.clfTime.get(r.timeMs)} "${r.close ? 'CLOSE' : 'OPEN'} ${proto} ${r.vip}:${r.vipPort} ${r.backend}:${r.backendPort}" ` +
      `${r.close ? r.reason : '-'} ${r.close ? String(r.bytesOut) : '-'} proxy=${r.proxy ?? '-'}` +
      (r.acceptor ? ` route=${r.acceptor.route} sni=${r.acceptor.serverName ?? '-'}` : '');
    return r.close
      ? `${base} duration=${r.durationSec.toFixed(3)} bytes_in=${r.bytesIn} client_port=${r.clientPort}`
      : `${base} client_port=${r.clientPort}`;
  }

  /** The first `max` kept records of a batch, each line followed by a newline, into `out`. */
  batch(b: ConnBatch, out: LineBuffer, max = b.kept): void {
    const r = this.row;
    for (let i = 0, n = 0; i < b.count && n < max; i++) {
      if (b.keep[i] !== 1) continue;
      n++;
      const names = b.listener(i);
      r.close = b.isClose(i);
      r.timeMs = b.timeMs(i);
      r.openMs = b.openMs(i);
      r.proxy = names?.proxy ?? null;
      r.listener = names?.label ?? null;
      r.proto = b.proto(i);
      r.client = ipString(b.clientAddr(i));
      r.clientPort = b.clientPort(i);
      r.vip = ipString(b.vipAddr(i));
      r.vipPort = b.vipPort(i);
      r.backend = ipString(b.backendAddr(i));
      r.backendPort = b.backendPort(i);
      r.acceptor = b.acceptor(i) ?? null;
      if (r.close) {
        r.reason = b.reason(i);
        r.durationSec = b.durationSec(i);
        r.bytesIn = b.bytesIn(i);
        r.bytesOut = b.bytesOut(i);
        r.packetsIn = b.packetsIn(i);
        r.packetsOut = b.packetsOut(i);
      }
      out.push(this.line(r));
    }
  }

  /** One record given as an object (without the newline). */
  record(c: ConnRecord): string {
    return this.line({
      close: c.type === 'close', timeMs: c.timeMs, openMs: c.openMs, proxy: c.proxy, listener: c.listener, proto: c.proto, client: c.client,
      clientPort: c.clientPort, vip: c.vip, vipPort: c.vipPort, backend: c.backend, backendPort: c.backendPort, reason: c.reason,
      durationSec: c.durationSec, bytesIn: Number(c.bytesIn), bytesOut: Number(c.bytesOut), packetsIn: Number(c.packetsIn), packetsOut: Number(c.packetsOut),
      acceptor: c.acceptor ?? null,
    });
  }
}

const CHUNK_BYTES = 256 * 1024;

/** Lines as UTF-8 bytes, each followed by a newline, in chunks of CHUNK_BYTES (a longer line gets its own). */
export class LineBuffer {
  private chunks: Buffer[] = [];
  private cur = Buffer.allocUnsafeSlow(CHUNK_BYTES);
  private off = 0;
  private start = 0;
  /** Bytes held. */
  bytes = 0;

  push(line: string): void {
    const worst = line.length * 3 + 1; // UTF-16 unit -> at most 3 UTF-8 bytes
    if (this.off + worst > this.cur.length) this.next(worst);
    const n = this.cur.write(line, this.off);
    this.cur[this.off + n] = 10;
    this.off += n + 1;
    this.bytes += n + 1;
  }

  private next(atLeast: number): void {
    if (this.off > this.start) this.chunks.push(this.cur.subarray(this.start, this.off));
    this.cur = Buffer.allocUnsafeSlow(Math.max(CHUNK_BYTES, atLeast));
    this.off = 0;
    this.start = 0;
  }

  /** The bytes held, in order; the buffer is empty after. */
  take(): Buffer[] {
    if (this.off > this.start) this.chunks.push(this.cur.subarray(this.start, this.off));
    this.start = this.off; // the rest of the chunk stays in use for the next lines
    const out = this.chunks;
    this.chunks = [];
    this.bytes = 0;
    return out;
  }
}

const jsonFormatter = new LineFormatter('json');
const clfFormatter = new LineFormatter('clf');

/** One JSON line (without the newline). Byte and packet counts are numbers (exact below 2^53). */
export const jsonLine = (r: ConnRecord): string => jsonFormatter.record(r);
/** One CLF-style line (without the newline). */
export const clfLine = (r: ConnRecord): string => clfFormatter.record(r);
