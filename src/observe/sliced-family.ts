// A metric family of many series whose exposition text is written in steps (a generator that
// yields every few hundred lines), so the daemon renders it in slices with turns of the event
// loop between them (src/runtime/slices.ts). prom-client's registry renders every family in one
// task: with 10,000 proxies the per-backend families took ~0.35 s of the daemon's thread.
//
// The lines are what prom-client's registry writes (registry.js getMetricsAsString: `# HELP`,
// `# TYPE`, one `name{label="value",...} value` per series, the same escapes and number text), and
// get() answers the registry like any metric, so registry.metrics() and getMetricsAsJSON() see it too.

export interface FamilySeries {
  /** Defaults to the family's name (a histogram's series are name_bucket, name_sum, name_count). */
  metricName?: string;
  labels: Readonly<Record<string, string | number>>;
  value: number;
}

export type FamilyType = 'counter' | 'gauge' | 'histogram';

/** Series per step of text(): ~1-2 ms of string building. */
const SERIES_PER_STEP = 500;

export class SlicedFamily {
  readonly aggregator = 'sum';

  constructor(readonly name: string, readonly help: string, readonly type: FamilyType, private readonly series: () => Iterable<FamilySeries>) {}

  /** prom-client's metric interface (registry.metrics(), getMetricsAsJSON()). */
  get(): { name: string; help: string; type: FamilyType; aggregator: string; values: FamilySeries[] } {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: [...this.series()] };
  }

  /** Nothing to reset: the series are read from their source at every scrape. */
  reset(): void {}

  /** The family's exposition text (no trailing newline, as prom-client's), in steps. */
  *text(): Generator<void, string> {
    const name = escapeString(this.name);
    const lines = [`# HELP ${name} ${escapeString(this.help)}`, `# TYPE ${name} ${this.type}`];
    let n = 0;
    for (const s of this.series()) {
      lines.push(seriesLine(s.metricName ?? name, s.labels, s.value));
      if (++n % SERIES_PER_STEP === 0) yield;
    }
    return lines.join('\n');
  }
}

function seriesLine(metricName: string, labels: Readonly<Record<string, string | number>>, value: number): string {
  let text = metricName;
  let first = true;
  for (const label in labels) {
    const v = labels[label]!;
    text += `${first ? '{' : ','}${label}="${typeof v === 'string' ? escapeLabelValue(v) : v}"`;
    first = false;
  }
  return `${first ? text : `${text}}`} ${valueText(value)}`;
}

function valueText(value: number): string {
  if (Number.isNaN(value)) return 'Nan'; // sic: prom-client's spelling
  if (!Number.isFinite(value)) return value < 0 ? '-Inf' : '+Inf';
  return `${value}`;
}

/** Most label values (addresses, proxy names) need no escape: tested once, not replaced three times. */
function escapeLabelValue(s: string): string {
  return NEEDS_ESCAPE.test(s) ? escapeString(s).replace(/"/g, '\\"') : s;
}

const NEEDS_ESCAPE = /[\\\n"]/;

function escapeString(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}
