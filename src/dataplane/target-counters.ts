// Every backend's counters in one walk: lb_tstats (per CPU) and lb_rl_backend read with
// BPF_MAP_LOOKUP_BATCH into two column buffers, then looked up by target id. A lookup per target
// (readTargetStats, readBackendBucket) is a syscall each: 8,000 backends took ~40 ms of the
// daemon's thread per sample and twice that per /metrics scrape; the batch walk of the 16,384
// slots is a few syscalls of 1,024 entries.

import { decodeRateLimitBucket, decodeTargetStats, sumTargetStats, type TargetStats } from '../core/abi.js';
import type { BpfMap } from './bpf-map.js';
import type { DataPlane } from './data-plane.js';

/** A map's values by key, from one batch walk of an array map (u32 keys). */
class ArrayColumns {
  private readonly values: Buffer;
  private readonly at: Int32Array;
  readonly stride: number;
  readonly cpus: number;

  constructor(map: BpfMap, below = Infinity) {
    const cols = map.lookupBatchColumns(1024, below);
    this.values = cols.values;
    this.stride = map.valueStride;
    this.cpus = map.cpus;
    this.at = new Int32Array(map.maxEntries).fill(-1);
    for (let i = 0; i < cols.count; i++) {
      const key = cols.keys.readUInt32LE(i * cols.keySize);
      if (key < this.at.length) this.at[key] = i * cols.valueSize;
    }
  }

  /** The offset of key's value (its first CPU's slot), or -1 when the walk did not return it. */
  offset(key: number): number {
    return key >= 0 && key < this.at.length ? this.at[key]! : -1;
  }

  get buffer(): Buffer {
    return this.values;
  }
}

const ZERO_STATS: Readonly<TargetStats> = { packets: 0n, bytes: 0n, newFlows: 0n, closedFlows: 0n, failedConns: 0n };

export class TargetCounters {
  private constructor(private readonly stats: ArrayColumns, private readonly buckets: ArrayColumns | null) {}

  /**
   * Reads lb_tstats, and lb_rl_backend when `buckets` (the rate limiter's refusals per backend);
   * with `below`, only the slots under it (the ids a caller asks about: a sample each second
   * need not copy all 16,384 slots of every CPU when a few are in use).
   */
  static read(dp: DataPlane, options: { buckets: boolean; below?: number }): TargetCounters {
    const below = options.below ?? Infinity;
    return new TargetCounters(new ArrayColumns(dp.maps.lb_tstats, below), options.buckets ? new ArrayColumns(dp.maps.lb_rl_backend, below) : null);
  }

  /** A target's lb_tstats slot summed over CPUs (as DataPlane.readTargetStats). */
  targetStats(targetId: number): TargetStats {
    const base = this.stats.offset(targetId);
    if (base < 0) return { ...ZERO_STATS };
    const slots: TargetStats[] = [];
    for (let cpu = 0; cpu < this.stats.cpus; cpu++) slots.push(decodeTargetStats(this.stats.buffer, base + cpu * this.stats.stride));
    return sumTargetStats(slots);
  }

  /** New flows the backend's rate-limit bucket refused (lb_rl_backend's `limited`, as readBackendBucket). */
  limited(targetId: number): bigint {
    if (this.buckets === null) return 0n;
    const base = this.buckets.offset(targetId);
    return base < 0 ? 0n : decodeRateLimitBucket(this.buckets.buffer.subarray(base, base + this.buckets.stride)).limited;
  }
}
