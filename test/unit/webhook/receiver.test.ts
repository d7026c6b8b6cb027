// The webhook receiver over loopback HTTP: authentication before parsing, body cap before reading,
// replays dropped, events delivered after the 202, and a burst coalesced into at most two runs.

import { createHmac, randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { TriggerCoalescer } from '../../../src/source/index.js';
import { WebhookReceiver, type WebhookReceiverOptions } from '../../../src/webhook/index.js';
import { startReceiver, type Harness } from './harness.js';

const SECRET = "It's a Secret to Everybody";
const SHA = 'c'.repeat(40);

let receiver: WebhookReceiver | undefined;

afterEach(async () => {
  await receiver?.close();
  receiver = undefined;
});

async function start(opts: Partial<WebhookReceiverOptions> = {}): Promise<Harness> {
  const h = await startReceiver({ secret: SECRET, ...opts });
  receiver = h.receiver;
  return h;
}

function push(ref = 'refs/heads/main', after = SHA): string {
  return JSON.stringify({ ref, before: '0'.repeat(40), after, repository: { full_name: 'ops/lb-config' } });
}

function githubHeaders(body: string | Buffer, delivery: string = randomUUID(), event = 'push'): Record<string, string> {
  return {
    'Content-Type': 'application/json',
    'X-GitHub-Event': event,
    'X-GitHub-Delivery': delivery,
    'X-Hub-Signature-256': `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}`,
  };
}

async function post(url: string, body: string, headers: Record<string, string>): Promise<{ status: number; json: { status: string; reason: string } }> {
  const res = await fetch(url, { method: 'POST', body, headers });
  return { status: res.status, json: (await res.json()) as { status: string; reason: string } };
}

/** Sends raw bytes and resolves with everything the server answered before closing (bounded). */
function raw(port: number, write: (send: (b: string | Buffer) => boolean) => Promise<void> | void, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = connect(port, '127.0.0.1');
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no close within ${timeoutMs} ms; got: ${Buffer.concat(chunks).toString()}`));
    }, timeoutMs);
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    sock.on('connect', () => {
      void Promise.resolve(write((b) => (sock.destroyed ? false : sock.write(b)))).catch(() => undefined);
    });
  });
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(cond(), what).toBe(true);
}

describe('GitHub endpoint', () => {
  it("authenticates GitHub's documented vector (then refuses it as not JSON, after verifying)", async () => {
    const h = await start();
    const res = await post(`${h.base}/hooks/github`, 'Hello, World!', {
      'X-Hub-Signature-256': 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17',
      'X-GitHub-Event': 'push',
    });
    expect(res.status).toBe(400);
    expect(res.json.status).toBe('bad_request');
    expect(h.events).toEqual([]);
  });

  it('accepts a signed push with 202 and delivers the event with provider, delivery, ref and sha', async () => {
    const h = await start();
    const body = push();
    const res = await post(`${h.base}/hooks/github`, body, githubHeaders(body, 'delivery-1'));
    expect(res.status).toBe(202);
    expect(res.json.status).toBe('accepted');
    await until(() => h.events.length === 1, 'event delivered');
    expect(h.events[0]).toMatchObject({ provider: 'github', deliveryId: 'delivery-1', event: 'push', ref: 'refs/heads/main', after: SHA });
    expect(h.results.get('github/accepted')).toBe(1);
  });

  it('answers 202 before a slow handler finishes', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const h = await start({ onEvent: () => gate });
    const body = push();
    const res = await post(`${h.base}/hooks/github`, body, githubHeaders(body));
    expect(res.status).toBe(202);
    release();
  });

  it('refuses a forged, missing or SHA-1-only signature with 401 and triggers nothing', async () => {
    const h = await start();
    const body = push();
    const forged = { ...githubHeaders(body), 'X-Hub-Signature-256': `sha256=${createHmac('sha256', 'wrong').update(body).digest('hex')}` };
    expect((await post(`${h.base}/hooks/github`, body, forged)).status).toBe(401);
    const tampered = githubHeaders(body);
    expect((await post(`${h.base}/hooks/github`, push('refs/heads/main', 'd'.repeat(40)), tampered)).status).toBe(401);
    const { ['X-Hub-Signature-256']: _drop, ...unsigned } = githubHeaders(body);
    expect((await post(`${h.base}/hooks/github`, body, unsigned)).status).toBe(401);
    const sha1Only = { ...unsigned, 'X-Hub-Signature': `sha1=${createHmac('sha1', SECRET).update(body).digest('hex')}` };
    expect((await post(`${h.base}/hooks/github`, body, sha1Only)).status).toBe(401);
    await new Promise((r) => setTimeout(r, 50));
    expect(h.events).toEqual([]);
    expect(h.results.get('github/unauthorized')).toBe(4);
  });

  it('drops a replayed delivery id', async () => {
    const h = await start();
    const body = push();
    const headers = githubHeaders(body, 'same-delivery');
    expect((await post(`${h.base}/hooks/github`, body, headers)).status).toBe(202);
    const again = await post(`${h.base}/hooks/github`, body, headers);
    expect(again.status).toBe(202);
    expect(again.json.status).toBe('duplicate');
    await new Promise((r) => setTimeout(r, 50));
    expect(h.events).toHaveLength(1);
  });

  it('ignores pings, other events and pushes to refs not followed (202 with a reason)', async () => {
    const h = await start({ acceptRef: (ref) => ref === 'refs/heads/main' });
    const ping = JSON.stringify({ zen: 'Keep it logically awesome.', hook_id: 1 });
    const r1 = await post(`${h.base}/hooks/github`, ping, githubHeaders(ping, randomUUID(), 'ping'));
    expect([r1.status, r1.json.status]).toEqual([202, 'ignored']);
    const other = push('refs/heads/feature');
    const r2 = await post(`${h.base}/hooks/github`, other, githubHeaders(other));
    expect([r2.status, r2.json.status]).toEqual([202, 'ignored']);
    expect(r2.json.reason).toContain('refs/heads/feature');
    await new Promise((r) => setTimeout(r, 50));
    expect(h.events).toEqual([]);
  });

  it("reads GitHub's form-encoded payloads", async () => {
    const h = await start();
    const body = `payload=${encodeURIComponent(push())}`;
    const res = await post(`${h.base}/hooks/github`, body, { ...githubHeaders(body), 'Content-Type': 'application/x-www-form-urlencoded' });
    expect(res.status).toBe(202);
    await until(() => h.events.length === 1, 'event delivered');
    expect(h.events[0]?.ref).toBe('refs/heads/main');
  });
});

describe('routing', () => {
  it('answers 404 for unknown paths and 405 for other methods', async () => {
    const h = await start({ providers: ['github'] });
    expect((await fetch(`${h.base}/hooks/bitbucket`, { method: 'POST', body: '{}' })).status).toBe(404);
    expect((await fetch(`${h.base}/hooks/gitea`, { method: 'POST', body: '{}' })).status).toBe(404);
    expect((await fetch(`${h.base}/`, { method: 'GET' })).status).toBe(404);
    const get = await fetch(`${h.base}/hooks/github`);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect(h.results.get('unknown/not_found')).toBe(3);
    expect(h.results.get('github/method_not_allowed')).toBe(1);
  });

  it('refuses to run without a secret', () => {
    expect(() => new WebhookReceiver({ onEvent: () => {} })).toThrow(/no webhook secret/);
    expect(() => new WebhookReceiver({ secret: '', onEvent: () => {} })).toThrow(/no webhook secret/);
  });

  it('serves only the providers with a secret; the shared secret is never GitLab\'s token', async () => {
    const h = await start();
    expect(receiver!.providers).toEqual(['github', 'gitea']);
    const res = await fetch(`${h.base}/hooks/gitlab`, { method: 'POST', body: '{}', headers: { 'X-Gitlab-Token': SECRET } });
    expect(res.status).toBe(404);
    expect(() => new WebhookReceiver({ secret: SECRET, providers: ['gitlab'], onEvent: () => {} })).toThrow(/no webhook secret for gitlab: GitLab sends its token in cleartext/);
    expect(new WebhookReceiver({ secrets: { gitlab: 'tok' }, onEvent: () => {} }).providers).toEqual(['gitlab']);
  });
});

describe('body cap', () => {
  it('answers 413 to a declared 10 MB body before any of it is sent', async () => {
    const h = await start({ maxBodyBytes: 1024 * 1024 });
    const body = push();
    const sig = githubHeaders(body)['X-Hub-Signature-256']!;
    // Headers only: the server must answer (and close) without waiting for the body.
    const answer = await raw(h.port, (send) => {
      send(
        `POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\n` +
          `X-Hub-Signature-256: ${sig}\r\nContent-Length: ${10 * 1024 * 1024}\r\n\r\n`,
      );
    });
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer).toContain('"too_large"');
    expect(h.results.get('github/too_large')).toBe(1);
    expect(h.events).toEqual([]);
  });

  it('stops a chunked body at the cap with 413', async () => {
    const h = await start({ maxBodyBytes: 64 * 1024 });
    const sig = githubHeaders(push())['X-Hub-Signature-256']!;
    // The body is never finished (no last chunk): the only way the server can answer is by
    // stopping at the cap. 96 KB is sent, so the cap (64 KB) is passed and nothing more follows.
    const answer = await raw(h.port, (send) => {
      send(
        `POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\n` +
          `X-Hub-Signature-256: ${sig}\r\nTransfer-Encoding: chunked\r\n\r\n`,
      );
      const chunk = Buffer.alloc(16 * 1024, 0x20);
      for (let i = 0; i < 6; i++) send(Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]));
    });
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer).toContain('"too_large"');
    expect(h.results.get('github/too_large')).toBe(1);
    expect(h.events).toEqual([]);
  });
});

describe('Gitea and GitLab endpoints', () => {
  it('Gitea: bare hex signature, delivery id, replay dropped, forged refused', async () => {
    const h = await start();
    const body = push('refs/heads/main');
    const sig = createHmac('sha256', SECRET).update(body).digest('hex');
    const headers = { 'Content-Type': 'application/json', 'X-Gitea-Event': 'push', 'X-Gitea-Delivery': 'g-1', 'X-Gitea-Signature': sig };
    expect((await post(`${h.base}/hooks/gitea`, body, headers)).status).toBe(202);
    expect((await post(`${h.base}/hooks/gitea`, body, headers)).json.status).toBe('duplicate');
    expect((await post(`${h.base}/hooks/gitea`, body, { ...headers, 'X-Gitea-Delivery': 'g-2', 'X-Gitea-Signature': `sha256=${sig}` })).status).toBe(401);
    await until(() => h.events.length === 1, 'event delivered');
    expect(h.events[0]).toMatchObject({ provider: 'gitea', deliveryId: 'g-1', ref: 'refs/heads/main', after: SHA });
  });

  it('GitLab: token compared with the secret; wrong token refused before the body is read', async () => {
    const h = await start({ secrets: { gitlab: 'gitlab-token' } });
    const body = JSON.stringify({ object_kind: 'push', ref: 'refs/heads/main', after: SHA, checkout_sha: SHA });
    const headers = { 'Content-Type': 'application/json', 'X-Gitlab-Event': 'Push Hook', 'X-Gitlab-Event-UUID': 'gl-1', 'X-Gitlab-Token': 'gitlab-token' };
    expect((await post(`${h.base}/hooks/gitlab`, body, headers)).status).toBe(202);
    expect((await post(`${h.base}/hooks/gitlab`, body, headers)).json.status).toBe('duplicate');
    expect((await post(`${h.base}/hooks/gitlab`, body, { ...headers, 'X-Gitlab-Event-UUID': 'gl-2', 'X-Gitlab-Token': SECRET })).status).toBe(401);
    // The shared secret does not open GitLab when it has its own.
    const answer = await raw(h.port, (send) => {
      send(`POST /hooks/gitlab HTTP/1.1\r\nHost: x\r\nX-Gitlab-Token: nope\r\nContent-Length: 100\r\n\r\n`);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
    const tag = await post(`${h.base}/hooks/gitlab`, body, { ...headers, 'X-Gitlab-Event': 'Tag Push Hook', 'X-Gitlab-Event-UUID': 'gl-3' });
    expect(tag.status).toBe(202);
    const mr = await post(`${h.base}/hooks/gitlab`, body, { ...headers, 'X-Gitlab-Event': 'Merge Request Hook', 'X-Gitlab-Event-UUID': 'gl-4' });
    expect(mr.json.status).toBe('ignored');
    await until(() => h.events.length === 2, 'events delivered');
    expect(h.events[0]).toMatchObject({ provider: 'gitlab', deliveryId: 'gl-1', event: 'Push Hook', ref: 'refs/heads/main', after: SHA });
  });
});

describe('burst', () => {
  it('coalesces 200 webhooks during a slow reconcile into at most 2 runs', async () => {
    let release!: () => void;
    const firstRunGate = new Promise<void>((r) => (release = r));
    let runs = 0;
    const coalescer = new TriggerCoalescer(async () => {
      runs += 1;
      // The first reconcile lasts until the whole burst has been received.
      if (runs === 1) await firstRunGate;
    });
    let delivered = 0;
    const h = await start({
      onEvent: (e) => {
        delivered += 1;
        coalescer.trigger('webhook', e.deliveryId);
      },
    });
    // 200 distinct pushes (real deliveries differ; one body repeated is a replay, limited per digest).
    const responses = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const body = push('refs/heads/main', i.toString(16).padStart(40, '0'));
        return (await post(`${h.base}/hooks/github`, body, githubHeaders(body, `burst-${i}`))).status;
      }),
    );
    expect(responses.every((s) => s === 202)).toBe(true);
    await until(() => delivered === 200, 'all 200 events delivered');
    release();
    await coalescer.whenIdle();
    expect(runs).toBeGreaterThanOrEqual(1);
    expect(runs).toBeLessThanOrEqual(2);
    expect(coalescer.runs).toBe(runs);
  });
});
