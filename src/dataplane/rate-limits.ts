// Reading the rate limiter's state (bpf/lib/ratelimit.h): the per-CPU counters of limited new
// flows, and the per-source buckets that refused the most flows (for `lb show`, `lb status` and
// /metrics). The limits themselves are in each generation's lb_settings.

import {
  LB_RL_SCALE, LB_RL_STAT_MAX, RL_STAT_NAMES, decodeRateLimitBucket, encodeU32, u32ToIpv4, type RateLimitBucket, type RateLimitValue, type Settings,
} from '../core/abi.js';
import type { DataPlane } from './data-plane.js';

export type RateLimitStatName = (typeof RL_STAT_NAMES)[number];

/** lb_rl_stats summed over CPUs: new flows dropped per scope, and spilled to another backend. */
export function readRateLimitStats(dp: DataPlane): Record<RateLimitStatName, bigint> {
  const out = {} as Record<RateLimitStatName, bigint>;
  for (let i = 0; i < Math.min(RL_STAT_NAMES.length, LB_RL_STAT_MAX); i++) {
    const slots = dp.maps.lb_rl_stats.lookupPerCpu(encodeU32(i)) ?? [];
    out[RL_STAT_NAMES[i]!] = slots.reduce((sum, b) => sum + b.readBigUInt64LE(0), 0n);
  }
  return out;
}

export interface LimitedSource {
  addr: string;
  /** New flows this source's bucket refused (since the bucket was created). */
  limited: bigint;
  /** Whole tokens left at the last refill. */
  tokens: number;
}

/**
 * The sources whose buckets refused the most new flows, most first (ties by address), at most
 * `n`. Reads the whole LRU (LB_MAX_RL_SOURCES entries at most) in batches.
 */
export function topLimitedSources(dp: DataPlane, n: number): LimitedSource[] {
  const out: LimitedSource[] = [];
  for (const [k, v] of dp.maps.lb_rl_src.lookupBatch()) {
    const b = decodeRateLimitBucket(v);
    if (b.limited === 0n) continue;
    out.push({ addr: u32ToIpv4(k.readUInt32BE(0)), limited: b.limited, tokens: Number(b.tokensScaled / BigInt(LB_RL_SCALE)) });
  }
  out.sort((a, b) => (a.limited === b.limited ? (a.addr < b.addr ? -1 : 1) : a.limited > b.limited ? -1 : 1));
  return out.slice(0, n);
}

/** A backend's bucket (lb_rl_backend[target_id]). */
export function readBackendBucket(dp: DataPlane, targetId: number): RateLimitBucket {
  const v = dp.maps.lb_rl_backend.lookup(encodeU32(targetId));
  return v ? decodeRateLimitBucket(v) : { tokensScaled: 0n, lastNs: 0n, limited: 0n };
}

/** What `lb show`, `lb status` and /metrics report about the rate limits. */
export interface RateLimitSummary {
  /** The active generation's limits (null: none in that scope). */
  perSource: RateLimitValue | null;
  perBackend: RateLimitValue | null;
  /** New flows dropped because their source's bucket was empty. */
  sourceLimited: number;
  /** New flows sent to another backend because the chosen one's bucket was empty. */
  backendSpilled: number;
  /** New flows dropped because every backend of the group was out of tokens. */
  backendLimited: number;
  /** The sources that were refused the most new flows, most first. */
  topSources: Array<{ addr: string; limited: number }>;
}

/** How many limited sources the reports list. */
export const TOP_LIMITED_SOURCES = 10;

export function rateLimitSummary(dp: DataPlane, settings: Settings, n = TOP_LIMITED_SOURCES): RateLimitSummary {
  const stats = readRateLimitStats(dp);
  return {
    perSource: settings.perSource ?? null,
    perBackend: settings.perBackend ?? null,
    sourceLimited: Number(stats.source_limited),
    backendSpilled: Number(stats.backend_spilled),
    backendLimited: Number(stats.backend_limited),
    topSources: topLimitedSources(dp, n).map((s) => ({ addr: s.addr, limited: Number(s.limited) })),
  };
}

/** The summary as text lines (`lb show`, `lb status`). */
export function rateLimitLines(s: RateLimitSummary): string[] {
  const limit = (l: RateLimitValue | null): string => (l ? `${l.rate}/s burst ${l.burst}` : 'none');
  const lines = [
    `Rate limits: per-source ${limit(s.perSource)}, per-backend ${limit(s.perBackend)}`,
    `  new flows limited: ${s.sourceLimited} dropped by source, ${s.backendSpilled} spilled to another backend, ` +
    `${s.backendLimited} dropped with every backend out of tokens`,
  ];
  if (s.topSources.length > 0) lines.push(`  top limited sources: ${s.topSources.map((t) => `${t.addr} (${t.limited})`).join(', ')}`);
  return lines;
}
