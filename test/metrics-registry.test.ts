// The collector registry other modules plug into: collectors by name (re-adding replaces),
// and one that throws is skipped and counted — a scrape must never take a worker down (out of
// file descriptors, reading RSS from /proc throws EMFILE; test/fd-limit.test.ts hit that).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  counter,
  Histogram,
  histogramValues,
  LATENCY_BUCKETS,
  MetricsRegistry,
} from '../src/shared/metrics.ts';

test('collectors by name; a throwing one is skipped and counted', () => {
  const r = new MetricsRegistry();
  r.add('a', () => [counter('x_total', 'x', [{ labels: {}, value: 1 }])]);
  r.add('a', () => [counter('x_total', 'x', [{ labels: {}, value: 2 }])]);
  r.add('boom', () => {
    throw new Error('EMFILE');
  });
  r.add('b', () => [counter('y_total', 'y', [{ labels: { k: 'v' }, value: 3 }])]);
  const fams = r.collect();
  assert.deepEqual(
    fams.map((f) => [f.name, f.values[0]!.value]),
    [
      ['x_total', 2],
      ['y_total', 3],
    ],
  );
  assert.equal(r.errors, 1);
});

test('histogram: fixed buckets, cumulative in the output, +Inf = count', () => {
  const h = new Histogram();
  for (const s of [0.0001, 0.0005, 0.003, 0.2, 99]) h.observe(s);
  const out: Parameters<typeof histogramValues>[3] = [];
  histogramValues('d_seconds', { l: '1' }, h, out);
  const buckets = out.filter((v) => v.metricName === 'd_seconds_bucket');
  assert.equal(buckets.length, LATENCY_BUCKETS.length + 1);
  assert.deepEqual(
    buckets.slice(0, 4).map((b) => [b.labels.le, b.value]),
    [
      [0.0005, 2],
      [0.001, 2],
      [0.0025, 2],
      [0.005, 3],
    ],
  );
  assert.deepEqual([buckets.at(-2)!.value, buckets.at(-1)!.labels.le, buckets.at(-1)!.value], [4, '+Inf', 5]);
  assert.equal(out.find((v) => v.metricName === 'd_seconds_count')!.value, 5);
  assert.ok(Math.abs(out.find((v) => v.metricName === 'd_seconds_sum')!.value - 99.2036) < 1e-9);
});
