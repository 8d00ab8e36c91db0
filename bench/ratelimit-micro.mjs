// CPU cost of the L7 rate-limit check alone, per admitted request, in process: one
// client_ip limit that is never hit (the case `npm run bench` measures end to end with
// BENCH_FIBERLB_LISTENER), the worker's LeaseClient talking to a real Ledger. Run after
// `npm run build`: node bench/ratelimit-micro.mjs

import { Ledger } from '../dist/primary/ratelimit/ledger.js';
import { LeaseClient } from '../dist/worker/ratelimit/lease-client.js';
import { RequestLimits } from '../dist/worker/ratelimit/request-limits.js';

const ledger = new Ledger();
const client = new LeaseClient({
  send(reqs, returns) {
    const grants = ledger.handle(reqs, returns);
    setImmediate(() => client.onGrants(grants));
  },
});
const limit = {
  name: 'client_ip',
  key: 'client_ip',
  header: undefined,
  prefix: 32,
  prefixV6: 64,
  rate: 1e6,
  perMs: 1000,
  burst: 1e6,
  mode: 'enforce',
  scope: 'local',
};
const state = {
  lb: { name: 'bench' },
  listener: { name: 'http', rateLimits: [limit], routes: [], rateLimitAllow: [] },
  pools: new Map(),
  workerCount: 1,
};
const limits = new RequestLimits(state, client);
const set = limits.limitsFor(-1);
let passed = 0;
const ex = {
  hashKey: () => '127.0.0.1',
  host: 'x',
  req: { headers: {} },
  proceed: () => passed++,
  refuse() {},
};
const N = 200_000;
for (let round = 1; round <= 5; round++) {
  const start = process.cpuUsage();
  for (let i = 0; i < N; i += 1000) {
    for (let j = 0; j < 1000; j++) limits.admit(ex, set, -1, null, false);
    await new Promise((r) => setImmediate(r)); // lets lease answers arrive, as in a worker
  }
  const u = process.cpuUsage(start);
  console.log(
    `round ${round}: ${((u.user + u.system) / N).toFixed(3)} µs CPU per request, ${client.stats().leases} lease answers so far`,
  );
}
client.close();
if (passed !== 5 * N) throw new Error(`only ${passed} of ${5 * N} passed`);
