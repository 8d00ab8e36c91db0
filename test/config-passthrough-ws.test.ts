// Config for tls_passthrough SNI routes and the WebSocket tunnel idle timeout: `routes` with `match.sni` on tls_passthrough
// listeners only, and only `sni` there (the stream is never decrypted, so host/path cannot
// route it); each problem located FILE:LINE:COL with its field.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatIssue, parseConfigText } from '../src/config/validate.ts';

const LS0 = 'load_balancers[0].listeners[0]';

/** Line 7 onwards is the listener; `routes` is spliced in at line 11. */
function doc(protocol: string, routes: string, defaultPool = '        default_pool: d\n'): string {
  return `load_balancers:
  - name: public
    org: platform
    project: core
    vip: 127.0.0.1
    listeners:
      - name: tls
        port: 8443
        protocol: ${protocol}
${defaultPool}${routes}    pools:
      - { name: a, backends: [{ address: 127.0.0.1, port: 9001 }] }
      - { name: d, backends: [{ address: 127.0.0.1, port: 9002 }] }
`;
}

function errors(text: string): string[] {
  const r = parseConfigText(text, 't.yaml', { cpuCount: 2 });
  assert.equal(r.ok, false, 'expected validation to fail');
  return r.ok ? [] : r.issues.map(formatIssue);
}

test('sni routes on a tls_passthrough listener: exact and wildcard, lower-cased; default_pool optional', () => {
  const r = parseConfigText(
    doc(
      'tls_passthrough',
      '        routes:\n          - { match: { sni: API.example.com }, pool: a }\n          - { match: { sni: "*.example.org" }, pool: a }\n',
      '',
    ),
    't.yaml',
    { cpuCount: 2 },
  );
  assert.ok(r.ok, r.ok ? '' : r.issues.map(formatIssue).join('\n'));
  const l = r.config.dynamic.loadBalancers[0]!.listeners[0]!;
  assert.equal(l.defaultPool, undefined);
  assert.deepEqual(
    l.routes.map((x) => [x.match.sni, x.match.host, x.pool]),
    [
      ['api.example.com', undefined, 'a'],
      ['*.example.org', undefined, 'a'],
    ],
  );
});

test('a tls_passthrough listener without routes still needs default_pool', () => {
  assert.deepEqual(errors(doc('tls_passthrough', '', '')), [
    `t.yaml:7:9: ${LS0}.default_pool: is required when the listener has no routes`,
  ]);
});

test('host/path/headers/method on a passthrough route, sni on an http route: each located', () => {
  assert.deepEqual(
    errors(
      doc(
        'tls_passthrough',
        '        routes:\n          - { match: { sni: a.example, host: a.example, path_prefix: /x }, pool: a }\n          - { match: { method: GET }, pool: a }\n',
      ),
    ),
    [
      `t.yaml:12:40: ${LS0}.routes[0].match.host: only allowed on http/https listeners (this listener is tls_passthrough)`,
      `t.yaml:12:57: ${LS0}.routes[0].match.path_prefix: only allowed on http/https listeners (this listener is tls_passthrough)`,
      `t.yaml:13:22: ${LS0}.routes[1].match: needs sni`,
      `t.yaml:13:24: ${LS0}.routes[1].match.method: only allowed on http/https listeners (this listener is tls_passthrough)`,
    ],
  );
  assert.deepEqual(
    errors(doc('http', '        routes:\n          - { match: { sni: a.example }, pool: a }\n')),
    [
      `t.yaml:12:22: ${LS0}.routes[0].match: needs at least one of host, path_prefix, headers, method`,
      `t.yaml:12:24: ${LS0}.routes[0].match.sni: only allowed on tls_passthrough listeners (this listener is http)`,
    ],
  );
});

test('an sni that is an IP address, has a port or is not a host name is refused', () => {
  assert.deepEqual(
    errors(
      doc(
        'tls_passthrough',
        '        routes:\n          - { match: { sni: 10.0.0.1 }, pool: a }\n          - { match: { sni: "a.example:443" }, pool: a }\n          - { match: { sni: "bad_name!" }, pool: a }\n',
      ),
    ),
    [
      `t.yaml:12:29: ${LS0}.routes[0].match.sni: sni '10.0.0.1' is an IP address; clients send no SNI for addresses (use default_pool)`,
      `t.yaml:13:29: ${LS0}.routes[1].match.sni: sni 'a.example:443' must not include a port`,
      `t.yaml:14:29: ${LS0}.routes[2].match.sni: invalid hostname 'bad_name!': label 'bad_name!' must be 1-63 letters, digits or '-', not starting or ending with '-'`,
    ],
  );
});

test('timeouts.tunnel_idle: a duration on http listeners (default 1h), an error elsewhere', () => {
  const withIdle = (protocol: string, v: string) =>
    doc(protocol, `        timeouts: { tunnel_idle: ${v} }\n`);
  const r = parseConfigText(withIdle('http', '90s'), 't.yaml', { cpuCount: 2 });
  assert.ok(r.ok);
  assert.equal(r.config.dynamic.loadBalancers[0]!.listeners[0]!.timeouts.tunnelIdleMs, 90_000);
  const d = parseConfigText(doc('http', ''), 't.yaml', { cpuCount: 2 });
  assert.ok(d.ok);
  assert.equal(d.config.dynamic.loadBalancers[0]!.listeners[0]!.timeouts.tunnelIdleMs, 3_600_000);
  assert.deepEqual(errors(withIdle('tcp', '90s')), [
    `t.yaml:11:21: ${LS0}.timeouts.tunnel_idle: only allowed on http/https listeners (this listener is tcp)`,
  ]);
  assert.deepEqual(errors(withIdle('http', '0s')), [
    `t.yaml:11:34: ${LS0}.timeouts.tunnel_idle: must be greater than 0`,
  ]);
});
