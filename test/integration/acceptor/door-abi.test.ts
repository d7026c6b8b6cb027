// native/lb_door_abi.h against its mirror, src/acceptor/door-abi.ts: a C program generated from the
// TS layout table is compiled against the header (a field the header lacks fails the build) and
// prints every size, offset and constant as the compiler lays them out; the test compares.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BATCH_MS, BY, DOOR_ABI, DoorRec, END_REASONS, HELD_DECIDED, HELLO_EOF, HELLO_FULL, Layout, MAX_REC, MAX_TABLE, STATS_MS } from '../../../src/acceptor/door-abi.js';

const HEADER_DIR = join(import.meta.dirname, '..', '..', '..', 'native');
const dir = mkdtempSync(join(tmpdir(), 'lb-door-abi-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The C side's figures under the same names as the TS side's. */
function compiled(): Record<string, number> {
  const lines: string[] = [];
  for (const [struct, fields] of Object.entries(Layout)) {
    for (const field of Object.keys(fields)) {
      const expr = field === 'size' ? `sizeof(struct ${struct})` : `offsetof(struct ${struct}, ${field})`;
      lines.push(`printf("\\"${struct}.${field}\\": %zu,\\n", (size_t)${expr});`);
    }
  }
  const constants: Record<string, string> = {
    ...Object.fromEntries(Object.keys(DoorRec).map((k) => [`DoorRec.${k}`, `LB_DOOR_${k}`])),
    HELLO_EOF: 'LB_DOOR_F_EOF', HELLO_FULL: 'LB_DOOR_F_FULL', HELD_DECIDED: 'LB_DOOR_F_DECIDED', STATS_MS: 'LB_DOOR_STATS_MS', BATCH_MS: 'LB_DOOR_BATCH_MS', MAX_REC: 'LB_DOOR_MAX_REC', MAX_TABLE: 'LB_DOOR_MAX_TABLE', DOOR_ABI: 'LB_DOOR_ABI',
    'END.closed': 'LB_DOOR_END_CLOSED', 'END.reset': 'LB_DOOR_END_RESET', 'END.idle': 'LB_DOOR_END_IDLE',
    'BY.client': 'LB_DOOR_BY_CLIENT', 'BY.backend': 'LB_DOOR_BY_BACKEND',
  };
  for (const [name, macro] of Object.entries(constants)) lines.push(`printf("\\"${name}\\": %lld,\\n", (long long)(${macro}));`);
  const src = join(dir, 'abi.c');
  writeFileSync(src, `#include <stddef.h>\n#include <stdio.h>\n#include "lb_door_abi.h"\nint main(void) {\nprintf("{\\n");\n${lines.join('\n')}\nprintf("\\"end\\": 0}\\n");\nreturn 0;\n}\n`);
  const bin = join(dir, 'abi');
  execFileSync('clang', ['-Wall', '-Werror', '-I', HEADER_DIR, '-o', bin, src]);
  return JSON.parse(execFileSync(bin, { encoding: 'utf8' })) as Record<string, number>;
}

describe('the native front door\'s ABI', () => {
  it('lays out every record as src/acceptor/door-abi.ts reads and writes it, with the same constants', () => {
    const c = compiled();
    const expected: Record<string, number> = {};
    for (const [struct, fields] of Object.entries(Layout)) for (const [field, at] of Object.entries(fields)) expected[`${struct}.${field}`] = at;
    for (const [k, v] of Object.entries(DoorRec)) expected[`DoorRec.${k}`] = v;
    Object.assign(expected, { HELLO_EOF, HELLO_FULL, HELD_DECIDED, STATS_MS, BATCH_MS, MAX_REC, MAX_TABLE, DOOR_ABI });
    for (const r of END_REASONS) expected[`END.${r}`] = END_REASONS.indexOf(r);
    expected['BY.client'] = BY.indexOf('client');
    expected['BY.backend'] = BY.indexOf('backend');
    const { end: _end, ...got } = c;
    expect(got).toEqual(expected);
  });
});
