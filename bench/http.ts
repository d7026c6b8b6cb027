// HTTP requests per second with wrk from the client namespace, through lb, through nftables DNAT
// and directly to one backend, with keep-alive connections and with a new connection per request
// (`Connection: close`). The backends are the sandbox's Node HTTP servers (b1..b3).

import { join } from 'node:path';
import type { StatName } from '../src/dataplane/index.js';
import { httpGet } from '../src/sandbox/index.js';
import { HTTP_PORT, HTTP_PORT_ONE_BACKEND, type BenchEnv, type Forwarder } from './lib/env.js';
import { BenchError } from './lib/errors.js';
import { median, ratio } from './lib/stats.js';
import { AccessLog } from '../src/observe/access-log.js';
import { ConnStats } from '../src/observe/conn-stats.js';
import { EventHub } from '../src/observe/events/event-hub.js';
import type { Measurement, Ratio, Suite, SuiteContext, SuiteResult } from './lib/suite.js';

const WRK_THREADS = 2;
export const WRK_CONNECTIONS = 32;
const WARMUP_SECONDS = 1;

type Target = 'direct' | 'lb1' | 'lb' | 'lblog' | 'lbx' | 'nft';
export type Mode = 'keepalive' | 'close';

const TARGETS: Array<{ target: Target; forwarder: Forwarder; label: string; url: (env: BenchEnv) => string }> = [
  { target: 'direct', forwarder: 'kernel', label: 'direct to b1 (kernel forwarding)', url: (env) => `http://${env.backends[0]!.address}:${HTTP_PORT}/` },
  { target: 'lb1', forwarder: 'lb', label: 'lb, VIP group = b1 alone', url: (env) => `http://${env.vip}:${HTTP_PORT_ONE_BACKEND}/` },
  { target: 'lb', forwarder: 'lb', label: 'lb, VIP over b1..b3', url: (env) => `http://${env.vip}:${HTTP_PORT}/` },
  { target: 'lblog', forwarder: 'lb', label: 'lb, VIP over b1..b3, access log on', url: (env) => `http://${env.vip}:${HTTP_PORT}/` },
  { target: 'lbx', forwarder: 'lb-xdp', label: 'lb XDP path, VIP over b1..b3', url: (env) => `http://${env.vip}:${HTTP_PORT}/` },
  { target: 'nft', forwarder: 'nft', label: 'nftables DNAT over b1..b3', url: (env) => `http://${env.vip}:${HTTP_PORT}/` },
];

export interface WrkResult {
  requestsPerSec: number;
  requests: number;
  latencyAvg: string;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  non2xx: number;
}

/** Parses wrk's text summary. */
export function parseWrk(out: string): WrkResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (!rps) throw new BenchError(`cannot read wrk's output:\n${out}`);
  const reqs = /(\d+) requests in/.exec(out);
  const lat = /Latency\s+(\S+)/.exec(out);
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  return {
    requestsPerSec: Number(rps[1]),
    requests: Number(reqs?.[1] ?? 0),
    latencyAvg: lat?.[1] ?? '?',
    socketErrors: { connect: Number(se?.[1] ?? 0), read: Number(se?.[2] ?? 0), write: Number(se?.[3] ?? 0), timeout: Number(se?.[4] ?? 0) },
    non2xx: Number(non2xx?.[1] ?? 0),
  };
}

export async function wrk(env: BenchEnv, url: string, mode: Mode, seconds: number): Promise<WrkResult> {
  const argv = ['wrk', '-t', String(WRK_THREADS), '-c', String(WRK_CONNECTIONS), '-d', `${seconds}s`, '--timeout', '2s'];
  if (mode === 'close') argv.push('-H', 'Connection: close');
  argv.push(url);
  const r = await env.topo.exec('c1', argv, { timeoutMs: (seconds + 15) * 1000 });
  return parseWrk(r.stdout);
}

async function startAccessLog(env: BenchEnv, tag: string): Promise<{ stop: () => Promise<{ written: number; dropped: number; consumed: number }> }> {
  const hub = new EventHub({ instance: env.instance });
  const log = new AccessLog({
    enabled: true, format: 'json', path: join(env.tmp, `access-${tag}.log`), stdout: false, maxFileBytes: 100 << 20, maxFiles: 2, bufferSize: 10_000,
  });
  const stats = new ConnStats(); // the daemon's other sink: counters, latency histograms, recent closes
  hub.addSink((b) => log.add(b));
  hub.addSink((b) => stats.add(b));
  hub.addBackpressure(() => log.backlog());
  await hub.start();
  return {
    stop: async () => {
      const consumed = hub.stats().consumed;
      await hub.stop();
      await log.close();
      const s = log.status();
      return { written: s.written, dropped: s.dropped, consumed };
    },
  };
}

async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const env = await ctx.env();
  await env.ensureBackendServers();
  // A new connection per request needs many client ports: widen the range and let the client
  // reuse its own TIME_WAIT ports (the client namespace only).
  await env.topo.exec('c1', ['sysctl', '-q', '-w', 'net.ipv4.ip_local_port_range=1024 65535', 'net.ipv4.tcp_tw_reuse=1']);

  const seconds = ctx.options.httpSeconds;
  const rounds = ctx.options.httpRounds;
  const results = new Map<string, Array<{ r: WrkResult; lb?: Partial<Record<StatName, number>> }>>();
  const notes: string[] = [];
  try {
    // Warm-up: the Node servers compile their hot paths during the first thousands of requests;
    // without this the first target measured is penalised.
    await env.setForwarder('kernel');
    for (const b of env.backends) await wrk(env, `http://${b.address}:${HTTP_PORT}/`, 'keepalive', WARMUP_SECONDS);
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? TARGETS : [...TARGETS].reverse();
      for (const t of order) {
        await env.setForwarder(t.forwarder);
        const url = t.url(env);
        const probe = await httpGet(env.client.ns, url, { timeoutMs: 3000 });
        if (probe.status !== 200) throw new BenchError(`sanity request ${url} via ${t.target} answered ${probe.status}`);
        for (const mode of ['keepalive', 'close'] as const) {
          const isLb = t.forwarder === 'lb' || t.forwarder === 'lb-xdp';
          const s0 = isLb ? env.lbStats() : undefined;
          // lblog: the daemon's event consumer, its statistics and a JSON access log (a file in the
          // bench's scratch directory) run in this process, on the same CPUs, during the wrk run.
          const logging = t.target === 'lblog' ? await startAccessLog(env, `${round}-${mode}`) : undefined;
          const r = await wrk(env, url, mode, seconds);
          const logged = await logging?.stop();
          const s1 = isLb ? env.lbStats() : undefined;
          if (logged) notes.push(`lblog ${mode} round ${round + 1}: ${logged.written} access log lines written, ${logged.dropped} dropped, ${logged.consumed} records read`);
          const entry: { r: WrkResult; lb?: Partial<Record<StatName, number>> } = { r };
          if (s0 && s1) {
            const keys: StatName[] = ['ct_new', 'ct_hit', 'redirect', 'redirect_neigh', 'redirect_err', 'fib_pass', 'tc_revnat', 'ct_closed'];
            entry.lb = Object.fromEntries(keys.map((k) => [k, Number(s1[k] - s0[k])]));
          }
          const key = `${t.target}.${mode}`;
          results.set(key, [...(results.get(key) ?? []), entry]);
          const errs = Object.values(r.socketErrors).reduce((a, b) => a + b, 0) + r.non2xx;
          ctx.log(`http round ${round + 1}/${rounds} ${t.target.padEnd(6)} ${mode.padEnd(9)} ${r.requestsPerSec.toFixed(0)} req/s${errs ? ` (${errs} errors)` : ''}`);
          if (errs > 0) notes.push(`${t.target} ${mode} round ${round + 1}: ${JSON.stringify(r.socketErrors)} socket errors, ${r.non2xx} non-2xx of ${r.requests} requests`);
        }
      }
    }
  } finally {
    await env.setForwarder('kernel');
  }

  const measurements: Measurement[] = [];
  for (const t of TARGETS) {
    for (const mode of ['keepalive', 'close'] as const) {
      const list = results.get(`${t.target}.${mode}`)!;
      const last = list[list.length - 1]!;
      measurements.push({
        key: `http.${t.target}.${mode}`,
        label: `${t.label}, ${mode === 'close' ? 'Connection: close' : 'keep-alive'}`,
        value: Math.round(median(list.map((e) => e.r.requestsPerSec))),
        unit: 'req/s',
        samples: list.map((e) => Math.round(e.r.requestsPerSec)),
        detail: {
          latencyAvg: list.map((e) => e.r.latencyAvg),
          socketErrors: list.map((e) => e.r.socketErrors),
          non2xx: list.map((e) => e.r.non2xx),
          ...(last.lb ? { lbCounters: last.lb } : {}),
        },
      });
    }
  }
  for (const target of ['lb1', 'lb', 'lblog', 'lbx'] as const) {
    for (const mode of ['keepalive', 'close'] as const) {
      const c = results.get(`${target}.${mode}`)?.at(-1)?.lb;
      if (!c) continue;
      const seen = (c.ct_hit ?? 0) + (c.ct_new ?? 0);
      if (seen === 0) continue;
      const forwarded = (c.redirect ?? 0) + (c.redirect_neigh ?? 0);
      notes.push(`${target} ${mode}: ${((forwarded / seen) * 100).toFixed(1)}% of the ${seen} client packets lb handled were forwarded by lb itself ` +
        `(${c.fib_pass ?? 0} passed to the kernel), ${c.ct_new ?? 0} new flows, ${c.tc_revnat ?? 0} replies reverse-NATed by TC.`);
    }
  }
  const rps = (target: Target, mode: Mode): number => median(results.get(`${target}.${mode}`)!.map((e) => e.r.requestsPerSec));
  const ratios: Ratio[] = [];
  for (const mode of ['keepalive', 'close'] as const) {
    const m = mode === 'close' ? 'Connection: close' : 'keep-alive';
    ratios.push(
      { key: `http.lb_over_nft.${mode}`, label: `lb / nftables, ${m}`, value: ratio(rps('lb', mode), rps('nft', mode)), goal: 1 },
      { key: `http.lb1_over_direct.${mode}`, label: `lb (one backend) / direct, ${m}`, value: ratio(rps('lb1', mode), rps('direct', mode)), goal: 0.95 },
      { key: `http.lblog_over_lb.${mode}`, label: `lb with the access log / lb without, ${m}`, value: ratio(rps('lblog', mode), rps('lb', mode)), ...(mode === 'close' ? { goal: 0.95 } : {}) },
      { key: `http.lbx_over_nft.${mode}`, label: `lb XDP path / nftables, ${m}`, value: ratio(rps('lbx', mode), rps('nft', mode)) },
      { key: `http.lb_over_direct.${mode}`, label: `lb (three backends) / direct, ${m}`, value: ratio(rps('lb', mode), rps('direct', mode)) },
    );
  }
  return {
    suite: 'http',
    title: 'HTTP requests/s (wrk)',
    method: [
      `wrk -t ${WRK_THREADS} -c ${WRK_CONNECTIONS} -d ${seconds}s --timeout 2s from the client namespace, with keep-alive and with -H 'Connection: close'; ` +
        `${rounds} round(s), every other one in reverse order, median reported; a ${WARMUP_SECONDS}s wrk per backend warms the servers first.`,
      'Backends: the sandbox\'s Node HTTP servers (one process per backend namespace) answering "bN\\n".',
      'direct: to b1\'s address through plain kernel forwarding; lb: the VIP with the path auto picks for veth-c1 (TC DNAT + bpf_redirect_neigh), TC reverse NAT on the way out; ' +
        'lb XDP path: the same with the XDP path forced (XDP DNAT + devmap redirect); ' +
        `lb (one backend): a second listener (port ${HTTP_PORT_ONE_BACKEND}) whose group is b1 alone, the like-for-like comparison with direct; ` +
        'nftables: DNAT numgen random mod 3 with conntrack un-NATing the replies. ' +
        'lb with the access log: the same VIP while this process runs the daemon\'s event consumer (worker thread on the lb_events ring), its statistics (ConnStats) and a JSON access log to a file; ' +
        'without: nobody reads the ring (the data plane emits the records in both).',
    ],
    measurements,
    ratios,
    notes,
  };
}

export const httpSuite: Suite = { name: 'http', title: 'HTTP requests per second', run };
