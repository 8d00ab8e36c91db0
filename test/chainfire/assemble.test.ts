// test: serial — real etcd members on ports picked free: alone, no other test can take them first.
// Chainfire keys → config, without a store: issues located by key and field, quarantine and
// its dependents, the tenant checks on a load balancer's value, and the last-good file.

import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { assembleConfig } from '../../src/config/sources/chainfire/assemble.ts';
import { readLastGood, writeLastGood } from '../../src/config/sources/chainfire/last-good.ts';
import { tempDir } from '../helpers/cluster-fiberlb.ts';

const P = '/fiberlb/';
const statics = { source: { type: 'chainfire', endpoints: ['http://127.0.0.1:2379'] } };

function run(kvs: Record<string, unknown>) {
  const m = new Map(Object.entries(kvs).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
  const r = assembleConfig(statics, P, m, 'chainfire:test', {});
  if (!r.ok) throw new Error(r.issues.map((i) => i.message).join('; '));
  return r;
}

const base = {
  '/fiberlb/loadbalancers/o/p/w': { vip: '127.0.0.1' },
  '/fiberlb/listeners/w/api': {
    port: 8080,
    protocol: 'http',
    default_pool: 'web',
    routes: [{ match: { path_prefix: '/v/' }, pool: 'v' }],
  },
  '/fiberlb/pools/w/web': { algorithm: 'random' },
  '/fiberlb/pools/w/v': {},
  '/fiberlb/backends/web/b1': { address: '127.0.0.1', port: 9001, weight: 2 },
  '/fiberlb/backends/v/b1': { address: '127.0.0.1', port: 9002 },
};

describe('assembleConfig', () => {
  test('the keys become the same model a YAML file gives (names and ids from the keys)', () => {
    const r = run(base);
    assert.deepEqual(r.quarantined, []);
    const [lb] = r.config.dynamic.loadBalancers;
    assert.equal(lb!.name, 'w');
    assert.equal(lb!.org, 'o');
    assert.equal(lb!.project, 'p');
    assert.deepEqual(
      lb!.pools.map((p) => [p.name, p.algorithm, p.backends.map((b) => [b.id, b.port, b.weight])]),
      [
        ['v', 'round_robin', [['b1', 9002, 1]]],
        ['web', 'random', [['b1', 9001, 2]]],
      ],
    );
    assert.equal(lb!.listeners[0]!.routes[0]!.pool, 'v');
  });

  test('issues name the key and the field; dependents name what they depend on', () => {
    const r = run({
      ...base,
      '/fiberlb/pools/w/v': { max_queue: -1 },
      '/fiberlb/backends/web/b2': { address: '10.0.300.1', port: 80 },
      '/fiberlb/backends/web/b3': '{not json',
      '/fiberlb/listeners/zz/orphan': { port: 1, protocol: 'tcp', default_pool: 'x' },
    });
    const by = Object.fromEntries(r.quarantined.map((q) => [q.key, q]));
    assert.deepEqual(by['/fiberlb/pools/w/v'], {
      key: '/fiberlb/pools/w/v',
      field: 'max_queue',
      reason: '-1 is out of range 0-1000000',
    });
    assert.equal(by['/fiberlb/backends/web/b2']!.field, 'address');
    assert.match(by['/fiberlb/backends/web/b2']!.reason, /octet 300/);
    assert.equal(by['/fiberlb/backends/web/b3']!.field, '(value)');
    assert.match(by['/fiberlb/backends/web/b3']!.reason, /^invalid JSON/);
    // the listener routes to the bad pool: quarantined as its dependent
    assert.equal(by['/fiberlb/listeners/w/api']!.field, 'routes[0].pool');
    assert.equal(by['/fiberlb/listeners/w/api']!.depends_on, '/fiberlb/pools/w/v');
    assert.equal(by['/fiberlb/backends/v/b1']!.depends_on, '/fiberlb/pools/w/v');
    assert.match(by['/fiberlb/listeners/zz/orphan']!.reason, /load balancer 'zz' .* does not exist/);
    assert.equal(r.quarantined.length, 6);
    // the rest applies
    assert.deepEqual(
      r.config.dynamic.loadBalancers[0]!.pools.map((p) => p.name),
      ['web'],
    );
  });

  test('a load balancer value cannot claim another tenant or carry listeners/pools', () => {
    const r = run({
      ...base,
      '/fiberlb/loadbalancers/o/p/w': { vip: '127.0.0.1', org: 'other' },
      '/fiberlb/loadbalancers/o/p/x': { vip: '127.0.0.1', pools: [] },
    });
    const by = Object.fromEntries(r.quarantined.map((q) => [q.key, q]));
    assert.equal(by['/fiberlb/loadbalancers/o/p/w']!.field, 'org');
    assert.equal(by['/fiberlb/loadbalancers/o/p/x']!.field, 'pools');
    assert.equal(by['/fiberlb/pools/w/web']!.depends_on, '/fiberlb/loadbalancers/o/p/w');
    assert.equal(by['/fiberlb/backends/web/b1']!.depends_on, '/fiberlb/pools/w/web');
    assert.deepEqual(r.config.dynamic.loadBalancers, []);
  });

  test('a pool id used by two load balancers makes its backends ambiguous', () => {
    const r = run({
      ...base,
      '/fiberlb/loadbalancers/o/p/x': { vip: '127.0.0.2' },
      '/fiberlb/pools/x/web': {},
    });
    const q = r.quarantined.find((x) => x.key === '/fiberlb/backends/web/b1');
    assert.match(q!.reason, /pool id 'web' is used by \/fiberlb\/pools\/w\/web and \/fiberlb\/pools\/x\/web/);
  });

  test('no keys at all is a valid, empty config', () => {
    assert.deepEqual(run({}).config.dynamic.loadBalancers, []);
  });

  test('1,000 backends assemble and validate well under a second', () => {
    const kvs: Record<string, unknown> = { ...base };
    for (let i = 0; i < 1000; i++)
      kvs[`/fiberlb/backends/web/n${i}`] = { address: '127.0.0.1', port: 10_000 + i };
    const t0 = performance.now();
    const r = run(kvs);
    const ms = performance.now() - t0;
    assert.equal(r.config.dynamic.loadBalancers[0]!.pools[1]!.backends.length, 1001);
    assert.ok(ms < 500, `${Math.round(ms)} ms`);
  });
});

describe('last-good file', () => {
  test('written atomically (no temp file left, mode 0600) and read back', async () => {
    const dir = join(tempDir(), 'state');
    const path = join(dir, 'lg.json');
    await writeLastGood(path, { revision: 7, prefix: P, kvs: new Map([['/fiberlb/a', '{}']]) });
    await writeLastGood(path, { revision: 8, prefix: P, kvs: new Map([['/fiberlb/b', '{"x":1}']]) });
    assert.deepEqual(readdirSync(dir), ['lg.json']);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const r = await readLastGood(path, P);
    assert.ok(r.ok);
    assert.equal(r.state.revision, 8);
    assert.deepEqual([...r.state.kvs], [['/fiberlb/b', '{"x":1}']]);
  });

  test('missing, corrupt, other prefix: a reason, never a throw', async () => {
    const dir = tempDir();
    const path = join(dir, 'lg.json');
    assert.deepEqual(await readLastGood(path, P), { ok: false, reason: 'missing' });
    for (const [text, want] of [
      ['{"format":1,"revision":', /^corrupt: /],
      ['{"format":2}', /^corrupt: unknown format 2/],
      ['{"format":1,"revision":3,"prefix":"/other/","kvs":{}}', /written for prefix \/other\//],
      ['{"format":1,"revision":3,"prefix":"/fiberlb/","kvs":{"k":1}}', /value of k is not a string/],
    ] as const) {
      writeFileSync(path, text);
      const r = await readLastGood(path, P);
      assert.equal(r.ok, false);
      assert.match((r as { reason: string }).reason, want);
    }
    assert.ok(existsSync(path));
  });
});
