// The benchmark's report format and scenario switch (bench/run.mjs, bench/lib/daily.mjs), run
// as a user runs them (node, the real files); no measurement: the result JSON is written here.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ROOT, tempDir } from './helpers/cluster-fiberlb.ts';
import { parseXml } from './helpers/xml.ts';

const node = (...args: string[]) =>
  spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });

function httpResult(scenario: string, date: string) {
  const max = (rps: number, cpu?: number) => ({
    rps,
    rpsMin: rps * 0.9,
    rpsMax: rps * 1.1,
    cpuUsPerReq: cpu,
    cpuMin: cpu && cpu * 0.95,
    cpuMax: cpu && cpu * 1.05,
    p50Ms: 1,
    p99Ms: 2,
    errors: 0,
  });
  return {
    meta: {
      scenario,
      title: `Title of ${scenario} & more`,
      ratioTo: 'node-pipe',
      date,
      node: process.version,
      rounds: 3,
      durationS: 10,
      loadAverage: [0.5, 0.6, 0.7],
      complete: true,
    },
    targets: {
      direct: { label: 'direct', status: 'ok', runs: [], summary: { max: max(30000) } },
      'fiberlb-tcp': { label: 'FiberLB tcp', status: 'ok', runs: [], summary: { max: max(20000, 30.5) } },
      'node-pipe': { label: 'node:net pipe', status: 'ok', runs: [], summary: { max: max(21000, 25) } },
      'nginx-stream': { label: 'NGINX stream', status: 'skipped', reason: 'no module', runs: [] },
    },
  };
}

describe('bench report', () => {
  test('<date>.md: the machine, a table and a well-formed SVG chart per scenario of that day', () => {
    const dir = tempDir('fiberlb-bench-report-');
    writeFileSync(join(dir, 'l4-tcp.json'), JSON.stringify(httpResult('l4-tcp', '2026-12-01T10:00:00.000Z')));
    writeFileSync(join(dir, 'routes.json'), JSON.stringify(httpResult('routes', '2026-12-01T11:00:00.000Z')));
    // Another day and a pre-scenario result: not in this day's report.
    writeFileSync(join(dir, 'old.json'), JSON.stringify(httpResult('udp', '2026-11-30T10:00:00.000Z')));
    writeFileSync(
      join(dir, 'legacy.json'),
      JSON.stringify({ meta: { date: '2026-12-01T09:00:00Z' }, targets: {} }),
    );
    const r = node(
      '-e',
      `import('./bench/lib/daily.mjs').then((m) => m.writeDaily(${JSON.stringify(dir)}, '2026-12-01'))`,
    );
    assert.equal(r.status, 0, r.stderr);
    const md = readFileSync(join(dir, '2026-12-01.md'), 'utf8');
    assert.match(md, /^# FiberLB benchmarks, 2026-12-01/);
    assert.match(md, /^- CPU: .+ × \d+ cores · kernel .+ · Node v/m);
    assert.match(md, /^- HAProxy: .+ · NGINX: .+ · iperf3: /m);
    assert.deepEqual(
      [...md.matchAll(/^## (.+)$/gm)].map((m) => m[1]),
      [
        'Machine',
        'Title of l4-tcp & more (`--scenario l4-tcp`)',
        'Title of routes & more (`--scenario routes`)',
      ],
    );
    assert.match(md, /load average 0\.50 \/ 0\.60 \/ 0\.70/);
    // Table: ratios to the scenario's reference (node-pipe) and to direct, skipped targets say why.
    assert.match(md, /\| FiberLB tcp \| 20,000 \| 18,000–22,000 \| 67% \| 30\.5 \| 29\.0–32\.0 \| 1\.22× \|/);
    assert.match(md, /\| NGINX stream \| skipped: no module \|/);
    assert.match(md, /!\[l4-tcp\]\(2026-12-01-l4-tcp\.svg\)/);
    const svg = parseXml(readFileSync(join(dir, '2026-12-01-l4-tcp.svg'), 'utf8'));
    const bars = svg.filter((e) => e.name === 'g' && e.attrs.class === 'bar');
    assert.deepEqual(
      bars.map((b) => [b.attrs['data-label'], Number(b.attrs['data-value'])]),
      [
        ['FiberLB tcp', 30.5],
        ['node:net pipe', 25],
      ],
    );
    assert.ok(svg.some((e) => e.name === 'title'));
  });

  test('--list names every scenario; a stub says what it needs and exits 3; unknown exits 2', () => {
    const list = node('bench/run.mjs', '--list');
    assert.equal(list.status, 0, list.stderr);
    for (const name of [
      'http-small',
      'http-16k',
      'upload',
      'fixed-rate',
      'l4-tcp',
      'l4-bulk',
      'udp',
      'ws',
      'routes',
      'workers',
      'chainfire',
      'https',
      'h2',
    ])
      assert.match(list.stdout, new RegExp(`^${name} +[^(]`, 'm'), name);
    // The stubs left (if any) say what they need, and running one exits 3 with that.
    const stubs = [...list.stdout.matchAll(/^(\S+) +\(stub: (needs the .*)\)$/gm)];
    if (stubs.length) {
      const stub = node('bench/run.mjs', '--scenario', stubs[0]![1]!);
      assert.equal(stub.status, 3);
      assert.ok(stub.stderr.includes(stubs[0]![2]!), stub.stderr);
    }
    const bad = node('bench/run.mjs', '--scenario', 'nope');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /unknown scenario "nope" \(known: http-small, /);
  });
});

test('flame graph: a real --cpu-prof profile becomes an SVG whose boxes are its stacks, widths their shares', () => {
  const dir = tempDir();
  // A process that spends nearly all its busy time in one named function, called from another.
  const prog = join(dir, 'prog.mjs');
  writeFileSync(
    prog,
    `function spinInner(n) { let s = 0; for (let i = 0; i < n; i++) s += Math.sqrt(i); return s; }
function spinOuter() { const end = Date.now() + 400; let s = 0; while (Date.now() < end) s += spinInner(1e5); return s; }
spinOuter();
`,
  );
  const r = node('--cpu-prof', `--cpu-prof-dir=${dir}`, prog);
  assert.equal(r.status, 0, r.stderr);
  const prof = spawnSync('sh', ['-c', `ls ${dir}/*.cpuprofile`], { encoding: 'utf8' }).stdout.trim();
  const out = join(dir, 'fg.svg');
  const g = node('bench/lib/flamegraph.mjs', prof, out);
  assert.equal(g.status, 0, g.stderr);
  const text = readFileSync(out, 'utf8');
  parseXml(text); // well-formed
  const boxes = [
    ...text.matchAll(/<g><title>([^<]*)<\/title><rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)"/g),
  ].map((m) => ({ title: m[1]!, x: Number(m[2]), y: Number(m[3]), w: Number(m[4]) }));
  const all = boxes.find((b) => b.title.startsWith('all'))!;
  const inner = boxes.find((b) => b.title.startsWith('spinInner'))!;
  const outer = boxes.find((b) => b.title.startsWith('spinOuter'))!;
  assert.ok(all && inner && outer, boxes.map((b) => b.title).join('; '));
  assert.ok(all.w > 1190, 'the root spans the width');
  assert.ok(outer.w > 0.7 * all.w, `spinOuter holds most busy time (${outer.w} of ${all.w})`);
  assert.ok(inner.w <= outer.w + 0.01 && inner.w > 0.3 * all.w, 'spinInner is under it, narrower');
  assert.ok(inner.y < outer.y, 'a callee sits above its caller');
  assert.ok(inner.x >= outer.x && inner.x + inner.w <= outer.x + outer.w + 0.6, 'inside its caller');
  assert.match(inner.title, /prog\.mjs:1 \(\d+\.\d\d%\)$/);
});
