import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { checkConfigFile } from '../src/config/check.ts';
import { formatDuration, MAX_DURATION_MS, parseDuration } from '../src/config/duration.ts';
import { FileSource } from '../src/config/file-source.ts';
import type { Config } from '../src/config/model.ts';
import { parseSize } from '../src/config/size.ts';
import {
  formatIssue,
  parseConfigText,
  type ValidationResult,
  validateConfigObject,
} from '../src/config/validate.ts';
import { where, whereAfter } from './helpers/yaml-pos.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const FIXTURES = join(ROOT, 'test/fixtures/config');

// Line numbers in the expectations below refer to this document (line 1 = load_balancers).
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
        backends:
          - { address: 127.0.0.1, port: 9001 }
`;

/** BASE with exact substitutions; each `from` must occur exactly once so edits stay deliberate. */
function edit(...pairs: Array<[string, string]>): string {
  let text = BASE;
  for (const [from, to] of pairs) {
    assert.equal(text.split(from).length, 2, `'${from}' must occur once`);
    text = text.replace(from, to);
  }
  return text;
}

function ok(r: ValidationResult): Config {
  if (!r.ok) assert.fail(`expected valid config, got:\n${r.issues.map(formatIssue).join('\n')}`);
  return r.config;
}

function errors(text: string, file = 't.yaml'): string[] {
  const r = parseConfigText(text, file, { cpuCount: 2 });
  assert.equal(r.ok, false, 'expected validation to fail');
  return r.ok ? [] : r.issues.map(formatIssue);
}

const L0 = 'load_balancers[0]';
const LS0 = `${L0}.listeners[0]`;

describe('config errors: exact file:line:col: path: reason', () => {
  test('YAML syntax error', () => {
    assert.deepEqual(errors('admin: { port: 9092\nload_balancers: []\n'), [
      't.yaml:2:1: (yaml): Flow map in block collection must be sufficiently indented and end with a }',
    ]);
  });

  test('duplicate YAML key names the key', () => {
    assert.deepEqual(errors('admin:\n  port: 1\n  port: 2\nload_balancers: []\n'), [
      "t.yaml:3:3: (yaml): duplicate key 'port'",
    ]);
  });

  test('empty document and non-mapping root', () => {
    assert.deepEqual(errors(''), [
      't.yaml:1:1: (root): config is empty; expected a mapping with load_balancers',
    ]);
    assert.deepEqual(errors('- 1\n'), ['t.yaml:1:1: (root): expected a mapping, got a list']);
    assert.deepEqual(errors('admin: {}\n'), [
      't.yaml:1:1: load_balancers: is required (may be an empty list)',
    ]);
  });

  test('unknown key at the key, with the closest known key suggested', () => {
    assert.deepEqual(errors(edit(['port: 8080', 'prot: 8080'])), [
      `t.yaml:7:9: ${LS0}.port: is required`,
      `t.yaml:8:9: ${LS0}.prot: unknown key 'prot'; did you mean 'port'?`,
    ]);
  });

  test('unknown key: camelCase spelling suggests the snake_case key; far-off keys get no suggestion', () => {
    assert.deepEqual(errors(edit(['default_pool: web', 'defaultPool: web'])), [
      `t.yaml:7:9: ${LS0}.default_pool: is required when the listener has no routes`,
      `t.yaml:10:9: ${LS0}.defaultPool: unknown key 'defaultPool'; did you mean 'default_pool'?`,
    ]);
    assert.deepEqual(errors(`${BASE}frobnicate: 1\n`), ["t.yaml:15:1: frobnicate: unknown key 'frobnicate'"]);
  });

  test('wrong types', () => {
    assert.deepEqual(errors(edit(['port: 8080', 'port: "8080"'], ['org: platform', 'org: 42'])), [
      `t.yaml:3:10: ${L0}.org: expected a string, got number 42 (quote it: "42")`,
      `t.yaml:8:15: ${LS0}.port: expected an integer, got string '8080'`,
    ]);
    const text = 'admin: { port: 9092 }\ncluster: { workers: [2] }\nload_balancers: 5\n';
    assert.deepEqual(errors(text), [
      "t.yaml:2:21: cluster.workers: expected an integer 1-256 or 'auto', got a list",
      't.yaml:3:17: load_balancers: expected a list, got number 5',
    ]);
  });

  test('a list where a mapping is expected', () => {
    const text = 'admin: [127.0.0.1]\nload_balancers: []\n';
    assert.deepEqual(errors(text), ['t.yaml:1:8: admin: expected a mapping, got a list']);
  });

  test('port out of range', () => {
    assert.deepEqual(errors(edit(['port: 8080', 'port: 70000'], ['port: 9001', 'port: 0'])), [
      `t.yaml:8:15: ${LS0}.port: 70000 is out of range 1-65535`,
      `t.yaml:14:41: ${L0}.pools[0].backends[0].port: 0 is out of range 1-65535`,
    ]);
  });

  test('duplicate listener, pool and load balancer names', () => {
    const text = edit(
      [
        '        default_pool: web\n',
        '        default_pool: web\n      - { name: api, port: 8081, protocol: http, default_pool: web }\n',
      ],
      [
        '          - { address: 127.0.0.1, port: 9001 }\n',
        '          - { address: 127.0.0.1, port: 9001 }\n      - { name: web }\n  - { name: public, org: o, project: p, vip: 127.0.0.2 }\n',
      ],
    );
    assert.deepEqual(errors(text), [
      `t.yaml:11:17: ${L0}.listeners[1].name: duplicate listener name 'api'; first used at ${LS0}`,
      `t.yaml:16:17: ${L0}.pools[1].name: duplicate pool name 'web'; first used at ${L0}.pools[0]`,
      "t.yaml:17:13: load_balancers[1].name: duplicate load balancer name 'public'; first used at load_balancers[0]",
    ]);
  });

  test('duplicate backends: address:port and explicit id', () => {
    const text = edit([
      '          - { address: 127.0.0.1, port: 9001 }\n',
      '          - { address: 127.0.0.1, port: 9001 }\n' +
        '          - { address: 127.0.0.1, port: 9001 }\n' +
        '          - { id: 127.0.0.1:9001, address: 127.0.0.1, port: 9002 }\n',
    ]);
    assert.deepEqual(errors(text), [
      `t.yaml:15:24: ${L0}.pools[0].backends[1].address: duplicate backend 127.0.0.1:9001; first used at ${L0}.pools[0].backends[0]`,
      `t.yaml:16:19: ${L0}.pools[0].backends[2].id: duplicate backend id '127.0.0.1:9001'; first used at ${L0}.pools[0].backends[0]`,
    ]);
  });

  test('duplicate bind (vip, port, transport) across load balancers, reported at the second', () => {
    const text = `${BASE}  - name: other
    org: platform
    project: core
    vip: 127.0.0.1
    listeners:
      - { name: raw, port: 8080, protocol: tcp, default_pool: p }
      - { name: dns, port: 8080, protocol: udp, default_pool: p }
    pools:
      - { name: p }
`;
    assert.deepEqual(errors(text), [
      `t.yaml:20:28: load_balancers[1].listeners[0].port: 127.0.0.1:8080/tcp is already bound by ${LS0} (public/api)`,
    ]);
  });

  test('wildcard VIP conflicts with a specific address on the same port, and the admin port counts', () => {
    const text = `admin: { port: 8080 }\n${edit(['vip: 127.0.0.1', 'vip: 0.0.0.0'])}`;
    assert.deepEqual(errors(text), [`t.yaml:9:15: ${LS0}.port: 0.0.0.0:8080/tcp is already bound by admin`]);
  });

  test('dangling default_pool and route pool', () => {
    const text = edit([
      '        default_pool: web\n',
      '        default_pool: wbe\n        routes:\n          - { match: { path_prefix: /iam/ }, pool: iam }\n',
    ]);
    assert.deepEqual(errors(text), [
      `t.yaml:10:23: ${LS0}.default_pool: pool 'wbe' is not defined in load balancer 'public' (defined pools: web)`,
      `t.yaml:12:52: ${LS0}.routes[0].pool: pool 'iam' is not defined in load balancer 'public' (defined pools: web)`,
    ]);
  });

  test('10.0.300.100 is an invalid IPv4 address naming octet 300 (VIP, backend, admin)', () => {
    const text = `admin: { address: 10.0.300.100 }\n${edit(['vip: 127.0.0.1', 'vip: 10.0.300.100'], ['address: 127.0.0.1', 'address: 10.0.300.100'])}`;
    assert.deepEqual(errors(text), [
      "t.yaml:1:19: admin.address: invalid IPv4 address '10.0.300.100': octet 300 is out of range 0-255",
      `t.yaml:6:10: ${L0}.vip: invalid IPv4 address '10.0.300.100': octet 300 is out of range 0-255`,
      `t.yaml:15:24: ${L0}.pools[0].backends[0].address: invalid IPv4 address '10.0.300.100': octet 300 is out of range 0-255`,
    ]);
  });

  test('VIPs must be IP literals; backends may be hostnames, but not malformed ones', () => {
    const text = edit(
      ['vip: 127.0.0.1', 'vip: lb.example.com'],
      [
        '          - { address: 127.0.0.1, port: 9001 }\n',
        '          - { address: web-1.internal.example, port: 80 }\n' +
          '          - { address: bad_host, port: 80 }\n' +
          '          - { address: 10.0.200, port: 80 }\n' +
          '          - { address: "::1", port: 80 }\n',
      ],
    );
    assert.deepEqual(errors(text), [
      `t.yaml:5:10: ${L0}.vip: expected an IP address, got 'lb.example.com' (hostnames are not allowed here)`,
      `t.yaml:15:24: ${L0}.pools[0].backends[1].address: invalid hostname 'bad_host': label 'bad_host' must be 1-63 letters, digits or '-', not starting or ending with '-'`,
      `t.yaml:16:24: ${L0}.pools[0].backends[2].address: invalid IPv4 address '10.0.200': expected 4 octets`,
    ]);
  });

  test('invalid CIDR 10.0.400.0/24 in trusted_proxies', () => {
    const text = edit([
      'default_pool: web\n',
      'default_pool: web\n        trusted_proxies: [10.0.200.0/24, 10.0.400.0/24, 10.0.0.0/33, proxy.example]\n',
    ]);
    assert.deepEqual(errors(text), [
      `t.yaml:11:42: ${LS0}.trusted_proxies[1]: invalid IPv4 address '10.0.400.0': octet 400 is out of range 0-255`,
      `t.yaml:11:57: ${LS0}.trusted_proxies[2]: invalid prefix length '/33' in '10.0.0.0/33': must be 0-32`,
      `t.yaml:11:70: ${LS0}.trusted_proxies[3]: expected an IP address or CIDR, got 'proxy.example'`,
    ]);
  });

  test('bad durations: bare number, unknown unit, zero timeout', () => {
    const text = edit([
      'default_pool: web\n',
      'default_pool: web\n        timeouts: { connect: 5, upstream_body: 5x, client_header: 0s }\n',
    ]);
    assert.deepEqual(errors(text), [
      `t.yaml:11:30: ${LS0}.timeouts.connect: duration needs a unit (ms, s, m, h)`,
      `t.yaml:11:48: ${LS0}.timeouts.upstream_body: invalid duration '5x': expected e.g. 250ms, 2s, 1m, 1h, 1m30s`,
      `t.yaml:11:67: ${LS0}.timeouts.client_header: must be greater than 0`,
    ]);
  });

  test('timeouts.idle is for tcp/udp; http listeners use client_idle', () => {
    const text = edit(['default_pool: web\n', 'default_pool: web\n        timeouts: { idle: 5s }\n']);
    assert.deepEqual(errors(text), [
      `t.yaml:11:21: ${LS0}.timeouts.idle: only allowed on tcp/tls_passthrough/udp listeners (this listener is http)`,
    ]);
  });

  test('bad sizes: unknown unit and out of range', () => {
    const text = edit([
      'default_pool: web\n',
      'default_pool: web\n        limits: { max_header_bytes: 2MiB, max_body_bytes: 10XB }\n',
    ]);
    assert.deepEqual(errors(text), [
      `t.yaml:11:37: ${LS0}.limits.max_header_bytes: size 2MiB is out of range 1KiB-1MiB`,
      `t.yaml:11:59: ${LS0}.limits.max_body_bytes: invalid size '10XB': expected bytes or e.g. 512B, 16KiB, 10MiB, 1GiB, 64KB, 1MB`,
    ]);
  });

  test('limits.max_headers: an integer 1-1000, http listeners only', () => {
    const text = edit([
      '        default_pool: web\n',
      '        default_pool: web\n        limits: { max_headers: 1001 }\n' +
        '      - { name: t, port: 7000, protocol: tcp, default_pool: web, limits: { max_headers: 10 } }\n' +
        '      - { name: z, port: 7001, protocol: http, default_pool: web, limits: { max_headers: 0 } }\n' +
        '      - { name: y, port: 7002, protocol: http, default_pool: web, limits: { max_headers: ten } }\n',
    ]);
    assert.deepEqual(errors(text), [
      `t.yaml:11:32: ${LS0}.limits.max_headers: 1001 is out of range 1-1000`,
      `t.yaml:12:76: ${L0}.listeners[1].limits.max_headers: only allowed on http/https listeners (this listener is tcp)`,
      `t.yaml:13:90: ${L0}.listeners[2].limits.max_headers: 0 is out of range 1-1000`,
      `t.yaml:14:90: ${L0}.listeners[3].limits.max_headers: expected an integer, got string 'ten'`,
    ]);
  });

  test('bad enums list the allowed values', () => {
    const text = edit(
      ['protocol: http', 'protocol: htp'],
      ['      - name: web\n', '      - name: web\n        algorithm: fastest\n'],
    );
    assert.deepEqual(errors(text), [
      `t.yaml:9:19: ${LS0}.protocol: invalid value 'htp'; expected one of: tcp, udp, http, https, tls_passthrough`,
      `t.yaml:13:20: ${L0}.pools[0].algorithm: invalid value 'fastest'; expected one of: round_robin, weighted_round_robin, least_connections, random, p2c, ip_hash, maglev`,
    ]);
  });

  test('routes on a tcp listener', () => {
    const text = edit(
      ['protocol: http', 'protocol: tcp'],
      [
        'default_pool: web\n',
        'default_pool: web\n        routes:\n          - { match: { host: a.example }, pool: web }\n',
      ],
    );
    assert.deepEqual(errors(text), [
      `t.yaml:11:9: ${LS0}.routes: only allowed on http/https/tls_passthrough listeners (this listener is tcp)`,
    ]);
  });

  test('an http listener with an empty routes list still needs default_pool', () => {
    assert.deepEqual(errors(edit(['        default_pool: web\n', '        routes: []\n'])), [
      `t.yaml:7:9: ${LS0}.default_pool: is required when the listener has no routes`,
    ]);
  });

  test('https without tls', () => {
    assert.deepEqual(errors(edit(['protocol: http', 'protocol: https'])), [
      `t.yaml:7:9: ${LS0}.tls: is required for https listeners`,
    ]);
  });

  test('tls on a non-https listener and an empty certificate list', () => {
    const text = edit(['default_pool: web\n', 'default_pool: web\n        tls: { certificates: [] }\n']);
    assert.deepEqual(errors(text), [
      `t.yaml:11:9: ${LS0}.tls: only allowed on https listeners (this listener is http)`,
    ]);
    const https = edit(
      ['protocol: http', 'protocol: https'],
      ['default_pool: web\n', 'default_pool: web\n        tls: { certificates: [] }\n'],
    );
    assert.deepEqual(errors(https), [
      `t.yaml:11:30: ${LS0}.tls.certificates: must list at least one { cert, key }`,
    ]);
  });

  test('proxy_protocol.accept without trusted_proxies', () => {
    const text = edit([
      'default_pool: web\n',
      'default_pool: web\n        proxy_protocol: { accept: true }\n',
    ]);
    assert.deepEqual(errors(text), [
      `t.yaml:11:27: ${LS0}.proxy_protocol.accept: requires a non-empty trusted_proxies list on this listener`,
    ]);
  });

  test('a pool that sends PROXY headers may only serve tcp/tls_passthrough listeners', () => {
    const text = edit(['      - name: web\n', '      - name: web\n        proxy_protocol: v2\n']);
    assert.deepEqual(errors(text), [
      `t.yaml:10:23: ${LS0}.default_pool: pool 'web' sends a PROXY protocol header (proxy_protocol), which only tcp and tls_passthrough listeners support, not http`,
    ]);
    const tcp = ok(
      parseConfigText(text.replace('protocol: http', 'protocol: tcp'), 't.yaml', { cpuCount: 2 }),
    );
    assert.equal(tcp.dynamic.loadBalancers[0]!.pools[0]!.proxyProtocol, 'v2');
  });

  test('missing required fields', () => {
    const text = 'load_balancers:\n  - name: x\n    listeners:\n      - { name: l }\n';
    assert.deepEqual(errors(text), [
      `t.yaml:2:5: ${L0}.org: is required`,
      `t.yaml:2:5: ${L0}.project: is required`,
      `t.yaml:2:5: ${L0}.vip: is required`,
      `t.yaml:4:9: ${LS0}.port: is required`,
      `t.yaml:4:9: ${LS0}.protocol: is required (one of: tcp, udp, http, https, tls_passthrough)`,
    ]);
  });

  test('health check: timeout must be below interval; path only for http', () => {
    const text = edit([
      '      - name: web\n',
      '      - name: web\n        health_check: { type: tcp, path: /x, interval: 1s, timeout: 1s }\n',
    ]);
    assert.deepEqual(errors(text), [
      `t.yaml:13:36: ${L0}.pools[0].health_check.path: only allowed when type is http or https`,
      `t.yaml:13:69: ${L0}.pools[0].health_check.timeout: timeout (1s) must be less than interval (1s)`,
    ]);
  });

  test('many problems in one file are all reported in one result, in document order', () => {
    const text = readFileSync(join(FIXTURES, 'many-errors.yaml'), 'utf8');
    const lines = errors(text, 'many-errors.yaml');
    assert.deepEqual(lines, [
      'many-errors.yaml:3:9: admin.port: 99999 is out of range 1-65535',
      'many-errors.yaml:5:12: cluster.workers: 0 is out of range 1-256',
      'many-errors.yaml:6:18: cluster.drain_timeout: duration needs a unit (ms, s, m, h)',
      "many-errors.yaml:10:10: load_balancers[0].vip: invalid IPv4 address '10.0.300.100': octet 300 is out of range 0-255",
      'many-errors.yaml:14:15: load_balancers[0].listeners[0].port: 0 is out of range 1-65535',
      "many-errors.yaml:15:19: load_balancers[0].listeners[0].protocol: invalid value 'tcpp'; expected one of: tcp, udp, http, https, tls_passthrough",
      "many-errors.yaml:16:23: load_balancers[0].listeners[0].default_pool: pool 'nowhere' is not defined in load balancer 'public' (defined pools: web)",
      "many-errors.yaml:17:9: load_balancers[0].listeners[0].tiemouts: unknown key 'tiemouts'; did you mean 'timeouts'?",
      "many-errors.yaml:18:15: load_balancers[0].listeners[1].name: duplicate listener name 'api'; first used at load_balancers[0].listeners[0]",
      "many-errors.yaml:22:27: load_balancers[0].listeners[1].trusted_proxies[0]: invalid IPv4 address '10.0.400.0': octet 400 is out of range 0-255",
      "many-errors.yaml:25:20: load_balancers[0].pools[0].algorithm: invalid value 'fastest'; expected one of: round_robin, weighted_round_robin, least_connections, random, p2c, ip_hash, maglev",
      'many-errors.yaml:27:55: load_balancers[0].pools[0].backends[0].weight: 5000 is out of range 1-1000',
    ]);
  });
});

describe('valid config', () => {
  test('defaults are filled in', () => {
    const config = ok(parseConfigText(BASE, '/etc/fiberlb/fiberlb.yaml', { cpuCount: 3 }));
    assert.deepEqual(config.static, {
      admin: {
        address: '127.0.0.1',
        port: 9092,
        tokenFile: undefined,
        metricsOpen: false,
        stateFile: '/etc/fiberlb/.fiberlb/admin-state.json',
      },
      cluster: { workers: 3, drainTimeoutMs: 30_000, ticketRotationMs: 3_600_000, workerOldSpaceMiB: 64 },
      source: { type: 'file', watch: false },
      rateLimitStore: undefined,
    });
    assert.deepEqual(config.dynamic, {
      loadBalancers: [
        {
          name: 'public',
          org: 'platform',
          project: 'core',
          vip: '127.0.0.1',
          listeners: [
            {
              name: 'api',
              port: 8080,
              protocol: 'http',
              defaultPool: 'web',
              routes: [],
              connectionLimit: 0,
              timeouts: {
                connectMs: 5_000,
                idleMs: 60_000,
                clientHeaderMs: 10_000,
                clientBodyMs: 30_000,
                clientIdleMs: 60_000,
                upstreamResponseMs: 60_000,
                upstreamBodyMs: 60_000,
                tunnelIdleMs: 3_600_000,
                clientBodyTotalMs: 600_000,
              },
              limits: {
                maxHeaderBytes: 16_384,
                maxHeaders: 100,
                maxBodyBytes: 10_485_760,
                maxSessions: 10_000,
                bufferBodyBytes: 65_536,
                minBodyRate: 256,
                drainBodyBytes: 1_048_576,
              },
              trustedProxies: [],
              acceptProxyProtocol: false,
              tls: undefined,
              rateLimits: [],
              rateLimitAllow: [],
              connectionRateLimit: undefined,
              maxConnectionsPerIp: 0,
              redirectHttps: undefined,
              hsts: undefined,
            },
          ],
          pools: [
            {
              name: 'web',
              algorithm: 'round_robin',
              proxyProtocol: undefined,
              healthCheck: undefined,
              maxQueue: 1024,
              queueTimeoutMs: 5_000,
              tls: undefined,
              http2: false,
              retry: { attempts: 2, onStatus: [], budgetPercent: 20, budgetMin: 3, maxRetryAfterMs: 1000 },
              outlierDetection: undefined,
              panicThreshold: 0,
              slowStartMs: 0,
              backends: [
                {
                  id: '127.0.0.1:9001',
                  address: '127.0.0.1',
                  port: 9001,
                  weight: 1,
                  adminState: 'enabled',
                  maxConnections: 0,
                  maxRequests: 0,
                },
              ],
            },
          ],
        },
      ],
    });
  });

  test('idle timeout default depends on the protocol; udp/tcp defaults and explicit values', () => {
    const text = edit([
      '        default_pool: web\n',
      '        default_pool: web\n' +
        '      - { name: t, port: 7000, protocol: tcp, default_pool: web }\n' +
        '      - { name: p, port: 7001, protocol: tls_passthrough, default_pool: web }\n' +
        '      - { name: u, port: 7000, protocol: udp, default_pool: web, limits: { max_sessions: 5 } }\n',
    ]);
    const [lb] = ok(parseConfigText(text, 't.yaml')).dynamic.loadBalancers;
    assert.deepEqual(
      lb!.listeners.map((l) => [l.name, l.timeouts.idleMs]),
      [
        ['api', 60_000],
        ['t', 300_000],
        ['p', 300_000],
        ['u', 30_000],
      ],
    );
    assert.equal(lb!.listeners[3]!.limits.maxSessions, 5);
  });

  test('routes, rate limit, health check and backends are converted', () => {
    const text = edit(
      [
        '        default_pool: web\n',
        '        routes:\n' +
          '          - match: { host: API.Example.com, path_prefix: /v1/, headers: { X-Canary: "1", x-any: "*" }, method: [get, POST] }\n' +
          '            pool: web\n' +
          '          - { match: { host: "*.example.com", method: delete }, pool: web }\n' +
          '        rate_limit: { rate: 100, per: 1m30s }\n' +
          '        timeouts: { upstream_response: 1.5s, client_idle: 250ms }\n' +
          '        limits: { max_header_bytes: 64KB, max_headers: 250, max_body_bytes: 0 }\n' +
          '        trusted_proxies: [10.0.200.0/24, "::1"]\n' +
          '        proxy_protocol: { accept: true }\n',
      ],
      [
        '          - { address: 127.0.0.1, port: 9001 }\n',
        '          - { id: a, address: "::1", port: 9001, weight: 5, admin_state: drain }\n' +
          '          - { address: "::1", port: 9002 }\n' +
          '        health_check: { type: http, interval: 5s, timeout: 2s }\n' +
          '        algorithm: maglev\n',
      ],
    );
    const [lb] = ok(parseConfigText(text, 't.yaml')).dynamic.loadBalancers;
    const l = lb!.listeners[0]!;
    assert.equal(l.defaultPool, undefined);
    assert.deepEqual(l.routes, [
      {
        match: {
          host: 'api.example.com',
          sni: undefined,
          pathPrefix: '/v1/',
          headers: [
            { name: 'x-canary', value: '1' },
            { name: 'x-any', value: '*' },
          ],
          methods: ['GET', 'POST'],
        },
        pool: 'web',
        rateLimits: [],
      },
      {
        match: {
          host: '*.example.com',
          sni: undefined,
          pathPrefix: undefined,
          headers: [],
          methods: ['DELETE'],
        },
        pool: 'web',
        rateLimits: [],
      },
    ]);
    assert.deepEqual(l.rateLimits, [
      {
        name: 'client_ip',
        key: 'client_ip',
        header: undefined,
        prefix: 32,
        prefixV6: 64,
        rate: 100,
        perMs: 90_000,
        burst: 100,
        mode: 'enforce',
        scope: 'local',
      },
    ]);
    assert.equal(l.timeouts.upstreamResponseMs, 1500);
    assert.equal(l.timeouts.clientIdleMs, 250);
    assert.deepEqual(l.limits, {
      maxHeaderBytes: 64_000,
      maxHeaders: 250,
      maxBodyBytes: 0,
      maxSessions: 10_000,
      bufferBodyBytes: 65_536,
      minBodyRate: 256,
      drainBodyBytes: 1_048_576,
    });
    assert.deepEqual(
      l.trustedProxies.map((c) => [c.text, c.family, c.prefix]),
      [
        ['10.0.200.0/24', 4, 24],
        ['::1', 6, 128],
      ],
    );
    assert.equal(l.acceptProxyProtocol, true);
    const pool = lb!.pools[0]!;
    assert.deepEqual(pool.healthCheck, {
      type: 'http',
      path: '/',
      method: 'GET',
      host: undefined,
      expectStatus: [{ from: 200, to: 399 }],
      bodyContains: undefined,
      intervalMs: 5000,
      timeoutMs: 2000,
      jitterMs: 0,
      rise: 2,
      fall: 3,
    });
    assert.equal(pool.algorithm, 'maglev');
    assert.equal(pool.proxyProtocol, undefined);
    assert.deepEqual(pool.backends, [
      {
        id: 'a',
        address: '::1',
        port: 9001,
        weight: 5,
        adminState: 'drain',
        maxConnections: 0,
        maxRequests: 0,
      },
      {
        id: '[::1]:9002',
        address: '::1',
        port: 9002,
        weight: 1,
        adminState: 'enabled',
        maxConnections: 0,
        maxRequests: 0,
      },
    ]);
  });

  test('relative paths are resolved against the config file directory; absolute ones kept', () => {
    const text = `admin: { token_file: ../run/admin.token }\n${edit(
      ['protocol: http', 'protocol: https'],
      [
        'default_pool: web\n',
        'default_pool: web\n        tls:\n          min_version: TLSv1.3\n          certificates:\n' +
          '            - { cert: tls/a.crt, key: /secure/a.key }\n',
      ],
    )}`;
    const config = ok(parseConfigText(text, '/etc/fiberlb/conf/fiberlb.yaml'));
    assert.equal(config.static.admin.tokenFile, '/etc/fiberlb/run/admin.token');
    const tls = config.dynamic.loadBalancers[0]!.listeners[0]!.tls!;
    assert.equal(tls.minVersion, 'TLSv1.3');
    // parseConfigText alone reads no files: paths only (the file source reads them).
    assert.deepEqual(tls.certificates, [
      {
        cert: '/etc/fiberlb/conf/tls/a.crt',
        key: '/secure/a.key',
        certPem: undefined,
        keyPem: undefined,
        names: [],
      },
    ]);
  });

  test('source.watch: a boolean, default false, only for the file source', () => {
    const r = parseConfigText('source: { type: file, watch: true }\nload_balancers: []\n', 't.yaml');
    assert.deepEqual(ok(r).static.source, { type: 'file', watch: true });
    assert.deepEqual(errors('source: { type: file, watch: yes }\nload_balancers: []\n'), [
      "t.yaml:1:30: source.watch: expected true or false, got string 'yes'",
    ]);
    assert.deepEqual(
      errors(
        'source: { type: chainfire, endpoints: [http://127.0.0.1:2379], watch: true }\nload_balancers: []\n',
      ),
      ['t.yaml:1:64: source.watch: only allowed with source type file'],
    );
  });

  test('cluster.workers: auto uses cpuCount; chainfire source fields', () => {
    const text = `cluster: { workers: auto, drain_timeout: 0s }
source:
  type: chainfire
  endpoints: [http://10.0.200.10:2379, "https://[fd00::1]:2379"]
load_balancers: []
`;
    const config = ok(parseConfigText(text, 't.yaml', { cpuCount: 6 }));
    assert.deepEqual(config.static.cluster, {
      workers: 6,
      drainTimeoutMs: 0,
      ticketRotationMs: 3_600_000,
      workerOldSpaceMiB: 64,
    });
    assert.deepEqual(config.static.source, {
      type: 'chainfire',
      endpoints: ['http://10.0.200.10:2379', 'https://[fd00::1]:2379'],
      prefix: '/fiberlb/',
      api: 'etcd',
      tls: undefined,
      username: undefined,
      passwordFile: undefined,
      lastGood: resolve('.fiberlb/last-good.json'),
    });
    assert.deepEqual(
      errors(`source:
  type: chainfire
  endpoints: [http://127.0.0.1:2379]
  api: grpc
  tls: { cert: c.pem }
  username: fiberlb
load_balancers: []
`),
      [
        't.yaml:2:3: source: username and password_file go together',
        "t.yaml:4:8: source.api: invalid value 'grpc'; expected one of: etcd, chainfire",
        't.yaml:5:8: source.tls.ca: is required',
        't.yaml:5:8: source.tls: cert and key go together (a client certificate needs its key)',
      ],
    );
    assert.deepEqual(
      errors(`source:
  type: chainfire
  endpoints: [http://127.0.0.1:2379]
  api: chainfire
  username: u
  password_file: pw
load_balancers: []
`),
      ["t.yaml:5:3: source.username: not with api: chainfire (Chainfire's API has no Auth service)"],
    );
    assert.deepEqual(errors('source: { type: file, last_good: x.json, api: etcd }\nload_balancers: []\n'), [
      't.yaml:1:23: source.last_good: only allowed with source type chainfire',
      't.yaml:1:42: source.api: only allowed with source type chainfire',
    ]);
    assert.deepEqual(
      errors(
        'source: { type: chainfire, endpoints: [http://10.0.300.10:2379], prefix: fiberlb }\nload_balancers: []\n',
      ),
      [
        "t.yaml:1:40: source.endpoints[0]: invalid endpoint 'http://10.0.300.10:2379': invalid IPv4 address '10.0.300.10': octet 300 is out of range 0-255",
        "t.yaml:1:74: source.prefix: prefix 'fiberlb' must start with /",
      ],
    );
    assert.deepEqual(errors('source: { type: chainfire }\nload_balancers: []\n'), [
      't.yaml:1:9: source.endpoints: is required for source type chainfire',
    ]);
  });

  test('the result is deeply frozen', () => {
    const config = ok(parseConfigText(BASE, 't.yaml'));
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.dynamic.loadBalancers));
    assert.ok(Object.isFrozen(config.dynamic.loadBalancers[0]!.listeners[0]!.timeouts));
    assert.ok(Object.isFrozen(config.dynamic.loadBalancers[0]!.pools[0]!.backends[0]));
    assert.throws(() => {
      (config.static.admin as { port: number }).port = 1;
    }, TypeError);
  });
});

describe('validateConfigObject (JSON, e.g. from Chainfire)', () => {
  const json = {
    load_balancers: [
      {
        name: 'public',
        org: 'platform',
        project: 'core',
        vip: '127.0.0.1',
        listeners: [{ name: 'api', port: 8080, protocol: 'http', default_pool: 'web' }],
        pools: [{ name: 'web', backends: [{ address: '127.0.0.1', port: 9001 }] }],
      },
    ],
  };

  test('same rules and result as YAML', () => {
    const fromJson = ok(validateConfigObject(json, 'chainfire', { cpuCount: 3, baseDir: '/etc/fiberlb' }));
    const fromYaml = ok(parseConfigText(BASE, '/etc/fiberlb/fiberlb.yaml', { cpuCount: 3 }));
    assert.deepEqual(fromJson, fromYaml);
  });

  test('issues carry origin and path but no line', () => {
    const bad = structuredClone(json);
    bad.load_balancers[0]!.vip = '10.0.300.100';
    (bad.load_balancers[0]!.listeners[0] as Record<string, unknown>).prot = 1;
    const r = validateConfigObject(bad, '/fiberlb/loadbalancers/platform/core/public');
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.deepEqual(r.issues[0], {
      origin: '/fiberlb/loadbalancers/platform/core/public',
      path: 'load_balancers[0].vip',
      message: "invalid IPv4 address '10.0.300.100': octet 300 is out of range 0-255",
    });
    assert.deepEqual(r.issues.map(formatIssue), [
      "/fiberlb/loadbalancers/platform/core/public: load_balancers[0].vip: invalid IPv4 address '10.0.300.100': octet 300 is out of range 0-255",
      "/fiberlb/loadbalancers/platform/core/public: load_balancers[0].listeners[0].prot: unknown key 'prot'; did you mean 'port'?",
    ]);
  });

  test('non-JSON values are rejected, not crashed on', () => {
    const r = validateConfigObject({ load_balancers: 5n, admin: new Date(0) }, 'x');
    assert.equal(r.ok, false);
    if (!r.ok)
      assert.deepEqual(r.issues.map(formatIssue), [
        'x: admin: expected a mapping, got an object of type Date',
        'x: load_balancers: expected a list, got a bigint',
      ]);
    const none = validateConfigObject(undefined, 'x');
    assert.equal(none.ok, false);
  });
});

describe('properties', () => {
  test('a dotted-quad VIP is accepted iff every octet is 0-255; otherwise the octet is named', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(999), { minLength: 4, maxLength: 4 }), (octets) => {
        const vip = octets.join('.');
        const r = parseConfigText(edit(['vip: 127.0.0.1', `vip: ${vip}`]), 't.yaml');
        const bad = octets.find((o) => o > 255);
        if (bad === undefined) return r.ok;
        return (
          !r.ok &&
          r.issues.length === 1 &&
          formatIssue(r.issues[0]!) ===
            `t.yaml:5:10: ${L0}.vip: invalid IPv4 address '${vip}': octet ${bad} is out of range 0-255`
        );
      }),
    );
  });

  test('formatDuration output parses back to the same milliseconds', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_DURATION_MS }), (ms) => {
        const r = parseDuration(formatDuration(ms));
        return r.ok && r.value === ms;
      }),
    );
  });
});

describe('durations and sizes', () => {
  test('parseDuration', () => {
    assert.deepEqual(parseDuration('250ms'), { ok: true, value: 250 });
    assert.deepEqual(parseDuration('1m30s'), { ok: true, value: 90_000 });
    assert.deepEqual(parseDuration('1h'), { ok: true, value: 3_600_000 });
    assert.deepEqual(parseDuration('0.1s'), { ok: true, value: 100 });
    assert.deepEqual(parseDuration(30), { ok: false, reason: 'duration needs a unit (ms, s, m, h)' });
    assert.deepEqual(parseDuration('30'), { ok: false, reason: 'duration needs a unit (ms, s, m, h)' });
    assert.equal(parseDuration('-1s').ok, false);
    assert.equal(parseDuration('1s ').ok, false);
    assert.equal(parseDuration('0.5ms').ok, false);
    assert.equal(parseDuration('1000h').ok, false); // beyond setTimeout's range
  });

  test('parseSize', () => {
    assert.deepEqual(parseSize(1024), { ok: true, value: 1024 });
    assert.deepEqual(parseSize('512B'), { ok: true, value: 512 });
    assert.deepEqual(parseSize('16KiB'), { ok: true, value: 16_384 });
    assert.deepEqual(parseSize('10MiB'), { ok: true, value: 10_485_760 });
    assert.deepEqual(parseSize('1GiB'), { ok: true, value: 1_073_741_824 });
    assert.deepEqual(parseSize('64KB'), { ok: true, value: 64_000 });
    assert.deepEqual(parseSize('1MB'), { ok: true, value: 1_000_000 });
    assert.equal(parseSize('1.5MiB').ok, false);
    assert.equal(parseSize('16kib').ok, false);
    assert.equal(parseSize(-1).ok, false);
  });
});

describe('shipped configs', () => {
  for (const file of [
    'config/fiberlb.yaml',
    'config/examples/platform.yaml',
    'config/examples/chainfire.yaml',
  ]) {
    test(`${file} validates and contains no invalid platform addresses`, async () => {
      const text = readFileSync(join(ROOT, file), 'utf8');
      assert.ok(!text.includes('10.0.300.'), 'must not contain 10.0.300.');
      assert.ok(!text.includes('10.0.400.'), 'must not contain 10.0.400.');
      ok(parseConfigText(text, join(ROOT, file)));
      const r = await checkConfigFile(join(ROOT, file));
      assert.equal(r.ok, true, r.lines.join('\n'));
    });
  }

  test('the default config has the demo layout', async () => {
    const file = join(ROOT, 'config/fiberlb.yaml');
    const config = ok(parseConfigText(readFileSync(file, 'utf8'), file));
    assert.equal(config.static.admin.tokenFile, join(ROOT, '.fiberlb/admin.token'));
    assert.equal(config.static.cluster.workers, 2);
    const [lb] = config.dynamic.loadBalancers;
    assert.deepEqual(
      lb!.listeners.map((l) => [l.name, l.protocol, l.port, l.defaultPool]),
      [
        ['api', 'http', 8080, 'web'],
        ['raw', 'tcp', 7000, 'echo'],
        ['dns-like', 'udp', 5300, 'udp-echo'],
      ],
    );
    assert.deepEqual(
      lb!.pools.map((p) => [p.name, p.backends.map((b) => `${b.address}:${b.port}`)]),
      [
        ['web', ['127.0.0.1:9001', '127.0.0.1:9002']],
        ['iam', ['127.0.0.1:9003']],
        ['echo', ['127.0.0.1:9004']],
        ['udp-echo', ['127.0.0.1:9005']],
      ],
    );
    const r = await checkConfigFile('config/fiberlb.yaml');
    assert.deepEqual(r, {
      ok: true,
      lines: ['config/fiberlb.yaml: OK (1 load balancer, 3 listeners, 4 pools, 5 backends)'],
    });
  });
});

describe('file source and check', () => {
  test('checkConfigFile on a missing file fails cleanly', async () => {
    const missing = join(FIXTURES, 'does-not-exist.yaml');
    assert.deepEqual(await checkConfigFile(missing), {
      ok: false,
      lines: [`${missing}: (file): cannot read: no such file or directory (ENOENT)`],
    });
  });

  test('checkConfigFile formats every issue of an invalid file', async () => {
    const r = await checkConfigFile(join(FIXTURES, 'many-errors.yaml'));
    assert.equal(r.ok, false);
    assert.equal(r.lines.length, 12);
    assert.match(r.lines[0]!, /many-errors\.yaml:3:9: admin\.port: 99999 is out of range 1-65535$/);
  });

  test('FileSource resolves paths against the file and describes itself by path', async () => {
    const path = join(FIXTURES, 'valid.yaml');
    const source = new FileSource(path, { cpuCount: 1 });
    assert.equal(source.description, path);
    const r = await source.load();
    await source.close();
    assert.equal(r.ok, true);
    if (r.ok) assert.equal(r.config.static.admin.tokenFile, join(FIXTURES, 'admin.token'));
  });
});

describe('addresses, binds and endpoints', () => {
  /** One load balancer per [vip, port, protocol]: listener lN, each with its own pool. */
  function lbs(...binds: Array<[string, number, string]>): string {
    return `load_balancers:\n${binds
      .map(
        ([vip, port, protocol], i) =>
          `  - { name: lb${i}, org: o, project: p, vip: "${vip}",\n` +
          `      listeners: [{ name: l${i}, port: ${port}, protocol: ${protocol}, default_pool: p }],\n` +
          `      pools: [{ name: p, backends: [{ address: 127.0.0.1, port: 9001 }] }] }\n`,
      )
      .join('')}`;
  }
  const bound = (text: string, i: number, what: string, by: number) =>
    `t.yaml:${whereAfter(text, `l${i}, port: `)}: load_balancers[${i}].listeners[0].port: ${what} is already bound by load_balancers[${by}].listeners[0] (lb${by}/l${by})`;

  test('one port per address and transport; other ports, transports and addresses are free', () => {
    ok(
      parseConfigText(
        lbs(
          ['10.0.0.1', 80, 'tcp'],
          ['10.0.0.1', 81, 'tcp'],
          ['10.0.0.1', 80, 'udp'],
          ['10.0.0.2', 80, 'tcp'],
          ['::1', 80, 'tcp'],
        ),
        't.yaml',
      ),
    );
    const text = lbs(['10.0.0.1', 80, 'tcp'], ['10.0.0.1', 80, 'http']);
    assert.deepEqual(errors(text), [bound(text, 1, '10.0.0.1:80/tcp', 0)]);
  });

  test('the same IPv6 address written twice ways clashes, named as written in brackets', () => {
    const text = lbs(['::1', 53, 'udp'], ['0:0::1', 53, 'udp']);
    assert.deepEqual(errors(text), [bound(text, 1, '[0:0::1]:53/udp', 0)]);
  });

  test('a wildcard clashes with its own family; "::" is dual-stack and covers IPv4 too', () => {
    for (const [a, b] of [
      ['0.0.0.0', '10.0.0.1'],
      ['10.0.0.1', '0.0.0.0'],
      ['::', '10.0.0.1'],
      ['10.0.0.1', '::'],
      ['::', '0.0.0.0'],
      ['0.0.0.0', '::'],
      ['::', '2001:db8::1'],
      ['2001:db8::1', '::'],
    ]) {
      const text = lbs([a!, 443, 'tcp'], [b!, 443, 'tcp']);
      const shown = b!.includes(':') ? `[${b}]:443` : `${b}:443`;
      assert.deepEqual(errors(text), [bound(text, 1, `${shown}/tcp`, 0)], `${a} then ${b}`);
    }
    // 0.0.0.0 is IPv4 only: a specific IPv6 address on the same port is another socket.
    ok(parseConfigText(lbs(['0.0.0.0', 443, 'tcp'], ['2001:db8::1', 443, 'tcp']), 't.yaml'));
    ok(parseConfigText(lbs(['2001:db8::1', 443, 'tcp'], ['0.0.0.0', 443, 'tcp']), 't.yaml'));
    ok(parseConfigText(lbs(['0.0.0.0', 443, 'tcp'], ['::', 443, 'udp']), 't.yaml'));
  });

  test('the admin API binds 127.0.0.1:9092 by default, and its address must be an IP literal', () => {
    const text = lbs(['127.0.0.1', 9092, 'tcp']);
    assert.deepEqual(errors(text), [
      `t.yaml:${whereAfter(text, 'l0, port: ')}: load_balancers[0].listeners[0].port: 127.0.0.1:9092/tcp is already bound by admin`,
    ]);
    ok(parseConfigText(`admin: { address: "::1" }\n${text}`, 't.yaml'));
    const host = `admin: { address: localhost }\n${lbs(['127.0.0.1', 80, 'tcp'])}`;
    assert.deepEqual(errors(host), [
      "t.yaml:1:19: admin.address: expected an IP address, got 'localhost' (hostnames are not allowed here)",
    ]);
  });

  test('backends: IPv6 ids in brackets, hostnames allowed, the same address written twice is a duplicate', () => {
    const c = ok(
      parseConfigText(
        edit([
          '          - { address: 127.0.0.1, port: 9001 }\n',
          '          - { address: "::1", port: 9001 }\n          - { address: Web-1.Internal, port: 80 }\n',
        ]),
        't.yaml',
      ),
    );
    assert.deepEqual(
      c.dynamic.loadBalancers[0]!.pools[0]!.backends.map((b) => [b.id, b.address, b.port]),
      [
        ['[::1]:9001', '::1', 9001],
        ['Web-1.Internal:80', 'Web-1.Internal', 80],
      ],
    );
    const text = edit([
      '          - { address: 127.0.0.1, port: 9001 }\n',
      '          - { address: "::1", port: 9001 }\n          - { address: "0::1", port: 9001 }\n' +
        '          - { address: web.internal., port: 80 }\n          - { address: WEB.internal, port: 80 }\n' +
        '          - { port: 80 }\n',
    ]);
    assert.deepEqual(errors(text), [
      `t.yaml:${where(text, '"0::1"')}: ${L0}.pools[0].backends[1].address: duplicate backend [0::1]:9001; first used at ${L0}.pools[0].backends[0]`,
      `t.yaml:${where(text, 'WEB.internal')}: ${L0}.pools[0].backends[3].address: duplicate backend WEB.internal:80; first used at ${L0}.pools[0].backends[2]`,
      `t.yaml:${where(text, '{ port: 80 }')}: ${L0}.pools[0].backends[4].address: is required`,
    ]);
  });

  test('durations and sizes of the wrong type, and size bounds, are named at the value', () => {
    const text = edit([
      'default_pool: web\n',
      'default_pool: web\n        timeouts: { connect: [1s], client_idle: true }\n' +
        '        limits: { max_header_bytes: { a: 1 }, buffer_body: 16MiB, min_body_rate: 1GiB }\n',
    ]);
    assert.deepEqual(errors(text), [
      `t.yaml:${where(text, '[1s]')}: ${LS0}.timeouts.connect: expected a duration (e.g. 250ms, 2s, 1m30s), got a list`,
      `t.yaml:${where(text, 'true')}: ${LS0}.timeouts.client_idle: expected a duration (e.g. 250ms, 2s, 1m30s), got boolean true`,
      `t.yaml:${where(text, '{ a: 1 }')}: ${LS0}.limits.max_header_bytes: expected a size (bytes, or e.g. 16KiB, 10MiB), got a mapping`,
    ]);
    const limits = (l: string) =>
      ok(
        parseConfigText(
          edit(['default_pool: web\n', `default_pool: web\n        limits: { ${l} }\n`]),
          't.yaml',
        ),
      ).dynamic.loadBalancers[0]!.listeners[0]!.limits;
    assert.equal(limits('max_header_bytes: 1KiB').maxHeaderBytes, 1024);
    assert.equal(limits('max_header_bytes: 1048576').maxHeaderBytes, 1_048_576);
    assert.equal(limits('max_body_bytes: 0').maxBodyBytes, 0);
    for (const [v, range] of [
      ['1023', '1KiB-1MiB'],
      ['1048577', '1KiB-1MiB'],
    ]) {
      const t = edit([
        'default_pool: web\n',
        `default_pool: web\n        limits: { max_header_bytes: ${v} }\n`,
      ]);
      assert.deepEqual(errors(t), [
        `t.yaml:${whereAfter(t, 'max_header_bytes: ')}: ${LS0}.limits.max_header_bytes: size ${v} is out of range ${range}`,
      ]);
    }
  });

  test('chainfire endpoints: http(s)://HOST[:PORT][/], the port 1-65535, the host checked', () => {
    const src = (endpoints: string) =>
      `source: { type: chainfire, endpoints: [${endpoints}] }\nload_balancers: []\n`;
    const good = [
      'http://etcd-1.internal',
      'HTTPS://10.0.0.1:1/',
      'http://[fd00::1]:65535',
      'https://e:2379/',
    ];
    const source = ok(parseConfigText(src(good.map((e) => `"${e}"`).join(', ')), 't.yaml')).static.source;
    assert.deepEqual(source.type === 'chainfire' && source.endpoints, good);
    const bad: Array<[string, string]> = [
      ['ftp://e:21', 'expected http://HOST:PORT or https://HOST:PORT'],
      ['http://e:2379/v3', 'expected http://HOST:PORT or https://HOST:PORT'],
      ['http://e:port', 'expected http://HOST:PORT or https://HOST:PORT'],
      ['http://[fd00::1:2379', 'expected http://HOST:PORT or https://HOST:PORT'],
      ['xhttp://e:1', 'expected http://HOST:PORT or https://HOST:PORT'],
      ['http://e:0', 'port 0 is out of range 1-65535'],
      ['http://e:65536', 'port 65536 is out of range 1-65535'],
      ['http://[zz::1]:2379', "invalid IPv6 address 'zz::1'"],
      [
        'http://bad_host:2379',
        "invalid hostname 'bad_host': label 'bad_host' must be 1-63 letters, digits or '-', not starting or ending with '-'",
      ],
      ['http://:2379', "invalid hostname '': must be 1-253 characters"],
    ];
    const text = src(bad.map(([e]) => `"${e}"`).join(', '));
    assert.deepEqual(
      errors(text),
      bad.map(
        ([e, why], i) =>
          `t.yaml:${where(text, `"${e}"`)}: source.endpoints[${i}]: invalid endpoint '${e}': ${why}`,
      ),
    );
  });

  test('route hosts: lower-cased, a *. wildcard allowed, no port, a valid name', () => {
    const route = (host: string) =>
      edit([
        '        default_pool: web\n',
        `        default_pool: web\n        routes: [{ match: { host: "${host}" }, pool: web }]\n`,
      ]);
    const c = ok(parseConfigText(route('*.API.Example.com'), 't.yaml'));
    assert.equal(c.dynamic.loadBalancers[0]!.listeners[0]!.routes[0]!.match.host, '*.api.example.com');
    for (const [host, why] of [
      ['api.example.com:8080', "host 'api.example.com:8080' must not include a port"],
      [
        '*.bad_label.com',
        "invalid hostname 'bad_label.com': label 'bad_label' must be 1-63 letters, digits or '-', not starting or ending with '-'",
      ],
      ['10.0.300.1', "invalid IPv4 address '10.0.300.1': octet 300 is out of range 0-255"],
    ]) {
      const text = route(host!);
      assert.deepEqual(errors(text), [
        `t.yaml:${where(text, `"${host}"`)}: ${LS0}.routes[0].match.host: ${why}`,
      ]);
    }
  });
});
