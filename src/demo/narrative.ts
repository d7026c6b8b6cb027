// The demo's voice: numbered section headers, steps, indented blocks of command output, and
// results. Colour only when asked (a TTY without NO_COLOR); the text is the same either way, so a
// log or a test reads what a person sees.

export interface NarratorOptions {
  color: boolean;
  write?: (text: string) => void;
}

const CODES = { bold: '1', dim: '2', red: '31', green: '32', yellow: '33', blue: '34', cyan: '36' } as const;
type Style = keyof typeof CODES;

export class Narrator {
  private readonly color: boolean;
  private readonly write: (text: string) => void;
  private section = 0;
  private readonly started = Date.now();

  constructor(opts: NarratorOptions) {
    this.color = opts.color;
    this.write = opts.write ?? ((t) => { process.stdout.write(t); });
  }

  style(text: string, ...styles: Style[]): string {
    if (!this.color || styles.length === 0) return text;
    return `\x1b[${styles.map((s) => CODES[s]).join(';')}m${text}\x1b[0m`;
  }

  line(text = ''): void {
    this.write(`${text}\n`);
  }

  title(text: string): void {
    this.line(this.style(text, 'bold'));
  }

  /** `== 3. Start the daemon ====` with the time since the start. */
  header(title: string): void {
    this.section++;
    const label = `${this.section}. ${title}`;
    const elapsed = `${((Date.now() - this.started) / 1000).toFixed(1)}s`;
    const rule = '='.repeat(Math.max(3, 72 - label.length - elapsed.length - 6));
    this.line();
    this.line(`${this.style('==', 'blue')} ${this.style(label, 'bold')} ${this.style(rule, 'blue')} ${this.style(elapsed, 'dim')}`);
  }

  /** Something the demo does, as a sentence. */
  step(text: string): void {
    this.line(`${this.style('->', 'cyan')} ${text}`);
  }

  /** A command the demo runs, shown as shell lines (continuation lines indented). */
  command(text: string): void {
    text.split('\n').forEach((l, i) => this.line(`   ${this.style(`${i === 0 ? '$' : ' '} ${l}`, 'dim')}`));
  }

  ok(text: string): void {
    this.line(`${this.style('ok', 'green')} ${text}`);
  }

  warn(text: string): void {
    this.line(`${this.style('!!', 'yellow')} ${text}`);
  }

  fail(text: string): void {
    this.line(`${this.style('FAILED', 'red', 'bold')} ${text}`);
  }

  /** Indented text: output of a command, a file; with `plan`, the +/~/- signs are coloured. */
  block(text: string, opts: { plan?: boolean; indent?: string } = {}): void {
    const indent = opts.indent ?? '   ';
    for (const raw of text.replace(/\n+$/, '').split('\n')) this.line(`${indent}${opts.plan ? this.colourPlanLine(raw) : raw}`);
  }

  note(text: string): void {
    this.line(this.style(`   ${text}`, 'dim'));
  }

  private colourPlanLine(line: string): string {
    if (!this.color) return line;
    const m = /^(\s*)([+~-])(\s.*)$/.exec(line);
    if (!m) return line;
    const colour: Style = m[2] === '+' ? 'green' : m[2] === '-' ? 'red' : 'yellow';
    return `${m[1]}${this.style(m[2]!, colour)}${m[3]}`;
  }
}

/** A long command as shell lines joined by `\`, keeping each `--flag value` together. */
export function wrapCommand(argv: readonly string[], width = 88): string {
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    if (a.startsWith('--') && !a.includes('=') && next !== undefined && !next.startsWith('--')) {
      words.push(`${a} ${next}`);
      i++;
    } else words.push(a);
  }
  const lines: string[] = [];
  let cur = '';
  for (const w of words) {
    if (cur !== '' && cur.length + 1 + w.length > width) {
      lines.push(cur);
      cur = `    ${w}`;
    } else cur = cur === '' ? w : `${cur} ${w}`;
  }
  if (cur !== '') lines.push(cur);
  return lines.map((l, i) => (i < lines.length - 1 ? `${l} \\` : l)).join('\n');
}
