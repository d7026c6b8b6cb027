// The SNI acceptor's local routes belong to the instance that installed them (its record in
// /run/lb/<instance>), not to whoever carries lb's route protocol number: two instances in one
// network namespace change and take down their own routes and keep each other's, a proto 211
// route no instance recorded is left alone, and `lb down` (the built CLI, in the namespace)
// removes the instance's routes. Real routes in a namespace this test creates. Needs root.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LB_ROUTE_PROTO, ownLocalRoutes, setLocalRoutes } from '../../src/acceptor/local-routes.js';
import { makeRunPrefix, withNetns } from '../../src/sandbox/index.js';
import { runCli, useCliNamespace } from '../lib/cli.js';

if (process.getuid?.() !== 0) throw new Error('acceptor-local-routes.test.ts must run as root: it creates a network namespace');

const prefix = makeRunPrefix();
const ns = `${prefix}-rt`;
const A = `${prefix}-a`;
const B = `${prefix}-b`;
useCliNamespace({ ns, instances: [A, B], dir: mkdtempSync(join(tmpdir(), 'lb-routes-')) });

/** lb's local routes in the test's namespace, sorted. */
function routes(): string[] {
  const out = execFileSync('ip', ['-n', ns, '-j', 'route', 'show', 'table', 'local', 'proto', String(LB_ROUTE_PROTO)], { encoding: 'utf8', timeout: 15_000 });
  return (JSON.parse(out || '[]') as Array<{ dst: string }>).map((r) => r.dst).sort();
}

const set = (instance: string, vips: string[]): void => withNetns(ns, () => setLocalRoutes(instance, vips));
/** A route with lb's protocol number that no instance recorded (an older lb's, an admin's). */
const foreign = (vip: string): void => {
  execFileSync('ip', ['-n', ns, 'route', 'replace', 'local', `${vip}/32`, 'dev', 'lo', 'table', 'local', 'proto', String(LB_ROUTE_PROTO)], { timeout: 15_000 });
};

describe('acceptor local routes per instance', () => {
  it('two instances in one namespace change their own routes and keep each other\'s', () => {
    set(A, ['10.213.0.1', '10.213.0.2']);
    set(B, ['10.213.0.3']);
    expect(routes()).toEqual(['10.213.0.1', '10.213.0.2', '10.213.0.3']);
    // A's next config drops one VIP: only that route goes.
    set(A, ['10.213.0.1']);
    expect(routes()).toEqual(['10.213.0.1', '10.213.0.3']);
    expect(ownLocalRoutes(A)).toEqual(['10.213.0.1']);
    // A route no instance recorded stays.
    foreign('10.213.0.9');
    set(B, ['10.213.0.4']);
    expect(routes()).toEqual(['10.213.0.1', '10.213.0.4', '10.213.0.9']);
  });

  it('lb down removes the instance\'s own routes and no other', () => {
    set(A, ['10.213.0.1']);
    set(B, ['10.213.0.4']);
    foreign('10.213.0.9');
    const down = runCli(['down', '--instance', A], { ns });
    expect(down.code, down.stderr).toBe(0);
    expect(down.stdout).toContain('Removed the SNI acceptor\'s local routes (10.213.0.1).');
    expect(routes()).toEqual(['10.213.0.4', '10.213.0.9']);
    expect(ownLocalRoutes(A)).toEqual([]);
    // Idempotent: a second run finds nothing of A's.
    expect(runCli(['down', '--instance', A], { ns }).stdout).toBe(`Instance ${A}: nothing to remove.\n`);
    expect(runCli(['down', '--instance', B], { ns }).stdout).toContain('Removed the SNI acceptor\'s local routes (10.213.0.4).');
    expect(routes()).toEqual(['10.213.0.9']);
  });
});
