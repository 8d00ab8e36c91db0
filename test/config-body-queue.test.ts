// Config keys of the slow-body and upstream-queue work: timeouts.client_body_total,
// limits.buffer_body, limits.min_body_rate, pools[].max_queue, pools[].queue_timeout —
// defaults, explicit values, 0 where it means "off", and every error with file:line:col.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatIssue, parseConfigText } from '../src/config/validate.ts';

function lb(listenerExtra: string, poolExtra = '', extraListener = ''): string {
  return `load_balancers:
  - name: public
    org: platform
    project: core
    vip: 127.0.0.1
    listeners:
      - name: api
        port: 8080
        protocol: http
        default_pool: web
${listenerExtra}${extraListener}    pools:
      - name: web
${poolExtra}        backends:
          - { address: 127.0.0.1, port: 9001 }
`;
}

function parse(text: string) {
  return parseConfigText(text, 't.yaml', { cpuCount: 2 });
}

describe('config: request body limits and the pool wait queue', () => {
  test('defaults', () => {
    const r = parse(lb(''));
    assert.ok(r.ok);
    const [b] = r.config.dynamic.loadBalancers;
    const l = b!.listeners[0]!;
    assert.equal(l.timeouts.clientBodyTotalMs, 600_000);
    assert.equal(l.limits.bufferBodyBytes, 64 * 1024);
    assert.equal(l.limits.minBodyRate, 256);
    assert.equal(b!.pools[0]!.maxQueue, 1024);
    assert.equal(b!.pools[0]!.queueTimeoutMs, 5000);
  });

  test('explicit values, and 0 = off where allowed', () => {
    const r = parse(
      lb(
        '        timeouts: { client_body_total: 2m30s }\n        limits: { buffer_body: 1MiB, min_body_rate: 1KiB }\n',
        '        max_queue: 0\n        queue_timeout: 250ms\n',
        '      - name: off\n        port: 8081\n        protocol: http\n        default_pool: web\n' +
          '        timeouts: { client_body_total: 0s }\n        limits: { buffer_body: 0, min_body_rate: 0 }\n',
      ),
    );
    if (!r.ok) assert.fail(r.issues.map(formatIssue).join('\n'));
    const [b] = r.config.dynamic.loadBalancers;
    const [on, off] = b!.listeners;
    assert.equal(on!.timeouts.clientBodyTotalMs, 150_000);
    assert.equal(on!.limits.bufferBodyBytes, 1024 * 1024);
    assert.equal(on!.limits.minBodyRate, 1024);
    assert.equal(off!.timeouts.clientBodyTotalMs, 0);
    assert.equal(off!.limits.bufferBodyBytes, 0);
    assert.equal(off!.limits.minBodyRate, 0);
    assert.equal(b!.pools[0]!.maxQueue, 0);
    assert.equal(b!.pools[0]!.queueTimeoutMs, 250);
  });

  test('errors name file:line:col and the field', () => {
    const r = parse(
      lb(
        '        timeouts: { client_body_total: 30 }\n        limits: { buffer_body: 32MiB, min_body_rate: 1.5KiB }\n',
        '        max_queue: -1\n        queue_timeout: 0s\n',
        '      - { name: t, port: 7000, protocol: tcp, default_pool: web, limits: { min_body_rate: 1KiB, buffer_body: 0 }, timeouts: { client_body_total: 1m } }\n',
      ),
    );
    assert.equal(r.ok, false);
    const L = 'load_balancers[0]';
    assert.deepEqual(r.ok ? [] : r.issues.map(formatIssue), [
      `t.yaml:11:40: ${L}.listeners[0].timeouts.client_body_total: duration needs a unit (ms, s, m, h)`,
      `t.yaml:12:32: ${L}.listeners[0].limits.buffer_body: size 32MiB is out of range 0B-16MiB`,
      `t.yaml:12:54: ${L}.listeners[0].limits.min_body_rate: invalid size '1.5KiB': expected bytes or e.g. 512B, 16KiB, 10MiB, 1GiB, 64KB, 1MB`,
      `t.yaml:13:76: ${L}.listeners[1].limits.min_body_rate: only allowed on http/https listeners (this listener is tcp)`,
      `t.yaml:13:97: ${L}.listeners[1].limits.buffer_body: only allowed on http/https listeners (this listener is tcp)`,
      `t.yaml:13:127: ${L}.listeners[1].timeouts.client_body_total: only allowed on http/https listeners (this listener is tcp)`,
      `t.yaml:16:20: ${L}.pools[0].max_queue: -1 is out of range 0-1000000`,
      `t.yaml:17:24: ${L}.pools[0].queue_timeout: must be greater than 0`,
    ]);
  });

  test('a misspelt key gets a suggestion', () => {
    const r = parse(lb('', '        max_queu: 5\n'));
    assert.equal(r.ok, false);
    assert.match(
      r.ok ? '' : formatIssue(r.issues[0]!),
      /pools\[0\]\.max_queu: unknown key 'max_queu'; did you mean 'max_queue'\?/,
    );
  });
});
