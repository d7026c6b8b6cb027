// Which listeners the acceptor serves instead of the kernel fast path (docs/sni.md); the compile
// step leaves exactly these out of the data plane's listeners. Only `lb daemon` runs the acceptor,
// so a plan made by hand (`lb plan`, `lb apply`) says which proxies it does not serve.
import type { Diagnostic } from '../config/diagnostics.js';
import type { LbConfig, Proxy } from '../config/types.js';

/** The plan warning of a proxy that only `lb daemon` serves (docs/plan-format.md). */
export const DAEMON_ONLY_CODE = 'served-by-daemon-only';

/** A proxy with SNI routes or a PROXY v2 target (the config makes it `protocol: tcp`) is the acceptor's. */
export function servedByAcceptor(proxy: Proxy): boolean {
  return proxy.dataPath === 'splice';
}

/**
 * One warning per proxy on the splice path, at the proxy: without the daemon nothing accepts its
 * connections (the data plane leaves them to the stack, which refuses them).
 */
export function daemonOnlyWarnings(config: LbConfig): Diagnostic[] {
  return config.proxies.filter(servedByAcceptor).map((proxy) => {
    const why = [
      ...(proxy.sniRoutes.length > 0 ? ['SNI routes'] : []),
      ...(hasProxyV2Target(proxy) ? ['a PROXY protocol v2 target'] : []),
    ].join(' and ');
    const { source } = proxy;
    return {
      severity: 'warning', stage: 'compile', code: DAEMON_ONLY_CODE, file: source.file, pointer: source.pointer,
      ...(source.line !== undefined ? { line: source.line } : {}),
      ...(source.column !== undefined ? { column: source.column } : {}),
      message: `proxy "${proxy.name}" has ${why}: only lb daemon serves it (its user-space acceptor); ` +
        `lb apply installs no listener for it, so its connections are refused unless lb daemon runs for this instance`,
    };
  });
}

function hasProxyV2Target(proxy: Proxy): boolean {
  const groups = [proxy.defaultTarget, ...proxy.sourceRoutes.map((r) => r.targets), ...proxy.sniRoutes.map((r) => r.targets)];
  return groups.some((g) => g.targets.some((t) => t.proxyProtocol === 'v2'));
}
