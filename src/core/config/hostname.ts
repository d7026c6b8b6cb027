// Host names: what a DNS target or an SNI route may name, beyond the schema's RFC 1123 pattern.

import { parseIpv4 } from './ipv4.js';

/**
 * Why a syntactically valid host name is still not one: an IPv4 address belongs in ip, and a
 * name whose last label is all digits is not a DNS name (RFC 1123 section 2.1, RFC 3696).
 */
export function hostnameProblem(name: string): string | undefined {
  if (parseIpv4(name) !== undefined) return `"${name}" is an IPv4 address: write it as ip, not host`;
  const last = name.slice(name.lastIndexOf('.') + 1);
  if (/^\d+$/.test(last)) return `"${name}" is not a DNS name: its last label is all digits`;
  return undefined;
}

/** An SNI name as matched: lower case, with a leading "*." split off as a wildcard flag. */
export function normalizeSniHostname(name: string): { hostname: string; wildcard: boolean } {
  const lower = name.toLowerCase();
  return lower.startsWith('*.') ? { hostname: lower.slice(2), wildcard: true } : { hostname: lower, wildcard: false };
}
