// The `https` and `h2` benchmark scenarios (bench/lib/https.mjs, h2.mjs, tls-targets.mjs,
// h2-load.mjs): their reports from given runs, h2load's output parsed, the generated HAProxy /
// NGINX configs accepted by the real binaries, and the minimal h2 reference proxy + Node h2
// load generator serving real h2 over TLS on loopback. No benchmark numbers are asserted: the
// bench modules are plain .mjs, so each check runs them in a `node` child, as run.mjs does.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { runModule } from './helpers/bench-module.ts';
import { ROOT, tempDir } from './helpers/cluster-fiberlb.ts';

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

const meta = (scenario: string, title: string) => ({
  scenario,
  title,
  date: '2026-12-01T15:00:00.000Z',
  node: 'v20.20.2',
  cpuModel: 'Test CPU',
  cores: 2,
  kernel: '6.1',
  loadAverage: [0.5, 0.6, 0.7],
  loadAverageEnd: [0.8, 0.9, 1],
  proxyCpu: '0',
  loadCpu: '1',
  pinned: true,
  connections: 50,
  durationS: 5,
  warmupS: 2,
  rounds: 3,
  notes: ['a note'],
  complete: true,
});

describe('bench https / h2 scenarios', () => {
  test('the https and h2 scenarios run (not stubs) with their targets registered', () => {
    for (const [sc, names] of [
      ['https', 'direct, fiberlb-https, undici-https, haproxy-https, nginx-https'],
      ['h2', 'direct, fiberlb-h2, undici-h2, haproxy-h2, nginx-h2'],
    ] as const) {
      const r = spawnSync(process.execPath, ['bench/run.mjs', '--scenario', sc, '--only', 'nope'], {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 30_000,
      });
      assert.equal(r.status, 2, r.stderr);
      assert.ok(r.stderr.includes(`unknown target "nope" for ${sc} (known: ${names})`), r.stderr);
    }
  });

  test('https: medians and min–max over rounds, ratios to undici-https and HAProxy, the ≤ 1.1× verdict, skip reasons', () => {
    const ka = (rps: number, usPerReq: number | undefined) => ({
      rps,
      total: rps * 5,
      usPerReq,
      busy: 0.9,
      backendUsPerReq: 8,
      p99ms: 4,
      errors: 0,
      foreign: 0.02,
    });
    const hs = (rate: number, usPerConn: number) => ({
      rate,
      total: rate * 4,
      usPerConn,
      busy: 0.5,
      clientUsPerConn: 1200,
      resumedShare: 0,
      p50us: 50_000,
      p99us: 90_000,
      errors: 0,
      foreign: 0.03,
    });
    const runs = (us: number[], hsUs: number[]) =>
      us.map((u, i) => ({ round: i + 1, ka: ka(10_000 + i * 1000, u), full: hs(500, hsUs[i]!) }));
    const out = runModule(`
      const m = await import('./bench/lib/https.mjs');
      const t = (label, runs, extra = {}) => ({ label, version: 'v1', status: 'ok', runs, summary: m.summarize(runs), ...extra });
      const targets = {
        direct: t('direct', ${JSON.stringify([{ round: 1, ka: ka(30_000, undefined) }])}),
        'fiberlb-https': t('FiberLB https', ${JSON.stringify(runs([66, 57, 60], [900, 1000, 950]))}),
        'undici-https': t('undici-https', ${JSON.stringify(runs([48, 52, 50], [1000, 1000, 1000]))}),
        'haproxy-https': t('HAProxy', ${JSON.stringify(runs([30, 30, 30], [600, 600, 600]))}),
        'nginx-https': { label: 'NGINX', status: 'skipped', reason: 'nginx not installed', runs: [] },
      };
      const result = { meta: { ...${JSON.stringify(meta('https', 'HTTPS termination'))}, handshakes: { on: true, resume: true, concurrency: 32, durationS: 4 }, negotiated: { 'fiberlb-https': 'TLSv1.3/TLS_AES_256_GCM_SHA384' } }, targets };
      console.log(JSON.stringify({ md: m.markdown(result), head: m.headline(result), verdict: m.verdict(targets) }));
    `) as {
      md: string;
      head: { bars: { label: string; value: number; min: number; max: number }[] };
      verdict: unknown;
    };
    // FiberLB: median 60 of 57/60/66 µs/req → 1.20× undici-https's 50 (missed), 2.00× HAProxy's 30;
    // req/s median 11,000 of 10,000–12,000, 37% of direct's 30,000.
    assert.match(
      out.md,
      /^\| FiberLB https \| v1 \| 11,000 \| 10,000–12,000 \| 37% \| 60\.0 \| 57\.0–66\.0 \| 1\.20× \| 2\.00× \| 90% \| 8\.0 \| 4 \| 0 \| 2% \|$/m,
    );
    assert.match(out.md, /^\| direct \| v1 \| 30,000 \| 30,000–30,000 \| 100% \| – \| – \| – \| – \| – \|/m);
    assert.match(out.md, /^\| NGINX \| {2}\| skipped: nginx not installed \|/m);
    // New connections: 950 µs per full handshake = 0.95× undici-https.
    assert.match(out.md, /^\| FiberLB https \| full \| 500 \| 500–500 \| 950 \| 900–1,000 \| 0\.95× \|/m);
    assert.match(out.md, /keep-alive 1\.20× — missed\*\*; per new connection with a full handshake 0\.95×/);
    assert.match(out.md, /negotiated: fiberlb-https TLSv1\.3\/TLS_AES_256_GCM_SHA384/);
    assert.match(out.md, /^- a note$/m);
    assert.deepEqual(out.verdict, { keepAlive: 1.2, fullHandshake: 0.95, met: false });
    assert.deepEqual(
      out.head.bars.map((b) => [b.label, b.value, b.min, b.max]),
      [
        ['FiberLB https', 60, 57, 66],
        ['undici-https', 50, 48, 52],
        ['HAProxy', 30, 30, 30],
      ],
    );
  });

  test('h2: req/s and proxy µs/req with ranges, ratios to the node:http2 + undici reference, errored rounds left out', () => {
    const r = (round: number, rps: number, usPerReq: number | undefined, error?: string) => ({
      round,
      generator: 'h2load',
      protocol: 'h2',
      rps,
      total: rps * 5,
      usPerReq,
      busy: 0.95,
      backendUsPerReq: 7.5,
      generatorUsPerReq: 4,
      latencyUs: { mean: 2000 },
      errors: 0,
      foreign: 0.01,
      ...(error ? { error } : {}),
    });
    const out = runModule(`
      const m = await import('./bench/lib/h2.mjs');
      const t = (label, runs) => ({ label, version: 'v1', status: 'ok', runs, summary: m.summarize(runs) });
      const targets = {
        direct: t('direct', ${JSON.stringify([r(1, 40_000, undefined)])}),
        'fiberlb-h2': t('FiberLB h2', ${JSON.stringify([r(1, 9000, 110), r(2, 1, 1, 'exited during the run'), r(3, 11_000, 90)])}),
        'undici-h2': t('node:http2 + undici', ${JSON.stringify([r(1, 10_000, 100)])}),
        'haproxy-h2': t('HAProxy h2', ${JSON.stringify([r(1, 20_000, 25)])}),
        'nginx-h2': { label: 'NGINX h2', version: 'nginx/1.22.1', status: 'failed', reason: 'nginx-h2 failed: boom\\nmore', runs: [] },
      };
      const result = { meta: { ...${JSON.stringify(meta('h2', 'HTTP/2 downstream'))}, h2: { generator: 'h2load', generatorVersion: 'h2load nghttp2/1.52.0', connections: 10, streams: 10 } }, targets };
      console.log(JSON.stringify({ md: m.markdown(result), head: m.headline(result) }));
    `) as { md: string; head: { bars: { label: string; value: number }[] } };
    // The errored round 2 is left out: medians of rounds 1 and 3.
    assert.match(
      out.md,
      /^\| FiberLB h2 \| v1 \| 10,000 \| 9,000–11,000 \| 25% \| 100\.0 \| 90\.0–110\.0 \| 1\.00× \| 4\.00× \| 95% \| 7\.5 \| 4\.0 \| 2,000 \| 0 \| 1% \|$/m,
    );
    assert.match(out.md, /^\| NGINX h2 \| nginx\/1\.22\.1 \| failed: nginx-h2 failed: boom \|/m);
    assert.match(out.md, /10 connections × 10 concurrent streams/);
    assert.match(out.md, /HTTP\/1\.1 to the backend with 100 connections \(h2load --h1\)/);
    assert.match(out.md, /1\.00× its CPU µs\/req; 4\.00× HAProxy's/);
    assert.deepEqual(
      out.head.bars.map((b) => [b.label, b.value]),
      [
        ['FiberLB h2', 100],
        ['node:http2 + undici', 100],
        ['HAProxy h2', 25],
      ],
    );
  });

  test("h2load's summary is parsed (counts, codes, ALPN, latency units); its CPU comes from the shell's cutime/cstime", () => {
    const out = runModule(`
      const m = await import('./bench/lib/h2-load.mjs');
      const text = ${JSON.stringify(H2LOAD_OUTPUT)};
      // /proc/<pid>/stat: pid (comm with ) and spaces) state … utime(14) stime(15) cutime(16) cstime(17)
      const stat = '4242 (sh) x) S 1 2 3 4 5 6 7 8 9 10 11 12 345 67 13 14 15';
      console.log(JSON.stringify({ p: m.parseH2load(text), cpu: m.childrenCpuUs(stat), bad: (() => { try { m.parseH2load('starting benchmark...'); } catch (e) { return e.message; } })() }));
    `) as { p: Record<string, unknown>; cpu: number; bad: string };
    assert.equal(out.p.total, 117_281);
    assert.equal(out.p.succeeded, 117_200);
    assert.equal(out.p.failed, 81);
    assert.equal(out.p.errored, 1);
    assert.deepEqual(out.p.status, { '2xx': 117_200, '3xx': 0, '4xx': 80, '5xx': 0 });
    assert.equal(out.p.durationS, 5);
    assert.equal(out.p.rps, 23456.2);
    assert.equal(out.p.protocol, 'h2');
    assert.equal(out.p.tlsProtocol, 'TLSv1.3');
    assert.deepEqual(out.p.latencyUs, { min: 123, max: 12_340, mean: 2030 });
    assert.equal(out.cpu, (345 + 67) * 10_000); // ticks of 10 ms
    assert.match(out.bad, /h2load printed no summary/);
  });

  test('the generated HAProxy (alpn h2,http/1.1) and NGINX (ssl http2) configs are accepted by the real binaries', {
    skip: !has('haproxy') || !has('nginx') ? 'needs haproxy and nginx (bench peers; not in .ci/run)' : false,
  }, () => {
    const dir = tempDir('fiberlb-bench-tls-');
    const out = runModule(`
      import { mkdirSync, readFileSync } from 'node:fs';
      const { tlsFiles } = await import('./bench/lib/tls-cert.mjs');
      const c = await import('./bench/lib/tls-configs.mjs');
      const dir = ${JSON.stringify(dir)};
      const f = tlsFiles(dir);
      for (const d of ['h', 'n1', 'n2']) mkdirSync(dir + '/' + d);
      const h = c.haproxyH2Config({ dir: dir + '/h', port: 18443, backendPort: 18080, pem: f.pem });
      const n1 = c.nginxH2Config({ dir: dir + '/n1', port: 18444, backendPort: 18080, cert: f.cert, key: f.key, version: [1, 22, 1] });
      const n2 = c.nginxH2Config({ dir: dir + '/n2', port: 18445, backendPort: 18080, cert: f.cert, key: f.key, version: [1, 25, 1] });
      console.log(JSON.stringify({ h, n1, n2, ht: readFileSync(h, 'utf8'), n1t: readFileSync(n1, 'utf8'), n2t: readFileSync(n2, 'utf8'), v: c.nginxVersion('nginx version: nginx/1.22.1') }));
    `) as Record<string, string>;
    assert.match(out.ht!, /bind 127\.0\.0\.1:18443 ssl crt \S+ ssl-min-ver TLSv1\.3 alpn h2,http\/1\.1/);
    assert.match(out.n1t!, /listen 127\.0\.0\.1:18444 ssl http2 reuseport;/);
    assert.match(out.n2t!, /http2 on;\n\s+listen 127\.0\.0\.1:18445 ssl reuseport;/);
    assert.deepEqual(out.v, [1, 22, 1]);
    const hc = spawnSync('haproxy', ['-c', '-f', out.h!], { encoding: 'utf8' });
    assert.equal(hc.status, 0, hc.stdout + hc.stderr);
    // Only the syntax of the installed NGINX's own era can be checked here.
    const installed = spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr;
    const m = /nginx\/(\d+)\.(\d+)/.exec(installed);
    const modern = !!m && (Number(m[1]) > 1 || Number(m[2]) >= 25);
    const conf = modern ? out.n2! : out.n1!;
    const nc = spawnSync('nginx', ['-t', '-c', conf, '-p', `${dir}/`, '-e', `${dir}/nginx-t.log`], {
      encoding: 'utf8',
    });
    assert.equal(nc.status, 0, nc.stdout + nc.stderr);
  });

  test('the h2 reference peer serves h2 and HTTP/1.1 over TLS; the Node h2 generator drives it; an h1-only peer fails the h2 check', () => {
    const dir = tempDir('fiberlb-bench-tls-');
    const out = runModule(
      `
      const { installCleanupHandlers, setLogDir, spawnPinned, stop, waitForOutput, freePort } = await import('./bench/lib/proc.mjs');
      installCleanupHandlers(); // killed by the test's timeout: the peers (own process groups) go too
      const { tlsFiles } = await import('./bench/lib/tls-cert.mjs');
      const { verifyH2, verifyTls } = await import('./bench/lib/tls-targets.mjs');
      const { h2Run } = await import('./bench/lib/h2-load.mjs');
      const dir = ${JSON.stringify(dir)};
      setLogDir(dir);
      const f = tlsFiles(dir);
      const kids = [];
      const start = async (name, args) => {
        const c = spawnPinned(name, undefined, process.execPath, args);
        kids.push(c);
        return Number((await waitForOutput(c, /listening (\\d+)/))[1]);
      };
      try {
        const be = await start('backend', ['bench/backend.mjs', '0']);
        const up = 'http://127.0.0.1:' + be;
        const p2 = await freePort();
        await start('undici-h2', ['bench/peers/undici-h2.mjs', String(p2), up, f.cert, f.key]);
        const p1 = await freePort();
        await start('undici-https', ['bench/peers/undici-https.mjs', String(p1), up, f.cert, f.key]);
        const h2 = await verifyH2(p2, 3);
        const h1 = await verifyTls(p2, 3);
        const gen = await h2Run({ gen: { kind: 'node' }, root: process.cwd(), port: p2, connections: 2, streams: 4, durationS: 1 });
        let refused;
        try { await verifyH2(p1, 2); } catch (e) { refused = e.message || e.code || String(e); }
        console.log(JSON.stringify({ h2, h1, gen, refused }));
      } finally {
        for (const c of kids) await stop(c);
      }
    `,
      90_000,
    ) as {
      h2: { alpn: string; protocol: string };
      h1: { alpn: string };
      gen: { protocol: string; ok: number; errors: number; non2xx: number; total: number };
      refused?: string;
    };
    assert.equal(out.h2.alpn, 'h2');
    assert.equal(out.h2.protocol, 'TLSv1.3');
    assert.equal(out.h1.alpn, 'http/1.1');
    assert.equal(out.gen.protocol, 'h2');
    assert.ok(out.gen.ok > 0, JSON.stringify(out.gen));
    assert.equal(out.gen.errors, 0);
    assert.equal(out.gen.non2xx, 0);
    assert.ok(out.refused, 'verifyH2 must refuse a peer that does not negotiate h2');
  });
});

// An h2load 1.52 summary (-D 5, ALPN h2) with 80 answers 4xx and 1 stream errored (both "failed").
const H2LOAD_OUTPUT = `starting benchmark...
spawning thread #0: 10 total client(s). Timing-based test with 0s of warm-up time and 5s of main duration for measurements.
Warm-up started for thread #0.
Warm-up phase is over for thread #0.
Main benchmark duration is started for thread #0.
TLS Protocol: TLSv1.3
Cipher: TLS_AES_256_GCM_SHA384
Server Temp Key: X25519 253 bits
Application protocol: h2
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 5.00s, 23456.20 req/s, 1.23MB/s
requests: 117281 total, 117281 started, 117281 done, 117200 succeeded, 81 failed, 1 errored, 0 timeout
status codes: 117200 2xx, 0 3xx, 80 4xx, 0 5xx
traffic: 6.16MB (6456789) total, 1.23MB (1234567) headers (space savings 90.00%), 1.45MB (1456789) data
                     min         max         mean         sd        +/- sd
time for request:      123us     12.34ms      2.03ms      1.01ms    70.00%
time for connect:     1.23ms      4.56ms      2.34ms      1.00ms    60.00%
time to 1st byte:     3.45ms      5.67ms      4.12ms      0.80ms    50.00%
req/s           :    2345.67     2400.12     2367.80       20.34    60.00%
`;
