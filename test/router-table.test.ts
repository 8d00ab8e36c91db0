// The compiled route table (src/worker/routing/route-table.ts) against the plain linear walk:
// a property test over random route sets and requests (same route chosen, always), plus large
// tables that show a request looks only at the routes its host and path can match.
//
// The reference walk below is written straight from RouteConfig and the router's documented
// semantics (the first route in configured order whose every condition holds), independent of
// the table's own compilation. fast-check runs use fixed seeds, like test/balancer.test.ts.

import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { RouteConfig } from '../src/config/model.ts';
import type { PoolRuntime } from '../src/worker/routing/pool-runtime.ts';
import { type RadixNode, radixInsert, radixNode } from '../src/worker/routing/radix.ts';
import { routeTableStats } from '../src/worker/routing/route-table.ts';
import { normalizeHost, Router } from '../src/worker/routing/router.ts';
import { route } from './helpers/http-fixtures.ts';

const SEED = 20261201;
const NO_POOLS = new Map<string, PoolRuntime>();

interface Req {
  readonly method: string;
  readonly path: string;
  readonly host: string | undefined;
  readonly headers: IncomingHttpHeaders;
}

/** The reference: every route in configured order, first match wins; -1 = none. */
function linearPick(routes: readonly RouteConfig[], q: Req): number {
  const h = normalizeHost(q.host);
  const noDot = (s: string) => (s.endsWith('.') ? s.slice(0, -1) : s);
  for (let i = 0; i < routes.length; i++) {
    const m = routes[i]!.match;
    if (m.methods.length > 0 && !m.methods.some((x) => x.toUpperCase() === q.method)) continue;
    if (m.host !== undefined) {
      const want = m.host.toLowerCase();
      if (want.startsWith('*.')) {
        const suffix = noDot(want.slice(1));
        if (!(h.length > suffix.length && h.endsWith(suffix))) continue;
      } else if (noDot(want) !== h) continue;
    }
    if (m.pathPrefix && !q.path.startsWith(m.pathPrefix)) continue;
    const headersHold = m.headers.every((c) => {
      const v = q.headers[c.name.toLowerCase()];
      if (v === undefined) return false;
      if (c.value === '*') return true;
      return typeof v === 'string' ? v === c.value : v.includes(c.value);
    });
    if (headersHold) return i;
  }
  return -1;
}

// Small alphabets, so random routes and requests meet often: shared and nested hosts,
// prefixes that fork and end inside each other, upper case, trailing dots, ports, a
// non-ASCII and an astral (surrogate pair) char.
const LABELS = ['a', 'b', 'ab', 'É', '😀'];
const hostName = fc.array(fc.constantFrom(...LABELS), { minLength: 1, maxLength: 3 }).map((l) => l.join('.'));
const configHost = fc.oneof(
  { weight: 4, arbitrary: fc.constant(undefined) },
  { weight: 3, arbitrary: hostName },
  { weight: 3, arbitrary: hostName.map((h) => `*.${h}`) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom('', '*.'), hostName, fc.constantFrom('', '.'))
      .map(([w, h, dot]) => `${w}${h.toUpperCase()}${dot}`),
  },
  // Not valid config (validate.ts refuses them), but the router must still agree with the walk.
  { weight: 1, arbitrary: fc.constantFrom('', '.', '*.', '*..', '[::1]') },
);
const pathUnit = fc.constantFrom('/', 'a', 'b', '?', 'é', '😀');
const configPrefix = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.constant('') },
  { weight: 5, arbitrary: fc.string({ unit: pathUnit, maxLength: 4 }).map((s) => `/${s}`) },
);
const headerValue = fc.constantFrom('1', '2', '*', '');
const configRoute = fc
  .record({
    host: configHost,
    pathPrefix: configPrefix,
    methods: fc.subarray(['GET', 'POST', 'put']),
    headers: fc.array(fc.record({ name: fc.constantFrom('x', 'X-Y'), value: headerValue }), { maxLength: 2 }),
  })
  .map((m) => route('p', m));

const requestValue = fc.oneof(
  fc.constantFrom('1', '2', '', '1, 2', '*'),
  fc.array(fc.constantFrom('1', '2'), { maxLength: 2 }),
);
const decoratedHost = (base: fc.Arbitrary<string>) =>
  fc
    .tuple(
      fc.oneof(
        { weight: 4, arbitrary: fc.constant('') },
        { weight: 3, arbitrary: fc.constantFrom('q.', 'a.', '.') },
      ),
      base,
      fc.constantFrom('', '.', ':80', '.:8080'),
      fc.boolean(),
    )
    .map(([pre, h, post, upper]) => (upper ? `${pre}${h}${post}`.toUpperCase() : `${pre}${h}${post}`));
const randomPath = fc.string({ unit: pathUnit, maxLength: 6 }).map((s) => `/${s}`);

/** Requests for a route set: half of their hosts and paths built from the routes' own. */
function requestFor(routes: readonly RouteConfig[]): fc.Arbitrary<Req> {
  const hosts = routes.flatMap((r) =>
    r.match.host === undefined ? [] : [r.match.host.replace(/^\*\./, '')],
  );
  const prefixes = routes.flatMap((r) => (r.match.pathPrefix ? [r.match.pathPrefix] : []));
  const host =
    hosts.length > 0 ? fc.oneof(hostName, { weight: 3, arbitrary: fc.constantFrom(...hosts) }) : hostName;
  const paths: Array<fc.Arbitrary<string>> = [randomPath, fc.constantFrom('', '*')];
  if (prefixes.length > 0) {
    const prefix = fc.constantFrom(...prefixes);
    paths.push(
      fc.tuple(prefix, fc.string({ unit: pathUnit, maxLength: 2 })).map(([p, s]) => p + s),
      prefix.map((p) => p.slice(0, -1)),
    );
  }
  return fc.record({
    method: fc.constantFrom('GET', 'POST', 'PUT', 'put', ''),
    path: fc.oneof(...paths),
    host: fc.oneof(
      { weight: 1, arbitrary: fc.constantFrom(undefined, '', '.', '[::1]:80', ':80') },
      { weight: 6, arbitrary: decoratedHost(host) },
    ),
    headers: fc.record(
      { x: fc.option(requestValue, { nil: undefined }), 'x-y': fc.option(requestValue, { nil: undefined }) },
      { requiredKeys: [] },
    ),
  });
}

describe('route table', () => {
  it('chooses the route the linear walk chooses, for random route sets and requests', () => {
    // What decided the chosen routes, so the run is known to have exercised every group.
    const seen = { exact: 0, wildcard: 0, hostless: 0, prefix: 0, none: 0, notFirstByHostPath: 0 };
    fc.assert(
      fc.property(
        fc
          .array(configRoute, { maxLength: 25 })
          .chain((routes) =>
            fc.tuple(fc.constant(routes), fc.array(requestFor(routes), { minLength: 10, maxLength: 40 })),
          ),
        fc.constantFrom(undefined, 'web'),
        ([routes, requests], defaultPool) => {
          const r = new Router({ routes, defaultPool }, NO_POOLS);
          for (const q of requests) {
            const want = linearPick(routes, q);
            const got = r.match(q.method, q.path, q.host, q.headers);
            if (want < 0) {
              assert.equal(got?.index, defaultPool === undefined ? undefined : -1);
              assert.equal(got?.route, defaultPool === undefined ? undefined : 'default');
              seen.none++;
              continue;
            }
            assert.equal(got?.index, want, `request ${JSON.stringify(q)}`);
            assert.equal(got?.route, String(want));
            const m = routes[want]!.match;
            const host = m.host?.toLowerCase();
            if (host === undefined) seen.hostless++;
            else if (host.startsWith('*.')) seen.wildcard++;
            else seen.exact++;
            if (m.pathPrefix) seen.prefix++;
            // An earlier route matched host and path but lost on method or headers.
            const bare = (x: RouteConfig) =>
              route('p', { host: x.match.host, pathPrefix: x.match.pathPrefix });
            if (linearPick(routes.map(bare), q) < want) seen.notFirstByHostPath++;
          }
        },
      ),
      { seed: SEED, numRuns: 400 },
    );
    for (const [k, n] of Object.entries(seen)) assert.ok(n >= 100, `only ${n} requests decided by ${k}`);
  });

  it('configured order wins across host groups and path prefixes', () => {
    const routes = [
      route('p', { host: '*.b.example', pathPrefix: '/x' }),
      route('p', { pathPrefix: '/x/y' }),
      route('p', { host: 'a.b.example' }),
      route('p', { host: '*.example', pathPrefix: '/x/y/z' }),
      route('p', { pathPrefix: '/' }),
    ];
    const r = new Router({ routes, defaultPool: undefined }, NO_POOLS);
    const at = (host: string, path: string) => r.match('GET', path, host, {})?.index;
    assert.equal(at('a.b.example', '/x/y/z'), 0);
    assert.equal(at('b.example', '/x/y/z'), 1);
    assert.equal(at('a.b.example', '/q'), 2);
    assert.equal(at('b.example', '/q'), 4);
    assert.equal(at('c.example', '/x/y/z/w'), 1);
    assert.equal(at('c.example', '/x/'), 4);
    assert.equal(at('example', ''), undefined);
  });

  // The bench's shape (bench/lib/configs.mjs): N-1 routes that never match, then a catch-all.
  it('with 10,000 routes, a request checks only the routes its host and path can match', () => {
    const N = 10_000;
    const cases: Array<{ routes: RouteConfig[]; hit: Req; hitIndex: number; miss: Req }> = [
      {
        routes: Array.from({ length: N - 1 }, (_, i) => route('p', { host: `r${i}.bench.example` })),
        hit: { method: 'GET', path: '/', host: 'R4321.bench.example:8080', headers: {} },
        hitIndex: 4321,
        miss: { method: 'GET', path: '/', host: '127.0.0.1:80', headers: {} },
      },
      {
        routes: Array.from({ length: N - 1 }, (_, i) => route('p', { host: `*.r${i}.bench.example` })),
        hit: { method: 'GET', path: '/', host: 'a.b.r777.bench.example', headers: {} },
        hitIndex: 777,
        miss: { method: 'GET', path: '/', host: 'r777.bench.example', headers: {} },
      },
      {
        routes: Array.from({ length: N - 1 }, (_, i) => route('p', { pathPrefix: `/svc/${i}/` })),
        hit: { method: 'GET', path: '/svc/9876/items?q=1', host: 'h', headers: {} },
        hitIndex: 9876,
        miss: { method: 'GET', path: '/svc/98', host: 'h', headers: {} },
      },
    ];
    for (const c of cases) {
      const routes = [...c.routes, route('p', { pathPrefix: '/' })];
      const built = routeTableStats().buildUs;
      const r = new Router({ routes, defaultPool: undefined }, NO_POOLS);
      // Building 10,000 routes takes more than a µs and (even instrumented) well under 30 s.
      const buildUs = routeTableStats().buildUs - built;
      assert.ok(buildUs > 0 && buildUs < 30e6, `built in ${buildUs} µs`);
      const checked = (q: Req) => {
        const before = routeTableStats().routesChecked;
        const got = r.match(q.method, q.path, q.host, q.headers)?.index;
        assert.equal(got, linearPick(routes, q));
        return { got, checked: routeTableStats().routesChecked - before };
      };
      // The catch-all, then the route itself: a walk would have checked hitIndex + 1 routes.
      assert.deepEqual(checked(c.hit), { got: c.hitIndex, checked: 2 });
      assert.deepEqual(checked(c.miss), { got: N - 1, checked: 1 });
    }
  });

  it('the radix tree shares common runs: one edge per fork, split where a key ends', () => {
    const root = radixNode<string>();
    for (const k of ['/api/v1', '/api/v2', '/apis', '/b']) radixInsert(root, k).value = k;
    radixInsert(root, '/a').value = '/a';
    const shape = (n: RadixNode<string>): unknown =>
      Object.fromEntries(
        [...(n.edges ?? new Map()).values()].map((e) => [e.label, [e.node.value, shape(e.node)]]),
      );
    assert.deepEqual(shape(root), {
      '/': [
        undefined,
        {
          a: [
            '/a',
            {
              pi: [
                undefined,
                { '/v': [undefined, { 1: ['/api/v1', {}], 2: ['/api/v2', {}] }], s: ['/apis', {}] },
              ],
            },
          ],
          b: ['/b', {}],
        },
      ],
    });
    assert.equal(radixInsert(root, '/api/v1').value, '/api/v1', 'an existing key is found, not added');
    assert.equal(radixInsert(root, ''), root);
  });

  it('counts tables built, routes indexed and lookups', () => {
    const before = routeTableStats();
    const r = new Router(
      { routes: [route('p'), route('p', { host: 'h' })], defaultPool: undefined },
      NO_POOLS,
    );
    r.match('GET', '/', 'h', {});
    r.match('GET', '/', undefined, {});
    const after = routeTableStats();
    assert.equal(after.tables - before.tables, 1);
    assert.equal(after.tableRoutes - before.tableRoutes, 2);
    assert.equal(after.lookups - before.lookups, 2);
    assert.equal(after.routesChecked - before.routesChecked, 2);
    assert.ok(after.buildUs >= before.buildUs);
  });
});
