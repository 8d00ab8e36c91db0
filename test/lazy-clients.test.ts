// The Chainfire (etcd3, gRPC) and Redis clients are loaded on first use (src/shared/lazy-require.ts):
// a FiberLB on a file source without a rate_limit_store loads none of them, in the primary or
// in its workers (they cost ~26 MB and ~360 ms a process); one with a rate_limit_store loads
// ioredis in the primary, where the limits ledger runs. Real processes; each one writes, at
// exit, which of those packages are in its module cache (an ESM import of a CommonJS package
// lands there too).

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { lbConfigHead, startLb, tempDir, writeConfig } from './helpers/cluster-fiberlb.ts';
import { freeTcpPort } from './helpers/net.ts';

const HOOK = `const fs = require('node:fs');
process.on('exit', () => {
  const seen = new Set();
  for (const k of Object.keys(require.cache)) {
    const m = /node_modules\\/(etcd3|@grpc\\/[^/]+|ioredis)\\//.exec(k);
    if (m) seen.add(m[1]);
  }
  fs.appendFileSync(process.env.LOADED_FILE, JSON.stringify({ pid: process.pid, seen: [...seen].sort() }) + '\\n');
});
`;

async function loadedBy(extra: string): Promise<Array<{ pid: number; seen: string[] }>> {
  const dir = tempDir();
  const hook = join(dir, 'hook.cjs');
  writeFileSync(hook, HOOK);
  const out = join(dir, 'loaded.jsonl');
  const admin = await freeTcpPort();
  const port = await freeTcpPort();
  const file = writeConfig(
    dir,
    `${extra}${lbConfigHead(admin, 'workers: 2, drain_timeout: 1s', 'w')}      - { name: api, port: ${port}, protocol: http, default_pool: web }
    pools: [{ name: web, backends: [{ address: 127.0.0.1, port: 9 }] }]
`,
  );
  const lb = await startLb(file, admin, 20_000, {
    wrap: ['env', `LOADED_FILE=${out}`, `NODE_OPTIONS=--require ${hook}`],
  });
  await lb.stop();
  return readFileSync(out, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { pid: number; seen: string[] });
}

test('a file-source FiberLB loads no Chainfire or Redis client; a rate_limit_store loads ioredis in the primary only', async () => {
  const plain = await loadedBy('');
  assert.equal(plain.length, 3, 'primary and 2 workers reported');
  assert.deepEqual(
    plain.map((p) => p.seen),
    [[], [], []],
  );
  const redis = await loadedBy('rate_limit_store: { type: redis, port: 9 }\n');
  assert.equal(redis.length, 3);
  assert.deepEqual(
    redis.map((p) => p.seen.join(',')).sort(),
    ['', '', 'ioredis'],
    'ioredis in one process (the primary), nothing else anywhere',
  );
});
