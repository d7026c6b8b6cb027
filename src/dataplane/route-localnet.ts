// net.ipv4.conf.<interface>.route_localnet, the kernel setting that lets a packet arriving on a
// non-loopback interface be delivered to 127.0.0.0/8 (and replies from 127.0.0.0/8 leave through
// it). lb turns it on where a listener has a loopback target (docs/dataplane.md, "Local targets").
// /proc/sys/net shows the network namespace of the thread that opens the file, so this works in
// a process entered with nsenter and on a thread inside withNetns alike.

import { readFileSync, writeFileSync } from 'node:fs';
import { LbError } from '../core/errors.js';
import { interfaceIndex } from './interfaces.js';

function path(ifname: string): string {
  interfaceIndex(ifname); // validates the name (no '/', '..') and that the interface exists here
  return `/proc/sys/net/ipv4/conf/${ifname}/route_localnet`;
}

/** Whether route_localnet is on for an interface (false when it cannot be read). */
export function routeLocalnet(ifname: string): boolean {
  try {
    return readFileSync(path(ifname), 'utf8').trim() === '1';
  } catch {
    return false;
  }
}

/** Turns route_localnet on; returns whether it was off. Throws LB_NET_IFACE when the kernel refuses. */
export function enableRouteLocalnet(ifname: string): boolean {
  if (routeLocalnet(ifname)) return false;
  const file = path(ifname);
  try {
    writeFileSync(file, '1\n');
  } catch (err) {
    throw new LbError('LB_NET_IFACE', `cannot turn on route_localnet for ${ifname} (${file}): ${(err as Error).message}; loopback targets on it would not be reachable`,
      { ifname, file }, { cause: err });
  }
  return true;
}
