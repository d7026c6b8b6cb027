// `lb completion bash|zsh`: the generated scripts loaded into a real bash and a real zsh, asked to
// complete command lines the way the shell would (bash: COMP_WORDS/COMP_CWORD and _lb; zsh: words/
// CURRENT and _lb with compadd and _files recording what they were given). Uses the built CLI.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, runCli } from '../lib/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'lb-completion-'));
writeFileSync(join(dir, 'edge.edn'), '{}');
writeFileSync(join(dir, 'edge.yaml'), '{}');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const bashScript = join(dir, 'lb.bash');
const zshScript = join(dir, 'lb.zsh');
writeFileSync(bashScript, runCli(['completion', 'bash']).stdout);
writeFileSync(zshScript, runCli(['completion', 'zsh']).stdout);

/** What bash completes for the words (the last one being completed). */
function bash(...words: string[]): string[] {
  const arr = words.map((w) => `'${w}'`).join(' ');
  const script = `source ${bashScript}; COMP_WORDS=(${arr}); COMP_CWORD=${words.length - 1}; _lb; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = spawnSync('bash', ['--norc', '-c', script], { encoding: 'utf8', timeout: 15_000 });
  expect(r.stderr).toBe('');
  return r.stdout.split('\n').filter((l) => l !== '');
}

/** What zsh completes: the candidates given to compadd, and FILES when it asked for file completion. */
function zsh(...words: string[]): string[] {
  const arr = words.map((w) => `'${w}'`).join(' ');
  const script = [
    'compdef() { : }', `source ${zshScript}`,
    'compadd() { [[ "$1" == -- ]] && shift; print -l -- "$@" }', '_files() { print FILES }',
    `words=(${arr}); CURRENT=${words.length}; _lb`,
  ].join('\n');
  const r = spawnSync('zsh', ['-f', '-c', script], { encoding: 'utf8', timeout: 15_000 });
  expect(r.stderr).toBe('');
  return r.stdout.split('\n').filter((l) => l !== '');
}

const commands = (): string[] => {
  const help = spawnSync(process.execPath, [CLI, '--help'], { encoding: 'utf8' }).stdout;
  return [...help.slice(help.indexOf('Commands:')).matchAll(/^ {2}([a-z]+)/gm)].map((m) => m[1]!).filter((c) => c !== 'help');
};

describe('lb completion bash', () => {
  it('completes every command of lb --help, and a prefix to its command', () => {
    const all = bash('lb', '');
    expect(commands().length).toBeGreaterThan(10);
    for (const c of commands()) expect(all).toContain(c);
    expect(bash('lb', 'val')).toEqual(['validate']);
    expect(bash('lb', 'co')).toEqual(['convert', 'completion']);
  });

  it('completes options, the values of options with choices, and arguments with choices', () => {
    expect(bash('lb', 'plan', '--d')).toEqual(['--detailed-exitcode']);
    expect(bash('lb', 'validate', '--format', '')).toEqual(['text', 'json', 'sarif']);
    expect(bash('lb', 'convert', 'x.edn', '--to', '')).toEqual(['yaml', 'edn']);
    expect(bash('lb', 'show', '')).toEqual(['maps', 'flows', 'targets']);
    expect(bash('lb', '--instance', 'edge', 'breaker', '')).toEqual(['open', 'close', 'reset']);
    expect(bash('lb', 'completion', '')).toEqual(['bash', 'zsh']);
    expect(bash('lb', 'status', '--instance', '')).toEqual([]);
  });

  it('completes paths where a command or option takes one', () => {
    expect(bash('lb', 'convert', `${dir}/edge.`).sort()).toEqual([`${dir}/edge.edn`, `${dir}/edge.yaml`]);
    expect(bash('lb', 'validate', '-c', `${dir}/edge.y`)).toEqual([`${dir}/edge.yaml`]);
  });
});

describe('lb completion zsh', () => {
  it('completes every command, options, choices and paths', () => {
    const all = zsh('lb', '');
    for (const c of commands()) expect(all).toContain(c);
    expect(zsh('lb', 'validate', '--format', '')).toEqual(['text', 'json', 'sarif']);
    expect(zsh('lb', 'show', '')).toEqual(['maps', 'flows', 'targets']);
    expect(zsh('lb', 'plan', '--')).toContain('--detailed-exitcode');
    expect(zsh('lb', 'fmt', '')).toEqual(['FILES']);
    expect(zsh('lb', 'doctor', '--config', '')).toEqual(['FILES']);
  });
});
