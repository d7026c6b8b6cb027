// Per proxy and backend, from the connection records: connections opened and closed, bytes and
// packets of closed connections each way, connections active, a histogram of connection durations
// (lb_backend_latency_seconds: for request/response traffic over short connections, the time a
// backend took to serve one), its percentiles, and the recent closes `lb top` shows. Everything
// is updated as records arrive; scrapes (lb_connections_total, lb_bytes_total,
// lb_backend_latency_seconds...) and `lb status` read these numbers, never the kernel.
//
// Per record the work is a lookup by numbers (listener id, then backend address and port), a few
// adds and the histogram's bucket; the recent closes are kept for the batch's last ones, as numbers.

import { ipString, type ConnBatch, type ListenerNames } from './events/conn-batch.js';

/** Upper bounds (seconds) of lb_backend_latency_seconds; +Inf implied. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600] as const;

export interface LatencySummary {
  count: number;
  /** Seconds; null without closed connections. */
  mean: number | null;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export interface BackendConnStats {
  proxy: string;
  backend: string;
  opened: number;
  closed: number;
  active: number;
  bytesIn: number;
  bytesOut: number;
  packetsIn: number;
  packetsOut: number;
  /** Per-bucket counts (not cumulative), LATENCY_BUCKETS.length + 1 with +Inf last. */
  buckets: number[];
  sumSec: number;
  closeReasons: Record<string, number>;
}

export interface RecentClose {
  time: string;
  proxy: string;
  client: string;
  backend: string;
  reason: string;
  durationSec: number;
  bytesIn: number;
  bytesOut: number;
}

/** A recent close as the sink keeps it: the time and client as numbers, formatted when read. */
interface RecentCloseRaw extends Omit<RecentClose, 'time' | 'client'> {
  timeMs: number;
  clientAddr: number;
  clientPort: number;
}

/** The histogram's quantile, linear within the bucket (as Prometheus' histogram_quantile). */
export function quantile(q: number, buckets: readonly number[]): number | null {
  const total = buckets.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    const n = buckets[i]!;
    if (seen + n >= rank && n > 0) {
      const lo = i === 0 ? 0 : LATENCY_BUCKETS[i - 1]!;
      const hi = i < LATENCY_BUCKETS.length ? LATENCY_BUCKETS[i]! : LATENCY_BUCKETS[LATENCY_BUCKETS.length - 1]!;
      return lo + (hi - lo) * ((rank - seen) / n);
    }
    seen += n;
  }
  return LATENCY_BUCKETS[LATENCY_BUCKETS.length - 1]!;
}

export function summarize(s: Pick<BackendConnStats, 'buckets' | 'sumSec' | 'closed'>): LatencySummary {
  const count = s.buckets.reduce((a, b) => a + b, 0);
  const round = (v: number | null): number | null => (v === null ? null : Math.round(v * 1e6) / 1e6);
  return {
    count, mean: count > 0 ? round(s.sumSec / count) : null,
    p50: round(quantile(0.5, s.buckets)), p95: round(quantile(0.95, s.buckets)), p99: round(quantile(0.99, s.buckets)),
  };
}

export class ConnStats {
  private readonly byKey = new Map<string, BackendConnStats>();
  /** The last closes, as numbers: formatted (RecentClose) only when read, which `lb top` does a few times a minute. */
  private readonly recent: RecentCloseRaw[] = [];
  /** listener id -> backend (addr * 65536 + port) -> entry, for the names map it was built with. */
  private byNumbers = new Map<number, Map<number, BackendConnStats>>();
  private numbersFor: ReadonlyMap<number, ListenerNames> | undefined;
  /** The SNI acceptor's entries: proxy -> backend (addr * 65536 + port) -> entry (its records name no listener id). */
  private readonly acceptorEntries = new Map<string, Map<number, BackendConnStats>>();
  /** Open connections of the SNI acceptor per entry (from its records; no sweep sees them). */
  private readonly acceptorActive = new Map<BackendConnStats, number>();

  constructor(private readonly recentMax = 200) {}

  private entry(proxy: string, backend: string): BackendConnStats {
    const key = `${proxy}\0${backend}`;
    let s = this.byKey.get(key);
    if (!s) {
      s = {
        proxy, backend, opened: 0, closed: 0, active: 0, bytesIn: 0, bytesOut: 0, packetsIn: 0, packetsOut: 0,
        buckets: new Array<number>(LATENCY_BUCKETS.length + 1).fill(0), sumSec: 0, closeReasons: {},
      };
      this.byKey.set(key, s);
    }
    return s;
  }

  private entryOf(b: ConnBatch, i: number): BackendConnStats {
    if (b.names !== this.numbersFor) {
      // New names (an apply): a listener id may belong to another proxy now.
      this.byNumbers = new Map();
      this.numbersFor = b.names;
    }
    return this.backendEntry(this.byNumbers, b.listenerId(i), b, i);
  }

  /** The entry of an SNI acceptor's record (its listener id names nothing: keyed by its proxy). */
  private acceptorEntry(b: ConnBatch, i: number): BackendConnStats {
    return this.backendEntry(this.acceptorEntries, b.listener(i)?.proxy ?? '?', b, i);
  }

  /**
   * The entry of record i's backend under `key` (a listener id, or an acceptor's proxy), found by
   * numbers (address * 65536 + port); the first time, by its names.
   */
  private backendEntry<K>(byKey: Map<K, Map<number, BackendConnStats>>, key: K, b: ConnBatch, i: number): BackendConnStats {
    let perBackend = byKey.get(key);
    if (!perBackend) {
      perBackend = new Map();
      byKey.set(key, perBackend);
    }
    const addr = b.backendAddr(i);
    const port = b.backendPort(i);
    const k = addr * 65536 + port;
    let s = perBackend.get(k);
    if (!s) {
      s = this.entry(b.listener(i)?.proxy ?? '?', `${ipString(addr)}:${port}`);
      perBackend.set(k, s);
    }
    return s;
  }

  /** The event sink. */
  add(b: ConnBatch): void {
    // The recent closes kept are the batch's last recentMax: built from this index on.
    let recentFrom = b.count;
    for (let n = 0; recentFrom > 0 && n < this.recentMax;) {
      recentFrom--;
      if (b.keep[recentFrom] === 1 && b.isClose(recentFrom)) n++;
    }
    for (let i = 0; i < b.count; i++) {
      if (b.keep[i] !== 1) continue;
      let s: BackendConnStats;
      if (b.acceptor(i)) {
        // Listener id 0 names no listener: the acceptor's records are keyed by their own names.
        // The sweep sees the data plane's flows only: the acceptor's are counted here and added to its counts.
        s = this.acceptorEntry(b, i);
        const n = (this.acceptorActive.get(s) ?? 0) + (b.isClose(i) ? -1 : 1);
        if (n > 0) this.acceptorActive.set(s, n);
        else this.acceptorActive.delete(s);
      } else {
        s = this.entryOf(b, i);
      }
      if (!b.isClose(i)) {
        s.opened++;
        s.active++;
        continue;
      }
      s.closed++;
      if (s.active > 0) s.active--;
      s.bytesIn += b.bytesIn(i);
      s.bytesOut += b.bytesOut(i);
      s.packetsIn += b.packetsIn(i);
      s.packetsOut += b.packetsOut(i);
      const reason = b.reason(i);
      s.closeReasons[reason] = (s.closeReasons[reason] ?? 0) + 1;
      const d = b.durationSec(i);
      let k = 0;
      while (k < LATENCY_BUCKETS.length && d > LATENCY_BUCKETS[k]!) k++;
      s.buckets[k]!++;
      s.sumSec += d;
      if (i >= recentFrom) {
        this.recent.push({
          timeMs: b.timeMs(i), proxy: s.proxy, clientAddr: b.clientAddr(i), clientPort: b.clientPort(i), backend: s.backend,
          reason, durationSec: d, bytesIn: b.bytesIn(i), bytesOut: b.bytesOut(i),
        });
      }
    }
    if (this.recent.length > this.recentMax) this.recent.splice(0, this.recent.length - this.recentMax);
  }

  /** Active connections as the sweep counted them (flows that predate the daemon included). */
  setActive(counts: ReadonlyMap<string, number>): void {
    for (const s of this.byKey.values()) s.active = this.acceptorActive.get(s) ?? 0;
    for (const [key, n] of counts) {
      const [proxy, backend] = key.split('\0') as [string, string];
      this.entry(proxy, backend).active += n;
    }
  }

  backends(): BackendConnStats[] {
    return [...this.byKey.values()].sort((a, b) => (a.proxy === b.proxy ? (a.backend < b.backend ? -1 : 1) : a.proxy < b.proxy ? -1 : 1));
  }

  recentCloses(n = 20): RecentClose[] {
    return this.recent.slice(-n).map((r) => ({
      time: new Date(r.timeMs).toISOString(), proxy: r.proxy, client: `${ipString(r.clientAddr)}:${r.clientPort}`, backend: r.backend,
      reason: r.reason, durationSec: r.durationSec, bytesIn: r.bytesIn, bytesOut: r.bytesOut,
    }));
  }
}
