// Open-loop, fixed-rate HTTP/1.1 load generator with coordinated-omission-corrected latency.
//
// Why not `autocannon -R`: autocannon 9's rate limit is a per-connection quota per *second*
// (each connection fires back-to-back until it has sent rate/connections requests, then idles
// until the next 1 s tick), so its "fixed rate" traffic is a saturation burst at the start of
// every second; its coordinated-omission correction uses an expected interval of
// ceil(1 / rate) = 1 ms regardless of the rate, and its histogram has 1 ms resolution. And note
// `-C` means *ignore* coordinated omission. See bench/README.md.
//
// This generator: every ~1 ms timer tick it computes how many requests are due since the start
// (rate × elapsed) and issues them. A due request goes out at once on an idle keep-alive
// connection; if all connections are busy it waits in a FIFO backlog, and its latency is counted
// from the moment it was due (the tick that issued it), not from when a connection freed up —
// that is the coordinated-omission correction. Latency has µs resolution (hrtime).
//
// Usage (prints one JSON object on stdout):
//   node bench/lib/loadgen.mjs --port P [--host 127.0.0.1] [--path /] --rate R --duration S
//        [--connections C] [--warmup S]
import net from 'node:net';
import { parseArgs } from 'node:util';
import { histogramOf } from './histogram.mjs';

const { values: a } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    path: { type: 'string', default: '/' },
    rate: { type: 'string' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '1' },
    connections: { type: 'string', default: '50' },
    'drain-timeout': { type: 'string', default: '3' },
  },
});
const host = a.host;
const port = Number(a.port);
const rate = Number(a.rate);
const durationS = Number(a.duration);
const warmupS = Number(a.warmup);
const nConn = Number(a.connections);
if (!port || !rate || !durationS) {
  process.stderr.write('usage: loadgen.mjs --port P --rate R --duration S [--connections C] [--warmup S]\n');
  process.exit(2);
}

const REQ = Buffer.from(`GET ${a.path} HTTP/1.1\r\nHost: ${host}:${port}\r\n\r\n`);
const nowUs = () => Number(process.hrtime.bigint() / 1000n);

// ---- results --------------------------------------------------------------------------------
const cap = Math.ceil(rate * (durationS + 1) * 1.2) + 1000;
const lat = new Float64Array(cap); // µs, measured window only
let nLat = 0;
let completedTotal = 0; // including warm-up
let completedMeasured = 0;
let non2xx = 0;
let errors = 0;
let reconnects = 0;
let issued = 0;
let backlogMax = 0;
const tickLags = [];

// ---- connections ----------------------------------------------------------------------------
const backlog = []; // due times (µs) of requests waiting for a free connection
let backlogHead = 0;
const idle = [];
let measureFromUs = Infinity; // requests due at or after this are recorded
let stopping = false;

class Conn {
  constructor() {
    this.busy = false;
    this.dueUs = 0;
    this.connect();
  }
  connect() {
    this.ready = false;
    this.buf = null;
    this.resetParser();
    const s = net.connect(port, host);
    s.setNoDelay(true);
    this.sock = s;
    s.on('connect', () => {
      this.ready = true;
      if (this.busy) s.write(REQ);
      else if (backlogHead < backlog.length) this.send(backlog[backlogHead++]);
      else idle.push(this);
    });
    s.on('data', (d) => this.onData(d));
    s.on('error', () => {});
    s.on('close', () => {
      if (stopping) return;
      const i = idle.indexOf(this);
      if (i >= 0) idle.splice(i, 1);
      if (this.busy) {
        errors++; // the in-flight request failed; re-issue its slot's next work after reconnect
        this.busy = false;
      }
      reconnects++;
      setTimeout(() => this.connect(), 10);
    });
  }
  resetParser() {
    this.state = 0; // 0 = head, 1 = body (content-length), 2 = chunked size line, 3 = chunk data, 4 = trailer
    this.remaining = 0;
    this.status = 0;
    this.closeAfter = false;
  }
  send(dueUs) {
    this.busy = true;
    this.dueUs = dueUs;
    if (this.ready) this.sock.write(REQ);
  }
  onData(d) {
    const buf = this.buf ? Buffer.concat([this.buf, d]) : d;
    this.buf = null;
    let off = 0;
    while (off < buf.length) {
      if (this.state === 0) {
        const end = buf.indexOf('\r\n\r\n', off);
        if (end < 0) break;
        const head = buf.toString('latin1', off, end);
        off = end + 4;
        this.status = Number(head.slice(9, 12));
        const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        this.closeAfter = /\r\nconnection:\s*close/i.test(head);
        if (/\r\ntransfer-encoding:\s*[^\r]*chunked/i.test(head)) this.state = 2;
        else {
          this.remaining = cl ? Number(cl[1]) : 0;
          this.state = 1;
        }
      }
      if (this.state === 1) {
        const take = Math.min(this.remaining, buf.length - off);
        off += take;
        this.remaining -= take;
        if (this.remaining === 0) this.complete();
        continue;
      }
      if (this.state === 2 || this.state === 4) {
        const eol = buf.indexOf('\r\n', off);
        if (eol < 0) break;
        const line = buf.toString('latin1', off, eol);
        off = eol + 2;
        if (this.state === 4) {
          if (line === '') this.complete();
          continue;
        }
        const size = Number.parseInt(line, 16);
        if (size === 0) this.state = 4;
        else {
          this.remaining = size + 2; // data + CRLF
          this.state = 3;
        }
        continue;
      }
      if (this.state === 3) {
        const take = Math.min(this.remaining, buf.length - off);
        off += take;
        this.remaining -= take;
        if (this.remaining === 0) this.state = 2;
      }
    }
    if (off < buf.length) this.buf = buf.subarray(off);
  }
  complete() {
    const t = nowUs();
    const status = this.status;
    const due = this.dueUs;
    const closeAfter = this.closeAfter;
    this.resetParser();
    this.busy = false;
    completedTotal++;
    if (status < 200 || status > 299) non2xx++;
    if (due >= measureFromUs) {
      completedMeasured++;
      if (nLat < cap) lat[nLat++] = t - due;
    }
    if (closeAfter) {
      this.sock.destroy(); // 'close' reconnects
      return;
    }
    if (backlogHead < backlog.length) {
      const next = backlog[backlogHead++];
      if (backlogHead > 4096 && backlogHead * 2 > backlog.length) {
        backlog.splice(0, backlogHead);
        backlogHead = 0;
      }
      this.send(next);
    } else {
      idle.push(this);
      if (stopping && completedTotal === issued) finish();
    }
  }
}

function issue(dueUs) {
  issued++;
  const c = idle.pop();
  if (c) c.send(dueUs);
  else {
    backlog.push(dueUs);
    const depth = backlog.length - backlogHead;
    if (depth > backlogMax) backlogMax = depth;
  }
}

// ---- schedule -------------------------------------------------------------------------------
const conns = Array.from({ length: nConn }, () => new Conn());

async function main() {
  // Wait (≤ 5 s) for the connections to be established before the clock starts.
  const t0 = Date.now();
  while (idle.length < nConn && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 5));
  const startUs = nowUs();
  measureFromUs = startUs + warmupS * 1e6;
  const endUs = measureFromUs + durationS * 1e6;
  let scheduled = 0;
  await new Promise((resolve) => {
    const timer = setInterval(() => {
      const now = nowUs();
      const target = Math.floor(((Math.min(now, endUs) - startUs) * rate) / 1e6);
      if (target > scheduled && now >= measureFromUs) {
        // How late is this tick relative to the ideal due time of its oldest request?
        tickLags.push((now - (startUs + (scheduled * 1e6) / rate)) / 1000);
      }
      while (scheduled < target) {
        scheduled++;
        issue(now);
      }
      if (now >= endUs) {
        clearInterval(timer);
        resolve();
      }
    }, 1);
  });
  stopping = true;
  if (completedTotal === issued) finish();
  else setTimeout(finish, Number(a['drain-timeout']) * 1000).unref();
}

let finished = false;
function finish() {
  if (finished) return;
  finished = true;
  const sorted = lat.subarray(0, nLat).sort();
  const pct = (p) => (nLat ? sorted[Math.min(nLat - 1, Math.ceil((p / 100) * nLat) - 1)] : null);
  let sum = 0;
  for (let i = 0; i < nLat; i++) sum += sorted[i];
  tickLags.sort((x, y) => x - y);
  const lagPct = (p) =>
    tickLags.length
      ? tickLags[Math.min(tickLags.length - 1, Math.ceil((p / 100) * tickLags.length) - 1)]
      : null;
  const measuredDue = Math.round(rate * durationS);
  const out = {
    rate,
    durationS,
    warmupS,
    connections: nConn,
    issued,
    completedTotal,
    completedMeasured,
    achievedRate: completedMeasured / durationS,
    incomplete: issued - completedTotal,
    missed: Math.max(0, measuredDue - completedMeasured),
    non2xx,
    errors,
    reconnects,
    backlogMax,
    latencyUs: {
      min: nLat ? sorted[0] : null,
      mean: nLat ? sum / nLat : null,
      p50: pct(50),
      p90: pct(90),
      p99: pct(99),
      p999: pct(99.9),
      max: nLat ? sorted[nLat - 1] : null,
    },
    selfCpuUs: process.cpuUsage().user + process.cpuUsage().system,
    generatorTickLagMs: { p50: lagPct(50), p99: lagPct(99), max: tickLags.at(-1) ?? null },
    // The measured latencies, to pool with other runs (bench/lib/histogram.mjs).
    histogram: histogramOf(sorted, nLat),
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  for (const c of conns) c.sock.destroy();
  process.exit(0);
}

main().catch((e) => {
  process.stderr.write(`${e.stack}\n`);
  process.exit(1);
});
