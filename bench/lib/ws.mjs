// Scenario `ws`: WebSocket messages/s (echo round trips of 64-byte messages, 20 connections ×
// 4 in flight) through FiberLB's http listener (Upgrade: websocket → a tunnel) vs direct vs
// HAProxy (mode http tunnels upgrades). Echo backend and client (test/helpers/ws.ts, run with
// tsx) on the load core, the proxy alone on its core; per slot a fresh start, 1 s warm-up, then
// the measured run. A message crosses the proxy twice (request and echo).
import path from 'node:path';
import { wsEchoes } from './load.mjs';
import { spawnPinned, stop, waitForOutput } from './proc.mjs';
import { echoTable, rateHeadline, scenarioHeader } from './report.mjs';
import { clientRounds } from './rounds.mjs';

export async function run(ctx) {
  const { root, loadCpu, meta } = ctx;
  const echo = spawnPinned(
    'ws-echo',
    loadCpu,
    process.execPath,
    ['--import', 'tsx', path.join(root, 'bench/peers/ws-echo.ts')],
    { cwd: root },
  );
  const port = Number((await waitForOutput(echo, /listening (\d+)/))[1]);
  meta.backend = `WebSocket echo (bench/peers/ws-echo.ts), pinned to CPU ${loadCpu}`;
  const client = (p, seconds) => wsEchoes({ root, cpu: loadCpu, port: p, durationS: seconds });
  try {
    await clientRounds(ctx, port, {
      client,
      cpuKey: 'cpuUsPerMessage',
      units: (r) => r.messages,
      line: (r) => `${Math.round(r.rate)} messages/s`,
    });
  } finally {
    await stop(echo);
  }
}

export function markdown({ meta, targets }) {
  const L = scenarioHeader(meta);
  L.push(
    `- Backend: ${meta.backend}; client: 20 connections × 4 messages (64 bytes) in flight; proxy on CPU ${meta.proxyCpu}; ${meta.rounds} round(s) × ${meta.durationS} s, medians`,
    '',
  );
  L.push(
    ...echoTable(targets, {
      head: ['messages/s', 'CPU vs HAProxy', 'proxy CPU µs per message'],
      cpuKey: 'cpuUsPerMessage',
      ref: 'haproxy',
    }),
  );
  L.push(
    '',
    '"vs HAProxy" compares proxy CPU per message (lower is better); a message is an echo round trip, so it crosses the proxy twice.',
  );
  return `${L.join('\n')}\n`;
}

export function headline({ targets }) {
  return rateHeadline('WebSocket echo messages per second, median and min–max (higher is better)', targets);
}
