// test: serial — the ramp measures latency against a backend of known capacity.
//
// `fiberlb capacity URL` (the built dist/cli.js, as a user runs it) against real loopback
// backends: one that serialises requests with a fixed 2 ms service time (capacity exactly 500
// req/s, whatever this machine's timer jitter: the next request's finish time is the last one's
// + 2 ms), one that answers at once, one that fails 5% of requests. Asserts the answer lands
// near 500, the break is reported, the bounds hold, refusals and errors are one line.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CLI, ROOT, tempDir } from './helpers/cluster-fiberlb.ts';
import { freeTcpPort } from './helpers/net.ts';
import { parseXml } from './helpers/xml.ts';

type Run = { status: number | null; stdout: string; stderr: string; wallMs: number };

function capacity(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const p = spawn(process.execPath, [CLI, 'capacity', ...args], { cwd: ROOT });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const kill = setTimeout(() => p.kill('SIGKILL'), 90_000);
    p.on('close', (status) => {
      clearTimeout(kill);
      resolve({ status, stdout, stderr, wallMs: Date.now() - t0 });
    });
  });
}

async function listen(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` };
}

/** One line on stderr, "fiberlb: capacity: …" (or usage after it for code 2), no stack. */
function assertOneLine(r: Run, code: number, message: RegExp): void {
  assert.equal(r.status, code, `exit ${r.status}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'stack trace printed');
  const first = r.stderr.split('\n')[0]!;
  assert.match(first, /^fiberlb: /);
  assert.match(first, message);
  if (code === 2) assert.match(r.stderr, /^usage:/m);
  else assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
}

describe('fiberlb capacity', () => {
  const servers: Server[] = [];
  let saturating: string;
  let fast: string;
  let flaky: string;
  const dir = tempDir('fiberlb-capacity-');

  before(async () => {
    // Serialised, 2 ms per request: finish = max(now, last finish) + 2 ms → exactly 500 req/s.
    let lastDone = 0;
    const s1 = await listen((req, res) => {
      req.resume();
      const now = performance.now();
      lastDone = Math.max(now, lastDone) + 2;
      setTimeout(() => res.end('ok\n'), lastDone - now);
    });
    const s2 = await listen((req, res) => {
      req.resume();
      res.end('ok\n');
    });
    let n = 0;
    const s3 = await listen((req, res) => {
      req.resume();
      res.statusCode = ++n % 20 === 0 ? 503 : 200; // 5% errors, the probe (first) gets a 200
      res.end('x\n');
    });
    servers.push(s1.server, s2.server, s3.server);
    [saturating, fast, flaky] = [s1.url, s2.url, s3.url];
  });
  after(() => {
    for (const s of servers) {
      s.closeAllConnections();
      s.close();
    }
  });

  test('finds the rate of a backend that saturates at 500 req/s and reports the step where p99 broke', async () => {
    const json = join(dir, 'sat.json');
    const svgFile = join(dir, 'sat.svg');
    // SLO 200 ms: far above this machine's scheduling noise under load, far below what one
    // 2 s stage 20% over capacity queues up (≈ 0.4 s by its end).
    const r = await capacity(
      saturating,
      '--slo-p99',
      '200ms',
      '--warmup',
      '500ms',
      '--json',
      json,
      '--svg',
      svgFile,
    );
    assert.equal(r.status, 0, r.stderr);
    const res = JSON.parse(readFileSync(json, 'utf8'));
    assert.ok(res.held, 'a step held');
    assert.ok(res.held.rate >= 300 && res.held.rate <= 600, `held ${res.held.rate} req/s`);
    assert.equal(res.stop, 'slo');
    assert.ok(res.broke.rate > res.held.rate);
    assert.ok(res.broke.rate > 450, `broke already at ${res.broke.rate} req/s`);
    assert.match(res.broke.reasons.join(), /^p99 /);
    // Coordinated omission corrected: queueing behind the 500 req/s server shows up in p99.
    assert.ok(res.broke.p99Us > 200_000, `p99 of the broken step ${res.broke.p99Us} µs`);
    assert.ok(res.broke.achievedRate < 560, `achieved ${res.broke.achievedRate} > capacity`);
    // Steps rise by ×1.25 from 100.
    assert.deepEqual(
      res.steps.slice(0, 3).map((s: { rate: number }) => s.rate),
      [100, 125, 156],
    );
    // stdout: a table row per step, the answer, the break.
    const rows = r.stdout.split('\n').filter((l) => /^\d+\s/.test(l));
    assert.equal(rows.length, res.steps.length);
    assert.match(r.stdout, /offered req\/s\s+achieved req\/s\s+p50 ms\s+p99 ms\s+p99\.9 ms\s+errors/);
    assert.match(r.stdout, new RegExp(`capacity: ${res.held.rate} req/s held the SLO`));
    assert.match(r.stdout, new RegExp(`broke at step ${res.broke.index}: ${res.broke.rate} req/s \\(p99`));
    // stderr is not a TTY here: plain lines, one per step, no carriage returns.
    assert.doesNotMatch(r.stderr, /\r/);
    assert.equal(
      r.stderr.split('\n').filter((l) => /^step \d+: .* → (held|broke)/.test(l)).length,
      res.steps.length,
    );

    const elements = parseXml(readFileSync(svgFile, 'utf8'));
    const steps = elements.filter((e) => e.name === 'g' && e.attrs.class === 'step');
    assert.deepEqual(
      steps.map((e) => Number(e.attrs['data-rate'])),
      res.steps.map((s: { rate: number }) => s.rate),
    );
    assert.equal(steps.filter((e) => e.attrs['data-held'] === 'false').length, 1);
    for (const cls of ['p50', 'p99', 'errors'])
      assert.ok(
        elements.some((e) => e.name === 'polyline' && e.attrs.class === cls),
        cls,
      );
    assert.ok(elements.some((e) => e.attrs.class === 'slo'));
  });

  test('bounded: --max-duration stops a ramp that never breaks, --max-rate caps the steps', async () => {
    const t = await capacity(
      fast,
      '--start-rate',
      '200',
      '--stage-duration',
      '500ms',
      '--warmup',
      '0',
      '--timeout',
      '1s',
      '--max-duration',
      '4s',
      '--svg',
      join(dir, 'bounded.svg'),
    );
    assert.equal(t.status, 0, t.stderr);
    assert.match(t.stdout, /note: stopped by --max-duration 4 s before the SLO broke/);
    // Each stage is 0.5 s + at most the 1 s timeout; the process also starts and probes.
    assert.ok(t.wallMs < 4000 + 1500 + 3000, `took ${t.wallMs} ms`);

    const json = join(dir, 'maxrate.json');
    const m = await capacity(
      fast,
      '--start-rate',
      '200',
      '--step',
      '+150',
      '--max-rate',
      '500',
      '--stage-duration',
      '300ms',
      '--warmup',
      '0',
      '--json',
      json,
      '--svg',
      join(dir, 'maxrate.svg'),
    );
    assert.equal(m.status, 0, m.stderr);
    const res = JSON.parse(readFileSync(json, 'utf8'));
    assert.deepEqual(
      res.steps.map((s: { rate: number }) => s.rate),
      [200, 350, 500],
    );
    assert.equal(res.stop, 'max-rate');
    assert.match(m.stdout, /held up to --max-rate 500 req\/s/);
  });

  test('an error share above --max-errors breaks the first step: exit 1, no step held', async () => {
    const json = join(dir, 'flaky.json');
    const r = await capacity(
      flaky,
      '--stage-duration',
      '1s',
      '--warmup',
      '0',
      '--json',
      json,
      '--svg',
      join(dir, 'f.svg'),
    );
    assert.equal(r.status, 1, r.stderr);
    const res = JSON.parse(readFileSync(json, 'utf8'));
    assert.equal(res.steps.length, 1);
    assert.ok(Math.abs(res.steps[0].errorShare - 0.05) < 0.02, `error share ${res.steps[0].errorShare}`);
    assert.match(res.steps[0].reasons.join(), /^errors 5\.0% > 1\.0%/);
    assert.match(r.stdout, /capacity: no step held the SLO/);
  });

  test('refuses a non-loopback target unless --allow-remote', async () => {
    // 192.0.2.0/24 is TEST-NET-1: never routed, and the refusal comes before any connection.
    const r = await capacity('http://192.0.2.1:8080/');
    assertOneLine(r, 1, /192\.0\.2\.1:8080 is not a loopback address .*--allow-remote/);
    // Every loopback spelling is accepted (and then found unreachable: nothing listens there).
    // (--allow-remote itself is not exercised: tests send nothing off this machine.)
    const port = await freeTcpPort();
    for (const [host, shown] of [
      ['127.0.0.2', '127\\.0\\.0\\.2'],
      ['[::ffff:127.0.0.1]', '\\[::ffff:7f00:1\\]'], // as the URL parser normalises it
    ])
      assertOneLine(
        await capacity(`http://${host}:${port}/`),
        1,
        new RegExp(`cannot reach http://${shown}:${port}/: connection refused`),
      );
  });

  test('an unreachable URL and bad flags end in one line and an exit code', async () => {
    const port = await freeTcpPort();
    assertOneLine(
      await capacity(`http://127.0.0.1:${port}/`),
      1,
      new RegExp(`cannot reach http://127\\.0\\.0\\.1:${port}/: connection refused \\(ECONNREFUSED\\)`),
    );
    assertOneLine(await capacity(fast, '--slo-p99', '50'), 2, /--slo-p99: duration needs a unit/);
    assertOneLine(await capacity(fast, '--bogus', '1'), 2, /capacity: unknown option '--bogus'/);
    assertOneLine(await capacity(fast, '--max-errors', '150%'), 2, /--max-errors needs a share/);
    assertOneLine(await capacity(fast, '--step', 'x0.5'), 2, /--step needs a factor/);
    assertOneLine(await capacity(fast, '--header', 'nocolon'), 2, /--header needs 'Name: value'/);
    assertOneLine(await capacity(), 2, /capacity needs a URL/);
    assertOneLine(await capacity('ftp://127.0.0.1/'), 2, /ftp: URLs are not supported/);
    assertOneLine(
      await capacity(fast, '--method', 'BAD METHOD'),
      2,
      /--method: 'BAD METHOD' is not an HTTP method/,
    );
  });

  test('--method, --header and --body go on the wire', async () => {
    const seen: Array<{ method?: string; h?: string; body: string }> = [];
    const { server, url } = await listen((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        if (seen.length < 3) seen.push({ method: req.method, h: req.headers['x-test'] as string, body });
        res.end('ok');
      });
    });
    servers.push(server);
    const r = await capacity(
      url,
      '--method',
      'post',
      '--header',
      'X-Test: yes',
      '--body',
      '{"a":1}',
      '--start-rate',
      '50',
      '--max-rate',
      '50',
      '--stage-duration',
      '300ms',
      '--warmup',
      '0',
      '--svg',
      join(dir, 'm.svg'),
    );
    assert.equal(r.status, 0, r.stderr);
    assert.ok(seen.length >= 2);
    for (const s of seen) assert.deepEqual(s, { method: 'POST', h: 'yes', body: '{"a":1}' });
  });
});
