// Listener checks: addresses, conflicts on interface:port:protocol, protocol-bound features, and
// the data plane's listener capacity.

import { LB_MAX_LISTENERS } from '../../abi.js';
import { nonUnicastReason, parseIpv4 } from '../ipv4.js';
import { joinPointer } from '../pointer.js';
import type { RawProxy } from '../raw-types.js';
import type { SemanticContext } from './context.js';

interface Claim {
  proxy: number;
  address: string | null;
  pointer: string;
}

/** The claims on one interface:port/protocol, indexed so each new claim is checked in O(1). */
interface Slot {
  first: Claim;
  anyAddress?: Claim;
  byAddress: Map<string, Claim>;
}

function protocolsOf(proxy: RawProxy): ('tcp' | 'udp')[] {
  const p = proxy.listen.protocol ?? 'tcp';
  return p === 'both' ? ['tcp', 'udp'] : [p];
}

export function checkListeners(ctx: SemanticContext): void {
  const slots = new Map<string, Slot>();
  const modes = new Map<string, { mode: string; proxy: number; pointer: string }>();
  let entries = 0;
  ctx.merged.proxies.forEach((proxy, i) => {
    const proxyPointer = joinPointer('/proxies', i);
    const { listen } = proxy;
    const address = listen.address ?? null;
    if (address !== null) {
      const reason = nonUnicastReason(parseIpv4(address) ?? 0);
      if (reason !== undefined) {
        const hint = address === '0.0.0.0' ? '; omit address to accept every address on the interfaces' : '';
        ctx.error(joinPointer(proxyPointer, 'listen', 'address'), `listen address must be a unicast IPv4 address: ${reason}${hint}`);
      }
    }
    checkProtocolFeatures(ctx, proxy, proxyPointer);
    const reported = new Set<string>();
    listen.interfaces.forEach((iface, j) => {
      const pointer = joinPointer(proxyPointer, 'listen', 'interfaces', j);
      // Reported at listen.mode when the file sets it, else at the interface (the default is implied).
      const modePointer = listen.mode !== undefined ? joinPointer(proxyPointer, 'listen', 'mode') : pointer;
      checkMode(ctx, modes, iface, { mode: listen.mode ?? 'auto', proxy: i, pointer: modePointer });
      for (const proto of protocolsOf(proxy)) {
        entries++;
        const key = `${iface}\u0000${listen.port}\u0000${proto}`;
        const claim: Claim = { proxy: i, address, pointer };
        const slot = slots.get(key);
        if (!slot) {
          slots.set(key, { first: claim, byAddress: new Map(), ...(address === null ? { anyAddress: claim } : {}) });
          if (address !== null) slots.get(key)!.byAddress.set(address, claim);
          continue;
        }
        const clash = address === null ? slot.first : earliest(slot.anyAddress, slot.byAddress.get(address));
        // `both` claims tcp and udp: one report per interface and other proxy is enough.
        if (clash && !reported.has(`${clash.proxy}:${j}`)) {
          reported.add(`${clash.proxy}:${j}`);
          const other = ctx.merged.proxies[clash.proxy]!;
          ctx.error(
            pointer,
            `listener ${iface}:${listen.port}/${proto} conflicts with proxy "${other.name}" (${ctx.where(clash.pointer, pointer)}): ` +
              conflictReason(address, clash.address),
          );
        }
        if (address === null) slot.anyAddress ??= claim;
        else if (!slot.byAddress.has(address)) slot.byAddress.set(address, claim);
      }
    });
  });
  if (entries > LB_MAX_LISTENERS) {
    ctx.error('/proxies', `the config needs ${entries} listener entries (interface x protocol); the data plane holds at most ${LB_MAX_LISTENERS} (LB_MAX_LISTENERS)`);
  }
}

/** One interface runs one data path: every proxy listening on it must ask for the same mode. */
function checkMode(ctx: SemanticContext, modes: Map<string, { mode: string; proxy: number; pointer: string }>, iface: string,
  claim: { mode: string; proxy: number; pointer: string }): void {
  const first = modes.get(iface);
  if (!first) {
    modes.set(iface, claim);
    return;
  }
  if (first.mode === claim.mode || first.proxy === claim.proxy) return;
  const other = ctx.merged.proxies[first.proxy]!;
  ctx.error(claim.pointer,
    `interface ${iface} would run data path ${claim.mode}, but proxy "${other.name}" (${ctx.where(first.pointer, claim.pointer)}) asks for ${first.mode} on it: ` +
    'one interface runs one data path; give both proxies the same listen.mode');
}

function earliest(a: Claim | undefined, b: Claim | undefined): Claim | undefined {
  if (!a || !b) return a ?? b;
  return a.proxy <= b.proxy ? a : b;
}

function conflictReason(mine: string | null, theirs: string | null): string {
  if (mine === null && theirs === null) return 'both accept every address; give each its own address (VIP) or port';
  if (mine === theirs) return `both use address ${mine}`;
  return `${mine === null ? 'this listener' : 'that listener'} has no address, which takes every address on the interface; give both an address (VIP)`;
}

/** SNI routing and PROXY protocol need a TCP connection accepted in user space. */
function checkProtocolFeatures(ctx: SemanticContext, proxy: RawProxy, proxyPointer: string): void {
  const protocol = proxy.listen.protocol ?? 'tcp';
  if (protocol === 'tcp') return;
  const at = joinPointer(proxyPointer, 'listen', 'protocol');
  if ((proxy['sni-routes'] ?? []).length > 0) {
    ctx.error(at, `sni-routes route TLS connections, so they need protocol tcp (this proxy has ${protocol})`);
  }
  if (proxy['proxy-protocol'] === 'v2') {
    ctx.error(joinPointer(proxyPointer, 'proxy-protocol'), `proxy-protocol v2 is sent on TCP connections only, and this proxy listens on ${protocol}`);
  }
}
