// The admin API's answers, computed from what the primary holds: the served config (with the
// runtime overrides applied), health, workers. Actions (drain / enable / disable / weight /
// reset) go to a BackendWriter (backend-writer.ts): the persisted overrides with the file
// source, the backend's Chainfire key with the Chainfire source; the answer waits until every
// worker serves the result.

import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { backendKey, type Config, type DynamicConfig } from '../../config/model.ts';
import type { Failures } from '../../shared/failure.ts';
import type { HealthBody, ReloadOutcome } from '../health.ts';
import type { BackendOverrides } from '../overrides.ts';
import type { OverridesStateFile } from '../overrides-state.ts';
import type { WorkerInfo } from '../worker-set.ts';
import type { BackendWriter } from './backend-writer.ts';
import { OverrideActions } from './override-actions.ts';
import { redactedConfig } from './redact.ts';
import { type ActionResult, ADMIN_CALLER, type AdminApi, type BackendAction, type Caller } from './routes.ts';

/** What the admin API reads from (and asks of) the primary. */
export interface PrimaryView {
  readonly startedAt: number;
  revision(): number;
  source(): string;
  /** The config as loaded from the source (last good). */
  loaded(): Config | undefined;
  /** Its served part with the overrides applied (what the workers run). */
  served(): DynamicConfig | undefined;
  health(): { ready: boolean; body: HealthBody };
  workers(): WorkerInfo[];
  down(): ReadonlySet<string>;
  readonly overrides: BackendOverrides;
  readonly failures: Failures;
  /** admin.state_file with the file source, once the first config is read. */
  stateFile(): OverridesStateFile | undefined;
  /** Rebuild the snapshot with the current overrides, send it, wait for the workers. */
  reapply(reason: string): Promise<ReloadOutcome>;
  reload(): Promise<ReloadOutcome>;
  legacyStatus(): Promise<Record<string, unknown>>;
  metrics(): Promise<{ contentType: string; text: string }>;
}

/** Per-backend health detail from the health checker (issue 7): last probes, why it is down. */
export type HealthDetail = (key: string) => Record<string, unknown> | undefined;

/** The dashboard side (static files, SSE, history); see admin/dashboard. */
export interface LiveFeed {
  asset(name: string): { contentType: string; text: string } | undefined;
  events(req: IncomingMessage, res: ServerResponse): void;
  history(): unknown;
}

export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

export class AdminApiImpl implements AdminApi {
  /** Set by the health checker once it exists; until then backends show only the down list. */
  healthDetail: HealthDetail | undefined;
  live: LiveFeed | undefined;
  /** Where backend actions go; the primary sets the Chainfire one at start for that source. */
  writer: BackendWriter;

  constructor(private readonly p: PrimaryView) {
    this.writer = new OverrideActions({
      overrides: p.overrides,
      stateFile: () => p.stateFile(),
      reapply: (reason) => p.reapply(reason),
      failures: p.failures,
    });
  }

  health() {
    return this.p.health();
  }

  legacyStatus() {
    return this.p.legacyStatus();
  }

  reload() {
    return this.p.reload();
  }

  metrics() {
    return this.p.metrics();
  }

  status(): Record<string, unknown> {
    const h = this.p.health().body;
    return {
      version: VERSION,
      node: process.version,
      pid: process.pid,
      uptime_s: Math.round((Date.now() - this.p.startedAt) / 1000),
      status: h.status,
      revision: this.p.revision(),
      source: this.p.source(),
      workers: this.p.workers().map((w) => ({
        slot: w.slot,
        pid: w.pid ?? null,
        applied_revision: w.appliedRevision,
        ready: w.pid !== undefined && w.appliedRevision === h.revision,
        crashes: w.crashes,
        listeners_failed: w.listenersFailed,
      })),
      workers_ready: h.workers_ready,
      listeners_failed: h.listeners_failed,
      overrides: this.p.overrides.entries().length,
      backend_actions: this.writer.status(),
    };
  }

  config(): unknown {
    const c = this.p.loaded();
    const served = this.p.served();
    if (!c || !served) return { revision: this.p.revision(), config: null, overrides: [] };
    return {
      revision: this.p.revision(),
      source: this.p.source(),
      config: redactedConfig({ ...c.static, ...served }),
      overrides: this.overridesList(),
    };
  }

  listeners(): unknown[] {
    const failed = new Map(this.p.health().body.listeners_failed.map((f) => [f.listener, f]));
    return (this.p.served()?.loadBalancers ?? []).flatMap((lb) =>
      lb.listeners.map((l) => {
        const name = `${lb.name}/${l.name}`;
        const f = failed.get(name);
        return {
          listener: name,
          lb: lb.name,
          name: l.name,
          protocol: l.protocol,
          bind: `${l.protocol}://${lb.vip.includes(':') ? `[${lb.vip}]` : lb.vip}:${l.port}`,
          default_pool: l.defaultPool ?? null,
          routes: l.routes.map((r, i) => ({
            route: String(i),
            pool: r.pool,
            match: redactedConfig(r.match),
          })),
          open: f === undefined,
          error: f?.error ?? null,
        };
      }),
    );
  }

  pools(): unknown[] {
    return (this.p.served()?.loadBalancers ?? []).flatMap((lb) =>
      lb.pools.map((pool) => {
        const backends = this.backends(lb.name, pool.name) as BackendView[];
        return {
          pool: `${lb.name}/${pool.name}`,
          lb: lb.name,
          name: pool.name,
          algorithm: pool.algorithm,
          health_check: pool.healthCheck ? redactedConfig(pool.healthCheck) : null,
          backends: backends.length,
          serving: backends.filter((b) => b.serving).length,
        };
      }),
    );
  }

  backends(lbName: string, poolName: string): unknown[] | undefined {
    const served = this.p.served()?.loadBalancers.find((l) => l.name === lbName);
    const pool = served?.pools.find((p) => p.name === poolName);
    if (!pool) return undefined;
    const loaded = this.p
      .loaded()
      ?.dynamic.loadBalancers.find((l) => l.name === lbName)
      ?.pools.find((p) => p.name === poolName);
    const down = this.p.down();
    return pool.backends.map((b): BackendView => {
      const key = backendKey(lbName, poolName, b.id);
      const file = loaded?.backends.find((x) => x.id === b.id);
      const o = this.p.overrides.get(key);
      const isDown = down.has(key);
      const why: string[] = [];
      if (b.adminState !== 'enabled')
        why.push(`admin_state ${b.adminState} (${o?.adminState !== undefined ? 'admin API' : 'config'})`);
      if (isDown) why.push('marked down by health checks');
      return {
        key,
        id: b.id,
        address: b.address,
        port: b.port,
        weight: b.weight,
        admin_state: b.adminState,
        config: { weight: file?.weight ?? b.weight, admin_state: file?.adminState ?? b.adminState },
        override: o ? { admin_state: o.adminState ?? null, weight: o.weight ?? null, at: o.at } : null,
        health: {
          state: isDown ? 'down' : pool.healthCheck ? 'up' : 'unchecked',
          // The health checker (issue 7) fills in its last probes and reasons here.
          ...(this.healthDetail?.(key) ?? { probes: null }),
        },
        serving: why.length === 0,
        why: why.length === 0 ? null : why.join('; '),
      };
    });
  }

  async backendAction(
    lb: string,
    pool: string,
    id: string,
    a: BackendAction,
    caller: Caller = ADMIN_CALLER,
  ): Promise<ActionResult> {
    const list = this.backends(lb, pool) as BackendView[] | undefined;
    if (list === undefined) return { status: 404, body: { error: `pool ${lb}/${pool} not found` } };
    const b = list.find((x) => x.id === id);
    if (!b) return { status: 404, body: { error: `backend ${id} not found in pool ${lb}/${pool}` } };
    const key = b.key;
    const w = await this.writer.write({ lb, pool, id, key }, a, caller);
    if (!w.ok)
      return {
        status: w.status,
        body: { error: w.error, ...(w.errorClass ? { error_class: w.errorClass } : {}) },
      };
    const r = w.outcome;
    const now = (this.backends(lb, pool) as BackendView[] | undefined)?.find((x) => x.key === key);
    return {
      status: r.ok ? 200 : 503,
      body: { ok: r.ok, revision: r.revision, issues: r.issues, backend: now ?? null, ...w.extra },
    };
  }

  asset(name: string) {
    return this.live?.asset(name);
  }

  events(req: IncomingMessage, res: ServerResponse): void {
    if (this.live) this.live.events(req, res);
    else res.writeHead(404).end();
  }

  history(): unknown {
    return this.live?.history() ?? null;
  }

  private overridesList() {
    return this.p.overrides.entries().map(([key, o]) => ({
      backend: key,
      admin_state: o.adminState ?? null,
      weight: o.weight ?? null,
      at: o.at,
    }));
  }
}

interface BackendView {
  readonly key: string;
  readonly id: string;
  readonly serving: boolean;
  readonly [k: string]: unknown;
}
