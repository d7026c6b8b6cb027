// Local routes for the acceptor's VIPs: `ip route replace local VIP/32 dev lo table local`, so the
// stack delivers the VIP's SYNs locally (where lb_sk_lookup runs) without the VIP being an address
// on any interface. They carry lb's route protocol number, but that number is shared by every
// instance of the namespace: what makes a route an instance's own is its record,
// /run/lb/<instance>/acceptor-routes.json, the VIPs it installed. A restart prunes from it and
// `lb down` removes what it names, never another instance's routes.

import { readFileSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { ensureDir, runDir, writeFileAtomic } from '../state/run-dir.js';

/** rtnetlink protocol number marking lb's routes (unassigned in /etc/iproute2/rt_protos). */
export const LB_ROUTE_PROTO = 211;

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Every lb local route of this network namespace, whichever instance installed it. */
export function localRoutes(): string[] {
  const out = JSON.parse(ip(['-j', 'route', 'show', 'table', 'local', 'proto', String(LB_ROUTE_PROTO)]) || '[]') as Array<{ dst: string }>;
  return out.map((r) => r.dst.replace(/\/32$/, ''));
}

function recordPath(instance: string): string {
  return join(runDir(instance), 'acceptor-routes.json');
}

/** The VIPs the instance recorded as its own (none when it has no record). */
export function ownLocalRoutes(instance: string): string[] {
  try {
    const vips = JSON.parse(readFileSync(recordPath(instance), 'utf8')) as unknown;
    return Array.isArray(vips) ? vips.filter((v): v is string => typeof v === 'string') : [];
  } catch {
    return [];
  }
}

function record(instance: string, vips: Iterable<string>): void {
  ensureDir(runDir(instance));
  writeFileAtomic(recordPath(instance), JSON.stringify([...vips].sort()), { durable: false });
}

/** Deletes those of `vips` that are lb routes now (`proto` in the delete: a route someone else replaced stays). */
function deleteRoutes(vips: readonly string[]): string[] {
  if (vips.length === 0) return [];
  const present = new Set(localRoutes());
  const removed: string[] = [];
  for (const vip of vips) {
    if (!present.has(vip)) continue;
    ip(['route', 'del', 'local', `${vip}/32`, 'dev', 'lo', 'table', 'local', 'proto', String(LB_ROUTE_PROTO)]);
    removed.push(vip);
  }
  return removed;
}

/** Makes the instance's local routes exactly these VIPs; other instances' routes are left alone. */
export function setLocalRoutes(instance: string, vips: readonly string[]): void {
  const had = ownLocalRoutes(instance);
  const want = new Set(vips);
  // Recorded before they are installed: a crash in between leaves a record naming a route that
  // is not there (harmless), never a route no instance owns.
  record(instance, new Set([...had, ...want]));
  for (const vip of want) ip(['route', 'replace', 'local', `${vip}/32`, 'dev', 'lo', 'table', 'local', 'proto', String(LB_ROUTE_PROTO)]);
  deleteRoutes(had.filter((vip) => !want.has(vip)));
  record(instance, want);
}

/** `lb down`: removes the instance's local routes and their record; returns the VIPs removed. */
export function removeLocalRoutes(instance: string): string[] {
  const removed = deleteRoutes(ownLocalRoutes(instance));
  rmSync(recordPath(instance), { force: true });
  return removed;
}
