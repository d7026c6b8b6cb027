// Reads the config of one revision of a repository (a local path or an http(s) remote), as the
// daemon reads it: GitSource exports the revision's tree (bounded, pack-guarded) into a directory
// of its own, and loadConfig reads and checks it. Diagnostics name repository paths
// (prod/lb.yaml:12:7), not the export directory.

import { isAbsolute, relative } from 'node:path';
import { ConfigError } from '../core/config/config-error.js';
import type { Diagnostic } from '../core/config/diagnostics.js';
import type { LbConfig } from '../core/config/types.js';
import type { GitAuthOptions } from './credentials.js';
import { GitSource } from './git-source.js';
import { loadConfig } from './load-config.js';
import type { SourceRevision } from './types.js';

export interface RevisionConfig {
  /** The commit the ref resolved to. */
  commit: string;
  /** null when the config path does not exist at this revision. */
  config: LbConfig | null;
  warnings: Diagnostic[];
}

export interface ReadRevisionOptions {
  repo: string;
  ref: string;
  path?: string;
  /** A directory this read owns (its clone and export). */
  workDir: string;
  auth?: GitAuthOptions;
}

/** Fetches `ref` and reads its config. Throws a SourceError (ref missing, remote down) or a ConfigError (repository paths). */
export async function readRevisionConfig(opts: ReadRevisionOptions): Promise<RevisionConfig> {
  const source = new GitSource({
    url: opts.repo, ref: opts.ref, workDir: opts.workDir, keepCheckouts: 1,
    ...(opts.path !== undefined ? { path: opts.path } : {}), ...(opts.auth ? { auth: opts.auth } : {}),
  });
  let revision: SourceRevision;
  try {
    revision = await source.fetch();
  } catch (err) {
    // A config path that does not exist yet at this revision (the pull request adds it).
    const commit = (err as { code?: string; data?: { revision?: unknown } }).code === 'LB_SOURCE_PATH_NOT_FOUND' ? (err as { data?: { revision?: unknown } }).data?.revision : undefined;
    if (typeof commit !== 'string') throw err;
    return { commit, config: null, warnings: [] };
  }
  try {
    const { config, warnings } = await loadConfig(revision.configPath);
    return { commit: revision.revision, config, warnings: warnings.map((d) => repoRelative(d, revision.rootDir)) };
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(stageOf(err), err.diagnostics.map((d) => repoRelative(d, revision.rootDir)));
    throw err;
  }
}

/** A diagnostic with its file as the repository path. */
export function repoRelative(d: Diagnostic, rootDir: string): Diagnostic {
  if (!isAbsolute(d.file)) return d;
  const rel = relative(rootDir, d.file);
  return rel.startsWith('..') ? d : { ...d, file: rel };
}

function stageOf(err: ConfigError): 'io' | 'parse' | 'schema' | 'semantic' | 'compile' {
  return (err.data as { stage: 'io' | 'parse' | 'schema' | 'semantic' | 'compile' }).stage;
}
