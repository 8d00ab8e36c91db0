// WebSocket upgrades under a listener rate limit in a real FiberLB (dist/cli.js) with 2
// workers: upgrades on fresh connections (spread by the kernel) take their tokens from the
// primary's one bucket like plain requests, so exactly `burst` are tunnelled instance-wide;
// the rest get the 429 with its headers, and /metrics counts them where it counts refused
// plain requests (fiberlb_rate_limit_decisions_total, fiberlb_failures_total{rate_limited}).

import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { startLb, tempDir, writeConfig } from './helpers/cluster-fiberlb.ts';
import { parseHead, request } from './helpers/http-client.ts';
import { freeTcpPort, sleep } from './helpers/net.ts';
import { wsConnect, wsEchoServer } from './helpers/ws.ts';

/** Sum of the samples of `name` whose label text contains `label` (e.g. `outcome="limited"`). */
function sum(text: string, name: string, label: string): number {
  let n = 0;
  for (const line of text.split('\n'))
    if ((line.startsWith(`${name}{`) || line.startsWith(`${name} `)) && line.includes(label))
      n += Number(line.slice(line.lastIndexOf(' ') + 1));
  return n;
}

async function upgrade(
  t: TestContext,
  port: number,
): Promise<{ status: number; headers: Record<string, string> }> {
  try {
    const c = await wsConnect(port, { path: '/chat' });
    t.after(() => c.socket.destroy());
    c.send('ping');
    assert.equal((await c.next()).toString(), 'ping');
    return { status: 101, headers: {} };
  } catch (err) {
    const response = (err as { response?: string }).response;
    if (response === undefined) throw err;
    return parseHead(response);
  }
}

test('2 workers: of 10 concurrent upgrades exactly burst (3) are tunnelled, 7 get 429, counted in /metrics', async (t) => {
  const echo = await wsEchoServer();
  t.after(() => echo.close());
  const [port, admin] = [await freeTcpPort(), await freeTcpPort()];
  const dir = tempDir();
  const file = writeConfig(
    dir,
    `admin: { address: 127.0.0.1, port: ${admin}, token_file: admin.token, metrics_open: true }
cluster: { workers: 2 }
load_balancers:
  - name: ws
    org: o
    project: p
    vip: 127.0.0.1
    listeners:
      - name: chat
        port: ${port}
        protocol: http
        default_pool: echo
        rate_limit: { rate: 3, per: 60s, burst: 3 }
    pools:
      - name: echo
        backends: [{ address: 127.0.0.1, port: ${echo.port} }]
`,
  );
  const lb = await startLb(file, admin);
  t.after(() => lb.stop());

  const got = await Promise.all(Array.from({ length: 10 }, () => upgrade(t, port)));
  assert.deepEqual(got.map((r) => r.status).sort(), [101, 101, 101, 429, 429, 429, 429, 429, 429, 429]);
  for (const r of got.filter((r) => r.status === 429)) {
    assert.equal(r.headers['ratelimit-policy'], '"client_ip";q=3;w=60');
    assert.match(r.headers['retry-after'] ?? '', /^\d+$/);
    assert.equal(r.headers.ratelimit, `"client_ip";r=0;t=${r.headers['retry-after']}`);
  }
  assert.equal(echo.requests.length, 3, 'only the admitted upgrades reached the backend');
  // The bucket is the plain requests' one too.
  assert.equal((await request(port, { path: '/chat' })).status, 429);

  const scrape = async () => (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
  // Worker counters reach /metrics on the next scrape round; wait for them, then compare.
  let text = '';
  for (let i = 0; i < 50; i++) {
    text = await scrape();
    if (sum(text, 'fiberlb_rate_limit_decisions_total', 'outcome="limited"') >= 8) break;
    await sleep(100);
  }
  assert.equal(sum(text, 'fiberlb_rate_limit_decisions_total', 'outcome="limited"'), 8, text);
  assert.equal(sum(text, 'fiberlb_rate_limit_decisions_total', 'outcome="allowed"'), 3);
  assert.equal(sum(text, 'fiberlb_failures_total', 'error_class="rate_limited"'), 8);
  assert.equal(sum(text, 'fiberlb_websocket_tunnels_total', ''), 3);
});
