// Admin API overrides with the file source are persisted to admin.state_file (atomically) and
// restored at start: a drain and a weight survive a restart of a real FiberLB (2 workers),
// an override of a backend that left the config is dropped (logged) and leaves the file too;
// a corrupt state file is reported (admin_state_file), set aside, and FiberLB serves anyway;
// a state file that cannot be written refuses the action and changes nothing.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import {
  lbConfigHead,
  nameServer,
  type RunningLb,
  startLb,
  tempDir,
  writeConfig,
} from './helpers/cluster-fiberlb.ts';
import { freeTcpPort, sleep } from './helpers/net.ts';

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

async function spread(port: number, n: number): Promise<Record<string, number>> {
  const seen: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const b = await get(port);
    seen[b] = (seen[b] ?? 0) + 1;
  }
  return seen;
}

interface BackendView {
  id: string;
  weight: number;
  admin_state: string;
  override: { admin_state: string | null; weight: number | null } | null;
}

function admin(lb: RunningLb, dir: string) {
  const token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
  return async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`http://127.0.0.1:${lb.adminPort}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };
}

async function setup(t: TestContext) {
  const a = await nameServer('a');
  const b = await nameServer('b');
  t.after(() => Promise.all([a.close(), b.close()]));
  const dir = tempDir();
  const [adminPort, httpPort] = [await freeTcpPort(), await freeTcpPort()];
  const yaml = (
    withC: boolean,
    extra = '',
  ) => `${lbConfigHead(adminPort, 'workers: 2, drain_timeout: 1s', 'pub', extra)}      - { name: web, port: ${httpPort}, protocol: http, default_pool: web }
    pools:
      - name: web
        backends:
          - { id: a, address: 127.0.0.1, port: ${a.port} }
          - { id: b, address: 127.0.0.1, port: ${b.port} }
${withC ? `          - { id: c, address: 127.0.0.2, port: ${a.port} }\n` : ''}`;
  return { dir, adminPort, httpPort, yaml };
}

describe('admin overrides persisted with the file source', () => {
  test('drain and weight survive a restart; an override of a removed backend is dropped', async (t) => {
    const { dir, adminPort, httpPort, yaml } = await setup(t);
    const file = writeConfig(dir, yaml(true));
    let lb = await startLb(file, adminPort);
    t.after(() => lb.stop());
    let api = admin(lb, dir);
    const state = join(dir, 'admin-state.json'); // next to token_file
    assert.equal(existsSync(state), false, 'nothing written before an action');
    const d = await api('POST', '/api/v1/pools/pub/web/backends/b/drain');
    assert.equal(d.status, 200, JSON.stringify(d.body));
    assert.equal(d.body.state_file, state);
    assert.equal((await api('POST', '/api/v1/pools/pub/web/backends/a/weight', { weight: 3 })).status, 200);
    assert.equal((await api('POST', '/api/v1/pools/pub/web/backends/c/disable')).status, 200);
    const saved = JSON.parse(readFileSync(state, 'utf8'));
    assert.equal(saved.format, 1);
    assert.deepEqual(Object.keys(saved.overrides).sort(), ['pub/web/a', 'pub/web/b', 'pub/web/c']);
    assert.equal(saved.overrides['pub/web/b'].admin_state, 'drain');
    assert.equal(saved.overrides['pub/web/a'].weight, 3);

    // Restart with c removed from the file.
    await lb.stop();
    writeFileSync(file, yaml(false));
    lb = await startLb(file, adminPort);
    api = admin(lb, dir);
    const list = (await api('GET', '/api/v1/pools/pub/web/backends')).body as unknown as BackendView[];
    assert.deepEqual(
      list.map((x) => [
        x.id,
        x.admin_state,
        x.weight,
        x.override?.admin_state ?? null,
        x.override?.weight ?? null,
      ]),
      [
        ['a', 'enabled', 3, null, 3],
        ['b', 'drain', 1, 'drain', null],
      ],
    );
    assert.deepEqual(await spread(httpPort, 8), { a: 8 });
    assert.match(lb.output(), /"msg":"admin overrides restored".*"overrides":3/);
    assert.match(
      lb.output(),
      /"msg":"admin override dropped: the backend is no longer in the config".*"backend":"pub\/web\/c"/,
    );
    // The file follows the drop.
    for (let i = 0; i < 100 && JSON.parse(readFileSync(state, 'utf8')).overrides['pub/web/c']; i++)
      await sleep(50);
    assert.deepEqual(Object.keys(JSON.parse(readFileSync(state, 'utf8')).overrides).sort(), [
      'pub/web/a',
      'pub/web/b',
    ]);
    // reset is persisted too
    assert.equal((await api('POST', '/api/v1/pools/pub/web/backends/b/reset')).status, 200);
    assert.deepEqual(Object.keys(JSON.parse(readFileSync(state, 'utf8')).overrides), ['pub/web/a']);
  });

  test('a corrupt state file is reported and set aside; FiberLB serves without it', async (t) => {
    const { dir, adminPort, httpPort, yaml } = await setup(t);
    const file = writeConfig(dir, yaml(false, ', state_file: state/overrides.json'));
    const state = join(dir, 'state', 'overrides.json');
    mkdirSync(join(dir, 'state'));
    writeFileSync(state, '{"format":1,"overrides":{"pub/web/b":{"admin_state":"dra');
    const lb = await startLb(file, adminPort);
    t.after(() => lb.stop());
    const api = admin(lb, dir);
    assert.match(
      lb.output(),
      /"msg":"admin state file unusable; starting without its overrides".*"error_class":"admin_state_file".*"error":"corrupt: /,
    );
    assert.equal(existsSync(`${state}.corrupt`), true, 'kept for inspection');
    const seen = await spread(httpPort, 12);
    assert.ok((seen.a ?? 0) > 0 && (seen.b ?? 0) > 0, JSON.stringify(seen));
    const st = (await api('GET', '/status')).body as { errors: Record<string, number> };
    assert.equal(st.errors.admin_state_file, 1);
    // The next action writes a good file again.
    assert.equal((await api('POST', '/api/v1/pools/pub/web/backends/b/drain')).status, 200);
    assert.equal(JSON.parse(readFileSync(state, 'utf8')).overrides['pub/web/b'].admin_state, 'drain');
  });

  test('a state file that cannot be written: the action is refused (500) and nothing changes', async (t) => {
    const { dir, adminPort, httpPort, yaml } = await setup(t);
    // Its directory is a regular file: neither read nor write can work.
    writeFileSync(join(dir, 'blocker'), 'x');
    const file = writeConfig(dir, yaml(false, ', state_file: blocker/overrides.json'));
    const lb = await startLb(file, adminPort);
    t.after(() => lb.stop());
    const api = admin(lb, dir);
    const rev = ((await api('GET', '/api/v1/status')).body as { revision: number }).revision;
    const d = await api('POST', '/api/v1/pools/pub/web/backends/b/drain');
    assert.equal(d.status, 500, JSON.stringify(d.body));
    assert.equal(d.body.error_class, 'admin_state_file');
    assert.match(String(d.body.error), /nothing changed/);
    const list = (await api('GET', '/api/v1/pools/pub/web/backends')).body as unknown as BackendView[];
    assert.deepEqual(
      list.map((x) => [x.id, x.admin_state, x.override]),
      [
        ['a', 'enabled', null],
        ['b', 'enabled', null],
      ],
    );
    assert.equal(((await api('GET', '/api/v1/status')).body as { revision: number }).revision, rev);
    const seen = await spread(httpPort, 12);
    assert.ok((seen.b ?? 0) > 0, JSON.stringify(seen));
  });
});
