// Credentials for an http(s) git remote, read when needed (so a rotated token file takes effect at
// the next fetch) and never logged: messages name the file or variable, never the value.
//
// Order: tokenFile, $LB_GIT_TOKEN, passwordFile, $LB_GIT_PASSWORD, then credentials written into
// the URL. A token is sent as HTTP basic auth with the username `x-access-token` (GitHub's
// convention; GitLab and Gitea accept any username with a token) unless a username is given.

import { readFile } from 'node:fs/promises';
import { SourceError } from './disposition.js';

export interface GitAuthOptions {
  /** A file holding a token (first line used). */
  tokenFile?: string;
  /** A file holding a password, used with `username`. */
  passwordFile?: string;
  /** Username for a password, or instead of `x-access-token` for a token. Else $LB_GIT_USERNAME. */
  username?: string;
  /** Environment to read LB_GIT_TOKEN / LB_GIT_USERNAME / LB_GIT_PASSWORD from (default process.env). */
  env?: NodeJS.ProcessEnv;
}

export interface GitCredentials {
  username: string;
  password: string;
}

export type CredentialsProvider = () => Promise<GitCredentials | undefined>;

const TOKEN_USERNAME = 'x-access-token';

export function credentialsFrom(opts: GitAuthOptions = {}, urlCredentials?: GitCredentials): CredentialsProvider {
  const env = opts.env ?? process.env;
  return async () => {
    const username = opts.username ?? nonEmpty(env['LB_GIT_USERNAME']);
    if (opts.tokenFile !== undefined) return { username: username ?? TOKEN_USERNAME, password: await readSecretFile(opts.tokenFile, 'token') };
    const envToken = nonEmpty(env['LB_GIT_TOKEN']);
    if (envToken !== undefined) return { username: username ?? TOKEN_USERNAME, password: envToken };
    if (opts.passwordFile !== undefined) {
      return { username: username ?? requireUsername('passwordFile'), password: await readSecretFile(opts.passwordFile, 'password') };
    }
    const envPassword = nonEmpty(env['LB_GIT_PASSWORD']);
    if (envPassword !== undefined) return { username: username ?? requireUsername('LB_GIT_PASSWORD'), password: envPassword };
    return urlCredentials;
  };
}

/** Whether credentials would travel in clear text: a plain http:// remote, with credentials to send. */
export function sendsCredentialsInClear(url: string, credentials: GitCredentials | undefined): boolean {
  return credentials !== undefined && /^http:\/\//i.test(url);
}

export function basicAuthHeader(c: GitCredentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

/** A secret from a file: the first line, trimmed. Used for tokens, passwords and webhook secrets. */
export async function readSecretFile(file: string, what: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    throw new SourceError('LB_SOURCE_CREDENTIALS', `cannot read the ${what} file ${file} (${code})`, { disposition: 'stalling', reason: 'CredentialsUnreadable' }, { file });
  }
  const first = (text.split(/\r?\n/)[0] ?? '').trim();
  if (first === '') {
    throw new SourceError('LB_SOURCE_CREDENTIALS', `the ${what} file ${file} is empty`, { disposition: 'stalling', reason: 'CredentialsUnreadable' }, { file });
  }
  return first;
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}

function requireUsername(from: string): never {
  throw new SourceError(
    'LB_SOURCE_CREDENTIALS',
    `a password (${from}) needs a username: set LB_GIT_USERNAME or the username option`,
    { disposition: 'stalling', reason: 'CredentialsUnreadable' },
  );
}
