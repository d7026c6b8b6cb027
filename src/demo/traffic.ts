// Traffic through the VIP: N HTTP requests from a client namespace (a new connection each, so a
// new flow and a new backend choice each), counted by the backend that answered, and shown as
// bars next to the configured weights.

import { httpCountBackends, SandboxError, type HttpAnswer } from '../sandbox/index.js';

export interface Backend {
  name: string;
  address: string;
  weight: number;
}

export interface TrafficSample {
  requests: number;
  failures: number;
  counts: Record<string, number>;
  errors: string[];
  /** Each answered request's backend and client source port: which flow each choice was made for. */
  answers: HttpAnswer[];
}

export async function sendTraffic(clientNs: string, url: string, requests: number): Promise<TrafficSample> {
  const r = await httpCountBackends(clientNs, url, requests, { concurrency: 4, timeoutMs: 3000, totalTimeoutMs: 60_000 });
  if (r.attempted < requests) throw new SandboxError(`only ${r.attempted} of ${requests} requests were made within 60 s`);
  return { requests: r.attempted, failures: r.failures, counts: r.counts, errors: r.errors, answers: r.answers };
}

const BAR_WIDTH = 40;

/** One line per backend: name, address, weight share, bar, count and share of the answers. */
export function renderTraffic(sample: Omit<TrafficSample, 'answers'>, backends: readonly Backend[]): string[] {
  const totalWeight = backends.reduce((n, b) => n + b.weight, 0);
  const answered = Object.values(sample.counts).reduce((n, c) => n + c, 0);
  const lines = backends.map((b) => {
    const c = sample.counts[b.name] ?? 0;
    const share = answered === 0 ? 0 : c / answered;
    const expected = totalWeight === 0 ? 0 : b.weight / totalWeight;
    const bar = '#'.repeat(Math.round(share * BAR_WIDTH)).padEnd(BAR_WIDTH, '.');
    return `${b.name}  ${b.address.padEnd(12)} weight ${String(b.weight).padStart(3)} (${pct(expected)})  ${bar} ${String(c).padStart(3)} (${pct(share)})`;
  });
  const unknown = Object.keys(sample.counts).filter((n) => !backends.some((b) => b.name === n));
  for (const n of unknown) lines.push(`${n}: ${sample.counts[n]} (not a configured backend!)`);
  lines.push(`${answered} of ${sample.requests} requests answered${sample.failures ? `, ${sample.failures} failed: ${sample.errors[0] ?? ''}` : ''}`);
  return lines;
}

function pct(x: number): string {
  return `${Math.round(x * 100)}%`.padStart(4);
}

/** Share of the answers per backend, 0..1. */
export function shares(sample: Pick<TrafficSample, 'counts'>): Record<string, number> {
  const answered = Object.values(sample.counts).reduce((n, c) => n + c, 0);
  return Object.fromEntries(Object.entries(sample.counts).map(([k, v]) => [k, answered === 0 ? 0 : v / answered]));
}
