// Every command `lb --help` lists is in README's command list and in docs/cli.md's table, so a
// new command cannot ship undocumented. Uses the built CLI.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runCli } from '../lib/cli.js';

describe('the command list', () => {
  const help = runCli(['--help']).stdout;
  const commands = [...help.slice(help.indexOf('Commands:')).matchAll(/^ {2}([a-z]+)/gm)].map((m) => m[1]!).filter((c) => c !== 'help');

  it('lb --help lists the commands', () => {
    expect(commands).toEqual(expect.arrayContaining(['version', 'doctor', 'validate', 'convert', 'fmt', 'plan', 'apply', 'completion']));
  });

  it('README and docs/cli.md name every one of them', () => {
    const readme = readFileSync('README.md', 'utf8');
    const cli = readFileSync('docs/cli.md', 'utf8');
    expect(commands.filter((c) => !new RegExp(`^bin/lb ${c}\\b`, 'm').test(readme))).toEqual([]);
    expect(commands.filter((c) => !cli.includes(`\`lb ${c}\``))).toEqual([]);
  });
});
