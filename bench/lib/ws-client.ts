// WebSocket load for the ws scenario: C connections (test/helpers/ws.ts's client), each keeping
// W messages of 64 bytes in flight against an echo server; an echo sends the next message.
// Prints one JSON line: { messages, durationS, rate, selfCpuUs }.
// Usage: node --import tsx bench/lib/ws-client.ts <port> <durationS> [connections=20] [window=4]
import { type WsClient, wsConnect } from '../../test/helpers/ws.ts';

const [port, durationS, C = 20, W = 4] = process.argv.slice(2).map(Number) as [
  number,
  number,
  number?,
  number?,
];
const payload = Buffer.alloc(64, 'w');
const clients: WsClient[] = await Promise.all(Array.from({ length: C }, () => wsConnect(port)));
let messages = 0;
let running = true;
const loop = async (c: WsClient) => {
  for (let i = 0; i < W; i++) c.send(payload);
  while (running) {
    await c.next();
    messages++;
    if (running) c.send(payload);
  }
};
const t0 = performance.now();
const loops = clients.map((c) => loop(c).catch(() => {}));
await new Promise((r) => setTimeout(r, durationS * 1000));
running = false;
const elapsed = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage();
process.stdout.write(
  `${JSON.stringify({ messages, durationS: elapsed, rate: messages / elapsed, selfCpuUs: cpu.user + cpu.system })}\n`,
);
for (const c of clients) c.socket.destroy();
void loops;
process.exit(0);
