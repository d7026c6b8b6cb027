// Webhook authentication, on the raw body bytes and before any parsing. Every comparison is
// constant-time over equal-length buffers (crypto.timingSafeEqual); malformed headers fail without
// comparing. SHA-1 (GitHub's legacy X-Hub-Signature) is not accepted.

import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export function hmacSha256(secret: string | Buffer, body: Uint8Array): Buffer {
  return createHmac('sha256', secret).update(body).digest();
}

/** GitHub X-Hub-Signature-256: `sha256=` + hex HMAC-SHA256 of the body. */
export function verifyGithubSignature(secret: string | Buffer, body: Uint8Array, header: string | undefined): boolean {
  const m = header === undefined ? null : /^sha256=([0-9a-fA-F]{64})$/.exec(header.trim());
  return m !== null && timingSafeEqual(Buffer.from(m[1]!, 'hex'), hmacSha256(secret, body));
}

/** Gitea X-Gitea-Signature: bare hex HMAC-SHA256 of the body. */
export function verifyGiteaSignature(secret: string | Buffer, body: Uint8Array, header: string | undefined): boolean {
  const m = header === undefined ? null : /^([0-9a-fA-F]{64})$/.exec(header.trim());
  return m !== null && timingSafeEqual(Buffer.from(m[1]!, 'hex'), hmacSha256(secret, body));
}

/**
 * GitLab X-Gitlab-Token: the secret itself. Both sides are hashed first so the comparison runs on
 * equal-length buffers and its time says nothing about the secret's length.
 */
export function verifyGitlabToken(secret: string | Buffer, header: string | undefined): boolean {
  if (header === undefined || header === '') return false;
  const a = createHash('sha256').update(header).digest();
  const b = createHash('sha256').update(secret).digest();
  return timingSafeEqual(a, b);
}
