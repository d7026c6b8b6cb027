// lb's version, from the package.json of the installation (src/ or dist/src/ alike).

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

export function lbVersion(): string {
  if (cached !== undefined) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      try {
        const v = (JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown }).version;
        cached = typeof v === 'string' ? v : 'unknown';
      } catch {
        cached = 'unknown';
      }
      return cached;
    }
    dir = dirname(dir);
  }
  cached = 'unknown';
  return cached;
}
