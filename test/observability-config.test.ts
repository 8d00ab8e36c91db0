// Config keys of the observability issue: admin.metrics_open.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatIssue, parseConfigText } from '../src/config/validate.ts';

const BASE = 'load_balancers: []\n';

describe('admin.metrics_open', () => {
  test('defaults to false; true is read', () => {
    const off = parseConfigText(BASE, 'f.yaml');
    assert.ok(off.ok);
    assert.equal(off.config.static.admin.metricsOpen, false);
    const on = parseConfigText(`admin: { metrics_open: true }\n${BASE}`, 'f.yaml');
    assert.ok(on.ok);
    assert.equal(on.config.static.admin.metricsOpen, true);
  });

  test('not a boolean: file:line:col and the field', () => {
    const r = parseConfigText(`admin:\n  metrics_open: yes please\n${BASE}`, 'f.yaml');
    assert.ok(!r.ok);
    assert.deepEqual(r.issues.map(formatIssue), [
      "f.yaml:2:17: admin.metrics_open: expected true or false, got string 'yes please'",
    ]);
  });
});
