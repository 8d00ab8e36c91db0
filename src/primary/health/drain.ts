// Drain, as the primary sees it: a backend whose admin_state is `drain` takes no new requests
// or connections (the workers' balancers skip it); its in-flight work finishes. Workers report
// what each still has in flight to such backends (ipc 'draining'); once every live worker has
// reported, for the revision that set the drain or a later one, that nothing is left, the
// backend is drained: logged once ("backend drained") and shown in the health report, so an
// operator knows when it can be stopped.

import { log } from '../../shared/log.ts';

interface Draining {
  /** The revision that set admin_state drain (reports from earlier revisions do not count). */
  readonly revision: number;
  readonly since: number;
  drainedAt: number;
  inFlight: number;
}

interface WorkerReport {
  readonly revision: number;
  readonly inflight: Record<string, number>;
}

export interface DrainInfo {
  readonly since: string;
  readonly in_flight: number;
  readonly drained: boolean;
  readonly drained_at: string | undefined;
}

export class DrainTracker {
  private readonly draining = new Map<string, Draining>();
  private readonly reports = new Map<number, WorkerReport>();
  drainedTotal = 0;

  /** The backend keys with admin_state drain in `revision`. */
  configure(keys: Iterable<string>, revision: number): void {
    const now = new Set(keys);
    for (const key of this.draining.keys()) if (!now.has(key)) this.draining.delete(key);
    for (const key of now)
      if (!this.draining.has(key))
        this.draining.set(key, { revision, since: Date.now(), drainedAt: 0, inFlight: -1 });
  }

  /** One worker's latest report; `live` are the slots of the workers now running. */
  report(slot: number, revision: number, inflight: Record<string, number>, live: readonly number[]): void {
    this.reports.set(slot, { revision, inflight });
    this.evaluate(live);
  }

  /** A worker exited or the set changed: what it had in flight is gone with it. */
  evaluate(live: readonly number[]): void {
    for (const slot of this.reports.keys()) if (!live.includes(slot)) this.reports.delete(slot);
    for (const [key, d] of this.draining) {
      let total = 0;
      let all = live.length > 0;
      for (const slot of live) {
        const r = this.reports.get(slot);
        if (r === undefined || r.revision < d.revision) {
          all = false;
          continue;
        }
        total += r.inflight[key] ?? 0;
      }
      d.inFlight = total;
      if (all && total === 0 && d.drainedAt === 0) {
        d.drainedAt = Date.now();
        this.drainedTotal++;
        log('info', 'backend drained', { backend: key, drain_ms: d.drainedAt - d.since });
      }
    }
  }

  info(key: string): DrainInfo | undefined {
    const d = this.draining.get(key);
    if (d === undefined) return undefined;
    return {
      since: new Date(d.since).toISOString(),
      in_flight: Math.max(0, d.inFlight),
      drained: d.drainedAt > 0,
      drained_at: d.drainedAt > 0 ? new Date(d.drainedAt).toISOString() : undefined,
    };
  }
}
