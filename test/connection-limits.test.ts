// A listener's L4 limits driven directly (no sockets): connection_rate_limit leased from the
// primary's real Ledger through the worker's real LeaseClient, max_connections_per_ip counted
// per worker against its share, the allow-list, dry_run, and one spelling per client address.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ListenerConfig } from '../src/config/model.ts';
import type { LeaseRequest } from '../src/ipc.ts';
import { Ledger } from '../src/primary/ratelimit/ledger.ts';
import { plainIp } from '../src/shared/cidr.ts';
import { ConnectionLimits } from '../src/worker/ratelimit/connection-limits.ts';
import type { LeaseClient } from '../src/worker/ratelimit/lease-client.ts';
import { LB, listenerConfig, listenerState } from './helpers/http-fixtures.ts';
import { cidrs, sleep } from './helpers/net.ts';
import { inProcessLeases, rateLimit, stallingLeases } from './helpers/rate-limit.ts';

interface Verdict {
  refused: string | undefined;
  why: string;
  held: string | undefined;
  sync: boolean;
}

function setup(
  t: { after(fn: () => void): void },
  o: Partial<ListenerConfig>,
  workerCount = 1,
  asked: LeaseRequest[] = [],
  client: LeaseClient = inProcessLeases(new Ledger(), asked),
) {
  t.after(() => client.close());
  const limits = new ConnectionLimits(client);
  const state = listenerState(listenerConfig(0, o), [], undefined, workerCount);
  /** Admit one connection from `ip`; resolves with its single verdict. */
  const admit = async (ip: string): Promise<Verdict> => {
    let calls = 0;
    let sync = true;
    const got = await new Promise<Verdict>((resolve) => {
      limits.admit(state, ip, (refused, why, held) => {
        calls++;
        resolve({ refused, why, held, sync });
      });
      sync = false;
    });
    await sleep(5);
    assert.equal(calls, 1, 'one verdict per connection');
    return got;
  };
  return { limits, client, asked, admit };
}

const admitted = (held: string | undefined) => ({ refused: undefined, why: '', held });

test('plainIp: an IPv4-mapped IPv6 address is its IPv4 address; anything else is kept', () => {
  assert.equal(plainIp('::ffff:10.0.0.1'), '10.0.0.1');
  assert.equal(plainIp('10.0.0.1'), '10.0.0.1');
  assert.equal(plainIp('::ffff:a00:1'), '::ffff:a00:1');
  assert.equal(plainIp('2001:db8::ffff:1.2.3.4'), '2001:db8::ffff:1.2.3.4');
  assert.equal(plainIp('::1'), '::1');
  assert.equal(plainIp(undefined), '');
});

test('no L4 limit configured: every connection is admitted at once, nothing leased or tracked', async (t) => {
  const s = setup(t, {});
  for (let i = 0; i < 3; i++)
    assert.deepEqual(await s.admit('10.0.0.1'), { ...admitted(undefined), sync: true });
  assert.equal(s.asked.length, 0);
  assert.equal(s.limits.tracked(), 0);
  assert.equal(s.client.stats().allowed, 0);
});

test('max_connections_per_ip: this worker admits its share, refuses beyond it, and admits again after a release', async (t) => {
  // 5 over 2 workers: 2 in this one.
  const s = setup(t, { maxConnectionsPerIp: 5 }, 2);
  const a = await s.admit('::ffff:10.0.0.1');
  assert.deepEqual(a, { ...admitted('10.0.0.1'), sync: true });
  assert.deepEqual(await s.admit('10.0.0.1'), { ...admitted('10.0.0.1'), sync: true });
  assert.equal(s.limits.openFrom('10.0.0.1'), 2);
  const over = await s.admit('10.0.0.1');
  assert.deepEqual(over, {
    refused: 'connection_limit',
    why: 'max_connections_per_ip 5 (2 in this worker) reached',
    held: undefined,
    sync: true,
  });
  // Another client has its own count.
  assert.equal((await s.admit('10.0.0.2')).refused, undefined);
  assert.equal(s.limits.tracked(), 2);
  s.limits.release('10.0.0.1');
  assert.equal(s.limits.openFrom('10.0.0.1'), 1);
  assert.equal((await s.admit('10.0.0.1')).refused, undefined);
  s.limits.release('10.0.0.1');
  s.limits.release('10.0.0.1');
  s.limits.release('10.0.0.2');
  assert.equal(s.limits.openFrom('10.0.0.1'), 0);
  assert.equal(s.limits.tracked(), 0);
  // A stray release does not go below zero (nor give a later connection a spare slot).
  s.limits.release('10.0.0.1');
  assert.equal(s.limits.tracked(), 0);
  assert.equal((await s.admit('10.0.0.1')).refused, undefined);
  assert.equal((await s.admit('10.0.0.1')).refused, undefined);
  assert.equal((await s.admit('10.0.0.1')).refused, 'connection_limit');
  const st = s.client.stats();
  assert.equal(st.allowed, 6);
  assert.equal(st.limited, 2);
  assert.equal(s.asked.length, 0);
});

test('max_connections_per_ip below the worker count still allows one per worker', async (t) => {
  const s = setup(t, { maxConnectionsPerIp: 1 }, 4);
  assert.equal((await s.admit('10.0.0.1')).refused, undefined);
  assert.equal((await s.admit('10.0.0.1')).why, 'max_connections_per_ip 1 (1 in this worker) reached');
});

test('connection_rate_limit: new connections per (masked) client address from a leased bucket, then rate_limited', async (t) => {
  const s = setup(t, { connectionRateLimit: rateLimit({ rate: 0.001, burst: 2, prefix: 24 }) });
  assert.deepEqual(await s.admit('10.1.2.3'), { ...admitted(undefined), sync: false });
  assert.equal((await s.admit('10.1.2.200')).refused, undefined);
  assert.deepEqual(await s.admit('::ffff:10.1.2.9'), {
    refused: 'rate_limited',
    why: 'connection_rate_limit 0.001 per 1000 ms reached',
    held: undefined,
    sync: true,
  });
  assert.equal((await s.admit('10.1.3.1')).refused, undefined);
  assert.deepEqual([...new Set(s.asked.map((a) => a.b))].sort(), [
    `${LB}/web/~connections\n10.1.2.0/24`,
    `${LB}/web/~connections\n10.1.3.0/24`,
  ]);
  assert.deepEqual(
    {
      rate: s.asked[0]!.rate,
      perMs: s.asked[0]!.perMs,
      burst: s.asked[0]!.burst,
      global: s.asked[0]!.global,
    },
    { rate: 0.001, perMs: 1000, burst: 2, global: false },
  );
  const st = s.client.stats();
  assert.equal(st.allowed, 3);
  assert.equal(st.limited, 1);
  assert.equal(s.limits.tracked(), 0);
});

test('connection_rate_limit with scope global asks the ledger for a global bucket', async (t) => {
  const s = setup(t, { connectionRateLimit: rateLimit({ rate: 5, scope: 'global' }) });
  assert.equal((await s.admit('10.1.2.3')).refused, undefined);
  assert.equal(s.asked[0]!.global, true);
});

test('connection_rate_limit in dry_run: over the rate still admitted, counted as would-limit', async (t) => {
  const s = setup(t, { connectionRateLimit: rateLimit({ rate: 0.001, burst: 1, mode: 'dry_run' }) });
  for (let i = 0; i < 3; i++) assert.equal((await s.admit('10.0.0.1')).refused, undefined);
  const st = s.client.stats();
  assert.equal(st.allowed, 3);
  assert.equal(st.dry_run_would_limit, 2);
  assert.equal(st.limited, 0);
});

test('both limits: a connection refused for concurrency spends no rate token; admitted ones are held', async (t) => {
  const s = setup(t, {
    maxConnectionsPerIp: 1,
    connectionRateLimit: rateLimit({ rate: 0.001, burst: 2 }),
  });
  assert.deepEqual(await s.admit('10.0.0.1'), { ...admitted('10.0.0.1'), sync: false });
  for (let i = 0; i < 3; i++) assert.equal((await s.admit('10.0.0.1')).refused, 'connection_limit');
  s.limits.release('10.0.0.1');
  // The second token is still there.
  assert.deepEqual((await s.admit('10.0.0.1')).held, '10.0.0.1');
  s.limits.release('10.0.0.1');
  assert.equal((await s.admit('10.0.0.1')).refused, 'rate_limited');
  assert.equal(s.limits.tracked(), 0);
});

test('rate_limit_allow exempts clients (IPv4-mapped spellings too) from both limits, nothing held', async (t) => {
  const s = setup(t, {
    rateLimitAllow: cidrs('10.0.0.0/8'),
    maxConnectionsPerIp: 1,
    connectionRateLimit: rateLimit({ rate: 0.001, burst: 1 }),
  });
  for (let i = 0; i < 3; i++)
    assert.deepEqual(await s.admit('::ffff:10.0.0.1'), { ...admitted(undefined), sync: true });
  assert.equal(s.asked.length, 0);
  assert.equal(s.limits.tracked(), 0);
  assert.equal((await s.admit('192.0.2.1')).refused, undefined);
  assert.equal((await s.admit('192.0.2.1')).refused, 'connection_limit');
});

test('a rate lease that never settles: refused as rate_limited after 10 rounds (dry_run: admitted, counted)', {
  timeout: 5000,
}, async (t) => {
  for (const mode of ['enforce', 'dry_run'] as const) {
    const asked: LeaseRequest[] = [];
    const s = setup(
      t,
      { connectionRateLimit: rateLimit({ rate: 5, mode }) },
      1,
      asked,
      stallingLeases(asked),
    );
    const v = await s.admit('10.0.0.1');
    assert.equal(v.refused, mode === 'enforce' ? 'rate_limited' : undefined);
    // The first ask, then one after each of the 10 answers waited for.
    assert.equal(asked.length, 11);
    const st = s.client.stats();
    assert.equal(st.limited + st.dry_run_would_limit, 1);
  }
});
