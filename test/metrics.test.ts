// /metrics against a real FiberLB with 2 workers: after a known number of HTTP requests, TCP
// connections and UDP sessions, the merged counters add up exactly; the text is read by an
// independent parser (parse-prometheus-text-format, a port of the Python client's parser);
// the family names are a stable list; a worker killed after a scrape does not take its counts
// away; the token guards /metrics unless admin.metrics_open.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import parse, { type ParsedFamily } from 'parse-prometheus-text-format';
import {
  childPids,
  lbConfigHead,
  nameServer,
  startLb,
  tempDir,
  writeConfig,
} from './helpers/cluster-fiberlb.ts';
import { readToEnd, tcpConnect, tcpEcho, udpBackend, udpClient } from './helpers/l4-backends.ts';
import { freeTcpPort, freeUdpPort, sleep } from './helpers/net.ts';

/** Every fiberlb_ family a scrape of this config shows (the primary's process_* / nodejs_* come on top). */
const NAMES = [
  'fiberlb_access_log_lines_total',
  'fiberlb_admin_backend_actions_total',
  'fiberlb_admin_overrides',
  'fiberlb_admin_store_write_conflicts_total',
  'fiberlb_backend_down',
  'fiberlb_backend_serving',
  'fiberlb_backends_drained_total',
  'fiberlb_body_drain_bytes_total',
  'fiberlb_body_drains_total',
  'fiberlb_config_info',
  'fiberlb_config_quarantined_keys',
  'fiberlb_config_reloads_total',
  'fiberlb_config_revision',
  'fiberlb_connections_active',
  'fiberlb_connections_total',
  'fiberlb_failures_total',
  'fiberlb_health_backends_down',
  'fiberlb_health_probes_total',
  'fiberlb_health_transitions_total',
  'fiberlb_http2_sessions_total',
  'fiberlb_http_request_body_bytes_total',
  'fiberlb_http_request_duration_seconds',
  'fiberlb_http_requests_total',
  'fiberlb_http_response_body_bytes_total',
  'fiberlb_http_responses_total',
  'fiberlb_outlier_ejected',
  'fiberlb_outlier_ejections_total',
  'fiberlb_rate_limit_buckets',
  'fiberlb_rate_limit_decisions_total',
  'fiberlb_rate_limit_leases_total',
  'fiberlb_rate_limit_redis_fallbacks_total',
  'fiberlb_rate_limit_redis_up',
  'fiberlb_received_bytes_total',
  'fiberlb_redirects_total',
  'fiberlb_retries_total',
  'fiberlb_retry_budget_exhausted_total',
  'fiberlb_route_lookup_checks_total',
  'fiberlb_route_lookups_total',
  'fiberlb_route_table_build_seconds_total',
  'fiberlb_route_table_routes_total',
  'fiberlb_route_tables_built_total',
  'fiberlb_sent_bytes_total',
  'fiberlb_tcp_buffer_grows_total',
  'fiberlb_tcp_directions_total',
  'fiberlb_tcp_writes_blocked_total',
  'fiberlb_tls_handshake_failures_total',
  'fiberlb_tls_handshakes_total',
  'fiberlb_tls_passthrough_routed_total',
  'fiberlb_trailers_dropped_total',
  'fiberlb_upstream_connect_duration_seconds',
  'fiberlb_upstream_connect_errors_total',
  'fiberlb_upstream_connections_total',
  'fiberlb_upstream_first_byte_seconds',
  'fiberlb_upstream_h2_connections_total',
  'fiberlb_upstream_h2_peer_limited_total',
  'fiberlb_upstream_response_duration_seconds',
  'fiberlb_upstream_tls_connections_total',
  'fiberlb_websocket_bytes_total',
  'fiberlb_websocket_tunnels',
  'fiberlb_websocket_tunnels_total',
  'fiberlb_worker_cpu_seconds_total',
  'fiberlb_worker_heap_used_bytes',
  'fiberlb_worker_http_requests_total',
  'fiberlb_worker_resident_memory_bytes',
  'fiberlb_worker_restarts_total',
  'fiberlb_workers',
];

/** A GET on a fresh connection (so the kernel spreads them over the workers). */
function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * The parser's own histogram grouping folds every labelled series of a family into one (a bug
 * in 1.1.1), so histograms are declared untyped to it and read as their _bucket, _sum and
 * _count samples, each keeping its labels; the TYPE lines are checked separately.
 */
function parseText(text: string): ParsedFamily[] {
  const untyped = text.replace(/^# TYPE (\S+) histogram$/gm, '# TYPE $1 untyped');
  const byName = new Map<string, ParsedFamily>();
  for (const f of parse(untyped)) {
    const prev = byName.get(f.name);
    byName.set(f.name, prev ? { ...prev, metrics: [...prev.metrics, ...f.metrics] } : f);
  }
  const histograms = [...text.matchAll(/^# TYPE (\S+) histogram$/gm)].map((m) => m[1]!);
  for (const h of histograms) byName.set(h, { name: h, help: '', type: 'HISTOGRAM', metrics: [] });
  return [...byName.values()];
}

function family(fams: ParsedFamily[], name: string): ParsedFamily {
  const f = fams.find((x) => x.name === name);
  assert.ok(f, `no family ${name}`);
  return f;
}

/** A histogram's series: count, sum and buckets per label set (without le). */
function series(fams: ParsedFamily[], name: string) {
  const out = new Map<
    string,
    { labels: Record<string, string>; count: number; sum: number; buckets: Map<string, number> }
  >();
  const at = (labels: Record<string, string>) => {
    const { le: _le, ...rest } = labels;
    const key = JSON.stringify(rest);
    let s = out.get(key);
    if (!s) {
      s = { labels: rest, count: 0, sum: 0, buckets: new Map() };
      out.set(key, s);
    }
    return s;
  };
  for (const m of family(fams, `${name}_bucket`).metrics)
    at(m.labels ?? {}).buckets.set(m.labels!.le!, Number(m.value));
  for (const m of family(fams, `${name}_count`).metrics) at(m.labels ?? {}).count = Number(m.value);
  for (const m of family(fams, `${name}_sum`).metrics) at(m.labels ?? {}).sum = Number(m.value);
  return [...out.values()];
}

/** Sum of a counter/gauge family's samples whose labels include `match`. */
function total(fams: ParsedFamily[], name: string, match: Record<string, string> = {}): number {
  let n = 0;
  for (const m of family(fams, name).metrics)
    if (Object.entries(match).every(([k, v]) => m.labels?.[k] === v)) n += Number(m.value);
  return n;
}

describe('metrics', () => {
  test('2 workers: counters add up exactly, parsed by an independent parser', async (t) => {
    const a = await nameServer('a');
    const b = await nameServer('b');
    const echo = await tcpEcho();
    const uecho = await udpBackend();
    const deadPort = await freeTcpPort(); // nothing listens: 502 upstream_connect_refused
    t.after(() => Promise.all([a.close(), b.close(), echo.close(), uecho.close()]));
    const dir = tempDir();
    const [adminPort, httpPort, tcpPort, udpPort] = [
      await freeTcpPort(),
      await freeTcpPort(),
      await freeTcpPort(),
      await freeUdpPort(),
    ];
    const file = writeConfig(
      dir,
      `${lbConfigHead(adminPort, 'workers: 2', 'pub')}      - name: web
        port: ${httpPort}
        protocol: http
        default_pool: web
        routes:
          - { match: { path_prefix: /dead }, pool: dead }
      - { name: raw, port: ${tcpPort}, protocol: tcp, default_pool: echo }
      - { name: dns, port: ${udpPort}, protocol: udp, default_pool: uecho }
    pools:
      - name: web
        backends:
          - { id: a, address: 127.0.0.1, port: ${a.port} }
          - { id: b, address: 127.0.0.1, port: ${b.port} }
      - name: dead
        backends:
          - { id: d, address: 127.0.0.1, port: ${deadPort} }
      - name: echo
        backends:
          - { id: e, address: 127.0.0.1, port: ${echo.port} }
      - name: uecho
        backends:
          - { id: u, address: 127.0.0.1, port: ${uecho.port} }
`,
    );
    const lb = await startLb(file, adminPort);
    t.after(() => lb.stop());
    const token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
    const scrape = async (): Promise<ParsedFamily[]> => {
      const r = await fetch(`http://127.0.0.1:${adminPort}/metrics`, {
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      return parseText(await r.text());
    };

    // Concurrent bursts on fresh connections until both workers have served some (the kernel
    // hands an idle listener's connections to whichever worker wakes first).
    const BURST = 20;
    let OK = 0;
    const seen = { a: 0, b: 0 };
    for (let round = 0; round < 15; round++) {
      const rs = await Promise.all(Array.from({ length: BURST }, (_, i) => get(httpPort, `/n${i}`)));
      for (const r of rs) {
        assert.equal(r.status, 200);
        seen[r.body as 'a' | 'b']++;
      }
      OK += BURST;
      const served = family(await scrape(), 'fiberlb_worker_http_requests_total').metrics;
      if (served.length === 2 && served.every((m) => Number(m.value) > 0)) break;
    }
    const DEAD = 7;
    for (let i = 0; i < DEAD; i++) assert.equal((await get(httpPort, '/dead')).status, 502);
    const TCP = 5;
    const payload = 'hello-metrics';
    for (let i = 0; i < TCP; i++) {
      const s = await tcpConnect(tcpPort);
      s.end(payload);
      assert.equal((await readToEnd(s)).data.toString(), payload);
    }
    const UDP = 4;
    for (let i = 0; i < UDP; i++) {
      const c = await udpClient();
      c.send('ping!', udpPort);
      for (let w = 0; w < 100 && c.received.length === 0; w++) await sleep(20);
      assert.equal(c.received.length, 1);
      await c.close();
    }

    // A response reaches the client as its worker counts it: allow that moment, then be exact.
    let fams = await scrape();
    for (let i = 0; i < 40 && total(fams, 'fiberlb_http_requests_total') < OK + DEAD; i++) {
      await sleep(50);
      fams = await scrape();
    }
    const web = { listener: 'pub/web' };
    assert.equal(total(fams, 'fiberlb_http_requests_total', web), OK + DEAD);
    assert.equal(total(fams, 'fiberlb_http_requests_total', { backend: 'pub/web/a' }), seen.a);
    assert.equal(total(fams, 'fiberlb_http_requests_total', { backend: 'pub/web/b' }), seen.b);
    assert.equal(total(fams, 'fiberlb_http_responses_total', { route: 'default', status_class: '2xx' }), OK);
    assert.equal(
      total(fams, 'fiberlb_http_responses_total', { route: '0', pool: 'pub/dead', status_class: '5xx' }),
      DEAD,
    );
    assert.equal(total(fams, 'fiberlb_failures_total', { error_class: 'upstream_connect_refused' }), DEAD);
    assert.equal(total(fams, 'fiberlb_failures_total', { side: 'client' }), 0);
    // Every request was on its own connection, and every connection has closed.
    assert.equal(total(fams, 'fiberlb_connections_total', web), OK + DEAD);
    assert.equal(total(fams, 'fiberlb_connections_active', web), 0);
    // Both workers served, and their per-worker counts add up to the total.
    const perWorker = family(fams, 'fiberlb_worker_http_requests_total').metrics;
    assert.deepEqual(perWorker.map((m) => m.labels?.worker).sort(), ['0', '1']);
    assert.ok(
      perWorker.every((m) => Number(m.value) > 0),
      `one worker served nothing: ${JSON.stringify(perWorker)}`,
    );
    assert.equal(
      perWorker.reduce((n, m) => n + Number(m.value), 0),
      OK + DEAD,
    );
    // Histograms merged bucket by bucket: every count is there, +Inf = count.
    const dur = series(fams, 'fiberlb_http_request_duration_seconds');
    assert.equal(
      dur.reduce((n, m) => n + m.count, 0),
      OK + DEAD,
    );
    for (const m of dur) {
      assert.equal(m.buckets.get('+Inf'), m.count);
      assert.equal(m.buckets.size, 16);
      let prev = 0;
      for (const v of m.buckets.values()) {
        assert.ok(v >= prev, 'buckets are cumulative');
        prev = v;
      }
    }
    const fb = series(fams, 'fiberlb_upstream_first_byte_seconds');
    assert.equal(
      fb.filter((m) => m.labels.pool === 'pub/web').reduce((n, m) => n + m.count, 0),
      OK,
    );
    assert.equal(
      series(fams, 'fiberlb_upstream_connect_duration_seconds').find(
        (m) => m.labels.address === `127.0.0.1:${echo.port}`,
      )?.count,
      TCP,
    );
    // Response bodies: "a"/"b", one byte each.
    assert.equal(total(fams, 'fiberlb_http_response_body_bytes_total', web), OK);
    // TCP: connections and bytes exact; upstream connects timed per backend address.
    const raw = { listener: 'pub/raw' };
    assert.equal(total(fams, 'fiberlb_connections_total', raw), TCP);
    assert.equal(total(fams, 'fiberlb_connections_active', raw), 0);
    assert.equal(total(fams, 'fiberlb_received_bytes_total', raw), TCP * payload.length);
    assert.equal(total(fams, 'fiberlb_sent_bytes_total', raw), TCP * payload.length);
    // Two directions a tunnel, each through reused buffers (or, in a corner, pipe()).
    assert.equal(total(fams, 'fiberlb_tcp_directions_total'), 2 * TCP);
    assert.ok(total(fams, 'fiberlb_tcp_directions_total', { path: 'spliced' }) >= TCP);
    const echoAddr = { address: `127.0.0.1:${echo.port}` };
    assert.equal(total(fams, 'fiberlb_upstream_connections_total', echoAddr), TCP);
    const deadAddr = { address: `127.0.0.1:${deadPort}` };
    assert.equal(total(fams, 'fiberlb_upstream_connect_errors_total', deadAddr), DEAD);
    // UDP: one session per client socket, bytes both ways.
    const dns = { listener: 'pub/dns' };
    assert.equal(total(fams, 'fiberlb_connections_total', dns), UDP);
    assert.equal(total(fams, 'fiberlb_connections_active', dns), UDP); // until their idle timeout
    assert.equal(total(fams, 'fiberlb_received_bytes_total', dns), UDP * 5);
    assert.equal(total(fams, 'fiberlb_sent_bytes_total', dns), UDP * 5);
    // Config and workers.
    assert.equal(total(fams, 'fiberlb_config_revision'), 1);
    assert.equal(family(fams, 'fiberlb_config_info').metrics[0]!.labels?.source, file);
    assert.equal(total(fams, 'fiberlb_workers', { state: 'ready' }), 2);
    assert.equal(total(fams, 'fiberlb_worker_restarts_total'), 0);
    assert.equal(total(fams, 'fiberlb_backend_serving', { backend: 'pub/web/a' }), 1);
    assert.equal(total(fams, 'fiberlb_backend_serving'), 5);
    assert.equal(total(fams, 'fiberlb_backend_down'), 0);
    // Stable names; the primary's default process metrics are there too.
    assert.deepEqual(
      fams
        .map((f) => f.name)
        .filter((n) => n.startsWith('fiberlb_') && !/_(bucket|sum|count)$/.test(n))
        .sort(),
      NAMES,
    );
    assert.ok(fams.some((f) => f.name === 'process_cpu_user_seconds_total'));
    // No client addresses or paths in any label.
    for (const f of fams)
      for (const m of f.metrics)
        for (const v of Object.values(m.labels ?? {})) assert.ok(!v.startsWith('/n'), `${f.name}: ${v}`);

    // A worker that does not answer in time (stopped) counts with its last full report, so
    // the totals do not dip (Prometheus would read a dip as a counter reset).
    const [stopped] = await childPids(lb.pid);
    process.kill(stopped!, 'SIGSTOP');
    try {
      const during = await scrape();
      assert.equal(total(during, 'fiberlb_http_requests_total', web), OK + DEAD);
    } finally {
      process.kill(stopped!, 'SIGCONT');
    }

    // A worker killed after that scrape: what it counted stays in the totals.
    const [victim] = await childPids(lb.pid);
    process.kill(victim!, 'SIGKILL');
    for (let i = 0; i < 100; i++) {
      fams = await scrape();
      if (
        total(fams, 'fiberlb_worker_restarts_total') === 1 &&
        total(fams, 'fiberlb_workers', { state: 'ready' }) === 2
      )
        break;
      await sleep(50);
    }
    assert.equal(total(fams, 'fiberlb_worker_restarts_total'), 1);
    assert.equal(total(fams, 'fiberlb_http_requests_total', web), OK + DEAD);
    assert.equal(total(fams, 'fiberlb_failures_total', { error_class: 'worker_crash' }), 1);

    // The token guards /metrics by default.
    const anon = await fetch(`http://127.0.0.1:${adminPort}/metrics`);
    assert.equal(anon.status, 401);
    await anon.body?.cancel();
  });

  test('admin.metrics_open: true serves /metrics without the token (the rest still needs it)', async (t) => {
    const dir = tempDir();
    const adminPort = await freeTcpPort();
    const file = writeConfig(
      dir,
      `admin: { address: 127.0.0.1, port: ${adminPort}, token_file: admin.token, metrics_open: true }\ncluster: { workers: 1 }\nload_balancers: []\n`,
    );
    const lb = await startLb(file, adminPort);
    t.after(() => lb.stop());
    const r = await fetch(`http://127.0.0.1:${adminPort}/metrics`);
    assert.equal(r.status, 200);
    const fams = parseText(await r.text());
    assert.equal(total(fams, 'fiberlb_workers', { state: 'configured' }), 1);
    const status = await fetch(`http://127.0.0.1:${adminPort}/status`);
    assert.equal(status.status, 401);
    await status.body?.cancel();
  });
});
