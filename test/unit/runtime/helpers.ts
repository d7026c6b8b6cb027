import { checkConfig } from '../../../src/core/config/index.js';
import type { LbConfig } from '../../../src/core/config/types.js';

export function config(text: string): LbConfig {
  const result = checkConfig([{ file: 'lb.yaml', text }]);
  if (!result.ok) throw new Error(result.diagnostics.map((d) => d.message).join('\n'));
  return result.config;
}
