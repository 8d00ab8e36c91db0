// Config keys of the rate-limit work: rate_limit lists (listener and route; the single-mapping
// form still accepted), rate_limit_allow, connection_rate_limit, max_connections_per_ip and
// the static rate_limit_store — defaults, explicit values and every error with file:line:col.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatIssue, parseConfigText } from '../src/config/validate.ts';
import { restartOnlyChanges } from '../src/primary/primary.ts';
import { where } from './helpers/yaml-pos.ts';

// Line 8 is the first line of `listenerExtra`.
function lb(listenerExtra: string, top = '', protocol = 'http'): string {
  return `${top}load_balancers:
  - name: public
    org: platform
    project: core
    vip: 127.0.0.1
    listeners:
      - { name: api, port: 8080, protocol: ${protocol}, default_pool: web }
${listenerExtra}    pools:
      - name: web
        backends:
          - { address: 127.0.0.1, port: 9001 }
`;
}

function parse(text: string) {
  return parseConfigText(text, 't.yaml', { cpuCount: 2 });
}

function errors(text: string): string[] {
  const r = parse(text);
  assert.equal(r.ok, false, 'expected validation to fail');
  return r.ok ? [] : r.issues.map(formatIssue);
}

const L = 'load_balancers[0].listeners[1]';
const listener = (body: string, protocol = 'http') =>
  `      - name: b\n        port: 8081\n        protocol: ${protocol}\n        default_pool: web\n${body}`;

describe('config: rate limits', () => {
  test('the single-mapping form is one entry with defaults filled in', () => {
    const r = parse(lb(listener('        rate_limit: { rate: 5 }\n')));
    if (!r.ok) assert.fail(r.issues.map(formatIssue).join('\n'));
    const l = r.config.dynamic.loadBalancers[0]!.listeners[1]!;
    assert.deepEqual(l.rateLimits, [
      {
        name: 'client_ip',
        key: 'client_ip',
        header: undefined,
        prefix: 32,
        prefixV6: 64,
        rate: 5,
        perMs: 1000,
        burst: 5,
        mode: 'enforce',
        scope: 'local',
      },
    ]);
    assert.deepEqual(l.rateLimitAllow, []);
    assert.equal(l.connectionRateLimit, undefined);
    // A listener without the key has no limits.
    assert.deepEqual(r.config.dynamic.loadBalancers[0]!.listeners[0]!.rateLimits, []);
    assert.equal(l.maxConnectionsPerIp, 0);
    assert.equal(r.config.static.rateLimitStore, undefined);
  });

  test('lists on the listener and on routes, every key type, allow-list, L4 limits, store', () => {
    const r = parse(
      lb(
        listener(
          '        rate_limit:\n' +
            '          - { key: client_ip, prefix: 24, prefix_v6: 48, rate: 100, per: 1m, burst: 200 }\n' +
            '          - { name: per-key, key: "header:X-Api-Key", rate: 10, mode: dry_run }\n' +
            '          - { key: host, rate: 1000, scope: global }\n' +
            '          - { key: route, rate: 50 }\n' +
            '          - { key: global, rate: 0.5, per: 1s }\n' +
            '        rate_limit_allow: [10.0.0.0/8, "::1"]\n' +
            '        connection_rate_limit: { rate: 20, burst: 40, prefix: 16 }\n' +
            '        max_connections_per_ip: 8\n' +
            '        routes:\n' +
            '          - match: { path_prefix: /login }\n' +
            '            pool: web\n' +
            '            rate_limit: { rate: 1, per: 10s }\n',
        ),
        'rate_limit_store: { type: redis, address: 127.0.0.1, port: 6390, timeout: 50ms }\n',
      ),
    );
    if (!r.ok) assert.fail(r.issues.map(formatIssue).join('\n'));
    const l = r.config.dynamic.loadBalancers[0]!.listeners[1]!;
    assert.deepEqual(
      l.rateLimits.map((x) => [x.name, x.key, x.header, x.prefix, x.prefixV6, x.rate, x.perMs, x.burst]),
      [
        ['client_ip', 'client_ip', undefined, 24, 48, 100, 60_000, 200],
        ['per-key', 'header', 'x-api-key', 32, 64, 10, 1000, 10],
        ['host', 'host', undefined, 32, 64, 1000, 1000, 1000],
        ['route', 'route', undefined, 32, 64, 50, 1000, 50],
        ['global', 'global', undefined, 32, 64, 0.5, 1000, 1],
      ],
    );
    assert.equal(l.rateLimits[1]!.mode, 'dry_run');
    assert.equal(l.rateLimits[2]!.scope, 'global');
    assert.deepEqual(
      l.rateLimitAllow.map((c) => c.text),
      ['10.0.0.0/8', '::1'],
    );
    assert.equal(l.connectionRateLimit?.rate, 20);
    assert.equal(l.connectionRateLimit?.burst, 40);
    assert.equal(l.connectionRateLimit?.prefix, 16);
    assert.equal(l.maxConnectionsPerIp, 8);
    assert.deepEqual(
      l.routes[0]!.rateLimits.map((x) => [x.rate, x.perMs, x.burst]),
      [[1, 10_000, 1]],
    );
    assert.deepEqual(r.config.static.rateLimitStore, {
      type: 'redis',
      address: '127.0.0.1',
      port: 6390,
      keyPrefix: 'fiberlb:rl:',
      timeoutMs: 50,
    });
  });

  test('L4 limits on tcp and tls_passthrough listeners', () => {
    for (const protocol of ['tcp', 'tls_passthrough']) {
      const r = parse(
        lb(
          listener(
            '        connection_rate_limit: { rate: 2 }\n        max_connections_per_ip: 3\n' +
              '        rate_limit_allow: [127.0.0.1]\n',
            protocol,
          ),
        ),
      );
      if (!r.ok) assert.fail(r.issues.map(formatIssue).join('\n'));
      const l = r.config.dynamic.loadBalancers[0]!.listeners[1]!;
      assert.equal(l.connectionRateLimit?.rate, 2);
      assert.equal(l.maxConnectionsPerIp, 3);
    }
  });

  test('bad input: limit 0, negative or absurd rate, unknown key, bad CIDR, bad prefix', () => {
    assert.deepEqual(
      errors(
        lb(
          listener(
            '        rate_limit:\n' +
              '          - { rate: 0 }\n' +
              '          - { name: n, rate: -5 }\n' +
              '          - { name: a, rate: 1e9 }\n' +
              '          - { name: k, key: ip, rate: 1 }\n' +
              '          - { name: h, key: "header:bad name", rate: 1 }\n' +
              '          - { name: p, prefix: 33, rate: 1 }\n' +
              '          - { name: q, prefix_v6: 0, rate: 1 }\n' +
              '          - { name: r, key: host, prefix: 24, rate: 1 }\n' +
              '          - { name: s, rate: 1, burst: 0 }\n' +
              '          - { name: g, rate: 1, scope: global }\n' +
              '        rate_limit_allow: [10.0.0.0/33, 10.0.300.0/24]\n' +
              '        connection_rate_limit: { rate: 0 }\n' +
              '        max_connections_per_ip: -1\n',
          ),
        ),
      ),
      [
        `t.yaml:13:21: ${L}.rate_limit[0].rate: 0 must be greater than 0 (a limit of 0 admits nothing; remove the limit instead)`,
        `t.yaml:14:30: ${L}.rate_limit[1].rate: -5 must be greater than 0`,
        `t.yaml:15:30: ${L}.rate_limit[2].rate: 1000000000 is out of range: at most 1000000`,
        `t.yaml:16:29: ${L}.rate_limit[3].key: unknown key type 'ip'; expected one of: client_ip, header:NAME, host, route, global`,
        `t.yaml:17:29: ${L}.rate_limit[4].key: invalid header name 'bad name' in key 'header:bad name'`,
        `t.yaml:18:32: ${L}.rate_limit[5].prefix: 33 is out of range 1-32`,
        `t.yaml:19:35: ${L}.rate_limit[6].prefix_v6: 0 is out of range 1-128`,
        `t.yaml:20:35: ${L}.rate_limit[7].prefix: only allowed with key client_ip (this limit's key is host)`,
        `t.yaml:21:40: ${L}.rate_limit[8].burst: 0 must be greater than 0 (a bucket of 0 admits nothing)`,
        `t.yaml:22:40: ${L}.rate_limit[9].scope: scope global needs a top-level rate_limit_store (e.g. { type: redis, address: 127.0.0.1, port: 6379 })`,
        `t.yaml:23:28: ${L}.rate_limit_allow[0]: invalid prefix length '/33' in '10.0.0.0/33': must be 0-32`,
        `t.yaml:23:41: ${L}.rate_limit_allow[1]: invalid IPv4 address '10.0.300.0': octet 300 is out of range 0-255`,
        `t.yaml:24:40: ${L}.connection_rate_limit.rate: 0 must be greater than 0 (a limit of 0 admits nothing; remove the limit instead)`,
        `t.yaml:25:33: ${L}.max_connections_per_ip: -1 must be at least 0`,
      ],
    );
  });

  test('duplicate names, an empty list, keys on the wrong protocol, a bad store', () => {
    assert.deepEqual(
      errors(
        lb(
          listener('        rate_limit: [{ rate: 1 }, { rate: 2 }]\n') +
            listener('        rate_limit: []\n').replace('name: b', 'name: c').replace('8081', '8082') +
            listener('        rate_limit: { rate: 1 }\n        max_connections_per_ip: 1\n', 'udp')
              .replace('name: b', 'name: d')
              .replace('8081', '8083') +
            listener('        rate_limit: { rate: 1 }\n', 'tcp')
              .replace('name: b', 'name: e')
              .replace('8081', '8084'),
          'rate_limit_store: { type: memcached, port: 0 }\n',
        ),
      ),
      [
        "t.yaml:1:27: rate_limit_store.type: invalid value 'memcached'; expected one of: redis",
        't.yaml:1:44: rate_limit_store.port: 0 is out of range 1-65535',
        `t.yaml:13:35: ${L}.rate_limit[1]: duplicate rate limit name 'client_ip'; first used at ${L}.rate_limit[0] (give each limit its own name:)`,
        't.yaml:18:21: load_balancers[0].listeners[2].rate_limit: must not be an empty list; omit it for no limit',
        't.yaml:23:9: load_balancers[0].listeners[3].rate_limit: only allowed on http/https listeners (this listener is udp)',
        't.yaml:24:9: load_balancers[0].listeners[3].max_connections_per_ip: only allowed on tcp/tls_passthrough/http/https listeners (this listener is udp)',
        't.yaml:29:9: load_balancers[0].listeners[4].rate_limit: only allowed on http/https listeners (this listener is tcp)',
      ],
    );
  });

  test('rate_limit_store is read once at start: a change on reload is named as restart-only', () => {
    const at = (top: string) => {
      const r = parse(lb('', top));
      if (!r.ok) assert.fail(r.issues.map(formatIssue).join('\n'));
      return r.config.static;
    };
    const none = at('');
    const a = at('rate_limit_store: { type: redis, port: 6390 }\n');
    const b = at('rate_limit_store: { type: redis, port: 6391 }\n');
    assert.deepEqual(restartOnlyChanges(a, b), ['rate_limit_store.port']);
    assert.deepEqual(restartOnlyChanges(a, a), []);
    assert.deepEqual(restartOnlyChanges(none, a).sort(), [
      'rate_limit_store.address',
      'rate_limit_store.key_prefix',
      'rate_limit_store.port',
      'rate_limit_store.timeout',
      'rate_limit_store.type',
    ]);
  });
});

describe('config: rate limit fields, one rule at a time', () => {
  const limits = (body: string, top = '') => {
    const r = parse(lb(listener(body), top));
    if (!r.ok) assert.fail(r.issues.map(formatIssue).join('\n'));
    return r.config.dynamic.loadBalancers[0]!.listeners[1]!;
  };

  test('name: 1-63 of letters, digits, _ - . :, starting with a letter or digit', () => {
    const l = limits(
      `        rate_limit: [{ name: "a:b.c-d_E", rate: 1 }, { name: "${'x'.repeat(63)}", rate: 1 }]\n`,
    );
    assert.deepEqual(
      l.rateLimits.map((x) => x.name),
      ['a:b.c-d_E', 'x'.repeat(63)],
    );
    const text = lb(
      listener(
        `        rate_limit: [{ name: -a, rate: 1 }, { name: "${'y'.repeat(64)}", key: host, rate: 1 }, { name: "a b", key: route, rate: 1 }]\n`,
      ),
    );
    const why = (s: string) =>
      `invalid name '${s}': use 1-63 letters, digits, '_', '-', '.' or ':', starting with a letter or digit`;
    assert.deepEqual(errors(text), [
      `t.yaml:${where(text, '-a,')}: ${L}.rate_limit[0].name: ${why('-a')}`,
      `t.yaml:${where(text, `"${'y'.repeat(64)}"`)}: ${L}.rate_limit[1].name: ${why('y'.repeat(64))}`,
      `t.yaml:${where(text, '"a b"')}: ${L}.rate_limit[2].name: ${why('a b')}`,
    ]);
  });

  test('rate: required, a finite number, at most 1000000; burst defaults to it', () => {
    const l = limits('        rate_limit: { rate: 1000000 }\n');
    assert.deepEqual([l.rateLimits[0]!.rate, l.rateLimits[0]!.burst], [1_000_000, 1_000_000]);
    const text = lb(
      listener(
        '        rate_limit: [{ name: a, burst: 5 }, { name: b, rate: fast }, { name: c, rate: .inf }, { name: d, rate: 1000001 }]\n',
      ),
    );
    assert.deepEqual(errors(text), [
      `t.yaml:${where(text, '{ name: a, burst')}: ${L}.rate_limit[0].rate: is required (requests per \`per\`, > 0)`,
      `t.yaml:${where(text, 'fast')}: ${L}.rate_limit[1].rate: expected a number, got string 'fast'`,
      `t.yaml:${where(text, '.inf')}: ${L}.rate_limit[2].rate: expected a number, got number Infinity`,
      `t.yaml:${where(text, '1000001')}: ${L}.rate_limit[3].rate: 1000001 is out of range: at most 1000000`,
    ]);
  });

  test('a limit refused for its rate or name claims no name: only its own error is reported', () => {
    const zero = lb(listener('        rate_limit: [{ rate: 0 }, { rate: 1 }]\n'));
    assert.deepEqual(errors(zero), [
      `t.yaml:${where(zero, '0 }')}: ${L}.rate_limit[0].rate: 0 must be greater than 0 (a limit of 0 admits nothing; remove the limit instead)`,
    ]);
    const names = lb(
      listener('        rate_limit: [{ name: 5, rate: 1 }, { name: 6, key: host, rate: 1 }]\n'),
    );
    assert.deepEqual(errors(names), [
      `t.yaml:${where(names, '5,')}: ${L}.rate_limit[0].name: expected a string, got number 5 (quote it: "5")`,
      `t.yaml:${where(names, '6,')}: ${L}.rate_limit[1].name: expected a string, got number 6 (quote it: "6")`,
    ]);
  });

  test('burst: at least 1, at most 10000000', () => {
    const l = limits(
      '        rate_limit: [{ name: a, rate: 0.5, burst: 1 }, { name: b, rate: 1, burst: 10000000 }]\n',
    );
    assert.deepEqual(
      l.rateLimits.map((x) => x.burst),
      [1, 10_000_000],
    );
    const text = lb(
      listener(
        '        rate_limit: [{ name: a, rate: 1, burst: 0.5 }, { name: b, rate: 1, burst: 10000001 }]\n',
      ),
    );
    assert.deepEqual(errors(text), [
      `t.yaml:${where(text, '0.5')}: ${L}.rate_limit[0].burst: 0.5 must be at least 1 (a bucket smaller than one request never admits any)`,
      `t.yaml:${where(text, '10000001')}: ${L}.rate_limit[1].burst: 10000001 is out of range: at most 10000000`,
    ]);
  });

  test('key: header:NAME needs a token name; bare header and non-strings are unknown key types', () => {
    const text = lb(
      listener(
        '        rate_limit: [{ name: a, key: header, rate: 1 }, { name: b, key: 5, rate: 1 }, { name: c, key: "header:", rate: 1 }, { name: d, key: route, prefix_v6: 56, rate: 1 }]\n',
      ),
    );
    const unknown = (got: string) =>
      `unknown key type ${got}; expected one of: client_ip, header:NAME, host, route, global`;
    assert.deepEqual(errors(text), [
      `t.yaml:${where(text, 'header,')}: ${L}.rate_limit[0].key: ${unknown("'header'")}`,
      `t.yaml:${where(text, '5,')}: ${L}.rate_limit[1].key: ${unknown('number 5')}`,
      `t.yaml:${where(text, '"header:"')}: ${L}.rate_limit[2].key: invalid header name '' in key 'header:'`,
      `t.yaml:${where(text, 'prefix_v6')}: ${L}.rate_limit[3].prefix_v6: only allowed with key client_ip (this limit's key is route)`,
    ]);
    const h = limits('        rate_limit: { key: "header:X-Tenant", rate: 1 }\n');
    assert.equal(h.rateLimits[0]!.name, 'header:x-tenant');
    const err = lb(listener('        rate_limit: { key: "header:X-Tenant", rate: 1, prefix: 24 }\n'));
    assert.deepEqual(errors(err), [
      `t.yaml:${where(err, 'prefix')}: ${L}.rate_limit.prefix: only allowed with key client_ip (this limit's key is header:x-tenant)`,
    ]);
  });

  test('connection_rate_limit: named connections, no key, its own mode and scope', () => {
    const l = limits(
      '        connection_rate_limit: { rate: 3, per: 2s, mode: dry_run, scope: global }\n',
      'rate_limit_store: { type: redis }\n',
    );
    assert.deepEqual(l.connectionRateLimit, {
      name: 'connections',
      key: 'client_ip',
      header: undefined,
      prefix: 32,
      prefixV6: 64,
      rate: 3,
      perMs: 2000,
      burst: 3,
      mode: 'dry_run',
      scope: 'global',
    });
    const text = lb(listener('        connection_rate_limit: { key: host, rate: 1, mode: log }\n'));
    assert.deepEqual(errors(text), [
      `t.yaml:${where(text, 'key:')}: ${L}.connection_rate_limit.key: unknown key 'key'; did you mean 'per'?`,
      `t.yaml:${where(text, 'log')}: ${L}.connection_rate_limit.mode: invalid value 'log'; expected one of: enforce, dry_run`,
    ]);
  });

  test('rate_limit_allow: strings that are IPs or CIDRs', () => {
    const text = lb(listener('        rate_limit_allow: [5, proxy.example, "2001:db8::/129"]\n'));
    assert.deepEqual(errors(text), [
      `t.yaml:${where(text, '5,')}: ${L}.rate_limit_allow[0]: expected a string, got number 5 (quote it: "5")`,
      `t.yaml:${where(text, 'proxy.example')}: ${L}.rate_limit_allow[1]: expected an IP address or CIDR, got 'proxy.example'`,
      `t.yaml:${where(text, '"2001')}: ${L}.rate_limit_allow[2]: invalid prefix length '/129' in '2001:db8::/129': must be 0-128`,
    ]);
    const l = limits('        rate_limit_allow: ["2001:db8::/32", 10.1.2.3]\n');
    assert.deepEqual(
      l.rateLimitAllow.map((c) => [c.text, c.family, c.prefix]),
      [
        ['2001:db8::/32', 6, 32],
        ['10.1.2.3', 4, 32],
      ],
    );
  });

  test('rate_limit_store: type required, defaults filled in, address an IP literal', () => {
    const at = (top: string) => {
      const r = parse(lb('', top));
      if (!r.ok) assert.fail(r.issues.map(formatIssue).join('\n'));
      return r.config.static.rateLimitStore;
    };
    assert.deepEqual(at('rate_limit_store: { type: redis }\n'), {
      type: 'redis',
      address: '127.0.0.1',
      port: 6379,
      keyPrefix: 'fiberlb:rl:',
      timeoutMs: 100,
    });
    assert.deepEqual(
      at('rate_limit_store: { type: redis, address: "::1", key_prefix: "lb1:", timeout: 1s }\n'),
      {
        type: 'redis',
        address: '::1',
        port: 6379,
        keyPrefix: 'lb1:',
        timeoutMs: 1000,
      },
    );
    const text = lb('', 'rate_limit_store: { address: redis.internal, timeout: 0ms }\n');
    assert.deepEqual(errors(text), [
      't.yaml:1:19: rate_limit_store.type: is required (one of: redis)',
      `t.yaml:${where(text, 'redis.internal')}: rate_limit_store.address: expected an IP address, got 'redis.internal' (hostnames are not allowed here)`,
      `t.yaml:${where(text, '0ms')}: rate_limit_store.timeout: must be greater than 0`,
    ]);
  });
});
