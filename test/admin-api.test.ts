// The admin API under /api/v1: every route is in docs/admin-api.yaml and back; secrets are
// redacted; against a running FiberLB (2 workers): status, listeners, pools, backends; a wrong
// or missing token changes nothing; drain / weight / reset are runtime overrides that survive a
// file reload and steer real traffic.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import YAML from 'yaml';
import { REDACTED, redactedConfig } from '../src/primary/admin/redact.ts';
import { ROUTES } from '../src/primary/admin/routes.ts';
import { makeCa } from './helpers/certs.ts';
import { lbConfigHead, nameServer, ROOT, startLb, tempDir, writeConfig } from './helpers/cluster-fiberlb.ts';
import { freeTcpPort } from './helpers/net.ts';

describe('OpenAPI document', () => {
  test('docs/admin-api.yaml documents exactly the implemented routes', () => {
    const doc = YAML.parse(readFileSync(join(ROOT, 'docs/admin-api.yaml'), 'utf8')) as {
      openapi: string;
      paths: Record<string, Record<string, unknown>>;
    };
    assert.match(doc.openapi, /^3\./);
    const documented = Object.entries(doc.paths)
      .flatMap(([path, ops]) =>
        Object.keys(ops)
          .filter((k) => ['get', 'post', 'put', 'delete', 'patch'].includes(k))
          .map((m) => `${m.toUpperCase()} ${path}`),
      )
      .sort();
    const implemented = ROUTES.map((r) => `${r.method} ${r.path}`).sort();
    assert.deepEqual(documented, implemented);
    // The open ones say so (security: []); every other one inherits the bearer requirement.
    for (const r of ROUTES) {
      const op = doc.paths[r.path]![r.method.toLowerCase()] as { security?: unknown[] };
      assert.equal(
        Array.isArray(op.security) && op.security.length === 0,
        r.auth === 'open',
        `${r.method} ${r.path}`,
      );
    }
  });
});

describe('redaction', () => {
  test('secret fields by name are redacted at any depth; names are snake_case; the rest is kept', () => {
    const out = redactedConfig({
      admin: { tokenFile: '/etc/fiberlb/admin.token', token: 'abc' },
      source: { type: 'chainfire', endpoints: ['http://e:2379'], credentials: { user: 'u' }, password: 'p' },
      redis: { url: 'redis://r', redisPassword: 'p2' },
      loadBalancers: [
        {
          listeners: [
            {
              tls: { certificates: [{ cert: '/c.pem', key: '/k.pem' }], clientSecret: 's', privateKey: 'pk' },
              rateLimit: { key: 'client_ip', rate: 10 },
            },
          ],
        },
      ],
      // biome-ignore lint/suspicious/noExplicitAny: walking a JSON tree the test just built
    }) as Record<string, any>;
    assert.deepEqual(out.admin, { token_file: '/etc/fiberlb/admin.token', token: REDACTED });
    assert.equal(out.source.credentials, REDACTED);
    assert.equal(out.source.password, REDACTED);
    assert.deepEqual(out.source.endpoints, ['http://e:2379']);
    assert.equal(out.redis.redis_password, REDACTED);
    assert.equal(out.redis.url, 'redis://r');
    const l = out.load_balancers[0].listeners[0];
    assert.deepEqual(l.tls.certificates, [{ cert: '/c.pem', key: REDACTED }]);
    assert.equal(l.tls.client_secret, REDACTED);
    assert.equal(l.tls.private_key, REDACTED);
    assert.deepEqual(l.rate_limit, { key: 'client_ip', rate: 10 });
  });
});

/** A GET on a fresh connection (spread over the workers); the body says which backend. */
function get(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

interface BackendView {
  id: string;
  key: string;
  weight: number;
  admin_state: string;
  serving: boolean;
  why: string | null;
  override: unknown;
  config: { weight: number; admin_state: string };
  health: { state: string };
}

describe('admin API against a running FiberLB', () => {
  test('views, token checks, overrides that survive a reload', async (t) => {
    const a = await nameServer('a');
    const b = await nameServer('b');
    t.after(() => Promise.all([a.close(), b.close()]));
    const dir = tempDir();
    // A real certificate: the primary reads both files into the snapshot (workers never read files).
    const leaf = makeCa().leaf(['localhost']);
    writeFileSync(join(dir, 'c.pem'), leaf.certPem);
    writeFileSync(join(dir, 'k.pem'), leaf.keyPem);
    const [adminPort, httpPort, tlsPort] = [await freeTcpPort(), await freeTcpPort(), await freeTcpPort()];
    const yaml = (
      weightB: number,
    ) => `${lbConfigHead(adminPort, 'workers: 2', 'pub')}      - { name: web, port: ${httpPort}, protocol: http, default_pool: web }
      - name: secure
        port: ${tlsPort}
        protocol: https
        default_pool: web
        tls: { certificates: [ { cert: c.pem, key: k.pem } ] }
    pools:
      - name: web
        backends:
          - { id: a, address: 127.0.0.1, port: ${a.port} }
          - { id: b, address: 127.0.0.1, port: ${b.port}, weight: ${weightB} }
`;
    const file = writeConfig(dir, yaml(1));
    // The https listener's port is taken: it fails to open in every worker, so health is degraded.
    const squatter = createServer();
    await new Promise<void>((r) => squatter.listen(tlsPort, '127.0.0.1', () => r()));
    t.after(() => new Promise<void>((r) => squatter.close(() => r())));
    const lb = await startLb(file, adminPort, 15_000, { until: 'serving' });
    t.after(() => lb.stop());
    const token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
    const base = `http://127.0.0.1:${adminPort}`;
    const api = async (method: string, path: string, opts: { token?: string; body?: unknown } = {}) => {
      const r = await fetch(`${base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${opts.token ?? token}`,
          ...(opts.body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      });
      const text = await r.text();
      return { status: r.status, body: text ? JSON.parse(text) : undefined };
    };
    const backends = async (): Promise<BackendView[]> =>
      (await api('GET', '/api/v1/pools/pub/web/backends')).body;
    const spread = async (n: number) => {
      const seen: Record<string, number> = { a: 0, b: 0 };
      for (let i = 0; i < n; i++) seen[await get(httpPort)]!++;
      return seen;
    };

    // status
    const st = await api('GET', '/api/v1/status');
    assert.equal(st.status, 200);
    assert.equal(st.body.version, JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
    assert.equal(st.body.revision, 1);
    assert.equal(st.body.source, file);
    assert.equal(st.body.workers.length, 2);
    assert.equal(typeof st.body.uptime_s, 'number');
    // listeners: the https one is not open, and says why
    const ls = (await api('GET', '/api/v1/listeners')).body as Array<Record<string, unknown>>;
    assert.deepEqual(
      ls.map((l) => [l.listener, l.protocol, l.open]),
      [
        ['pub/web', 'http', true],
        ['pub/secure', 'https', false],
      ],
    );
    assert.match(String(ls[1]!.error), /EADDRINUSE/);
    // pools
    const pools = (await api('GET', '/api/v1/pools')).body as Array<Record<string, unknown>>;
    assert.deepEqual(pools, [
      {
        pool: 'pub/web',
        lb: 'pub',
        name: 'web',
        algorithm: 'round_robin',
        health_check: null,
        backends: 2,
        serving: 2,
      },
    ]);
    // config: redacted, and the admin token never appears
    const cfg = await api('GET', '/api/v1/config');
    assert.equal(cfg.status, 200);
    const text = JSON.stringify(cfg.body);
    assert.ok(!text.includes(token), 'token leaked');
    assert.ok(!text.includes('k.pem'), 'key path shown');
    // The private key travels in the snapshot as PEM text: never shown, under any field name.
    assert.ok(!text.includes('PRIVATE KEY'), 'private key PEM shown');
    assert.equal(cfg.body.config.load_balancers[0].listeners[1].tls.certificates[0].key_pem, REDACTED);
    // GET /config (what `fiberlb plan` diffs against) shows the key as a digest only.
    const served = await api('GET', '/config');
    assert.equal(served.status, 200);
    assert.ok(!JSON.stringify(served.body).includes('PRIVATE KEY'), 'private key PEM in GET /config');
    assert.match(
      served.body.config.loadBalancers[0].listeners[1].tls.certificates[0].keyPem,
      /^sha256:[0-9a-f]{64}$/,
    );
    assert.equal(cfg.body.config.load_balancers[0].listeners[1].tls.certificates[0].key, REDACTED);
    assert.equal(cfg.body.config.load_balancers[0].listeners[1].tls.certificates[0].cert, join(dir, 'c.pem'));
    assert.equal(cfg.body.config.admin.port, adminPort);
    // 404s
    assert.equal((await api('GET', '/api/v1/pools/pub/nope/backends')).status, 404);
    assert.equal((await api('POST', '/api/v1/pools/pub/web/backends/zz/drain')).status, 404);
    assert.equal((await api('GET', '/api/v1/nothing')).status, 404);
    assert.equal((await api('GET', '/api/v1/reload')).status, 405);

    // Wrong or missing token: 401 on every guarded route, and nothing changed.
    for (const r of ROUTES.filter((x) => x.auth !== 'open')) {
      const path = r.path.replace('{lb}', 'pub').replace('{pool}', 'web').replace('{backend}', 'a');
      for (const auth of [undefined, 'Bearer wrong-token-wrong-token', `Basic ${token}`]) {
        const res = await fetch(`${base}${path}`, {
          method: r.method,
          headers: auth ? { authorization: auth, 'content-type': 'application/json' } : {},
          body: r.method === 'POST' ? JSON.stringify({ weight: 5 }) : undefined,
        });
        assert.equal(res.status, 401, `${r.method} ${path} with ${auth}`);
        await res.body?.cancel();
      }
    }
    const untouched = await backends();
    assert.deepEqual(
      untouched.map((x) => [x.id, x.admin_state, x.weight, x.override]),
      [
        ['a', 'enabled', 1, null],
        ['b', 'enabled', 1, null],
      ],
    );
    assert.equal((await api('GET', '/api/v1/status')).body.revision, 1, 'no new revision');
    const before = await spread(8);
    assert.ok(before.a > 0 && before.b > 0, JSON.stringify(before));

    // Drain b: the answer comes once the workers applied it; traffic goes to a only.
    const d = await api('POST', '/api/v1/pools/pub/web/backends/b/drain');
    assert.equal(d.status, 503, 'the https listener still cannot bind'); // applied, but degraded
    assert.equal(d.body.revision, 2);
    assert.equal(d.body.backend.admin_state, 'drain');
    assert.equal(d.body.backend.serving, false);
    assert.equal(d.body.backend.why, 'admin_state drain (admin API)');
    assert.equal(d.body.backend.config.admin_state, 'enabled');
    assert.deepEqual(await spread(8), { a: 8, b: 0 });
    // A file reload (with an edit) keeps the drain; the file's new weight shows under config.
    writeFileSync(file, yaml(3));
    const rl = await api('POST', '/api/v1/reload');
    assert.equal(rl.body.applied, true);
    assert.equal(rl.body.revision, 3);
    const afterReload = (await backends()).find((x) => x.id === 'b')!;
    assert.equal(afterReload.admin_state, 'drain');
    assert.equal(afterReload.weight, 3);
    assert.deepEqual(await spread(6), { a: 6, b: 0 });
    // Weight override, then reset: back to what the file says, and b serves again.
    const w = await api('POST', '/api/v1/pools/pub/web/backends/b/weight', { body: { weight: 7 } });
    assert.equal(w.body.backend.weight, 7);
    assert.equal(
      (await api('POST', '/api/v1/pools/pub/web/backends/b/weight', { body: { weight: 0 } })).status,
      400,
    );
    const reset = await api('POST', '/api/v1/pools/pub/web/backends/b/reset');
    assert.equal(reset.body.backend.admin_state, 'enabled');
    assert.equal(reset.body.backend.weight, 3);
    assert.equal(reset.body.backend.override, null);
    const after = await spread(12);
    assert.ok(after.b > 0, JSON.stringify(after));
    // Disable / enable, and the config view lists the override.
    await api('POST', '/api/v1/pools/pub/web/backends/a/disable');
    assert.deepEqual(
      (await api('GET', '/api/v1/config')).body.overrides.map((o: Record<string, unknown>) => [
        o.backend,
        o.admin_state,
      ]),
      [['pub/web/a', 'disabled']],
    );
    assert.equal((await backends()).find((x) => x.id === 'a')!.why, 'admin_state disabled (admin API)');
    await api('POST', '/api/v1/pools/pub/web/backends/a/enable');
    assert.equal((await backends()).find((x) => x.id === 'a')!.serving, true);
    // The pre-v1 endpoints still answer.
    assert.equal((await api('GET', '/status')).status, 200);
    assert.equal((await fetch(`${base}/healthz`)).status, 503);
  });
});
