// The paired-slices loop shared by bench/ab.mjs and bench/ab-tls.mjs (bench/lib/paired.mjs), and
// handshake-gen's `served` count (every connection it had answered, the divisor of ab-tls's
// µs per connection) against a real TLS server that counts what it answered. The bench modules
// are plain .mjs, so each check runs in a `node` child (helpers/bench-module.ts).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runModule } from './helpers/bench-module.ts';

describe('bench paired slices', () => {
  test('A and B alternate first per pair, each step its own pair; per-pair ratios, their median and spread', () => {
    const out = runModule(`
      import { pairedSlices, pairStats } from './bench/lib/paired.mjs';
      const a = { name: 'A' }, b = { name: 'B' };
      const calls = [];
      // A costs 100 per slice; B 110, 120, 130, 140 in its successive full slices, 50 in resumed.
      let n = 0;
      const measure = async (t, step) => {
        calls.push(t.name + ':' + step);
        if (t === a) return { us: 100 };
        return { us: step === 'full' ? 110 + 10 * n++ : 50 };
      };
      const rows = await pairedSlices({ a, b, pairs: 4, steps: ['full', 'resumed'], measure, metric: 'us',
        show: (m) => String(m.us), key: 'inverse', log: () => {} });
      console.log(JSON.stringify({ calls, full: pairStats(rows.full, 'us', 'inverse'), ratio: pairStats(rows.full, 'us'),
        resumed: pairStats(rows.resumed, 'us', 'inverse') }));
    `) as {
      calls: string[];
      full: {
        pairs: number;
        medianRatio: number;
        ratios: number[];
        min: number;
        max: number;
        aMedian: number;
        bMedian: number;
      };
      ratio: { medianRatio: number; ratioOf: string };
      resumed: { medianRatio: number };
    };
    assert.deepEqual(out.calls, [
      'A:full',
      'B:full',
      'A:resumed',
      'B:resumed',
      'B:full',
      'A:full',
      'B:resumed',
      'A:resumed',
      'A:full',
      'B:full',
      'A:resumed',
      'B:resumed',
      'B:full',
      'A:full',
      'B:resumed',
      'A:resumed',
    ]);
    assert.equal(out.full.pairs, 4);
    assert.deepEqual(out.full.ratios, [0.909, 0.833, 0.769, 0.714]); // A ÷ B, in pair order
    assert.equal(out.full.min, 0.714);
    assert.equal(out.full.max, 0.909);
    assert.ok(
      Math.abs(out.full.medianRatio - (100 / 120 + 100 / 130) / 2) < 1e-9,
      'median of per-pair ratios',
    );
    assert.equal(out.full.aMedian, 100);
    assert.equal(out.full.bMedian, 125);
    assert.equal(out.ratio.ratioOf, 'B ÷ A');
    assert.ok(Math.abs(out.ratio.medianRatio - 1.25) < 1e-9);
    assert.equal(out.resumed.medianRatio, 2);
  });

  test("handshake-gen's served counts every connection answered, warm-up and the last ones too", () => {
    const out = runModule(
      `
      import https from 'node:https';
      import { mkdtempSync } from 'node:fs';
      import os from 'node:os';
      import path from 'node:path';
      import { handshakes } from './bench/lib/load.mjs';
      import { tlsFiles } from './bench/lib/tls-cert.mjs';
      import { readFileSync } from 'node:fs';
      const f = tlsFiles(mkdtempSync(path.join(os.tmpdir(), 'hs-served-')));
      let answered = 0;
      const server = https.createServer({ cert: readFileSync(f.cert), key: readFileSync(f.key) }, (req, res) => {
        answered++;
        res.end('ok');
      });
      await new Promise((r) => server.listen(0, '127.0.0.1', r));
      const r = await handshakes({ root: process.cwd(), port: server.address().port, concurrency: 4, durationS: 1, warmupS: 0.5 });
      console.log(JSON.stringify({ served: r.served, total: r.total, errors: r.errors, answered }));
      process.exit(0); // the server's connection-check interval would hold the child 30 s
    `,
      60_000,
    ) as { served: number; total: number; errors: number; answered: number };
    assert.equal(out.errors, 0);
    assert.ok(out.total > 0);
    assert.ok(
      out.served > out.total,
      `served ${out.served} includes the warm-up's, beyond the counted ${out.total}`,
    );
    assert.equal(out.served, out.answered, 'every connection the server answered, no more');
  });
});

test('latency histograms (bench/lib/histogram.mjs): pooled percentiles within 2% of the exact ones over all runs', () => {
  const out = runModule(`
    import { countOf, histogramOf, mergeHistograms, percentileOf } from './bench/lib/histogram.mjs';
    // Two slices: a quiet one (200–1,199 µs) and one with a stall tail (every 25th, 5–25 ms).
    const quiet = Float64Array.from({ length: 20000 }, (_, i) => 200 + ((i * 7919) % 1000));
    const stalled = Float64Array.from({ length: 20000 }, (_, i) => (i % 25 === 0 ? 5000 + (i % 35000) : 300 + (i % 900)));
    const all = [...quiet, ...stalled].sort((a, b) => a - b);
    const ps = [50, 90, 99, 99.9];
    const pooled = mergeHistograms([histogramOf(quiet), histogramOf(stalled)]);
    let scaleError = '';
    try { mergeHistograms([{ scale: 10, counts: [] }]); } catch (e) { scaleError = e.message; }
    console.log(JSON.stringify({
      count: countOf(pooled),
      exact: ps.map((p) => all[Math.ceil((p / 100) * all.length) - 1]),
      pooled: ps.map((p) => percentileOf(pooled, p)),
      sliceP99: [percentileOf(histogramOf(quiet), 99), percentileOf(histogramOf(stalled), 99)],
      empty: percentileOf(mergeHistograms([]), 99),
      scaleError,
    }));
  `) as {
    count: number;
    exact: number[];
    pooled: number[];
    sliceP99: number[];
    empty: null;
    scaleError: string;
  };
  assert.equal(out.count, 40_000);
  out.exact.forEach((e, i) => {
    const got = out.pooled[i]!;
    assert.ok(got >= e && got <= e * 1.021, `percentile #${i}: pooled ${got}, exact ${e}`);
  });
  // Pooling is not the median of per-slice p99s: it lies between the quiet and the stalled one.
  const [q, st] = out.sliceP99 as [number, number];
  assert.ok(out.pooled[2]! > q && out.pooled[2]! < st, `${out.pooled[2]} between ${q} and ${st}`);
  assert.equal(out.empty, null);
  assert.match(out.scaleError, /histogram scale 10, expected 50/);
});
