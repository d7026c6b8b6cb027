// What a forge's answer to a commit-status request tells the sender: done, try again (when), or
// give up on this status. Pure: status code, headers and body in.
//
// - 2xx: done. GitLab's 400 "Cannot transition status via :X from :X" means the commit already
//   has that state for that name: done too.
// - 429, and 403 with `x-ratelimit-remaining: 0` or `retry-after` (GitHub's primary and secondary
//   rate limits): retry when the limit resets (`x-ratelimit-reset`, epoch seconds) or after
//   `retry-after` seconds.
// - 408, 5xx, and no answer (network error, timeout): retry with backoff.
// - 401 (bad token), 403 (no permission), 404 (repository or commit unknown, or hidden from the
//   token), 422 (GitHub: no such commit, or too many statuses), any other 4xx: give up on this
//   status (retrying cannot help; the next status is tried afresh).

export type Verdict =
  | { kind: 'ok' }
  | { kind: 'retry'; afterMs?: number; reason: string }
  | { kind: 'give-up'; reason: string };

export type HeaderGet = (name: string) => string | null;

export function classifyResponse(status: number, header: HeaderGet, body: string, nowMs: number): Verdict {
  if (status >= 200 && status < 300) return { kind: 'ok' };
  if (status === 400 && /cannot transition status/i.test(body)) return { kind: 'ok' };
  const limited = rateLimitDelay(header, nowMs);
  if (status === 429 || (status === 403 && limited !== undefined)) {
    return { kind: 'retry', ...(limited !== undefined ? { afterMs: limited } : {}), reason: `rate limited (HTTP ${status})` };
  }
  if (status === 408 || status >= 500) return { kind: 'retry', reason: `HTTP ${status}` };
  const what: Record<number, string> = {
    401: 'the token was refused (HTTP 401): check the token file',
    403: 'the token may not set commit statuses on this repository (HTTP 403)',
    404: 'repository or commit not found, or not visible to the token (HTTP 404)',
    422: 'the forge refused the status (HTTP 422: unknown commit, or too many statuses for it)',
  };
  return { kind: 'give-up', reason: `${what[status] ?? `HTTP ${status}`}${body ? `: ${excerpt(body)}` : ''}` };
}

/**
 * How long to hold requests because of a rate limit: `retry-after` (seconds), else, when
 * `x-ratelimit-remaining` is 0, until `x-ratelimit-reset` (epoch seconds) plus a second.
 * undefined when the headers say no limit is hit.
 */
export function rateLimitDelay(header: HeaderGet, nowMs: number): number | undefined {
  const retryAfter = Number(header('retry-after'));
  if (header('retry-after') !== null && Number.isFinite(retryAfter) && retryAfter >= 0) return Math.round(retryAfter * 1000);
  if (header('x-ratelimit-remaining') !== '0') return undefined;
  const reset = Number(header('x-ratelimit-reset'));
  if (!Number.isFinite(reset)) return 60_000;
  return Math.max(1000, reset * 1000 - nowMs + 1000);
}

function excerpt(body: string): string {
  let text = body;
  try {
    const j = JSON.parse(body) as { message?: unknown };
    if (typeof j.message === 'string') text = j.message;
  } catch {
    // not JSON: the text itself
  }
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 200 ? `${line.slice(0, 199)}…` : line;
}
