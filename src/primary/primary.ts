// The primary process: owns the config (source → validate → snapshot), supervises workers,
// serves the admin API, and turns signals (SIGHUP), POST /reload and source pushes (watch) into
// one reload path, and SIGTERM/SIGINT into a drain. It never handles client traffic.

import type { Server } from 'node:http';
import type { Config, StaticConfig } from '../config/model.ts';
import { poolTlsWarnings } from '../config/pool-tls.ts';
import type { Snapshot } from '../config/snapshot.ts';
import type { ConfigSource } from '../config/source.ts';
import { formatIssue } from '../config/validate.ts';
import { Failures } from '../shared/failure.ts';
import { type RaiseResult, raiseNofileToHard } from '../shared/fd-limit.ts';
import { log, setLogRole } from '../shared/log.ts';
import { configRoute, routes } from './admin/config-route.ts';
import { registrationRoute } from './admin/registration.ts';
import { startAdminServer } from './admin/server.ts';
import { StoreActions } from './admin/store-actions.ts';
import { adminExposureWarnings, loadOrCreateToken } from './admin/token.ts';
import { HealthMonitor } from './health/monitor.ts';
import { computeHealth, type HealthBody, type ReloadOutcome } from './health.ts';
import { primaryFeatureFamilies } from './metrics/feature-families.ts';
import { Observability } from './observability.ts';
import { BackendOverrides } from './overrides.ts';
import { OverridesStateFile, restoreOverrides, saveAfterDrop } from './overrides-state.ts';
import { type RateLimitService, startRateLimits } from './ratelimit/service.ts';
import { RevisionWaiter } from './revision-wait.ts';
import { TicketKeyRotation } from './ticket-keys.ts';
import { WorkerSet } from './worker-set.ts';

/** How long a reload waits for every worker to apply the new revision before it reports. */
export const APPLY_TIMEOUT_MS = 10_000;

export class Primary {
  private snapshot: Snapshot | undefined;
  /** The last good config; its static part as of the latest reload. */
  private config: Config | undefined;
  /** Static settings as started: admin and source changes take effect on restart only. */
  private started: StaticConfig | undefined;
  private readonly failures = new Failures();
  private readonly workers: WorkerSet;
  private admin: Server | undefined;
  private inFlight: Promise<ReloadOutcome> | undefined;
  private queued: Promise<ReloadOutcome> | undefined;
  private shuttingDown = false;
  private registration: { close(): Promise<void> } | undefined;
  private rateLimits: RateLimitService | undefined;
  private readonly tickets: TicketKeyRotation;
  private reloadsApplied = 0;
  /** The source revision of the config served: a watch wake-up at the same one has nothing new. */
  private sourceRevision: number | undefined;
  /** Admin API actions on backends, applied on top of every config loaded. */
  private readonly overrides = new BackendOverrides();
  /** Where they are persisted (source file, admin.state_file); read back at start. */
  private stateFile: OverridesStateFile | undefined;
  /** Source revisions loaded: a Chainfire admin action waits for its own write here. */
  private readonly sourceLoaded = new RevisionWaiter();
  /** Metrics, admin API views, dashboard (obs.metrics and obs.api are where modules plug in). */
  readonly obs: Observability;
  /** Active probes, passive ejections and drains; its down set goes to every worker. */
  readonly monitor: HealthMonitor;

  constructor(private readonly source: ConfigSource) {
    this.workers = new WorkerSet(this.failures);
    this.tickets = new TicketKeyRotation((keys) => this.workers.broadcastTicketKeys(keys));
    this.obs = new Observability({
      workers: this.workers,
      failures: this.failures,
      overrides: this.overrides,
      stateFile: () => this.stateFile,
      revision: () => this.revision,
      source: () => this.source.description,
      config: () => this.config,
      snapshot: () => this.snapshot,
      health: () => this.health(),
      reloadsApplied: () => this.reloadsApplied,
      reapply: (reason) => this.reapply(reason),
      reload: () => this.reload('admin'),
      legacyStatus: () => this.status(),
    });
    this.monitor = new HealthMonitor({
      onHealth: (h) => this.workers.broadcastHealth(h),
      liveWorkers: () => this.workers.info().flatMap((w) => (w.pid === undefined ? [] : [w.slot])),
      // https probes verify and present what the pool's own requests do (pool `tls`).
      tlsFor: (p) =>
        p.tls && {
          ca: p.tls.ca,
          cert: p.tls.cert,
          key: p.tls.key,
          servername: p.tls.servername,
          rejectUnauthorized: p.tls.verify,
          minVersion: p.tls.minVersion,
        },
    });
    this.obs.metrics.add('features', () =>
      primaryFeatureFamilies({
        health: this.monitor.stats(),
        rateLimits: this.rateLimits?.stats(),
        quarantined: Number(
          (this.source.status?.()?.stats as { quarantined?: number } | undefined)?.quarantined ?? 0,
        ),
      }),
    );
    // The admin API's backend view shows the last probes, ejection and drain of each backend.
    this.obs.api.healthDetail = (key) => {
      const b = this.monitor.healthReport().backends.find((x) => x.backend === key);
      return b && { state: b.state, probes: b.probes, outlier: b.outlier ?? null, drain: b.drain ?? null };
    };
    this.workers.onReport = (slot, m) => {
      if (m.type === 'outlier') this.monitor.outlierReport(m.counts);
      else this.monitor.drainReport(slot, m.revision, m.inflight);
    };
    this.workers.onWorkerExit = () => this.monitor.workersChanged();
  }

  private get revision(): number {
    return this.snapshot?.revision ?? 0;
  }

  /** Load the first config, open admin, fork workers. On failure: logged, and one line why. */
  async start(): Promise<{ ok: true } | { ok: false; reason: string }> {
    setLogRole('primary');
    // Before any worker is forked: they inherit the raised limit.
    logNofile(raiseNofileToHard());
    const first = await this.load();
    if (first === 'unchanged') throw new Error('unreachable: only a watch reload can be unchanged');
    if (!first.applied) {
      for (const line of first.issues) process.stderr.write(`${line}\n`);
      log('error', 'initial config is invalid; not starting', {
        error_class: 'config_invalid',
        source: this.source.description,
      });
      return { ok: false, reason: `${this.source.description} is invalid (see above); not starting` };
    }
    const config = this.config!;
    this.started = config.static;
    // Before the workers: their first lease requests need an answer.
    this.rateLimits = startRateLimits(config.static.rateLimitStore);
    this.workers.leases = this.rateLimits.handle;
    const { admin } = config.static;
    let token: string;
    try {
      token = await loadOrCreateToken(admin.tokenFile);
    } catch (err) {
      log('error', 'cannot read or create the admin token file; not starting', {
        token_file: admin.tokenFile,
        error: (err as Error).message,
      });
      return { ok: false, reason: `admin token ${admin.tokenFile}: ${(err as Error).message}` };
    }
    for (const warning of await adminExposureWarnings(admin)) log('warn', warning.msg, warning.fields);
    let registration: ReturnType<typeof registrationRoute>;
    try {
      registration = this.registration = registrationRoute(config.static);
    } catch (err) {
      return { ok: false, reason: `admin.tenant_tokens: ${(err as Error).message}` };
    }
    // Chainfire: backend actions write the store, scoped like the registration endpoints.
    if (registration)
      this.obs.api.writer = new StoreActions(
        registration.access,
        (rev) => this.waitSourceServed(rev),
        this.failures,
      );
    try {
      this.admin = await startAdminServer(
        admin,
        token,
        this.obs.api,
        routes(
          registration?.route,
          configRoute(token, () => this.snapshot),
        ),
        registration?.access.tenant,
      );
    } catch (err) {
      log('error', 'listen failed', {
        error_class: 'listen_failed',
        listener: 'admin',
        bind: `http://${admin.address}:${admin.port}`,
        error: (err as Error).message,
      });
      return {
        ok: false,
        reason: `admin API cannot listen on ${admin.address}:${admin.port}: ${(err as Error).message}`,
      };
    }
    log('info', 'admin listening', { address: admin.address, port: admin.port });
    // Not awaited: admin answers (health "unavailable") while the workers start.
    void this.apply();
    this.obs.start();
    process.on('SIGHUP', () => void this.reload('SIGHUP'));
    // logrotate's postrotate: the workers reopen their access log files. (A listener here also
    // keeps Node from opening its inspector on SIGUSR1.)
    process.on('SIGUSR1', () => {
      log('info', 'reopening access logs', { trigger: 'SIGUSR1' });
      this.workers.broadcastReopenLogs();
    });
    process.on('SIGTERM', () => void this.shutdown('SIGTERM'));
    process.on('SIGINT', () => void this.shutdown('SIGINT'));
    const src = config.static.source;
    if (src.type === 'chainfire' || src.watch) {
      this.source.watch(() => void this.reload('watch'));
      log('info', 'watching config for changes', { source: this.source.description });
    }
    return { ok: true };
  }

  /**
   * Re-read the source. Invalid → logged and the last good config keeps serving; valid → sent
   * to the workers, and the answer waits (bounded) until they applied it, naming the listeners
   * that did not open. Every caller gets a read that started after its call: while one reload
   * runs, the next one is queued and shared by everyone who asks meanwhile.
   */
  reload(trigger = 'api'): Promise<ReloadOutcome> {
    if (this.shuttingDown) return Promise.resolve(this.outcome(false, ['shutting down']));
    if (!this.inFlight) {
      log('info', 'reload', { trigger });
      const run = this.load(trigger).then((r) =>
        r === 'unchanged' ? this.outcome(true, []) : r.applied ? this.apply() : r,
      );
      this.inFlight = run.finally(() => {
        this.inFlight = undefined;
      });
      return this.inFlight;
    }
    this.queued ??= this.inFlight.then(() => {
      this.queued = undefined;
      return this.reload(trigger);
    });
    return this.queued;
  }

  async shutdown(reason: string): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    const deadlineMs = this.config?.static.cluster.drainTimeoutMs ?? 30_000;
    log('info', 'draining workers', { reason, deadline_ms: deadlineMs });
    this.obs.stop();
    await this.source.close();
    await this.registration?.close();
    this.tickets.stop();
    this.monitor.stop();
    await this.workers.drainAll(deadlineMs);
    await new Promise<void>((resolve) => (this.admin ? this.admin.close(() => resolve()) : resolve()));
    this.admin?.closeAllConnections();
    log('info', 'stopped');
    process.exit(0);
  }

  /** Send the current snapshot, fit the worker set, wait until applied, report what failed. */
  private async apply(): Promise<ReloadOutcome> {
    const snapshot = this.snapshot!;
    const { cluster } = this.config!.static;
    this.tickets.schedule(cluster.ticketRotationMs);
    // Probers for new backends start (and removed ones stop) with the config they belong to.
    this.monitor.update(snapshot.config, snapshot.revision);
    // Snapshot first: workers that keep running re-split their limits before new ones join.
    this.workers.broadcastSnapshot(snapshot);
    this.workers.resize(cluster.workers, cluster.drainTimeoutMs, cluster.workerOldSpaceMiB);
    const allApplied = await this.workers.waitApplied(snapshot.revision, APPLY_TIMEOUT_MS);
    if (this.snapshot !== snapshot) {
      // A newer revision arrived meanwhile (this was the initial apply); it reports for itself.
      return this.outcome(true, []);
    }
    const health = this.health().body;
    for (const f of health.listeners_failed) {
      log('error', 'listen failed', {
        error_class: 'listen_failed',
        listener: f.listener,
        bind: f.bind,
        workers: f.workers,
        of: health.workers,
        error: f.error,
        revision: snapshot.revision,
      });
    }
    const issues = allApplied
      ? []
      : [
          `${health.workers - health.workers_ready} of ${health.workers} workers did not apply revision ${snapshot.revision} within ${APPLY_TIMEOUT_MS / 1000} s`,
        ];
    if (issues.length > 0) log('warn', issues[0]!, { revision: snapshot.revision });
    return this.outcome(true, issues);
  }

  /**
   * An admin action changed the overrides: the same config with them applied, as the next
   * revision, sent to the workers (waits like a reload). Waits for a reload in flight first.
   */
  private async reapply(reason: string): Promise<ReloadOutcome> {
    if (this.shuttingDown) return this.outcome(false, ['shutting down']);
    await this.inFlight;
    const config = this.config;
    if (!config) return this.outcome(false, ['no config loaded yet']);
    const { config: served } = this.overrides.apply(config.dynamic);
    this.snapshot = {
      revision: this.revision + 1,
      origin: this.source.description,
      workers: config.static.cluster.workers,
      config: served,
      accessLog: config.static.accessLog,
    };
    log('info', 'admin override applied', { reason, revision: this.snapshot.revision });
    this.obs.change({ revision: this.snapshot.revision, what: reason, ok: true });
    return this.apply();
  }

  /** A Chainfire admin action wrote store revision `rev`: wait until every worker serves it. */
  private async waitSourceServed(rev: number): Promise<ReloadOutcome> {
    const deadline = Date.now() + APPLY_TIMEOUT_MS;
    const loaded = await this.sourceLoaded.until(rev, APPLY_TIMEOUT_MS);
    const served = loaded && (await this.workers.waitApplied(this.revision, deadline - Date.now()));
    return this.outcome(
      true,
      served
        ? []
        : [
            `written at store revision ${rev}, but not served by every worker of this FiberLB within ${APPLY_TIMEOUT_MS / 1000} s`,
          ],
    );
  }

  private outcome(applied: boolean, issues: readonly string[]): ReloadOutcome {
    const h = this.health().body;
    return {
      ok: applied && issues.length === 0 && h.listeners_failed.length === 0,
      applied,
      revision: h.revision,
      issues,
      workers: h.workers,
      workers_ready: h.workers_ready,
      listeners_failed: h.listeners_failed,
    };
  }

  /** Read and validate; on success the new config and snapshot are current (not yet sent). */
  private async load(trigger = 'start'): Promise<ReloadOutcome | 'unchanged'> {
    const result = await this.source.load();
    if (!result.ok) return this.reject(result.issues.map(formatIssue));
    // A watch that fired while the previous reload was reading already had its change read
    // then. Applying it again would take a revision of our own and leave the served revision
    // ahead of the store's. SIGHUP and admin reloads still apply: they re-read files.
    if (trigger === 'watch' && result.revision === this.sourceRevision) return 'unchanged';
    this.sourceRevision = result.revision;
    const next = result.config;
    if (this.started) {
      const changed = restartOnlyChanges(this.started, next.static);
      if (changed.length > 0)
        log('warn', 'static config changed; takes effect on restart', {
          changed,
          source: this.source.description,
        });
    }
    // The first config: the overrides saved by the last run come back before it is applied.
    const stateFile = next.static.admin.stateFile;
    if (trigger === 'start' && stateFile !== undefined && next.static.source.type === 'file') {
      this.stateFile = new OverridesStateFile(stateFile);
      await restoreOverrides(this.stateFile, this.overrides, this.failures);
    }
    this.config = next;
    this.reloadsApplied++;
    const { config: served, dropped } = this.overrides.apply(next.dynamic);
    for (const backend of dropped)
      log('warn', 'admin override dropped: the backend is no longer in the config', { backend });
    if (dropped.length > 0 && this.stateFile) saveAfterDrop(this.stateFile, this.overrides, this.failures);
    this.snapshot = {
      // Above the last one served: an admin action may have taken revisions of its own.
      revision: Math.max(result.revision, this.revision + 1),
      origin: this.source.description,
      workers: next.static.cluster.workers,
      config: served,
      accessLog: next.static.accessLog,
    };
    this.sourceLoaded.reached(result.revision);
    log('info', 'config loaded', { revision: this.snapshot.revision, source: this.source.description });
    this.obs.change({
      revision: this.snapshot.revision,
      what: 'config loaded',
      ok: true,
      detail: this.source.description,
    });
    for (const note of poolTlsWarnings(next.dynamic))
      log('warn', 'backend certificates not verified', { note });
    return this.outcome(true, []);
  }

  private reject(issues: string[]): ReloadOutcome {
    this.obs.change({ revision: this.revision, what: 'config rejected', ok: false, detail: issues[0] });
    this.failures.report('config_invalid', 'config rejected; keeping last good config', {
      source: this.source.description,
      issues,
    });
    return this.outcome(false, issues);
  }

  private health(): { ready: boolean; body: HealthBody } {
    const body = computeHealth(this.revision, this.workers.info(), this.shuttingDown);
    return { ready: body.status === 'ok', body };
  }

  private async status(): Promise<Record<string, unknown>> {
    const answers = await this.workers.status();
    const errors: Record<string, number> = this.failures.toJSON();
    for (const a of answers) for (const [k, v] of Object.entries(a.errors)) errors[k] = (errors[k] ?? 0) + v;
    const counters: Record<string, number> = this.monitor.stats();
    for (const a of answers)
      for (const [k, v] of Object.entries(a.counters ?? {})) counters[k] = (counters[k] ?? 0) + v;
    return {
      revision: this.revision,
      source: this.source.description,
      ...(this.source.status ? { source_state: this.source.status() } : {}),
      workers: this.workers.info(),
      active: answers.reduce((n, a) => n + a.active, 0),
      errors,
      // The ledger's counters, and each worker's (allowed, limited, leases, buckets, ...).
      rate_limits: { ledger: this.rateLimits?.stats(), workers: answers.map((a) => a.rateLimits ?? {}) },
      counters,
      health: this.monitor.healthReport(),
    };
  }
}

/** Below this, a busy listener runs out of descriptors early (each proxied connection takes 2). */
const LOW_NOFILE = 4096;

function logNofile(r: RaiseResult): void {
  if (r.raised) log('info', 'file descriptor limit raised', { from: r.from, to: r.to });
  else if (!r.reason) log('info', 'file descriptor limit', { soft: r.limit?.soft, hard: r.limit?.hard });
  else
    log('warn', 'cannot raise the file descriptor limit', {
      soft: r.limit?.soft,
      hard: r.limit?.hard,
      reason: r.reason,
    });
  const soft = r.raised ? r.to : r.limit?.soft;
  if (soft !== undefined && soft < LOW_NOFILE)
    log('warn', 'file descriptor limit is low: each connection needs one or two (README "Operating")', {
      limit: soft,
    });
}

/** The model's camelCase key as written in YAML (durations drop their `Ms`: timeoutMs → timeout). */
function snake(key: string): string {
  return key.replace(/Ms$/, '').replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** Static keys (as written in YAML) that differ and are only read at start: admin, source, rate_limit_store. */
export function restartOnlyChanges(started: StaticConfig, next: StaticConfig): string[] {
  const changed: string[] = [];
  for (const section of ['admin', 'source', 'rateLimitStore'] as const) {
    const a = (started[section] ?? {}) as unknown as Record<string, unknown>;
    const b = (next[section] ?? {}) as unknown as Record<string, unknown>;
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (JSON.stringify(a[key]) !== JSON.stringify(b[key])) changed.push(`${snake(section)}.${snake(key)}`);
    }
  }
  return changed;
}
