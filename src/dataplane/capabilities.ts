// The calling process's effective capabilities (CapEff of /proc/self/status), for the checks that
// say which privilege is missing before an operation is refused (`lb doctor`, `lb version`).

import { readFileSync } from 'node:fs';

/** Capability numbers (linux/capability.h). */
export const CAP = { NET_ADMIN: 12, SYS_ADMIN: 21, PERFMON: 38, BPF: 39 } as const;
export type CapName = keyof typeof CAP;

/** The effective set as a bit mask; 0n when /proc is unreadable. */
export function effectiveCapabilities(status: string = readProcStatus()): bigint {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

export function hasCapability(mask: bigint, cap: CapName): boolean {
  return (mask & (1n << BigInt(CAP[cap]))) !== 0n;
}

/** What lb needs to load programs and attach them: CAP_BPF (or CAP_SYS_ADMIN, which covers it) and CAP_NET_ADMIN. */
export function missingCapabilities(mask: bigint): CapName[] {
  const missing: CapName[] = [];
  if (!hasCapability(mask, 'BPF') && !hasCapability(mask, 'SYS_ADMIN')) missing.push('BPF');
  if (!hasCapability(mask, 'NET_ADMIN')) missing.push('NET_ADMIN');
  return missing;
}

function readProcStatus(): string {
  try {
    return readFileSync('/proc/self/status', 'utf8');
  } catch {
    return '';
  }
}
