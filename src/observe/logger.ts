// The daemon's logger: pino, JSON lines on stdout, with secrets kept out of every line.
//
// Two layers of protection, because a secret can reach a log line as a field or inside text:
// - redact paths: fields named like a secret (token, secret, password, authorization, cookie,
//   webhookSecret, ...) at the top level and up to three levels down are replaced by "[redacted]";
// - a scrub of every string (message and fields, at any depth): credentials written into a URL
//   (`https://user:token@host`), `Authorization: Basic|Bearer ...` text, and the values of
//   `token=...` / `secret=...` style assignments are cut out.
// The building blocks (source, webhook, report) already avoid logging secrets; this is the net
// under them. The logger is structurally the `Logger` of src/log.ts.

import { pino, type Logger as PinoLogger, type LevelWithSilent } from 'pino';

export type DaemonLogger = PinoLogger;

export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

const SECRET_KEYS = [
  'token', 'secret', 'password', 'passwd', 'authorization', 'cookie', 'set-cookie', 'webhookSecret', 'secrets',
  'authToken', 'apiKey', 'privateKey', 'x-gitlab-token', 'x-hub-signature-256', 'x-gitea-signature',
];

/** pino redact paths for SECRET_KEYS at depth 0..3 (pino wildcards match one level each). */
export function redactPaths(): string[] {
  const paths: string[] = [];
  for (const k of SECRET_KEYS) {
    const plain = /^[A-Za-z_$][\w$]*$/.test(k);
    const at = (prefix: string): string => (plain ? (prefix === '' ? k : `${prefix}.${k}`) : `${prefix}["${k}"]`);
    paths.push(at(''), at('*'), at('*.*'), at('*.*.*'));
  }
  return paths;
}

/**
 * Characters of one string a log line keeps; longer strings (a 200 KB config key quoted in an
 * error) are cut, so a log line stays a line and the scrub below stays cheap.
 */
export const MAX_LOG_STRING = 64 * 1024;

/** Scrubbed beyond the cut, so a credential that straddles it is still recognised whole. */
const SCRUB_MARGIN = 4 * 1024;

// Linear on any input: each pattern starts at a fixed word or a short scheme and no run can be
// rescanned from many starting points. The scheme is at most 32 characters and whitespace runs
// at most 16; the userinfo run stops at the first '/', '@' or whitespace, so the attempts that
// reach it (a bounded number per "://") never overlap another "://". The old scheme run
// `[a-z0-9+.-]*` restarted at every word boundary of "a-a-a-..." and went quadratic: 26 s for
// one 200 KB string.
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]{0,31}:\/\/)[^/@\s]*@/gi;
const AUTH_HEADER = /\b(authorization\s{0,16}[:=]\s{0,16})(basic|bearer|token)\s{1,16}[^\s,;"']+/gi;
const ASSIGNMENT = /\b(token|secret|password|passwd|api[_-]?key)(\s{0,16}[=:]\s{0,16})([^\s,;&"']+)/gi;

/**
 * Removes credentials from free text (URLs with user:password, Authorization values, token=...),
 * and cuts text longer than MAX_LOG_STRING.
 */
export function scrubSecrets(text: string): string {
  const cut = text.length > MAX_LOG_STRING;
  const scrubbed = scrubText(cut ? text.slice(0, MAX_LOG_STRING + SCRUB_MARGIN) : text);
  if (!cut) return scrubbed;
  return `${scrubbed.slice(0, MAX_LOG_STRING)}... (${text.length} characters)`;
}

function scrubText(text: string): string {
  return text
    .replace(URL_CREDENTIALS, '$1[redacted]@')
    .replace(AUTH_HEADER, '$1$2 [redacted]')
    .replace(ASSIGNMENT, '$1$2[redacted]');
}

function scrubDeep(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return scrubSecrets(value);
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => scrubDeep(v, depth + 1));
  if (value instanceof Error) return { name: value.name, message: scrubSecrets(value.message) };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) out[k] = scrubDeep(v, depth + 1);
  return out;
}

export interface LoggerOptions {
  level?: LevelWithSilent;
  /** Fixed fields on every line (instance, node). */
  base?: Record<string, unknown>;
  /** Where to write (default stdout); tests pass a stream. */
  destination?: NodeJS.WritableStream;
}

export function createLogger(opts: LoggerOptions = {}): DaemonLogger {
  return pino(
    {
      level: opts.level ?? 'info',
      base: { pid: process.pid, ...opts.base },
      timestamp: pino.stdTimeFunctions.isoTime,
      messageKey: 'msg',
      redact: { paths: redactPaths(), censor: '[redacted]' },
      formatters: {
        level: (label) => ({ level: label }),
        log: (obj) => scrubDeep(obj, 0) as Record<string, unknown>,
      },
      hooks: {
        logMethod(args, method) {
          const scrubbed = args.map((a) => (typeof a === 'string' ? scrubSecrets(a) : a)) as typeof args;
          method.apply(this, scrubbed);
        },
      },
    },
    (opts.destination ?? pino.destination({ dest: 1, sync: true })) as pino.DestinationStream,
  );
}
