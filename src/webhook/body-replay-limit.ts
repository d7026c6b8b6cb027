// How often the same signed body may be accepted. The delivery id is not covered by the HMAC (nor
// by GitLab's token), so a captured delivery replayed with a fresh id, or none, passes every check;
// what a replay cannot change is the body. This limits accepted events per body digest: at most
// `limit` in any `windowMs`. Two honest pushes never share a body on GitHub (it carries the push
// time); on GitLab the same before/after pair pushed again within the window is the one honest
// repeat, hence a limit above one. Only verified bodies are recorded, so the table grows with
// genuine deliveries alone; it is bounded all the same (oldest digest forgotten first).

import { createHash } from 'node:crypto';

export interface BodyReplayLimitOptions {
  /** Accepted events per body digest within the window (default 3). */
  limit?: number;
  /** The window (default 10 min). */
  windowMs?: number;
  /** Digests remembered (default 4096). */
  capacity?: number;
  now?: () => number;
}

export const DEFAULT_REPLAY_LIMIT = 3;
export const DEFAULT_REPLAY_WINDOW_MS = 10 * 60_000;

export class BodyReplayLimit {
  readonly limit: number;
  readonly windowMs: number;
  private readonly capacity: number;
  private readonly now: () => number;
  /** digest -> times it was accepted within the window, oldest first. */
  private readonly accepted = new Map<string, number[]>();

  constructor(opts: BodyReplayLimitOptions = {}) {
    this.limit = Math.max(1, opts.limit ?? DEFAULT_REPLAY_LIMIT);
    this.windowMs = Math.max(1, opts.windowMs ?? DEFAULT_REPLAY_WINDOW_MS);
    this.capacity = Math.max(1, opts.capacity ?? 4096);
    this.now = opts.now ?? Date.now;
  }

  /** The key of a body: provider and SHA-256 of its raw bytes. */
  static keyOf(provider: string, body: Uint8Array): string {
    return `${provider}:${createHash('sha256').update(body).digest('hex')}`;
  }

  /** Records one acceptance of `key` and returns true, or returns false when the limit is reached. */
  admit(key: string): boolean {
    const now = this.now();
    const times = (this.accepted.get(key) ?? []).filter((t) => now - t < this.windowMs);
    if (times.length >= this.limit) {
      this.accepted.set(key, times);
      return false;
    }
    times.push(now);
    // Re-inserted: the most recently accepted digest is the last to be forgotten.
    this.accepted.delete(key);
    this.accepted.set(key, times);
    if (this.accepted.size > this.capacity) this.accepted.delete(this.accepted.keys().next().value!);
    return true;
  }

  get size(): number {
    return this.accepted.size;
  }
}
