// The V8 heap flags a worker is forked with. Under steady load a worker's old generation stays
// small (≈ 12 MB), and V8's heuristics can then settle into starting a full mark-compact after
// every scavenge (every ~0.2 s at 4,000 req/s of 16 KiB responses): with the worker pinned to
// one core its "concurrent" marking threads take that core from the event loop, which stalls
// 15–40 ms each time and raised the fixed-rate p99 from ≈ 5 to ≈ 25 ms
// (bench/results/vs-peers-2026-12-01.md). Starting the old generation larger
// (--initial-old-space-size) keeps V8 out of that pattern; it costs up to that much memory.

const FLAG = '--initial-old-space-size';

/** Either spelling; Node refuses this flag in NODE_OPTIONS, so node's own arguments are the only place. */
const GIVEN = /^--initial[-_]old[-_]space[-_]size(=|$)/;

/**
 * execArgv for a new worker: the primary's own (`node --initial-old-space-size=N cli.js`: the
 * operator's choice wins), plus `--initial-old-space-size` of `oldSpaceMiB` (0: none, V8 sizes
 * the heap itself).
 */
export function workerExecArgv(
  oldSpaceMiB: number,
  execArgv: readonly string[] = process.execArgv,
): string[] {
  if (oldSpaceMiB <= 0 || execArgv.some((a) => GIVEN.test(a))) return [...execArgv];
  return [...execArgv, `${FLAG}=${oldSpaceMiB}`];
}
