// Text from a config (a key, a value, a token, a file name) as a diagnostic may quote it: at most
// a bounded number of characters, with every character that could steer a terminal or split a
// line escaped. Linear in the bound, whatever the length of the text.

import { MAX_ECHO_CHARS } from './limits.js';

/**
 * C0 controls (ESC starts terminal sequences, CR and LF split lines), DEL, C1 controls (U+009B is
 * a one-character CSI), the line and paragraph separators, and the bidirectional controls that
 * can make a line read differently from what it holds.
 */
function isUnsafe(code: number): boolean {
  return (
    code <= 0x1f ||
    (code >= 0x7f && code <= 0x9f) ||
    code === 0x061c ||
    code === 0x200e ||
    code === 0x200f ||
    code === 0x2028 ||
    code === 0x2029 ||
    (code >= 0x202a && code <= 0x202e) ||
    (code >= 0x2066 && code <= 0x2069)
  );
}

/** `\u001b` for ESC: the JSON / JavaScript spelling, readable and inert everywhere. */
function escapeCode(code: number): string {
  return `\\u${code.toString(16).padStart(4, '0')}`;
}

/**
 * `text` with unsafe characters escaped, cut to at most `max` characters (the cut ends in
 * "... (N characters)"). Idempotent: bounded text comes back unchanged, so every layer that
 * receives a diagnostic may bound it again.
 */
export function echo(text: string, max: number = MAX_ECHO_CHARS): string {
  const whole = escapedPrefix(text, max);
  if (whole.consumed === text.length && whole.out.length <= max) return whole.out;
  const marker = `... (${text.length} characters)`;
  return `${escapedPrefix(text, Math.max(0, max - marker.length)).out}${marker}`;
}

/** Escapes `text` from its start until the result reaches `budget` characters. */
function escapedPrefix(text: string, budget: number): { out: string; consumed: number } {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const code = text.charCodeAt(i);
    const piece = isUnsafe(code) ? escapeCode(code) : isHighSurrogate(code) && i + 1 < text.length ? text.slice(i, i + 2) : text[i]!;
    if (out.length + piece.length > budget) break;
    out += piece;
    i += isUnsafe(code) ? 1 : piece.length;
  }
  return { out, consumed: i };
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}
