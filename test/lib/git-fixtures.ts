// Real git for tests: temp dirs, bare repositories, a working clone that commits and pushes with
// the git CLI (isolated from any user or system config), and throwaway OpenPGP keys in a temp
// GNUPGHOME for signed commits.

import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export async function tempDir(prefix = 'lb-git-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

export async function removeDir(dir: string | undefined): Promise<void> {
  if (dir) await rm(dir, { recursive: true, force: true });
}

/** Environment for git and gpg children: no user or system config, no prompts. */
export function isolatedEnv(home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: home,
    LANG: 'C',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    GIT_AUTHOR_NAME: 'Test Author',
    GIT_AUTHOR_EMAIL: 'author@example.invalid',
    GIT_COMMITTER_NAME: 'Test Committer',
    GIT_COMMITTER_EMAIL: 'committer@example.invalid',
    ...extra,
  };
}

export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd: opts.cwd, env: opts.env, timeout: opts.timeoutMs ?? 20_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** git with an isolated environment; `home` doubles as HOME. */
export function git(args: string[], opts: { cwd?: string; home: string; env?: NodeJS.ProcessEnv }): Promise<string> {
  return run('git', ['-c', 'init.defaultBranch=main', '-c', 'commit.gpgsign=false', '-c', 'tag.gpgsign=false', ...args], {
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
    env: isolatedEnv(opts.home, opts.env),
  });
}

/** A bare repository `<root>/<name>` that accepts pushes over smart HTTP. */
export async function createBareRepo(root: string, name: string, home = root): Promise<string> {
  const path = join(root, name);
  await mkdir(path, { recursive: true });
  await git(['init', '-q', '--bare', '-b', 'main', path], { home });
  await git(['config', 'http.receivepack', 'true'], { cwd: path, home });
  return path;
}

export interface GpgKey {
  home: string;
  fingerprint: string;
  armoredPublicKey: string;
  /** Kills the gpg-agent this key's GNUPGHOME started. */
  dispose(): Promise<void>;
}

/** A fresh ed25519 signing key, no passphrase, in its own GNUPGHOME under `dir`. */
export async function createGpgKey(dir: string, name = 'lb test'): Promise<GpgKey> {
  const home = await mkdtemp(join(dir, 'gpg-'));
  const env = isolatedEnv(home, { GNUPGHOME: home });
  await run('gpg', ['--batch', '--pinentry-mode', 'loopback', '--passphrase', '', '--quick-gen-key', `${name} <lb-test@example.invalid>`, 'ed25519', 'sign', '0'], { env });
  const colons = await run('gpg', ['--batch', '--with-colons', '--list-keys'], { env });
  const fingerprint = /^fpr:+([0-9A-F]{40}):/m.exec(colons)?.[1];
  if (!fingerprint) throw new Error(`no fingerprint in gpg output:\n${colons}`);
  const armoredPublicKey = await run('gpg', ['--batch', '--armor', '--export', fingerprint], { env });
  return {
    home,
    fingerprint,
    armoredPublicKey,
    dispose: async () => {
      await run('gpgconf', ['--kill', 'gpg-agent'], { env }).catch(() => undefined);
    },
  };
}

/** A working clone that writes files, commits (optionally signed) and pushes. */
export class WorkRepo {
  readonly dir: string;
  readonly home: string;

  private constructor(dir: string, home: string) {
    this.dir = dir;
    this.home = home;
  }

  /** Clones `remote` (a path or URL; an empty repository is fine) into `dir`. */
  static async clone(remote: string, dir: string, home: string): Promise<WorkRepo> {
    await git(['clone', '-q', remote, dir], { home });
    const repo = new WorkRepo(dir, home);
    await repo.git(['checkout', '-q', '-B', 'main']).catch(() => undefined);
    return repo;
  }

  static async init(dir: string, home: string): Promise<WorkRepo> {
    await mkdir(dir, { recursive: true });
    await git(['init', '-q', '-b', 'main', dir], { home });
    return new WorkRepo(dir, home);
  }

  git(args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
    return git(args, { cwd: this.dir, home: this.home, ...(env ? { env } : {}) });
  }

  async write(files: Record<string, string>): Promise<void> {
    for (const [name, content] of Object.entries(files)) {
      const path = join(this.dir, name);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, content);
    }
  }

  /** Stages everything and commits; returns the new commit sha. */
  async commit(message: string, opts: { sign?: GpgKey; files?: Record<string, string> } = {}): Promise<string> {
    if (opts.files) await this.write(opts.files);
    await this.git(['add', '-A']);
    if (opts.sign) {
      await this.git(['-c', `user.signingkey=${opts.sign.fingerprint}`, '-c', 'gpg.program=gpg', 'commit', '-q', '--allow-empty', '-S', '-m', message], {
        GNUPGHOME: opts.sign.home,
      });
    } else {
      await this.git(['commit', '-q', '--allow-empty', '-m', message]);
    }
    return this.head();
  }

  async head(): Promise<string> {
    return (await this.git(['rev-parse', 'HEAD'])).trim();
  }

  async push(args: string[] = ['origin', 'main']): Promise<void> {
    await this.git(['push', '-q', ...args]);
  }
}
