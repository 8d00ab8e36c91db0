// New-connection load generator: `--concurrency` parallel loops, each doing tls.connect → one
// `GET /` (Connection: close) → read the whole response → next connection, as fast as it can.
// autocannon keeps connections open, so it cannot measure handshakes; this does.
//   --resume   offer each loop's last session (TLS 1.3 ticket) on its next connect: resumed
//              handshakes. Without it no session is ever offered: every handshake is a full one.
//   --plain    plain TCP instead of TLS (the direct-to-backend reference: connect + request).
// Prints one JSON line: { total, durationS, rate, errors, non200, resumed, protocols, ciphers,
// groups, latencyUs: { p50, p99 }, selfCpuUs, served }. Counting starts after --warmup seconds;
// `served` counts every connection answered over the process's whole life (warm-up and the
// loops' last connections after the counted window too): the proxy's CPU over the generator's
// life ÷ `served` is its cost per connection without the window's edges (bench/ab-tls.mjs).
// Usage: node bench/lib/handshake-gen.mjs --port P [--concurrency 32] [--duration 5]
//        [--warmup 1] [--resume] [--plain] [--servername bench.test]
import net from 'node:net';
import tls from 'node:tls';
import { parseArgs } from 'node:util';

const { values: o } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    concurrency: { type: 'string', default: '32' },
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    resume: { type: 'boolean', default: false },
    plain: { type: 'boolean', default: false },
    servername: { type: 'string', default: 'bench.test' },
  },
});
const port = Number(o.port);
const concurrency = Math.max(1, Number(o.concurrency));
const durationMs = Number(o.duration) * 1000;
const warmupMs = Number(o.warmup) * 1000;
const request = Buffer.from(`GET / HTTP/1.1\r\nHost: ${o.servername}\r\nConnection: close\r\n\r\n`);

let counting = false;
let stopping = false;
const stats = { total: 0, errors: 0, non200: 0, resumed: 0 };
let served = 0;
const seen = { protocols: {}, ciphers: {}, groups: {} };
const lat = []; // µs per connection (connect → response complete), counted phase only
const errorSamples = new Set();
const bump = (m, k) => {
  m[k] = (m[k] ?? 0) + 1;
};

function once(session) {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    let next = session;
    let head = '';
    let done = false;
    const finish = (err) => {
      if (done) return;
      done = true;
      if (!err) served++;
      if (counting) {
        if (err) {
          stats.errors++;
          if (errorSamples.size < 5) errorSamples.add(err.code ?? err.message);
        } else {
          const ok = /^HTTP\/1\.[01] 200 /.test(head);
          if (!ok) stats.non200++;
          stats.total++;
          lat.push(Number(process.hrtime.bigint() - t0) / 1000);
        }
      }
      resolve(next);
    };
    const s = o.plain
      ? net.connect({ port, host: o.host })
      : tls.connect({
          port,
          host: o.host,
          servername: o.servername,
          rejectUnauthorized: false, // a throw-away self-signed certificate
          minVersion: 'TLSv1.3',
          ALPNProtocols: ['http/1.1'],
          session: o.resume ? session : undefined,
        });
    s.setNoDelay(true);
    s.on(o.plain ? 'connect' : 'secureConnect', () => {
      if (!o.plain && counting) {
        if (s.isSessionReused()) stats.resumed++;
        bump(seen.protocols, s.getProtocol());
        bump(seen.ciphers, s.getCipher()?.name);
        bump(seen.groups, s.getEphemeralKeyInfo()?.name ?? (s.isSessionReused() ? 'resumed' : '?'));
      }
      s.write(request);
    });
    if (o.resume)
      s.on('session', (sess) => {
        next = sess;
      });
    s.on('data', (d) => {
      if (head.length < 64) head += d.toString('latin1', 0, Math.min(d.length, 64));
    });
    s.on('error', finish);
    s.on('close', () => finish());
  });
}

async function loop() {
  let session;
  while (!stopping) session = await once(session);
}

const loops = Array.from({ length: concurrency }, loop);
await new Promise((r) => setTimeout(r, warmupMs));
const c0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
counting = true;
await new Promise((r) => setTimeout(r, durationMs));
counting = false;
const durationS = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(c0);
stopping = true;
await Promise.all(loops);
lat.sort((a, b) => a - b);
const q = (p) => (lat.length ? Math.round(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]) : null);
process.stdout.write(
  `${JSON.stringify({
    ...stats,
    durationS,
    rate: stats.total / durationS,
    ...seen,
    errorSamples: [...errorSamples],
    latencyUs: { p50: q(0.5), p99: q(0.99) },
    selfCpuUs: cpu.user + cpu.system,
    served,
  })}\n`,
);
