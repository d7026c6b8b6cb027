// lb's version: the `version` of the installation's package.json (packageRoot: src/ and dist/src/
// alike), read once. 'unknown' when the file has none.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from './package-root.js';

let cached: string | undefined;

export function lbVersion(): string {
  if (cached !== undefined) return cached;
  try {
    const v = (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version?: unknown }).version;
    cached = typeof v === 'string' ? v : 'unknown';
  } catch {
    cached = 'unknown';
  }
  return cached;
}
