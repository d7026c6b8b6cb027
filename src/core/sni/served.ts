// Which listeners the acceptor serves instead of the kernel fast path (docs/sni.md); the compile
// step leaves exactly these out of the data plane's listeners.
import type { Proxy } from '../config/types.js';

/** A proxy with SNI routes or a PROXY v2 target (the config makes it `protocol: tcp`) is the acceptor's. */
export function servedByAcceptor(proxy: Proxy): boolean {
  return proxy.dataPath === 'splice';
}
