// Names and paths of a demo run. The interactive demo uses fixed names (namespaces lbdemo-*,
// instance `demo`, work directory $TMPDIR/lb-demo), so `--keep` can print where to look and
// `--clean` finds everything again. A `--ci` run uses per-run names (lbdemoci<pid><abc>-*,
// demo-ci-<pid>, $TMPDIR/lb-demo-ci-<pid>-XXXXXX): it cannot disturb a demo kept up, nor a
// parallel run, and what a killed one left is recognised by its dead pid.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { packageRoot } from '../package-root.js';
import { makeRunPrefix } from '../sandbox/index.js';

export const DEMO_PREFIX = 'lbdemo';
export const DEMO_INSTANCE = 'demo';
export const CI_PREFIX_FAMILY = 'lbdemoci';
export const CI_INSTANCE_RE = /^demo-ci-(\d+)$/;
/** Work directories of --ci runs in $TMPDIR, with the pid of their demo process. */
export const CI_WORKDIR_RE = /^lb-demo-ci-(\d+)-\w+$/;

export interface DemoLayout {
  /** Namespace prefix: <prefix>-lb, <prefix>-c1, <prefix>-b1.. */
  prefix: string;
  /** Prefix family whose stale namespaces are removed before the run. */
  staleFamily: string;
  instance: string;
  node: string;
  statusBranch: string;
  branch: string;
  workDir: string;
  /** GIT_PROJECT_ROOT of the git server; the bare repository is `<gitRoot>/config.git`. */
  gitRoot: string;
  repoName: string;
  bareRepo: string;
  /** The operator's clone, where the demo edits and commits. */
  clone: string;
  secretFile: string;
  daemonWorkDir: string;
  logDir: string;
  /** Where `--keep` records what runs (for `--clean` and for the reader). */
  stateFile: string;
}

export interface Artefacts {
  root: string;
  /** node dist/src/cli/main.js: the lb CLI. */
  cli: string;
  gitServer: string;
  examplesRepo: string;
}

export function artefacts(root = packageRoot()): Artefacts {
  return {
    root,
    cli: join(root, 'dist', 'src', 'cli', 'main.js'),
    gitServer: join(root, 'dist', 'src', 'sandbox', 'git-server-main.js'),
    examplesRepo: join(root, 'examples', 'repo'),
  };
}

export function fixedWorkDir(): string {
  return resolve(tmpdir(), 'lb-demo');
}

export function demoLayout(ci: boolean): DemoLayout {
  const workDir = ci ? mkdtempSync(join(tmpdir(), `lb-demo-ci-${process.pid}-`)) : fixedWorkDir();
  const gitRoot = join(workDir, 'git');
  const repoName = 'config.git';
  return {
    prefix: ci ? makeRunPrefix(CI_PREFIX_FAMILY) : DEMO_PREFIX,
    staleFamily: ci ? CI_PREFIX_FAMILY : DEMO_PREFIX,
    instance: ci ? `demo-ci-${process.pid}` : DEMO_INSTANCE,
    node: 'demo-node',
    statusBranch: 'lb-status',
    branch: 'main',
    workDir,
    gitRoot,
    repoName,
    bareRepo: join(gitRoot, repoName),
    clone: join(workDir, 'clone'),
    secretFile: join(workDir, 'webhook-secret'),
    daemonWorkDir: join(workDir, 'daemon'),
    logDir: join(workDir, 'logs'),
    stateFile: join(workDir, 'state.json'),
  };
}
