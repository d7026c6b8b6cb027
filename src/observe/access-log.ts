// The access log (settings.access-log): one line per conn-open and conn-close, JSON or CLF-style,
// to a file rotated by size and/or to stdout. Lines are formatted when the records arrive
// (access-log-format.ts, into a byte buffer) and queued; one asynchronous write at a
// time takes the whole queue, so the event loop never waits on the disk. The queue is bounded
// (buffer-size lines): beyond it new lines are dropped and counted.
// A file that cannot be opened or written is reported (status(), the daemon's status and
// lb_access_log_errors_total) and retried at the next flush after a pause; the daemon goes on.
//
// Rotation: when a write takes the file past max-file-size-mb, it is closed and renamed
// path -> path.1 -> path.2 ... ; path.<max-files + 1> is deleted, so max-files rotated files stay.

import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { LineBuffer, LineFormatter } from './access-log-format.js';
import type { ConnBatch } from './events/conn-batch.js';

export interface AccessLogConfig {
  enabled: boolean;
  format: 'json' | 'clf';
  /** File path ('-': no file). */
  path: string;
  /** Also write every line to stdout. */
  stdout: boolean;
  maxFileBytes: number;
  maxFiles: number;
  bufferSize: number;
}

export interface AccessLogStatus {
  enabled: boolean;
  path: string | null;
  format: 'json' | 'clf';
  written: number;
  dropped: number;
  rotations: number;
  /** The last write or open error, while it lasts. */
  error?: string;
}

const RETRY_AFTER_MS = 5000;

export { clfLine, jsonLine } from './access-log-format.js';

export class AccessLog {
  private cfg: AccessLogConfig;
  /** Formatted lines, as bytes, and how many. */
  private readonly queue = new LineBuffer();
  private queuedLines = 0;
  private formatter: LineFormatter;
  private file: FileHandle | undefined;
  private fileBytes = 0;
  private writing: Promise<void> | undefined;
  private retryAt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private written = 0;
  private dropped = 0;
  private rotations = 0;
  private errors = 0;
  private error: string | undefined;

  constructor(cfg: AccessLogConfig, private readonly stdout: (chunk: Buffer) => void = (t) => { process.stdout.write(t); }) {
    this.cfg = cfg;
    this.formatter = new LineFormatter(cfg.format);
  }

  /** A new config (each reconcile): a changed path or format takes effect from the next line. */
  async configure(cfg: AccessLogConfig): Promise<void> {
    const reopen = cfg.path !== this.cfg.path || !cfg.enabled;
    this.cfg = cfg;
    if (cfg.format !== this.formatter.format) this.formatter = new LineFormatter(cfg.format);
    if (reopen) {
      await this.flush();
      await this.closeFile();
      this.error = undefined;
      this.clearRetry();
    }
  }

  get enabled(): boolean {
    return this.cfg.enabled;
  }

  /** A promise that settles when the queue is written, while it is more than half full; else undefined. */
  backlog(): Promise<void> | undefined {
    return this.cfg.enabled && this.queuedLines > this.cfg.bufferSize / 2 ? this.flush() : undefined;
  }

  /** Lines dropped so far (queue full, or a write that failed). */
  get droppedLines(): number {
    return this.dropped;
  }

  get errorCount(): number {
    return this.errors;
  }

  status(): AccessLogStatus {
    return {
      enabled: this.cfg.enabled, path: this.cfg.path === '-' ? null : this.cfg.path, format: this.cfg.format,
      written: this.written, dropped: this.dropped, rotations: this.rotations, ...(this.error ? { error: this.error } : {}),
    };
  }

  /** The event sink: formats and queues; the write happens asynchronously. */
  add(batch: ConnBatch): void {
    if (!this.cfg.enabled || batch.kept === 0) return;
    const room = Math.max(0, this.cfg.bufferSize - this.queuedLines);
    const n = Math.min(room, batch.kept);
    this.dropped += batch.kept - n;
    if (n > 0) {
      this.formatter.batch(batch, this.queue, n);
      this.queuedLines += n;
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.writing || this.queuedLines === 0) return;
    const wait = this.retryAt - Date.now();
    if (wait > 0) {
      // After a failure: lines wait in the (bounded) queue for the next attempt.
      if (!this.retryTimer) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.schedule();
        }, wait);
        this.retryTimer.unref();
      }
      return;
    }
    this.writing = this.writeQueued().finally(() => {
      this.writing = undefined;
      this.schedule();
    });
  }

  private clearRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.retryAt = 0;
  }

  /** Resolves once every line queued before the call is written (or dropped by an error). */
  async flush(): Promise<void> {
    for (let i = 0; i < 1000 && (this.writing || this.queuedLines > 0); i++) {
      if (!this.writing) {
        this.clearRetry(); // a flush is an explicit request: try the file again now
        this.schedule();
      }
      await this.writing;
      if (this.error && this.queuedLines === 0) break;
    }
  }

  private async writeQueued(): Promise<void> {
    const bytes = this.queue.bytes;
    const chunks = this.queue.take();
    const lines = this.queuedLines;
    this.queuedLines = 0;
    if (this.cfg.stdout) for (const c of chunks) this.stdout(c);
    if (this.cfg.path === '-') {
      this.written += lines;
      return;
    }
    try {
      const file = await this.openFile();
      // One system call for the batches queued since the last write.
      await file.writev(chunks);
      this.fileBytes += bytes;
      this.written += lines;
      this.error = undefined;
      if (this.fileBytes >= this.cfg.maxFileBytes) await this.rotate();
    } catch (err) {
      this.dropped += lines;
      this.errors++;
      this.error = `${this.cfg.path}: ${err instanceof Error ? err.message : String(err)}`;
      this.retryAt = Date.now() + RETRY_AFTER_MS;
      await this.closeFile();
    }
  }

  private async openFile(): Promise<FileHandle> {
    if (this.file) return this.file;
    await mkdir(dirname(this.cfg.path), { recursive: true });
    const file = await open(this.cfg.path, 'a', 0o640);
    this.fileBytes = (await file.stat()).size;
    this.file = file;
    return file;
  }

  private async rotate(): Promise<void> {
    await this.closeFile();
    const p = this.cfg.path;
    await rm(`${p}.${this.cfg.maxFiles}`, { force: true });
    for (let i = this.cfg.maxFiles - 1; i >= 1; i--) await rename(`${p}.${i}`, `${p}.${i + 1}`).catch(() => undefined);
    await rename(p, `${p}.1`);
    this.rotations++;
  }

  private async closeFile(): Promise<void> {
    const f = this.file;
    this.file = undefined;
    this.fileBytes = 0;
    await f?.close().catch(() => undefined);
  }

  /** Writes what is queued and closes the file (SIGTERM). */
  async close(): Promise<void> {
    await this.flush();
    this.clearRetry();
    await this.closeFile();
  }
}
