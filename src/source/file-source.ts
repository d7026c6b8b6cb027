// FileSource: `lb daemon --config PATH` (the original's hot reload). The revision is the sha256 of
// the config files' names and contents, so touching a file without changing it is no new revision.
// watch() follows the parent directory rather than the file: editors save by writing a temporary
// and renaming it over the original, which ends a watch on the old inode; Kubernetes ConfigMap
// volumes swap a `..data` symlink. Whatever happened, the hash decides whether it was a change.

import { createHash } from 'node:crypto';
import { watch as fsWatch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { ConfigError } from '../core/config/config-error.js';
import { formatDiagnostics } from '../core/config/diagnostics.js';
import { SourceError } from './disposition.js';
import { errFields, silentLogger, type Logger } from '../log.js';
import { readConfigFiles } from './read-bounded.js';
import type { Source, SourceRevision } from './types.js';

export interface FileSourceOptions {
  /** A config file, or a directory of *.yaml / *.yml / *.edn. */
  path: string;
  /** Quiet time after the last change event before looking (default 150 ms). */
  debounceMs?: number;
  /** Look at the latest this long after the first event of a stream of events (default 2 s). */
  maxWaitMs?: number;
  log?: Logger;
}

export interface FileWatch {
  close(): void;
}

interface Snapshot {
  revision: string;
  committedAt: string;
  isDir: boolean;
}

export class FileSource implements Source {
  readonly kind = 'file' as const;
  readonly path: string;
  readonly description: string;
  private readonly opts: FileSourceOptions;
  private readonly log: Logger;

  constructor(opts: FileSourceOptions) {
    this.opts = opts;
    this.path = resolve(opts.path);
    this.description = this.path;
    this.log = opts.log ?? silentLogger;
  }

  async fetch(): Promise<SourceRevision> {
    const snap = await this.snapshot();
    return {
      revision: snap.revision,
      ref: this.path,
      configPath: this.path,
      rootDir: snap.isDir ? this.path : dirname(this.path),
      message: '',
      author: '',
      committedAt: snap.committedAt,
    };
  }

  /**
   * Calls `onChange` (debounced) whenever the content hash changes, or the config becomes
   * unreadable (then `revision` is undefined and the loop's next fetch reports why).
   */
  watch(onChange: (revision: string | undefined) => void): FileWatch {
    const debounceMs = this.opts.debounceMs ?? 150;
    const maxWaitMs = this.opts.maxWaitMs ?? 2000;
    let last: string | undefined | null = null; // null: not known yet
    let timer: NodeJS.Timeout | undefined;
    let firstEventAt = 0;
    let closed = false;
    let watcher: FSWatcher | undefined;
    let checking = Promise.resolve();

    const current = async (): Promise<string | undefined> => {
      try {
        return (await this.snapshot()).revision;
      } catch {
        return undefined;
      }
    };
    void current().then((r) => {
      if (last === null) last = r;
    });

    const check = (): void => {
      timer = undefined;
      firstEventAt = 0;
      checking = checking.then(async () => {
        if (closed) return;
        const rev = await current();
        if (closed || rev === last) return;
        last = rev;
        try {
          onChange(rev);
        } catch (err) {
          this.log.error({ path: this.path, ...errFields(err) }, 'config change handler failed');
        }
      });
    };
    const onEvent = (): void => {
      if (closed) return;
      const now = Date.now();
      if (firstEventAt === 0) firstEventAt = now;
      if (timer) clearTimeout(timer);
      const wait = Math.max(0, Math.min(debounceMs, firstEventAt + maxWaitMs - now));
      timer = setTimeout(check, wait);
    };

    // A directory config is watched itself; a file config through its directory (see above).
    const attach = async (): Promise<void> => {
      const isDir = (await stat(this.path).catch(() => undefined))?.isDirectory() ?? false;
      const target = isDir ? this.path : dirname(this.path);
      const name = basename(this.path);
      if (closed) return;
      watcher = fsWatch(target, { persistent: false }, (_event, file) => {
        if (isDir || file === null || file === name || file.startsWith('..')) onEvent();
      });
      watcher.on('error', (err) => {
        this.log.warn({ path: this.path, ...errFields(err) }, 'config watch failed; the poll still sees changes');
        watcher?.close();
      });
    };
    void attach().catch((err: unknown) => this.log.warn({ path: this.path, ...errFields(err) }, 'cannot watch the config'));

    return {
      close: () => {
        closed = true;
        if (timer) clearTimeout(timer);
        watcher?.close();
      },
    };
  }

  /** Reads the config through the bounded reader that `lb validate` uses (same caps and refusals). */
  private async snapshot(): Promise<Snapshot> {
    const read = await readConfigFiles(this.path).catch((err: unknown) => {
      throw this.unreadable(err);
    });
    const hash = createHash('sha256');
    let newest = read.mtimeMs;
    for (const { name, bytes, mtimeMs } of read.files) {
      newest = Math.max(newest, mtimeMs);
      hash.update(`${name}\0${bytes.byteLength}\0`).update(bytes).update('\0');
    }
    return { revision: `sha256:${hash.digest('hex')}`, committedAt: new Date(newest).toISOString(), isDir: read.isDir };
  }

  /** Stalls: a human must fix the path. The message names every refused file, never its content. */
  private unreadable(err: unknown): SourceError {
    const problems = err instanceof ConfigError ? err.diagnostics.filter((d) => d.severity === 'error') : [];
    const detail = problems.length > 0 ? formatDiagnostics(problems) : `${this.path}: ${(err as Error).message}`;
    return new SourceError(
      'LB_SOURCE_FILE',
      `cannot read the config ${this.path}: ${detail}`,
      { disposition: 'stalling', reason: 'ConfigUnreadable' },
      { path: this.path },
      { cause: err },
    );
  }
}
