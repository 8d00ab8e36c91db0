// The end of one HTTP request (of a WebSocket upgrade: its answer) or L4 connection, counted
// into its series: a handful of additions on objects that already exist (the hot path
// allocates nothing here).

import { statusClassIndex } from '../../shared/metrics.ts';
import type { ListenerState, WorkerEnv } from '../context.ts';
import { listenerName } from '../context.ts';
import type { HttpExchange } from '../http/exchange.ts';
import type { RouteTarget } from '../routing/router.ts';
import type { LoggedUpgrade } from './access-log.ts';
import { ListenerStats } from './stats.ts';

/** The listener's persistent stats (a detached object where the env has no telemetry). */
export function listenerStats(env: WorkerEnv, state: ListenerState): ListenerStats {
  const name = listenerName(state);
  return (
    env.telemetry?.listener(name, state.lb.name, state.listener.protocol) ??
    new ListenerStats(name, state.lb.name, state.listener.protocol)
  );
}

export function recordHttp(stats: ListenerStats, ex: HttpExchange, now: number): void {
  const c = stats.cell(ex.route, ex.backend);
  c.requests++;
  const res = ex.res;
  c.byClass[res.headersSent ? statusClassIndex(res.statusCode) : 0]!++;
  c.duration.observe((now - ex.startedAt) / 1000);
  const sent = ex.dispatchedAt;
  if (sent > 0) {
    if (ex.firstByteAt > 0) c.firstByte.observe((ex.firstByteAt - sent) / 1000);
    if (ex.upstreamEndAt > 0) c.upstream.observe((ex.upstreamEndAt - sent) / 1000);
  }
  c.requestBodyBytes += ex.requestBytes;
  c.responseBodyBytes += ex.responseBytes;
}

/**
 * A WebSocket upgrade, once its answer is out (the 101, the backend's refusal, ours, or the
 * connection cut before one): counted as the HTTP request it is, in the same series as plain
 * requests. Its duration ends at that answer (the tunnel's lifetime would swamp the request
 * latency histograms); the tunnel itself is in fiberlb_websocket_* and its access-log line.
 */
export function recordUpgrade(stats: ListenerStats, u: LoggedUpgrade & UpgradeTargets): void {
  const c = stats.cell(u.route, u.backend);
  c.requests++;
  c.byClass[statusClassIndex(u.status)]!++;
  c.duration.observe((u.answeredAt - u.startedAt) / 1000);
  if (u.dispatchedAt > 0 && u.status > 0 && u.backendAnswered)
    c.firstByte.observe((u.answeredAt - u.dispatchedAt) / 1000);
}

/** What recordUpgrade needs beyond the access log's view: the series' keys. */
export interface UpgradeTargets {
  readonly route: RouteTarget | undefined;
  /** The answer came from the backend (101 or its refusal), not from us. */
  readonly backendAnswered: boolean;
}
