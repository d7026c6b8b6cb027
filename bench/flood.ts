// SYN flood (bpf/lib/halfopen.h): what a flood of SYNs from random spoofed sources does to
// established connections through lb. wrk holds keep-alive connections to the VIP from the client
// namespace and is measured without the flood, then while trafgen (same namespace) sends TCP SYNs
// from random addresses of 198.18.0.0/16 and random ports to the VIP's HTTP port as fast as it can. The
// spoofed sources are routed back to the client namespace for the duration (which drops the
// backends' SYN-ACKs), so the flood's SYN-ACKs pass lb's TC egress as on a host with a default
// route. Reported: the flood's rate (sent, and half-open flows created at lb), requests/s during
// against without, wrk's errors, half-open flows promoted and lost to the lb_halfopen LRU, and
// lb_flows' size (the flood must not grow it).

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StatName } from '../src/dataplane/index.js';
import { WRK_CONNECTIONS, wrk, type WrkResult } from './http.js';
import { HTTP_PORT, type BenchEnv } from './lib/env.js';
import { BenchError } from './lib/errors.js';
import { ratio, sleep } from './lib/stats.js';
import type { Suite, SuiteContext, SuiteResult } from './lib/suite.js';

const SPOOFED = '198.18.0.0/16';
const WARMUP_S = 1;

function floodConfig(env: BenchEnv): string {
  const c = env.client;
  return [
    `/* lb benchmark: SYNs from random sources in 198.18.0.0/16, random ports, to the VIP:${HTTP_PORT} */`,
    '{',
    `  eth(da=${c.lbIface.mac}, sa=${c.iface.mac}, type=0x0800),`,
    `  ipv4(sa=198.18.0.1, sa[2]=drnd(), sa[3]=drnd(), da=${env.vip}, ttl=64),`,
    `  tcp(sp=drnd(), dp=${HTTP_PORT}, seq=drnd(), syn, win=64240)`,
    '}',
    '',
  ].join('\n');
}

async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const env = await ctx.env();
  const seconds = ctx.options.httpSeconds;
  const url = `http://${env.vip}:${HTTP_PORT}/`;
  await env.ensureBackendServers();
  const cfg = join(env.tmp, 'trafgen-synflood.cfg');
  writeFileSync(cfg, floodConfig(env));
  const size = (map: 'lb_flows' | 'lb_halfopen'): number => env.dp.maps[map].lookupBatch(8192).length;
  const delta = (a: Record<StatName, bigint>, b: Record<StatName, bigint>, k: StatName): number => Number(b[k] - a[k]);

  await env.setForwarder('lb');
  await env.topo.exec('lb', ['ip', 'route', 'add', SPOOFED, 'via', env.client.address], { timeoutMs: 10_000 });
  let quiet: WrkResult;
  let flooded: WrkResult;
  let sent: number;
  let s0: Record<StatName, bigint>;
  let s1: Record<StatName, bigint>;
  let ho0: number;
  let ho1: number;
  let flows1: number;
  let windowS: number;
  try {
    await wrk(env, url, 'keepalive', WARMUP_S); // the Node servers warm their hot paths first
    quiet = await wrk(env, url, 'keepalive', seconds);
    ctx.log(`flood: without the flood ${quiet.requestsPerSec.toFixed(0)} req/s`);
    const limitS = WARMUP_S + seconds + 10;
    const gen = env.topo.spawnIn('c1', ['timeout', '-k', '1', String(limitS), 'trafgen', '-i', cfg, '-o', 'eth0',
      '-P', '1', '--no-sock-mem', '--notouch-irq'], { label: 'trafgen SYN flood' });
    try {
      await sleep(WARMUP_S * 1000);
      if (!gen.running) throw new BenchError(`trafgen exited early: ${gen.stderr.trim() || gen.stdout.trim()}`);
      const tx0 = await env.linkStats('c1', 'eth0');
      s0 = env.lbStats();
      ho0 = size('lb_halfopen');
      const t0 = process.hrtime.bigint();
      flooded = await wrk(env, url, 'keepalive', seconds);
      windowS = Number(process.hrtime.bigint() - t0) / 1e9;
      s1 = env.lbStats();
      ho1 = size('lb_halfopen');
      flows1 = size('lb_flows');
      const tx1 = await env.linkStats('c1', 'eth0');
      if (!gen.running) throw new BenchError(`trafgen stopped before the end of the window: ${gen.stderr.trim()}`);
      // wrk's own packets are in the link's count too: a few thousand against hundreds of thousands.
      sent = (tx1.txPackets - tx0.txPackets) / windowS;
    } finally {
      await gen.stop(2000);
    }
    ctx.log(`flood: during the flood ${flooded.requestsPerSec.toFixed(0)} req/s`);
  } finally {
    await env.topo.exec('lb', ['ip', 'route', 'del', SPOOFED], { timeoutMs: 10_000, allowFailure: true });
    await env.setForwarder('kernel');
  }

  const hoNew = delta(s0, s1, 'ho_new');
  const promoted = delta(s0, s1, 'ho_promoted');
  // An LRU eviction runs no program: the flows lost are those neither promoted, nor ended
  // (expired, refused), nor still in the table. Expiries and refusals are bounded by ct_expired + ct_closed.
  const ended = delta(s0, s1, 'ct_expired') + delta(s0, s1, 'ct_closed');
  const evicted = hoNew - promoted - ended - (ho1 - ho0);
  const errors = (r: WrkResult): number => Object.values(r.socketErrors).reduce((a, b) => a + b, 0) + r.non2xx;
  return {
    suite: 'flood',
    title: 'SYN flood: established keep-alive connections during a flood of spoofed SYNs',
    method: [
      `wrk -c ${WRK_CONNECTIONS} keep-alive to the VIP for ${seconds} s without a flood (after ${WARMUP_S} s of warm-up), then for ${seconds} s while trafgen (-P 1, same client namespace) sends TCP SYNs from random sources of ${SPOOFED} and random ports to the VIP:${HTTP_PORT}, after ${WARMUP_S} s of flood.`,
      `lb on the path auto picks for veth-c1; ${SPOOFED} routed back to the client namespace during the run, so the backends' SYN-ACKs to the spoofed sources pass lb's TC egress (and touch the flood's entries) as on a balancer with a default route.`,
      'Half-open flows lost to the lb_halfopen LRU = ho_new - ho_promoted - (ct_expired + ct_closed) - growth of lb_halfopen over the window (the kernel counts no LRU eviction).',
    ],
    measurements: [
      { key: 'flood.sent_pps', label: 'flood sent (trafgen, client link tx)', value: Math.round(sent), unit: 'pkt/s' },
      { key: 'flood.halfopen_per_s', label: 'half-open flows created at lb (ho_new)', value: Math.round(hoNew / windowS), unit: '/s', detail: { hoNew, windowS } },
      { key: 'flood.rps_quiet', label: 'keep-alive requests/s without the flood', value: Math.round(quiet.requestsPerSec), unit: 'req/s', detail: { errors: errors(quiet), latencyAvg: quiet.latencyAvg } },
      { key: 'flood.rps_flood', label: 'keep-alive requests/s during the flood', value: Math.round(flooded.requestsPerSec), unit: 'req/s', detail: { errors: errors(flooded), latencyAvg: flooded.latencyAvg, socketErrors: flooded.socketErrors } },
      { key: 'flood.halfopen_evicted', label: 'half-open flows lost to the lb_halfopen LRU during the window', value: evicted, unit: 'flows', detail: { hoNew, promoted, ended, halfOpenBefore: ho0, halfOpenAfter: ho1 } },
      { key: 'flood.flows_after', label: 'lb_flows entries at the end of the flood window', value: flows1, unit: 'entries' },
      { key: 'flood.wrk_errors', label: 'wrk errors during the flood (socket errors + non-2xx)', value: errors(flooded), unit: 'requests' },
    ],
    ratios: [
      { key: 'flood.rps_ratio', label: 'keep-alive requests/s during the flood / without', value: ratio(flooded.requestsPerSec, quiet.requestsPerSec) },
    ],
    notes: [
      'The flood, wrk, lb (softirq) and the backends share the machine\'s CPUs: a change of requests/s is CPU the flood takes or leaves, not connections lost (wrk errors says whether any connection broke).',
    ],
  };
}

export const floodSuite: Suite = { name: 'flood', title: 'SYN flood: established connections during a flood of spoofed SYNs', run };
