// Scenario `h2`: HTTP/2 downstream. Clients speak h2 over TLS 1.3 (ALPN h2) to the proxy, which
// forwards HTTP/1.1 keep-alive to the same backend. Targets (bench/lib/tls-targets.mjs):
// FiberLB's https listener (ALPN h2 + http/1.1), the minimal node:http2 + undici proxy
// (bench/peers/undici-h2.mjs, the reference for the ratios), HAProxy `alpn h2,http/1.1`, NGINX
// `listen … ssl http2`; `direct` is HTTP/1.1 to the backend (the load core's limit). Load: h2load
// (Debian nghttp2-client) or, without it, bench/lib/h2-gen.mjs — see bench/lib/h2-load.mjs. Per
// target and round (fresh start, order rotated): warm-up, then the measured run → req/s and
// proxy CPU µs/req.
// Env: BENCH_H2_CONNECTIONS (10), BENCH_H2_STREAMS (10 concurrent streams per connection),
// BENCH_H2_GEN (auto|h2load|node), BENCH_BACKEND.

import { h2Generator, h2Run } from './h2-load.mjs';
import { autocannon } from './load.mjs';
import { stop } from './proc.mjs';
import { startBackend } from './targets.mjs';
import { f0, f1, header, noDataRow, pct, phase, range, ratio, rotated, stat } from './tls-measure.mjs';
import { verifyH2 } from './tls-targets.mjs';

const REF = 'undici-h2';
const FIBERLB = 'fiberlb-h2';
const HAPROXY = 'haproxy-h2';
const env = process.env;

export async function run({
  root,
  tmp,
  proxyCpu,
  loadCpu,
  rounds,
  durationS,
  meta,
  state,
  log,
  startTarget,
  writeResults,
  runnable,
}) {
  const gen = h2Generator();
  const connections = Math.max(1, Number(env.BENCH_H2_CONNECTIONS ?? 10));
  const streams = Math.max(1, Number(env.BENCH_H2_STREAMS ?? 10));
  meta.ratioTo = REF;
  meta.h2 = { generator: gen.kind, generatorVersion: gen.describe, connections, streams };
  meta.negotiated = {};
  if (gen.unavailable) {
    for (const t of runnable()) Object.assign(state[t.name], { status: 'skipped', reason: gen.unavailable });
    log(`h2: every target SKIPPED — ${gen.unavailable}`);
    return;
  }
  log(`h2 load generator: ${gen.describe}, ${connections} connections × ${streams} streams`);
  const backend = await startBackend(env.BENCH_BACKEND ?? 'auto', { cpu: loadCpu, root, tmp });
  meta.backend = `${backend.describe}, pinned to CPU ${loadCpu}`;
  log(`backend: ${meta.backend} on port ${backend.port}`);
  // direct: HTTP/1.1 to the backend with as many requests in flight (h2load --h1, or autocannon).
  const load = (port, d, direct) =>
    direct && gen.kind === 'node'
      ? autocannon({ root, cpu: loadCpu, port, connections: connections * streams, durationS: d }).then(
          (r) => ({
            generator: 'autocannon',
            rps: r.rps,
            total: r.total,
            errors: r.errors + (r.timeouts ?? 0),
            non2xx: r.non2xx,
            protocol: 'http/1.1',
            selfCpuUs: r.selfCpuUs,
          }),
        )
      : h2Run({ gen, root, cpu: loadCpu, port, connections, streams, durationS: d, h1: direct });
  try {
    for (let round = 1; round <= rounds; round++) {
      const order = rotated(runnable(), round);
      log(`round ${round}/${rounds}: ${order.map((t) => t.name).join(' → ')}`);
      for (const t of order) {
        if (state[t.name].status !== 'ok') continue;
        const started = await startTarget(t, backend.port);
        if (!started) continue;
        const { port, child } = started;
        const direct = t.name === 'direct';
        const run = { round };
        try {
          if (!direct) {
            const n = await verifyH2(port);
            meta.negotiated[t.name] = `${n.alpn} over ${n.protocol}/${n.cipher}`;
          }
          if (meta.warmupS > 0) await load(port, meta.warmupS, direct);
          const m = await phase({ child, backendPid: backend.child.pid, proxyCpu }, () =>
            load(port, durationS, direct),
          );
          if (!direct && m.r.protocol !== 'h2')
            throw new Error(`the generator spoke ${m.r.protocol}, not h2`);
          Object.assign(run, {
            generator: m.r.generator,
            protocol: m.r.protocol,
            rps: m.r.rps,
            total: m.r.total,
            usPerReq: child ? m.proxyUs / Math.max(1, m.r.total) : undefined,
            proxyCoreUsPerReq:
              child && m.proxyCoreBusyUs != null ? m.proxyCoreBusyUs / Math.max(1, m.r.total) : undefined,
            busy: child ? m.proxyUs / m.wallUs : undefined,
            backendUsPerReq: m.backendUs / Math.max(1, m.r.total),
            generatorUsPerReq: m.r.selfCpuUs != null ? m.r.selfCpuUs / Math.max(1, m.r.total) : undefined,
            latencyUs: m.r.latencyUs,
            errors: m.r.errors + m.r.non2xx,
            errorSamples: m.r.errorSamples,
            foreign: m.foreign,
          });
          log(
            `  ${t.name.padEnd(12)} ${f0(run.rps)} req/s${run.usPerReq != null ? `, ${f1(run.usPerReq)} µs/req (core ${pct(run.busy)})` : ''}${run.errors ? `, errors ${run.errors}` : ''}, other load ${pct(run.foreign)}`,
          );
        } catch (e) {
          run.error = e.message;
          log(`  ${t.name}: ${e.message.split('\n')[0]}`);
        } finally {
          if (child) await stop(child);
        }
        state[t.name].runs.push(run);
        state[t.name].summary = summarize(state[t.name].runs);
      }
      writeResults();
    }
  } finally {
    await stop(backend.child);
  }
}

export function summarize(runs) {
  const ok = runs.filter((r) => !r.error && r.rps != null);
  if (!ok.length) return undefined;
  return {
    rounds: ok.length,
    rps: stat(ok, (r) => r.rps),
    usPerReq: stat(ok, (r) => r.usPerReq),
    proxyCoreUsPerReq: stat(ok, (r) => r.proxyCoreUsPerReq).med,
    busy: stat(ok, (r) => r.busy).med,
    backendUsPerReq: stat(ok, (r) => r.backendUsPerReq).med,
    generatorUsPerReq: stat(ok, (r) => r.generatorUsPerReq).med,
    meanLatencyUs: stat(ok, (r) => r.latencyUs?.mean ?? r.latencyUs?.p50).med,
    errors: ok.reduce((n, r) => n + r.errors, 0),
    foreign: stat(ok, (r) => r.foreign).med,
  };
}

export function markdown({ meta, targets }) {
  const h = meta.h2 ?? {};
  const L = header(meta, [
    `Clients: ${h.generatorVersion ?? '–'}, ${h.connections} connections × ${h.streams} concurrent streams, HTTP/2 over TLS 1.3 (ALPN h2 only), \`GET /\`; every start is checked with an h2 request that must negotiate h2. Negotiated: ${
      Object.entries(meta.negotiated ?? {})
        .map(([n, v]) => `${n} ${v}`)
        .join(', ') || '–'
    }`,
    `direct: HTTP/1.1 to the backend with ${h.connections * h.streams} connections (${h.generator === 'h2load' ? 'h2load --h1' : 'autocannon'}), no proxy, no TLS`,
    'Proxy → backend: HTTP/1.1 keep-alive everywhere',
  ]);
  const ref = targets[REF]?.summary;
  const hap = targets[HAPROXY]?.summary;
  const d = targets.direct?.summary;
  L.push(
    '| target | version | req/s | range | vs direct | proxy CPU µs/req | range | vs node:http2 + undici | vs HAProxy | proxy core busy | backend µs/req | generator µs/req | mean latency µs | errors | other load |',
  );
  L.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const [name, t] of Object.entries(targets)) {
    const s = t.summary;
    if (!s) {
      L.push(noDataRow(t, 15));
      continue;
    }
    const px = name !== 'direct';
    L.push(
      `| ${t.label} | ${t.version ?? ''} | ${f0(s.rps.med)} | ${range(s.rps)} | ${pct(d ? s.rps.med / d.rps.med : undefined)} | ${px ? f1(s.usPerReq.med) : '–'} | ${px ? range(s.usPerReq, f1) : '–'} | ${px ? ratio(s.usPerReq.med, ref?.usPerReq.med) : '–'} | ${px ? ratio(s.usPerReq.med, hap?.usPerReq.med) : '–'} | ${px ? pct(s.busy) : '–'} | ${f1(s.backendUsPerReq)} | ${f1(s.generatorUsPerReq)} | ${f0(s.meanLatencyUs)} | ${s.errors} | ${pct(s.foreign)} |`,
    );
  }
  L.push('');
  const f = targets[FIBERLB]?.summary?.usPerReq.med;
  if (f && ref?.usPerReq.med)
    L.push(
      `**FiberLB vs the minimal node:http2 + undici proxy: ${(f / ref.usPerReq.med).toFixed(2)}× its CPU µs/req${hap?.usPerReq.med ? `; ${(f / hap.usPerReq.med).toFixed(2)}× HAProxy's` : ''}.**`,
      '',
    );
  L.push(
    "- **proxy CPU µs/req**: utime + stime of the proxy's process tree ÷ requests completed; the ratios use it. **proxy core busy** well below 100% means the load core (generator + backend) was the limit: compare µs/req, not req/s.",
    "- **generator µs/req**: the load generator's own CPU per request (it shares the load core with the backend).",
    '- **other load**: CPU used outside the benchmark during the run (all cores, % of one core, median); above ~10% the figures are disturbed.',
  );
  for (const n of meta.notes ?? []) L.push(`- ${n}`);
  return `${L.join('\n')}\n`;
}

export function headline({ targets }) {
  return {
    metric: 'HTTP/2 downstream: proxy CPU µs per request, median and min–max (lower is better)',
    bars: Object.entries(targets)
      .filter(([n, t]) => n !== 'direct' && t.summary?.usPerReq.med != null)
      .map(([, t]) => ({
        label: t.label,
        value: t.summary.usPerReq.med,
        min: t.summary.usPerReq.min,
        max: t.summary.usPerReq.max,
      })),
  };
}
