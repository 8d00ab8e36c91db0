// The benchmark scenarios: `node bench/run.mjs --scenario NAME` (see bench/README.md).
//
// kind 'http': the run.mjs flow (fresh start per target and round, warm-up, autocannon max
//   throughput, open-loop fixed rate, proxy-tree CPU µs/req) with the scenario's targets and
//   request/response shape.
// kind 'custom': its own measurement (bench/lib/<file>), same pinning, rounds and report.
// kind 'stub': needs a feature built on another branch; prints what it needs and exits 3.
import './lib/tls-targets.mjs'; // registers the https / h2 targets in TARGETS

export const SCENARIOS = [
  {
    name: 'http-small',
    kind: 'http',
    title: 'HTTP small response (13 bytes)',
    targets: ['direct', 'fiberlb', 'fiberlb-base', 'undici', 'http-proxy-3', 'haproxy', 'nginx'],
  },
  {
    name: 'http-16k',
    kind: 'http',
    title: 'HTTP 16 KiB response',
    bodyBytes: 16 * 1024,
    backend: 'node', // the nginx backend's `return 200 "…"` is for the small body only
    targets: ['direct', 'fiberlb', 'fiberlb-base', 'undici', 'http-proxy-3', 'haproxy', 'nginx'],
  },
  {
    name: 'upload',
    kind: 'http',
    title: 'HTTP uploads (POST, 1 MiB body)',
    uploadBytes: 1024 * 1024,
    connections: 10,
    noFixed: true, // the open-loop generator sends GETs only
    backend: 'node', // drains the body; nginx `return 200` does not read it
    targets: ['direct', 'fiberlb', 'fiberlb-base', 'undici', 'haproxy', 'nginx'],
  },
  {
    name: 'fixed-rate',
    kind: 'http',
    title: 'Latency at a fixed 5,000 req/s (open loop), added over direct',
    rate: 5000,
    targets: ['direct', 'fiberlb', 'fiberlb-base', 'undici', 'haproxy', 'nginx'],
  },
  {
    name: 'l4-tcp',
    kind: 'http',
    title: 'L4 TCP: HTTP requests through a TCP tunnel',
    targets: ['direct', 'fiberlb-tcp', 'node-pipe', 'haproxy-tcp', 'nginx-stream'],
    ratioTo: 'node-pipe',
  },
  {
    name: 'l4-bulk',
    kind: 'custom',
    title: 'L4 TCP bulk throughput (iperf3, 1 and 4 streams)',
    module: './lib/bulk.mjs',
    targets: ['direct', 'fiberlb-tcp', 'node-pipe', 'haproxy-tcp', 'nginx-stream'],
  },
  {
    name: 'routes',
    kind: 'http',
    title: 'Routing table size: 10 vs 10,000 routes (N−1 host routes that never match, then a catch-all)',
    targets: ['direct', 'fiberlb-10-routes', 'fiberlb-10k-routes'],
    ratioTo: 'fiberlb-10-routes',
  },
  {
    name: 'workers',
    kind: 'http',
    title: 'Cluster workers: 1 vs 2 on 2 cores (proxy, client and backend share both cores)',
    targets: ['direct', 'fiberlb-w1', 'fiberlb-w2'],
    ratioTo: 'fiberlb-w1',
    noFixed: true,
  },
  {
    name: 'chainfire',
    kind: 'custom',
    title: 'Chainfire change → serving latency (real etcd, 2 workers)',
    module: './lib/chainfire.mjs',
  },
  {
    name: 'udp',
    kind: 'custom',
    title: 'UDP datagrams/s (echo round trips)',
    module: './lib/udp.mjs',
    check: false, // no TCP port to probe
    targets: ['direct', 'fiberlb-udp', 'udp-relay'],
  },
  {
    name: 'ws',
    kind: 'custom',
    title: 'WebSocket messages/s (echo round trips, 64 bytes)',
    module: './lib/ws.mjs',
    targets: ['direct', 'fiberlb', 'haproxy'],
  },
  {
    name: 'https',
    kind: 'custom',
    title: 'HTTPS termination (TLS 1.3): keep-alive, and new handshakes/s',
    module: './lib/https.mjs',
    targets: ['direct', 'fiberlb-https', 'undici-https', 'haproxy-https', 'nginx-https'],
    ratioTo: 'undici-https',
  },
  {
    name: 'h2',
    kind: 'custom',
    title: 'HTTP/2 downstream (h2 over TLS to the proxy, HTTP/1.1 to the backend)',
    module: './lib/h2.mjs',
    targets: ['direct', 'fiberlb-h2', 'undici-h2', 'haproxy-h2', 'nginx-h2'],
    ratioTo: 'undici-h2',
  },
  {
    name: 'health',
    kind: 'http',
    title: 'Health checks, outlier detection, retries, slow start and circuit breakers on (none hit)',
    targets: ['direct', 'fiberlb', 'fiberlb-health'],
    ratioTo: 'fiberlb',
    noFixed: true,
  },
  {
    name: 'rate-limit',
    kind: 'http',
    title: 'Rate limiter on but not hit',
    targets: ['direct', 'fiberlb', 'fiberlb-ratelimit'],
    ratioTo: 'fiberlb',
    noFixed: true,
  },
  {
    name: 'metrics-logs',
    kind: 'http',
    title: 'Access logs to a file on (metrics are always on: --baseline REV before them gives their cost)',
    targets: ['direct', 'fiberlb', 'fiberlb-log', 'fiberlb-base'],
    ratioTo: 'fiberlb',
    noFixed: true,
  },
];

export const scenario = (name) => SCENARIOS.find((s) => s.name === name);
