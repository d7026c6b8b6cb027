// The acceptor's choice (src/core/sni/choose.ts): source route, then SNI route, then the default
// target; within the group the data plane's weighted choice over the 5-tuple's hash. The weights
// are read once per table (cached per group array): a table compiled with other weights (an apply)
// chooses with those, never with the previous table's.
import { describe, expect, it } from 'vitest';
import { chooseBackend, routedListener, type Connection } from '../../../src/core/sni/choose.js';
import type { SpliceBackend, SpliceListener } from '../../../src/core/sni/splice-table.js';
import { ipv4ToU32 } from '../../../src/core/abi.js';
import { chooseTarget, flowHash } from '../../../src/core/flow-hash.js';

const be = (port: number, weight: number): SpliceBackend => ({ addr: '127.0.0.1', port, weight, proxyProtocol: false });

function table(apiWeights: [number, number]): SpliceListener {
  return {
    proxy: 'p', iface: 'eth0', vip: '10.0.0.1', port: 443, persist: false,
    defaultBackends: [be(9000, 1)],
    sourceRoutes: [{ prefix: '192.168.7.0/24', network: ipv4ToU32('192.168.7.0'), prefixLength: 24, persist: false, backends: [be(9100, 1)] }],
    sniRoutes: [{ hostname: 'api.example.com', wildcard: false, persist: false, backends: [be(9201, apiWeights[0]), be(9202, apiWeights[1])] }],
  };
}

const conn = (clientPort: number, clientIp = '10.1.0.2'): Connection => ({ clientIp, clientPort, localIp: '10.0.0.1', localPort: 443 });

describe('chooseBackend', () => {
  it('source route first, then the SNI route, then the default', () => {
    const r = routedListener(table([1, 1]));
    expect(chooseBackend(r, conn(1000, '192.168.7.9'), 'api.example.com')).toMatchObject({ group: '192.168.7.0/24', backend: { port: 9100 } });
    expect(chooseBackend(r, conn(1000), 'api.example.com').group).toBe('sni:api.example.com');
    expect(chooseBackend(r, conn(1000), 'other.example.com')).toMatchObject({ group: 'default', backend: { port: 9000 } });
    expect(chooseBackend(r, conn(1000), null)).toMatchObject({ group: 'default', backend: { port: 9000 } });
  });

  it('picks as the data plane does for the same 5-tuple', () => {
    const r = routedListener(table([3, 5]));
    for (let port = 1000; port < 1200; port++) {
      const c = conn(port);
      const hash = flowHash({ saddr: ipv4ToU32(c.clientIp), daddr: ipv4ToU32(c.localIp), sport: port, dport: 443, proto: 6 });
      expect(chooseBackend(r, c, 'api.example.com').backend!.port).toBe([9201, 9202][chooseTarget(hash, [3, 5])]);
    }
  });

  it('a new table\'s weights apply at once; all weights 0 chooses nothing', () => {
    const ports = (weights: [number, number]): Set<number> => {
      const r = routedListener(table(weights));
      return new Set(Array.from({ length: 200 }, (_, i) => chooseBackend(r, conn(2000 + i), 'api.example.com').backend?.port ?? 0));
    };
    expect(ports([1, 1])).toEqual(new Set([9201, 9202]));
    expect(ports([0, 1])).toEqual(new Set([9202]));
    expect(ports([1, 0])).toEqual(new Set([9201]));
    expect(ports([0, 0])).toEqual(new Set([0]));
  });
});
