// The access log (settings.access-log): one line per conn-open and conn-close, JSON or CLF-style,
// to a file rotated by size and/or to stdout. Lines are formatted when the records arrive and
// queued; one asynchronous write at a time takes the whole queue, so the event loop never waits on
// the disk. The queue is bounded (buffer-size lines): beyond it new lines are dropped and counted.
// A file that cannot be opened or written is reported (status(), the daemon's status and
// lb_access_log_errors_total) and retried at the next flush after a pause; the daemon goes on.
//
// Rotation: when a write takes the file past max-file-size-mb, it is closed and renamed
// path -> path.1 -> path.2 ... ; path.<max-files + 1> is deleted, so max-files rotated files stay.

import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ConnRecord } from './events/event-hub.js';

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
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const PROTO: Record<number, string> = { 6: 'tcp', 17: 'udp' };

/** One JSON line (without the newline). Byte and packet counts are numbers (exact below 2^53). */
export function jsonLine(r: ConnRecord): string {
  const o: Record<string, unknown> = {
    time: new Date(r.timeMs).toISOString(),
    event: r.type === 'open' ? 'conn-open' : 'conn-close',
    proxy: r.proxy, listener: r.listener, proto: PROTO[r.proto] ?? String(r.proto),
    client: `${r.client}:${r.clientPort}`, vip: `${r.vip}:${r.vipPort}`, backend: `${r.backend}:${r.backendPort}`,
  };
  if (r.acceptor) {
    o['route'] = r.acceptor.route;
    o['sni'] = r.acceptor.serverName;
  }
  if (r.type === 'close') {
    o['reason'] = r.reason;
    o['start'] = new Date(r.openMs).toISOString();
    o['duration_ms'] = Math.round(r.durationSec * 1e6) / 1e3;
    o['bytes_in'] = Number(r.bytesIn);
    o['bytes_out'] = Number(r.bytesOut);
    o['packets_in'] = Number(r.packetsIn);
    o['packets_out'] = Number(r.packetsOut);
  }
  return JSON.stringify(o);
}

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** [07/Dec/2026:00:25:13 +0000], in UTC. */
function clfTime(ms: number): string {
  const d = new Date(ms);
  return `[${pad(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000]`;
}

/**
 * Common Log Format, adapted: host ident user [time] "request" status bytes, where the request is
 * `OPEN|CLOSE proto vip:port backend:port`, the status the close reason ("-" for an open) and bytes
 * the bytes sent to the client; then proxy, duration and bytes from the client as key=value.
 */
export function clfLine(r: ConnRecord): string {
  const req = `${r.type === 'open' ? 'OPEN' : 'CLOSE'} ${PROTO[r.proto] ?? r.proto} ${r.vip}:${r.vipPort} ${r.backend}:${r.backendPort}`;
  const base = `${r.client} - - ${clfTime(r.timeMs)} "${req}" ${r.type === 'close' ? r.reason : '-'} ${r.type === 'close' ? String(r.bytesOut) : '-'}`;
  const extra = r.type === 'close' ? ` duration=${r.durationSec.toFixed(3)} bytes_in=${String(r.bytesIn)} client_port=${r.clientPort}` : ` client_port=${r.clientPort}`;
  const routed = r.acceptor ? ` route=${r.acceptor.route} sni=${r.acceptor.serverName ?? '-'}` : '';
  return `${base} proxy=${r.proxy ?? '-'}${routed}${extra}`;
}

export class AccessLog {
  private cfg: AccessLogConfig;
  private queue: string[] = [];
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

  constructor(cfg: AccessLogConfig, private readonly stdout: (text: string) => void = (t) => { process.stdout.write(t); }) {
    this.cfg = cfg;
  }

  /** A new config (each reconcile): a changed path or format takes effect from the next line. */
  async configure(cfg: AccessLogConfig): Promise<void> {
    const reopen = cfg.path !== this.cfg.path || !cfg.enabled;
    this.cfg = cfg;
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
    return this.cfg.enabled && this.queue.length > this.cfg.bufferSize / 2 ? this.flush() : undefined;
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
  add(records: readonly ConnRecord[]): void {
    if (!this.cfg.enabled) return;
    const format = this.cfg.format === 'clf' ? clfLine : jsonLine;
    for (const r of records) {
      if (this.queue.length >= this.cfg.bufferSize) {
        this.dropped++;
        continue;
      }
      this.queue.push(format(r));
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.writing || this.queue.length === 0) return;
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
    for (let i = 0; i < 1000 && (this.writing || this.queue.length > 0); i++) {
      if (!this.writing) {
        this.clearRetry(); // a flush is an explicit request: try the file again now
        this.schedule();
      }
      await this.writing;
      if (this.error && this.queue.length === 0) break;
    }
  }

  private async writeQueued(): Promise<void> {
    const lines = this.queue;
    this.queue = [];
    const text = `${lines.join('\n')}\n`;
    if (this.cfg.stdout) this.stdout(text);
    if (this.cfg.path === '-') {
      this.written += lines.length;
      return;
    }
    try {
      const file = await this.openFile();
      const buf = Buffer.from(text);
      await file.write(buf);
      this.fileBytes += buf.length;
      this.written += lines.length;
      this.error = undefined;
      if (this.fileBytes >= this.cfg.maxFileBytes) await this.rotate();
    } catch (err) {
      this.dropped += lines.length;
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
