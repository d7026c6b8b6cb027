// `lb doctor`: the built CLI in network namespaces this test builds, one healthy and one built to
// fail each check: no forwarding, a bridge egress under listen.mode xdp, a missing interface, a
// backend routed elsewhere (and one with no route), a user without privileges. Each failing
// namespace fails exactly the checks it was built for. Needs root (fails, never skips).
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Check } from '../../src/cli/doctor/checks.js';
import { makeRunPrefix } from '../../src/sandbox/index.js';
import { createNetns, deleteNetns, runCli } from '../lib/cli.js';
import { ensureBuilt } from '../lib/build.js';

if (process.getuid?.() !== 0) throw new Error('cli-doctor.test.ts must run as root: it creates network namespaces');

const prefix = makeRunPrefix();
const dir = mkdtempSync(join(tmpdir(), 'lb-doctor-'));
chmodSync(dir, 0o755);
const namespaces: string[] = [];
const ipn = (ns: string, ...args: string[]): void => {
  execFileSync('ip', ['-n', ns, ...args], { stdio: 'ignore', timeout: 15_000 });
};
const sysctl = (ns: string, kv: string): void => {
  execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', kv], { stdio: 'ignore', timeout: 15_000 });
};

/**
 * A namespace like a balancer host: va0 faces the clients (10.77.1.1/24), vb0 the backends
 * (10.77.2.1/24, or through the bridge br0), forwarding on unless told otherwise.
 */
function host(name: string, opts: { forward?: boolean; bridge?: boolean; extra?: (ns: string) => void } = {}): string {
  const ns = `${prefix}-${name}`;
  namespaces.push(ns);
  createNetns(ns, [['va0', 'vb0']]);
  ipn(ns, 'addr', 'add', '10.77.1.1/24', 'dev', 'va0');
  if (opts.bridge) {
    ipn(ns, 'link', 'add', 'br0', 'type', 'bridge');
    ipn(ns, 'link', 'set', 'vb0', 'master', 'br0');
    ipn(ns, 'link', 'set', 'br0', 'up');
    ipn(ns, 'addr', 'add', '10.77.2.1/24', 'dev', 'br0');
  } else ipn(ns, 'addr', 'add', '10.77.2.1/24', 'dev', 'vb0');
  sysctl(ns, `net.ipv4.ip_forward=${opts.forward === false ? 0 : 1}`);
  opts.extra?.(ns);
  return ns;
}

function config(name: string, opts: { iface?: string; mode?: string; backends?: string[]; clients?: string } = {}): string {
  const file = join(dir, `${name}.yaml`);
  const targets = (opts.backends ?? ['10.77.2.2']).map((ip) => `      - {ip: ${ip}, port: 8080}`).join('\n');
  writeFileSync(file, [
    'proxies:',
    '  - name: web',
    `    listen: {interfaces: [${opts.iface ?? 'va0'}], port: 80, address: 10.200.0.10${opts.mode ? `, mode: ${opts.mode}` : ''}}`,
    '    default-target:',
    targets,
    '    source-routes:',
    `      - {source: ${opts.clients ?? '10.77.1.0/24'}, target: {ip: 10.77.2.3, port: 8080}}`,
    '',
  ].join('\n'));
  chmodSync(file, 0o644);
  return file;
}

interface Report { ok: boolean; failed: number; checks: Check[] }

function doctor(ns: string, cfg: string, uid?: number): { code: number | null; report: Report; text: string } {
  const json = runCli(['doctor', '--config', cfg, '--format', 'json', '--instance', `${prefix}-none`], { ns, ...(uid === undefined ? {} : { uid }) });
  expect(json.stderr).toBe('');
  const text = runCli(['doctor', '--config', cfg, '--instance', `${prefix}-none`], { ns, ...(uid === undefined ? {} : { uid }) });
  expect(text.code).toBe(json.code);
  return { code: json.code, report: JSON.parse(json.stdout) as Report, text: text.stdout };
}

const failing = (r: Report): string[] => r.checks.filter((c) => c.status === 'FAIL').map((c) => c.check);
const find = (r: Report, check: string): Check => {
  const c = r.checks.find((x) => x.check === check);
  if (!c) throw new Error(`no check ${check} in ${r.checks.map((x) => x.check).join(', ')}`);
  return c;
};

describe('lb doctor', () => {
  beforeAll(() => ensureBuilt());
  afterAll(() => {
    for (const ns of namespaces) deleteNetns(ns);
    execFileSync('rm', ['-rf', dir]);
  });

  it('passes a host that can run the config: every check is there, none fails, exit 0', () => {
    const ns = host('good');
    const { code, report, text } = doctor(ns, config('good'));
    expect(failing(report)).toEqual([]);
    expect(code).toBe(0);
    expect(report.checks.map((c) => c.check)).toEqual(expect.arrayContaining([
      'privileges', 'bpffs', 'btf', 'kernel', 'ip-forward', 'instance', 'config', 'interface va0', 'xdp va0', 'path va0',
      'backend 10.77.2.2:8080', 'backend 10.77.2.3:8080', 'clients 10.77.1.0/24', 'rp-filter va0', 'rp-filter vb0', 'flow-table',
    ]));
    expect(find(report, 'path va0').message).toMatch(/auto chooses TC: va0 is a virtual interface \(veth\)/);
    expect(find(report, 'xdp va0').message).toMatch(/native XDP: yes \(xdp_features: basic redirect/);
    expect(find(report, 'backend 10.77.2.2:8080').message).toMatch(/on a network of this host \(vb0\).*10\.77\.2\.1/);
    expect(find(report, 'clients 10.77.1.0/24').message).toBe('replies to 10.77.1.0/24 leave by va0');
    // One line per check, and the summary.
    expect(text).toMatch(/^PASS {2}ip-forward +net\.ipv4\.ip_forward = 1$/m);
    expect(text.trimEnd().endsWith('No check failed.') || /No check failed, \d+ warnings?\.$/.test(text.trimEnd())).toBe(true);
  });

  it('fails a host that does not forward', () => {
    const ns = host('nofwd', { forward: false });
    const { code, report, text } = doctor(ns, config('nofwd'));
    expect(code).toBe(1);
    expect(failing(report)).toEqual(['ip-forward']);
    expect(text).toMatch(/^FAIL {2}ip-forward +net\.ipv4\.ip_forward = 0: .*Fix: sysctl -w net\.ipv4\.ip_forward=1/m);
  });

  it('fails listen.mode xdp with a bridge as the egress to the backends, and passes the same host under auto', () => {
    const ns = host('bridge', { bridge: true });
    const forced = doctor(ns, config('bridge-xdp', { mode: 'xdp' }));
    expect(forced.code).toBe(1);
    expect(failing(forced.report)).toEqual(['egress br0']);
    expect(find(forced.report, 'egress br0').message).toMatch(/^flows to 10\.77\.2\.2 leave by br0 \(bridge\), which cannot transmit XDP frames/);
    expect(find(forced.report, 'egress br0').fix).toMatch(/listen\.mode: auto/);
    expect(find(forced.report, 'path va0').status).toBe('WARN');
    const auto = doctor(ns, config('bridge-auto'));
    expect(failing(auto.report)).toEqual([]);
    expect(auto.code).toBe(0);
  });

  it('fails a config whose interface does not exist', () => {
    const ns = host('noif');
    const { code, report, text } = doctor(ns, config('noif', { iface: 'nope0' }));
    expect(code).toBe(1);
    expect(failing(report)).toEqual(['interface nope0']);
    expect(text).toMatch(/^FAIL {2}interface nope0 +nope0 \(proxy web\) does not exist in this network namespace\. Fix: /m);
  });

  it('fails a backend routed through another router, and one with no route at all', () => {
    const ns = host('routed', { extra: (n) => ipn(n, 'route', 'add', '10.88.0.0/16', 'via', '10.77.2.254') });
    const { code, report } = doctor(ns, config('routed', { backends: ['10.77.2.2', '10.88.0.5', '10.99.0.5'] }));
    expect(code).toBe(1);
    expect(failing(report)).toEqual(['backend 10.88.0.5:8080', 'backend 10.99.0.5:8080']);
    expect(find(report, 'backend 10.88.0.5:8080').message).toMatch(/reached through the router 10\.77\.2\.254 on vb0/);
    expect(find(report, 'backend 10.99.0.5:8080').message).toMatch(/^no route to 10\.99\.0\.5/);
    expect(find(report, 'backend 10.77.2.2:8080').status).toBe('PASS');
  });

  it('fails a source route whose clients have no route back', () => {
    const ns = host('noback');
    const { code, report } = doctor(ns, config('noback', { clients: '10.123.0.0/16' }));
    expect(code).toBe(1);
    expect(failing(report)).toEqual(['clients 10.123.0.0/16']);
    expect(find(report, 'clients 10.123.0.0/16').message).toMatch(/^no route back to the clients of source route 10\.123\.0\.0\/16/);
  });

  it('warns of strict rp_filter on an interface involved, without failing', () => {
    const ns = host('rpf', { extra: (n) => sysctl(n, 'net.ipv4.conf.vb0.rp_filter=1') });
    const { code, report } = doctor(ns, config('rpf'));
    expect(failing(report)).toEqual([]);
    expect(code).toBe(0);
    expect(find(report, 'rp-filter vb0')).toMatchObject({ status: 'WARN', fix: expect.stringMatching(/rp_filter=2/) as unknown });
    expect(find(report, 'rp-filter va0').status).toBe('PASS');
  });

  it('fails an interface where another XDP program runs', () => {
    const src = join(dir, 'other.bpf.c');
    writeFileSync(src, '#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\nSEC("xdp") int other_pass(struct xdp_md *ctx) { return XDP_PASS; }\nchar LICENSE[] SEC("license") = "GPL";\n');
    const triplet = execFileSync('gcc', ['-dumpmachine'], { encoding: 'utf8' }).trim();
    execFileSync('clang', ['-O2', '-g', '-target', 'bpf', '-I', `/usr/include/${triplet}`, '-c', src, '-o', join(dir, 'other.bpf.o')], { timeout: 60_000 });
    const ns = host('foreign', { extra: (n) => ipn(n, 'link', 'set', 'dev', 'va0', 'xdpgeneric', 'obj', join(dir, 'other.bpf.o'), 'sec', 'xdp') });
    const { code, report } = doctor(ns, config('foreign'));
    expect(code).toBe(1);
    expect(failing(report)).toEqual(['attached va0']);
    expect(find(report, 'attached va0').message).toMatch(/^va0 runs another XDP program \(id \d+, other_pass\); lb does not replace it/);
  });

  it('fails a user without the privileges, naming the capabilities', () => {
    const ns = host('nopriv');
    const { code, report } = doctor(ns, config('nopriv'), 65534);
    expect(code).toBe(1);
    expect(failing(report)).toContain('privileges');
    expect(find(report, 'privileges').message).toMatch(/CAP_BPF and CAP_NET_ADMIN are missing/);
  });
});
