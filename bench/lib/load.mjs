// Load generators, run as separate processes pinned to the load core:
// autocannon (closed loop, max throughput), bench/lib/loadgen.mjs (open loop, fixed rate),
// bench/lib/handshake-gen.mjs (TLS handshakes), bench/lib/udp-client.mjs (UDP round trips) and
// bench/lib/ws-client.ts (WebSocket echoes).
import path from 'node:path';
import { exitWithin, spawnPinned } from './proc.mjs';

async function runJson(name, cpu, args, { root, timeoutMs, env }) {
  const child = spawnPinned(name, cpu, process.execPath, args, { cwd: root, env });
  const result = await exitWithin(child, timeoutMs, name, 1000);
  const line = child.out.stdout
    .trim()
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{'));
  if (!line)
    throw new Error(
      `${name} printed no JSON (exit ${result.code ?? result.signal}): ${child.out.stderr.slice(-800)}`,
    );
  return JSON.parse(line);
}

/**
 * Closed-loop max-throughput run: `connections` keep-alive connections, no pipelining, each
 * sending its next request as soon as the previous response arrives.
 * Returns { rps, total, durationS, latencyMs: {p50,p90,p99,p999,mean,max}, errors, timeouts, non2xx, selfCpuUs }.
 * autocannon's latency histogram has 1 ms resolution.
 */
export async function autocannon({ root, cpu, port, connections, durationS, request, scheme = 'http', env }) {
  const args = [
    path.join(root, 'bench/lib/ac-runner.mjs'),
    `${scheme}://127.0.0.1:${port}/`,
    String(connections),
    String(durationS),
    ...(request ? [JSON.stringify(request)] : []),
  ];
  const r = await runJson('autocannon', cpu, args, { root, timeoutMs: (durationS + 30) * 1000, env });
  const l = r.latency;
  return {
    rps: r.requests.total / r.duration,
    total: r.requests.total,
    durationS: r.duration,
    latencyMs: { mean: l.mean, p50: l.p50, p90: l.p90, p99: l.p99, p999: l.p99_9, max: l.max },
    errors: r.errors,
    timeouts: r.timeouts,
    non2xx: r.non2xx,
    selfCpuUs: r.selfCpuUs,
  };
}

/** Open-loop fixed-rate run (see loadgen.mjs). */
export async function fixedRate({ root, cpu, port, connections, durationS, rate, warmupS = 1 }) {
  const args = [
    path.join(root, 'bench/lib/loadgen.mjs'),
    '--port',
    String(port),
    '--rate',
    String(rate),
    '--duration',
    String(durationS),
    '--warmup',
    String(warmupS),
    '--connections',
    String(connections),
  ];
  return runJson('loadgen', cpu, args, { root, timeoutMs: (durationS + warmupS + 30) * 1000 });
}

/** New connection per request (see handshake-gen.mjs): full or resumed TLS handshakes, or plain TCP. */
export async function handshakes({ root, cpu, port, concurrency, durationS, warmupS = 1, resume, plain }) {
  const args = [
    path.join(root, 'bench/lib/handshake-gen.mjs'),
    '--port',
    String(port),
    '--concurrency',
    String(concurrency),
    '--duration',
    String(durationS),
    '--warmup',
    String(warmupS),
    ...(resume ? ['--resume'] : []),
    ...(plain ? ['--plain'] : []),
  ];
  return runJson('handshake-gen', cpu, args, { root, timeoutMs: (durationS + warmupS + 30) * 1000 });
}

/** UDP round trips against an echo (see udp-client.mjs): { replies, sent, lost, durationS, rate }. */
export async function udpRoundTrips({ root, cpu, port, durationS }) {
  const args = [path.join(root, 'bench/lib/udp-client.mjs'), String(port), String(durationS)];
  return runJson('udp-client', cpu, args, { root, timeoutMs: (durationS + 20) * 1000 });
}

/** WebSocket echo round trips (see ws-client.ts, run with tsx): { messages, durationS, rate }. */
export async function wsEchoes({ root, cpu, port, durationS }) {
  const args = [
    '--import',
    'tsx',
    path.join(root, 'bench/lib/ws-client.ts'),
    String(port),
    String(durationS),
  ];
  return runJson('ws-client', cpu, args, { root, timeoutMs: (durationS + 20) * 1000 });
}
