// What every source (a git repository, or a plain config path) gives the reconcile loop.

import type { SignatureVerification } from './signature.js';

export interface SourceRevision {
  /** A git commit sha (40 hex), or `sha256:<hex>` of the config files' content for a FileSource. */
  revision: string;
  /** What was followed, resolved: `refs/heads/main`, `refs/tags/v1`, a commit sha, or the file path. */
  ref: string;
  /** The config at this revision on disk (a file or a directory): hand it to loadConfig. */
  configPath: string;
  /**
   * The directory that stands for the repository root (or the config's directory): paths in
   * diagnostics are reported relative to it (path.relative(rootDir, file) is the repo path).
   */
  rootDir: string;
  /** Commit subject and body ('' for a FileSource). */
  message: string;
  /** `Name <email>` of the commit author ('' for a FileSource). */
  author: string;
  /** ISO 8601: commit time, or the newest mtime of the config files. */
  committedAt: string;
  /** Present when signature verification is on and the commit passed it. */
  signedBy?: SignatureVerification;
}

export interface Source {
  readonly kind: 'git' | 'file';
  /** Safe to log: URL without credentials, ref and path. */
  readonly description: string;
  /** Fetches (or re-reads) and returns the current revision; throws a SourceError. */
  fetch(opts?: { signal?: AbortSignal }): Promise<SourceRevision>;
}
