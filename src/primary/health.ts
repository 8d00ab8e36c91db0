// What the primary tells about itself: the /healthz body and a reload's answer, both computed
// from the workers' reports for the current revision, so they can never disagree.

import type { ListenerFailure, WorkerInfo } from './worker-set.ts';

/** One listener of the current revision that is not open in every worker. */
export interface FailedListener {
  /** "lb/listener" */
  readonly listener: string;
  /** "http://127.0.0.1:8080" */
  readonly bind: string;
  /** How many workers failed to open it. */
  readonly workers: number;
  /** The first worker's error, e.g. "listen EADDRINUSE: address already in use 127.0.0.1:8080". */
  readonly error: string;
}

/** /healthz body (the demo and orchestrators read it). */
export interface HealthBody {
  readonly status: 'ok' | 'degraded' | 'unavailable';
  readonly revision: number;
  readonly workers: number;
  readonly workers_ready: number;
  readonly listeners_failed: readonly FailedListener[];
}

/** POST /reload body: the health after the reload, plus what happened. */
export interface ReloadOutcome {
  /** The config was accepted, every worker applied it and every listener is open. */
  readonly ok: boolean;
  /** The config was accepted and sent to the workers (false: rejected, last good kept). */
  readonly applied: boolean;
  /** The revision now served. */
  readonly revision: number;
  /** Why the config was rejected, or what went wrong applying it. */
  readonly issues: readonly string[];
  readonly workers: number;
  readonly workers_ready: number;
  readonly listeners_failed: readonly FailedListener[];
}

/**
 * Ready = a live worker serves `revision`. A listener of that revision that did not open in a
 * ready worker makes it "degraded" (part of the config is not served: a port taken, permission
 * denied, protocol not available). Only "ok" is healthy.
 */
export function computeHealth(
  revision: number,
  workers: readonly WorkerInfo[],
  stopping: boolean,
): HealthBody {
  const ready = workers.filter((w) => w.pid !== undefined && w.appliedRevision === revision);
  const failed = new Map<string, FailedListener>();
  for (const w of ready) for (const f of w.listenersFailed) failed.set(f.bind, merge(failed.get(f.bind), f));
  const serving = ready.length > 0 && !stopping;
  return {
    status: !serving ? 'unavailable' : failed.size > 0 ? 'degraded' : 'ok',
    revision,
    workers: workers.length,
    workers_ready: ready.length,
    listeners_failed: serving ? [...failed.values()] : [],
  };
}

function merge(prev: FailedListener | undefined, f: ListenerFailure): FailedListener {
  return prev
    ? { ...prev, workers: prev.workers + 1 }
    : { listener: f.listener, bind: f.bind, workers: 1, error: f.error };
}
