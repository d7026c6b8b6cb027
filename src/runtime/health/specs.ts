// Which endpoints to check, derived from the config and the current DNS answers. Pure.
//
// One check runs per distinct (address, port, check, host name): a backend that sits in several
// groups or proxies with the same merged check is probed once, and all its users read the result.
// A host target is checked at each of its resolved addresses.

import type { HealthCheck, LbConfig, Target } from '../../core/config/types.js';
import { configGroups } from '../keys.js';

export interface HealthCheckUser {
  proxy: string;
  targetId: string;
}

export interface HealthCheckSpec {
  /** healthKey() of this endpoint and check. */
  key: string;
  addr: string;
  /** The target's (data) port: the backend is addr:targetPort. */
  targetPort: number;
  /** The port probed: check.port, else the target's. */
  port: number;
  check: HealthCheck;
  /** DNS name of a host target (Host header, TLS server name); undefined for ip targets. */
  host?: string;
  /** Proxies and target ids that read this check, sorted. */
  users: HealthCheckUser[];
}

/** The identity of one check; the same key for every user that shares it. */
export function healthKey(addr: string, targetPort: number, check: HealthCheck, host?: string): string {
  const port = check.port ?? targetPort;
  const what = check.type === 'tcp' ? '' : `${check.path} [${check.expectedCodes.join(',')}]`;
  return `${check.type}://${host ? `${host}@` : ''}${addr}:${port}${what} ` +
    `every ${check.intervalMs}ms timeout ${check.timeoutMs}ms ${check.healthyThreshold}/${check.unhealthyThreshold} for ${addr}:${targetPort}`;
}

/** The health keys of one configured target: one per address (ip: 1; host: its resolved addresses). */
export function targetHealthKeys(target: Target, resolve: (host: string) => readonly string[] | undefined): string[] {
  if (!target.healthCheck) return [];
  const check = target.healthCheck;
  if (target.kind === 'ip') return [healthKey(target.ip, target.port, check)];
  return (resolve(target.host) ?? []).map((addr) => healthKey(addr, target.port, check, target.host));
}

/** Every check the config implies, sorted by key. Targets without a check are not listed. */
export function healthCheckSpecs(config: LbConfig, resolve: (host: string) => readonly string[] | undefined): HealthCheckSpec[] {
  const specs = new Map<string, HealthCheckSpec>();
  for (const { proxy, group } of configGroups(config)) {
    for (const target of group.targets) {
      const check = target.healthCheck;
      if (!check) continue;
      const addrs = target.kind === 'ip' ? [target.ip] : [...(resolve(target.host) ?? [])];
      for (const addr of addrs) {
        const host = target.kind === 'host' ? target.host : undefined;
        const key = healthKey(addr, target.port, check, host);
        let spec = specs.get(key);
        if (!spec) {
          spec = { key, addr, targetPort: target.port, port: check.port ?? target.port, check, ...(host ? { host } : {}), users: [] };
          specs.set(key, spec);
        }
        if (!spec.users.some((u) => u.proxy === proxy.name && u.targetId === target.id)) spec.users.push({ proxy: proxy.name, targetId: target.id });
      }
    }
  }
  const out = [...specs.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const s of out) s.users.sort((a, b) => (a.proxy + '\u0000' + a.targetId < b.proxy + '\u0000' + b.targetId ? -1 : 1));
  return out;
}
