#!/usr/bin/env node
// FiberLB benchmarks. See bench/README.md.
//
//   node bench/run.mjs [--scenario NAME] [--quick] [--list] [--rounds N] [--duration S] [--warmup S] [--connections C]
//                      [--only a,b] [--skip a,b] [--rate R | --rate-fraction F]
//                      [--backend auto|nginx|node] [--no-fixed] [--out DIR]
//                      [--quiet-wait S] [--quiet-threshold F] [--baseline REV]
//
// Scenario http-small (default): direct, fiberlb, fiberlb-base (with --baseline), undici,
// http-proxy-3, haproxy, nginx. Writes bench/results/<scenario>.json, .md and <date>.md.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { buildBaseline } from './lib/baseline.mjs';
import { writeDaily } from './lib/daily.mjs';
import { autocannon, fixedRate } from './lib/load.mjs';
import {
  cpuDeltaUs,
  cpuModel,
  cpuTimes,
  cpuTimesDelta,
  installCleanupHandlers,
  pinSelf,
  rememberTree,
  rssSampler,
  setLogDir,
  stop,
  tasksetAvailable,
  treeCpu,
  treeRss,
} from './lib/proc.mjs';
import { markdown, ratios, summarize } from './lib/report.mjs';
import { eachRound } from './lib/rounds.mjs';
import { BODY, setBody, setHttpCheck, startBackend, TARGETS } from './lib/targets.mjs';
import { SCENARIOS, scenario } from './scenarios.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const env = process.env;
const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: env.BENCH_ROUNDS ?? '5' },
    duration: { type: 'string', default: env.BENCH_DURATION ?? '10' },
    warmup: { type: 'string', default: env.BENCH_WARMUP ?? '3' },
    connections: { type: 'string', default: env.BENCH_CONNECTIONS ?? '50' },
    only: { type: 'string', default: env.BENCH_ONLY },
    skip: { type: 'string', default: env.BENCH_SKIP },
    rate: { type: 'string', default: env.BENCH_RATE },
    'rate-fraction': { type: 'string', default: env.BENCH_RATE_FRACTION ?? '0.5' },
    backend: { type: 'string', default: env.BENCH_BACKEND ?? 'auto' },
    'no-fixed': { type: 'boolean', default: false },
    out: { type: 'string', default: env.BENCH_OUT },
    name: { type: 'string' },
    scenario: { type: 'string', default: env.BENCH_SCENARIO ?? 'http-small' },
    quick: { type: 'boolean', default: false },
    list: { type: 'boolean', default: false },
    'proxy-cpu': { type: 'string', default: env.BENCH_PROXY_CPU ?? '0' },
    'load-cpu': { type: 'string', default: env.BENCH_LOAD_CPU ?? '1' },
    'quiet-wait': { type: 'string', default: env.BENCH_QUIET_WAIT ?? '60' },
    'quiet-threshold': { type: 'string', default: env.BENCH_QUIET_THRESHOLD ?? '0.15' },
    baseline: { type: 'string', default: env.BENCH_BASELINE },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  const header = readFileSync(fileURLToPath(import.meta.url), 'utf8')
    .split('\n')
    .slice(1, 10);
  process.stdout.write(
    `${header.join('\n').replace(/^\/\/ ?/gm, '')}\nSee bench/README.md for every option.\n`,
  );
  process.exit(0);
}

if (opt.list) {
  for (const s of SCENARIOS)
    process.stdout.write(`${s.name.padEnd(13)} ${s.kind === 'stub' ? `(stub: ${s.needs})` : s.title}\n`);
  process.exit(0);
}
const sc = scenario(opt.scenario);
if (!sc) {
  process.stderr.write(
    `unknown scenario "${opt.scenario}" (known: ${SCENARIOS.map((s) => s.name).join(', ')})\n`,
  );
  process.exit(2);
}
if (sc.kind === 'stub') {
  process.stderr.write(`scenario ${sc.name} (${sc.title}): ${sc.needs}\n`);
  process.exit(3);
}
if (sc.rate && !opt.rate) opt.rate = String(sc.rate); // before --quick's default
// --quick: proves a scenario runs end to end (1 short round, no waiting for a quiet machine, a
// fixed rate instead of the calibration); its numbers go to a temp dir, not bench/results.
if (opt.quick) {
  opt.rounds = '1';
  opt.duration = '2';
  opt.warmup = '1';
  opt['quiet-wait'] = '0';
  opt.rate ??= '2000';
}
opt.name ??= sc.name;
opt.out ??= opt.quick ? path.join(os.tmpdir(), 'fiberlb-bench-quick') : path.join(root, 'bench/results');
if (sc.backend && opt.backend === 'auto') opt.backend = sc.backend;
if (sc.noFixed) opt['no-fixed'] = true;
setBody(sc.bodyBytes);
if (sc.kind === 'custom') setHttpCheck(sc.check ?? 'tcp');
const request = sc.uploadBytes ? { method: 'POST', bodyBytes: sc.uploadBytes } : undefined;

const rounds = Math.max(1, Number(opt.rounds));
const durationS = Math.max(1, Number(opt.duration));
const warmupS = Math.max(0, Number(opt.warmup));
const connections = Math.max(1, Number(sc.connections ?? opt.connections));
const proxyCpu = opt['proxy-cpu'];
const quietWaitS = Math.max(0, Number(opt['quiet-wait']));
const quietThreshold = Number(opt['quiet-threshold']);
const loadCpu = opt['load-cpu'];
const scenarioTargets = TARGETS.filter((t) => (sc.targets ?? []).includes(t.name));
const names = scenarioTargets.map((t) => t.name);
const list = (s) =>
  s
    ? s
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean)
    : undefined;
for (const n of [...(list(opt.only) ?? []), ...(list(opt.skip) ?? [])]) {
  if (!names.includes(n)) {
    process.stderr.write(`unknown target "${n}" for ${sc.name} (known: ${names.join(', ')})\n`);
    process.exit(2);
  }
}
const selected = scenarioTargets.filter(
  (t) => (!list(opt.only) || list(opt.only).includes(t.name)) && !list(opt.skip)?.includes(t.name),
);

installCleanupHandlers();
const log = (...a) => process.stderr.write(`${a.join(' ')}\n`);
const tmp = mkdtempSync(path.join(os.tmpdir(), 'fiberlb-bench-'));
setLogDir(tmp);
if (!env.BENCH_KEEP_TMP) process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
else process.on('exit', () => process.stderr.write(`kept ${tmp} (configs, logs)\n`));
if (opt.baseline) {
  const base = buildBaseline(root, opt.baseline, tmp, log);
  env.FIBERLB_BASE_CLI = base.cli;
  env.FIBERLB_BASE_REV = base.rev;
}

// ---- run ------------------------------------------------------------------------------------

const state = {}; // name → { label, version, status, reason, runs: [] }
const meta = {
  scenario: sc.name,
  title: sc.title,
  ratioTo: sc.ratioTo,
  quick: opt.quick,
  loadAverage: os.loadavg(),
  date: new Date().toISOString(),
  node: process.version,
  cpuModel: cpuModel(),
  cores: os.cpus().length,
  kernel: os.release(),
  bodyBytes: Buffer.byteLength(BODY),
  request,
  proxyCpu,
  loadCpu,
  pinned: tasksetAvailable(),
  connections,
  durationS,
  warmupS,
  rounds,
  backend: undefined,
  fixedRate: undefined,
  fixedRateBasis: undefined,
  notes: [],
  complete: false,
};

function writeResults() {
  mkdirSync(opt.out, { recursive: true });
  const summaries = Object.fromEntries(Object.entries(state).map(([n, s]) => [n, s.summary]));
  const result = custom
    ? { meta, targets: state, custom: true, headline: custom.headline?.({ meta, targets: state }) }
    : { meta, targets: state, ratios: ratios(summaries, sc.ratioTo) };
  writeFileSync(path.join(opt.out, `${opt.name}.json`), `${JSON.stringify(result, null, 2)}\n`);
  writeFileSync(path.join(opt.out, `${opt.name}.md`), (custom?.markdown ?? markdown)(result));
  writeDaily(opt.out, meta.date.slice(0, 10));
}
const custom = sc.kind === 'custom' ? await import(sc.module) : undefined;

let backend;
const ctx = (backendPort) => ({ cpu: proxyCpu, root, tmp, backendPort: backendPort ?? backend.port });

/** Start target t (in front of backendPort, default: the HTTP backend); on failure mark it failed (all later rounds skip it). */
async function startTarget(t, backendPort) {
  try {
    return await t.start({ ...ctx(backendPort), cpu: t.cpu ?? proxyCpu });
  } catch (e) {
    const s = state[t.name];
    s.status = 'failed';
    s.reason = e.message;
    log(`${t.name}: failed to start: ${e.message}`);
    return undefined;
  }
}

/**
 * Measure what the rest of the machine does during a phase: busy CPU of all cores (/proc/stat)
 * minus our own processes (proxy tree, backend tree, load generator, this orchestrator), as a
 * fraction of one core. (Here a process's stime includes the softirq ticks taken in its
 * context — loopback TCP work — so "busy" including softirq is the right total.) Also returns
 * the proxy core's busy and softirq µs, to cross-check the process-tree CPU per request.
 */
function foreignMeter() {
  const s0 = cpuTimes();
  const o0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  return (oursUs, proxyUs = 0) => {
    const d = cpuTimesDelta(s0, cpuTimes());
    const o = process.cpuUsage(o0);
    const wallUs = Number(process.hrtime.bigint() - t0) / 1000;
    const core = d[`cpu${proxyCpu}`];
    return {
      foreignCpu: Math.max(0, (d.all.busy - oursUs - o.user - o.system) / wallUs),
      proxyCoreForeign: core === undefined ? undefined : Math.max(0, (core.busy - proxyUs) / wallUs),
      proxyCoreBusyUs: core?.busy,
      proxyCoreSoftirqUs: core?.softirq,
      softirqAllUs: d.all.softirq,
    };
  };
}

/** Wait (≤ --quiet-wait s) until processes outside the bench use < --quiet-threshold of a core. */
async function waitQuiet() {
  const t0 = Date.now();
  let said = false;
  for (;;) {
    const b0 = treeCpu(backend.child.pid);
    const meter = foreignMeter();
    await sleep(1000);
    const { foreignCpu } = meter(cpuDeltaUs(b0, treeCpu(backend.child.pid)));
    const waitedS = (Date.now() - t0) / 1000;
    if (foreignCpu < quietThreshold) return { waitedS: Math.round(waitedS), foreignBefore: foreignCpu };
    if (waitedS >= quietWaitS) {
      log(
        `  machine still busy (${Math.round(foreignCpu * 100)}% of a core used outside the bench) — measuring anyway`,
      );
      return { waitedS: Math.round(waitedS), foreignBefore: foreignCpu, gaveUp: true };
    }
    if (!said)
      log(
        `  waiting for other load to settle (${Math.round(foreignCpu * 100)}% of a core used outside the bench)…`,
      );
    said = true;
  }
}

const alive = (child) => !child || (child.exitCode === null && child.signalCode === null);

/** One measurement slot: fresh start → warm-up → max run → fixed-rate run → stop. */
async function measure(t, round, rate) {
  const run = { round };
  if (quietWaitS > 0) run.quiet = await waitQuiet();
  const started = await startTarget(t);
  if (!started) return undefined;
  const { port, child } = started;
  const sampler = child ? rssSampler(child.pid, 100) : undefined;
  const beRoot = backend.child.pid;
  try {
    if (warmupS > 0) await autocannon({ root, cpu: loadCpu, port, connections, durationS: warmupS, request });
    if (child) rememberTree(child); // FiberLB may have forked more processes by now
    const c0 = child ? treeCpu(child.pid) : undefined;
    const b0 = treeCpu(beRoot);
    const meter = foreignMeter();
    const ac = await autocannon({ root, cpu: loadCpu, port, connections, durationS, request });
    const c1 = child ? treeCpu(child.pid) : undefined;
    const b1 = treeCpu(beRoot);
    if (!alive(child))
      throw new Error(`exited during the max-throughput run (${child.exitCode ?? child.signalCode})`);
    const cpuUs = child ? cpuDeltaUs(c0, c1) : undefined;
    const backendUs = cpuDeltaUs(b0, b1);
    const other = meter((cpuUs ?? 0) + backendUs + (ac.selfCpuUs ?? 0), cpuUs ?? 0);
    run.max = {
      ...ac,
      ...other,
      cpuUs,
      cpuUsPerReq: child && ac.total ? cpuUs / ac.total : undefined,
      proxyCpuUtil: child ? cpuUs / (ac.durationS * 1e6) : undefined,
      proxyCoreUsPerReq:
        child && ac.total && other.proxyCoreBusyUs !== undefined
          ? other.proxyCoreBusyUs / ac.total
          : undefined,
      backendCpuUsPerReq: ac.total ? backendUs / ac.total : undefined,
    };
    if (rate) {
      const f0 = child ? treeCpu(child.pid) : undefined;
      const g0 = treeCpu(beRoot);
      const fmeter = foreignMeter();
      // The histogram is for pooling slices (bench/ab.mjs); a scenario keeps its percentiles.
      const { histogram: _pooledOnly, ...fr } = await fixedRate({
        root,
        cpu: loadCpu,
        port,
        connections,
        durationS,
        rate,
      });
      const f1 = child ? treeCpu(child.pid) : undefined;
      const g1 = treeCpu(beRoot);
      if (!alive(child))
        throw new Error(`exited during the fixed-rate run (${child.exitCode ?? child.signalCode})`);
      const pUs = child ? cpuDeltaUs(f0, f1) : 0;
      const bUs = cpuDeltaUs(g0, g1);
      const fother = fmeter(pUs + bUs + (fr.selfCpuUs ?? 0), pUs);
      run.fixed = {
        ...fr,
        ...fother,
        cpuUsPerReq: child && fr.completedTotal ? pUs / fr.completedTotal : undefined,
        proxyCoreUsPerReq:
          child && fr.completedTotal && fother.proxyCoreBusyUs !== undefined
            ? fother.proxyCoreBusyUs / fr.completedTotal
            : undefined,
        backendCpuUsPerReq: fr.completedTotal ? bUs / fr.completedTotal : undefined,
      };
    }
    if (child) run.peakHwmKb = treeRss(child.pid).hwmKb;
  } catch (e) {
    run.error = e.message;
    log(`${t.name} round ${round}: ${e.message}`);
  } finally {
    if (sampler) run.peakRssKb = sampler.stop();
    if (child) await stop(child);
  }
  return run;
}

function fmtRun(r) {
  if (r.error) return `error: ${r.error.split('\n')[0]}`;
  const m = r.max;
  const parts = [`${Math.round(m.rps)} req/s`, `p99 ${m.latencyMs.p99} ms`];
  if (m.cpuUsPerReq != null)
    parts.push(`${m.cpuUsPerReq.toFixed(1)} µs/req (core ${Math.round(m.proxyCpuUtil * 100)}%)`);
  if (m.errors || m.non2xx) parts.push(`errors ${m.errors} non2xx ${m.non2xx}`);
  if (r.fixed)
    parts.push(
      `@${r.fixed.rate}/s p50 ${Math.round(r.fixed.latencyUs.p50)} µs p99 ${Math.round(r.fixed.latencyUs.p99)} µs`,
    );
  if (r.peakRssKb) parts.push(`RSS ${(r.peakRssKb / 1024).toFixed(0)} MiB`);
  parts.push(`other load ${Math.round((m.foreignCpu ?? 0) * 100)}%`);
  return parts.join(', ');
}

async function main() {
  if (meta.pinned && !pinSelf(loadCpu)) log(`warning: could not pin the orchestrator to CPU ${loadCpu}`);
  if (!meta.pinned)
    log('warning: taskset not found — processes are NOT pinned to cores; results are noisier');
  if (os.cpus().length < 2) log('warning: fewer than 2 CPUs — proxy and load generator share a core');
  for (const t of scenarioTargets) {
    if (!selected.includes(t)) continue;
    const reason = t.unavailable();
    state[t.name] = {
      label: t.label,
      version: reason ? undefined : t.version({ root }),
      status: reason ? 'skipped' : 'ok',
      reason,
      runs: [],
    };
    if (reason) log(`${t.name}: SKIPPED — ${reason}`);
  }

  if (custom) {
    await custom.run({
      root,
      tmp,
      proxyCpu,
      loadCpu,
      rounds,
      durationS,
      quick: opt.quick,
      meta,
      state,
      log,
      startTarget,
      writeResults,
      runnable: () => selected.filter((t) => state[t.name].status === 'ok'),
    });
    meta.complete = true;
    meta.loadAverageEnd = os.loadavg();
    writeResults();
    log(`\nwrote ${path.join(opt.out, `${opt.name}.json`)} and ${opt.name}.md`);
    return;
  }
  backend = await startBackend(opt.backend, { cpu: loadCpu, root, tmp });
  meta.backend = `${backend.describe}, pinned to CPU ${loadCpu}`;
  log(`backend: ${meta.backend} on port ${backend.port}`);

  const runnable = () => selected.filter((t) => state[t.name].status === 'ok');

  // Fixed rate: explicit, or a fraction of the slowest proxy's max from a short calibration pass.
  let rate;
  if (!opt['no-fixed']) {
    if (opt.rate) {
      rate = Number(opt.rate);
      meta.fixedRateBasis = 'set with --rate';
    } else {
      const fraction = Number(opt['rate-fraction']);
      log(`calibrating the fixed rate (${fraction} × the slowest proxy's max, 3 s runs)…`);
      // A proxy's "max" = what its core can serve: 1e6 / (CPU µs per request). This is far less
      // sensitive to other load on the machine than its measured req/s (which is also capped by
      // the load core for the native proxies). Without proxies, the direct req/s is used.
      const cal = {};
      for (const t of runnable()) {
        if (quietWaitS > 0) await waitQuiet();
        const started = await startTarget(t);
        if (!started) continue;
        try {
          await autocannon({ root, cpu: loadCpu, port: started.port, connections, durationS: 2, request });
          const c0 = started.child ? treeCpu(started.child.pid) : undefined;
          const ac = await autocannon({
            root,
            cpu: loadCpu,
            port: started.port,
            connections,
            durationS: 3,
            request,
          });
          const usPerReq = started.child ? cpuDeltaUs(c0, treeCpu(started.child.pid)) / ac.total : undefined;
          cal[t.name] = { rps: ac.rps, capacity: usPerReq ? 1e6 / usPerReq : ac.rps };
          log(
            `  ${t.name}: ${Math.round(ac.rps)} req/s${usPerReq ? `, ${usPerReq.toFixed(1)} µs/req → ${Math.round(1e6 / usPerReq)} req/s per core` : ''}`,
          );
        } catch (e) {
          log(`  ${t.name}: calibration failed: ${e.message}`);
        } finally {
          if (started.child) await stop(started.child);
        }
      }
      const proxies = Object.entries(cal).filter(([n]) => n !== 'direct');
      const basis = proxies.length ? proxies : Object.entries(cal);
      if (basis.length) {
        const [slowName, slow] = basis.reduce((a, b) => (b[1].capacity < a[1].capacity ? b : a));
        rate = Math.max(500, Math.floor((slow.capacity * fraction) / 500) * 500);
        meta.fixedRateBasis = proxies.length
          ? `${Math.round(fraction * 100)}% of the slowest proxy's per-core capacity (${slowName}: 1e6 / ${(1e6 / slow.capacity).toFixed(1)} µs/req = ${Math.round(slow.capacity)} req/s in calibration), rounded down to 500`
          : `${Math.round(fraction * 100)}% of ${slowName}'s ${Math.round(slow.capacity)} req/s in calibration, rounded down to 500`;
        meta.calibration = cal;
      }
    }
    meta.fixedRate = rate;
    if (rate) log(`fixed rate: ${rate} req/s (${meta.fixedRateBasis})`);
  }

  await eachRound({ rounds, runnable, log, writeResults }, async (t, round) => {
    if (state[t.name].status !== 'ok') return;
    const run = await measure(t, round, rate);
    if (!run) return;
    state[t.name].runs.push(run);
    log(`  ${t.name.padEnd(12)} ${fmtRun(run)}`);
    state[t.name].summary = summarize(state[t.name].runs);
  });

  if (!alive(backend.child))
    meta.notes.push('the backend exited during the run — results after that point are invalid');
  await stop(backend.child);
  meta.complete = true;
  meta.loadAverageEnd = os.loadavg();
  writeResults();

  // Console summary.
  const summaries = Object.fromEntries(Object.entries(state).map(([n, s]) => [n, s.summary]));
  const rat = ratios(summaries, sc.ratioTo);
  log('');
  log(`medians over ${rounds} round(s):`);
  for (const [n, s] of Object.entries(state)) {
    if (s.status === 'skipped') {
      log(`  ${n.padEnd(12)} skipped: ${s.reason}`);
      continue;
    }
    if (s.status === 'failed') {
      log(`  ${n.padEnd(12)} failed to start: ${s.reason.split('\n').slice(0, 4).join(' | ')}`);
      continue;
    }
    const m = s.summary?.max;
    const f = s.summary?.fixed;
    if (!m) continue;
    const r = rat[n] ?? {};
    log(
      `  ${n.padEnd(12)} ${String(Math.round(m.rps)).padStart(6)} req/s${r.rpsVsDirect ? ` (${Math.round(r.rpsVsDirect * 100)}% of direct)` : ''}` +
        (n === 'direct'
          ? ''
          : `  ${m.cpuUsPerReq.toFixed(1)} µs/req (${[r.cpuVsUndici && `${r.cpuVsUndici.toFixed(2)}× ${sc.ratioTo ?? 'undici'}`, r.cpuVsHaproxy && `${r.cpuVsHaproxy.toFixed(2)}× haproxy`].filter(Boolean).join(', ')})`) +
        `  p99 ${m.p99Ms} ms` +
        (f ? `  @${f.rate}/s p50 ${Math.round(f.p50Us)} µs p99 ${Math.round(f.p99Us)} µs` : '') +
        (s.summary.peakRssMiB && n !== 'direct' ? `  RSS ${s.summary.peakRssMiB.toFixed(0)} MiB` : ''),
    );
  }
  log(`\nwrote ${path.join(opt.out, `${opt.name}.json`)} and ${opt.name}.md`);
}

main().catch(async (e) => {
  log(`benchmark failed: ${e.stack ?? e}`);
  try {
    writeResults();
  } catch {}
  process.exit(1);
});
