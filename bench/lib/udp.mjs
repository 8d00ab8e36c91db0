// Scenario `udp`: datagrams/s through FiberLB's udp listener vs direct vs a minimal node:dgram
// relay (bench/peers/udp-relay.mjs). Echo backend and client on the load core, proxy alone on
// its core; per slot a fresh start, 1 s warm-up, then the measured run. A "datagram" is one
// round trip (request and reply both cross the proxy); proxy CPU is per round trip.
import path from 'node:path';
import { udpRoundTrips } from './load.mjs';
import { spawnPinned, stop, waitForOutput } from './proc.mjs';
import { echoTable, rateHeadline, scenarioHeader } from './report.mjs';
import { clientRounds } from './rounds.mjs';

export async function run(ctx) {
  const { root, loadCpu, meta } = ctx;
  const echo = spawnPinned('udp-echo', loadCpu, process.execPath, [
    path.join(root, 'bench/peers/udp-echo.mjs'),
  ]);
  const port = Number((await waitForOutput(echo, /listening (\d+)/))[1]);
  meta.backend = `node:dgram echo (bench/peers/udp-echo.mjs), pinned to CPU ${loadCpu}`;
  const client = (p, seconds) => udpRoundTrips({ root, cpu: loadCpu, port: p, durationS: seconds });
  try {
    await clientRounds(ctx, port, {
      client,
      cpuKey: 'cpuUsPerDatagram',
      units: (r) => r.replies,
      line: (r) => `${Math.round(r.rate)} round trips/s, lost ${r.lost}`,
      extra: (ok) => ({ lost: ok.reduce((n, x) => n + x.lost, 0) }),
    });
  } finally {
    await stop(echo);
  }
}

export function markdown({ meta, targets }) {
  const L = scenarioHeader(meta);
  L.push(
    `- Backend: ${meta.backend}; client: 8 sockets × 16 datagrams (64 bytes) in flight; proxy on CPU ${meta.proxyCpu}; ${meta.rounds} round(s) × ${meta.durationS} s, medians`,
    '',
  );
  L.push(
    ...echoTable(targets, {
      head: ['round trips/s', 'vs node:dgram relay', 'proxy CPU µs per round trip'],
      cpuKey: 'cpuUsPerDatagram',
      ref: 'udp-relay',
      extra: [['lost', (s) => s.lost]],
    }),
  );
  L.push('', '"vs node:dgram relay" compares proxy CPU per round trip (lower is better).');
  return `${L.join('\n')}\n`;
}

export function headline({ targets }) {
  return rateHeadline('UDP round trips per second, median and min–max (higher is better)', targets);
}
