// `--webhook-secret-file`, repeatable: `PROVIDER=FILE` gives one provider its own secret and
// serves it; a bare `FILE` (the original form) is the shared secret of GitHub and Gitea. Both are
// HMAC providers: their secret never crosses the wire, so sharing it exposes nothing more. GitLab
// sends its token as is in every request; it is served only with its own `gitlab=FILE`, so a
// listener without TLS can leak only GitLab's token, never the HMAC key.

import { readFile } from 'node:fs/promises';
import { LbError } from '../core/errors.js';
import { PROVIDERS, type Provider } from './providers.js';

/** The providers a bare FILE serves. */
export const SHARED_SECRET_PROVIDERS: readonly Provider[] = ['github', 'gitea'];

/** Which file holds each served provider's secret. */
export type SecretFiles = Partial<Record<Provider, string>>;

/**
 * Reads the flag values. A provider named twice, two bare files, an unknown `NAME=` prefix or an
 * empty path is a usage error. A provider's own file wins over the bare one, whatever the order.
 */
export function parseSecretFileFlags(values: readonly string[]): SecretFiles {
  const own: SecretFiles = {};
  let shared: string | undefined;
  for (const value of values) {
    const m = /^([a-z]+)=(.*)$/.exec(value);
    if (m === null) {
      if (value === '') usage('--webhook-secret-file: the file path is empty');
      if (shared !== undefined) usage(`--webhook-secret-file: two shared secret files (${shared} and ${value}); name the provider of each, as PROVIDER=FILE`);
      shared = value;
      continue;
    }
    const [, name, file] = m as unknown as [string, string, string];
    if (!(PROVIDERS as readonly string[]).includes(name)) {
      usage(`--webhook-secret-file ${JSON.stringify(value)}: ${JSON.stringify(name)} is not a provider (expected PROVIDER=FILE with PROVIDER one of ${PROVIDERS.join(', ')}, or a bare FILE for github and gitea; write ./${value} for a file of that name)`);
    }
    const p = name as Provider;
    if (file === '') usage(`--webhook-secret-file ${JSON.stringify(value)}: the file path is empty`);
    if (own[p] !== undefined) usage(`--webhook-secret-file: ${p} is given twice (${own[p]} and ${file})`);
    own[p] = file;
  }
  const out: SecretFiles = {};
  for (const p of PROVIDERS) {
    const file = own[p] ?? (SHARED_SECRET_PROVIDERS.includes(p) ? shared : undefined);
    if (file !== undefined) out[p] = file;
  }
  return out;
}

function usage(message: string): never {
  throw new LbError('LB_DAEMON_USAGE', message);
}

/** Reads each provider's secret; the same file is read once. */
export async function loadSecretFiles(files: SecretFiles): Promise<Partial<Record<Provider, string>>> {
  const cache = new Map<string, Promise<string>>();
  const out: Partial<Record<Provider, string>> = {};
  for (const p of PROVIDERS) {
    const file = files[p];
    if (file === undefined) continue;
    if (!cache.has(file)) cache.set(file, loadWebhookSecret(file));
    out[p] = await cache.get(file)!;
  }
  return out;
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
