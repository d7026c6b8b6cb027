// status.md against hostile config-derived text (finding 9 of the hardening review): proxy names,
// error messages, file paths, pointers, refs, URLs and revisions that carry link, image, emphasis,
// math, HTML and code-span syntax must render as the text itself. No Markdown parser is installed,
// so the rendering is read by a small scanner that follows the CommonMark rules that matter here:
// backslash escapes, code spans (a run of n backticks closed by the next run of exactly n), and
// the characters that open a link, an image, emphasis, strikethrough, math or HTML.

import { describe, expect, it } from 'vitest';
import { renderStatusMarkdown } from '../../../src/report/index.js';
import { code, esc } from '../../../src/report/markdown.js';
import { sampleRuntimeStatus } from '../../lib/runtime-status-fixture.js';
import { sampleReport } from '../../lib/status-fixtures.js';

const HOSTILE = [
  '[Ready: applied](https://evil.example/ok)',
  '![badge](https://evil.example/ready.png)',
  '<a href="https://evil.example">Ready</a>',
  '<https://evil.example/autolink>',
  '**Ready**: _applied_ ~~Stalled~~',
  '$\\color{green}{\\text{Ready}}$',
  'x` [link](https://evil.example) `y',
  '`` ``` [link](https://evil.example) ` ``',
  '\\[escaped?](https://evil.example)',
  'a | b\n# Heading\n- [item](https://evil.example)',
];

interface Scan {
  /** Characters outside code spans that open inline syntax, unescaped. */
  openers: string[];
  /** The literal contents of the code spans. */
  spans: string[];
}

/** Walks one line of Markdown the way CommonMark reads inline syntax (what matters here of it). */
function scan(line: string): Scan {
  const openers: string[] = [];
  const spans: string[] = [];
  for (let i = 0; i < line.length; ) {
    const ch = line[i]!;
    if (ch === '\\' && i + 1 < line.length) {
      i += 2;
      continue;
    }
    if (ch === '`') {
      let n = 0;
      while (line[i + n] === '`') n++;
      // The span closes at the next run of exactly n backticks; without one, the run is literal text.
      let j = i + n;
      let close = -1;
      while (j < line.length) {
        if (line[j] === '`') {
          let m = 0;
          while (line[j + m] === '`') m++;
          if (m === n) {
            close = j;
            break;
          }
          j += m;
        } else j++;
      }
      if (close < 0) {
        openers.push('`'.repeat(n));
        i += n;
        continue;
      }
      let body = line.slice(i + n, close);
      if (body.length >= 2 && body.startsWith(' ') && body.endsWith(' ') && body.trim() !== '') body = body.slice(1, -1);
      spans.push(body);
      i = close + n;
      continue;
    }
    if (line.startsWith('<br>', i)) {
      i += 4; // lb's own line break inside a cell
      continue;
    }
    if ('[]<*_~$'.includes(ch)) openers.push(ch);
    i++;
  }
  return { openers, spans };
}

/** The report with every config-derived string set to `s`. */
function hostileReport(s: string): string {
  const runtime = sampleRuntimeStatus();
  for (const t of runtime.targets) {
    t.proxy = s;
    t.group = s;
    for (const b of t.backends) b.lastError = s;
  }
  for (const d of runtime.dns) {
    d.host = s;
    d.lastError = s;
  }
  return renderStatusMarkdown(
    sampleReport(s, {
      instance: s,
      source: { kind: 'git', url: s, ref: s, path: s },
      desiredRevision: s,
      result: 'stalled',
      conditions: [
        { type: 'Ready', status: 'False', reason: s, message: s, lastTransitionTime: '2024-05-01T10:00:00.000Z' },
        { type: 'Stalled', status: 'True', reason: s, message: s, lastTransitionTime: '2024-05-01T10:00:00.000Z' },
      ],
      errors: [{ code: 'LB_CONFIG_SCHEMA', message: s, file: s, line: 1, column: 2, pointer: s }],
      dataPlane: { mode: s, interfaces: [s], listeners: 1, targets: 1 },
      runtime,
    }),
  );
}

describe('status.md with hostile config-derived text', () => {
  for (const s of HOSTILE) {
    it(`renders ${JSON.stringify(s)} as text: no link, image, emphasis, math or HTML`, () => {
      const md = hostileReport(s);
      const lines = md.split('\n');
      // Only lb's own markup opens anything: the badge (**Stalled**) and the footer (_Generated ..._).
      for (const [n, line] of lines.entries()) {
        const own = line.startsWith('**Stalled**') ? ['*', '*', '*', '*'] : line.startsWith('_Generated ') ? ['_', '_'] : [];
        expect(scan(line).openers, `line ${n + 1}: ${line}`).toEqual(own);
      }
      // No hostile line break starts a block (a heading or a list item of its own).
      expect(lines.filter((l) => l.startsWith('# '))).toHaveLength(1);
      expect(lines.filter((l) => /^- \S/.test(l)).every((l) => /^- (Data paths|Interfaces|Listeners|Targets|Drift):/.test(l))).toBe(true);
      // Code spans hold the text as it was (GFM reads \| in a table cell as |).
      const flat = s.replace(/\r\n|\r|\n/g, ' ');
      const spans = lines.flatMap((l) => scan(l).spans).map((b) => b.replace(/\\\|/g, '|'));
      expect(spans).toContain(flat);
    });
  }

  it('esc and code keep ordinary text readable', () => {
    expect(esc('expected an integer 1..65535, got "eighty" (port)')).toBe('expected an integer 1..65535, got "eighty" (port)');
    expect(esc('a_b *c* [d]')).toBe('a\\_b \\*c\\* \\[d\\]');
    expect(code('env/prod/lb.yaml:12:7')).toBe('`env/prod/lb.yaml:12:7`');
    expect(code('a`b')).toBe('``a`b``');
    expect(code('`a`')).toBe('`` `a` ``');
  });
});
