// UDP load for the udp scenario: K sockets, each keeping W datagrams (64 bytes) in flight
// against an echo service (through a proxy or not); a reply sends the next datagram. A socket
// that hears nothing for 50 ms counts its in-flight datagrams as lost and sends a fresh window.
// Prints one JSON line: { replies, sent, lost, durationS, rate, selfCpuUs }.
// Usage: node bench/lib/udp-client.mjs <port> <durationS> [sockets=8] [window=16]
import dgram from 'node:dgram';

const [port, durationS, K = 8, W = 16] = process.argv.slice(2).map(Number);
const payload = Buffer.alloc(64, 'u');
let replies = 0;
let sent = 0;
let lost = 0;
let running = true;
const socks = [];
for (let i = 0; i < K; i++) {
  const s = dgram.createSocket('udp4');
  const st = { s, inflight: 0, last: Date.now() };
  const send = () => {
    sent++;
    st.inflight++;
    s.send(payload, port, '127.0.0.1');
  };
  st.fill = () => {
    while (st.inflight < W) send();
  };
  s.on('message', () => {
    st.last = Date.now();
    st.inflight--;
    if (!running) return;
    replies++;
    send();
  });
  socks.push(st);
}
await Promise.all(socks.map((st) => new Promise((r) => st.s.bind(0, '127.0.0.1', r))));
for (const st of socks) st.fill();
const watchdog = setInterval(() => {
  const now = Date.now();
  for (const st of socks)
    if (now - st.last > 50 && st.inflight > 0) {
      lost += st.inflight;
      st.inflight = 0;
      st.last = now;
      st.fill();
    }
}, 25);
const t0 = performance.now();
await new Promise((r) => setTimeout(r, durationS * 1000));
running = false;
const elapsed = (performance.now() - t0) / 1000;
clearInterval(watchdog);
const cpu = process.cpuUsage();
process.stdout.write(
  `${JSON.stringify({ replies, sent, lost, durationS: elapsed, rate: replies / elapsed, selfCpuUs: cpu.user + cpu.system })}\n`,
);
for (const st of socks) st.s.close();
