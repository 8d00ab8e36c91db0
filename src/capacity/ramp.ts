// The ramp: a warm-up, then stages at rising fixed rates until one breaks the SLO (p99 above
// --slo-p99 or the error share above --max-errors), the rate bound or the time bound is hit.
// The answer is the last stage that held.

import type { Generator, StageResult } from './loadgen.ts';
import type { CapacityOptions } from './options.ts';

export interface Step extends StageResult {
  index: number;
  held: boolean;
  /** Why the step broke the SLO (empty when it held). */
  reasons: string[];
}

export type StopReason = 'slo' | 'max-rate' | 'max-duration';

export interface RampResult {
  url: string;
  method: string;
  sloP99Ms: number;
  maxErrorShare: number;
  steps: Step[];
  /** Highest rate that held, if any. */
  held: Step | undefined;
  /** The step that broke the SLO (stop === 'slo'). */
  broke: Step | undefined;
  stop: StopReason;
  elapsedMs: number;
  /** Things that make the answer a lower bound of the target's capacity (client-side limits). */
  notes: string[];
}

export interface RampEvents {
  stageStart?(index: number, rate: number): void;
  stageProgress?(
    index: number,
    rate: number,
    p: { elapsedMs: number; completed: number; errors: number },
  ): void;
  stageEnd?(step: Step): void;
}

export function verdict(r: StageResult, o: Pick<CapacityOptions, 'sloP99Ms' | 'maxErrorShare'>): string[] {
  const reasons: string[] = [];
  if (r.p99Us === null) reasons.push('no responses');
  else if (r.p99Us > o.sloP99Ms * 1000) reasons.push(`p99 ${ms(r.p99Us)} ms > ${o.sloP99Ms} ms`);
  if (r.errorShare > o.maxErrorShare) reasons.push(`errors ${pct(r.errorShare)} > ${pct(o.maxErrorShare)}`);
  return reasons;
}

export function nextRate(rate: number, o: Pick<CapacityOptions, 'step' | 'maxRate'>): number {
  const n = o.step.kind === 'factor' ? rate * o.step.value : rate + o.step.value;
  return Math.min(o.maxRate, Math.max(rate + 1, Math.round(n)));
}

export async function ramp(gen: Generator, o: CapacityOptions, ev: RampEvents = {}): Promise<RampResult> {
  const t0 = Date.now();
  const steps: Step[] = [];
  const notes: string[] = [];
  // Warm-up at the start rate (JIT, connection set-up, the target's caches): not reported.
  if (o.warmupMs > 0) await gen.run(o.startRate, o.warmupMs);
  let rate = o.startRate;
  let stop: StopReason = 'max-rate';
  let broke: Step | undefined;
  for (let index = 1; ; index++) {
    // A stage can take its duration plus the timeout (the last requests' outcome).
    if (Date.now() - t0 + o.stageMs + o.timeoutMs > o.maxDurationMs) {
      stop = 'max-duration';
      break;
    }
    ev.stageStart?.(index, rate);
    const r = await gen.run(rate, o.stageMs, (p) => ev.stageProgress?.(index, rate, p));
    const reasons = verdict(r, o);
    const step: Step = { ...r, index, held: reasons.length === 0, reasons };
    steps.push(step);
    ev.stageEnd?.(step);
    if (!step.held) {
      stop = 'slo';
      broke = step;
      break;
    }
    if (rate >= o.maxRate) break;
    rate = nextRate(rate, o);
  }
  const held = [...steps].reverse().find((s) => s.held);
  const last = steps.at(-1);
  if (last && last.tickLagP99Ms > Math.max(5, o.sloP99Ms / 4))
    notes.push(
      `the load generator fell behind its schedule (tick lag p99 ${last.tickLagP99Ms.toFixed(1)} ms at ${last.rate} req/s): this machine's client is part of what was measured`,
    );
  if (broke && broke.backlogMax > 0 && broke.connections >= o.maxConnections)
    notes.push(
      `all ${o.maxConnections} connections were busy at ${broke.rate} req/s: with more --connections the target may hold more`,
    );
  if (stop === 'max-rate')
    notes.push(`the SLO held up to --max-rate ${o.maxRate} req/s: the capacity is at least that`);
  if (stop === 'max-duration')
    notes.push(
      `stopped by --max-duration ${o.maxDurationMs / 1000} s before the SLO broke: the capacity is at least ${held ? held.rate : '?'} req/s`,
    );
  return {
    url: o.url.href,
    method: o.method,
    sloP99Ms: o.sloP99Ms,
    maxErrorShare: o.maxErrorShare,
    steps,
    held,
    broke,
    stop,
    elapsedMs: Date.now() - t0,
    notes,
  };
}

export const ms = (us: number | null): string =>
  us === null ? '–' : (us / 1000).toFixed(us < 10_000 ? 2 : 1);
export const pct = (x: number): string => `${(x * 100).toFixed(x < 0.01 && x > 0 ? 2 : 1)}%`;
