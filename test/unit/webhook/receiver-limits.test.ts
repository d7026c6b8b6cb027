// The receiver's bounds over loopback: a malformed proof header refused before the body, the
// in-flight byte budget (the largest holder gives way to a genuine delivery), the connection cap
// (the oldest connection gives way), the headers deadline, and the per-body replay limit.

import { createHmac, randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { WebhookReceiver, WebhookReceiverOptions } from '../../../src/webhook/index.js';
import { startReceiver, type Harness } from './harness.js';
import { eventually, postHead, rawConnection, type RawConnection } from './raw-http.js';

const SECRET = 'hmac key';
const GITLAB_TOKEN = 'gitlab token';

let receiver: WebhookReceiver | undefined;
const sockets: RawConnection[] = [];

afterEach(async () => {
  for (const c of sockets.splice(0)) c.socket.destroy();
  await receiver?.close();
  receiver = undefined;
});

async function start(opts: Partial<WebhookReceiverOptions> = {}): Promise<Harness> {
  const h = await startReceiver({ secret: SECRET, secrets: { gitlab: GITLAB_TOKEN }, ...opts });
  receiver = h.receiver;
  return h;
}

function push(after: string, pad = 0): string {
  return JSON.stringify({ ref: 'refs/heads/main', after, pad: 'x'.repeat(pad) });
}

function sign(body: string | Buffer): string {
  return `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`;
}

function open(port: number, first: string | Buffer): RawConnection {
  const c = rawConnection(port, first);
  sockets.push(c);
  return c;
}

async function postGithub(h: Harness, body: string, delivery = randomUUID()): Promise<{ status: number; json: { status: string; reason: string } }> {
  const res = await fetch(`${h.base}/hooks/github`, {
    method: 'POST', body, headers: { 'Content-Type': 'application/json', 'X-GitHub-Event': 'push', 'X-GitHub-Delivery': delivery, 'X-Hub-Signature-256': sign(body) },
  });
  return { status: res.status, json: (await res.json()) as { status: string; reason: string } };
}

describe('proof header shape', () => {
  it.each([
    ['github', 'X-Hub-Signature-256', 'sha256=abc'],
    ['github', 'X-Hub-Signature-256', `sha1=${'a'.repeat(40)}`],
    ['github', 'X-Hub-Signature-256', `${'a'.repeat(64)}`],
    ['gitea', 'X-Gitea-Signature', `sha256=${'a'.repeat(64)}`],
    ['gitea', 'X-Gitea-Signature', 'z'.repeat(64)],
    ['gitlab', 'X-Gitlab-Token', 't'.repeat(1025)],
  ])('%s: %s = %s is a 401 before the declared body is sent', async (provider, name, value) => {
    const h = await start();
    // Headers only, declaring 100 KB: the answer must come without any of the body.
    const answer = await open(h.port, postHead(`/hooks/${provider}`, { [name]: value }, 100_000)).closed;
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
    expect(answer).toContain(`malformed ${name.toLowerCase()}`);
    expect(h.results.get(`${provider}/unauthorized`)).toBe(1);
  });

  it('a well-formed but wrong signature is still read and refused on the body', async () => {
    const h = await start();
    const body = push('a'.repeat(40));
    const res = await fetch(`${h.base}/hooks/github`, { method: 'POST', body, headers: { 'X-Hub-Signature-256': `sha256=${'0'.repeat(64)}` } });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { reason: string }).reason).toBe('invalid signature');
  });
});

describe('in-flight byte budget', () => {
  it('evicts the request holding the most bytes so that a genuine delivery fits', async () => {
    const h = await start({ maxBodyBytes: 48 * 1024, maxInFlightBytes: 64 * 1024 });
    const sig = sign('anything');
    const stalled = [open(h.port, postHead('/hooks/github', { 'X-Hub-Signature-256': sig }, 40 * 1024)), open(h.port, postHead('/hooks/github', { 'X-Hub-Signature-256': sig }, 40 * 1024))];
    stalled[0]!.socket.write(Buffer.alloc(32 * 1024, 0x20));
    stalled[1]!.socket.write(Buffer.alloc(24 * 1024, 0x20));
    expect(await eventually(() => receiver!.inFlightBytes === 56 * 1024), 'both stalled bodies held').toBe(true);

    const genuine = await postGithub(h, push('b'.repeat(40), 12 * 1024));
    expect(genuine.status).toBe(202);
    expect(genuine.json.status).toBe('accepted');
    // The 32 KB holder gave way; the 24 KB one is still held.
    const evicted = await stalled[0]!.closed;
    expect(evicted).toMatch(/^HTTP\/1\.1 503 /);
    expect(evicted).toMatch(/Retry-After: 1/i);
    expect(receiver!.inFlightBytes).toBe(24 * 1024);
    expect(h.results.get('github/overloaded')).toBe(1);
  });

  it('refuses the charging request itself when it would hold the most', async () => {
    const h = await start({ maxBodyBytes: 48 * 1024, maxInFlightBytes: 64 * 1024 });
    const sig = sign('anything');
    const small = open(h.port, postHead('/hooks/github', { 'X-Hub-Signature-256': sig }, 40 * 1024));
    small.socket.write(Buffer.alloc(20 * 1024, 0x20));
    expect(await eventually(() => receiver!.inFlightBytes === 20 * 1024)).toBe(true);
    const big = open(h.port, postHead('/hooks/github', { 'X-Hub-Signature-256': sig }, 48 * 1024));
    big.socket.write(Buffer.alloc(48 * 1024, 0x20));
    expect(await big.closed).toMatch(/^HTTP\/1\.1 503 /);
    expect(receiver!.inFlightBytes).toBe(20 * 1024);
  });
});

describe('connections', () => {
  it('at the cap, the oldest connection gives way and a genuine delivery is accepted', async () => {
    const h = await start({ maxConnections: 3 });
    const sig = sign('anything');
    const stalled = [0, 1, 2].map(() => open(h.port, postHead('/hooks/github', { 'X-Hub-Signature-256': sig }, 1000)));
    for (const c of stalled) c.socket.write('{');
    expect(await eventually(() => receiver!.inFlightBytes === 3), 'three stalled bodies started').toBe(true);
    const genuine = await postGithub(h, push('c'.repeat(40)));
    expect(genuine.status).toBe(202);
    expect(await stalled[0]!.closed).toBe('');
    expect(stalled[1]!.socket.destroyed).toBe(false);
    expect(h.results.get('unknown/overloaded')).toBe(1);
  });

  it('closes a connection that does not finish its headers in time', async () => {
    const h = await start({ headersTimeoutMs: 100 });
    const slow = open(h.port, 'POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    expect(await slow.closed).toBe('');
    expect(h.results.get('unknown/timeout')).toBe(1);
  });
});

describe('replay limit per body digest', () => {
  it('accepts the same signed body at most 3 times in 10 min, whatever the delivery id', async () => {
    let clock = 1_000_000;
    const h = await start({ replayLimit: { now: () => clock } });
    const body = push('d'.repeat(40));
    const statuses: string[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await postGithub(h, body)).json.status);
    expect(statuses).toEqual(['accepted', 'accepted', 'accepted', 'replayed', 'replayed']);
    // Another body is not affected; after the window the first one is accepted again.
    expect((await postGithub(h, push('e'.repeat(40)))).json.status).toBe('accepted');
    clock += 10 * 60_000;
    expect((await postGithub(h, body)).json.status).toBe('accepted');
    expect(await eventually(() => h.events.length === 5)).toBe(true);
    expect(h.results.get('github/replayed')).toBe(2);
  });

  it('counts per provider: the same bytes to Gitea are another event', async () => {
    const h = await start({ replayLimit: { limit: 1 } });
    const body = push('f'.repeat(40));
    expect((await postGithub(h, body)).json.status).toBe('accepted');
    expect((await postGithub(h, body)).json.status).toBe('replayed');
    const hex = sign(body).slice('sha256='.length);
    const gitea = await fetch(`${h.base}/hooks/gitea`, { method: 'POST', body, headers: { 'X-Gitea-Event': 'push', 'X-Gitea-Signature': hex } });
    expect(((await gitea.json()) as { status: string }).status).toBe('accepted');
  });
});
