// The demo's config repository: a bare repository made from examples/repo (served over smart
// HTTP), and the operator's clone where the demo edits lb.yaml, commits and pushes. Git runs with
// an isolated configuration (no user or system config, no proxy, no prompt) so the machine's
// settings cannot change what the demo does.

import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isScalar, parseDocument } from 'yaml';
import { execIn, run, SandboxError, type RunResult } from '../sandbox/index.js';

const GIT_TIMEOUT_MS = 30_000;

export function gitEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (/^(https?|all|no|ftp)_proxy$/i.test(k) || k.startsWith('GIT_')) delete env[k];
  return {
    ...env,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
  };
}

function git(args: readonly string[]): Promise<RunResult> {
  return run(['git', ...args], { env: gitEnv(), timeoutMs: GIT_TIMEOUT_MS });
}

export interface ConfigRepoPaths {
  bareRepo: string;
  clone: string;
  branch: string;
}

export class ConfigRepo {
  readonly paths: ConfigRepoPaths;

  constructor(paths: ConfigRepoPaths) {
    this.paths = paths;
  }

  get configFile(): string {
    return join(this.paths.clone, 'lb.yaml');
  }

  /**
   * Copies `template` into the clone directory, commits it as "Initial config" on the branch and
   * makes the bare repository from it. Returns the commit.
   */
  async create(template: string): Promise<string> {
    const { clone, bareRepo, branch } = this.paths;
    mkdirSync(clone, { recursive: true });
    cpSync(template, clone, { recursive: true });
    await git(['init', '-q', '-b', branch, clone]);
    // Who commits in the clone, also when a person does after `--keep` (their git may have no name set).
    await git(['-C', clone, 'config', 'user.name', 'Demo Operator']);
    await git(['-C', clone, 'config', 'user.email', 'operator@demo.invalid']);
    await git(['-C', clone, 'add', '-A']);
    await git(['-C', clone, 'commit', '-q', '-m', 'Initial config']);
    await git(['clone', '-q', '--bare', clone, bareRepo]);
    await git(['-C', clone, 'remote', 'remove', 'origin']).catch(() => undefined);
    return this.head();
  }

  /** Points the clone's origin at the served URL (the demo pushes over HTTP, like anyone). */
  async setOrigin(url: string): Promise<void> {
    await git(['-C', this.paths.clone, 'remote', 'add', 'origin', url]);
  }

  async head(): Promise<string> {
    return (await git(['-C', this.paths.clone, 'rev-parse', 'HEAD'])).stdout.trim();
  }

  /**
   * Sets the weights of the first proxy's default targets in lb.yaml, editing only the numbers
   * (comments and layout stay, so `git diff` shows just the change).
   */
  setWeights(weights: readonly number[]): void {
    const text = readFileSync(this.configFile, 'utf8');
    const doc = parseDocument(text, { keepSourceTokens: false });
    const edits: Array<{ start: number; end: number; value: string }> = [];
    weights.forEach((w, i) => {
      const node = doc.getIn(['proxies', 0, 'default-target', i, 'weight'], true);
      if (!isScalar(node) || !node.range) throw new SandboxError(`lb.yaml: no weight at proxies[0].default-target[${i}]`);
      edits.push({ start: node.range[0], end: node.range[1], value: String(w) });
    });
    let out = text;
    for (const e of edits.sort((a, b) => b.start - a.start)) out = out.slice(0, e.start) + e.value + out.slice(e.end);
    writeFileSync(this.configFile, out);
  }

  async diff(): Promise<string> {
    return (await git(['-C', this.paths.clone, 'diff', '--no-color', '-U1'])).stdout;
  }

  async commitAll(message: string): Promise<string> {
    await git(['-C', this.paths.clone, 'commit', '-q', '-a', '-m', message]);
    return this.head();
  }

  /** `git push origin <branch>` from inside `ns`, where the served URL's 127.0.0.1 is. */
  async push(ns: string): Promise<string> {
    const r = await execIn(ns, ['git', '-C', this.paths.clone, 'push', 'origin', `HEAD:refs/heads/${this.paths.branch}`],
      { via: 'nsenter', env: gitEnv(), timeoutMs: GIT_TIMEOUT_MS });
    return `${r.stdout}${r.stderr}`.trim();
  }

  /** The tip of `branch` in the bare repository, or undefined when it does not exist. */
  async branchTip(branch: string): Promise<{ sha: string; subject: string; when: string } | undefined> {
    const r = await run(['git', '--git-dir', this.paths.bareRepo, 'log', '-1', '--format=%H%x00%s%x00%cI', `refs/heads/${branch}`, '--'],
      { env: gitEnv(), timeoutMs: GIT_TIMEOUT_MS, allowFailure: true });
    if (r.code !== 0) return undefined;
    const [sha = '', subject = '', when = ''] = r.stdout.trim().split('\0');
    return sha ? { sha, subject, when } : undefined;
  }

  /** The newest of the last 50 commits of `branch` whose subject is `subject`. */
  async findCommit(branch: string, subject: string): Promise<{ sha: string; subject: string } | undefined> {
    const r = await run(['git', '--git-dir', this.paths.bareRepo, 'log', '-50', '--format=%H%x00%s', `refs/heads/${branch}`, '--'],
      { env: gitEnv(), timeoutMs: GIT_TIMEOUT_MS, allowFailure: true });
    if (r.code !== 0) return undefined;
    for (const line of r.stdout.split('\n')) {
      const [sha = '', s = ''] = line.split('\0');
      if (sha && s === subject) return { sha, subject: s };
    }
    return undefined;
  }

  /** `git show <rev>:<path>` in the bare repository (rev: a branch name or a commit). */
  async show(rev: string, path: string): Promise<string> {
    const ref = /^[0-9a-f]{40}$/.test(rev) ? rev : `refs/heads/${rev}`;
    return (await run(['git', '--git-dir', this.paths.bareRepo, 'show', `${ref}:${path}`], { env: gitEnv(), timeoutMs: GIT_TIMEOUT_MS })).stdout;
  }

  /** Files changed by a commit (a branch name: its tip). */
  async changedFiles(rev: string): Promise<string[]> {
    const ref = /^[0-9a-f]{40}$/.test(rev) ? rev : `refs/heads/${rev}`;
    const r = await run(['git', '--git-dir', this.paths.bareRepo, 'show', '--format=', '--name-only', ref],
      { env: gitEnv(), timeoutMs: GIT_TIMEOUT_MS });
    return r.stdout.split('\n').filter((l) => l !== '');
  }
}
