// Writes docs/errors.md from the error registry (src/core/errors.ts via dist). Run: make errors-doc
import { writeFileSync } from 'node:fs';
import { ERROR_CODES } from '../dist/src/core/errors.js';

const areas = {
  BPF: 'Data plane (BPF objects, maps, attachments)', NET: 'Network interfaces', SANDBOX: 'Sandbox topology',
  STATE: 'Pinned state', PERMISSION: 'Permissions', INSTANCE: 'Instances', CONFIG: 'Config', COMPILE: 'Compile', APPLY: 'Apply',
  SOURCE: 'Git and file sources', WEBHOOK: 'Webhooks', REPORT: 'Status reports', DAEMON: 'Daemon',
  RUNTIME: 'Runtime services (health, drain, breaker, DNS)',
};
const byArea = new Map();
for (const [code, text] of Object.entries(ERROR_CODES)) {
  const area = code.split('_')[1];
  if (!byArea.has(area)) byArea.set(area, []);
  byArea.get(area).push([code, text]);
}
let out = '# Error codes\n\nEvery error lb reports carries one of these codes (`err.code`, and `code` in JSON output and\nstatus reports). The registry is `src/core/errors.ts`; this page is generated from it by\n`make errors-doc`, and `test/unit/errors.test.ts` fails when the two disagree.\n';
for (const [area, rows] of byArea) {
  out += `\n## ${areas[area] ?? area}\n\n| code | meaning |\n|---|---|\n`;
  for (const [code, text] of rows) out += `| \`${code}\` | ${text.replace(/\|/g, '\\|')} |\n`;
}
writeFileSync(new URL('../docs/errors.md', import.meta.url), out);
console.log(`docs/errors.md: ${Object.keys(ERROR_CODES).length} codes`);
