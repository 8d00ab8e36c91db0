// HTTP/2 load generator in Node, for the `h2` scenario when h2load (Debian nghttp2-client) is
// not installed: `--connections` TLS sessions (ALPN h2 only), each keeping `--streams` `GET /`
// streams in flight, closed loop (a stream's successor starts when it ends). Costs the load
// core far more per request than h2load, so it saturates sooner: compare proxy µs/req.
// Prints one JSON line: { total, ok, errors, non2xx, durationS, rps, protocol, latencyUs: {p50,p99}, selfCpuUs }.
// Usage: node bench/lib/h2-gen.mjs --port P [--connections 10] [--streams 10] [--duration 5] [--servername bench.test]
import http2 from 'node:http2';
import { parseArgs } from 'node:util';

const { values: o } = parseArgs({
  options: {
    port: { type: 'string' },
    connections: { type: 'string', default: '10' },
    streams: { type: 'string', default: '10' },
    duration: { type: 'string', default: '5' },
    servername: { type: 'string', default: 'bench.test' },
  },
});
const url = `https://127.0.0.1:${Number(o.port)}`;
const streams = Math.max(1, Number(o.streams));
const stats = { total: 0, ok: 0, errors: 0, non2xx: 0 };
const protocols = {};
const lat = [];
const errorSamples = new Set();
let stopping = false;

function stream(session) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    let status = 0;
    const req = session.request({ ':path': '/', ':method': 'GET' });
    req.on('response', (h) => {
      status = h[':status'];
    });
    req.resume(); // read and drop the body
    req.on('end', () => {
      stats.total++;
      if (status >= 200 && status < 300) stats.ok++;
      else stats.non2xx++;
      lat.push(Number(process.hrtime.bigint() - t0) / 1000);
      resolve(true);
    });
    req.on('error', (e) => {
      stats.errors++;
      if (errorSamples.size < 5) errorSamples.add(e.code ?? e.message);
      resolve(false);
    });
    req.on('close', () => resolve(false)); // closed without 'end' (reset, session gone); no-op after 'end'
    req.end();
  });
}

async function connection() {
  while (!stopping) {
    const session = http2.connect(url, {
      servername: o.servername,
      rejectUnauthorized: false, // the run's throw-away self-signed certificate
      minVersion: 'TLSv1.3',
      ALPNProtocols: ['h2'],
    });
    session.on('error', (e) => {
      stats.errors++;
      if (errorSamples.size < 5) errorSamples.add(e.code ?? e.message);
    });
    await new Promise((r) => {
      session.once('connect', r);
      session.once('close', r);
    });
    if (!session.alpnProtocol) {
      session.destroy();
      await new Promise((r) => setTimeout(r, 50)); // no tight reconnect loop against a dead target
      continue;
    }
    protocols[session.alpnProtocol] = (protocols[session.alpnProtocol] ?? 0) + 1;
    const loop = async () => {
      while (!stopping && !session.destroyed && !session.closed) if (!(await stream(session))) break;
    };
    await Promise.all(Array.from({ length: streams }, loop));
    session.destroy();
  }
}

const c0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
const conns = Array.from({ length: Math.max(1, Number(o.connections)) }, connection);
await new Promise((r) => setTimeout(r, Number(o.duration) * 1000));
stopping = true;
const durationS = Number(process.hrtime.bigint() - t0) / 1e9;
const counted = { ...stats }; // streams still in flight when time is up are not counted
await Promise.race([Promise.all(conns), new Promise((r) => setTimeout(r, 2000))]);
const cpu = process.cpuUsage(c0);
lat.sort((a, b) => a - b);
const q = (p) => (lat.length ? Math.round(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]) : null);
process.stdout.write(
  `${JSON.stringify({
    ...counted,
    durationS,
    rps: counted.total / durationS,
    protocols,
    errorSamples: [...errorSamples],
    latencyUs: { p50: q(0.5), p99: q(0.99) },
    selfCpuUs: cpu.user + cpu.system,
  })}\n`,
);
process.exit(0);
