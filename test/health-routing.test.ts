// What the data plane does with health: no healthy backend → 503 with Retry-After at once;
// panic_threshold (below X% healthy, use every enabled backend); slow start (a backend that
// comes back gets a share of new picks that ramps up over the window).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backendKey, type PoolConfig } from '../src/config/model.ts';
import { byKey } from '../src/worker/routing/pick-context.ts';
import { PoolRuntime } from '../src/worker/routing/pool-runtime.ts';
import { captureLog } from './helpers/capture-log.ts';
import {
  backend,
  healthCheck,
  LB,
  poolConfig,
  startBackend,
  startHttpListener,
} from './helpers/http-fixtures.ts';
import { sleep } from './helpers/net.ts';

function pool(o: Partial<PoolConfig>, n = 3): PoolConfig {
  const p = poolConfig(
    'web',
    Array.from({ length: n }, (_, i) => backend(9000 + i, `b${i}`)),
  );
  return { ...p, ...o };
}
const key = (id: string) => backendKey(LB, 'web', id);

describe('no healthy backend', () => {
  test('503 no_healthy_backend with Retry-After, at once, from the health check rise × interval', async (t) => {
    const log = captureLog(t);
    const b = await startBackend((_req, res) => res.end('x'));
    t.after(() => b.close());
    const cfg = {
      ...poolConfig('web', [backend(b.port, 'a')]),
      healthCheck: healthCheck(),
    };
    const l = await startHttpListener(t, {}, [cfg], { down: new Set([key('a')]) });
    const started = Date.now();
    const r = await fetch(`http://127.0.0.1:${l.port}/`);
    assert.equal(r.status, 503);
    assert.equal(r.headers.get('retry-after'), '4');
    assert.match(await r.text(), /no_healthy_backend/);
    assert.ok(Date.now() - started < 500);
    assert.equal(log.of('no_healthy_backend').length, 1);
    // Without a health check: 1 s.
    const l2 = await startHttpListener(t, {}, [poolConfig('web', [backend(b.port, 'a')])], {
      down: new Set([key('a')]),
    });
    const r2 = await fetch(`http://127.0.0.1:${l2.port}/`);
    assert.equal(r2.headers.get('retry-after'), '1');
    await r2.text();
  });
});

describe('panic threshold', () => {
  const picks = (p: PoolRuntime, n = 300) => {
    const seen = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const t = p.pick(byKey(`10.0.0.${i % 250}`))!;
      seen.set(t.id, (seen.get(t.id) ?? 0) + 1);
    }
    return [...seen.keys()].sort();
  };

  test('below the threshold every enabled backend is used; at or above it only healthy ones', () => {
    const down = new Set([key('b0'), key('b1')]);
    // 1 of 3 healthy = 33%.
    assert.deepEqual(picks(new PoolRuntime(LB, pool({}), down)), ['b2'], 'no threshold');
    const p = new PoolRuntime(LB, pool({ panicThreshold: 50 }), down);
    assert.equal(p.panicking, true);
    assert.deepEqual(picks(p), ['b0', 'b1', 'b2']);
    // 2 of 3 = 66% ≥ 50%: out of panic.
    p.setHealth(new Set([key('b0')]));
    assert.equal(p.panicking, false);
    assert.deepEqual(picks(p), ['b1', 'b2']);
    // Nothing healthy: panic sends to all (Envoy), instead of 503.
    p.setHealth(new Set([key('b0'), key('b1'), key('b2')]));
    assert.deepEqual(picks(p), ['b0', 'b1', 'b2']);
  });

  test('drained and disabled backends never count and are never used, even in panic', () => {
    const cfg = pool({ panicThreshold: 60 }, 4);
    const backends = cfg.backends.map((b, i) => (i === 3 ? { ...b, adminState: 'drain' as const } : b));
    const p = new PoolRuntime(LB, { ...cfg, backends }, new Set([key('b0'), key('b1')]));
    // 1 of 3 enabled healthy = 33% < 60%.
    assert.equal(p.panicking, true);
    assert.deepEqual(picks(p), ['b0', 'b1', 'b2']);
  });
});

describe('slow start', () => {
  test('a recovered backend starts near 10% of its share and ramps to all of it over the window', async () => {
    const cfg = pool({ slowStartMs: 600 });
    const p = new PoolRuntime(LB, cfg, new Set([key('b0')]));
    p.setHealth(new Set());
    const b0 = p.targets[0]!;
    const share = (n = 3000) => {
      let hits = 0;
      for (let i = 0; i < n; i++) if (p.pick(byKey('x')) === b0) hits++;
      return hits / n;
    };
    const early = share();
    // Round robin over 3: a full share is 1/3; ramping at ~10-15% of it.
    assert.ok(early < 0.12, `early share ${early}`);
    assert.ok(p.rampOf(b0) < 0.5);
    await sleep(350);
    const mid = share();
    assert.ok(mid > early && mid < 0.3, `mid share ${mid} (early ${early})`);
    await sleep(350);
    assert.equal(p.rampOf(b0), 1);
    const late = share();
    assert.ok(late > 0.3, `late share ${late}`);
  });

  test('a backend added by a reload ramps; the first build does not; excluded picks still honour exclude', () => {
    const cfg = pool({ slowStartMs: 10_000 }, 2);
    const p1 = new PoolRuntime(LB, cfg, new Set());
    assert.equal(p1.rampOf(p1.targets[0]!), 1, 'nothing ramps at the first snapshot');
    const grown = pool({ slowStartMs: 10_000 }, 3);
    const p2 = new PoolRuntime(LB, grown, new Set(), p1);
    const added = p2.targets[2]!;
    assert.ok(p2.rampOf(added) < 0.2);
    assert.equal(p2.rampOf(p2.targets[0]!), 1);
    // Everything else excluded: the ramping backend is still picked rather than none.
    const others = new Set([p2.targets[0]!, p2.targets[1]!]);
    for (let i = 0; i < 20; i++) assert.equal(p2.pick(byKey('x', others)), added);
    // ip_hash keeps clients where they are: no slow start.
    const sticky = new PoolRuntime(LB, { ...grown, algorithm: 'ip_hash' }, new Set(), p1);
    assert.equal(sticky.rampOf(sticky.targets[2]!), 1);
  });
});
