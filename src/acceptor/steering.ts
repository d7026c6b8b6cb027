// The kernel half of the SNI front door: lb_sk_lookup (bpf/lb_sk_lookup.bpf.c) loaded into the
// instance's bpffs directory, attached to this network namespace through a pinned link, and its two
// maps: lb_sni_lsn (which VIP:port on which interface goes to the acceptor) and lb_sni_socks (the
// acceptor's listening socket). The pinned link outlives the daemon, like the data plane's maps.

import { existsSync, openSync, closeSync, rmSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { LbError } from '../core/errors.js';
import { ipv4ToU32 } from '../core/abi.js';
import { BPF_ANY, BPF_PROG_TYPE_SK_LOOKUP, BPF_SK_LOOKUP, bpfError, check, closeFd, native } from '../dataplane/libbpf.js';
import { loadAndPin, objGet, type ObjectSpec } from '../dataplane/loader.js';

const SPEC: ObjectSpec<'sk_lookup'> = {
  object: 'lb_sk_lookup.bpf.o',
  programs: [{ kind: 'sk_lookup', program: 'lb_sk_lookup', pin: 'prog_sk_lookup', type: BPF_PROG_TYPE_SK_LOOKUP }],
  tracepoints: [],
};
export const STEERING_LINK_PIN = 'link_sk_lookup';
const MAP_LISTENERS = 'lb_sni_lsn';
const MAP_SOCKETS = 'lb_sni_socks';
/** struct lb_sni_key (bpf/include/lb_sni_abi.h): ifindex (host order), vip and port (network order), pad. */
const KEY_SIZE = 12;
const SLOT_ACCEPTOR = 0;

export interface SteeredListener {
  ifindex: number;
  /** null: every local address of the interface. */
  vip: string | null;
  port: number;
}

export function encodeSteeringKey(l: SteeredListener): Buffer {
  const key = Buffer.alloc(KEY_SIZE);
  key.writeUInt32LE(l.ifindex, 0);
  key.writeUInt32BE(l.vip === null ? 0 : ipv4ToU32(l.vip), 4);
  key.writeUInt16BE(l.port, 8);
  return key;
}

export class Steering {
  private readonly listeners = new Map<string, Buffer>();

  private constructor(private readonly lsnFd: number, private readonly socksFd: number) {}

  /** Loads and attaches lb_sk_lookup unless its pinned link is there already (a restart adopts it). */
  static open(dir: string, objectDir: string): Steering {
    const link = join(dir, STEERING_LINK_PIN);
    if (!existsSync(link) || !existsSync(join(dir, MAP_LISTENERS)) || !existsSync(join(dir, MAP_SOCKETS))) {
      loadAndPin(SPEC, objectDir, dir);
      attachToNetns(join(dir, SPEC.programs[0]!.pin), link);
    }
    const lsn = objGet(join(dir, MAP_LISTENERS), { map: MAP_LISTENERS });
    const socks = objGet(join(dir, MAP_SOCKETS), { map: MAP_SOCKETS });
    const steering = new Steering(lsn, socks);
    steering.adoptListeners();
    return steering;
  }

  /** Puts the acceptor's listening socket in the sockmap (replacing a previous daemon's, gone with it). */
  setAcceptorSocket(fd: number): void {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(SLOT_ACCEPTOR, 0);
    const value = Buffer.alloc(8);
    value.writeBigUInt64LE(BigInt(fd), 0);
    check(native().bpf_map_update_elem(this.socksFd, key, value, BPF_ANY), 'LB_BPF_MAP', `putting the acceptor socket in ${MAP_SOCKETS}`, { map: MAP_SOCKETS });
  }

  /** Makes lb_sni_lsn exactly this set (adds first, then removes: a kept listener is never absent). */
  setListeners(wanted: readonly SteeredListener[]): void {
    const n = native();
    const next = new Map(wanted.map((l) => { const k = encodeSteeringKey(l); return [k.toString('hex'), k] as const; }));
    const slot = Buffer.alloc(4);
    slot.writeUInt32LE(SLOT_ACCEPTOR, 0);
    for (const [hex, key] of next) {
      if (this.listeners.has(hex)) continue;
      check(n.bpf_map_update_elem(this.lsnFd, key, slot, BPF_ANY), 'LB_BPF_MAP', `adding a listener to ${MAP_LISTENERS}`, { map: MAP_LISTENERS });
      this.listeners.set(hex, key);
    }
    for (const [hex, key] of [...this.listeners]) {
      if (next.has(hex)) continue;
      n.bpf_map_delete_elem(this.lsnFd, key);
      this.listeners.delete(hex);
    }
  }

  close(): void {
    closeFd(this.lsnFd);
    closeFd(this.socksFd);
  }

  /** The listeners a previous daemon left in the pinned map, so setListeners removes the stale ones. */
  private adoptListeners(): void {
    const n = native();
    let prev: Buffer | null = null;
    for (let i = 0; i < 65536; i++) {
      const next = Buffer.alloc(KEY_SIZE);
      if (n.bpf_map_get_next_key(this.lsnFd, prev, next) !== 0) return;
      this.listeners.set(next.toString('hex'), next);
      prev = next;
    }
  }
}

/** Attaches the pinned program to this process's network namespace and pins the link (atomically replacing an old pin). */
function attachToNetns(progPin: string, linkPin: string): void {
  const n = native();
  const prog = objGet(progPin, { program: 'lb_sk_lookup' });
  const netns = openSync('/proc/self/ns/net', 'r');
  try {
    const link = n.bpf_link_create(prog, netns, BPF_SK_LOOKUP, null);
    if (link < 0) throw bpfError('LB_BPF_ATTACH', 'attaching lb_sk_lookup to the network namespace', -link, { program: 'lb_sk_lookup' });
    try {
      const tmp = `${linkPin}-new-${process.pid}`;
      rmSync(tmp, { force: true });
      check(n.bpf_obj_pin(link, tmp), 'LB_BPF_PIN', `bpf_obj_pin(${tmp})`, { path: tmp });
      try {
        renameSync(tmp, linkPin);
      } catch (err) {
        rmSync(tmp, { force: true });
        throw new LbError('LB_BPF_PIN', `cannot rename ${tmp} to ${linkPin}: ${(err as Error).message}`, { path: linkPin }, { cause: err });
      }
    } finally {
      closeFd(link);
    }
  } finally {
    closeSync(netns);
    closeFd(prog);
  }
}
