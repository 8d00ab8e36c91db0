// /metrics of a real FiberLB (2 workers) for two modules that keep their own counters: the
// compiled route tables (worker/routing/route-table.ts: built per worker, listener and
// revision; one lookup per routed request) and the admin API's backend-action writer
// (primary/admin/override-actions.ts: written, failed). The values move when they should and
// only then.

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { test } from 'node:test';
import { lbConfigHead, nameServer, startLb, tempDir, writeConfig } from './helpers/cluster-fiberlb.ts';
import { freeTcpPort, sleep } from './helpers/net.ts';

/** Sum of the samples of `name` whose labels include every `key="value"` of `match`. */
function sum(text: string, name: string, match: Record<string, string> = {}): number {
  let n = 0;
  let seen = false;
  const want = Object.entries(match).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    seen = true;
    const labels = line.startsWith(`${name}{`) ? line.slice(name.length + 1, line.lastIndexOf('}')) : '';
    const parts = labels === '' ? [] : labels.split(',');
    if (want.every((w) => parts.includes(w))) n += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  assert.ok(seen, `no ${name} in the scrape`);
  return n;
}

function get(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

test('route tables and lookups, admin backend actions: counted in /metrics as they happen', async (t) => {
  const a = await nameServer('a');
  const b = await nameServer('b');
  t.after(() => Promise.all([a.close(), b.close()]));
  const dir = tempDir();
  mkdirSync(join(dir, 'state'));
  const [admin, port] = [await freeTcpPort(), await freeTcpPort()];
  const file = writeConfig(
    dir,
    `${lbConfigHead(admin, 'workers: 2', 'pub', ', state_file: state/overrides.json')}      - name: web
        port: ${port}
        protocol: http
        default_pool: web
        routes:
          - { match: { path_prefix: /a }, pool: web }
          - { match: { path_prefix: /b }, pool: web }
          - { match: { path_prefix: /c }, pool: web }
    pools:
      - name: web
        backends:
          - { id: a, address: 127.0.0.1, port: ${a.port} }
          - { id: b, address: 127.0.0.1, port: ${b.port} }
`,
  );
  const lb = await startLb(file, admin);
  t.after(() => lb.stop());
  const token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
  const auth = { authorization: `Bearer ${token}` };
  const scrape = async () => (await fetch(`http://127.0.0.1:${admin}/metrics`, { headers: auth })).text();
  const action = async (path: string) => {
    const r = await fetch(`http://127.0.0.1:${admin}/api/v1/${path}`, { method: 'POST', headers: auth });
    await r.body?.cancel();
    return r.status;
  };

  // Each worker compiled the listener's table of 3 routes for the first revision.
  // Ready means the primary answers; the second worker's counters may come a moment later.
  let text = await scrape();
  for (let i = 0; i < 50 && sum(text, 'fiberlb_route_tables_built_total') < 2; i++) {
    await new Promise((r) => setTimeout(r, 100));
    text = await scrape();
  }
  const tables0 = sum(text, 'fiberlb_route_tables_built_total');
  assert.ok(tables0 >= 2, `tables built: ${tables0}`);
  assert.equal(sum(text, 'fiberlb_route_table_routes_total'), 3 * tables0);
  assert.ok(sum(text, 'fiberlb_route_table_build_seconds_total') > 0);
  const lookups0 = sum(text, 'fiberlb_route_lookups_total');
  const checks0 = sum(text, 'fiberlb_route_lookup_checks_total');

  // One lookup per request routed, each checking at least the route it matched.
  const N = 12;
  for (let i = 0; i < N; i++) assert.equal(await get(port, `/b/${i}`), 200);
  for (let i = 0; i < 40 && sum(text, 'fiberlb_route_lookups_total') < lookups0 + N; i++) {
    await sleep(50);
    text = await scrape();
  }
  assert.equal(sum(text, 'fiberlb_route_lookups_total'), lookups0 + N);
  assert.ok(sum(text, 'fiberlb_route_lookup_checks_total') >= checks0 + N);
  // No traffic, no lookups; no reload, no tables.
  await sleep(300);
  text = await scrape();
  assert.equal(sum(text, 'fiberlb_route_lookups_total'), lookups0 + N);
  assert.equal(sum(text, 'fiberlb_route_tables_built_total'), tables0);

  // Admin actions through the file source's overrides: none yet.
  const actions = (result: string) =>
    sum(text, 'fiberlb_admin_backend_actions_total', { writes_to: 'overrides', result });
  assert.deepEqual([actions('written'), actions('failed'), actions('denied')], [0, 0, 0]);
  assert.equal(await action('pools/pub/web/backends/b/drain'), 200);
  // A backend that does not exist is refused before any writer sees it.
  assert.equal(await action('pools/pub/web/backends/zz/drain'), 404);
  text = await scrape();
  assert.deepEqual([actions('written'), actions('failed')], [1, 0]);
  // The state file's directory replaced by a regular file: the next save fails, the action is
  // refused and counted as failed.
  rmSync(join(dir, 'state'), { recursive: true });
  writeFileSync(join(dir, 'state'), 'x');
  assert.equal(await action('pools/pub/web/backends/b/enable'), 500);
  text = await scrape();
  assert.deepEqual([actions('written'), actions('failed'), actions('denied')], [1, 1, 0]);
  assert.equal(sum(text, 'fiberlb_admin_store_write_conflicts_total'), 0);

  // The drain was a new revision: every worker compiled its table again (the failed enable
  // changed nothing). A reload is one more.
  const tables1 = sum(text, 'fiberlb_route_tables_built_total');
  assert.ok(tables1 >= tables0 + 2, `${tables0} → ${tables1}`);
  assert.equal(await action('reload'), 200);
  for (let i = 0; i < 40 && sum(text, 'fiberlb_route_tables_built_total') < tables1 + 2; i++) {
    await sleep(50);
    text = await scrape();
  }
  const tables2 = sum(text, 'fiberlb_route_tables_built_total');
  assert.ok(tables2 >= tables1 + 2, `${tables1} → ${tables2}`);
  assert.equal(sum(text, 'fiberlb_route_table_routes_total'), 3 * tables2);
});
