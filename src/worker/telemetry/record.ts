// The end of one HTTP request or L4 connection, counted into its series: a handful of
// additions on objects that already exist (the hot path allocates nothing here).

import { statusClassIndex } from '../../shared/metrics.ts';
import type { ListenerState, WorkerEnv } from '../context.ts';
import { listenerName } from '../context.ts';
import type { HttpExchange } from '../http/exchange.ts';
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
