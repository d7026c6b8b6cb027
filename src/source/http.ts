// isomorphic-git's node HTTP client with the limits a daemon needs and the library leaves out:
// - a socket idle timeout per request and an abort signal for the whole operation (so a remote that
//   accepts the connection and then hangs cannot stall the reconcile loop forever);
// - a cap on the bytes of each response, counted while they stream (isomorphic-git collects a
//   whole pack in memory before it looks at it);
// - the pack of an upload-pack response checked object by object while it streams (pack-guard.ts),
//   so an object that would inflate past the cap is refused before isomorphic-git inflates it;
// - when the server offers it, a partial fetch: blobs over the object cap are not sent at all
//   (`filter blob:limit`, which isomorphic-git does not speak: the request is amended here).

import type { GitHttpRequest, GitHttpResponse, HttpClient } from 'isomorphic-git';
import { request as nodeRequest } from 'isomorphic-git/http/node';
import { SourceError } from './disposition.js';
import { formatBytes, PackInspector, type PackLimits } from './pack-guard.js';

export interface HttpLimits {
  /** Abort a request whose socket is idle this long (default 15 s). */
  idleTimeoutMs?: number;
  /** Aborts every request made through the client (an operation deadline). */
  signal?: AbortSignal;
  /** Largest response body, as received (default 256 MiB). */
  maxResponseBytes?: number;
  /** Checks applied to fetched packs; unset: packs are only counted. */
  pack?: PackLimits;
  /** For messages: the redacted remote URL. */
  where?: string;
}

export const DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024 * 1024;

/** What one client learned of the server: the upload-pack capabilities it advertised. */
interface ServerState {
  uploadPackCaps: Set<string> | undefined;
  /** Whether the last upload-pack request asked the server to leave out large blobs. */
  filtered: boolean;
}

/** A limited client; `filtered` says whether the last fetch asked the server to omit blobs over the object cap. */
export interface LimitedHttpClient extends HttpClient {
  readonly filtered: boolean;
}

export function limitedHttpClient(limits: HttpLimits = {}): LimitedHttpClient {
  const timeout = limits.idleTimeoutMs ?? 15_000;
  const maxBytes = limits.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const where = limits.where ?? 'the git remote';
  const server: ServerState = { uploadPackCaps: undefined, filtered: false };
  return {
    get filtered() {
      return server.filtered;
    },
    async request(req: GitHttpRequest): Promise<GitHttpResponse> {
      // One controller per request, so a refused body also stops the download.
      const abort = new AbortController();
      const parent = req.signal ?? limits.signal;
      const signal = parent ? AbortSignal.any([parent, abort.signal]) : abort.signal;
      const uploadPack = (req.method ?? 'GET').toUpperCase() === 'POST' && /\/git-upload-pack$/.test(new URL(req.url).pathname);
      let body = req.body;
      if (uploadPack && limits.pack && server.uploadPackCaps?.has('filter') && Array.isArray(body)) {
        const amended = withBlobFilter(Buffer.concat(body as Uint8Array[]), limits.pack.maxObjectBytes + 1);
        server.filtered = amended !== undefined;
        if (amended) body = [amended] as unknown as typeof body;
      } else if (uploadPack) {
        server.filtered = false;
      }
      const res = await nodeRequest({ ...req, ...(body ? { body } : {}), signal, fetchOptions: { ...(req.fetchOptions ?? {}), timeout } });
      if (!res.body) return res;
      const isAdvertisement = /\/info\/refs$/.test(new URL(res.url || req.url).pathname) && /service=git-upload-pack/.test(req.url);
      const inspector = uploadPack && limits.pack ? new PackInspector(limits.pack, where) : undefined;
      return {
        ...res,
        body: guardBody(res.body, {
          maxBytes,
          where,
          abort: () => abort.abort(),
          ...(inspector ? { inspector } : {}),
          ...(isAdvertisement ? { onCapabilities: (caps: Set<string>) => (server.uploadPackCaps = caps) } : {}),
        }),
      };
    },
  };
}

/** A signal that fires after `ms` or when `parent` fires, whichever comes first. */
export function deadlineSignal(ms: number, parent?: AbortSignal): AbortSignal {
  const timer = AbortSignal.timeout(ms);
  return parent ? AbortSignal.any([timer, parent]) : timer;
}

interface GuardOptions {
  maxBytes: number;
  where: string;
  abort: () => void;
  inspector?: PackInspector;
  onCapabilities?: (caps: Set<string>) => void;
}

/**
 * Passes the body through, counting bytes; feeds pack bytes to the inspector and reads the
 * capabilities off a ref advertisement. A violation aborts the request and is thrown to the reader
 * (isomorphic-git rethrows it from fetch).
 */
async function* guardBody(body: AsyncIterableIterator<Uint8Array>, o: GuardOptions): AsyncGenerator<Uint8Array> {
  let total = 0;
  const demux = o.inspector ? new SideBandDemux(o.where) : undefined;
  const adv = o.onCapabilities ? new AdvertisementReader() : undefined;
  try {
    for await (const chunk of body) {
      total += chunk.byteLength;
      if (total > o.maxBytes) {
        throw new SourceError(
          'LB_SOURCE_CHECKOUT',
          `fetch from ${o.where} refused: the response passed the ${formatBytes(o.maxBytes)} cap on what one fetch may download (the pack is held in memory)`,
          { disposition: 'stalling', reason: 'PackTooLarge' },
          { url: o.where, maxBytes: o.maxBytes },
        );
      }
      if (demux && o.inspector) for (const data of demux.push(chunk)) await o.inspector.push(data);
      if (adv && o.onCapabilities) {
        const caps = adv.push(chunk);
        if (caps) o.onCapabilities(caps);
      }
      yield chunk;
    }
  } catch (err) {
    o.abort();
    throw err;
  } finally {
    o.inspector?.close();
  }
}

/** Splits an upload-pack response into pkt-lines and returns the side-band 1 (pack data) payloads. */
export class SideBandDemux {
  private pending = Buffer.alloc(0);
  private readonly where: string;

  constructor(where: string) {
    this.where = where;
  }

  push(chunk: Uint8Array): Buffer[] {
    this.pending = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk]);
    const out: Buffer[] = [];
    for (;;) {
      if (this.pending.length < 4) break;
      const hex = this.pending.toString('latin1', 0, 4);
      if (!/^[0-9a-f]{4}$/i.test(hex)) {
        throw new SourceError('LB_SOURCE_FETCH', `git remote ${this.where} sent a malformed upload-pack response (pkt-line length ${JSON.stringify(hex)})`, {
          disposition: 'transient',
          reason: 'FetchFailed',
        });
      }
      const len = parseInt(hex, 16);
      if (len < 4) {
        this.pending = this.pending.subarray(4); // flush and delim packets
        continue;
      }
      if (this.pending.length < len) break;
      if (this.pending[4] === 1) out.push(Buffer.from(this.pending.subarray(5, len)));
      this.pending = this.pending.subarray(len);
    }
    return out;
  }
}

/** Reads the capability list off the first ref line of a smart-HTTP upload-pack advertisement. */
class AdvertisementReader {
  private pending = Buffer.alloc(0);
  private done = false;

  push(chunk: Uint8Array): Set<string> | undefined {
    if (this.done) return undefined;
    this.pending = Buffer.concat([this.pending, chunk]);
    // The first ref line comes within the first few KiB; give up on anything else.
    if (this.pending.length > 256 * 1024) this.done = true;
    for (let at = 0; at + 4 <= this.pending.length; ) {
      const len = parseInt(this.pending.toString('latin1', at, at + 4), 16);
      if (Number.isNaN(len)) break;
      if (len < 4) {
        at += 4;
        continue;
      }
      if (at + len > this.pending.length) break;
      const line = this.pending.subarray(at + 4, at + len);
      const nul = line.indexOf(0);
      if (nul >= 0) {
        this.done = true;
        return new Set(line.toString('utf8', nul + 1).trim().split(' '));
      }
      at += len;
    }
    return undefined;
  }
}

/**
 * The upload-pack request with `filter blob:limit=<limit>` (blobs of `limit` bytes and more are
 * left out): the capability goes on the first want line, the filter line before the flush that
 * ends the wants (protocol v1: want-list, shallow lines, deepen, filter, flush). Undefined when the
 * request is not in the expected shape (it is then sent as it was).
 */
export function withBlobFilter(request: Buffer, limit: number): Buffer | undefined {
  const lines: Buffer[] = [];
  let at = 0;
  let firstWant = -1;
  let flushAt = -1;
  while (at + 4 <= request.length) {
    const len = parseInt(request.toString('latin1', at, at + 4), 16);
    if (Number.isNaN(len) || (len !== 0 && len < 4) || at + Math.max(len, 4) > request.length) return undefined;
    const pkt = request.subarray(at, at + Math.max(len, 4));
    if (len === 0 && flushAt < 0) flushAt = lines.length;
    if (len >= 4 && firstWant < 0 && pkt.toString('latin1', 4, 9) === 'want ') firstWant = lines.length;
    lines.push(pkt);
    at += Math.max(len, 4);
  }
  if (at !== request.length || firstWant < 0 || flushAt < 0 || firstWant > flushAt) return undefined;
  const want = lines[firstWant]!.toString('utf8', 4).replace(/\n$/, '');
  lines[firstWant] = pktLine(`${want} filter\n`);
  lines.splice(flushAt, 0, pktLine(`filter blob:limit=${limit}\n`));
  return Buffer.concat(lines);
}

function pktLine(s: string): Buffer {
  const payload = Buffer.from(s, 'utf8');
  return Buffer.concat([Buffer.from((payload.length + 4).toString(16).padStart(4, '0'), 'latin1'), payload]);
}
