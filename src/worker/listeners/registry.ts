// Makes a worker's open listeners match a snapshot. Listeners are keyed by
// protocol://vip:port: a key present in both the old and the new snapshot keeps its socket and
// only gets update(), so a reload never drops a connection; new keys are opened, gone keys
// are closed gracefully (in-flight work finishes).

import type { LoadBalancerConfig, Protocol } from '../../config/model.ts';
import type { HealthState, Snapshot } from '../../config/snapshot.ts';
import { log } from '../../shared/log.ts';
import type { ListenerFactory, ListenerHandle, ListenerState, WorkerEnv } from '../context.ts';
import { listenerKey, listenerName } from '../context.ts';
import { createHttpListener } from '../http/listener.ts';
import { createPassthroughListener } from '../l4/passthrough.ts';
import { createTcpListener } from '../l4/tcp.ts';
import { createUdpListener } from '../l4/udp.ts';
import { PoolRuntime } from '../routing/pool-runtime.ts';
import { createHttpsListener } from '../tls/https-listener.ts';
import { upstreamKey } from '../upstream/http-pools.ts';
import { transportKey } from '../upstream/transport.ts';

const FACTORIES: Record<Protocol, ListenerFactory | undefined> = {
  tcp: createTcpListener,
  // A TCP proxy routed by the ClientHello's SNI; it never decrypts.
  tls_passthrough: createPassthroughListener,
  udp: createUdpListener,
  http: createHttpListener,
  https: createHttpsListener,
};

/** How long a listener removed by a reload may keep serving its in-flight work. */
const REMOVED_LISTENER_GRACE_MS = 30_000;

export interface ApplyReport {
  readonly listeners: string[];
  /** Listeners of this snapshot that are not open here: `listener` "lb/name", `bind` its key. */
  readonly failures: Array<{ listener: string; bind: string; message: string }>;
}

export class ListenerRegistry {
  private readonly open = new Map<string, ListenerHandle>();
  /** Pools by "lb/pool", kept across snapshots so in-flight counts carry over. */
  private pools = new Map<string, PoolRuntime>();
  private down: ReadonlySet<string> = new Set();

  constructor(private readonly env: WorkerEnv) {}

  async apply(snapshot: Snapshot): Promise<ApplyReport> {
    const wanted = new Map<string, ListenerState>();
    const nextPools = new Map<string, PoolRuntime>();
    for (const lb of snapshot.config.loadBalancers) {
      const pools = this.buildPools(lb, nextPools, snapshot.workers);
      for (const listener of lb.listeners)
        wanted.set(listenerKey(lb, listener), {
          lb,
          listener,
          pools,
          workerCount: snapshot.workers,
          accessLog: listener.accessLog ?? snapshot.accessLog,
        });
    }
    this.pools = nextPools;
    // Writers for the access logs in force (reopened: a reload follows logrotate too).
    const logs = new Set<string>();
    for (const s of wanted.values()) if (s.accessLog && s.accessLog.sample > 0) logs.add(s.accessLog.path);
    this.env.telemetry?.accessLogs.retain(logs);

    const failures: ApplyReport['failures'] = [];
    const opening: Array<Promise<void>> = [];
    for (const [key, state] of wanted) {
      const existing = this.open.get(key);
      if (existing) {
        existing.update(state);
        continue;
      }
      const factory = FACTORIES[state.listener.protocol];
      if (!factory) {
        failures.push({
          listener: listenerName(state),
          bind: key,
          message: `protocol ${state.listener.protocol} is not supported yet`,
        });
        continue;
      }
      const handle = factory(state, this.env);
      this.open.set(key, handle);
      opening.push(
        handle.ready.then(
          () => log('info', 'listener open', { listener: key, lb: state.lb.name, name: state.listener.name }),
          (err: Error) => {
            // Forget it so the next snapshot tries again (e.g. once the port is free).
            this.open.delete(key);
            void handle.close(0);
            failures.push({ listener: listenerName(state), bind: key, message: err.message });
          },
        ),
      );
    }
    for (const [key, handle] of this.open) {
      if (wanted.has(key)) continue;
      this.open.delete(key);
      log('info', 'listener closing', { listener: key, active: handle.active() });
      void handle
        .close(REMOVED_LISTENER_GRACE_MS)
        .then(() => log('info', 'listener closed', { listener: key }));
    }
    await Promise.all(opening);
    // Each listener counts and logs its own listen failure; the worker reports it to the primary.
    this.env.upstreams.retain(this.upstreamAddresses());
    return { listeners: [...this.open.keys()], failures };
  }

  /** Health is applied to pools in place: routing tables and listeners are untouched. */
  setHealth(health: HealthState): void {
    this.down = new Set(health.down);
    for (const pool of this.pools.values()) pool.setHealth(this.down);
  }

  /** In-flight requests/connections per backend whose admin_state is drain (0 included). */
  drainingInflight(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const pool of this.pools.values())
      pool.config.backends.forEach((b, i) => {
        if (b.adminState === 'drain') out[pool.targets[i]!.key] = pool.targets[i]!.active;
      });
    return out;
  }

  active(): number {
    let n = 0;
    for (const h of this.open.values()) n += h.active();
    return n;
  }

  /** Stop accepting everywhere and wait for in-flight work (bounded by deadlineMs). */
  async closeAll(deadlineMs: number): Promise<void> {
    const handles = [...this.open.values()];
    this.open.clear();
    await Promise.all(handles.map((h) => h.close(deadlineMs)));
    await this.env.upstreams.close();
  }

  private buildPools(
    lb: LoadBalancerConfig,
    into: Map<string, PoolRuntime>,
    workers: number,
  ): ReadonlyMap<string, PoolRuntime> {
    const byName = new Map<string, PoolRuntime>();
    for (const pool of lb.pools) {
      const id = `${lb.name}/${pool.name}`;
      const runtime = new PoolRuntime(lb.name, pool, this.down, this.pools.get(id), workers);
      byName.set(pool.name, runtime);
      into.set(id, runtime);
    }
    return byName;
  }

  private upstreamAddresses(): Set<string> {
    const keys = new Set<string>();
    for (const pool of this.pools.values())
      for (const t of pool.targets) keys.add(upstreamKey(t.address, t.port, transportKey(pool.config)));
    return keys;
  }
}
