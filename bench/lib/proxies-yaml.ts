// The generated configs of the plan benchmark (bench/plan-apply.ts and its child): N proxies, a
// VIP:port each, two targets each.

export interface ProxiesYamlOptions {
  /** The proxies whose index is `offset` modulo reweightEvery are reweighted (default 0). */
  offset?: number;
  /** The interface every proxy listens on (default eth0). */
  ifname?: string;
  /**
   * The targets repeat after that many proxies (10.1.x.y and 10.2.x.y), so a config has
   * 2 * min(N, backendPairs) distinct backends; the data plane holds 16,384 of them, so a config
   * an `lb plan` can encode keeps it at 5,000 or less for 10,000. Default: no repeat.
   */
  backendPairs?: number;
  /** Each proxy's second target is the next proxy's first: N distinct backends, not 2N. */
  chained?: boolean;
}

/**
 * N proxies as YAML text (2.0 MB for 10,000). Every `reweightEvery`th proxy's first target has
 * weight 70 (0: none).
 */
export function proxiesYaml(n: number, reweightEvery: number, opts: ProxiesYamlOptions = {}): string {
  const { offset = 0, ifname = 'eth0', backendPairs = Number.POSITIVE_INFINITY, chained = false } = opts;
  const first = (i: number): string => {
    const j = i % backendPairs;
    return `10.1.${Math.floor(j / 250) % 250}.${1 + (j % 250)}`;
  };
  const lines = ['proxies:'];
  for (let i = 0; i < n; i++) {
    const w = reweightEvery > 0 && i % reweightEvery === offset ? 70 : 50;
    const j = i % backendPairs;
    const second = chained ? first((i + 1) % n) : `10.2.${Math.floor(j / 250) % 250}.${1 + (j % 250)}`;
    lines.push(
      `  - name: svc-${i}`,
      `    listen: {interfaces: [${ifname}], port: ${1 + (i % 60000)}, address: 10.${100 + Math.floor(i / 60000)}.0.1}`,
      '    default-target:',
      `      - {ip: ${first(i)}, port: 8080, weight: ${w}}`,
      `      - {ip: ${second}, port: 8080, weight: 50}`,
    );
  }
  lines.push('settings: {connection-timeout-sec: 300}');
  return `${lines.join('\n')}\n`;
}
