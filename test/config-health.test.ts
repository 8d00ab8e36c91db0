// Config keys of the health work: health_check (method, host, expect_status, body_contains,
// jitter, https), retry, outlier_detection, panic_threshold, slow_start, and the backends'
// max_connections / max_requests — defaults, values, and located errors.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Config } from '../src/config/model.ts';
import { formatIssue, parseConfigText } from '../src/config/validate.ts';
import { where } from './helpers/yaml-pos.ts';

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

const HC = `${P}.health_check`;

describe('health_check: located errors and defaults', () => {
  test('defaults: a tcp check every 2s, 1s timeout, no jitter, rise 2, fall 3', () => {
    assert.deepEqual(pool0(ok(doc('health_check: {}'))).healthCheck, {
      type: 'tcp',
      path: '/',
      method: 'GET',
      host: undefined,
      expectStatus: [{ from: 200, to: 399 }],
      bodyContains: undefined,
      intervalMs: 2000,
      timeoutMs: 1000,
      jitterMs: 0,
      rise: 2,
      fall: 3,
    });
    const http = pool0(ok(doc('health_check: { type: http }'))).healthCheck!;
    assert.equal(http.path, '/');
    assert.equal(http.method, 'GET');
    assert.deepEqual(http.expectStatus, [{ from: 200, to: 399 }]);
  });

  test('every http-only key is refused on a tcp check, at the key', () => {
    const text = doc(
      'health_check: { path: /x, method: GET, host: h, expect_status: 200, body_contains: ok }',
    );
    assert.deepEqual(
      errors(text),
      ['path', 'method', 'host', 'expect_status', 'body_contains'].map(
        (k) => `t.yaml:${where(text, `${k}:`)}: ${HC}.${k}: only allowed when type is http or https`,
      ),
    );
  });

  test('an unknown type is reported and the check read as tcp (http-only keys refused)', () => {
    const text = doc('health_check: { type: grpc, path: /x }');
    assert.deepEqual(errors(text), [
      `t.yaml:${where(text, 'grpc')}: ${HC}.type: invalid value 'grpc'; expected one of: tcp, http, https`,
      `t.yaml:${where(text, 'path:')}: ${HC}.path: only allowed when type is http or https`,
    ]);
  });

  test('path must start with /, method must be a token, host printable ASCII', () => {
    const text = doc('health_check: { type: http, path: ready, method: "GE T", host: "a b" }');
    assert.deepEqual(errors(text), [
      `t.yaml:${where(text, 'ready')}: ${HC}.path: path 'ready' must start with /`,
      `t.yaml:${where(text, '"GE T"')}: ${HC}.method: invalid method 'GE T'`,
      `t.yaml:${where(text, '"a b"')}: ${HC}.host: must be printable ASCII without spaces`,
    ]);
    const ctl = doc('health_check: { type: http, host: "a\\tb" }');
    assert.deepEqual(errors(ctl), [
      `t.yaml:${where(ctl, '"a\\tb"')}: ${HC}.host: must be printable ASCII without spaces`,
    ]);
    const c = pool0(ok(doc('health_check: { type: https, method: "m-x.1~", host: "a!~" }'))).healthCheck!;
    assert.equal(c.method, 'M-X.1~');
    assert.equal(c.host, 'a!~');
  });

  test('timeout must be below interval: reported at timeout, or at interval when only it is set', () => {
    const both = doc('health_check: { interval: 1s, timeout: 1s }');
    assert.deepEqual(errors(both), [
      `t.yaml:${where(both, '1s }')}: ${HC}.timeout: timeout (1s) must be less than interval (1s)`,
    ]);
    const onlyInterval = doc('health_check: { interval: 500ms }');
    assert.deepEqual(errors(onlyInterval), [
      `t.yaml:${where(onlyInterval, '500ms')}: ${HC}.interval: timeout (1s) must be less than interval (500ms)`,
    ]);
    const onlyTimeout = doc('health_check: { timeout: 3s }');
    assert.deepEqual(errors(onlyTimeout), [
      `t.yaml:${where(onlyTimeout, '3s')}: ${HC}.timeout: timeout (3s) must be less than interval (2s)`,
    ]);
    assert.equal(pool0(ok(doc('health_check: { interval: 1001ms }'))).healthCheck!.timeoutMs, 1000);
  });

  test('jitter may equal the interval and be 0, not exceed it', () => {
    assert.equal(pool0(ok(doc('health_check: { jitter: 2s }'))).healthCheck!.jitterMs, 2000);
    assert.equal(pool0(ok(doc('health_check: { jitter: 0s }'))).healthCheck!.jitterMs, 0);
    const text = doc('health_check: { jitter: 2001ms }');
    assert.deepEqual(errors(text), [
      `t.yaml:${where(text, '2001ms')}: ${HC}.jitter: jitter (2.001s) must not exceed interval (2s)`,
    ]);
  });

  test('rise and fall are 1-100', () => {
    const text = doc('health_check: { rise: 0, fall: 101 }');
    assert.deepEqual(errors(text), [
      `t.yaml:${where(text, '0,')}: ${HC}.rise: 0 is out of range 1-100`,
      `t.yaml:${where(text, '101')}: ${HC}.fall: 101 is out of range 1-100`,
    ]);
    const c = pool0(ok(doc('health_check: { rise: 1, fall: 100 }'))).healthCheck!;
    assert.deepEqual([c.rise, c.fall], [1, 100]);
  });

  test('expect_status: one status, spaced ranges, 1xx-5xx only, each bad item located', () => {
    const one = pool0(ok(doc('health_check: { type: http, expect_status: 204 }'))).healthCheck!;
    assert.deepEqual(one.expectStatus, [{ from: 204, to: 204 }]);
    const list = pool0(ok(doc('health_check: { type: http, expect_status: [" 100 - 599 ", "200-200"] }')));
    assert.deepEqual(list.healthCheck!.expectStatus, [
      { from: 100, to: 599 },
      { from: 200, to: 200 },
    ]);
    const text = doc(
      'health_check: { type: http, expect_status: [600, 99, "2000", "200-", {}, "1200", ~, 204] }',
    );
    const e = (needle: string, i: number, got: string) =>
      `t.yaml:${where(text, needle)}: ${HC}.expect_status[${i}]: expected a status or range like 200 or "200-399", got ${got}`;
    assert.deepEqual(errors(text), [
      e('600', 0, '600'),
      e('99,', 1, '99'),
      e('"2000"', 2, '2000'),
      e('"200-"', 3, '200-'),
      e('{},', 4, 'a mapping'),
      e('"1200"', 5, '1200'),
      e('~,', 6, 'nothing'),
    ]);
    const empty = doc('health_check: { type: http, expect_status: [] }');
    assert.deepEqual(errors(empty), [
      `t.yaml:${where(empty, '[]')}: ${HC}.expect_status: must list at least one status`,
    ]);
  });
});

describe('retry and outlier_detection: ranges and located errors', () => {
  test('on_status accepts 100-599 integers only', () => {
    const p = pool0(ok(doc('retry: { on_status: [100, 599] }')));
    assert.deepEqual(p.retry.onStatus, [100, 599]);
    const text = doc('retry: { on_status: [99, 600, 502.5] }\n        outlier_detection: { on_status: 5 }');
    assert.deepEqual(errors(text), [
      `t.yaml:${where(text, '99')}: ${P}.retry.on_status[0]: 99 is out of range 100-599`,
      `t.yaml:${where(text, '600')}: ${P}.retry.on_status[1]: 600 is out of range 100-599`,
      `t.yaml:${where(text, '502.5')}: ${P}.retry.on_status[2]: expected an HTTP status (integer), got number 502.5`,
      `t.yaml:${where(text, '5 }')}: ${P}.outlier_detection.on_status: expected a list, got number 5`,
    ]);
  });

  test('retry bounds: attempts 0-10, budget_percent 0-100, budget_min 0-1000000, max_retry_after may be 0', () => {
    const p = pool0(
      ok(doc('retry: { attempts: 0, budget_percent: 100, budget_min: 1000000, max_retry_after: 0s }')),
    );
    assert.deepEqual(p.retry, {
      attempts: 0,
      onStatus: [],
      budgetPercent: 100,
      budgetMin: 1_000_000,
      maxRetryAfterMs: 0,
    });
    assert.deepEqual(pool0(ok(doc('retry: { attempts: 10, budget_percent: 0, budget_min: 0 }'))).retry, {
      attempts: 10,
      onStatus: [],
      budgetPercent: 0,
      budgetMin: 0,
      maxRetryAfterMs: 1000,
    });
    const text = doc('retry: { budget_percent: 101, budget_min: 1000001 }');
    assert.deepEqual(errors(text), [
      `t.yaml:${where(text, '101')}: ${P}.retry.budget_percent: 101 is out of range 0-100`,
      `t.yaml:${where(text, '1000001')}: ${P}.retry.budget_min: 1000001 is out of range 0-1000000`,
    ]);
  });

  test('outlier_detection defaults; max_ejection_time may equal base_ejection_time', () => {
    assert.deepEqual(pool0(ok(doc('outlier_detection: {}'))).outlierDetection, {
      consecutiveFailures: 5,
      onStatus: [],
      baseEjectionMs: 30_000,
      maxEjectionMs: 300_000,
      maxEjectionPercent: 50,
    });
    const eq = pool0(ok(doc('outlier_detection: { base_ejection_time: 1m, max_ejection_time: 1m }')));
    assert.equal(eq.outlierDetection!.maxEjectionMs, 60_000);
    const text = doc('outlier_detection: { consecutive_failures: 0, max_ejection_percent: -1 }');
    assert.deepEqual(errors(text), [
      `t.yaml:${where(text, '0,')}: ${P}.outlier_detection.consecutive_failures: 0 is out of range 1-1000`,
      `t.yaml:${where(text, '-1')}: ${P}.outlier_detection.max_ejection_percent: -1 is out of range 0-100`,
    ]);
  });

  test('a base_ejection_time above the default max is reported at the mapping, naming max_ejection_time', () => {
    const text = doc('outlier_detection: { base_ejection_time: 10m }');
    assert.deepEqual(errors(text), [
      `t.yaml:${where(text, '{ base')}: ${P}.outlier_detection.max_ejection_time: max_ejection_time (5m) must be at least base_ejection_time (10m)`,
    ]);
  });
});
