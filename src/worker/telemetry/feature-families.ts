// Metric families of the data plane's features (retries, rate limits, TLS, WebSocket, SNI
// passthrough, HTTP/2 upstreams, trailers, compiled route tables), read from the counters each module keeps for
// itself: one table, so the names are stable and listed in one place (test/metrics.test.ts
// pins them). Per worker; the primary sums them.

import { counter, gauge, type MetricFamily } from '../../shared/metrics.ts';
import { bodyDrainStats } from '../http/body-drain.ts';
import { redirectStats } from '../http/redirect.ts';
import { stats as trailerStats } from '../http/trailers.ts';
import { stats as tunnelStats } from '../http/upgrade.ts';
import { stats as passthroughStats } from '../l4/passthrough.ts';
import { stats as spliceStats } from '../l4/splice.ts';
import type { LeaseClient } from '../ratelimit/lease-client.ts';
import { routeTableStats } from '../routing/route-table.ts';
import { tlsStats } from '../tls/https-listener.ts';
import { stats as muxStats } from '../upstream/h2-mux.ts';
import { retryStats } from '../upstream/retry.ts';
import { stats as transportStats } from '../upstream/transport.ts';

const one = (value: number) => [{ labels: {}, value }];

export function featureFamilies(rateLimits: LeaseClient): MetricFamily[] {
  const r = retryStats();
  const rl = rateLimits.stats();
  const tls = tlsStats();
  const ws = tunnelStats();
  const pt = passthroughStats();
  const up = transportStats();
  const tr = trailerStats();
  return [
    counter('fiberlb_retries_total', 'Requests retried on another backend.', one(r.retries_total)),
    counter(
      'fiberlb_retry_budget_exhausted_total',
      'Retries refused because the pool retry budget was spent.',
      one(r.retry_budget_exhausted_total),
    ),
    counter('fiberlb_rate_limit_decisions_total', 'Rate-limit checks by outcome.', [
      { labels: { outcome: 'allowed' }, value: rl.allowed },
      { labels: { outcome: 'limited' }, value: rl.limited },
      { labels: { outcome: 'dry_run_would_limit' }, value: rl.dry_run_would_limit },
    ]),
    counter('fiberlb_rate_limit_leases_total', 'Token leases asked of the primary.', one(rl.leases)),
    gauge('fiberlb_rate_limit_buckets', 'Rate-limit buckets held by workers.', one(rl.buckets)),
    counter('fiberlb_tls_handshakes_total', 'TLS handshakes completed on https listeners.', [
      { labels: { resumed: 'false' }, value: tls.handshakes - tls.resumed },
      { labels: { resumed: 'true' }, value: tls.resumed },
    ]),
    counter(
      'fiberlb_tls_handshake_failures_total',
      'TLS handshakes that failed on https listeners.',
      one(tls.handshakeFailures),
    ),
    counter(
      'fiberlb_http2_sessions_total',
      'HTTP/2 client sessions on https listeners.',
      one(tls.h2Sessions),
    ),
    ...drainFamilies(),
    counter('fiberlb_redirects_total', 'Requests redirected to https.', one(redirectStats().redirects)),
    gauge('fiberlb_websocket_tunnels', 'WebSocket tunnels open.', one(ws.active)),
    counter('fiberlb_websocket_tunnels_total', 'WebSocket upgrades tunnelled.', one(ws.upgraded)),
    counter('fiberlb_websocket_bytes_total', 'Bytes relayed through WebSocket tunnels.', [
      { labels: { direction: 'up' }, value: ws.bytesUp },
      { labels: { direction: 'down' }, value: ws.bytesDown },
    ]),
    counter('fiberlb_tls_passthrough_routed_total', 'tls_passthrough connections by how they were routed.', [
      { labels: { by: 'sni' }, value: pt.routedBySni },
      { labels: { by: 'default' }, value: pt.routedDefault },
    ]),
    counter('fiberlb_upstream_tls_connections_total', 'TLS connections to backends.', [
      { labels: { resumed: 'false' }, value: up.tlsConnections - up.tlsResumed },
      { labels: { resumed: 'true' }, value: up.tlsResumed },
    ]),
    counter(
      'fiberlb_upstream_h2_connections_total',
      'HTTP/2 connections to backends.',
      one(up.h2Connections),
    ),
    counter(
      'fiberlb_upstream_h2_peer_limited_total',
      'HTTP/2 backend connections whose peer allowed fewer than 100 streams.',
      one(muxStats().peerLimited),
    ),
    counter(
      'fiberlb_trailers_dropped_total',
      'Backend trailers an HTTP/1.x client could not receive.',
      one(tr.dropped),
    ),
    ...routeTableFamilies(),
    ...spliceFamilies(),
  ];
}

/** TCP tunnels' data path (l4/splice.ts): reused buffers per direction, or pipe() as a fallback. */
function spliceFamilies(): MetricFamily[] {
  const s = spliceStats();
  return [
    counter(
      'fiberlb_tcp_directions_total',
      'TCP tunnel directions by how bytes move: reused buffers, or pipe().',
      [
        { labels: { path: 'spliced' }, value: s.spliced },
        { labels: { path: 'piped' }, value: s.piped },
      ],
    ),
    counter(
      'fiberlb_tcp_writes_blocked_total',
      'Tunnel writes the kernel did not take at once: that direction stopped reading until it drained.',
      one(s.blocked),
    ),
    counter(
      'fiberlb_tcp_buffer_grows_total',
      'Tunnel directions that switched to the large read buffer (a read filled the small one).',
      one(s.grown),
    ),
  ];
}

/** Compiled route tables (routing/route-table.ts): one built per listener and config revision. */
function routeTableFamilies(): MetricFamily[] {
  const r = routeTableStats();
  return [
    counter(
      'fiberlb_route_tables_built_total',
      'Route tables compiled (per worker: one per routed listener and config revision).',
      one(r.tables),
    ),
    counter(
      'fiberlb_route_table_routes_total',
      'Routes indexed into the route tables compiled, summed over the tables.',
      one(r.tableRoutes),
    ),
    counter(
      'fiberlb_route_table_build_seconds_total',
      'Time spent compiling route tables.',
      one(r.buildUs / 1e6),
    ),
    counter(
      'fiberlb_route_lookups_total',
      'Route table lookups (HTTP requests and upgrades routed, tls_passthrough SNI routing).',
      one(r.lookups),
    ),
    counter(
      'fiberlb_route_lookup_checks_total',
      'Routes whose method and header conditions lookups evaluated (the index skips the rest).',
      one(r.routesChecked),
    ),
  ];
}

/** Request bodies left unread by an early response: dropped (keep-alive goes on) or closed. */
function drainFamilies(): MetricFamily[] {
  const d = bodyDrainStats();
  return [
    counter(
      'fiberlb_body_drains_total',
      "Request bodies left after an early response (the backend's or FiberLB's own), by how they ended.",
      [
        { labels: { result: 'drained' }, value: d.completed },
        { labels: { result: 'closed_over_limit' }, value: d.closedOverLimit },
        { labels: { result: 'closed_timeout' }, value: d.closedTimeout },
        { labels: { result: 'client_gone' }, value: d.clientGone },
        { labels: { result: 'closed_after_answer' }, value: d.closedAfterAnswer },
      ],
    ),
    counter(
      'fiberlb_body_drain_bytes_total',
      'Request body bytes read and dropped after an early response.',
      one(d.bytes),
    ),
  ];
}
