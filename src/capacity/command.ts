// `fiberlb capacity URL`: for platform teams sizing a backend (or a FiberLB listener in front of
// it). Progress on stderr (a live line on a TTY, one plain line per step otherwise), the table
// and the answer on stdout, the chart in --svg FILE (and the numbers in --json FILE).
// Exit 0: a rate held the SLO; 1: no step held, or the target cannot be reached; 2: bad flags.

import { writeFileSync } from 'node:fs';
import { Generator } from './loadgen.ts';
import { CapacityUsageError, parseCapacityArgs } from './options.ts';
import { ms, pct, ramp } from './ramp.ts';
import { summary, svg, table } from './report.ts';
import { probe, resolveTarget, TargetError } from './target.ts';

export { CAPACITY_USAGE } from './options.ts';

type Out = { code: number; usage?: string };

const fail = (message: string): Out => {
  process.stderr.write(`fiberlb: capacity: ${message}\n`);
  return { code: 1 };
};

export async function capacityCommand(args: string[]): Promise<Out> {
  let o: ReturnType<typeof parseCapacityArgs>;
  try {
    o = parseCapacityArgs(args);
  } catch (err) {
    if (err instanceof CapacityUsageError) return { code: 2, usage: err.message };
    throw err;
  }
  let spec: Awaited<ReturnType<typeof resolveTarget>>;
  try {
    spec = await resolveTarget(o);
    const status = await probe(spec, o.url, Math.min(o.timeoutMs, 5000));
    if (status >= 400)
      return fail(
        `${o.method} ${o.url.href} answered ${status}: fix the URL (a ramp of errors measures nothing)`,
      );
  } catch (err) {
    if (err instanceof TargetError) return fail(err.message);
    throw err;
  }

  const tty = process.stderr.isTTY === true;
  const live = (s: string) => process.stderr.write(`\r\x1b[K${s}`);
  const gen = new Generator(spec, { maxConnections: o.maxConnections, timeoutMs: o.timeoutMs });
  const stopOnSignal = () => {
    gen.close();
    process.stderr.write('\ncapacity: interrupted\n');
    process.exit(130);
  };
  process.once('SIGINT', stopOnSignal);
  process.stderr.write(
    `capacity: ${o.method} ${o.url.href} from ${o.startRate} req/s, ${o.step.kind === 'factor' ? `×${o.step.value}` : `+${o.step.value}`} per ${o.stageMs / 1000} s step, until p99 > ${o.sloP99Ms} ms or errors > ${pct(o.maxErrorShare)} (bounds: ${o.maxRate} req/s, ${o.maxDurationMs / 1000} s)\n`,
  );
  let result: Awaited<ReturnType<typeof ramp>>;
  try {
    result = await ramp(gen, o, {
      stageStart: (i, rate) => tty && live(`step ${i}: ${rate} req/s …`),
      stageProgress: (i, rate, p) =>
        tty &&
        live(
          `step ${i}: ${rate} req/s  ${(p.elapsedMs / 1000).toFixed(1)}/${o.stageMs / 1000} s  ${p.completed} answered  ${p.errors} errors`,
        ),
      stageEnd: (s) => {
        const text = `step ${s.index}: ${s.rate} req/s offered, ${Math.round(s.achievedRate)} achieved, p50 ${ms(s.p50Us)} ms, p99 ${ms(s.p99Us)} ms, p99.9 ${ms(s.p999Us)} ms, errors ${pct(s.errorShare)} → ${s.held ? 'held' : `broke (${s.reasons.join(', ')})`}`;
        if (tty) live(`${text}\n`);
        else process.stderr.write(`${text}\n`);
      },
    });
  } finally {
    gen.close();
    process.removeListener('SIGINT', stopOnSignal);
  }
  process.stdout.write(`${table(result)}\n\n${summary(result)}\n`);
  try {
    writeFileSync(o.svgFile, svg(result));
    process.stdout.write(`chart: ${o.svgFile}\n`);
    if (o.jsonFile) {
      writeFileSync(o.jsonFile, `${JSON.stringify(result, null, 2)}\n`);
      process.stdout.write(`numbers: ${o.jsonFile}\n`);
    }
  } catch (err) {
    return fail(
      `cannot write ${(err as NodeJS.ErrnoException).path ?? 'the output'}: ${(err as NodeJS.ErrnoException).code ?? err}`,
    );
  }
  return { code: result.held ? 0 : 1 };
}
