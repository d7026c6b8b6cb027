// The webhook receiver: POST /hooks/{github,gitea,gitlab}. In order, and stopping at the first
// failure: route (404), method (405), declared size over the cap (413, body never read), proof
// header present (401, body never read), body read with the cap enforced while streaming (413),
// signature on the raw bytes (401), replay by delivery id (202, dropped), parse (400), event and ref
// filter (202, ignored), then 202 at once and the event handed to `onEvent` on a later tick.
// Coalescing many events into one reconcile is the TriggerCoalescer's job (src/source/triggers.ts).

import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { LbError } from '../core/errors.js';
import { closeHttp, listenHttp } from '../http-server.js';
import { errFields, silentLogger, type Logger } from '../log.js';
import { DeliveryCache } from './delivery-cache.js';
import { header, parsePush, PROVIDERS, PROVIDER_SPECS, type Provider, type ProviderSpec } from './providers.js';

const LINGER_MS = 1000;

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
  | 'too_large'
  | 'bad_request'
  | 'timeout'
  | 'not_found'
  | 'method_not_allowed'
  | 'error';

export interface WebhookReceiverOptions {
  /** Shared secret (GitHub/Gitea HMAC key, GitLab token) for every provider without its own. */
  secret?: string | Buffer;
  secrets?: Partial<Record<Provider, string | Buffer>>;
  /** Providers to serve (default all three); the others answer 404. */
  providers?: readonly Provider[];
  /** Body cap in bytes (default 1 MiB). */
  maxBodyBytes?: number;
  /** Delivery ids remembered for replay detection (default 4096). */
  replayCapacity?: number;
  /** A push whose ref this rejects is answered 202 and ignored (e.g. GitSource.followsRef). */
  acceptRef?: (ref: string) => boolean;
  /** Receives each accepted event after the response went out. Errors are logged, not answered. */
  onEvent: (event: WebhookEvent) => void | Promise<void>;
  /** Counts requests by provider and result (wire prom-client's lb_webhook_requests_total here). */
  onResult?: (provider: Provider | 'unknown', result: WebhookResult) => void;
  /** Path prefix (default `/hooks`). */
  pathPrefix?: string;
  /** Time allowed to receive the body (default 10 s). */
  bodyTimeoutMs?: number;
  log?: Logger;
}

export class WebhookReceiver {
  private readonly opts: WebhookReceiverOptions;
  private readonly log: Logger;
  private readonly maxBody: number;
  private readonly deliveries: DeliveryCache;
  private readonly routes = new Map<string, ProviderSpec>();
  private readonly secrets = new Map<Provider, string | Buffer>();
  private server: Server | undefined;

  constructor(opts: WebhookReceiverOptions) {
    this.opts = opts;
    this.log = opts.log ?? silentLogger;
    this.maxBody = opts.maxBodyBytes ?? 1024 * 1024;
    this.deliveries = new DeliveryCache(opts.replayCapacity ?? 4096);
    const prefix = (opts.pathPrefix ?? '/hooks').replace(/\/+$/, '');
    for (const p of opts.providers ?? PROVIDERS) {
      const secret = opts.secrets?.[p] ?? opts.secret;
      if (secret === undefined || secret.length === 0) {
        throw new LbError('LB_WEBHOOK_SECRET', `no webhook secret for ${p}: an unauthenticated webhook would let anyone trigger reconciles`);
      }
      this.secrets.set(p, secret);
      this.routes.set(`${prefix}/${p}`, PROVIDER_SPECS[p]);
    }
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
    this.server = server;
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
    if (spec.verifiesBeforeBody && !spec.verify(secret, new Uint8Array(), req.headers)) {
      return this.answer(req, res, p, 401, 'unauthorized', 'invalid token', true);
    }

    const body = await this.readBody(req);
    if (body === 'too_large') return this.answer(req, res, p, 413, 'too_large', `body over ${this.maxBody} bytes`, 'linger');
    if (body === 'timeout') return this.answer(req, res, p, 408, 'timeout', 'body not received in time', 'linger');
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

  /** Reads the body, counting bytes as they arrive; stops reading at the cap or the deadline. */
  private readBody(req: IncomingMessage): Promise<Buffer | 'too_large' | 'timeout' | 'aborted'> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let done = false;
      const finish = (v: Buffer | 'too_large' | 'timeout' | 'aborted'): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        req.off('data', onData);
        req.off('end', onEnd);
        req.off('aborted', onAbort);
        req.off('error', onAbort);
        if (typeof v === 'string') req.pause();
        resolve(v);
      };
      const onData = (chunk: Buffer): void => {
        size += chunk.byteLength;
        if (size > this.maxBody) return finish('too_large');
        chunks.push(chunk);
      };
      const onEnd = (): void => finish(Buffer.concat(chunks, size));
      const onAbort = (): void => finish('aborted');
      const timer = setTimeout(() => finish('timeout'), this.opts.bodyTimeoutMs ?? 10_000);
      req.on('data', onData);
      req.on('end', onEnd);
      req.on('aborted', onAbort);
      req.on('error', onAbort);
    });
  }

  /**
   * Answers with a small JSON body. `close` (true) answers with Connection: close before any of the
   * body was read: Node ends the connection and the body is never drained. 'linger' is for a body
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
    try {
      this.opts.onResult?.(provider, result);
    } catch (err) {
      this.log.warn({ component: 'webhook', ...errFields(err) }, 'webhook metrics hook failed');
    }
    const level = status >= 500 ? 'error' : status === 401 ? 'warn' : 'debug';
    this.log[level]({ component: 'webhook', provider, result, status, ...(deliveryId ? { deliveryId } : {}) }, `webhook ${result}: ${reason}`);
    const payload = JSON.stringify({ status: result, reason, ...(deliveryId ? { delivery: deliveryId } : {}) });
    const headers: Record<string, string | number> = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) };
    if (close === true) headers['Connection'] = 'close';
    res.writeHead(status, headers);
    res.end(payload);
    if (close === 'linger') {
      const socket = req.socket;
      res.once('finish', () => setTimeout(() => socket.destroy(), LINGER_MS).unref());
    }
  }
}

/** Reads a webhook secret file: the content without one trailing newline; never logged. */
export async function loadWebhookSecret(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new LbError('LB_WEBHOOK_SECRET', `cannot read the webhook secret file ${file} (${(err as NodeJS.ErrnoException).code ?? 'EIO'})`, { file });
  }
  const secret = text.replace(/\r?\n$/, '');
  if (secret === '') throw new LbError('LB_WEBHOOK_SECRET', `the webhook secret file ${file} is empty`, { file });
  return secret;
}
