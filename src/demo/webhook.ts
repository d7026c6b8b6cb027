// A GitHub-style push webhook, as GitHub would send it after the demo's push: a JSON body signed
// with X-Hub-Signature-256 (sha256= HMAC of the raw body with the shared secret), posted from
// inside the LB namespace to the daemon's receiver on that namespace's loopback.

import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execIn, SandboxError } from '../sandbox/index.js';
import { hmacSha256 } from '../webhook/signature.js';

export interface PushEvent {
  ref: string;
  before: string;
  after: string;
  repositoryUrl: string;
}

export interface WebhookDelivery {
  deliveryId: string;
  status: number;
  body: string;
  signature: string;
}

export function githubPushBody(e: PushEvent): string {
  return JSON.stringify({
    ref: e.ref,
    before: e.before,
    after: e.after,
    repository: { full_name: 'demo/config', clone_url: e.repositoryUrl },
    pusher: { name: 'demo-operator' },
    head_commit: { id: e.after },
  });
}

/** POSTs the signed push event to http://<listen>/hooks/github from inside `ns` (curl, bounded). */
export async function postGithubPush(ns: string, listen: string, secret: string, e: PushEvent): Promise<WebhookDelivery> {
  const body = githubPushBody(e);
  const signature = `sha256=${hmacSha256(secret, Buffer.from(body)).toString('hex')}`;
  const deliveryId = randomUUID();
  const dir = mkdtempSync(join(tmpdir(), 'lb-demo-hook-'));
  try {
    const file = join(dir, 'body.json');
    writeFileSync(file, body);
    const r = await execIn(ns, [
      'curl', '-sS', '--noproxy', '*', '--max-time', '5', '-o', '-', '-w', '\n%{http_code}',
      '-H', 'Content-Type: application/json',
      '-H', 'X-GitHub-Event: push',
      '-H', `X-GitHub-Delivery: ${deliveryId}`,
      '-H', `X-Hub-Signature-256: ${signature}`,
      '--data-binary', `@${file}`,
      `http://${listen}/hooks/github`,
    ], { via: 'nsenter', timeoutMs: 10_000, allowFailure: true });
    if (r.code !== 0) throw new SandboxError(`webhook POST to ${listen} failed (curl exit ${r.code ?? r.signal}): ${r.stderr.trim()}`);
    const i = r.stdout.lastIndexOf('\n');
    return { deliveryId, status: Number(r.stdout.slice(i + 1)), body: r.stdout.slice(0, i).trim(), signature };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
