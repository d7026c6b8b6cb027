// The demo's pure pieces: the weight edit of lb.yaml (only the numbers change), the daemon log
// formatting, the traffic bars, the command wrapping, the failure excerpt of a log.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigRepo } from '../../../src/demo/config-repo.js';
import { formatLogLine } from '../../../src/demo/daemon.js';
import { Narrator, wrapCommand } from '../../../src/demo/narrative.js';
import { logExcerpt } from '../../../src/demo/processes.js';
import { renderTraffic, shares } from '../../../src/demo/traffic.js';
import { githubPushBody } from '../../../src/demo/webhook.js';
import { verifyGithubSignature, hmacSha256 } from '../../../src/webhook/signature.js';

const EXAMPLE = fileURLToPath(new URL('../../../examples/repo/lb.yaml', import.meta.url));

describe('ConfigRepo.setWeights', () => {
  let dir = '';
  afterEach(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });

  it('changes only the weight numbers of examples/repo/lb.yaml', () => {
    dir = mkdtempSync(join(tmpdir(), 'lb-demo-unit-'));
    const original = readFileSync(EXAMPLE, 'utf8');
    writeFileSync(join(dir, 'lb.yaml'), original);
    new ConfigRepo({ bareRepo: join(dir, 'x.git'), clone: dir, branch: 'main' }).setWeights([10, 20, 70]);
    const edited = readFileSync(join(dir, 'lb.yaml'), 'utf8');
    const a = original.split('\n');
    const b = edited.split('\n');
    expect(b.length).toBe(a.length);
    const changed = a.flatMap((line, i) => (line === b[i] ? [] : [[line, b[i]]]));
    expect(changed).toEqual([
      ['      - {ip: 10.202.1.2, port: 8080, weight: 50}   # b1', '      - {ip: 10.202.1.2, port: 8080, weight: 10}   # b1'],
      ['      - {ip: 10.202.2.2, port: 8080, weight: 30}   # b2', '      - {ip: 10.202.2.2, port: 8080, weight: 20}   # b2'],
      ['      - {ip: 10.202.3.2, port: 8080, weight: 20}   # b3', '      - {ip: 10.202.3.2, port: 8080, weight: 70}   # b3'],
    ]);
  });

  it('refuses a file without the weights it is asked to set', () => {
    dir = mkdtempSync(join(tmpdir(), 'lb-demo-unit-'));
    writeFileSync(join(dir, 'lb.yaml'), 'proxies: []\n');
    expect(() => new ConfigRepo({ bareRepo: '', clone: dir, branch: 'main' }).setWeights([1])).toThrow(/no weight at proxies\[0\]/);
  });
});

describe('formatLogLine', () => {
  it('renders a pino line with the component, short revisions, and the plan changes below', () => {
    const line = JSON.stringify({
      level: 30, time: '2026-01-02T03:04:05.678Z', pid: 1, instance: 'demo', node: 'n', component: 'reconcile',
      result: 'applied', revision: 'a'.repeat(40), plan: { add: 1 }, changes: ['~ Proxy "web": weight: 50 -> 10'], msg: 'applied revision main@aaaa',
    });
    expect(formatLogLine(line)).toEqual([
      `03:04:05.678 INFO  reconcile applied revision main@aaaa result=applied revision=${'a'.repeat(12)}`,
      '    ~ Proxy "web": weight: 50 -> 10',
    ]);
  });

  it('passes other lines through', () => {
    expect(formatLogLine('error: unknown option')).toEqual(['error: unknown option']);
  });
});

describe('renderTraffic', () => {
  it('shows count and share per backend next to its weight', () => {
    const sample = { requests: 10, failures: 0, counts: { b1: 5, b2: 3, b3: 2 }, errors: [] };
    const lines = renderTraffic(sample, [
      { name: 'b1', address: '10.202.1.2', weight: 50 }, { name: 'b2', address: '10.202.2.2', weight: 30 }, { name: 'b3', address: '10.202.3.2', weight: 20 },
    ]);
    expect(lines[0]).toBe(`b1  10.202.1.2   weight  50 ( 50%)  ${'#'.repeat(20)}${'.'.repeat(20)}   5 ( 50%)`);
    expect(lines[3]).toBe('10 of 10 requests answered');
    expect(shares(sample)).toEqual({ b1: 0.5, b2: 0.3, b3: 0.2 });
  });

  it('names an answer from a backend that is not configured', () => {
    const lines = renderTraffic({ requests: 1, failures: 0, counts: { zz: 1 }, errors: [] }, [{ name: 'b1', address: '10.202.1.2', weight: 1 }]);
    expect(lines).toContain('zz: 1 (not a configured backend!)');
  });
});

describe('wrapCommand and Narrator', () => {
  it('wraps at flag boundaries with continuation backslashes', () => {
    const text = wrapCommand(['lb', 'daemon', '--repo', 'http://127.0.0.1:3000/config.git', '--ref', 'main', '--poll', '5s'], 30);
    expect(text.split('\n')).toEqual(['lb daemon \\', '    --repo http://127.0.0.1:3000/config.git \\', '    --ref main --poll 5s']);
  });

  it('colours only when asked, and plan signs only in plan blocks', () => {
    let out = '';
    const plain = new Narrator({ color: false, write: (t) => { out += t; } });
    plain.block('  ~ weight: 50 -> 10', { plan: true });
    expect(out).toBe('     ~ weight: 50 -> 10\n');
    out = '';
    const tty = new Narrator({ color: true, write: (t) => { out += t; } });
    tty.block('  ~ weight', { plan: true });
    tty.block('  - a list item');
    expect(out).toBe('     \x1b[33m~\x1b[0m weight\n     - a list item\n');
  });
});

describe('logExcerpt', () => {
  it('keeps the first error lines and the tail', () => {
    const log = ['starting', 'error: unknown option --x', ...Array.from({ length: 20 }, (_, i) => `help ${i}`)].join('\n');
    const ex = logExcerpt(log, 5, 3).split('\n');
    expect(ex).toEqual(['error: unknown option --x', '...', 'help 17', 'help 18', 'help 19']);
  });
});

describe('the webhook body', () => {
  it('is a GitHub push event whose signature the receiver\'s check accepts', () => {
    const body = githubPushBody({ ref: 'refs/heads/main', before: 'a'.repeat(40), after: 'b'.repeat(40), repositoryUrl: 'http://127.0.0.1:3000/config.git' });
    expect(JSON.parse(body)).toMatchObject({ ref: 'refs/heads/main', after: 'b'.repeat(40) });
    const sig = `sha256=${hmacSha256('s3cret', Buffer.from(body)).toString('hex')}`;
    expect(verifyGithubSignature('s3cret', Buffer.from(body), sig)).toBe(true);
  });
});
