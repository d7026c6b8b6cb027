// The apply inventory, /run/lb/<instance>/inventory.json: what the last successful apply installed,
// in the terms the maps cannot hold. The maps know listener ids, group slots and target ids; the
// inventory adds which proxy owns each listener (so the live state reads back with proxy names),
// the target ids it handed out (so a target keeps its id, its counters and its flows across
// applies), and the revision and config digest that were applied.
//
// It is a record, not the truth: the live state is always read from the maps. `serial` says which
// flip the inventory belongs to; an inventory whose serial differs from lb_ctl's describes an older
// configuration, and its proxy names are then only a hint.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './run-dir.js';

export const INVENTORY_FORMAT_VERSION = 1;

export interface Inventory {
  format_version: typeof INVENTORY_FORMAT_VERSION;
  instance: string;
  /** The revision (git commit, tag, or operator's label) that was applied; null if none was given. */
  revision: string | null;
  /** sha256 of the config files that were applied; null when the apply did not come from a config. */
  configDigest: string | null;
  /** ISO 8601 time of the apply. */
  appliedAt: string;
  /** lb_ctl after the apply's flip. */
  activeGen: number;
  serial: number;
  /** Interfaces the apply left lb's programs attached to. */
  interfaces: string[];
  /** The data path chosen for each interface, and why (absent in inventories of older versions). */
  paths?: Record<string, { path: string; reason: string }>;
  /** The ifindex of each interface when applied: a re-created interface shows as a re-key. */
  ifindexes?: Record<string, number>;
  /** listenerKey() -> proxy name. */
  listeners: Record<string, string | null>;
  /** "addr:port" -> target id (lb_tstats slot, conntrack target_id). */
  targetIds: Record<string, number>;
}

export function inventoryPath(dir: string): string {
  return join(dir, 'inventory.json');
}

function isInventory(v: unknown): v is Inventory {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return o.format_version === INVENTORY_FORMAT_VERSION && typeof o.instance === 'string'
    && typeof o.serial === 'number' && typeof o.activeGen === 'number'
    && typeof o.listeners === 'object' && o.listeners !== null
    && typeof o.targetIds === 'object' && o.targetIds !== null && Array.isArray(o.interfaces);
}

/**
 * The inventory in `dir`, or null when there is none. An unreadable or foreign-format inventory is
 * reported through `warn` and treated as absent: it only adds names, the maps stay the truth.
 */
export function readInventory(dir: string, warn: (message: string) => void = () => undefined): Inventory | null {
  return readInventoryFile(inventoryPath(dir), warn);
}

function readInventoryFile(path: string, warn: (message: string) => void): Inventory | null {
  if (!existsSync(path)) return null;
  try {
    const v: unknown = JSON.parse(readFileSync(path, 'utf8'));
    if (isInventory(v)) return v;
    warn(`${path} is not an lb inventory of format version ${INVENTORY_FORMAT_VERSION}; ignoring it`);
  } catch (err) {
    warn(`cannot read ${path}: ${(err as Error).message}; ignoring it`);
  }
  return null;
}

/** The inventory of the apply before the current one (what `lb rollback` returns to). */
export function previousInventoryPath(dir: string): string {
  return join(dir, 'inventory.prev.json');
}

/**
 * Writes the inventory atomically (temporary file, rename). When it records a new flip (another
 * serial), the one it replaces is kept as inventory.prev.json: the configuration that the inactive
 * generation still holds. Not fsynced: it describes maps that a host crash takes away with the page
 * cache (bpffs does not outlive a reboot), and a process crash loses nothing written.
 */
export function writeInventory(dir: string, inventory: Inventory): void {
  const current = readInventory(dir);
  if (current !== null && current.serial !== inventory.serial) {
    writeFileAtomic(previousInventoryPath(dir), `${JSON.stringify(current, null, 2)}\n`, { durable: false });
  }
  writeFileAtomic(inventoryPath(dir), `${JSON.stringify(inventory, null, 2)}\n`, { durable: false });
}

/** The previous apply's inventory, or null (same rules as readInventory). */
export function readPreviousInventory(dir: string, warn: (message: string) => void = () => undefined): Inventory | null {
  return readInventoryFile(previousInventoryPath(dir), warn);
}
