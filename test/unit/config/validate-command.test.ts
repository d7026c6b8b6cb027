// `lb validate`: what it prints and the exit code.
import { describe, expect, it } from 'vitest';
import { runValidate, type CommandOutput } from '../../../src/cli/commands/validate.js';
import { FIXTURES, SEEDS } from './helpers.js';

function collector(): CommandOutput & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return { stdout, stderr, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
}

describe('lb validate', () => {
  it('exits 0 and prints a summary for a valid config', async () => {
    const io = collector();
    expect(await runValidate({ config: `${SEEDS}/config.edn` }, io)).toBe(0);
    expect(io.stdout).toEqual(['config valid: 2 proxies, 5 targets']);
    expect(io.stderr).toEqual([]);
  });

  it('prints warnings but still exits 0', async () => {
    const io = collector();
    expect(await runValidate({ config: `${SEEDS}/high-availability.edn` }, io)).toBe(0);
    expect(io.stdout).toEqual(['config valid: 2 proxies, 9 targets']);
    expect(io.stderr.join('\n')).toContain('warning: /settings/max-connections');
  });

  it('exits 1 and prints every diagnostic, no stack trace', async () => {
    const io = collector();
    expect(await runValidate({ config: `${SEEDS}/sni-routing.edn` }, io)).toBe(1);
    expect(io.stdout).toEqual([]);
    const text = io.stderr.join('\n');
    expect(text.split('\n')).toHaveLength(4);
    expect(text).toMatch(/^test\/fixtures\/seed-configs\/sni-routing\.edn:52:18: \/proxies\/1\/listen\/interfaces\/0: listener eth0:443\/tcp conflicts/);
    expect(text.endsWith('config invalid: 3 errors')).toBe(true);
    expect(text).not.toMatch(/\n\s+at /);
  });

  it('validates a directory', async () => {
    const io = collector();
    expect(await runValidate({ config: `${FIXTURES}/dir-merge` }, io)).toBe(0);
    expect(io.stdout).toEqual(['config valid: 2 proxies, 4 targets']);
  });

  it('exits 1 for a path that does not exist', async () => {
    const io = collector();
    expect(await runValidate({ config: `${FIXTURES}/nope.yaml` }, io)).toBe(1);
    expect(io.stderr).toEqual([`${FIXTURES}/nope.yaml: cannot read: no such file or directory`, 'config invalid: 1 error']);
  });
});
