// Scenario `https`: TLS termination (what bench/https-small.mjs measured on its own before).
// Targets (bench/lib/tls-targets.mjs): FiberLB's https listener, the minimal node:https + undici
// proxy (bench/peers/undici-https.mjs, the reference: FiberLB ≤ 1.1× its CPU µs/req), HAProxy and
// NGINX, all terminating TLS 1.3 with one certificate and forwarding HTTP/1.1 keep-alive to the
// same backend; `direct` is plain HTTP to the backend (the load core's limit). Per target and
// round (fresh start, order rotated):
//   1. keep-alive: warm-up, then autocannon over HTTPS (HTTP/1.1, no ALPN) → req/s, proxy CPU µs/req;
//   2. new connections (bench/lib/handshake-gen.mjs, one request per TLS connection): full
//      handshakes (no session offered), then resumed ones (each loop offers its last ticket) →
//      connections/s and proxy CPU µs per connection (handshake + 1 request + close).
// Env: BENCH_HS_DURATION (s per handshake mode; default min(4, --duration)), BENCH_HS_CONCURRENCY
// (32), BENCH_HANDSHAKES=0 (keep-alive only), BENCH_RESUME=0 (full handshakes only), BENCH_BACKEND,
// BENCH_PROF=DIR (FiberLB and undici-https under --cpu-prof, keep-alive only; top functions → DIR/<target>.txt).
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { summarizeProfile } from './cpuprofile-top.mjs';
import { autocannon, handshakes } from './load.mjs';
import { stop } from './proc.mjs';
import { startBackend } from './targets.mjs';
import { f0, f1, header, noDataRow, pct, phase, range, ratio, rotated, stat } from './tls-measure.mjs';
import { verifyTls } from './tls-targets.mjs';

const REF = 'undici-https';
const FIBERLB = 'fiberlb-https';
const HAPROXY = 'haproxy-https';
const AIM = 1.1;
const env = process.env;

export async function run({
  root,
  tmp,
  proxyCpu,
  loadCpu,
  rounds,
  durationS,
  quick,
  meta,
  state,
  log,
  startTarget,
  writeResults,
  runnable,
}) {
  const prof = env.BENCH_PROF;
  const hs = {
    on: env.BENCH_HANDSHAKES !== '0' && !prof,
    resume: env.BENCH_RESUME !== '0',
    concurrency: Math.max(1, Number(env.BENCH_HS_CONCURRENCY ?? 32)),
    durationS: Math.max(1, Number(env.BENCH_HS_DURATION ?? (quick ? 2 : Math.min(4, durationS)))),
  };
  meta.ratioTo = REF;
  meta.handshakes = hs;
  meta.negotiated = {};
  meta.openssl = `OpenSSL ${process.versions.openssl} (Node's; HAProxy and NGINX use the system's)`;
  if (prof)
    meta.notes.push(
      `profiled run (BENCH_PROF): FiberLB and undici-https under --cpu-prof — slower than normal, not a result`,
    );
  const backend = await startBackend(env.BENCH_BACKEND ?? 'auto', { cpu: loadCpu, root, tmp });
  meta.backend = `${backend.describe}, pinned to CPU ${loadCpu}`;
  log(`backend: ${meta.backend} on port ${backend.port}`);
  const acEnv = { NODE_TLS_REJECT_UNAUTHORIZED: '0', NODE_NO_WARNINGS: '1' }; // autocannon's own process only
  try {
    for (let round = 1; round <= rounds; round++) {
      const order = rotated(runnable(), round);
      log(`round ${round}/${rounds}: ${order.map((t) => t.name).join(' → ')}`);
      for (const t of order) {
        if (state[t.name].status !== 'ok') continue;
        const started = await startTarget(t, backend.port);
        if (!started) continue;
        const { port, child } = started;
        const tls = t.name !== 'direct';
        const run = { round };
        const on = { child, backendPid: backend.child.pid, proxyCpu };
        try {
          if (t.name === 'direct') run.negotiated = { protocol: 'none (plain HTTP)' };
          else run.negotiated = await verifyTls(port);
          if (tls) meta.negotiated[t.name] = `${run.negotiated.protocol}/${run.negotiated.cipher}`;
          const ac = (d) =>
            autocannon({
              root,
              cpu: loadCpu,
              port,
              connections: meta.connections,
              durationS: d,
              scheme: tls ? 'https' : 'http',
              env: acEnv,
            });
          if (meta.warmupS > 0) await ac(meta.warmupS);
          const ka = await phase(on, () => ac(durationS));
          run.ka = {
            rps: ka.r.rps,
            total: ka.r.total,
            usPerReq: child ? ka.proxyUs / ka.r.total : undefined,
            proxyCoreUsPerReq:
              child && ka.proxyCoreBusyUs != null ? ka.proxyCoreBusyUs / ka.r.total : undefined,
            busy: child ? ka.proxyUs / ka.wallUs : undefined,
            backendUsPerReq: ka.backendUs / ka.r.total,
            p99ms: ka.r.latencyMs.p99,
            errors: ka.r.errors + ka.r.non2xx + (ka.r.timeouts ?? 0),
            foreign: ka.foreign,
          };
          if (hs.on) {
            for (const mode of hs.resume && tls ? ['full', 'resumed'] : ['full']) {
              const gen = (d) =>
                handshakes({
                  root,
                  cpu: loadCpu,
                  port,
                  concurrency: hs.concurrency,
                  durationS: d,
                  warmupS: 0,
                  resume: mode === 'resumed',
                  plain: !tls,
                });
              await gen(1); // warm-up: the new-connection path, and (resumed) tickets in hand
              const m = await phase(on, () => gen(hs.durationS));
              run[mode] = {
                rate: m.r.rate,
                total: m.r.total,
                usPerConn: child ? m.proxyUs / Math.max(1, m.r.total) : undefined,
                busy: child ? m.proxyUs / m.wallUs : undefined,
                clientUsPerConn: m.r.selfCpuUs / Math.max(1, m.r.total),
                resumedShare: tls ? m.r.resumed / Math.max(1, m.r.total) : undefined,
                p50us: m.r.latencyUs.p50,
                p99us: m.r.latencyUs.p99,
                errors: m.r.errors + m.r.non200,
                errorSamples: m.r.errorSamples,
                foreign: m.foreign,
              };
            }
          }
          log(`  ${t.name.padEnd(14)} ${line(run)}`);
        } catch (e) {
          run.error = e.message;
          log(`  ${t.name}: ${e.message.split('\n')[0]}`);
        } finally {
          if (child) await stop(child, prof ? 8000 : 3000); // a --cpu-prof worker writes its profile on exit
        }
        state[t.name].runs.push(run);
        state[t.name].summary = summarize(state[t.name].runs);
      }
      writeResults();
    }
  } finally {
    await stop(backend.child);
  }
  if (prof) writeProfiles(path.resolve(prof), log);
}

function line(run) {
  const p = [`${f0(run.ka.rps)} req/s`];
  if (run.ka.usPerReq != null) p.push(`${f1(run.ka.usPerReq)} µs/req (busy ${pct(run.ka.busy)})`);
  if (run.ka.errors) p.push(`errors ${run.ka.errors}`);
  for (const m of ['full', 'resumed']) {
    const h = run[m];
    if (!h) continue;
    p.push(
      `${m} ${f0(h.rate)}/s${h.usPerConn != null ? ` ${f0(h.usPerConn)} µs/conn` : ''}${h.resumedShare != null ? ` reused ${pct(h.resumedShare)}` : ''}${h.errors ? ` errors ${h.errors} ${h.errorSamples.join(',')}` : ''}`,
    );
  }
  p.push(`other load ${pct(run.ka.foreign)}`);
  return p.join(', ');
}

/** Medians (and min–max) over the rounds that completed. */
export function summarize(runs) {
  const ok = runs.filter((r) => r.ka && !r.error);
  if (!ok.length) return undefined;
  const s = { rounds: ok.length };
  s.ka = {
    rps: stat(ok, (r) => r.ka.rps),
    usPerReq: stat(ok, (r) => r.ka.usPerReq),
    proxyCoreUsPerReq: stat(ok, (r) => r.ka.proxyCoreUsPerReq).med,
    busy: stat(ok, (r) => r.ka.busy).med,
    backendUsPerReq: stat(ok, (r) => r.ka.backendUsPerReq).med,
    p99ms: stat(ok, (r) => r.ka.p99ms).med,
    errors: ok.reduce((n, r) => n + r.ka.errors, 0),
    foreign: stat(ok, (r) => r.ka.foreign).med,
  };
  for (const mode of ['full', 'resumed']) {
    const h = ok.filter((r) => r[mode]);
    if (!h.length) continue;
    s[mode] = {
      rate: stat(h, (r) => r[mode].rate),
      usPerConn: stat(h, (r) => r[mode].usPerConn),
      busy: stat(h, (r) => r[mode].busy).med,
      clientUsPerConn: stat(h, (r) => r[mode].clientUsPerConn).med,
      resumedShare: stat(h, (r) => r[mode].resumedShare).med,
      p50us: stat(h, (r) => r[mode].p50us).med,
      p99us: stat(h, (r) => r[mode].p99us).med,
      errors: h.reduce((n, r) => n + r[mode].errors, 0),
      foreign: stat(h, (r) => r[mode].foreign).med,
    };
  }
  return s;
}

/** FiberLB against the reference, keep-alive and full handshakes (undefined when either is missing). */
export function verdict(targets) {
  const f = targets[FIBERLB]?.summary;
  const u = targets[REF]?.summary;
  const k = f?.ka?.usPerReq.med && u?.ka?.usPerReq.med ? f.ka.usPerReq.med / u.ka.usPerReq.med : undefined;
  const h =
    f?.full?.usPerConn.med && u?.full?.usPerConn.med
      ? f.full.usPerConn.med / u.full.usPerConn.med
      : undefined;
  return { keepAlive: k, fullHandshake: h, met: k === undefined ? undefined : k <= AIM };
}

export function markdown({ meta, targets }) {
  const hs = meta.handshakes ?? {};
  const L = header(meta, [
    `TLS: TLS 1.3, one self-signed P-256 ECDSA certificate for every proxy; negotiated: ${
      Object.entries(meta.negotiated ?? {})
        .map(([n, v]) => `${n} ${v}`)
        .join(', ') || '–'
    }${meta.openssl ? `; ${meta.openssl}` : ''}`,
    `Keep-alive: autocannon, ${meta.connections} connections, HTTP/1.1 over TLS (no ALPN), no pipelining`,
    hs.on
      ? `New connections: bench/lib/handshake-gen.mjs, ${hs.concurrency} parallel loops of connect → TLS handshake → \`GET /\` (Connection: close) → close, 1 s warm-up + ${hs.durationS} s per mode; full = no session offered${hs.resume ? '; resumed = each loop offers the ticket of its previous connection' : ''}`
      : 'New connections: not measured in this run',
  ]);
  const ref = targets[REF]?.summary;
  const hap = targets[HAPROXY]?.summary;
  const d = targets.direct?.summary;
  L.push('## Keep-alive (HTTP/1.1 over TLS)', '');
  L.push(
    '| target | version | req/s | range | vs direct | proxy CPU µs/req | range | vs undici-https | vs HAProxy | proxy core busy | backend µs/req | p99 ms | errors | other load |',
  );
  L.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const [name, t] of Object.entries(targets)) {
    const k = t.summary?.ka;
    if (!k) {
      L.push(noDataRow(t, 14));
      continue;
    }
    const px = name !== 'direct';
    L.push(
      `| ${t.label} | ${t.version ?? ''} | ${f0(k.rps.med)} | ${range(k.rps)} | ${pct(d?.ka ? k.rps.med / d.ka.rps.med : undefined)} | ${px ? f1(k.usPerReq.med) : '–'} | ${px ? range(k.usPerReq, f1) : '–'} | ${px ? ratio(k.usPerReq.med, ref?.ka?.usPerReq.med) : '–'} | ${px ? ratio(k.usPerReq.med, hap?.ka?.usPerReq.med) : '–'} | ${px ? pct(k.busy) : '–'} | ${f1(k.backendUsPerReq)} | ${k.p99ms ?? '–'} | ${k.errors} | ${pct(k.foreign)} |`,
    );
  }
  L.push('');
  if (hs.on) {
    L.push('## New connections (one request per TLS connection)', '');
    L.push(
      '| target | mode | conn/s | range | proxy CPU µs/conn | range | vs undici-https | proxy core busy | client µs/conn | resumed share | p50 µs | p99 µs | errors | other load |',
    );
    L.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const [name, t] of Object.entries(targets))
      for (const mode of ['full', 'resumed']) {
        const h = t.summary?.[mode];
        if (!h) continue;
        const px = name !== 'direct';
        L.push(
          `| ${t.label} | ${name === 'direct' ? 'plain TCP' : mode} | ${f0(h.rate.med)} | ${range(h.rate)} | ${px ? f0(h.usPerConn.med) : '–'} | ${px ? range(h.usPerConn) : '–'} | ${px ? ratio(h.usPerConn.med, ref?.[mode]?.usPerConn.med) : '–'} | ${px ? pct(h.busy) : '–'} | ${f0(h.clientUsPerConn)} | ${pct(h.resumedShare)} | ${f0(h.p50us)} | ${f0(h.p99us)} | ${h.errors} | ${pct(h.foreign)} |`,
        );
      }
    L.push('');
  }
  const v = verdict(targets);
  if (v.keepAlive !== undefined)
    L.push(
      `**FiberLB vs the minimal node:https + undici proxy (aim ≤ ${AIM}× its CPU µs/req): keep-alive ${v.keepAlive.toFixed(2)}× — ${v.met ? 'met' : 'missed'}**${v.fullHandshake !== undefined ? `; per new connection with a full handshake ${v.fullHandshake.toFixed(2)}×` : ''}.`,
      '',
    );
  L.push(
    "- **proxy CPU µs/req** and **µs/conn**: utime + stime of the proxy's process tree ÷ requests (keep-alive) or ÷ connections (one connection = TLS handshake + one proxied request + close). The ratios use these.",
    '- **proxy core busy** well below 100% means the load core (client + backend) was the limit, not the proxy: compare µs, not req/s. A Node TLS client costs about as much per handshake as the server, so one load core cannot saturate a proxy core with new connections (**client µs/conn**).',
    '- **direct** is plain HTTP to the backend (no TLS, no proxy): the limit of the load core; its new connections are plain TCP.',
    '- **other load**: CPU used outside the benchmark during the phase (all cores, % of one core, median); above ~10% the figures are disturbed.',
  );
  for (const n of meta.notes ?? []) L.push(`- ${n}`);
  return `${L.join('\n')}\n`;
}

export function headline({ targets }) {
  return {
    metric: 'HTTPS keep-alive: proxy CPU µs per request, median and min–max (lower is better)',
    bars: Object.entries(targets)
      .filter(([n, t]) => n !== 'direct' && t.summary?.ka?.usPerReq.med != null)
      .map(([, t]) => ({
        label: t.label,
        value: t.summary.ka.usPerReq.med,
        min: t.summary.ka.usPerReq.min,
        max: t.summary.ka.usPerReq.max,
      })),
  };
}

/** Per profiled target, the busiest .cpuprofile (FiberLB: the worker's) → DIR/<target>.txt. */
function writeProfiles(dir, log) {
  for (const name of [FIBERLB, REF]) {
    const d = path.join(dir, name);
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
    writeFileSync(path.join(dir, `${name}.txt`), text);
    log(`\n${text}`);
  }
}
