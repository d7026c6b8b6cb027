// The log scrub is linear and bounded: a 200 KB string (a config key quoted in an error) once held
// one log.error for 26 s in the URL pattern, which rescanned the rest of "a-a-a-..." from every
// word boundary. Times are printed, never asserted; what is asserted is what the scrub returns.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, MAX_LOG_STRING, scrubSecrets } from '../../../src/observe/logger.js';

const HOSTILE: Record<string, string> = {
  'a-a-a- (every character a word boundary)': 'a-'.repeat(100_000),
  'a.a.a.': 'a.'.repeat(100_000),
  'scheme-like runs': 'x+y.z-'.repeat(34_000),
  'many "://"': 'a://'.repeat(50_000),
  '"://" then a long userinfo': `https://${'u:'.repeat(100_000)}`,
  'authorization: and whitespace': `authorization:${' '.repeat(200_000)}`,
  'token= repeated': 'token='.repeat(34_000),
};

describe('scrubSecrets on hostile input', () => {
  for (const [name, text] of Object.entries(HOSTILE)) {
    it(`${name}: ${text.length} characters, cut to the bound`, () => {
      const start = process.hrtime.bigint();
      const out = scrubSecrets(text);
      console.log(`scrubSecrets ${name}: ${(Number(process.hrtime.bigint() - start) / 1e6).toFixed(1)} ms`);
      expect(out.length).toBeLessThanOrEqual(MAX_LOG_STRING + 40);
      expect(out.endsWith(`... (${text.length} characters)`)).toBe(true);
    });
  }

  it('still redacts credentials, including one that straddles the cut', () => {
    expect(scrubSecrets('clone https://bob:hunter2@git.example.com/x.git')).toBe('clone https://[redacted]@git.example.com/x.git');
    expect(scrubSecrets('sent Authorization: Bearer abc.def and api_key=k1')).toBe('sent Authorization: Bearer [redacted] and api_key=[redacted]');
    const straddling = `${'.'.repeat(MAX_LOG_STRING - 20)} https://bob:hunter2hunter2hunter2@git.example.com/x.git ${'.'.repeat(1000)}`;
    expect(scrubSecrets(straddling)).not.toContain('hunter2');
  });

  it('one log.error with a 200 KB string writes a bounded line', () => {
    let written = '';
    const destination = new Writable({ write(chunk, _enc, cb) { written += String(chunk); cb(); } });
    const log = createLogger({ destination });
    const start = process.hrtime.bigint();
    log.error({ key: 'a-'.repeat(100_000) }, `config invalid: unknown key "${'a-'.repeat(100_000)}"`);
    console.log(`log.error with two 200 KB strings: ${(Number(process.hrtime.bigint() - start) / 1e6).toFixed(1)} ms`);
    const line = JSON.parse(written) as { msg: string; key: string };
    expect(line.msg.length).toBeLessThanOrEqual(MAX_LOG_STRING + 40);
    expect(line.key.length).toBeLessThanOrEqual(MAX_LOG_STRING + 40);
  });
});
