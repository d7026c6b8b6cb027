// The webhook receiver: POST /hooks/{github,gitea,gitlab}, for the providers that have a secret.
// In order, and stopping at the first failure: route (404), method (405), declared size over the
// cap (413), proof header missing or not of its provider's shape (401), GitLab's token (401) -- all
// before a byte of the body is read -- then the body, read with the cap enforced while streaming
// (413), in time (408) and within the in-flight byte budget shared by all connections (503), the
// signature on the raw bytes (401), replay by delivery id (202, dropped), parse (400), event and
// ref filter (202, ignored), the per-body replay limit (202, dropped), then 202 at once and the
// event handed to `onEvent` on a later tick. listen() also caps connections (the oldest gives way)
// and the time to send headers. Every answer closes its connection: a delivery is a one-off.
// Coalescing many events into one reconcile is the TriggerCoalescer's job (src/source/triggers.ts).

import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { LbError } from '../core/errors.js';
import { closeHttp, listenHttp } from '../http-server.js';
import { errFields, silentLogger, type Logger } from '../log.js';
import { cameInCleartext, isLoopbackAddress } from './cleartext.js';
import { BodyReplayLimit, type BodyReplayLimitOptions } from './body-replay-limit.js';
import { ConnectionSlots } from './connection-slots.js';
import { DeliveryCache } from './delivery-cache.js';
import { InFlightBudget } from './in-flight-budget.js';
import { header, parsePush, PROVIDERS, PROVIDER_SPECS, type Provider, type ProviderSpec } from './providers.js';
import { SHARED_SECRET_PROVIDERS } from './secret-files.js';

const LINGER_MS = 1000;
const SHED_WARN_EVERY_MS = 60_000;

/**
 * Defaults, and why. A one-commit GitHub push is 8-9 KB (the repository object alone is ~5 KB);
 * each listed commit adds ~1 KB plus its changed paths, and GitHub lists at most 20, so a large
 * push of a config repository stays well under 100 KB: 256 KiB leaves room, and the poll still
 * picks up a change whose delivery was refused. The budget holds 32 bodies at the cap, far more
 * deliveries than arrive at once; 256 connections is more than any provider opens to one hook.
 */
export const WEBHOOK_LIMITS = {
  maxBodyBytes: 256 * 1024,
  maxInFlightBytes: 8 * 1024 * 1024,
  maxConnections: 256,
  headersTimeoutMs: 5_000,
  bodyTimeoutMs: 10_000,
} as const;

export interface WebhookEvent {
  provider: Provider;
  /** X-GitHub-Delivery / X-Gitea-Delivery / X-Gitlab-Event-UUID, when sent. */
  deliveryId?: string;
  /** The provider's event name (push, Push Hook, ...). */
  event: string;
  /** Full ref name pushed (refs/heads/main), when the payload has it. */
  ref?: string;
  /** The pushed commit sha, when the payload has it. */
  after?: string;
  receivedAt: number;
}

/** The `result` label of lb_webhook_requests_total{provider,result}. */
export type WebhookResult =
  | 'accepted'
  | 'ignored'
  | 'duplicate'
  | 'unauthorized'
  | 'replayed'
  | 'too_large'
  | 'overloaded'
  | 'bad_request'
  | 'timeout'
  | 'not_found'
  | 'method_not_allowed'
  | 'error';

export interface WebhookReceiverOptions {
  /** Shared HMAC key of GitHub and Gitea when they have none of their own; never GitLab's token. */
  secret?: string | Buffer;
  /** Each provider's own secret; GitLab is served only with one here. */
  secrets?: Partial<Record<Provider, string | Buffer>>;
  /** Providers to serve (default: every provider with a secret); the others answer 404. */
  providers?: readonly Provider[];
  /** Body cap in bytes (default WEBHOOK_LIMITS.maxBodyBytes). */
  maxBodyBytes?: number;
  /** Body bytes held by all requests at once (default WEBHOOK_LIMITS.maxInFlightBytes). */
  maxInFlightBytes?: number;
  /** Connections at once, listen() only (default WEBHOOK_LIMITS.maxConnections). */
  maxConnections?: number;
  /** Time from connecting to the end of the headers, listen() only (default 5 s). */
  headersTimeoutMs?: number;
  /** Delivery ids remembered for de-duplication (default 4096). */
  replayCapacity?: number;
  /** Accepted events per body digest in a window (default 3 per 10 min). */
  replayLimit?: BodyReplayLimitOptions;
  /** A push whose ref this rejects is answered 202 and ignored (e.g. GitSource.followsRef). */
  acceptRef?: (ref: string) => boolean;
  /** Receives each accepted event after the response went out. Errors are logged, not answered. */
  onEvent: (event: WebhookEvent) => void | Promise<void>;
  /** Counts requests by provider and result (wire prom-client's lb_webhook_requests_total here). */
  onResult?: (provider: Provider | 'unknown', result: WebhookResult) => void;
  /** Path prefix (default `/hooks`). */
  pathPrefix?: string;
  /** Time allowed to receive the body once the headers are in (default 10 s). */
  bodyTimeoutMs?: number;
  log?: Logger;
}

export class WebhookReceiver {
  private readonly opts: WebhookReceiverOptions;
  private readonly log: Logger;
  private readonly maxBody: number;
  private readonly deliveries: DeliveryCache;
  private readonly replays: BodyReplayLimit;
  private readonly budget: InFlightBudget;
  private readonly routes = new Map<string, ProviderSpec>();
  private readonly secrets = new Map<Provider, string | Buffer>();
  private server: Server | undefined;
  private cleartextWarned = false;
  private shed = { count: 0, lastWarnAt: -Infinity };

  constructor(opts: WebhookReceiverOptions) {
    this.opts = opts;
    this.log = opts.log ?? silentLogger;
    this.maxBody = opts.maxBodyBytes ?? WEBHOOK_LIMITS.maxBodyBytes;
    this.budget = new InFlightBudget(opts.maxInFlightBytes ?? WEBHOOK_LIMITS.maxInFlightBytes);
    if (this.budget.limit < this.maxBody) throw new RangeError(`the in-flight byte budget (${this.budget.limit}) is below the body cap (${this.maxBody})`);
    this.deliveries = new DeliveryCache(opts.replayCapacity ?? 4096);
    this.replays = new BodyReplayLimit(opts.replayLimit);
    const prefix = (opts.pathPrefix ?? '/hooks').replace(/\/+$/, '');
    const secretOf = (p: Provider): string | Buffer | undefined => opts.secrets?.[p] ?? (SHARED_SECRET_PROVIDERS.includes(p) ? opts.secret : undefined);
    const served = opts.providers ?? PROVIDERS.filter((p) => (secretOf(p)?.length ?? 0) > 0);
    if (served.length === 0) throw new LbError('LB_WEBHOOK_SECRET', 'no webhook secret: an unauthenticated webhook would let anyone trigger reconciles');
    for (const p of served) {
      const secret = secretOf(p);
      if (secret === undefined || secret.length === 0) {
        const why = p === 'gitlab' && opts.secret !== undefined
          ? 'GitLab sends its token in cleartext, so it never shares the HMAC key: give it its own (gitlab=FILE)'
          : 'an unauthenticated webhook would let anyone trigger reconciles';
        throw new LbError('LB_WEBHOOK_SECRET', `no webhook secret for ${p}: ${why}`);
      }
      this.secrets.set(p, secret);
      this.routes.set(`${prefix}/${p}`, PROVIDER_SPECS[p]);
    }
    const gitlab = this.secrets.get('gitlab');
    if (gitlab !== undefined && [...this.secrets].some(([p, s]) => p !== 'gitlab' && Buffer.from(s).equals(Buffer.from(gitlab)))) {
      this.log.warn({ component: 'webhook' }, 'the GitLab token equals an HMAC secret: GitLab sends it in cleartext, so whoever reads it can also sign GitHub/Gitea deliveries; give each its own');
    }
  }

  /** Body bytes held by requests being received now (bounded by maxInFlightBytes). */
  get inFlightBytes(): number {
    return this.budget.used;
  }

  /** The providers served, in route order. */
  get providers(): Provider[] {
    return [...this.secrets.keys()];
  }

  /** A node:http request listener, to mount the receiver on a server of the caller's. */
  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.route(req, res).catch((err: unknown) => {
      this.log.error({ component: 'webhook', ...errFields(err) }, 'webhook handler failed');
      if (!res.headersSent) this.answer(req, res, 'unknown', 500, 'error', 'internal error', true);
      else res.destroy();
    });
  };

  /** Listens on host:port (default 127.0.0.1, port 0 = ephemeral); resolves with the bound address. */
  async listen(port = 0, host = '127.0.0.1'): Promise<AddressInfo> {
    const server = await listenHttp(this.handle, { port, host, code: 'LB_WEBHOOK_LISTEN', what: 'webhook receiver', maxHeadersCount: 100 });
    const headersTimeoutMs = this.opts.headersTimeoutMs ?? WEBHOOK_LIMITS.headersTimeoutMs;
    server.headersTimeout = headersTimeoutMs;
    new ConnectionSlots({
      max: this.opts.maxConnections ?? WEBHOOK_LIMITS.maxConnections,
      headersTimeoutMs,
      onShed: (why) => this.onShed(why),
    }).attach(server);
    this.server = server;
    if (this.secrets.has('gitlab') && !isLoopbackAddress(host)) {
      this.log.warn({ component: 'webhook', host }, 'GitLab sends its secret token in cleartext: serve /hooks/gitlab behind a TLS proxy (listen on loopback behind it), or anyone on the path can read the token');
    }
    return server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (server) await closeHttp(server);
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0]!;
    const spec = this.routes.get(path);
    if (!spec) return this.answer(req, res, 'unknown', 404, 'not_found', 'no such webhook endpoint', true);
    const p = spec.provider;
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST');
      return this.answer(req, res, p, 405, 'method_not_allowed', 'use POST', true);
    }

    const declared = req.headers['content-length'];
    if (declared !== undefined) {
      const n = /^\d+$/.test(declared) ? Number(declared) : NaN;
      if (!Number.isSafeInteger(n)) return this.answer(req, res, p, 400, 'bad_request', 'invalid Content-Length', true);
      if (n > this.maxBody) return this.answer(req, res, p, 413, 'too_large', `body over ${this.maxBody} bytes`, true);
    }

    const secret = this.secrets.get(p)!;
    const proof = header(req.headers, spec.signatureHeader);
    if (proof === undefined || proof === '') return this.answer(req, res, p, 401, 'unauthorized', `missing ${spec.signatureHeader}`, true);
    if (!spec.proofFormat.test(proof)) {
      return this.answer(req, res, p, 401, 'unauthorized', `malformed ${spec.signatureHeader} (expected ${spec.proofFormatText})`, true);
    }
    if (spec.verifiesBeforeBody && !spec.verify(secret, new Uint8Array(), req.headers)) {
      return this.answer(req, res, p, 401, 'unauthorized', 'invalid token', true);
    }
    if (spec.secretOnTheWire) this.warnIfCleartext(req, p);

    const body = await this.readBody(req);
    if (body === 'too_large') return this.answer(req, res, p, 413, 'too_large', `body over ${this.maxBody} bytes`, 'linger');
    if (body === 'timeout') return this.answer(req, res, p, 408, 'timeout', 'body not received in time', 'linger');
    if (body === 'overloaded') {
      res.setHeader('Retry-After', '1');
      return this.answer(req, res, p, 503, 'overloaded', 'too many body bytes in flight; this request held the most', 'linger');
    }
    if (body === 'aborted') return;

    if (!spec.verifiesBeforeBody && !spec.verify(secret, body, req.headers)) {
      return this.answer(req, res, p, 401, 'unauthorized', 'invalid signature', false);
    }

    const rawId = header(req.headers, spec.deliveryHeader);
    const deliveryId = rawId !== undefined && rawId !== '' && rawId.length <= 200 ? rawId : undefined;
    if (deliveryId !== undefined && this.deliveries.seen(`${p}:${deliveryId}`)) {
      return this.answer(req, res, p, 202, 'duplicate', `delivery ${deliveryId} already received`, false);
    }

    const push = parsePush(body, req.headers['content-type']);
    if (push === undefined) return this.answer(req, res, p, 400, 'bad_request', 'body is not a JSON object', false);
    const event = header(req.headers, spec.eventHeader) ?? (push.ref !== undefined ? [...spec.pushEvents][0]! : 'unknown');
    if (!spec.pushEvents.has(event)) return this.answer(req, res, p, 202, 'ignored', `event ${event} does not move a ref`, false);
    if (push.ref !== undefined && this.opts.acceptRef && !this.opts.acceptRef(push.ref)) {
      return this.answer(req, res, p, 202, 'ignored', `push to ${push.ref} is not followed`, false);
    }
    if (!this.replays.admit(BodyReplayLimit.keyOf(p, body))) {
      const minutes = Math.round(this.replays.windowMs / 60_000);
      return this.answer(req, res, p, 202, 'replayed', `this signed body was already accepted ${this.replays.limit} times in ${minutes} min`, false, deliveryId);
    }

    const ev: WebhookEvent = {
      provider: p,
      event,
      receivedAt: Date.now(),
      ...(deliveryId !== undefined ? { deliveryId } : {}),
      ...(push.ref !== undefined ? { ref: push.ref } : {}),
      ...(push.after !== undefined ? { after: push.after } : {}),
    };
    this.answer(req, res, p, 202, 'accepted', 'reconcile scheduled', false, deliveryId);
    setImmediate(() => {
      Promise.resolve()
        .then(() => this.opts.onEvent(ev))
        .catch((err: unknown) => this.log.error({ component: 'webhook', provider: p, deliveryId, ...errFields(err) }, 'webhook event handler failed'));
    });
  }

  /**
   * Reads the body, counting bytes as they arrive against the cap and the shared budget; stops
   * reading at the cap, the deadline, or when the budget needs this request's bytes.
   */
  private readBody(req: IncomingMessage): Promise<Buffer | 'too_large' | 'timeout' | 'overloaded' | 'aborted'> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let done = false;
      const finish = (v: Buffer | 'too_large' | 'timeout' | 'overloaded' | 'aborted'): void => {
        if (done) return;
        done = true;
        this.budget.release(holder);
        clearTimeout(timer);
        req.off('data', onData);
        req.off('end', onEnd);
        req.off('aborted', onAbort);
        req.off('error', onAbort);
        if (typeof v === 'string') {
          chunks.length = 0;
          req.pause();
        }
        resolve(v);
      };
      const holder = this.budget.open(() => finish('overloaded'));
      const onData = (chunk: Buffer): void => {
        size += chunk.byteLength;
        if (size > this.maxBody) return finish('too_large');
        if (!this.budget.charge(holder, chunk.byteLength)) return finish('overloaded');
        chunks.push(chunk);
      };
      const onEnd = (): void => finish(Buffer.concat(chunks, size));
      const onAbort = (): void => finish('aborted');
      const timer = setTimeout(() => finish('timeout'), this.opts.bodyTimeoutMs ?? WEBHOOK_LIMITS.bodyTimeoutMs);
      req.on('data', onData);
      req.on('end', onEnd);
      req.on('aborted', onAbort);
      req.on('error', onAbort);
    });
  }

  /** GitLab's token crossed the network as is: say so once, unless a TLS proxy or loopback peer says otherwise. */
  private warnIfCleartext(req: IncomingMessage, provider: Provider): void {
    if (this.cleartextWarned) return;
    if (!cameInCleartext(req.socket.remoteAddress, header(req.headers, 'x-forwarded-proto'))) return;
    this.cleartextWarned = true;
    this.log.warn({ component: 'webhook', provider, peer: req.socket.remoteAddress },
      'a GitLab delivery came over plain HTTP (no TLS proxy in front, no X-Forwarded-Proto: https): its secret token was readable on the way; put a TLS proxy in front');
  }

  /** A connection closed to make room or for slow headers: counted, and logged at most once a minute. */
  private onShed(why: 'evicted' | 'headers_timeout'): void {
    this.count('unknown', why === 'evicted' ? 'overloaded' : 'timeout');
    this.shed.count += 1;
    const now = Date.now();
    if (now - this.shed.lastWarnAt < SHED_WARN_EVERY_MS) return;
    this.log.warn({ component: 'webhook', closed: this.shed.count, reason: why },
      why === 'evicted' ? 'webhook connection cap reached: closing the oldest connections' : 'webhook client did not send its headers in time');
    this.shed = { count: 0, lastWarnAt: now };
  }

  private count(provider: Provider | 'unknown', result: WebhookResult): void {
    try {
      this.opts.onResult?.(provider, result);
    } catch (err) {
      this.log.warn({ component: 'webhook', ...errFields(err) }, 'webhook metrics hook failed');
    }
  }

  /**
   * Answers with a small JSON body and Connection: close. `close` (true) is an answer before any of
   * the body was read: Node ends the connection and the body is never drained. 'linger' is for a body
   * cut off mid-stream: the rest stays unread, and the connection is destroyed a moment after the
   * answer went out (closing at once, with unread bytes pending, would reset the connection and
   * could destroy the answer before the client read it).
   */
  private answer(
    req: IncomingMessage,
    res: ServerResponse,
    provider: Provider | 'unknown',
    status: number,
    result: WebhookResult,
    reason: string,
    close: boolean | 'linger',
    deliveryId?: string,
  ): void {
    this.count(provider, result);
    const level = status >= 500 ? 'error' : status === 401 ? 'warn' : 'debug';
    this.log[level]({ component: 'webhook', provider, result, status, ...(deliveryId ? { deliveryId } : {}) }, `webhook ${result}: ${reason}`);
    const payload = JSON.stringify({ status: result, reason, ...(deliveryId ? { delivery: deliveryId } : {}) });
    const headers: Record<string, string | number> = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) };
    // Not for 'linger': Node would end the socket with unread bytes pending, which resets it.
    if (close !== 'linger') headers['Connection'] = 'close';
    res.writeHead(status, headers);
    res.end(payload);
    if (close === 'linger') {
      const socket = req.socket;
      res.once('finish', () => setTimeout(() => socket.destroy(), LINGER_MS).unref());
    }
  }
}

