// ConnRecords (as tests write them: names, wall-clock times and a duration) as the ConnBatch the
// event hub hands its sinks: encoded like ring records, with names and a clock offset that give
// back each record's timeMs, openMs (closes: timeMs - duration) and durationSec.
import { ConnBatch, type ConnRecord, type ListenerNames } from '../../src/observe/events/conn-batch.js';

export function batchOf(records: readonly ConnRecord[]): ConnBatch {
  const offsetMs = records.length > 0 ? Math.min(...records.map((r) => Math.min(r.openMs, r.timeMs - r.durationSec * 1000))) - 1000 : 0;
  const ns = (ms: number): bigint => BigInt(Math.round((ms - offsetMs) * 1e6));
  const names = new Map<number, ListenerNames>();
  const batch = ConnBatch.of(records.map((r) => {
    const known = names.get(r.listenerId);
    if (known && (known.proxy !== r.proxy || known.label !== (r.listener ?? ''))) throw new Error(`listener ${r.listenerId} named twice in one batch`);
    if (r.proxy !== null || r.listener !== null) names.set(r.listenerId, { proxy: r.proxy, label: r.listener ?? '' });
    const tsNs = ns(r.timeMs);
    const openNs = r.type === 'close' ? tsNs - BigInt(Math.round(r.durationSec * 1e9)) : ns(r.openMs);
    return { ...r, tsNs, openNs };
  }));
  batch.names = names;
  batch.offsetMs = offsetMs;
  return batch;
}
