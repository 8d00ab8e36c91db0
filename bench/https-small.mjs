#!/usr/bin/env node
// HTTPS termination benchmark: FiberLB (1 worker, https listener) vs HAProxy (nbthread 1),
// NGINX (1 worker) and the minimal Node proxy bench/peers/undici-https.mjs (node:https + undici
// Pool.stream), all terminating TLS 1.3 with the same certificate and forwarding HTTP/1.1
// keep-alive to the same backend. Every proxy is pinned to the proxy core; backend and load
// generators to the load core. Per target and round (fresh start, order rotated each round):
//   1. keep-alive: autocannon, HTTP/1.1 over TLS, `--connections` connections → req/s and the
//      proxy's CPU µs/req (utime + stime of its process tree ÷ requests);
//   2. new connections: bench/lib/handshake-gen.mjs, one request per TLS connection, full
//      handshakes (no session offered), then resumed ones (each loop offers its last ticket) →
//      handshakes/s and proxy CPU µs per connection (handshake + 1 request + close).
// `direct` (the backend over plain HTTP, no proxy, no TLS) is the limit the other benches use.
//
//   node bench/https-small.mjs [--rounds 3] [--duration 8] [--warmup 2] [--connections 50]
//     [--hs-duration 4] [--hs-concurrency 32] [--no-handshakes] [--no-resume] [--only a,b]
//     [--backend auto|nginx|node] [--out DIR] [--name NAME] [--quick] [--prof DIR]
// (also `node bench/https-small.mjs ROUNDS DURATION`). See bench/README.md "HTTPS termination".
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { haproxyConfig, nginxProxyConfig } from './lib/configs.mjs';
import { summarizeProfile } from './lib/cpuprofile-top.mjs';
import { autocannon, handshakes } from './lib/load.mjs';
import {
  cpuDeltaUs,
  cpuModel,
  cpuTimes,
  cpuTimesDelta,
  freePort,
  installCleanupHandlers,
  pinSelf,
  rememberTree,
  setLogDir,
  spawnPinned,
  stop,
  treeCpu,
  waitForOutput,
  waitForPort,
} from './lib/proc.mjs';
import { median } from './lib/report.mjs';
import { BODY, haproxyBin, nginxBin, startBackend, startNginx, version } from './lib/targets.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '50' },
    'hs-duration': { type: 'string' },
    'hs-concurrency': { type: 'string', default: '32' },
    'no-handshakes': { type: 'boolean', default: false },
    'no-resume': { type: 'boolean', default: false },
    only: { type: 'string' },
    backend: { type: 'string', default: process.env.BENCH_BACKEND ?? 'auto' },
    out: { type: 'string' },
    name: { type: 'string' },
    quick: { type: 'boolean', default: false },
    prof: { type: 'string' },
    'proxy-cpu': { type: 'string', default: '0' },
    'load-cpu': { type: 'string', default: '1' },
  },
});
const quick = opt.quick;
const rounds = Math.max(1, Number(opt.rounds ?? positionals[0] ?? (quick || opt.prof ? 1 : 3)));
const durationS = Math.max(1, Number(opt.duration ?? positionals[1] ?? (quick ? 3 : 8)));
const warmupS = quick ? 1 : Math.max(0, Number(opt.warmup));
const hsDurationS = Math.max(1, Number(opt['hs-duration'] ?? (quick ? 2 : 4)));
const connections = Number(opt.connections);
const hsConcurrency = Number(opt['hs-concurrency']);
const doHandshakes = !opt['no-handshakes'] && !opt.prof;
const doResume = !opt['no-resume'];
const [proxyCpu, loadCpu] = [opt['proxy-cpu'], opt['load-cpu']];
const day = new Date().toISOString().slice(0, 10);
const outDir = opt.out ?? (quick || opt.prof ? os.tmpdir() : path.join(root, 'bench/results'));
const outName = opt.name ?? `https-${day}`;
const log = (s) => process.stderr.write(`${s}\n`);

installCleanupHandlers();
const tmp = mkdtempSync(path.join(os.tmpdir(), 'fiberlb-bench-https-'));
setLogDir(tmp);
if (!process.env.BENCH_KEEP_TMP) process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
const cert = path.join(tmp, 'c.pem');
const key = path.join(tmp, 'k.pem');
// prettier-ignore
execFileSync(
  'openssl',
  [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '2',
    '-subj',
    '/CN=bench.test',
    '-addext',
    'subjectAltName=DNS:bench.test,IP:127.0.0.1',
  ],
  { stdio: 'ignore' },
);
const pem = path.join(tmp, 'haproxy.pem'); // HAProxy wants certificate and key in one file
writeFileSync(pem, readFileSync(cert, 'utf8') + readFileSync(key, 'utf8'));

// ---- targets --------------------------------------------------------------------------------

/** GET / over TLS 1.3 (retried while the target starts); returns the negotiated protocol and cipher. */
async function verifyTls(port) {
  let last;
  for (let i = 0; i < 50; i++) {
    try {
      return await new Promise((resolve, reject) => {
        const req = https.get(
          {
            host: '127.0.0.1',
            port,
            path: '/',
            servername: 'bench.test',
            rejectUnauthorized: false,
            minVersion: 'TLSv1.3',
            agent: false,
            timeout: 2000,
          },
          (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (d) => {
              body += d;
            });
            res.on('end', () => {
              if (res.statusCode !== 200 || body !== BODY)
                return reject(new Error(`GET / → ${res.statusCode} ${JSON.stringify(body.slice(0, 80))}`));
              resolve({ protocol: res.socket.getProtocol(), cipher: res.socket.getCipher()?.name });
            });
          },
        );
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
      });
    } catch (e) {
      last = e;
      await sleep(100);
    }
  }
  throw last;
}

const gitRev = () => {
  try {
    const rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', 'src'], {
      cwd: root,
      encoding: 'utf8',
    }).trim();
    return `git ${rev}${dirty ? '+dirty' : ''}`;
  } catch {
    return 'unknown';
  }
};
const pkgVersion = (pkg) => {
  try {
    return `${pkg} ${JSON.parse(readFileSync(path.join(root, 'node_modules', pkg, 'package.json'), 'utf8')).version}`;
  } catch {
    return 'unknown';
  }
};

const TARGETS = [
  {
    name: 'direct',
    label: 'direct (backend, plain HTTP, no proxy)',
    tls: false,
    version: () => 'n/a',
    start: async (ctx) => ({ port: ctx.backendPort, child: undefined }),
  },
  {
    name: 'fiberlb',
    label: 'FiberLB (1 worker)',
    tls: true,
    version: gitRev,
    async start(ctx) {
      const [port, adminPort] = [await freePort(), await freePort()];
      const dir = mkdtempSync(path.join(tmp, 'fiberlb-'));
      const file = path.join(dir, 'fiberlb.yaml');
      // BENCH_HTTP2=false: `tls.http2: false` (plain https server, ALPN http/1.1 only).
      writeFileSync(
        file,
        `admin: { address: 127.0.0.1, port: ${adminPort}, token_file: ${path.join(dir, 'admin.token')} }
cluster: { workers: 1 }
load_balancers:
  - name: bench
    org: bench
    project: bench
    vip: 127.0.0.1
    listeners:
      - name: https
        port: ${port}
        protocol: https
        default_pool: backend
        tls: { certificates: [{ cert: ${cert}, key: ${key} }], http2: ${process.env.BENCH_HTTP2 ?? 'true'} }
    pools:
      - name: backend
        backends: [{ address: 127.0.0.1, port: ${ctx.backendPort} }]
`,
      );
      // --cpu-prof is refused in NODE_OPTIONS; cluster workers inherit the primary's execArgv.
      const prof = ctx.profDir ? ['--cpu-prof', `--cpu-prof-dir=${path.join(ctx.profDir, 'fiberlb')}`] : [];
      const child = spawnPinned(
        'fiberlb',
        ctx.cpu,
        process.execPath,
        [...prof, path.join(root, 'dist/cli.js'), 'run', '--config', file],
        {
          cwd: root,
          env: { NODE_ENV: 'production' },
        },
      );
      await waitForPort(port, { child, timeoutMs: 20_000 });
      return { port, child };
    },
  },
  {
    name: 'undici-https',
    label: 'node:https + undici Pool.stream (minimal)',
    tls: true,
    version: () => `${pkgVersion('undici')}, Node ${process.version}`,
    async start(ctx) {
      const port = await freePort();
      const prof = ctx.profDir
        ? ['--cpu-prof', `--cpu-prof-dir=${path.join(ctx.profDir, 'undici-https')}`]
        : [];
      const child = spawnPinned('undici-https', ctx.cpu, process.execPath, [
        ...prof,
        path.join(root, 'bench/peers/undici-https.mjs'),
        String(port),
        `http://127.0.0.1:${ctx.backendPort}`,
        cert,
        key,
      ]);
      await waitForOutput(child, /listening/);
      return { port, child };
    },
  },
  {
    name: 'haproxy',
    label: 'HAProxy (nbthread 1)',
    tls: true,
    unavailable: () => (haproxyBin() ? undefined : 'haproxy not installed'),
    version: () =>
      version(haproxyBin(), ['-v'])
        .replace(/ - https?:.*$/, '')
        .replace(/^HAProxy version /, 'haproxy '),
    async start(ctx) {
      const dir = mkdtempSync(path.join(tmp, 'haproxy-'));
      const port = await freePort();
      const conf = haproxyConfig({ dir, port, backendPort: ctx.backendPort, tls: { pem } });
      const child = spawnPinned('haproxy', ctx.cpu, haproxyBin(), ['-db', '-f', conf]); // one process, one thread
      await waitForPort(port, { child });
      return { port, child };
    },
  },
  {
    name: 'nginx',
    label: 'NGINX (1 worker)',
    tls: true,
    unavailable: () => (nginxBin() ? undefined : 'nginx not installed'),
    version: () => version(nginxBin(), ['-v']).replace(/^nginx version:\s*/, ''),
    async start(ctx) {
      const dir = mkdtempSync(path.join(tmp, 'nginx-'));
      const port = await freePort();
      const conf = nginxProxyConfig({ dir, port, backendPort: ctx.backendPort, tls: { cert, key } });
      const child = await startNginx('nginx', ctx.cpu, dir, conf, port, verifyTls);
      return { port, child };
    },
  },
];

// ---- measuring ------------------------------------------------------------------------------

/** CPU used outside the bench while a phase runs, as a fraction of one core (as in run.mjs). */
function foreignMeter() {
  const s0 = cpuTimes();
  const o0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  return (oursUs) => {
    const d = cpuTimesDelta(s0, cpuTimes());
    const o = process.cpuUsage(o0);
    const wallUs = Number(process.hrtime.bigint() - t0) / 1000;
    return Math.max(0, (d.all.busy - oursUs - o.user - o.system) / wallUs);
  };
}

/** Run `fn` (a load phase) and charge the proxy tree's and the backend's CPU to it. */
async function phase(child, backend, fn) {
  if (child) rememberTree(child);
  const c0 = child ? treeCpu(child.pid) : undefined;
  const b0 = treeCpu(backend.child.pid);
  const meter = foreignMeter();
  const t0 = process.hrtime.bigint();
  const r = await fn();
  const wallUs = Number(process.hrtime.bigint() - t0) / 1000;
  const proxyUs = child ? cpuDeltaUs(c0, treeCpu(child.pid)) : undefined;
  const backendUs = cpuDeltaUs(b0, treeCpu(backend.child.pid));
  if (child && (child.exitCode !== null || child.signalCode !== null))
    throw new Error(`exited during the run (${child.exitCode ?? child.signalCode})`);
  return { r, proxyUs, backendUs, wallUs, foreign: meter((proxyUs ?? 0) + backendUs + (r.selfCpuUs ?? 0)) };
}

async function measure(t, backend, ctx) {
  const run = {};
  const { port, child } = await t.start(ctx);
  try {
    if (t.tls) run.negotiated = await verifyTls(port);
    const scheme = t.tls ? 'https' : 'http';
    const acEnv = { NODE_TLS_REJECT_UNAUTHORIZED: '0', NODE_NO_WARNINGS: '1' }; // autocannon's own process only
    const ac = (d) => autocannon({ root, cpu: loadCpu, port, connections, durationS: d, scheme, env: acEnv });
    if (warmupS > 0) await ac(warmupS);
    const ka = await phase(child, backend, () => ac(durationS));
    run.ka = {
      rps: ka.r.rps,
      total: ka.r.total,
      usPerReq: child ? ka.proxyUs / ka.r.total : undefined,
      busy: child ? ka.proxyUs / ka.wallUs : undefined,
      backendUsPerReq: ka.backendUs / ka.r.total,
      p99ms: ka.r.latencyMs.p99,
      errors: ka.r.errors + ka.r.non2xx + (ka.r.timeouts ?? 0),
      foreign: ka.foreign,
    };
    if (doHandshakes) {
      for (const mode of doResume && t.tls ? ['full', 'resumed'] : ['full']) {
        const hs = (d, w) =>
          handshakes({
            root,
            cpu: loadCpu,
            port,
            concurrency: hsConcurrency,
            durationS: d,
            warmupS: w,
            resume: mode === 'resumed',
            plain: !t.tls,
          });
        await hs(1, 0); // warm-up: the new-connection path, and (resumed) tickets in hand
        const m = await phase(child, backend, () => hs(hsDurationS, 0));
        run[mode] = {
          rate: m.r.rate,
          total: m.r.total,
          usPerConn: child ? m.proxyUs / m.r.total : undefined,
          busy: child ? m.proxyUs / m.wallUs : undefined,
          clientUsPerConn: m.r.selfCpuUs / Math.max(1, m.r.total),
          resumedShare: t.tls ? m.r.resumed / Math.max(1, m.r.total) : undefined,
          p50us: m.r.latencyUs.p50,
          p99us: m.r.latencyUs.p99,
          errors: m.r.errors + m.r.non200,
          errorSamples: m.r.errorSamples,
          protocols: m.r.protocols,
          groups: m.r.groups,
          foreign: m.foreign,
        };
      }
    }
  } finally {
    if (child) await stop(child, 8000); // generous: a --cpu-prof worker writes its profile on exit
  }
  return run;
}

// ---- report ---------------------------------------------------------------------------------

const fmt = (x, d = 0) =>
  x == null || !Number.isFinite(x)
    ? '–'
    : x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
const pct = (x) => (x == null ? '–' : `${Math.round(x * 100)}%`);
const med = (runs, f) => median(runs.map((r) => (r ? f(r) : undefined)));

function summarize(runs) {
  const s = {};
  for (const [k, fields] of [
    ['ka', ['rps', 'usPerReq', 'busy', 'backendUsPerReq', 'p99ms', 'errors', 'foreign']],
    [
      'full',
      ['rate', 'usPerConn', 'busy', 'clientUsPerConn', 'p50us', 'p99us', 'errors', 'foreign', 'resumedShare'],
    ],
    [
      'resumed',
      ['rate', 'usPerConn', 'busy', 'clientUsPerConn', 'p50us', 'p99us', 'errors', 'foreign', 'resumedShare'],
    ],
  ]) {
    if (!runs.some((r) => r[k])) continue;
    s[k] = Object.fromEntries(fields.map((f) => [f, med(runs, (r) => r[k]?.[f])]));
    if (k === 'ka')
      s.ka.rpsRange = [Math.min(...runs.map((r) => r.ka.rps)), Math.max(...runs.map((r) => r.ka.rps))];
  }
  return s;
}

function markdown(result) {
  const { meta, targets } = result;
  const ref = targets['undici-https']?.summary;
  const ratio = (a, b) => (a != null && b ? `${(a / b).toFixed(2)}×` : '–');
  const L = [];
  L.push('# HTTPS termination benchmark', '');
  L.push(
    'Generated by `node bench/https-small.mjs` — see bench/README.md "HTTPS termination" for the method.',
    '',
  );
  L.push(
    `- Date: ${meta.date} · ${meta.complete ? 'complete' : `**incomplete** (${meta.roundsDone} rounds)`}`,
  );
  L.push(
    `- Machine: ${meta.cpuModel} × ${meta.cores} cores · kernel ${meta.kernel} · Node ${meta.node} · ${meta.openssl}`,
  );
  L.push(`- Load average at start: ${meta.loadStart} · at end: ${meta.loadEnd ?? '–'}`);
  L.push(`- Backend: ${meta.backend}`);
  L.push(
    `- Pinning: each proxy (all its processes/threads) on CPU ${meta.proxyCpu}; backend, autocannon and handshake-gen on CPU ${meta.loadCpu}`,
  );
  L.push(
    `- TLS: TLS 1.3, one self-signed P-256 ECDSA certificate for every proxy; negotiated: ${Object.entries(
      meta.negotiated,
    )
      .map(([n, v]) => `${n} ${v}`)
      .join(', ')}`,
  );
  L.push(
    `- Keep-alive: fresh start, ${meta.warmupS} s warm-up, ${meta.durationS} s autocannon, ${meta.connections} connections, HTTP/1.1 (no ALPN)`,
  );
  if (meta.handshakes)
    L.push(
      `- New connections: bench/lib/handshake-gen.mjs, ${meta.hsConcurrency} parallel loops of connect → TLS handshake → \`GET /\` (Connection: close) → close, 1 s warm-up + ${meta.hsDurationS} s per mode; full = no session offered; resumed = each loop offers the ticket of its previous connection`,
    );
  L.push(
    `- Rounds: ${meta.rounds} (targets interleaved, order rotated each round); figures are **medians** over rounds`,
  );
  L.push('');
  L.push('## Summary', '');
  L.push(
    '| target | version | req/s (keep-alive) | proxy µs/req | vs undici-https | full handshakes/s | µs/handshake (full) | vs undici-https | resumed/s | µs/handshake (resumed) |',
  );
  L.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const [name, t] of Object.entries(targets)) {
    const s = t.summary;
    if (!s?.ka) {
      L.push(`| ${t.label} | ${t.version ?? '–'} | ${t.reason ?? 'no data'} | | | | | | | |`);
      continue;
    }
    L.push(
      `| ${t.label} | ${t.version} | ${fmt(s.ka.rps)} | ${fmt(s.ka.usPerReq, 1)} | ${name === 'direct' ? '–' : ratio(s.ka.usPerReq, ref?.ka?.usPerReq)} | ${fmt(s.full?.rate)} | ${fmt(s.full?.usPerConn, 0)} | ${name === 'direct' ? '–' : ratio(s.full?.usPerConn, ref?.full?.usPerConn)} | ${fmt(s.resumed?.rate)} | ${fmt(s.resumed?.usPerConn, 0)} |`,
    );
  }
  L.push('');
  L.push(
    '- **proxy µs/req**, **µs/handshake**: utime + stime of the proxy process tree ÷ requests (keep-alive) or ÷ connections (new-connection runs; one connection = handshake + one request + close). The ratios use these.',
  );
  L.push(
    '- direct is plain HTTP to the backend (no TLS, no proxy): its keep-alive req/s is the limit of the load core; its "handshakes/s" are plain TCP connections/s.',
  );
  L.push('');
  L.push('## Keep-alive details', '');
  L.push(
    '| target | req/s | range | proxy µs/req | proxy core busy | backend µs/req | p99 ms | errors | other load |',
  );
  L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const t of Object.values(targets)) {
    const k = t.summary?.ka;
    if (!k) continue;
    L.push(
      `| ${t.label} | ${fmt(k.rps)} | ${fmt(k.rpsRange[0])}–${fmt(k.rpsRange[1])} | ${fmt(k.usPerReq, 1)} | ${pct(k.busy)} | ${fmt(k.backendUsPerReq, 1)} | ${k.p99ms} | ${k.errors} | ${pct(k.foreign)} |`,
    );
  }
  if (meta.handshakes) {
    L.push('', '## New-connection details', '');
    L.push(
      '| target | mode | conn/s | proxy µs/conn | proxy core busy | client µs/conn | resumed share | p50 µs | p99 µs | errors | other load |',
    );
    L.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const t of Object.values(targets))
      for (const mode of ['full', 'resumed']) {
        const h = t.summary?.[mode];
        if (!h) continue;
        L.push(
          `| ${t.label} | ${mode} | ${fmt(h.rate)} | ${fmt(h.usPerConn, 0)} | ${pct(h.busy)} | ${fmt(h.clientUsPerConn)} | ${pct(h.resumedShare)} | ${fmt(h.p50us)} | ${fmt(h.p99us)} | ${h.errors} | ${pct(h.foreign)} |`,
        );
      }
    L.push(
      '',
      '- **proxy core busy** well below 100% means the load core (handshake-gen + backend) was the limit of that run, not the proxy: compare µs/conn then, not conn/s. **client µs/conn**: the CPU handshake-gen itself uses per connection (it shares the load core with the backend).',
    );
  }
  L.push(
    '- **other load**: CPU used outside the benchmark during the phase (all cores, % of one core, median); above ~10% the figures are disturbed.',
  );
  for (const n of meta.notes) L.push(`- ${n}`);
  return `${L.join('\n')}\n`;
}

// ---- main -----------------------------------------------------------------------------------

const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const list = (s) => s?.split(',').map((x) => x.trim());
const selected = opt.prof
  ? TARGETS.filter((t) => t.name === 'fiberlb' || t.name === 'undici-https')
  : TARGETS.filter((t) => !opt.only || list(opt.only).includes(t.name));
const meta = {
  date: new Date().toISOString(),
  node: process.version,
  openssl: `OpenSSL ${process.versions.openssl} (Node)`,
  cpuModel: cpuModel(),
  cores: os.cpus().length,
  kernel: os.release(),
  loadStart: loadavg(),
  uptimeStart: execFileSync('uptime', { encoding: 'utf8' }).trim(),
  proxyCpu,
  loadCpu,
  rounds,
  roundsDone: 0,
  durationS,
  warmupS,
  connections,
  handshakes: doHandshakes,
  hsConcurrency,
  hsDurationS,
  negotiated: {},
  notes: [],
  complete: false,
};
log(`uptime: ${meta.uptimeStart}`);
pinSelf(loadCpu);
const state = {};
for (const t of selected) {
  const reason = t.unavailable?.();
  state[t.name] = { label: t.label, version: reason ? undefined : t.version(), reason, runs: [] };
  if (reason) log(`${t.name}: SKIPPED — ${reason}`);
}
const backend = await startBackend(opt.backend, { cpu: loadCpu, root, tmp });
meta.backend = `${backend.describe}, pinned to CPU ${loadCpu}`;
const profDir = opt.prof ? path.resolve(opt.prof) : undefined;
if (profDir) mkdirSync(profDir, { recursive: true });
const ctx = { cpu: proxyCpu, backendPort: backend.port, profDir };

function write() {
  mkdirSync(outDir, { recursive: true });
  for (const s of Object.values(state)) s.summary = s.runs.length ? summarize(s.runs) : undefined;
  const result = { meta, targets: state };
  writeFileSync(path.join(outDir, `${outName}.json`), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(path.join(outDir, `${outName}.md`), markdown(result));
}

const runnable = selected.filter((t) => !state[t.name].reason);
for (let round = 1; round <= rounds; round++) {
  const k = (round - 1) % runnable.length;
  const order = [...runnable.slice(k), ...runnable.slice(0, k)];
  log(`round ${round}/${rounds}: ${order.map((t) => t.name).join(' → ')}  (load ${loadavg()})`);
  for (const t of order) {
    try {
      const run = await measure(t, backend, ctx);
      state[t.name].runs.push(run);
      if (run.negotiated) meta.negotiated[t.name] = `${run.negotiated.protocol}/${run.negotiated.cipher}`;
      const parts = [`${fmt(run.ka.rps)} req/s`];
      if (run.ka.usPerReq != null)
        parts.push(`${run.ka.usPerReq.toFixed(1)} µs/req (busy ${pct(run.ka.busy)})`);
      for (const m of ['full', 'resumed'])
        if (run[m])
          parts.push(
            `${m} ${fmt(run[m].rate)}/s${run[m].usPerConn != null ? ` ${fmt(run[m].usPerConn)} µs (busy ${pct(run[m].busy)})` : ''}${run[m].resumedShare != null ? ` reused ${pct(run[m].resumedShare)}` : ''}${run[m].errors ? ` errors ${run[m].errors} ${run[m].errorSamples.join(',')}` : ''}`,
          );
      if (run.ka.errors) parts.push(`errors ${run.ka.errors}`);
      parts.push(`other ${pct(run.ka.foreign)}`);
      log(`  ${t.name.padEnd(13)} ${parts.join(', ')}`);
    } catch (e) {
      log(`  ${t.name}: ${e.message}`);
      state[t.name].errors = [...(state[t.name].errors ?? []), e.message];
    }
  }
  meta.roundsDone = round;
  write();
}
await stop(backend.child);
meta.loadEnd = loadavg();
meta.uptimeEnd = execFileSync('uptime', { encoding: 'utf8' }).trim();
meta.complete = true;
log(`uptime: ${meta.uptimeEnd}`);
write();
process.stdout.write(`${markdown({ meta, targets: state })}`);
log(`wrote ${path.join(outDir, `${outName}.md`)} and .json`);

if (profDir) {
  // Per profiled target, the busiest profile (FiberLB's primary also writes one; its worker's
  // has the most non-idle samples) → DIR/<target>.txt.
  for (const name of ['fiberlb', 'undici-https']) {
    const d = path.join(profDir, name);
    let files = [];
    try {
      files = readdirSync(d).filter((f) => f.endsWith('.cpuprofile'));
    } catch {}
    const profiles = files.map((f) => ({ f, p: JSON.parse(readFileSync(path.join(d, f), 'utf8')) }));
    const busy = ({ p }) => {
      const idle = new Set(p.nodes.filter((x) => x.callFrame.functionName === '(idle)').map((x) => x.id));
      return p.samples.filter((id) => !idle.has(id)).length;
    };
    profiles.sort((a, b) => busy(b) - busy(a));
    if (!profiles.length) {
      log(`no .cpuprofile for ${name} in ${d} (did it exit cleanly?)`);
      continue;
    }
    const text = `${name}: ${profiles[0].f}\n${summarizeProfile(profiles[0].p, 15)}`;
    writeFileSync(path.join(profDir, `${name}.txt`), text);
    process.stdout.write(`\n${text}`);
  }
}
