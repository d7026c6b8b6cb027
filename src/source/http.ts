// isomorphic-git's node HTTP client with the two limits a daemon needs and the library leaves out:
// a socket idle timeout per request and an abort signal for the whole operation (so a remote that
// accepts the connection and then hangs cannot stall the reconcile loop forever).

import type { GitHttpRequest, GitHttpResponse, HttpClient } from 'isomorphic-git';
import { request as nodeRequest } from 'isomorphic-git/http/node';

export interface HttpLimits {
  /** Abort a request whose socket is idle this long (default 15 s). */
  idleTimeoutMs?: number;
  /** Aborts every request made through the client (an operation deadline). */
  signal?: AbortSignal;
}

export function limitedHttpClient(limits: HttpLimits = {}): HttpClient {
  const timeout = limits.idleTimeoutMs ?? 15_000;
  return {
    request(req: GitHttpRequest): Promise<GitHttpResponse> {
      const signal = req.signal ?? limits.signal;
      return nodeRequest({
        ...req,
        ...(signal ? { signal } : {}),
        fetchOptions: { ...(req.fetchOptions ?? {}), timeout },
      });
    },
  };
}

/** A signal that fires after `ms` or when `parent` fires, whichever comes first. */
export function deadlineSignal(ms: number, parent?: AbortSignal): AbortSignal {
  const timer = AbortSignal.timeout(ms);
  return parent ? AbortSignal.any([timer, parent]) : timer;
}
