// Maps what isomorphic-git and the network throw to SourceErrors with a reconcile disposition.
// Messages name the redacted URL and the ref, never credentials or request headers.

import { SourceError } from './disposition.js';

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'ABORT_ERR',
  'UND_ERR_SOCKET',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

export interface GitErrorContext {
  /** Redacted URL or path, for messages. */
  where: string;
  ref?: string;
}

export function isNetworkError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== undefined && NETWORK_CODES.has(code)) return true;
  if (err.name === 'AbortError' || err.name === 'TimeoutError') return true;
  if (/request timed out|socket hang up/i.test(err.message)) return true;
  const cause = (err as { cause?: unknown }).cause;
  return cause !== undefined && cause !== err && isNetworkError(cause);
}

export function httpStatusOf(err: unknown): number | undefined {
  if (err instanceof Error && (err as { code?: unknown }).code === 'HttpError') {
    const status = (err as { data?: { statusCode?: unknown } }).data?.statusCode;
    return typeof status === 'number' ? status : undefined;
  }
  return undefined;
}

export function classifyGitError(err: unknown, ctx: GitErrorContext): SourceError {
  if (err instanceof SourceError) return err;
  const status = httpStatusOf(err);
  const data = { url: ctx.where, ...(ctx.ref !== undefined ? { ref: ctx.ref } : {}), ...(status !== undefined ? { status } : {}) };
  if (isNetworkError(err)) {
    return new SourceError(
      'LB_SOURCE_UNREACHABLE',
      `git remote ${ctx.where} unreachable: ${brief(err)}`,
      { disposition: 'transient', reason: 'RemoteUnreachable' },
      data,
      { cause: err },
    );
  }
  if (status !== undefined) {
    if (status === 401 || status === 403) {
      return new SourceError(
        'LB_SOURCE_AUTH',
        `git remote ${ctx.where} refused the credentials (HTTP ${status}): check the token or password`,
        { disposition: 'stalling', reason: 'AuthenticationFailed' },
        data,
        { cause: err },
      );
    }
    if (status === 404) {
      return new SourceError('LB_SOURCE_REPO', `no git repository at ${ctx.where} (HTTP 404)`, { disposition: 'stalling', reason: 'RepositoryNotFound' }, data, {
        cause: err,
      });
    }
    if (status === 408 || status === 429 || status >= 500) {
      return new SourceError(
        'LB_SOURCE_UNREACHABLE',
        `git remote ${ctx.where} answered HTTP ${status}`,
        { disposition: 'transient', reason: 'RemoteUnreachable' },
        data,
        { cause: err },
      );
    }
  }
  const code = err instanceof Error ? (err as { code?: unknown }).code : undefined;
  if (code === 'UserCanceledError') {
    return new SourceError('LB_SOURCE_AUTH', `git remote ${ctx.where} refused the credentials`, { disposition: 'stalling', reason: 'AuthenticationFailed' }, data, {
      cause: err,
    });
  }
  if (code === 'SmartHttpError') {
    return new SourceError('LB_SOURCE_REPO', `${ctx.where} is not a git smart-HTTP endpoint`, { disposition: 'stalling', reason: 'RepositoryNotFound' }, data, {
      cause: err,
    });
  }
  return new SourceError('LB_SOURCE_FETCH', `git operation on ${ctx.where} failed: ${brief(err)}`, { disposition: 'transient', reason: 'FetchFailed' }, data, {
    cause: err,
  });
}

function brief(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as NodeJS.ErrnoException).code;
  const msg = err.message.split('\n')[0] ?? '';
  return code && !msg.includes(code) ? `${code}: ${msg}` : msg;
}
