/**
 * A strict parser of the Prometheus text exposition format (version 0.0.4),
 * for tests: `# HELP` and `# TYPE` lines, samples with labels (escaped label
 * values), values including NaN and ±Inf, optional timestamps. Anything
 * malformed throws, naming the line, so a broken `/metrics` fails the test
 * rather than parsing to something partial. It also checks what a scraper
 * relies on: one TYPE and one HELP per family, each before its samples, the
 * family's lines together, no duplicate series, and histograms whose buckets
 * are cumulative, end at `le="+Inf"` and agree with `_count`.
 */

/** One sample line. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A metric family: its HELP, its TYPE and its samples. */
export interface Family {
  name: string;
  help: string | null;
  type: string | null;
  samples: Sample[];
}

/** A parsed exposition. */
export interface Exposition {
  families: Map<string, Family>;
  /** Every sample, in order. */
  samples: Sample[];
}

const MetricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LabelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const Types = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const Suffixes: Record<string, string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['_sum', '_count'] };

function parseValue(text: string, where: string): number {
  if (/^[+-]?inf$/i.test(text)) return text.startsWith('-') ? -Infinity : Infinity;
  if (/^nan$/i.test(text)) return NaN;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) throw new Error(`${where}: ${JSON.stringify(text)} is not a number`);
  return Number(text);
}

/** HELP text with its escapes (`\\` and `\n` only) undone. */
function unescapeHelp(text: string, where: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== '\\') {
      out += text[i];
      continue;
    }
    const next = text[++i];
    if (next === '\\') out += '\\';
    else if (next === 'n') out += '\n';
    else throw new Error(`${where}: bad escape \\${next ?? ''} in HELP`);
  }
  return out;
}

/** Parse `{a="x",b="y\"z"}` starting at `text[start] === '{'`; returns the labels and the index after `}`. */
function parseLabels(text: string, start: number, where: string): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let i = start + 1;
  for (;;) {
    if (text[i] === '}') return { labels, end: i + 1 };
    const eq = text.indexOf('=', i);
    if (eq < 0) throw new Error(`${where}: label without "="`);
    const name = text.slice(i, eq).trim();
    if (!LabelName.test(name)) throw new Error(`${where}: bad label name ${JSON.stringify(name)}`);
    if (name in labels) throw new Error(`${where}: label ${name} twice`);
    if (text[eq + 1] !== '"') throw new Error(`${where}: label ${name}'s value is not quoted`);
    let value = '';
    let j = eq + 2;
    for (;; j++) {
      const c = text[j];
      if (c === undefined) throw new Error(`${where}: unterminated value of label ${name}`);
      if (c === '"') break;
      if (c === '\\') {
        const next = text[++j];
        if (next === '\\') value += '\\';
        else if (next === '"') value += '"';
        else if (next === 'n') value += '\n';
        else throw new Error(`${where}: bad escape \\${next ?? ''} in label ${name}`);
      } else value += c;
    }
    labels[name] = value;
    i = j + 1;
    if (text[i] === ',') i++;
    else if (text[i] !== '}') throw new Error(`${where}: expected "," or "}" after label ${name}`);
  }
}

/** The family a sample named `name` belongs to, given the TYPEs declared so far. */
function familyOf(name: string, families: Map<string, Family>): string {
  for (const [type, suffixes] of Object.entries(Suffixes)) {
    for (const suffix of suffixes) {
      if (!name.endsWith(suffix)) continue;
      const base = name.slice(0, -suffix.length);
      if (families.get(base)?.type === type) return base;
    }
  }
  return name;
}

function seriesKey(sample: Sample): string {
  return `${sample.name}${JSON.stringify(Object.entries(sample.labels).sort(([a], [b]) => (a < b ? -1 : 1)))}`;
}

function checkHistogram(family: Family): void {
  const groups = new Map<string, { buckets: [number, number][]; count?: number }>();
  const keyOf = (labels: Record<string, string>): string => JSON.stringify(Object.entries(labels).filter(([k]) => k !== 'le').sort(([a], [b]) => (a < b ? -1 : 1)));
  for (const s of family.samples) {
    const group = groups.get(keyOf(s.labels)) ?? { buckets: [] };
    groups.set(keyOf(s.labels), group);
    if (s.name === `${family.name}_bucket`) {
      if (s.labels.le === undefined) throw new Error(`histogram ${family.name}: a bucket without "le"`);
      group.buckets.push([parseValue(s.labels.le, `histogram ${family.name} le`), s.value]);
    } else if (s.name === `${family.name}_count`) group.count = s.value;
    else if (s.name !== `${family.name}_sum`) throw new Error(`histogram ${family.name}: unexpected sample ${s.name}`);
  }
  for (const [key, { buckets, count }] of groups) {
    const sorted = [...buckets].sort((a, b) => a[0] - b[0]);
    if (sorted.at(-1)?.[0] !== Infinity) throw new Error(`histogram ${family.name}${key}: no le="+Inf" bucket`);
    for (let i = 1; i < sorted.length; i++) if (sorted[i]![1] < sorted[i - 1]![1]) throw new Error(`histogram ${family.name}${key}: buckets are not cumulative`);
    if (count !== sorted.at(-1)![1]) throw new Error(`histogram ${family.name}${key}: _count ${count} differs from the +Inf bucket ${sorted.at(-1)![1]}`);
  }
}

/** Parse `text`; throws on the first malformed line. */
export function parsePrometheusText(text: string): Exposition {
  if (text !== '' && !text.endsWith('\n')) throw new Error('the exposition does not end with a newline');
  const families = new Map<string, Family>();
  const samples: Sample[] = [];
  const seen = new Set<string>();
  /** Families whose lines are over (another family's line came after them). */
  const closed = new Set<string>();
  let current: string | null = null;
  const enter = (name: string, where: string): Family => {
    if (current !== name) {
      if (closed.has(name)) throw new Error(`${where}: the lines of ${name} are not together`);
      if (current !== null) closed.add(current);
      current = name;
    }
    let family = families.get(name);
    if (family === undefined) {
      family = { name, help: null, type: null, samples: [] };
      families.set(name, family);
    }
    return family;
  };
  const lines = text.split('\n');
  lines.pop();
  lines.forEach((line, index) => {
    const where = `line ${index + 1} (${JSON.stringify(line.slice(0, 80))})`;
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line);
      if (m === null) return; // any other comment
      const [, keyword, name, rest = ''] = m as unknown as [string, string, string, string | undefined];
      if (!MetricName.test(name)) throw new Error(`${where}: bad metric name`);
      const family = enter(name, where);
      if (keyword === 'HELP') {
        if (family.help !== null) throw new Error(`${where}: second HELP for ${name}`);
        family.help = unescapeHelp(rest, where);
      } else {
        if (family.type !== null) throw new Error(`${where}: second TYPE for ${name}`);
        if (family.samples.length > 0) throw new Error(`${where}: TYPE for ${name} after its samples`);
        if (!Types.has(rest.trim())) throw new Error(`${where}: unknown type ${JSON.stringify(rest)}`);
        family.type = rest.trim();
      }
      return;
    }
    const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
    if (nameMatch === null) throw new Error(`${where}: not a sample, HELP, TYPE or comment`);
    const name = nameMatch[0];
    let rest = line.slice(name.length);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) {
      const parsed = parseLabels(line, name.length, where);
      labels = parsed.labels;
      rest = line.slice(parsed.end);
    }
    const fields = rest.trim().split(/\s+/);
    if (!/^\s/.test(rest) || fields.length < 1 || fields.length > 2 || fields[0] === '') throw new Error(`${where}: expected "value [timestamp]" after the name and labels`);
    if (fields.length === 2 && !/^-?\d+$/.test(fields[1]!)) throw new Error(`${where}: bad timestamp`);
    const sample: Sample = { name, labels, value: parseValue(fields[0]!, where) };
    const family = enter(familyOf(name, families), where);
    const key = seriesKey(sample);
    if (seen.has(key)) throw new Error(`${where}: duplicate series`);
    seen.add(key);
    family.samples.push(sample);
    samples.push(sample);
  });
  for (const family of families.values()) if (family.type === 'histogram') checkHistogram(family);
  return { families, samples };
}

/** The value of the one sample named `name` whose labels include `labels`; undefined when none; throws when several match. */
export function sampleValue(exposition: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  const matches = exposition.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (matches.length > 1) throw new Error(`${matches.length} samples of ${name} match ${JSON.stringify(labels)}; name more labels`);
  return matches[0]?.value;
}
