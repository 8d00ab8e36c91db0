// The primary process: owns the config (source → validate → snapshot), supervises workers,
// serves the admin API, and turns signals into reloads (SIGHUP) and drains (SIGTERM/SIGINT).
// It never handles client traffic.

import type { Server } from 'node:http';
import { inactiveFeatures } from '../config/inactive.ts';
import type { Snapshot } from '../config/snapshot.ts';
import type { ConfigSource } from '../config/source.ts';
import { formatIssue } from '../config/validate.ts';
import { Failures } from '../shared/failure.ts';
import { log, setLogRole } from '../shared/log.ts';
import { startAdminServer } from './admin-server.ts';
import { loadOrCreateToken } from './admin-token.ts';
import { WorkerSet } from './worker-set.ts';

export interface ReloadOutcome {
  readonly ok: boolean;
  readonly revision: number;
  readonly issues: readonly string[];
}

export class Primary {
  private snapshot: Snapshot | undefined;
  private revision = 0;
  private readonly failures = new Failures();
  private readonly workers: WorkerSet;
  private admin: Server | undefined;
  private reloading: Promise<ReloadOutcome> | undefined;
  private shuttingDown = false;

  constructor(private readonly source: ConfigSource) {
    this.workers = new WorkerSet(this.failures);
  }

  /** Load the first config, open admin, fork workers. Returns false (after logging) on failure. */
  async start(): Promise<boolean> {
    setLogRole('primary');
    const first = await this.load();
    if (!first.ok) {
      for (const line of first.issues) process.stderr.write(`${line}\n`);
      log('error', 'initial config is invalid; not starting', {
        error_class: 'config_invalid',
        source: this.source.description,
      });
      return false;
    }
    const config = this.snapshot!.config;
    let token: string;
    try {
      token = await loadOrCreateToken(config.admin.tokenFile);
      this.admin = await startAdminServer(config.admin, token, {
        health: () => this.health(),
        status: () => this.status(),
        reload: async () => {
          const r = await this.reload();
          return { ok: r.ok, body: { ...r } };
        },
      });
    } catch (err) {
      log('error', 'admin listener failed', {
        error_class: 'listen_failed',
        address: `${config.admin.address}:${config.admin.port}`,
        reason: (err as Error).message,
      });
      return false;
    }
    log('info', 'admin listening', { address: config.admin.address, port: config.admin.port });
    this.workers.broadcastSnapshot(this.snapshot!);
    this.workers.resize(config.cluster.workers, config.cluster.drainTimeoutMs);
    process.on('SIGHUP', () => void this.reload());
    process.on('SIGTERM', () => void this.shutdown('SIGTERM'));
    process.on('SIGINT', () => void this.shutdown('SIGINT'));
    return true;
  }

  /**
   * Re-read the source. Invalid → logged and the last good config keeps serving; valid →
   * broadcast to workers. Concurrent calls share one reload.
   */
  reload(): Promise<ReloadOutcome> {
    if (this.shuttingDown)
      return Promise.resolve({ ok: false, revision: this.revision, issues: ['shutting down'] });
    this.reloading ??= this.load().finally(() => {
      this.reloading = undefined;
    });
    return this.reloading.then((r) => {
      if (r.ok) {
        const config = this.snapshot!.config;
        this.workers.broadcastSnapshot(this.snapshot!);
        this.workers.resize(config.cluster.workers, config.cluster.drainTimeoutMs);
      }
      return r;
    });
  }

  async shutdown(reason: string): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    const deadlineMs = this.snapshot?.config.cluster.drainTimeoutMs ?? 30_000;
    log('info', 'draining workers', { reason, deadline_ms: deadlineMs });
    await this.workers.drainAll(deadlineMs);
    await new Promise<void>((resolve) => (this.admin ? this.admin.close(() => resolve()) : resolve()));
    this.admin?.closeAllConnections();
    await this.source.close();
    log('info', 'stopped');
    process.exit(0);
  }

  private async load(): Promise<ReloadOutcome> {
    const result = await this.source.load();
    // Serving the file's load balancers while the operator asked for Chainfire would be a lie.
    if (result.ok && result.config.source.type !== 'file') {
      return this.reject([
        `${this.source.description}: source.type: chainfire is not supported by this build yet`,
      ]);
    }
    if (!result.ok) return this.reject(result.issues.map(formatIssue));
    const previous = this.snapshot?.config.admin;
    const next = result.config.admin;
    if (previous && (previous.address !== next.address || previous.port !== next.port)) {
      log('warn', 'admin address changes take effect on restart', { admin: `${next.address}:${next.port}` });
    }
    this.revision++;
    this.snapshot = { revision: this.revision, origin: this.source.description, config: result.config };
    log('info', 'config loaded', { revision: this.revision, source: this.source.description });
    for (const note of inactiveFeatures(result.config))
      log('warn', 'configured but not active yet', { note });
    return { ok: true, revision: this.revision, issues: [] };
  }

  private reject(issues: string[]): ReloadOutcome {
    this.failures.report('config_invalid', 'config rejected; keeping last good config', {
      source: this.source.description,
      issues,
    });
    return { ok: false, revision: this.revision, issues };
  }

  private health(): { ready: boolean; body: Record<string, unknown> } {
    const workers = this.workers.info();
    const ready = workers.filter((w) => w.pid !== undefined && w.appliedRevision === this.revision).length;
    return {
      ready: ready > 0 && !this.shuttingDown,
      body: {
        status: ready > 0 && !this.shuttingDown ? 'ok' : 'unavailable',
        revision: this.revision,
        workers: workers.length,
        workers_ready: ready,
      },
    };
  }

  private async status(): Promise<Record<string, unknown>> {
    const answers = await this.workers.status();
    const errors: Record<string, number> = this.failures.toJSON();
    for (const a of answers) for (const [k, v] of Object.entries(a.errors)) errors[k] = (errors[k] ?? 0) + v;
    return {
      revision: this.revision,
      source: this.source.description,
      workers: this.workers.info(),
      active: answers.reduce((n, a) => n + a.active, 0),
      errors,
    };
  }
}
