// JSON.stringify of a large value (the status report of 10,000 proxies: megabytes) in pieces, with
// a turn of the event loop between pieces, so the daemon's endpoints answer while it is written.
// Compact output, the same text JSON.stringify(value) gives: toJSON is called, undefined and
// functions are left out of objects and are null in arrays. Only objects and long arrays are taken
// apart; anything else (a short array, an element without a long array in it) is one
// JSON.stringify call: walking every small value here would cost several times the stringify.

/** Characters between two turns of the event loop: about a millisecond of stringify each. */
const PIECE_CHARS = 64 * 1024;

export async function stringifyYielding(value: unknown, pause: () => Promise<void>): Promise<string> {
  const out: string[] = [];
  let since = 0;
  for (const piece of pieces(value)) {
    out.push(piece);
    since += piece.length;
    if (since >= PIECE_CHARS) {
      since = 0;
      await pause();
    }
  }
  return out.join('');
}

function isPlain(v: object): boolean {
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Arrays at least this long are taken apart, element by element. */
const LONG = 32;

/** Worth taking apart: a long array, or a plain object holding one (directly, or in a plain object). */
function large(v: unknown, depth = 0): boolean {
  if (Array.isArray(v)) return v.length >= LONG;
  if (v === null || typeof v !== 'object' || !isPlain(v) || depth > 1) return false;
  for (const x of Object.values(v)) if (large(x, depth + 1)) return true;
  return false;
}

/** The JSON text of `v` in pieces; nothing for a value JSON leaves out (undefined, a function). */
function* pieces(v: unknown): Generator<string> {
  if (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function') v = (v as { toJSON(): unknown }).toJSON();
  if (!large(v)) {
    const text = JSON.stringify(v) as string | undefined;
    if (text !== undefined) yield text;
    return;
  }
  if (Array.isArray(v)) {
    yield '[';
    for (let i = 0; i < v.length; i++) {
      if (i > 0) yield ',';
      let any = false;
      for (const p of pieces(v[i])) {
        any = true;
        yield p;
      }
      if (!any) yield 'null';
    }
    yield ']';
    return;
  }
  if (v !== null && typeof v === 'object' && isPlain(v)) {
    yield '{';
    let first = true;
    for (const [k, x] of Object.entries(v)) {
      let started = false;
      for (const p of pieces(x)) {
        if (!started) {
          yield `${first ? '' : ','}${JSON.stringify(k)}:`;
          first = false;
          started = true;
        }
        yield p;
      }
    }
    yield '}';
    return;
  }
  // A large value is an array or a plain object (large()).
  throw new Error('json-yielding: unreachable');
}
