// Medians, ratios and the Markdown report.

export function median(xs) {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

const pick = (runs, f) =>
  runs.map((r) => {
    try {
      return f(r);
    } catch {
      return undefined;
    }
  });

/** Medians over the successful rounds of one target. */
export function summarize(runs) {
  const ok = runs.filter((r) => r.max && !r.error);
  const fx = runs.filter((r) => r.fixed);
  const med = (list, f) => median(pick(list, f));
  const rpsAll = pick(ok, (r) => r.max.rps).filter(Number.isFinite);
  const cpuAll = pick(ok, (r) => r.max.cpuUsPerReq).filter(Number.isFinite);
  return {
    rounds: ok.length,
    max: ok.length
      ? {
          rps: med(ok, (r) => r.max.rps),
          rpsMin: Math.min(...rpsAll),
          rpsMax: Math.max(...rpsAll),
          p50Ms: med(ok, (r) => r.max.latencyMs.p50),
          p99Ms: med(ok, (r) => r.max.latencyMs.p99),
          meanMs: med(ok, (r) => r.max.latencyMs.mean),
          cpuUsPerReq: med(ok, (r) => r.max.cpuUsPerReq),
          cpuMin: cpuAll.length ? Math.min(...cpuAll) : null,
          cpuMax: cpuAll.length ? Math.max(...cpuAll) : null,
          proxyCpuUtil: med(ok, (r) => r.max.proxyCpuUtil),
          proxyCoreUsPerReq: med(ok, (r) => r.max.proxyCoreUsPerReq), // JSON only: cross-check
          backendCpuUsPerReq: med(ok, (r) => r.max.backendCpuUsPerReq),
          errors: ok.reduce((s, r) => s + (r.max.errors ?? 0) + (r.max.non2xx ?? 0), 0),
          foreignCpu: med(ok, (r) => r.max.foreignCpu),
          proxyCoreForeign: med(ok, (r) => r.max.proxyCoreForeign),
        }
      : null,
    fixed: fx.length
      ? {
          rate: med(fx, (r) => r.fixed.rate),
          achievedRate: med(fx, (r) => r.fixed.achievedRate),
          p50Us: med(fx, (r) => r.fixed.latencyUs.p50),
          p90Us: med(fx, (r) => r.fixed.latencyUs.p90),
          p99Us: med(fx, (r) => r.fixed.latencyUs.p99),
          p999Us: med(fx, (r) => r.fixed.latencyUs.p999),
          cpuUsPerReq: med(fx, (r) => r.fixed.cpuUsPerReq),
          proxyCoreUsPerReq: med(fx, (r) => r.fixed.proxyCoreUsPerReq),
          backendCpuUsPerReq: med(fx, (r) => r.fixed.backendCpuUsPerReq),
          generatorLagP99Ms: med(fx, (r) => r.fixed.generatorTickLagMs?.p99),
          foreignCpu: med(fx, (r) => r.fixed.foreignCpu),
          errors: fx.reduce(
            (s, r) => s + (r.fixed.errors ?? 0) + (r.fixed.non2xx ?? 0) + (r.fixed.incomplete ?? 0),
            0,
          ),
        }
      : null,
    peakRssMiB: median(pick(runs, (r) => r.peakRssKb / 1024)),
    peakRssMaxMiB: Math.max(0, ...pick(runs, (r) => r.peakRssKb / 1024).filter(Number.isFinite)) || null,
  };
}

/**
 * Ratios from medians: req/s vs direct; proxy CPU µs/req vs the scenario's reference (`ref`:
 * undici for L7, the node:net pipe for L4; key cpuVsUndici whatever the reference) and vs HAProxy.
 */
export function ratios(summaries, ref = 'undici') {
  const get = (n) => summaries[n]?.max;
  const direct = get('direct');
  const undici = get(ref);
  const haproxy = get('haproxy') ?? get('haproxy-tcp');
  const out = {};
  for (const [name, s] of Object.entries(summaries)) {
    if (!s?.max) continue;
    const r = {};
    if (direct?.rps) r.rpsVsDirect = s.max.rps / direct.rps;
    if (name !== 'direct') {
      if (undici?.cpuUsPerReq) r.cpuVsUndici = s.max.cpuUsPerReq / undici.cpuUsPerReq;
      if (haproxy?.cpuUsPerReq) r.cpuVsHaproxy = s.max.cpuUsPerReq / haproxy.cpuUsPerReq;
      const fu = summaries[ref]?.fixed?.cpuUsPerReq;
      if (fu && s.fixed?.cpuUsPerReq) r.fixedCpuVsUndici = s.fixed.cpuUsPerReq / fu;
      const base = summaries['fiberlb-base']?.max;
      if (name === 'fiberlb' && base?.cpuUsPerReq) r.cpuVsBaseline = s.max.cpuUsPerReq / base.cpuUsPerReq;
      const fd = summaries.direct?.fixed;
      if (fd?.p99Us && s.fixed?.p99Us) r.fixedP99AddedUs = s.fixed.p99Us - fd.p99Us;
      if (fd?.p50Us && s.fixed?.p50Us) r.fixedP50AddedUs = s.fixed.p50Us - fd.p50Us;
      if (fd?.p999Us && s.fixed?.p999Us) r.fixedP999AddedUs = s.fixed.p999Us - fd.p999Us;
    }
    out[name] = r;
  }
  return out;
}

const f0 = (x) => (x == null ? '–' : Math.round(x).toLocaleString('en-US'));
const f1 = (x) => (x == null ? '–' : x.toFixed(1));
const f2 = (x) => (x == null ? '–' : x.toFixed(2));
const fx = (x) => (x == null ? '–' : `${x.toFixed(2)}×`);
const pct = (x) => (x == null ? '–' : `${Math.round(x * 100)}%`);

export function markdown(result) {
  const { meta, targets, ratios: rat } = result;
  const ref = meta.ratioTo ?? 'undici';
  const refLabel = targets[ref]?.label ?? ref;
  const L = [];
  L.push(`# ${meta.title ?? 'HTTP small-response benchmark'}`);
  L.push('');
  L.push(
    `${meta.quick ? '**--quick run: proves the scenario works; not a result.** ' : ''}${meta.complete ? '' : '**Partial results (run interrupted or still running).** '}Generated by \`node bench/run.mjs --scenario ${meta.scenario ?? 'http-small'}\` — see bench/README.md for the method.`,
  );
  L.push('');
  L.push(`- Date: ${meta.date}`);
  L.push(`- Node: ${meta.node} · CPU: ${meta.cpuModel} × ${meta.cores} cores · kernel ${meta.kernel}`);
  if (meta.loadAverage)
    L.push(
      `- Load average (1/5/15 min) at the start: ${meta.loadAverage.map((x) => x.toFixed(2)).join(' / ')}${meta.loadAverageEnd ? `, at the end: ${meta.loadAverageEnd.map((x) => x.toFixed(2)).join(' / ')}` : ''}`,
    );
  L.push(
    `- Request: \`${meta.request?.method ?? 'GET'} /\`${meta.request?.bodyBytes ? ` with a ${f0(meta.request.bodyBytes)}-byte body` : ''} → 200, ${f0(meta.bodyBytes)}-byte body, HTTP/1.1 keep-alive`,
  );
  L.push(`- Backend: ${meta.backend}`);
  L.push(
    `- Pinning: proxy (all its processes) on CPU ${meta.proxyCpu}; backend + load generator on CPU ${meta.loadCpu}${meta.pinned ? '' : ' — **taskset missing: NOT pinned**'}`,
  );
  L.push(
    `- Per target and round: fresh start, ${meta.warmupS} s warm-up, ${meta.durationS} s max-throughput run (autocannon, ${meta.connections} connections)` +
      (meta.fixedRate
        ? `, then ${meta.durationS} s at a fixed ${f0(meta.fixedRate)} req/s (open loop, ${meta.connections} connections; rate = ${meta.fixedRateBasis})`
        : ', no fixed-rate run'),
  );
  L.push(
    `- Rounds: ${meta.rounds} (targets interleaved, order rotated each round); all figures are **medians** over rounds`,
  );
  L.push('');
  L.push('## Max throughput (closed loop)');
  L.push('');
  L.push(
    '| target | version | req/s | range (min–max) | vs direct | p50 ms | p99 ms | proxy CPU µs/req | µs/req range | proxy core busy | backend µs/req | peak RSS MiB | errors | other load |',
  );
  L.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const [name, t] of Object.entries(targets)) {
    const s = t.summary;
    if (!s?.max) {
      L.push(
        `| ${t.label} | ${t.version ?? ''} | ${t.status === 'skipped' ? 'skipped' : 'failed'} | | | | | | | | | | | |`,
      );
      continue;
    }
    const m = s.max;
    L.push(
      `| ${t.label} | ${t.version ?? ''} | ${f0(m.rps)} | ${f0(m.rpsMin)}–${f0(m.rpsMax)} | ${pct(rat[name]?.rpsVsDirect)} | ${m.p50Ms ?? '–'} | ${m.p99Ms ?? '–'} | ${name === 'direct' ? '–' : f1(m.cpuUsPerReq)} | ${name === 'direct' ? '–' : `${f1(m.cpuMin)}–${f1(m.cpuMax)}`} | ${name === 'direct' ? '–' : pct(m.proxyCpuUtil)} | ${f1(m.backendCpuUsPerReq)} | ${name === 'direct' ? '–' : f1(s.peakRssMiB)} | ${m.errors} | ${pct(m.foreignCpu)} |`,
    );
  }
  L.push('');
  L.push(
    "- **proxy CPU µs/req**: utime + stime of the proxy's process tree ÷ requests completed (the figure the ratios use).",
  );
  L.push(
    "- **proxy core busy**: the proxy tree's CPU ÷ wall time. Well below 100% means the load core (client + backend) was the limit, not the proxy — then compare µs/req, not req/s.",
  );
  L.push(
    '- **vs direct** can exceed 100%: the load core (client + backend) is the limit of the direct run, and behind a proxy the backend uses less CPU per request (backend µs/req column), which leaves the load core more room.',
  );
  L.push(
    '- autocannon reports latency in whole milliseconds; at saturation it is mostly queueing (≈ connections ÷ req/s). Use the fixed-rate table for latency.',
  );
  L.push(
    '- **other load**: CPU used by processes outside the benchmark during the run, in % of one core (median over rounds); above ~10% the figures are disturbed.',
  );
  L.push('');
  if (meta.fixedRate) {
    L.push(`## Latency at a fixed ${f0(meta.fixedRate)} req/s (open loop, coordinated omission corrected)`);
    L.push('');
    L.push(
      '| target | achieved req/s | p50 µs | p90 µs | p99 µs | p99.9 µs | added vs direct µs (p50 / p99 / p99.9) | proxy CPU µs/req | errors | other load |',
    );
    L.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const [name, t] of Object.entries(targets)) {
      const x = t.summary?.fixed;
      if (!x) continue;
      L.push(
        `| ${t.label} | ${f0(x.achievedRate)} | ${f0(x.p50Us)} | ${f0(x.p90Us)} | ${f0(x.p99Us)} | ${f0(x.p999Us)} | ${name === 'direct' ? '–' : `${f0(rat[name]?.fixedP50AddedUs)} / ${f0(rat[name]?.fixedP99AddedUs)} / ${f0(rat[name]?.fixedP999AddedUs)}`} | ${name === 'direct' ? '–' : f1(x.cpuUsPerReq)} | ${x.errors} | ${pct(x.foreignCpu)} |`,
      );
    }
    L.push('');
    L.push(
      `Requests are issued in 1 ms batches (${f0(meta.fixedRate / 1000)} per batch), so part of every figure is batch queueing that is the same for all targets; "added vs direct" isolates the proxy.`,
    );
    L.push('');
  }
  L.push('## Ratios (from the medians)');
  L.push('');
  L.push(
    `| target | req/s vs direct | CPU µs/req vs ${refLabel} | CPU µs/req vs HAProxy | fixed-rate CPU µs/req vs ${refLabel} |`,
  );
  L.push('|---|---:|---:|---:|---:|');
  for (const [name, t] of Object.entries(targets)) {
    if (name === 'direct' || !t.summary?.max) continue;
    const r = rat[name] ?? {};
    L.push(
      `| ${t.label} | ${pct(r.rpsVsDirect)} | ${fx(r.cpuVsUndici)} | ${fx(r.cpuVsHaproxy)} | ${fx(r.fixedCpuVsUndici)} |`,
    );
  }
  L.push('');
  const vsBase = rat.fiberlb?.cpuVsBaseline;
  if (vsBase != null) {
    L.push(
      `**Against the baseline build** (${targets['fiberlb-base']?.version ?? '?'}, same run): FiberLB CPU µs/req ${f2(vsBase)}× → ${Math.abs(vsBase - 1) <= 0.05 ? '**within 5%**' : vsBase < 1 ? '**faster by more than 5%**' : '**slower by more than 5%**'}.`,
    );
    L.push('');
  }
  const fib = rat.fiberlb?.cpuVsUndici;
  if (fib != null && ref === 'undici') {
    L.push(
      `**FiberLB budget** (CPU µs/req ≤ 1.1× the undici minimal proxy): ${f2(fib)}× → ${fib <= 1.1 ? '**within budget**' : '**over budget**'}.`,
    );
    L.push('');
  }
  const notes = [];
  for (const [name, t] of Object.entries(targets)) {
    if (t.status === 'skipped') notes.push(`${name}: skipped — ${t.reason}`);
    if (t.status === 'failed') notes.push(`${name}: failed to start — ${firstLines(t.reason)}`);
    for (const r of t.runs ?? [])
      if (r.error && t.status !== 'failed') notes.push(`${name} round ${r.round}: ${firstLines(r.error)}`);
    const m = t.summary?.max;
    if (name !== 'direct' && m?.proxyCpuUtil != null && m.proxyCpuUtil < 0.9)
      notes.push(
        `${name}: its core was only ${pct(m.proxyCpuUtil)} busy at max throughput, so its req/s is capped by the load/backend core, not by the proxy; compare CPU µs/req instead.`,
      );
    if (m?.foreignCpu > 0.1)
      notes.push(
        `${name}: other processes used ${pct(m.foreignCpu)} of a core during its max runs (median) — treat its figures with care.`,
      );
    const lag = t.summary?.fixed?.generatorLagP99Ms;
    if (lag != null && lag > 5)
      notes.push(
        `${name}: the fixed-rate generator fell behind (tick lag p99 ${f1(lag)} ms); its latency figures are pessimistic.`,
      );
  }
  for (const n of meta.notes ?? []) notes.push(n);
  if (notes.length) {
    L.push('## Notes');
    L.push('');
    for (const n of notes) L.push(`- ${n}`);
    L.push('');
  }
  return `${L.join('\n')}\n`;
}

function firstLines(s, n = 6) {
  return String(s).split('\n').slice(0, n).join(' ⏎ ').replace(/\|/g, '\\|');
}

/** A custom scenario's report opens with these: title, --quick note, machine, load average. */
export function scenarioHeader(meta) {
  const L = [`# ${meta.title}`, ''];
  if (meta.quick) L.push('**--quick run: proves the scenario works; not a result.**', '');
  L.push(
    `- Date: ${meta.date} · Node ${meta.node} · ${meta.cpuModel} × ${meta.cores} cores · kernel ${meta.kernel}`,
  );
  L.push(
    `- Load average (1/5/15 min) at the start: ${meta.loadAverage.map((x) => x.toFixed(2)).join(' / ')}`,
  );
  return L;
}

/**
 * Over a target's successful runs (each with a `rate`): rounds, the rate's median, min and max,
 * and the median of each of `keys`.
 */
export function rateSummary(runs, keys = []) {
  const ok = runs.filter((x) => !x.error);
  const rates = ok.map((x) => x.rate);
  const out = {
    rounds: ok.length,
    rate: median(rates),
    rateMin: rates.length ? Math.min(...rates) : null,
    rateMax: rates.length ? Math.max(...rates) : null,
  };
  for (const k of keys) out[k] = median(ok.map((x) => x[k]));
  return out;
}

/** The front-page chart of a scenario whose summaries carry rateSummary's figures. */
export function rateHeadline(metric, targets) {
  return {
    metric,
    bars: Object.values(targets)
      .filter((t) => t.summary?.rate != null)
      .map((t) => ({
        label: t.label,
        value: t.summary.rate,
        min: t.summary.rateMin,
        max: t.summary.rateMax,
      })),
  };
}

/**
 * The results table of an echo scenario (udp, ws), one row a target: rate, its range, vs
 * direct, proxy CPU per unit (`cpuKey`) against target `ref`'s, that CPU, core busy, then the
 * `extra` columns ([heading, (summary) => cell]). `head` names the rate, vs-ref and CPU columns.
 */
export function echoTable(targets, { head, cpuKey, ref, extra = [] }) {
  const columns = [
    'target',
    'version',
    ...head.slice(0, 1),
    'range',
    'vs direct',
    ...head.slice(1),
    'core busy',
  ];
  columns.push(...extra.map(([h]) => h));
  const L = [`| ${columns.join(' | ')} |`, `|---|---|${'---:|'.repeat(columns.length - 2)}`];
  const d = targets.direct?.summary;
  const base = targets[ref]?.summary;
  const r = (a, b) => (a && b ? `${(a / b).toFixed(2)}×` : '–');
  for (const t of Object.values(targets)) {
    const s = t.summary;
    const row = `| ${t.label} | ${t.version ?? ''} |`;
    if (!s) {
      const why = t.status === 'skipped' ? `skipped: ${t.reason}` : 'failed';
      L.push(`${row} ${why} |${' |'.repeat(columns.length - 3)}`);
      continue;
    }
    const cells = [
      f0(s.rate),
      `${f0(s.rateMin)}–${f0(s.rateMax)}`,
      r(s.rate, d?.rate),
      r(s[cpuKey], base?.[cpuKey]),
      f1(s[cpuKey]),
      pct(s.proxyCpuUtil),
      ...extra.map(([, cell]) => cell(s)),
    ];
    L.push(`${row} ${cells.join(' | ')} |`);
  }
  return L;
}
