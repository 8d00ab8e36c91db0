// In-process cost of what FiberLB adds per request for metrics and access logs, in CPU µs per
// call (process.cpuUsage, so time stolen by other processes counts less than wall time):
// recordHttp (series lookup, status class, 3 histograms, bytes) and an access log line built
// and queued (written to /dev/null by the real writer). Run: node --import tsx bench/telemetry-cost.ts
// Compare with FiberLB's ~43 µs/req of proxy CPU (README "Benchmarks").

import type { HttpExchange } from '../src/worker/http/exchange.ts';
import { AccessLogSink } from '../src/worker/telemetry/access-log.ts';
import { LogWriter } from '../src/worker/telemetry/log-writer.ts';
import { recordHttp } from '../src/worker/telemetry/record.ts';
import { ListenerStats } from '../src/worker/telemetry/stats.ts';

const N = 2_000_000;
const route = { route: 'default', poolName: 'web', pool: undefined };
const target = { key: 'lb/web/a', id: 'a', address: '127.0.0.1', port: 9001, weight: 1, active: 0 };
const t0 = performance.now();
const ex = {
  route,
  backend: target,
  res: { headersSent: true, statusCode: 200 },
  startedAt: t0,
  dispatchedAt: t0 + 0.01,
  sentAt: t0 + 0.02,
  firstByteAt: t0 + 0.3,
  upstreamEndAt: t0 + 0.31,
  requestBytes: 0,
  responseBytes: 13,
  peerIp: '127.0.0.1',
  method: 'GET',
  path: '/hello?x=1',
  requestId: 'abc-1',
  errorClass: undefined,
} as unknown as HttpExchange;

function cpuUs(fn: () => void, n: number): number {
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) fn();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / n;
}

const stats = new ListenerStats('lb/http', 'lb', 'http');
cpuUs(() => recordHttp(stats, ex, t0 + 0.4), N / 10); // warm up
const rec = cpuUs(() => recordHttp(stats, ex, t0 + 0.4), N);
// Lines in chunks the queue holds, each drained before the next: the CPU of building, queueing
// and writing (libuv's thread pool counts in process.cpuUsage too), per line.
const writer = new LogWriter('/dev/null');
const sink = new AccessLogSink(writer, 1);
const CHUNK = 5000;
const CHUNKS = 40;
const drained = async () => {
  while ((writer as unknown as { pendingBytes: number }).pendingBytes > 0)
    await new Promise((r) => setTimeout(r, 2));
};
await drained();
const c0 = process.cpuUsage();
for (let k = 0; k < CHUNKS; k++) {
  for (let i = 0; i < CHUNK; i++) sink.http('lb/http', 'lb', ex, t0 + 0.4);
  await drained();
}
const c = process.cpuUsage(c0);
const perLine = (c.user + c.system) / (CHUNK * CHUNKS);
await writer.close();
console.log(`recordHttp: ${rec.toFixed(3)} CPU µs/call (${N} calls)`);
console.log(
  `access log line (build, queue, write to /dev/null): ${perLine.toFixed(3)} CPU µs/line; ${writer.written} written, ${writer.dropped} dropped`,
);
