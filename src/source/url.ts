// Where a source lives: a local repository path or an http(s) remote. Credentials written into a
// URL are split off here so that no description, log line or error message can carry them.

import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SourceError } from './disposition.js';

export type SourceLocation =
  | { kind: 'local'; path: string }
  | { kind: 'http'; url: string; urlCredentials?: { username: string; password: string } };

const STALL_URL = { disposition: 'stalling', reason: 'InvalidSourceUrl' } as const;

export function parseSourceUrl(spec: string, cwd: string = process.cwd()): SourceLocation {
  if (spec.trim() === '') throw new SourceError('LB_SOURCE_URL', 'the source URL is empty', STALL_URL);
  if (/^https?:\/\//i.test(spec)) {
    let u: URL;
    try {
      u = new URL(spec);
    } catch {
      throw new SourceError('LB_SOURCE_URL', `malformed URL: ${redactUrl(spec)}`, STALL_URL);
    }
    const username = decodeURIComponent(u.username);
    const password = decodeURIComponent(u.password);
    u.username = '';
    u.password = '';
    const url = u.toString().replace(/\/+$/, '');
    return username || password ? { kind: 'http', url, urlCredentials: { username, password } } : { kind: 'http', url };
  }
  if (/^file:\/\//i.test(spec)) return { kind: 'local', path: fileURLToPath(spec) };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec) || /^[^/\s]+@[^/\s]+:/.test(spec)) {
    throw new SourceError(
      'LB_SOURCE_URL',
      `unsupported source URL ${redactUrl(spec)}: use an http(s) URL or a local repository path (ssh is not supported)`,
      STALL_URL,
    );
  }
  return { kind: 'local', path: isAbsolute(spec) ? spec : resolve(cwd, spec) };
}

/** The URL with any user:password removed: safe to log and to put in a status report. */
export function redactUrl(spec: string): string {
  return spec.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/i, '$1');
}

export function describeLocation(loc: SourceLocation): string {
  return loc.kind === 'local' ? loc.path : loc.url;
}
