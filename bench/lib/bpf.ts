// The benchmark's own small XDP programs, compiled at run time from the C below into a temporary
// directory (nothing is added to bpf/), loaded through the project's libbpf bindings, never
// pinned: they live as long as this process holds the object (or an interface holds the program).
//
//   bench_pass        returns XDP_PASS: the BPF_PROG_TEST_RUN baseline.
//   bench_count_drop  counts IPv4/UDP frames to the benchmark port in a per-CPU array and drops
//                     them; everything else passes. Attached to each backend's eth0 it counts the
//                     packets delivered to that backend (and spares the backend's stack and the
//                     reply path); attached to the LB's client-facing interface it is the arrival
//                     ceiling (XDP_DROP at ingress).
//   bench_redirect    the cheapest XDP forwarder: benchmark frames get the MACs of one fixed next
//                     hop and go out through a devmap (as lb's do), no parsing beyond the port
//                     check, no lookups, no NAT. What XDP redirect itself costs on this path.

import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import koffi from 'koffi';
import { possibleCpus } from '../../src/dataplane/index.js';
import {
  XDP_FLAGS_DRV_MODE, XDP_FLAGS_UPDATE_IF_NOEXIST, bpfError, captureLibbpfLog, currentLibbpfLog, native, quietCall,
} from '../../src/dataplane/libbpf.js';
import { BenchError } from './errors.js';

export const BENCH_UDP_PORT = 9000;

export const BENCH_C_SOURCE = `
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef BENCH_UDP_PORT
#define BENCH_UDP_PORT ${BENCH_UDP_PORT}
#endif

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} bench_count SEC(".maps");

SEC("xdp")
int bench_pass(struct xdp_md *ctx)
{
  return XDP_PASS;
}

SEC("xdp")
int bench_count_drop(struct xdp_md *ctx)
{
  void *data = (void *)(long)ctx->data;
  void *end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  struct iphdr *ip = (void *)(eth + 1);
  struct udphdr *udp = (void *)(ip + 1);
  __u32 key = 0;
  __u64 *n;

  if ((void *)(udp + 1) > end)
    return XDP_PASS;
  if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 || ip->protocol != 17)
    return XDP_PASS;
  if (udp->dest != bpf_htons(BENCH_UDP_PORT))
    return XDP_PASS;
  n = bpf_map_lookup_elem(&bench_count, &key);
  if (n)
    *n += 1; /* per-CPU slot: no atomic needed */
  return XDP_DROP;
}

struct {
  __uint(type, BPF_MAP_TYPE_DEVMAP);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u32);
} bench_tx SEC(".maps");

struct bench_hop {
  unsigned char dmac[6];
  unsigned char smac[6];
};

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct bench_hop);
} bench_hop SEC(".maps");

SEC("xdp")
int bench_redirect(struct xdp_md *ctx)
{
  void *data = (void *)(long)ctx->data;
  void *end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  struct iphdr *ip = (void *)(eth + 1);
  struct udphdr *udp = (void *)(ip + 1);
  struct bench_hop *hop;
  __u32 key = 0;

  if ((void *)(udp + 1) > end)
    return XDP_PASS;
  if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 || ip->protocol != 17)
    return XDP_PASS;
  if (udp->dest != bpf_htons(BENCH_UDP_PORT))
    return XDP_PASS;
  hop = bpf_map_lookup_elem(&bench_hop, &key);
  if (!hop)
    return XDP_PASS;
  __builtin_memcpy(eth->h_dest, hop->dmac, 6);
  __builtin_memcpy(eth->h_source, hop->smac, 6);
  return bpf_redirect_map(&bench_tx, 0, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
`;

/** Compiles BENCH_C_SOURCE in dir (written there as bench.bpf.c); returns the object's path. */
export function compileBenchObject(dir: string): string {
  const src = join(dir, 'bench.bpf.c');
  const obj = join(dir, 'bench.bpf.o');
  writeFileSync(src, BENCH_C_SOURCE);
  const arch = execFileSync('gcc', ['-dumpmachine'], { encoding: 'utf8', timeout: 5000 }).trim() || 'x86_64-linux-gnu';
  try {
    execFileSync('clang', ['-O2', '-g', '-Wall', '-target', 'bpf', '-I', `/usr/include/${arch}`, '-c', src, '-o', obj],
      { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new BenchError(`clang could not compile the benchmark's XDP programs: ${e.stderr ?? e.message}`);
  }
  return obj;
}

let findMapFd: ((obj: unknown, name: string) => number) | undefined;

export type BenchProgName = 'bench_pass' | 'bench_count_drop' | 'bench_redirect';

/**
 * One loaded copy of the benchmark object (its own maps). Attach one of its programs to one
 * interface at a time; close() detaches it and frees the object.
 */
export class BenchObject {
  private obj: unknown;
  private readonly progFds = new Map<BenchProgName, number>();
  private readonly counterFd: number;
  private readonly txFd: number;
  private readonly hopFd: number;
  private attached: { ifindex: number; ifname: string; detachIn: (fn: () => void) => void } | undefined;
  readonly label: string;

  constructor(objectPath: string, label: string) {
    this.label = label;
    const n = native();
    findMapFd ??= koffi.load('libbpf.so.1').func('int bpf_object__find_map_fd_by_name(void *obj, const char *name)') as
      (obj: unknown, name: string) => number;
    captureLibbpfLog(() => {
      const obj = n.bpf_object__open_file(objectPath, null);
      if (obj === null || obj === 0n) throw bpfError('LB_BPF_OPEN', `bpf_object__open_file(${objectPath})`, n.errno() || 22, {}, currentLibbpfLog());
      const ret = n.bpf_object__load(obj);
      if (ret < 0) {
        n.bpf_object__close(obj);
        throw bpfError('LB_BPF_LOAD', `loading ${objectPath}`, -ret, {}, currentLibbpfLog());
      }
      this.obj = obj;
    });
    for (const name of ['bench_pass', 'bench_count_drop', 'bench_redirect'] as const) {
      const prog = n.bpf_object__find_program_by_name(this.obj, name);
      if (prog === null || prog === 0n) throw new BenchError(`${objectPath} has no program ${name}`);
      this.progFds.set(name, n.bpf_program__fd(prog));
    }
    const mapFd = (name: string): number => {
      const fd = findMapFd!(this.obj, name);
      if (fd < 0) throw new BenchError(`${objectPath} has no map ${name}`);
      return fd;
    };
    this.counterFd = mapFd('bench_count');
    this.txFd = mapFd('bench_tx');
    this.hopFd = mapFd('bench_hop');
  }

  /** Sets bench_redirect's next hop: egress ifindex (of the attach namespace) and MACs. */
  setNextHop(ifindex: number, dmac: string, smac: string): void {
    const key = Buffer.alloc(4);
    const tx = Buffer.alloc(4);
    tx.writeUInt32LE(ifindex, 0);
    let ret = native().bpf_map_update_elem(this.txFd, key, tx, 0);
    if (ret < 0) throw bpfError('LB_BPF_MAP', `bench_tx[0] = ifindex ${ifindex}`, -ret);
    const mac = (m: string): Buffer => Buffer.from(m.split(':').map((h) => parseInt(h, 16)));
    ret = native().bpf_map_update_elem(this.hopFd, key, Buffer.concat([mac(dmac), mac(smac)]), 0);
    if (ret < 0) throw bpfError('LB_BPF_MAP', 'bench_hop[0]', -ret);
  }

  progFd(name: BenchProgName): number {
    const fd = this.progFds.get(name);
    if (fd === undefined || this.obj === undefined) throw new BenchError(`${this.label} is closed`);
    return fd;
  }

  /**
   * Attaches a program (default bench_count_drop) in native XDP mode to ifindex, which must be an
   * interface of the calling thread's network namespace. `inNs` runs a callback in that namespace
   * again for the detach.
   */
  attach(ifname: string, ifindex: number, inNs: (fn: () => void) => void, prog: BenchProgName = 'bench_count_drop'): void {
    if (this.attached) throw new BenchError(`${this.label} is attached already`);
    const fd = this.progFd(prog);
    const { ret, log } = quietCall(() => native().bpf_xdp_attach(ifindex, fd, XDP_FLAGS_DRV_MODE | XDP_FLAGS_UPDATE_IF_NOEXIST, null));
    if (ret < 0) throw bpfError('LB_BPF_ATTACH', `attaching ${prog} of ${this.label} (XDP native) to ${ifname}`, -ret, { ifname, ifindex }, log);
    this.attached = { ifindex, ifname, detachIn: inNs };
  }

  /** Detaches from its interface (no-op when not attached). */
  detach(): void {
    const a = this.attached;
    if (!a) return;
    this.attached = undefined;
    a.detachIn(() => {
      quietCall(() => native().bpf_xdp_attach(a.ifindex, -1, XDP_FLAGS_DRV_MODE, null));
    });
  }

  get isAttached(): boolean { return this.attached !== undefined; }

  /** The counter, summed over CPUs. */
  count(): bigint {
    const cpus = possibleCpus();
    const value = Buffer.alloc(8 * cpus);
    const ret = native().bpf_map_lookup_elem(this.counterFd, Buffer.alloc(4), value);
    if (ret < 0) throw bpfError('LB_BPF_MAP', `reading the counter of ${this.label}`, -ret);
    let sum = 0n;
    for (let i = 0; i < cpus; i++) sum += value.readBigUInt64LE(8 * i);
    return sum;
  }

  /** Detaches (best effort) and frees the object. Idempotent. */
  close(): void {
    try { this.detach(); } catch { /* the namespace may be gone: so is the attachment */ }
    if (this.obj !== undefined) native().bpf_object__close(this.obj);
    this.obj = undefined;
    this.progFds.clear();
  }
}
