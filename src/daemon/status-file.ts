// /run/lb/<instance>/status.json: the daemon's latest StatusReport, written atomically at every
// change, so `lb status` can answer without a daemon (after it stopped, or when it hangs).
// /run is a tmpfs: like the pinned maps, the file describes this boot only.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { STATUS_REPORT_SCHEMA, type StatusReport } from '../report/types.js';
import { ensureDir, runDir, writeFileAtomic } from '../state/run-dir.js';

export function statusFilePath(instance: string): string {
  return join(runDir(instance), 'status.json');
}

export function writeStatusFile(instance: string, report: StatusReport): void {
  ensureDir(runDir(instance));
  writeFileAtomic(statusFilePath(instance), `${JSON.stringify(report, null, 2)}\n`);
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
