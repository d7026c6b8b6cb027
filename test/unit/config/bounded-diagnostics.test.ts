// Whatever a config holds, its diagnostics are few, short and inert: at most MAX_DIAGNOSTICS and a
// closing "and N more", every quoted key or value cut to about MAX_ECHO_CHARS, and no character
// that could steer a terminal or split a line. Checked on the diagnostics themselves, so the
// terminal, the logs, the status branch and /readyz all get the same.
import { describe, expect, it } from 'vitest';
import { boundDiagnostic, capDiagnostics, countErrors } from '../../../src/core/config/bound-diagnostics.js';
import { ConfigError } from '../../../src/core/config/config-error.js';
import { formatDiagnostic, formatDiagnostics, MORE_DIAGNOSTICS_CODE, type Diagnostic } from '../../../src/core/config/diagnostics.js';
import { echo } from '../../../src/core/config/echo.js';
import { MAX_DIAGNOSTICS, MAX_ECHO_CHARS, MAX_MESSAGE_CHARS } from '../../../src/core/config/limits.js';
import { lastDuplicate } from '../../../src/core/config/unique-items.js';
import { checkText } from './helpers.js';

/** C0, DEL, C1 and the bidirectional and line-separator controls echo.ts escapes. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point: none may survive the escaping
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

function rejected(file: string, text: string): Diagnostic[] {
  const result = checkText(file, text);
  if (result.ok) throw new Error('expected the config to be rejected');
  return result.diagnostics;
}

/** Every text field of every diagnostic is bounded and free of unsafe characters. */
function expectBounded(list: readonly Diagnostic[]): void {
  expect(list.length).toBeLessThanOrEqual(MAX_DIAGNOSTICS + 1);
  for (const d of list) {
    for (const text of [d.file, d.pointer, d.message, d.expected ?? '', formatDiagnostic(d)]) expect(text).not.toMatch(UNSAFE);
    expect(d.message.length).toBeLessThanOrEqual(MAX_MESSAGE_CHARS);
    for (const token of d.pointer.split('/')) expect(token.length).toBeLessThanOrEqual(MAX_ECHO_CHARS);
  }
}

const PROXY = '{name: a, listen: {interfaces: [eth0], port: 80}, default-target: [{ip: 10.0.0.1, port: 80}]}';

describe('echo', () => {
  it('escapes terminal controls, bidirectional controls and line breaks', () => {
    expect(echo('\u001b[31mred\u001b[0m')).toBe('\\u001b[31mred\\u001b[0m');
    expect(echo('a\nb\rc\u0007\u009b\u202e\u2028')).toBe('a\\u000ab\\u000dc\\u0007\\u009b\\u202e\\u2028');
    expect(echo('plain text, ünïcode and 😀')).toBe('plain text, ünïcode and 😀');
  });

  it('cuts long text to the bound, says how long it was, and leaves bounded text as it is', () => {
    const long = 'a-'.repeat(100_000);
    const once = echo(long);
    expect(once.length).toBeLessThanOrEqual(MAX_ECHO_CHARS);
    expect(once).toMatch(/^a-a-.*\.\.\. \(200000 characters\)$/);
    expect(echo(once)).toBe(once);
    const escapes = echo('\u001b'.repeat(1000));
    expect(escapes.length).toBeLessThanOrEqual(MAX_ECHO_CHARS);
    expect(escapes).not.toMatch(UNSAFE);
    expect(echo(escapes)).toBe(escapes);
  });

  it('does not split a surrogate pair at the cut', () => {
    const cut = echo('😀'.repeat(500));
    expect(cut).not.toMatch(/[\ud800-\udbff](?![\udc00-\udfff])/);
  });
});

describe('bounded diagnostics from hostile configs', () => {
  it('an unknown key holding terminal escapes is quoted escaped, at its usual position', () => {
    const list = rejected('lb.yaml', `proxies:\n  - ${PROXY}\nsettings:\n  "\\e[31mred\\e]0;pwned\\a\\e[0m": 1\n`);
    expectBounded(list);
    expect(formatDiagnostics(list)).toBe(
      'lb.yaml:4:3: /settings/\\u001b[31mred\\u001b]0;pwned\\u0007\\u001b[0m: unknown key "\\u001b[31mred\\u001b]0;pwned\\u0007\\u001b[0m"; ' +
        'expected one of the keys stats-enabled, connection-timeout-sec, udp-timeout-sec, max-connections, max-sni-routes, health-check-enabled, ' +
        'health-check-defaults, default-drain-timeout-ms, drain-check-interval-ms, rate-limits, circuit-breaker, load-balancing, metrics, access-log',
    );
  });

  it('a 200 KB keyword is quoted in at most about 200 characters', () => {
    const list = rejected('lb.edn', `{:proxies [] :settings {:${'a-'.repeat(100_000)}x 1}}`);
    expectBounded(list);
    const line = formatDiagnostics(list);
    expect(line.length).toBeLessThan(1000);
    expect(line).toContain('... (200001 characters)');
    expect(list[0]).toMatchObject({ line: 1, column: 25 });
  });

  it('a 200 KB value and a 200 KB set member are cut too', () => {
    expectBounded(rejected('lb.yaml', `proxies:\n  - {name: a, listen: {interfaces: [eth0], port: 80, protocol: "${'a-'.repeat(100_000)}"}, default-target: [{ip: 10.0.0.1, port: 80}]}\n`));
    const big = 'x'.repeat(200_000);
    const list = rejected('lb.edn', `{:proxies [] :settings {:x #{"${big}" "${big}"}}}`);
    expectBounded(list);
    expect(list[0]!.message).toMatch(/^duplicate set element "x+\.\.\. \(200002 characters\)$/);
  });

  it('20k invalid proxies give 100 diagnostics and one that counts the rest', () => {
    const text = `{:proxies [${Array.from({ length: 20_000 }, (_, i) => `{:name "p${i}" :listen {:interfaces ["eth0"] :port "x"} :default-target [{:ip "10.0.0.1" :port 80}]}`).join(' ')}]}`;
    const list = rejected('lb.edn', text);
    expectBounded(list);
    expect(list).toHaveLength(MAX_DIAGNOSTICS + 1);
    expect(list[0]!.pointer).toBe('/proxies/0/listen/port');
    const more = list[MAX_DIAGNOSTICS]!;
    expect(more).toMatchObject({ code: MORE_DIAGNOSTICS_CODE, severity: 'error', file: 'lb.edn', line: 1 });
    expect(formatDiagnostic(more)).toMatch(/^lb\.edn:1:\d+: and 19900 more errors \(only the first 100 diagnostics are listed\)$/);
    expect(countErrors(list)).toBe(20_000);
    const err = new ConfigError('schema', list);
    expect(err.errorCount).toBe(20_000);
    expect(err.message.split('\n')[0]).toBe('config invalid: 20000 errors');
    expect(err.message.split('\n')).toHaveLength(MAX_DIAGNOSTICS + 2);
  });

  it('40k unknown settings keys are capped the same way', () => {
    const text = `{:proxies [] :settings {${Array.from({ length: 40_000 }, (_, i) => `:unknown-key-${i} 1`).join(' ')}}}`;
    const list = rejected('lb.edn', text);
    expectBounded(list);
    expect(list).toHaveLength(MAX_DIAGNOSTICS + 1);
    expect(countErrors(list)).toBe(40_000);
  });

  it('targets lacking ip and host each say so once (the anyOf branches are dropped)', () => {
    const targets = Array.from({ length: 3 }, (_, i) => `{:port ${80 + i}}`).join(' ');
    const list = rejected('lb.edn', `{:proxies [{:name "a" :listen {:interfaces ["eth0"] :port 80} :default-target [${targets}]}]}`);
    expect(list.map((d) => `${d.pointer}: ${d.message}`)).toEqual([0, 1, 2].map((i) => `/proxies/0/default-target/${i}: a target needs ip (an IPv4 address) or host (a DNS name)`));
  });
});

describe('capDiagnostics and boundDiagnostic', () => {
  const at = (i: number, severity: Diagnostic['severity'] = 'error'): Diagnostic => ({ severity, stage: 'semantic', file: 'lb.yaml', pointer: `/p/${i}`, line: i + 1, column: 1, message: `problem ${i}` });

  it('keeps errors before warnings, counts the rest, and is idempotent', () => {
    const list = [...Array.from({ length: 150 }, (_, i) => at(i, 'warning')), ...Array.from({ length: 120 }, (_, i) => at(200 + i))];
    const capped = capDiagnostics(list);
    expect(capped).toHaveLength(MAX_DIAGNOSTICS + 1);
    expect(capped.slice(0, MAX_DIAGNOSTICS).every((d) => d.severity === 'error')).toBe(true);
    expect(capped[MAX_DIAGNOSTICS]!.omitted).toEqual({ errors: 20, warnings: 150 });
    expect(capped[MAX_DIAGNOSTICS]!.message).toBe('and 20 more errors and 150 more warnings (only the first 100 diagnostics are listed)');
    expect(capDiagnostics(capped)).toEqual(capped);
    expect(capDiagnostics(capped.map(boundDiagnostic)).map(boundDiagnostic)).toEqual(capped);
    expect(countErrors(capped)).toBe(120);
  });

  it('leaves a short list alone', () => {
    const list = [at(1), at(2, 'warning')];
    expect(capDiagnostics(list)).toEqual(list);
    expect(list.map(boundDiagnostic)).toEqual(list);
  });

  it('bounds diagnostics built outside the checks too (ConfigError)', () => {
    const err = new ConfigError('io', [{ severity: 'error', stage: 'io', file: `dir/\u001b]0;x\u0007.yaml`, pointer: '', message: `cannot read: ${'z'.repeat(5000)}` }]);
    expectBounded(err.diagnostics);
    for (const line of err.message.split('\n')) expect(line).not.toMatch(UNSAFE);
  });
});

describe('uniqueItems in linear time', () => {
  it('reports the pair ajv reported: the last repeat and its nearest earlier copy', () => {
    expect(lastDuplicate(['a', 'b', 'b', 'a'])).toEqual({ i: 3, j: 0 });
    expect(lastDuplicate(['x', 5, 5])).toEqual({ i: 2, j: 1 });
    expect(lastDuplicate([1, '1', true, 'true', null, 'null'])).toBeUndefined();
    expect(lastDuplicate([{ a: 1, b: [2] }, { b: [2], a: 1 }])).toEqual({ i: 1, j: 0 });
    expect(lastDuplicate(['__proto__', 'constructor', '__proto__'])).toEqual({ i: 2, j: 0 });
  });

  it('a repeated interface is reported at the repeat, with the index of the first', () => {
    const list = rejected('lb.yaml', 'proxies:\n  - name: a\n    listen: {interfaces: [eth0, eth1, eth1, eth0], port: 80}\n    default-target: [{ip: 10.0.0.1, port: 80}]\n');
    expect(formatDiagnostics(list)).toBe('lb.yaml:3:45: /proxies/0/listen/interfaces/3: "eth0" appears twice in this list (first at index 0)');
  });
});
