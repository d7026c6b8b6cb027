// Network interfaces of the current network namespace: name <-> ifindex, and the list.
//
// These go through libc (if_nametoindex, if_indextoname, if_nameindex), which ask the kernel over a
// socket of the calling thread's network namespace. /sys/class/net is not used on purpose: sysfs
// shows the namespace it was mounted in, so a process entered with `nsenter --net` (how tests and
// operators run lb inside a namespace while keeping /sys/fs/bpf) would see the host's interfaces.

import koffi from 'koffi';
import { LbError } from '../core/errors.js';
import { native } from './libbpf.js';

export interface NetInterface { name: string; ifindex: number }

const IF_NAMESIZE = 16;

/** The ifindex of an interface; throws LB_NET_IFACE when it does not exist. */
export function interfaceIndex(ifname: string): number {
  if (ifname.length === 0 || ifname.length >= IF_NAMESIZE || ifname.includes('/')) {
    throw new LbError('LB_NET_IFACE', `invalid interface name ${JSON.stringify(ifname)}`, { ifname });
  }
  const index = native().if_nametoindex(ifname);
  if (index === 0) throw new LbError('LB_NET_IFACE', `no interface named ${ifname} in this network namespace`, { ifname });
  return index;
}

/** The name of the interface with this ifindex, or undefined. */
export function interfaceName(ifindex: number): string | undefined {
  const buf = Buffer.alloc(IF_NAMESIZE);
  const res = native().if_indextoname(ifindex, buf);
  if (res === null || res === 0n) return undefined;
  return buf.subarray(0, buf.indexOf(0)).toString();
}

/**
 * interfaceName, remembered per ifindex for one pass over many entries (a decode of 10,000
 * listeners): one if_indextoname (a socket and an ioctl) per interface, not per listener.
 */
export function interfaceNamer(): (ifindex: number) => string | undefined {
  const names = new Map<number, string | undefined>();
  return (ifindex) => {
    if (!names.has(ifindex)) names.set(ifindex, interfaceName(ifindex));
    return names.get(ifindex);
  };
}

/** Every interface of the current network namespace, by ifindex. */
export function listInterfaces(): NetInterface[] {
  const n = native();
  const list = n.if_nameindex() as bigint | null;
  if (list === null || list === 0n) {
    throw new LbError('LB_NET_IFACE', 'if_nameindex() failed', { errno: n.errno() });
  }
  try {
    const out: NetInterface[] = [];
    // struct if_nameindex { unsigned int if_index; char *if_name; }: 16 bytes on LP64, ended by {0, NULL}.
    for (let i = 0; i < 65536; i++) {
      const ifindex = decodeUint(list, i * 16);
      if (ifindex === 0) break;
      out.push({ ifindex, name: decodeString(list, i * 16 + 8) });
    }
    return out.sort((a, b) => a.ifindex - b.ifindex);
  } finally {
    n.if_freenameindex(list);
  }
}

function decodeUint(ptr: bigint, offset: number): number {
  return koffi.decode(ptr, offset, 'uint32_t') as number;
}

function decodeString(ptr: bigint, offset: number): string {
  return koffi.decode(ptr, offset, 'const char *') as string;
}
