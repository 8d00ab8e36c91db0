// limits.drain_body (body-drain.ts): its default, explicit values, 0 = always close, and
// errors with file:line:col.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatIssue, parseConfigText } from '../src/config/validate.ts';

function lb(listeners: string): string {
  return `load_balancers:
  - name: public
    org: platform
    project: core
    vip: 127.0.0.1
    listeners:
${listeners}    pools:
      - name: web
        backends:
          - { address: 127.0.0.1, port: 9001 }
`;
}

const http = (name: string, port: number, limits = '') =>
  `      - { name: ${name}, port: ${port}, protocol: http, default_pool: web${limits} }\n`;

function parse(text: string) {
  return parseConfigText(text, 't.yaml', { cpuCount: 2 });
}

describe('config: limits.drain_body', () => {
  test('default 1 MiB, explicit values, 0 = always close', () => {
    const r = parse(
      lb(
        http('a', 8080) +
          http('b', 8081, ', limits: { drain_body: 256KiB }') +
          http('c', 8082, ', limits: { drain_body: 0 }'),
      ),
    );
    if (!r.ok) assert.fail(r.issues.map(formatIssue).join('\n'));
    const [a, b, c] = r.config.dynamic.loadBalancers[0]!.listeners;
    assert.equal(a!.limits.drainBodyBytes, 1024 * 1024);
    assert.equal(b!.limits.drainBodyBytes, 256 * 1024);
    assert.equal(c!.limits.drainBodyBytes, 0);
  });

  test('errors name file:line:col and the field', () => {
    const r = parse(
      lb(
        http('a', 8080, ', limits: { drain_body: 17MiB }') +
          http('b', 8081, ', limits: { drain_body: lots }') +
          '      - { name: t, port: 7000, protocol: tcp, default_pool: web, limits: { drain_body: 1KiB } }\n',
      ),
    );
    assert.equal(r.ok, false);
    const L = 'load_balancers[0].listeners';
    assert.deepEqual(r.ok ? [] : r.issues.map(formatIssue), [
      `t.yaml:7:89: ${L}[0].limits.drain_body: size 17MiB is out of range 0B-16MiB`,
      `t.yaml:8:89: ${L}[1].limits.drain_body: invalid size 'lots': expected bytes or e.g. 512B, 16KiB, 10MiB, 1GiB, 64KB, 1MB`,
      `t.yaml:9:76: ${L}[2].limits.drain_body: only allowed on http/https listeners (this listener is tcp)`,
    ]);
  });
});
