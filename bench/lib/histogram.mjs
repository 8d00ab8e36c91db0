// Latency histograms that can be pooled across runs: log-spaced buckets ≈ 2% wide, so a
// percentile read from the pooled counts is within 2% of the exact one. The fixed-rate
// generator (loadgen.mjs) emits one per run; bench/ab.mjs pools each side's slices, so the p99
// of A and of B are each taken over all of their requests — the slices alternate, so both sides
// sample the same stalls of the machine — instead of only the median of per-slice p99s, where
// one stall decides a slice.

/** Buckets per e-fold: bucket i holds latencies in (e^((i-1)/SCALE), e^(i/SCALE)] µs. */
const SCALE = 50;

const bucketOf = (us) => (us <= 1 ? 0 : Math.ceil(Math.log(us) * SCALE));
const upperOf = (i) => Math.exp(i / SCALE);

/** Histogram of latencies (µs): { scale, counts: [[bucket, count], …] in bucket order }. */
export function histogramOf(values, n = values.length) {
  const m = new Map();
  for (let i = 0; i < n; i++) {
    const b = bucketOf(values[i]);
    m.set(b, (m.get(b) ?? 0) + 1);
  }
  return { scale: SCALE, counts: [...m].sort((x, y) => x[0] - y[0]) };
}

/** One histogram holding every count of `hists` (all of this module's scale). */
export function mergeHistograms(hists) {
  const m = new Map();
  for (const h of hists) {
    if (h.scale !== SCALE) throw new Error(`histogram scale ${h.scale}, expected ${SCALE}`);
    for (const [b, c] of h.counts) m.set(b, (m.get(b) ?? 0) + c);
  }
  return { scale: SCALE, counts: [...m].sort((x, y) => x[0] - y[0]) };
}

/** The p-th percentile (0–100) in µs: the upper edge of the bucket holding it; null if empty. */
export function percentileOf(h, p) {
  let total = 0;
  for (const [, c] of h.counts) total += c;
  if (!total) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * total));
  let seen = 0;
  for (const [b, c] of h.counts) {
    seen += c;
    if (seen >= rank) return Math.round(upperOf(b));
  }
  return Math.round(upperOf(h.counts.at(-1)[0]));
}

/** The number of latencies a histogram holds. */
export const countOf = (h) => h.counts.reduce((s, [, c]) => s + c, 0);
