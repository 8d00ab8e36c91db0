// The round loop every measuring scenario shares (bench/README.md, "Per target and round"):
// targets interleaved, the order rotated one place each round so that noise spreads over all
// of them, results written after every round. For the custom scenarios (udp, ws, l4-bulk) also
// the slot: the target started fresh, measured, and stopped even when the measurement failed;
// and for the echo scenarios (udp, ws) the whole measurement around their load client.
import { cpuDeltaUs, rememberTree, stop, treeCpu } from './proc.mjs';
import { rateSummary } from './report.mjs';

/** `order` rotated by `round - 1` places (rounds count from 1). */
export function rotated(order, round) {
  const k = (round - 1) % Math.max(1, order.length);
  return [...order.slice(k), ...order.slice(0, k)];
}

/** `slot(t, round)` for every runnable target of every round, in rotated order. */
export async function eachRound({ rounds, runnable, log, writeResults }, slot) {
  for (let round = 1; round <= rounds; round++) {
    const order = rotated(runnable(), round);
    log(`round ${round}/${rounds}: ${order.map((t) => t.name).join(' → ')}`);
    for (const t of order) await slot(t, round);
    writeResults();
  }
}

/**
 * A custom scenario's rounds (`ctx` is what run.mjs hands its run()): per slot the target is
 * started against `backendPort`, `measure(started, run, t)` fills `run` (a throw is the slot's
 * error, logged), the target is stopped, and its summary is `summarize(runs)` over all its runs.
 */
export async function measureRounds(ctx, backendPort, measure, summarize) {
  const { state, log, startTarget } = ctx;
  await eachRound(ctx, async (t, round) => {
    const started = await startTarget(t, backendPort);
    if (!started) return;
    const run = { round };
    try {
      await measure(started, run, t);
    } catch (e) {
      run.error = e.message;
      log(`  ${t.name}: ${e.message}`);
    } finally {
      if (started.child) await stop(started.child);
    }
    state[t.name].runs.push(run);
    state[t.name].summary = summarize(state[t.name].runs);
  });
}

/**
 * Starts counting the CPU time (µs) of a started target's process tree; the returned function
 * reads what it used since. Always undefined for a target with no process (direct).
 */
export function proxyCpu(started) {
  const child = started.child;
  if (!child) return () => undefined;
  const c0 = treeCpu(child.pid);
  return () => cpuDeltaUs(c0, treeCpu(child.pid));
}

/**
 * measureRounds for an echo scenario's load client (udp, ws): per slot 1 s unmeasured (sessions,
 * JIT), then `client(port, durationS)` with the target's CPU across it. The run is the client's
 * figures plus `[cpuKey]` (proxy CPU µs per one of the `units(r)` it counted) and proxyCpuUtil;
 * `line(r)` is logged with those; the summary is rateSummary() of both plus `extra(okRuns)`.
 */
export async function clientRounds(ctx, backendPort, { client, cpuKey, units, line, extra = () => ({}) }) {
  const { durationS, log } = ctx;
  await measureRounds(
    ctx,
    backendPort,
    async (started, run, t) => {
      await client(started.port, 1);
      if (started.child) rememberTree(started.child);
      const cpu = proxyCpu(started);
      const r = await client(started.port, durationS);
      const cpuUs = cpu();
      Object.assign(run, r, { [cpuKey]: per(cpuUs, units(r)), proxyCpuUtil: per(cpuUs, r.durationS * 1e6) });
      log(
        `  ${t.name.padEnd(12)} ${line(r)}${run[cpuKey] ? `, ${run[cpuKey].toFixed(1)} µs each (core ${Math.round(run.proxyCpuUtil * 100)}%)` : ''}`,
      );
    },
    (runs) => ({ ...rateSummary(runs, [cpuKey, 'proxyCpuUtil']), ...extra(runs.filter((x) => !x.error)) }),
  );
}

/** `cpuUs / n`, or undefined when there is no CPU figure (direct). */
export function per(cpuUs, n) {
  return cpuUs === undefined ? undefined : cpuUs / n;
}
