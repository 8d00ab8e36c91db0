// The admin API's backend view explains health (issue 9 item 2 with issue 7's prober): a
// running 2-worker FiberLB with an http health check shows each backend's last probes, and a
// killed backend turns 'down' there with the failed probes' reasons.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { nameServer, startLb, tempDir, writeConfig } from './helpers/cluster-fiberlb.ts';
import { freeTcpPort, sleep } from './helpers/net.ts';

interface Probe {
  outcome: string;
  reason: string;
}
interface View {
  id: string;
  serving: boolean;
  health: { state: string; probes: Probe[] | null };
}

test('GET /api/v1/pools/{lb}/{pool}/backends shows the last probes and a dead backend going down', async (t) => {
  const a = await nameServer('a');
  const b = await nameServer('b');
  t.after(() => Promise.all([a.close(), b.close().catch(() => {})]));
  const dir = tempDir();
  const [adminPort, port] = [await freeTcpPort(), await freeTcpPort()];
  const file = writeConfig(
    dir,
    `admin: { address: 127.0.0.1, port: ${adminPort}, token_file: admin.token }
cluster: { workers: 2 }
load_balancers:
  - name: pub
    org: o
    project: p
    vip: 127.0.0.1
    listeners:
      - { name: web, port: ${port}, protocol: http, default_pool: web }
    pools:
      - name: web
        health_check: { type: http, path: /, interval: 200ms, timeout: 100ms, rise: 1, fall: 2 }
        backends:
          - { id: a, address: 127.0.0.1, port: ${a.port} }
          - { id: b, address: 127.0.0.1, port: ${b.port} }
`,
  );
  const lb = await startLb(file, adminPort, 15_000, { until: 'serving' });
  t.after(() => lb.stop());
  const token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
  const view = async (): Promise<View[]> => {
    const r = await fetch(`http://127.0.0.1:${adminPort}/api/v1/pools/pub/web/backends`, {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(r.status, 200);
    return (await r.json()) as View[];
  };
  const until = async (ok: (v: View[]) => boolean, what: string) => {
    for (let i = 0; i < 100; i++) {
      const v = await view();
      if (ok(v)) return v;
      await sleep(100);
    }
    throw new Error(`${what}: not reached in 10 s: ${JSON.stringify(await view())}`);
  };
  const probed = await until((v) => v.every((x) => (x.health.probes?.length ?? 0) >= 2), 'probes shown');
  for (const x of probed) {
    assert.equal(x.health.state, 'up');
    assert.ok(
      x.health.probes!.every((p) => p.outcome === 'ok'),
      JSON.stringify(x.health.probes),
    );
  }
  await b.close();
  const after = await until((v) => v.find((x) => x.id === 'b')!.health.state === 'down', 'b down');
  const bv = after.find((x) => x.id === 'b')!;
  assert.equal(bv.serving, false);
  const last = bv.health.probes!.at(-1)!;
  assert.notEqual(last.outcome, 'ok');
  assert.match(last.reason, /ECONNREFUSED|refused/i);
  assert.equal(after.find((x) => x.id === 'a')!.health.state, 'up');
});
