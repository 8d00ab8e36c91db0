// Config keys of the health work: health_check (method, host, expect_status, body_contains,
// jitter, https), retry, outlier_detection, panic_threshold, slow_start, and the backends'
// max_connections / max_requests — defaults, values, and located errors.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Config } from '../src/config/model.ts';
import { formatIssue, parseConfigText } from '../src/config/validate.ts';

// Line 13 is the pool's first key line (after "- name: web").
const BASE = `load_balancers:
  - name: public
    org: platform
    project: core
    vip: 127.0.0.1
    listeners:
      - name: api
        port: 8080
        protocol: http
        default_pool: web
    pools:
      - name: web
        POOL
        backends:
          - { address: 127.0.0.1, port: 9001 BACKEND}
`;

function doc(pool: string, backend = ''): string {
  return BASE.replace('POOL', pool).replace('BACKEND', backend);
}

function ok(text: string): Config {
  const r = parseConfigText(text, 't.yaml');
  if (!r.ok) assert.fail(r.issues.map(formatIssue).join('\n'));
  return r.config;
}

function errors(text: string): string[] {
  const r = parseConfigText(text, 't.yaml');
  assert.equal(r.ok, false, 'expected validation to fail');
  return r.ok ? [] : r.issues.map(formatIssue);
}

const P = 'load_balancers[0].pools[0]';
const pool0 = (c: Config) => c.dynamic.loadBalancers[0]!.pools[0]!;

describe('pool health keys', () => {
  test('defaults: retries on with a 20% budget, no outlier detection, no panic, no slow start', () => {
    const p = pool0(ok(doc('algorithm: round_robin')));
    assert.deepEqual(p.retry, {
      attempts: 2,
      onStatus: [],
      budgetPercent: 20,
      budgetMin: 3,
      maxRetryAfterMs: 1000,
    });
    assert.equal(p.outlierDetection, undefined);
    assert.equal(p.panicThreshold, 0);
    assert.equal(p.slowStartMs, 0);
    assert.equal(p.backends[0]!.maxConnections, 0);
    assert.equal(p.backends[0]!.maxRequests, 0);
  });

  test('every key with a value', () => {
    const p = pool0(
      ok(
        doc(
          'health_check: { type: https, path: /ready, method: head, host: svc.internal, expect_status: ["200-204", 302], body_contains: up, interval: 1s, timeout: 500ms, jitter: 200ms, rise: 3, fall: 4 }\n' +
            '        retry: { attempts: 1, on_status: [502, 503], budget_percent: 10, budget_min: 1, max_retry_after: 2s }\n' +
            '        outlier_detection: { consecutive_failures: 3, on_status: [500], base_ejection_time: 10s, max_ejection_time: 1m, max_ejection_percent: 30 }\n' +
            '        panic_threshold: 50\n' +
            '        slow_start: 30s',
          ', max_connections: 100, max_requests: 50 ',
        ),
      ),
    );
    assert.deepEqual(p.healthCheck, {
      type: 'https',
      path: '/ready',
      method: 'HEAD',
      host: 'svc.internal',
      expectStatus: [
        { from: 200, to: 204 },
        { from: 302, to: 302 },
      ],
      bodyContains: 'up',
      intervalMs: 1000,
      timeoutMs: 500,
      jitterMs: 200,
      rise: 3,
      fall: 4,
    });
    assert.deepEqual(p.retry, {
      attempts: 1,
      onStatus: [502, 503],
      budgetPercent: 10,
      budgetMin: 1,
      maxRetryAfterMs: 2000,
    });
    assert.deepEqual(p.outlierDetection, {
      consecutiveFailures: 3,
      onStatus: [500],
      baseEjectionMs: 10_000,
      maxEjectionMs: 60_000,
      maxEjectionPercent: 30,
    });
    assert.equal(p.panicThreshold, 50);
    assert.equal(p.slowStartMs, 30_000);
    assert.equal(p.backends[0]!.maxConnections, 100);
    assert.equal(p.backends[0]!.maxRequests, 50);
  });

  test('errors name file:line:col and the field', () => {
    assert.deepEqual(
      errors(
        doc(
          'health_check: { type: tcp, method: GET, interval: 1s, timeout: 500ms, jitter: 2s }\n' +
            '        retry: { attempts: 11, on_status: [700, x] }\n' +
            '        outlier_detection: { base_ejection_time: 1m, max_ejection_time: 10s, max_ejection_percent: 101 }\n' +
            '        panic_threshold: 150\n' +
            '        slow_start: 30',
          ', max_requests: -1 ',
        ),
      ),
      [
        `t.yaml:13:36: ${P}.health_check.method: only allowed when type is http or https`,
        `t.yaml:13:87: ${P}.health_check.jitter: jitter (2s) must not exceed interval (1s)`,
        `t.yaml:14:28: ${P}.retry.attempts: 11 is out of range 0-10`,
        `t.yaml:14:44: ${P}.retry.on_status[0]: 700 is out of range 100-599`,
        `t.yaml:14:49: ${P}.retry.on_status[1]: expected an HTTP status (integer), got string 'x'`,
        `t.yaml:15:73: ${P}.outlier_detection.max_ejection_time: max_ejection_time (10s) must be at least base_ejection_time (1m)`,
        `t.yaml:15:100: ${P}.outlier_detection.max_ejection_percent: 101 is out of range 0-100`,
        `t.yaml:16:26: ${P}.panic_threshold: 150 is out of range 0-100`,
        `t.yaml:17:21: ${P}.slow_start: duration needs a unit (ms, s, m, h)`,
        `t.yaml:19:62: ${P}.backends[0].max_requests: -1 is out of range 0-1000000`,
      ],
    );
  });

  test('expect_status: ranges must be statuses and not empty', () => {
    assert.deepEqual(errors(doc('health_check: { type: http, expect_status: "399-200" }')), [
      `t.yaml:13:52: ${P}.health_check.expect_status: range 399-200 is empty (200 < 399)`,
    ]);
    assert.deepEqual(errors(doc('health_check: { type: http, expect_status: [abc] }')), [
      `t.yaml:13:53: ${P}.health_check.expect_status[0]: expected a status or range like 200 or "200-399", got abc`,
    ]);
  });
});
