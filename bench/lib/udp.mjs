// Scenario `udp`: datagrams/s through FiberLB's udp listener vs direct vs a minimal node:dgram
// relay (bench/peers/udp-relay.mjs). Echo backend and client on the load core, proxy alone on
// its core; per slot a fresh start, 1 s warm-up, then the measured run. A "datagram" is one
// round trip (request and reply both cross the proxy); proxy CPU is per round trip.
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cpuDeltaUs, rememberTree, spawnPinned, stop, treeCpu, waitForOutput } from './proc.mjs';
import { median } from './report.mjs';

async function client(root, cpu, port, seconds) {
  const c = spawnPinned('udp-client', cpu, process.execPath, [
    path.join(root, 'bench/lib/udp-client.mjs'),
    String(port),
    String(seconds),
  ]);
  const res = await Promise.race([c.exited, sleep((seconds + 20) * 1000).then(() => 'timeout')]);
  if (res === 'timeout') {
    await stop(c);
    throw new Error('udp client did not finish');
  }
  const line = c.out.stdout.trim().split('\n').pop();
  if (!line?.startsWith('{')) throw new Error(`udp client printed no JSON: ${c.out.stderr.slice(-400)}`);
  return JSON.parse(line);
}

export async function run({
  root,
  loadCpu,
  rounds,
  durationS,
  meta,
  state,
  log,
  startTarget,
  writeResults,
  runnable,
}) {
  const echo = spawnPinned('udp-echo', loadCpu, process.execPath, [
    path.join(root, 'bench/peers/udp-echo.mjs'),
  ]);
  const port = Number((await waitForOutput(echo, /listening (\d+)/))[1]);
  meta.backend = `node:dgram echo (bench/peers/udp-echo.mjs), pinned to CPU ${loadCpu}`;
  try {
    for (let round = 1; round <= rounds; round++) {
      const order = runnable();
      const k = (round - 1) % Math.max(1, order.length);
      const rotated = [...order.slice(k), ...order.slice(0, k)];
      log(`round ${round}/${rounds}: ${rotated.map((t) => t.name).join(' → ')}`);
      for (const t of rotated) {
        const started = await startTarget(t, port);
        if (!started) continue;
        const run = { round };
        try {
          await client(root, loadCpu, started.port, 1); // warm-up: sessions, JIT
          if (started.child) rememberTree(started.child);
          const c0 = started.child ? treeCpu(started.child.pid) : undefined;
          const r = await client(root, loadCpu, started.port, durationS);
          const cpuUs = started.child ? cpuDeltaUs(c0, treeCpu(started.child.pid)) : undefined;
          Object.assign(run, r, {
            cpuUsPerDatagram: cpuUs === undefined ? undefined : cpuUs / r.replies,
            proxyCpuUtil: cpuUs === undefined ? undefined : cpuUs / (r.durationS * 1e6),
          });
          log(
            `  ${t.name.padEnd(12)} ${Math.round(r.rate)} round trips/s, lost ${r.lost}${run.cpuUsPerDatagram ? `, ${run.cpuUsPerDatagram.toFixed(1)} µs each (core ${Math.round(run.proxyCpuUtil * 100)}%)` : ''}`,
          );
        } catch (e) {
          run.error = e.message;
          log(`  ${t.name}: ${e.message}`);
        } finally {
          if (started.child) await stop(started.child);
        }
        state[t.name].runs.push(run);
        const ok = state[t.name].runs.filter((x) => !x.error);
        const rates = ok.map((x) => x.rate);
        state[t.name].summary = {
          rounds: ok.length,
          rate: median(rates),
          rateMin: rates.length ? Math.min(...rates) : null,
          rateMax: rates.length ? Math.max(...rates) : null,
          cpuUsPerDatagram: median(ok.map((x) => x.cpuUsPerDatagram)),
          proxyCpuUtil: median(ok.map((x) => x.proxyCpuUtil)),
          lost: ok.reduce((s, x) => s + x.lost, 0),
        };
      }
      writeResults();
    }
  } finally {
    await stop(echo);
  }
}

const f0 = (x) => (x == null ? '–' : Math.round(x).toLocaleString('en-US'));
const f1 = (x) => (x == null ? '–' : x.toFixed(1));

export function markdown({ meta, targets }) {
  const L = [`# ${meta.title}`, ''];
  if (meta.quick) L.push('**--quick run: proves the scenario works; not a result.**', '');
  L.push(
    `- Date: ${meta.date} · Node ${meta.node} · ${meta.cpuModel} × ${meta.cores} cores · kernel ${meta.kernel}`,
  );
  L.push(
    `- Load average (1/5/15 min) at the start: ${meta.loadAverage.map((x) => x.toFixed(2)).join(' / ')}`,
  );
  L.push(
    `- Backend: ${meta.backend}; client: 8 sockets × 16 datagrams (64 bytes) in flight; proxy on CPU ${meta.proxyCpu}; ${meta.rounds} round(s) × ${meta.durationS} s, medians`,
    '',
  );
  L.push(
    '| target | version | round trips/s | range | vs direct | vs node:dgram relay | proxy CPU µs per round trip | core busy | lost |',
  );
  L.push('|---|---|---:|---:|---:|---:|---:|---:|---:|');
  const d = targets.direct?.summary;
  const relay = targets['udp-relay']?.summary;
  for (const t of Object.values(targets)) {
    const s = t.summary;
    if (!s) {
      L.push(
        `| ${t.label} | ${t.version ?? ''} | ${t.status === 'skipped' ? `skipped: ${t.reason}` : 'failed'} | | | | | | |`,
      );
      continue;
    }
    const r = (a, b) => (a && b ? `${(a / b).toFixed(2)}×` : '–');
    L.push(
      `| ${t.label} | ${t.version ?? ''} | ${f0(s.rate)} | ${f0(s.rateMin)}–${f0(s.rateMax)} | ${r(s.rate, d?.rate)} | ${r(s.cpuUsPerDatagram, relay?.cpuUsPerDatagram)} | ${f1(s.cpuUsPerDatagram)} | ${s.proxyCpuUtil == null ? '–' : `${Math.round(s.proxyCpuUtil * 100)}%`} | ${s.lost} |`,
    );
  }
  L.push('', '"vs node:dgram relay" compares proxy CPU per round trip (lower is better).');
  return `${L.join('\n')}\n`;
}

export function headline({ targets }) {
  return {
    metric: 'UDP round trips per second, median and min–max (higher is better)',
    bars: Object.values(targets)
      .filter((t) => t.summary?.rate != null)
      .map((t) => ({
        label: t.label,
        value: t.summary.rate,
        min: t.summary.rateMin,
        max: t.summary.rateMax,
      })),
  };
}
