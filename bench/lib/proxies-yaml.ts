// The generated configs of the plan benchmark (bench/plan-apply.ts and its child): N proxies, a
// VIP:port each, two targets each.

/**
 * N proxies as YAML text (2.0 MB for 10,000). Every `reweightEvery`th proxy's first target has
 * weight 70 (0: none). `backendPairs`: the targets repeat after that many proxies (10.1.x.y and
 * 10.2.x.y), so a config has 2 * min(N, backendPairs) distinct backends; the data plane holds
 * 16,384 of them, so a config an `lb plan` can encode keeps it at 5,000 or less for 10,000.
 */
export function proxiesYaml(n: number, reweightEvery: number, backendPairs = Number.POSITIVE_INFINITY): string {
  const lines = ['proxies:'];
  for (let i = 0; i < n; i++) {
    const w = reweightEvery > 0 && i % reweightEvery === 0 ? 70 : 50;
    const j = i % backendPairs;
    const a = 1 + (j % 250);
    const b = Math.floor(j / 250) % 250;
    lines.push(
      `  - name: svc-${i}`,
      `    listen: {interfaces: [eth0], port: ${1 + (i % 60000)}, address: 10.${100 + Math.floor(i / 60000)}.0.1}`,
      '    default-target:',
      `      - {ip: 10.1.${b}.${a}, port: 8080, weight: ${w}}`,
      `      - {ip: 10.2.${b}.${a}, port: 8080, weight: 50}`,
    );
  }
  lines.push('settings: {connection-timeout-sec: 300}');
  return `${lines.join('\n')}\n`;
}
