// ListenerRegistry across reloads, on real sockets: snapshots parsed from YAML as the primary
// sends them (every object new), a tcp listener on 127.0.0.1 and tagged echo backends.

import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import type { Snapshot } from '../src/config/snapshot.ts';
import { parseConfigText } from '../src/config/validate.ts';
import { setLogSink } from '../src/shared/log.ts';
import { ListenerRegistry } from '../src/worker/listeners/registry.ts';
import { readBytes, tcpConnect, tcpEcho } from './helpers/l4-backends.ts';
import { l4Env } from './helpers/l4-state.ts';
import { freeTcpPort, HOST } from './helpers/net.ts';

function snapshot(revision: number, yaml: string): Snapshot {
  const r = parseConfigText(yaml, 'reload.yaml');
  if (!r.ok) throw new Error(`test config invalid: ${JSON.stringify(r.issues)}`);
  return { revision, origin: 'test', workers: 1, config: r.config.dynamic };
}

/** Which backend a new connection reaches: its echo comes back prefixed with the backend's tag. */
async function reached(port: number): Promise<string> {
  const s = await tcpConnect(port);
  try {
    s.write('x');
    return (await readBytes(s, 2)).toString().slice(0, 1);
  } finally {
    s.destroy();
  }
}

async function echoes(t: TestContext, tags: readonly string[]): Promise<number[]> {
  const ports: number[] = [];
  for (const tag of tags) {
    const be = await tcpEcho(tag);
    t.after(() => be.close());
    ports.push(be.port);
  }
  return ports;
}

test('a reload that leaves a pool alone keeps its balancer: round robin goes on with its cycle', async (t) => {
  const lines: string[] = [];
  setLogSink((_level, line) => lines.push(line));
  t.after(() => setLogSink(undefined));
  const tags = ['a', 'b', 'c', 'd'];
  const ports = await echoes(t, tags);
  const port = await freeTcpPort();
  const yaml = (n: number) => `load_balancers:
  - name: edge
    org: o
    project: p
    vip: ${HOST}
    listeners:
      - { name: raw, port: ${port}, protocol: tcp, default_pool: web }
    pools:
      - name: web
        algorithm: round_robin
        backends:
${ports
  .slice(0, n)
  .map((p) => `          - { address: ${HOST}, port: ${p} }`)
  .join('\n')}
`;
  const registry = new ListenerRegistry(l4Env());
  t.after(() => registry.closeAll(0));
  const report = await registry.apply(snapshot(1, yaml(3)));
  assert.deepEqual(report.failures, []);
  assert.ok(
    lines.some((l) => JSON.parse(l).msg === 'listener open'),
    'the listener was opened',
  );

  // A rebuilt round robin starts at a random backend: 10 reloads continuing the cycle by chance
  // has probability 3^-10.
  let last = tags.indexOf(await reached(port));
  for (let rev = 2; rev <= 11; rev++) {
    await registry.apply(snapshot(rev, yaml(3)));
    const now = tags.indexOf(await reached(port));
    assert.equal(now, (last + 1) % 3, `revision ${rev}: round robin restarted`);
    last = now;
  }

  // A changed pool gets a new balancer over its new backends.
  await registry.apply(snapshot(12, yaml(4)));
  const seen = new Set<string>();
  for (let k = 0; k < 4; k++) seen.add(await reached(port));
  assert.deepEqual(seen, new Set(tags));
});
