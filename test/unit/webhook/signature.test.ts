// Webhook signature checks on raw bytes, with GitHub's documented test vector.

import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { verifyGiteaSignature, verifyGithubSignature, verifyGitlabToken } from '../../../src/webhook/index.js';

// https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
const SECRET = "It's a Secret to Everybody";
const BODY = Buffer.from('Hello, World!');
const SIGNATURE = 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17';

describe('GitHub X-Hub-Signature-256', () => {
  it("verifies GitHub's documented vector", () => {
    expect(verifyGithubSignature(SECRET, BODY, SIGNATURE)).toBe(true);
    expect(verifyGithubSignature(Buffer.from(SECRET), BODY, SIGNATURE.toUpperCase().replace('SHA256=', 'sha256='))).toBe(true);
  });

  it('refuses a changed body, a wrong secret, and malformed or SHA-1 headers', () => {
    expect(verifyGithubSignature(SECRET, Buffer.from('Hello, World?'), SIGNATURE)).toBe(false);
    expect(verifyGithubSignature('another secret', BODY, SIGNATURE)).toBe(false);
    expect(verifyGithubSignature(SECRET, BODY, undefined)).toBe(false);
    expect(verifyGithubSignature(SECRET, BODY, SIGNATURE.slice('sha256='.length))).toBe(false);
    expect(verifyGithubSignature(SECRET, BODY, SIGNATURE.slice(0, -2))).toBe(false);
    expect(verifyGithubSignature(SECRET, BODY, `${SIGNATURE}00`)).toBe(false);
    const sha1 = `sha1=${createHmac('sha1', SECRET).update(BODY).digest('hex')}`;
    expect(verifyGithubSignature(SECRET, BODY, sha1)).toBe(false);
  });
});

describe('Gitea X-Gitea-Signature', () => {
  it('is the bare hex HMAC-SHA256 of the body', () => {
    const hex = SIGNATURE.slice('sha256='.length);
    expect(verifyGiteaSignature(SECRET, BODY, hex)).toBe(true);
    expect(verifyGiteaSignature(SECRET, BODY, SIGNATURE)).toBe(false);
    expect(verifyGiteaSignature(SECRET, Buffer.from('x'), hex)).toBe(false);
  });
});

describe('GitLab X-Gitlab-Token', () => {
  it('compares the token with the secret, whatever their lengths', () => {
    expect(verifyGitlabToken(SECRET, SECRET)).toBe(true);
    expect(verifyGitlabToken(SECRET, `${SECRET} `)).toBe(false);
    expect(verifyGitlabToken(SECRET, 'short')).toBe(false);
    expect(verifyGitlabToken(SECRET, '')).toBe(false);
    expect(verifyGitlabToken(SECRET, undefined)).toBe(false);
  });
});
