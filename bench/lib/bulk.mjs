// Scenario `l4-bulk`: TCP bulk throughput with iperf3 (Debian's), 1 and 4 parallel streams,
// direct to an iperf3 server and through each L4 proxy. Same pinning as every scenario: the
// proxy alone on its core, iperf3 client + server on the load core. Per slot: fresh start of
// the target, a 1 s unmeasured warm-up transfer, then the 1-stream and the 4-stream run
// (`iperf3 -c … -t S -P N -J`); Gbit/s is what the server received; proxy CPU is the proxy
// tree's utime + stime per GB moved.

import { spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { exitWithin, freePort, rememberTree, spawnPinned, stop, waitForPort, which } from './proc.mjs';
import { median, scenarioHeader } from './report.mjs';
import { measureRounds, per, proxyCpu } from './rounds.mjs';

const STREAMS = [1, 4];

async function iperf(cpu, port, seconds, streams) {
  const child = spawnPinned('iperf3-client', cpu, which('iperf3'), [
    '-c',
    '127.0.0.1',
    '-p',
    String(port),
    '-t',
    String(seconds),
    '-P',
    String(streams),
    '-J',
  ]);
  await exitWithin(child, (seconds + 20) * 1000, 'iperf3 client');
  const j = JSON.parse(child.out.stdout);
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  return {
    bitsPerSecond: j.end.sum_received.bits_per_second,
    bytes: j.end.sum_received.bytes,
    seconds: j.end.sum_received.seconds,
  };
}

export async function run(ctx) {
  const { loadCpu, durationS, meta, log } = ctx;
  if (!which('iperf3')) throw new Error('iperf3 not installed (apt-get install -y iperf3)');
  meta.iperf3 = spawnSync('iperf3', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0];
  const port = await freePort();
  const server = spawnPinned('iperf3-server', loadCpu, which('iperf3'), ['-s', '-p', String(port)]);
  await waitForPort(port, { child: server });
  meta.backend = `${meta.iperf3} server (-s), pinned to CPU ${loadCpu}`;
  try {
    await measureRounds(
      ctx,
      port,
      async (started, run, t) => {
        if (started.child) rememberTree(started.child);
        // Warm-up (JIT, the worker's first connections), not measured.
        await iperf(loadCpu, started.port, 1, 1);
        await sleep(300);
        for (const n of STREAMS) {
          const cpu = proxyCpu(started);
          const r = await iperf(loadCpu, started.port, durationS, n);
          const cpuUs = cpu();
          run[`s${n}`] = {
            gbps: r.bitsPerSecond / 1e9,
            cpuMsPerGB: per(cpuUs, 1000 * (r.bytes / 1e9)),
            proxyCpuUtil: per(cpuUs, r.seconds * 1e6),
          };
          await sleep(300); // iperf3's server is ready for the next test once the last one closed
        }
        log(
          `  ${t.name.padEnd(14)} ${STREAMS.map((n) => `${n} stream: ${run[`s${n}`].gbps.toFixed(2)} Gbit/s${run[`s${n}`].cpuMsPerGB ? ` (${Math.round(run[`s${n}`].cpuMsPerGB)} ms/GB, core ${Math.round(run[`s${n}`].proxyCpuUtil * 100)}%)` : ''}`).join('  ')}`,
        );
      },
      summarize,
    );
  } finally {
    await stop(server);
  }
}

function summarize(runs) {
  const ok = runs.filter((r) => !r.error);
  const out = { rounds: ok.length };
  for (const n of STREAMS) {
    const g = ok.map((r) => r[`s${n}`]?.gbps).filter(Number.isFinite);
    out[`s${n}`] = {
      gbps: median(g),
      gbpsMin: g.length ? Math.min(...g) : null,
      gbpsMax: g.length ? Math.max(...g) : null,
      cpuMsPerGB: median(ok.map((r) => r[`s${n}`]?.cpuMsPerGB)),
      proxyCpuUtil: median(ok.map((r) => r[`s${n}`]?.proxyCpuUtil)),
    };
  }
  return out;
}

const f2 = (x) => (x == null ? '–' : x.toFixed(2));
const f0 = (x) => (x == null ? '–' : Math.round(x).toLocaleString('en-US'));
const pct = (x) => (x == null ? '–' : `${Math.round(x * 100)}%`);

export function markdown({ meta, targets }) {
  const L = scenarioHeader(meta);
  L.push(
    `- Backend: ${meta.backend}; proxy on CPU ${meta.proxyCpu}; ${meta.rounds} round(s) of ${meta.durationS} s per stream count, medians`,
  );
  L.push('');
  L.push(
    '| target | version | 1 stream Gbit/s | range | vs direct | vs node:net pipe | proxy CPU ms per GB | core busy | 4 streams Gbit/s | range | vs node:net pipe | proxy CPU ms per GB |',
  );
  L.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  const d = targets.direct?.summary;
  const p = targets['node-pipe']?.summary;
  for (const t of Object.values(targets)) {
    const s = t.summary;
    if (!s) {
      L.push(
        `| ${t.label} | ${t.version ?? ''} | ${t.status === 'skipped' ? `skipped: ${t.reason}` : `failed: ${String(t.reason ?? '').split('\n')[0]}`} | | | | | | | | | |`,
      );
      continue;
    }
    const r = (a, b) => (a?.gbps && b?.gbps ? `${f2(a.gbps / b.gbps)}×` : '–');
    L.push(
      `| ${t.label} | ${t.version ?? ''} | ${f2(s.s1.gbps)} | ${f2(s.s1.gbpsMin)}–${f2(s.s1.gbpsMax)} | ${r(s.s1, d?.s1)} | ${r(s.s1, p?.s1)} | ${f0(s.s1.cpuMsPerGB)} | ${pct(s.s1.proxyCpuUtil)} | ${f2(s.s4.gbps)} | ${f2(s.s4.gbpsMin)}–${f2(s.s4.gbpsMax)} | ${r(s.s4, p?.s4)} | ${f0(s.s4.cpuMsPerGB)} |`,
    );
  }
  L.push('');
  L.push("Target (issue 11): FiberLB tcp one stream ≥ 0.8× HAProxy's Gbit/s.");
  return `${L.join('\n')}\n`;
}

export function headline({ targets }) {
  return {
    metric: 'iperf3 one stream, Gbit/s (higher is better)',
    bars: Object.values(targets)
      .filter((t) => t.summary?.s1?.gbps != null)
      .map((t) => ({
        label: t.label,
        value: t.summary.s1.gbps,
        min: t.summary.s1.gbpsMin,
        max: t.summary.s1.gbpsMax,
      })),
  };
}
