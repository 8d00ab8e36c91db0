// Router unit tests: host (exact, wildcard, port, case), path prefix, headers, methods, order
// and the default pool.

import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { describe, it } from 'node:test';
import type { RouteConfig } from '../src/config/model.ts';
import { PoolRuntime } from '../src/worker/routing/pool-runtime.ts';
import { normalizeHost, Router } from '../src/worker/routing/router.ts';
import { backend, LB, poolConfig, route } from './helpers/http-fixtures.ts';

const NAMES = ['a', 'b', 'c', 'web'];
const pools = new Map(NAMES.map((n) => [n, new PoolRuntime(LB, poolConfig(n, [backend(1000)]), new Set())]));

function router(routes: RouteConfig[], defaultPool: string | undefined = undefined): Router {
  return new Router({ routes, defaultPool }, pools);
}

function pick(
  r: Router,
  req: { method?: string; path?: string; host?: string; headers?: IncomingHttpHeaders },
): string | undefined {
  return r.match(req.method ?? 'GET', req.path ?? '/', req.host, req.headers ?? {})?.poolName;
}

describe('router', () => {
  it('matches exact hosts case-insensitively, ignoring port and trailing dot', () => {
    const r = router([route('a', { host: 'api.example.com' })], 'web');
    assert.equal(pick(r, { host: 'api.example.com' }), 'a');
    assert.equal(pick(r, { host: 'API.Example.COM' }), 'a');
    assert.equal(pick(r, { host: 'api.example.com:8080' }), 'a');
    assert.equal(pick(r, { host: 'api.example.com.' }), 'a');
    assert.equal(pick(r, { host: 'x.api.example.com' }), 'web');
    assert.equal(pick(r, { host: 'example.com' }), 'web');
    assert.equal(pick(r, {}), 'web');
  });

  it('wildcard hosts match one or more labels below, not the apex', () => {
    const r = router([route('a', { host: '*.example.com' })], 'web');
    assert.equal(pick(r, { host: 'a.example.com' }), 'a');
    assert.equal(pick(r, { host: 'a.b.example.com:443' }), 'a');
    assert.equal(pick(r, { host: 'A.EXAMPLE.com' }), 'a');
    assert.equal(pick(r, { host: 'example.com' }), 'web');
    assert.equal(pick(r, { host: 'badexample.com' }), 'web');
    assert.equal(pick(r, { host: '.example.com' }), 'web');
  });

  it('normalizes IPv6 literal hosts', () => {
    assert.equal(normalizeHost('[::1]:8080'), '[::1]');
    assert.equal(normalizeHost('[::1]'), '[::1]');
    assert.equal(normalizeHost('Host.Example:80'), 'host.example');
    const r = router([route('a', { host: '[::1]' })]);
    assert.equal(pick(r, { host: '[::1]:80' }), 'a');
  });

  it('path prefixes are plain prefixes of the path, query ignored', () => {
    const r = router([route('a', { pathPrefix: '/v1/' }), route('b', { pathPrefix: '/api' })], 'web');
    assert.equal(pick(r, { path: '/v1/users' }), 'a');
    assert.equal(pick(r, { path: '/v1' }), 'web');
    assert.equal(pick(r, { path: '/apis' }), 'b');
    assert.equal(pick(r, { path: '/x?p=/v1/' }), 'web');
    assert.equal(pick(r, { path: '/v1/?q' }), 'a');
  });

  it('headers match exact values or presence ("*")', () => {
    const r = router(
      [
        route('a', { headers: [{ name: 'x-env', value: 'canary' }] }),
        route('b', { headers: [{ name: 'X-Debug', value: '*' }] }),
      ],
      'web',
    );
    assert.equal(pick(r, { headers: { 'x-env': 'canary' } }), 'a');
    assert.equal(pick(r, { headers: { 'x-env': 'Canary' } }), 'web');
    assert.equal(pick(r, { headers: { 'x-env': 'canary-2' } }), 'web', 'a value is matched whole');
    assert.equal(pick(r, { headers: { 'x-debug': '' } }), 'b');
    assert.equal(pick(r, { headers: { 'x-env': 'prod', 'x-debug': '1' } }), 'b');
    assert.equal(pick(r, { headers: {} }), 'web');
  });

  it('all conditions of a route must hold', () => {
    const r = router(
      [
        route('a', {
          host: 'h.example',
          pathPrefix: '/p',
          methods: ['POST'],
          headers: [{ name: 'x', value: '1' }],
        }),
      ],
      'web',
    );
    const ok = { host: 'h.example', path: '/p/1', method: 'POST', headers: { x: '1' } };
    assert.equal(pick(r, ok), 'a');
    assert.equal(pick(r, { ...ok, host: 'other' }), 'web');
    assert.equal(pick(r, { ...ok, path: '/q' }), 'web');
    assert.equal(pick(r, { ...ok, method: 'GET' }), 'web');
    assert.equal(pick(r, { ...ok, headers: {} }), 'web');
  });

  it('methods restrict, empty = any', () => {
    const r = router([route('a', { methods: ['GET', 'HEAD'] }), route('b')]);
    assert.equal(pick(r, { method: 'GET' }), 'a');
    assert.equal(pick(r, { method: 'HEAD' }), 'a');
    assert.equal(pick(r, { method: 'DELETE' }), 'b');
  });

  it('first match wins, then default pool, else no route', () => {
    const r = router([route('a', { pathPrefix: '/x' }), route('b', { pathPrefix: '/x/y' })], 'c');
    assert.equal(pick(r, { path: '/x/y/z' }), 'a');
    assert.equal(pick(r, { path: '/z' }), 'c');
    assert.equal(pick(router([route('a', { pathPrefix: '/x' })]), { path: '/z' }), undefined);
    assert.equal(pick(router([]), {}), undefined);
    assert.equal(pick(router([], 'web'), {}), 'web');
  });

  it('no route and no default pool is no target at all, not a target without a pool', () => {
    assert.equal(router([route('a', { pathPrefix: '/x' })]).match('GET', '/z', undefined, {}), undefined);
    assert.equal(router([]).match('GET', '/', 'h.example', {}), undefined);
  });

  it('host routes match among routes without a host condition', () => {
    const r = router([route('a', { pathPrefix: '/p' }), route('b', { host: 'h.example' })], 'web');
    assert.equal(pick(r, { host: 'H.example:80', path: '/q' }), 'b');
    assert.equal(pick(r, { host: 'h.example', path: '/p' }), 'a');
    assert.equal(pick(r, { host: 'other', path: '/q' }), 'web');
    const w = router([route('a', { methods: ['PUT'] }), route('b', { host: '*.example' })], 'web');
    assert.equal(pick(w, { host: 'x.example', path: '/' }), 'b');
  });

  it('a configured host with a trailing dot matches the request host with or without it', () => {
    const r = router([route('a', { host: 'api.example.' }), route('b', { host: '*.wild.example.' })], 'web');
    assert.equal(pick(r, { host: 'api.example' }), 'a');
    assert.equal(pick(r, { host: 'api.example.' }), 'a');
    assert.equal(pick(r, { host: 'x.wild.example' }), 'b');
    assert.equal(pick(r, { host: 'wild.example' }), 'web');
  });

  it('normalizes missing, empty and malformed hosts without inventing one', () => {
    assert.equal(normalizeHost(undefined), '');
    assert.equal(normalizeHost(''), '');
    assert.equal(normalizeHost(':80'), '');
    assert.equal(normalizeHost('[::1'), '[::1');
    assert.equal(normalizeHost('[::1]'), '[::1]');
    assert.equal(normalizeHost('a.'), 'a');
  });

  it('a header given as several values matches when one of them does', () => {
    const r = router([route('a', { headers: [{ name: 'x-env', value: 'canary' }] })], 'web');
    assert.equal(pick(r, { headers: { 'x-env': ['prod', 'canary'] } }), 'a');
    assert.equal(pick(r, { headers: { 'x-env': ['prod', 'test'] } }), 'web');
    assert.equal(pick(r, { headers: { 'x-env': ['prod, canary'] } }), 'web');
  });

  it('resolves pools at compile time; an unknown pool is reported as missing', () => {
    const r = router([route('nope')]);
    const t = r.match('GET', '/', undefined, {});
    assert.equal(t?.poolName, 'nope');
    assert.equal(t?.pool, undefined);
    assert.equal(router([route('a')]).match('GET', '/', undefined, {})?.pool, pools.get('a'));
  });
});
