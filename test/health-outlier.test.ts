// Passive outlier detection, both halves: what a worker counts (upstream failures and the
// configured statuses; never a client-side fault) and how the primary merges the batches of
// all workers into one ejection decision (consecutive across workers, n × base time capped,
// max_ejection_percent).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { OutlierDetectionConfig } from '../src/config/model.ts';
import { OutlierTracker } from '../src/primary/health/outlier.ts';
import { ERROR_CATALOG, ERROR_CLASSES } from '../src/shared/errors.ts';
import type { BackendTarget } from '../src/worker/routing/balancer/types.ts';
import { outlierFailure, outlierResult, takeOutlierBatch } from '../src/worker/upstream/outlier.ts';
import { captureLog } from './helpers/capture-log.ts';

const OD: OutlierDetectionConfig = {
  consecutiveFailures: 3,
  onStatus: [503],
  baseEjectionMs: 1000,
  maxEjectionMs: 2500,
  maxEjectionPercent: 50,
};
const target = (key: string): BackendTarget => ({
  key,
  id: key,
  address: '127.0.0.1',
  port: 1,
  weight: 1,
  active: 0,
});

describe('worker: what counts', () => {
  test('upstream-side classes and on_status count; client, routing and process classes never do', () => {
    takeOutlierBatch();
    const t = target('lb/p/a');
    for (const cls of ERROR_CLASSES) outlierFailure(OD, t, cls);
    const upstream = ERROR_CLASSES.filter((c) => ERROR_CATALOG[c].side === 'upstream').length;
    assert.deepEqual(takeOutlierBatch(), [{ key: 'lb/p/a', failures: upstream, reset: false }]);
    outlierFailure(OD, t, 'client_abort');
    outlierFailure(OD, t, 'client_timeout');
    assert.deepEqual(takeOutlierBatch(), [], 'a client that left says nothing about the backend');
    outlierResult(OD, t, 503);
    outlierResult(OD, t, 500); // not configured: a success for passive health
    outlierResult(OD, t, 503);
    assert.deepEqual(
      takeOutlierBatch(),
      [{ key: 'lb/p/a', failures: 1, reset: true }],
      'trailing streak after a success',
    );
    outlierFailure(undefined, t, 'upstream_reset');
    assert.deepEqual(takeOutlierBatch(), [], 'pools without outlier_detection are not counted');
  });
});

describe('primary: merging', () => {
  const pools = (keys: string[], config = OD) => [{ pool: 'lb/p', keys, config }];

  test('consecutive across workers ejects; a success in between resets; ejection grows and is capped', async (t) => {
    const log = captureLog(t);
    let changes = 0;
    const o = new OutlierTracker(() => changes++);
    t.after(() => o.stop());
    o.configure(pools(['a', 'b', 'c', 'd']));
    o.report([{ key: 'a', failures: 2, reset: false }]); // worker 1
    o.report([{ key: 'a', failures: 0, reset: true }]); // worker 2: a success breaks the streak
    o.report([{ key: 'a', failures: 2, reset: false }]);
    assert.deepEqual(o.ejected(), []);
    o.report([{ key: 'a', failures: 1, reset: false }]); // 3 in a row
    assert.deepEqual(o.ejected(), ['a']);
    assert.equal(changes, 1);
    const until1 = Date.parse(o.info('a')!.ejected_until!) - Date.now();
    assert.ok(until1 > 800 && until1 <= 1000, `first ejection ${until1} ms`);
    assert.equal(log.lines.filter((l) => l.msg === 'backend ejected').length, 1);
    // max_ejection_percent 50 of 4 = 2: b can go, c cannot.
    o.report([{ key: 'b', failures: 3, reset: false }]);
    o.report([{ key: 'c', failures: 5, reset: false }]);
    assert.deepEqual(o.ejected().sort(), ['a', 'b']);
    assert.equal(o.stats().ejections_skipped_max_percent, 1);
    await new Promise((r) => setTimeout(r, 1100));
    assert.deepEqual(o.ejected(), [], 'back after base_ejection_time');
    o.report([{ key: 'a', failures: 3, reset: false }]);
    const until2 = Date.parse(o.info('a')!.ejected_until!) - Date.now();
    assert.ok(until2 > 1800 && until2 <= 2000, `second ejection lasts 2 × base: ${until2} ms`);
    assert.equal(o.info('a')!.ejections, 2);
  });

  test('a reload without outlier_detection returns what it ejected', (t) => {
    captureLog(t);
    let changes = 0;
    const o = new OutlierTracker(() => changes++);
    o.configure(pools(['a', 'b']));
    o.report([{ key: 'a', failures: 3, reset: false }]);
    assert.deepEqual(o.ejected(), ['a']);
    o.configure([{ pool: 'lb/p', keys: ['a', 'b'], config: undefined }]);
    assert.deepEqual(o.ejected(), []);
    assert.equal(changes, 2);
    o.stop();
  });
});
