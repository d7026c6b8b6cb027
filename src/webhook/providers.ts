// The three webhook dialects: where the signature and delivery id live, and how a push reads.

import type { IncomingHttpHeaders } from 'node:http';
import { verifyGiteaSignature, verifyGithubSignature, verifyGitlabToken } from './signature.js';

export type Provider = 'github' | 'gitea' | 'gitlab';

export const PROVIDERS: readonly Provider[] = ['github', 'gitea', 'gitlab'];

export interface ProviderSpec {
  provider: Provider;
  /** Header holding the proof; its absence is a 401 before the body is read. */
  signatureHeader: string;
  /**
   * The proof header's shape. A header of any other shape is a 401 before the body is read, so
   * only a request that could carry a valid proof costs a body buffer.
   */
  proofFormat: RegExp;
  /** The shape in words, for the 401's reason. */
  proofFormatText: string;
  /** HMAC providers never send their secret; GitLab sends it as is, so it needs TLS in front. */
  secretOnTheWire: boolean;
  deliveryHeader: string;
  eventHeader: string;
  /** GitLab's token does not depend on the body: it is checked before reading it. */
  verifiesBeforeBody: boolean;
  verify(secret: string | Buffer, body: Uint8Array, headers: IncomingHttpHeaders): boolean;
  /** Event names that mean "a ref moved". */
  pushEvents: ReadonlySet<string>;
}

export const PROVIDER_SPECS: Record<Provider, ProviderSpec> = {
  github: {
    provider: 'github',
    signatureHeader: 'x-hub-signature-256',
    proofFormat: /^sha256=[0-9a-fA-F]{64}$/,
    proofFormatText: 'sha256= and 64 hex digits',
    secretOnTheWire: false,
    deliveryHeader: 'x-github-delivery',
    eventHeader: 'x-github-event',
    verifiesBeforeBody: false,
    verify: (secret, body, h) => verifyGithubSignature(secret, body, header(h, 'x-hub-signature-256')),
    pushEvents: new Set(['push']),
  },
  gitea: {
    provider: 'gitea',
    signatureHeader: 'x-gitea-signature',
    proofFormat: /^[0-9a-fA-F]{64}$/,
    proofFormatText: '64 hex digits',
    secretOnTheWire: false,
    deliveryHeader: 'x-gitea-delivery',
    eventHeader: 'x-gitea-event',
    verifiesBeforeBody: false,
    verify: (secret, body, h) => verifyGiteaSignature(secret, body, header(h, 'x-gitea-signature')),
    pushEvents: new Set(['push']),
  },
  gitlab: {
    provider: 'gitlab',
    signatureHeader: 'x-gitlab-token',
    // GitLab's secret token is free text; bounding its length keeps the hash below cheap.
    // eslint-disable-next-line no-control-regex -- refusing control characters is the point
    proofFormat: /^[^\x00-\x1f\x7f]{1,1024}$/,
    proofFormatText: '1 to 1024 characters without control characters',
    secretOnTheWire: true,
    deliveryHeader: 'x-gitlab-event-uuid',
    eventHeader: 'x-gitlab-event',
    verifiesBeforeBody: true,
    verify: (secret, _body, h) => verifyGitlabToken(secret, header(h, 'x-gitlab-token')),
    pushEvents: new Set(['Push Hook', 'Tag Push Hook']),
  },
};

export function header(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

export interface PushInfo {
  ref?: string;
  after?: string;
}

/**
 * Reads ref and after-sha from a verified body: JSON, or GitHub's form encoding (payload=<json>).
 * Returns undefined when the body is not a JSON object.
 */
export function parsePush(body: Uint8Array, contentType: string | undefined): PushInfo | undefined {
  let text = Buffer.from(body).toString('utf8');
  if ((contentType ?? '').toLowerCase().startsWith('application/x-www-form-urlencoded')) {
    const payload = new URLSearchParams(text).get('payload');
    if (payload === null) return undefined;
    text = payload;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const o = value as Record<string, unknown>;
  const out: PushInfo = {};
  if (typeof o['ref'] === 'string') out.ref = o['ref'];
  const after = typeof o['after'] === 'string' ? o['after'] : o['checkout_sha'];
  if (typeof after === 'string' && /^[0-9a-f]{40}$/.test(after)) out.after = after;
  return out;
}
