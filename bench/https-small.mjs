// HTTPS termination benchmark (keep-alive, HTTP/1.1 over TLS 1.3, small response): FiberLB
// (1 worker, https listener) vs the minimal Node https + undici proxy (bench/peers/undici-https.mjs),
// each pinned to core 0, autocannon and the backend on core 1. Reports req/s and the proxy's CPU
// µs/req (whole process tree), median over interleaved rounds. A self-signed certificate is
// made with openssl in a temp dir; autocannon runs with NODE_TLS_REJECT_UNAUTHORIZED=0 (its
// own process only). Usage: node bench/https-small.mjs [rounds] [durationS]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  cpuDeltaUs,
  freePort,
  installCleanupHandlers,
  spawnPinned,
  stop,
  treeCpu,
  waitForOutput,
  waitForPort,
} from './lib/proc.mjs';
import { median } from './lib/report.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const [rounds, durationS] = [Number(process.argv[2] ?? 3), Number(process.argv[3] ?? 8)];
installCleanupHandlers();
const dir = mkdtempSync(path.join(os.tmpdir(), 'fiberlb-bench-https-'));
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
    path.join(dir, 'k.pem'),
    '-out',
    path.join(dir, 'c.pem'),
    '-days',
    '2',
    '-subj',
    '/CN=bench.test',
    '-addext',
    'subjectAltName=DNS:bench.test,IP:127.0.0.1',
  ],
  { stdio: 'ignore' },
);

const backend = spawnPinned('backend', 1, process.execPath, [path.join(root, 'bench/backend.mjs'), '0']);
const backendPort = Number((await waitForOutput(backend, /listening (\d+)/))[1]);

async function startTarget(name) {
  const port = await freePort();
  if (name === 'fiberlb') {
    const adminPort = await freePort();
    const file = path.join(dir, 'fiberlb.yaml');
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
        tls: { certificates: [{ cert: c.pem, key: k.pem }], http2: ${process.env.BENCH_HTTP2 ?? 'true'} }
    pools:
      - name: backend
        backends: [{ address: 127.0.0.1, port: ${backendPort} }]
`,
    );
    const child = spawnPinned('fiberlb', 0, process.execPath, [
      path.join(root, 'dist/cli.js'),
      'run',
      '--config',
      file,
    ]);
    await waitForPort(port, { child, timeoutMs: 20_000 });
    return { child, port };
  }
  const child = spawnPinned('undici-https', 0, process.execPath, [
    path.join(root, 'bench/peers/undici-https.mjs'),
    String(port),
    `http://127.0.0.1:${backendPort}`,
    path.join(dir, 'c.pem'),
    path.join(dir, 'k.pem'),
  ]);
  await waitForOutput(child, /listening/);
  return { child, port };
}

function load(port, seconds) {
  const out = execFileSync(
    'taskset',
    [
      '-c',
      '1',
      process.execPath,
      path.join(root, 'bench/lib/ac-runner.mjs'),
      `https://127.0.0.1:${port}/`,
      '50',
      String(seconds),
    ],
    {
      env: { ...process.env, NODE_TLS_REJECT_UNAUTHORIZED: '0', NODE_NO_WARNINGS: '1' },
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    },
  );
  return JSON.parse(
    out
      .trim()
      .split('\n')
      .reverse()
      .find((l) => l.startsWith('{')),
  );
}

const results = { fiberlb: [], undici: [] };
for (let r = 0; r < rounds; r++) {
  for (const name of r % 2 === 0 ? ['fiberlb', 'undici'] : ['undici', 'fiberlb']) {
    const t = await startTarget(name);
    load(t.port, 2); // warm-up
    const before = treeCpu(t.child.pid);
    const res = load(t.port, durationS);
    const cpu = cpuDeltaUs(before, treeCpu(t.child.pid));
    const total = res.requests.total;
    results[name].push({ rps: total / res.duration, usPerReq: cpu / total, errors: res.errors + res.non2xx });
    process.stderr.write(
      `round ${r + 1} ${name}: ${Math.round(total / res.duration)} req/s, ${(cpu / total).toFixed(1)} µs/req, errors ${res.errors + res.non2xx}\n`,
    );
    await stop(t.child);
  }
}
await stop(backend);
const sum = (name) => ({
  rps: Math.round(median(results[name].map((x) => x.rps))),
  usPerReq: Number(median(results[name].map((x) => x.usPerReq)).toFixed(1)),
});
const f = sum('fiberlb');
const u = sum('undici');
process.stdout.write(
  `${JSON.stringify({ fiberlb: f, undici: u, ratio: Number((f.usPerReq / u.usPerReq).toFixed(2)), rounds, durationS })}\n`,
);
