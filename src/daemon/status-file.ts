// /run/lb/<instance>/status.json: the daemon's latest StatusReport, written atomically at every
// change, so `lb status` can answer without a daemon (after it stopped, or when it hangs).
// /run is a tmpfs: like the pinned maps, the file describes this boot only.
//
// The daemon writes it through a StatusFileWriter: with 10,000 proxies the report is megabytes of
// JSON, so it is stringified in pieces between turns of the event loop, and the reports published
// while one is being written collapse into one write of the latest.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { STATUS_REPORT_SCHEMA, type StatusReport } from '../report/types.js';
import { ensureDir, runDir, writeFileAtomic } from '../state/run-dir.js';
import { stringifyYielding } from './json-yielding.js';

export function statusFilePath(instance: string): string {
  return join(runDir(instance), 'status.json');
}

/** Writes the latest report, off the event loop's critical path: at most one write at a time, the latest wins. */
export class StatusFileWriter {
  private latest: StatusReport | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly instance: string, private readonly onError: (err: unknown) => void) {}

  write(report: StatusReport): void {
    this.latest = report;
    this.running ??= this.drain();
  }

  /** Resolves once the latest report given is in the file. */
  async flush(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    try {
      // The reports of one burst (a run's outcome, the runtime's change after it) make one write.
      await new Promise((r) => setImmediate(r));
      for (let r = this.latest; r !== undefined; r = this.latest) {
        this.latest = undefined;
        try {
          const text = await stringifyYielding(r, () => new Promise((done) => setImmediate(done)));
          ensureDir(runDir(this.instance));
          writeFileAtomic(statusFilePath(this.instance), `${text}\n`);
        } catch (err) {
          this.onError(err);
        }
      }
    } finally {
      this.running = undefined;
      if (this.latest !== undefined) this.running = this.drain();
    }
  }
}

/** The last report, or null when there is none (or it is not an lb.status/v1 report). */
export function readStatusFile(instance: string): StatusReport | null {
  const path = statusFilePath(instance);
  if (!existsSync(path)) return null;
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as Partial<StatusReport>;
    return v.schema === STATUS_REPORT_SCHEMA ? (v as StatusReport) : null;
  } catch {
    return null;
  }
}
