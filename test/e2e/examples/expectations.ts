// What each example config of the original (test/fixtures/seed-configs/*.edn) promises, beyond what
// the test derives from the config itself. examples.test.ts builds the topology, the clients and
// most assertions from the config (every listener, source route, weighted group, health check and
// DNS name); this table adds what the config cannot say: the plan warnings lb prints for it (the
// settings and features lb does not act on yet), which proxies' clients speak TLS because the
// comments say TLS passes through, the few choices a comment makes concrete (which backend fails in
// the weight redistribution example), and the one change sni-routing.edn needs.
//
// A new example file is one more entry here, not new code. A file without an entry fails the test.

export interface Expectation {
  /** What the file's comments promise, in short: the describe block's title. */
  promise: string;
  /**
   * The one change a file needs before lb accepts it, applied to its text at run time (the changed
   * copy goes to a temp dir; the fixture stays as it is). Line numbers must not move: the plan
   * warnings below point into the file.
   */
  change?: { why: string; apply(text: string): string };
  /**
   * `lb plan` warnings on the file, each as "[LINE:COL: ]POINTER: MESSAGE" (the file name cut off):
   * what lb does not act on yet, and its capacity notes. Compared as a list, in order.
   */
  planWarnings: string[];
  /** Proxies whose clients speak TLS, since the comments say TLS is passed through to the backends. */
  tls?: string[];
  /** Host targets: A records in the first answer per name (default 1); every name also gets one spare address. */
  dnsRecords?: Record<string, number>;
  /**
   * Backends ("ADDR:PORT") the health test kills, where a comment names an example; groups not
   * covered here lose the first checked target of each distinct check.
   */
  healthVictims?: string[];
  /** Proxies whose killed backend is watched back through every recovery step to its full weight. */
  healthRamp?: string[];
  /** Comments the config cannot keep as written, and what lb does instead (documentation; the test asserts lb's behaviour). */
  caveats?: string[];
}

const daemonOnly = (at: string, index: number, proxy: string): string =>
  `${at}: /proxies/${index}: proxy "${proxy}" has SNI routes: only lb daemon serves it (its user-space acceptor); lb apply installs no listener for it, so its connections are refused unless lb daemon runs for this instance`;
const dnsUnresolved = (at: string, pointer: string, host: string, proxy: string): string =>
  `${at}: ${pointer}: ${host} (proxy "${proxy}") has no resolved address yet; it contributes no backend until DNS answers`;
/** The VIPs sni-routing.edn's four proxies get, one each, in file order. */
export const SNI_VIPS = ['10.200.0.1', '10.200.0.2', '10.200.0.3', '10.200.0.4'];

export const EXPECTATIONS: Record<string, Expectation> = {
  'config.edn': {
    promise: 'web traffic on :80 and API traffic on :8080, each rerouted by client address',
    planWarnings: [],
  },
  'dns-backends.edn': {
    promise: 'host names resolved at start and re-resolved every dns-refresh-seconds, A records expanding to equal shares, health-checked addresses, last known good kept',
    // lb plan has no resolver: the names resolve in `lb daemon` (its runtime), which serves the file.
    planWarnings: [
      dnsUnresolved('25:4', '/proxies/0/default-target', 'api.backend.local', 'api-gateway'),
      dnsUnresolved('36:4', '/proxies/1/default-target', 'web.backend.local', 'web-frontend'),
      dnsUnresolved('53:5', '/proxies/2/default-target/1', 'cloud.backend.local', 'hybrid-backend'),
      dnsUnresolved('66:4', '/proxies/3/default-target', 'myapp.default.svc.cluster.local', 'k8s-backend'),
      dnsUnresolved('83:5', '/proxies/4/default-target/0', 'primary.backend.local', 'multi-tier'),
      dnsUnresolved('87:5', '/proxies/4/default-target/1', 'secondary.backend.local', 'multi-tier'),
    ],
    // "Resolved IPs are health-checked; unhealthy IPs get zero weight": two addresses, one is killed.
    // "Headless services return pod IPs as A records": three pods.
    dnsRecords: { 'web.backend.local': 2, 'myapp.default.svc.cluster.local': 3 },
    tls: ['multi-tier'],
  },
  'health-checking.edn': {
    promise: 'unhealthy backends lose their traffic to the healthy ones in proportion, and recover gradually (25/50/75/100 %)',
    planWarnings: [],
    // The comments' example: weights [50, 30, 20], the middle server fails: [71, 0, 29].
    healthVictims: ['10.0.0.2:8080'],
    healthRamp: ['web-tcp-health'],
    tls: ['secure-api'],
    caveats: [
      'routed-health\'s default target is one backend: when it fails, lb fails open (keeps sending it new flows, status failOpen) rather than dropping them',
    ],
  },
  'high-availability.edn': {
    promise: 'both interfaces serve :80 and :443 (TLS passed through), datacenter, cloud and VPN clients each to their own backends',
    planWarnings: [
      "68:20: /settings/max-connections: max-connections 500000 exceeds the connection table's capacity of 262144 flows (LB_MAX_FLOWS / 2); beyond it the least recently used flows are evicted",
    ],
    tls: ['https-ha'],
  },
  'kubernetes-ingress.edn': {
    promise: 'one port per service (443 passed through as TLS), internal clients to the canary, premium clients to their API backend',
    planWarnings: [],
    tls: ['api-svc'],
    caveats: [
      'admin-svc "only allow from management network": its default target is the same backend, so lb (like the original) serves every client there; an L4 balancer without a deny rule cannot restrict it',
    ],
  },
  'multi-backend.edn': {
    promise: 'internal, premium, dev/test and one single host each to their own backend, everyone else to the default (longest prefix first)',
    planWarnings: [],
  },
  'multi-interface.edn': {
    promise: 'public web on eth0 and eth1, the internal API on eth2 with its internal subnets routed',
    planWarnings: [],
    caveats: [
      'internal-api "only allow internal subnets": its default target serves every other client too (the same backend as the 10.0.0.0/8 route)',
    ],
  },
  'simple-proxy.edn': {
    promise: 'everything on eth0:80 reaches the one backend on 127.0.0.1:8080',
    planWarnings: [],
    caveats: [
      'the comment\'s check, `curl http://localhost:80` on the balancer itself, does not go through lb: traffic the host sends itself crosses no interface\'s ingress; the test\'s client sits at the other end of eth0',
    ],
  },
  'sni-routing.edn': {
    promise: 'TLS names routed without terminating TLS, case-insensitively, weighted per name, the default target (and source routes) for the rest',
    change: {
      why: 'its four proxies share eth0:443 with no address, which lb rejects (none could tell its traffic apart): each gets its own VIP',
      apply: (text) => {
        let n = 0;
        // `:listen {` -> `:listen {:address "VIP" ...`, on the same line: line numbers stay.
        const out = text.replace(/:listen\s*\{/g, (m) => `${m}:address "${SNI_VIPS[n++] ?? 'missing'}" `);
        if (n !== SNI_VIPS.length) throw new Error(`sni-routing.edn: expected ${SNI_VIPS.length} listen blocks, found ${n}`);
        return out;
      },
    },
    // lb plan by hand serves none of them: lb daemon's acceptor does, and runs the file.
    planWarnings: [
      daemonOnly('29:3', 0, 'saas-gateway'),
      daemonOnly('50:3', 1, 'microservices-gateway'),
      daemonOnly('76:3', 2, 'weighted-sni'),
      daemonOnly('103:3', 3, 'combined-routing'),
    ],
  },
  'weighted-load-balancing.edn': {
    promise: 'new connections split by weight: 50/30/20, 90/10, 30/70, and per source route',
    planWarnings: [],
    tls: ['app-blue-green'],
  },
};
