// Paired alternating slices, shared by bench/ab.mjs (HTTP) and bench/ab-tls.mjs (new TLS
// connections): A and B run side by side on the proxy core; each pair measures A then B (B then
// A on odd pairs, so neither always follows the other), seconds apart, so the slow drift of a
// shared VM falls out of the per-pair ratio, and the median of those ratios is the answer.
// A pair may have several steps (ab-tls: full, then resumed handshakes), each its own pair of
// slices and its own ratio.

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return Number.NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/**
 * Run `pairs` pairs of slices: for each pair and each of `steps` (default one unnamed step),
 * `measure(target, step)` on A and on B in alternating order. `metric` names the field of a
 * measurement the ratio is taken of; `show(m)` formats one measurement for the progress line,
 * which ends in the pair's `key` ratio (`ratio` B ÷ A, or `inverse` A ÷ B). Returns { [step]: [{ a, b, ratio: b/a, inverse: a/b }] }.
 */
export async function pairedSlices({
  a,
  b,
  pairs,
  steps = [''],
  measure,
  metric,
  show,
  key = 'ratio',
  log = console.log,
}) {
  const rows = Object.fromEntries(steps.map((s) => [s, []]));
  for (let i = 0; i < pairs; i++)
    for (const step of steps) {
      const order = i % 2 === 0 ? [a, b] : [b, a];
      const m = new Map();
      for (const t of order) m.set(t, await measure(t, step));
      const [ma, mb] = [m.get(a), m.get(b)];
      const row = { a: ma, b: mb, ratio: mb[metric] / ma[metric], inverse: ma[metric] / mb[metric] };
      rows[step].push(row);
      log(
        `pair ${i + 1}/${pairs}${step ? ` ${step}` : ''}: ${a.name} ${show(ma)}, ${b.name} ${show(mb)}, ${key === 'ratio' ? 'ratio' : `${a.name} ÷ ${b.name}`} ${row[key].toFixed(3)}`,
      );
    }
  return rows;
}

const r3 = (x) => Math.round(x * 1000) / 1000;

/**
 * Medians of one step's rows: A's and B's `metric` and the per-pair ratio — B ÷ A (`ratio`) or
 * A ÷ B (`inverse`: FiberLB ÷ a peer when A is FiberLB) — the median of per-pair values, not
 * the ratio of medians; the ratios in pair order, and their min–max and interquartile range.
 */
export function pairStats(rows, metric, key = 'ratio') {
  const sorted = rows.map((r) => r[key]).sort((x, y) => x - y);
  const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  return {
    pairs: rows.length,
    ratioOf: key === 'ratio' ? 'B ÷ A' : 'A ÷ B',
    aMedian: median(rows.map((r) => r.a[metric])),
    bMedian: median(rows.map((r) => r.b[metric])),
    medianRatio: median(sorted),
    ratios: rows.map((r) => r3(r[key])), // in pair order
    min: r3(sorted[0]),
    max: r3(sorted[sorted.length - 1]),
    q1: r3(q(0.25)),
    q3: r3(q(0.75)),
  };
}
