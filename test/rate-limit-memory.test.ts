// test: serial — it measures admitted rates (or memory), so it runs alone.
// Bounded memory for rate limiting: 1,000,000 distinct client addresses through a worker's
// LeaseClient (talking to a real Ledger) and through the primary's Ledger, measured with
// process.memoryUsage() after a full GC; idle buckets expire in the sweeps.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { LEDGER_MAX_BUCKETS, Ledger } from '../src/primary/ratelimit/ledger.ts';
import { LeaseClient, MAX_LEASES } from '../src/worker/ratelimit/lease-client.ts';
import { captureLog } from './helpers/capture-log.ts';

v8.setFlagsFromString('--expose_gc');
const gc = vm.runInNewContext('gc') as () => void;

const N = 1_000_000;
const P = { rate: 10, perMs: 1000, burst: 20, global: false };
const ip = (j: number) => `10.${(j >> 16) & 255}.${(j >> 8) & 255}.${j & 255}`;
const turn = () => new Promise((r) => setImmediate(r));

function heap(): number {
  gc();
  return process.memoryUsage().heapUsed;
}

test(`a worker: ${N} distinct client addresses stay within ${MAX_LEASES} leases (docs/config.md: ≤ 30 MB)`, async (t) => {
  captureLog(t); // the fail-open warning when the loop starves the answers is expected here
  // The real ledger, small, so its own memory (another process in FiberLB) is not counted.
  const ledger = new Ledger(undefined, 10_000);
  const client: LeaseClient = new LeaseClient({
    send(reqs, returns) {
      const g = ledger.handle(reqs, returns);
      setImmediate(() => client.onGrants(g));
    },
  });
  t.after(() => client.close());
  const before = heap();
  for (let i = 0; i < N; i += 5000) {
    const now = Date.now();
    for (let j = i; j < i + 5000; j++)
      client.state(client.lease(`edge/api/client_ip\n${ip(j)}`, P, now), now);
    await turn();
    await turn();
  }
  const grown = (heap() - before) / 1e6;
  const s = client.stats();
  process.stderr.write(
    `rate-limit-memory: worker: ${s.buckets} leases, ${s.evicted} evicted, heap +${grown.toFixed(1)} MB\n`,
  );
  assert.ok(s.buckets <= MAX_LEASES, `${s.buckets} leases`);
  assert.ok(grown < 30, `worker heap grew ${grown.toFixed(1)} MB`);
});

test(`the primary: ${N} distinct addresses stay within ${LEDGER_MAX_BUCKETS} buckets (docs/config.md: ≤ 150 MB)`, () => {
  const ledger = new Ledger();
  const before = heap();
  let seq = 0;
  for (let i = 0; i < N; i += 5000) {
    const reqs = [];
    for (let j = i; j < i + 5000; j++)
      reqs.push({ seq: ++seq, b: `edge/api/client_ip\n${ip(j)}`, ...P, want: 1, global: false });
    ledger.handle(reqs, []);
  }
  const grown = (heap() - before) / 1e6;
  const s = ledger.stats();
  process.stderr.write(
    `rate-limit-memory: ledger: ${s.buckets} buckets, ${s.evicted} evicted, heap +${grown.toFixed(1)} MB\n`,
  );
  assert.ok(s.buckets <= LEDGER_MAX_BUCKETS);
  assert.ok(grown < 150, `ledger heap grew ${grown.toFixed(1)} MB`);
});

test('idle buckets expire: leases after 2 s unused (returned), ledger buckets once full again', async (t) => {
  captureLog(t);
  const ledger = new Ledger();
  const client: LeaseClient = new LeaseClient({
    send(reqs, returns) {
      const g = ledger.handle(reqs, returns);
      setImmediate(() => client.onGrants(g));
    },
  });
  const now = Date.now();
  for (let j = 0; j < 1000; j++) client.state(client.lease(`a/b/c\n${ip(j)}`, P, now), now);
  await turn();
  await turn();
  assert.equal(client.stats().buckets, 1000);
  assert.equal(ledger.stats().buckets, 1000);
  client.sweep(now + 1000);
  assert.equal(client.stats().buckets, 1000, 'not idle long enough');
  client.sweep(now + 2500);
  assert.equal(client.stats().buckets, 0);
  await turn(); // the returns reach the ledger
  assert.ok(ledger.stats().tokens_returned > 0);
  ledger.sweep(now + 100);
  assert.equal(ledger.stats().buckets, 0, 'every bucket is full again: equal to a new one');
  t.after(() => client.close());
});
