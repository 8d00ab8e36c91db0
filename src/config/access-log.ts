// `access_log: { path: FILE | stdout, sample: 0..1, flush_interval: DURATION }`, at the top level (every listener) or on
// a listener (that listener only, replacing the top-level one; `sample: 0` turns it off there).

import type { Node } from './tree.ts';
import type { Walker } from './walker.ts';

export interface AccessLogConfig {
  /** "stdout", or an absolute file path (relative paths resolve against the config's directory). */
  readonly path: string;
  /** Fraction of requests / connections logged (1 = all). */
  readonly sample: number;
  /** How long a worker gathers lines before one write carries them all (0: at once). */
  readonly flushIntervalMs: number;
}

/** Envoy flushes every 1 s, NGINX's `buffer=` every `flush=`: 100 ms keeps `tail -f` live. */
export const DEFAULT_FLUSH_INTERVAL_MS = 100;
const MAX_FLUSH_INTERVAL_MS = 10_000;

export function validateAccessLog(w: Walker, node: Node, path: string): AccessLogConfig | undefined {
  const f = w.map(node, path, ['path', 'sample', 'flush_interval']);
  const raw = w.str(f, 'path', true);
  let sample = 1;
  const s = f.get('sample');
  if (s !== undefined) {
    if (s.kind !== 'scalar' || typeof s.value !== 'number') w.typeError(s, f.at('sample'), 'a number 0-1');
    else if (!(s.value >= 0 && s.value <= 1))
      w.report(s.pos, f.at('sample'), `${s.value} is out of range 0-1`);
    else sample = s.value;
  }
  let flushIntervalMs = w.duration(f, 'flush_interval', DEFAULT_FLUSH_INTERVAL_MS, true);
  if (flushIntervalMs > MAX_FLUSH_INTERVAL_MS) {
    w.report(f.get('flush_interval')!.pos, f.at('flush_interval'), 'must be at most 10s');
    flushIntervalMs = DEFAULT_FLUSH_INTERVAL_MS;
  }
  if (raw === undefined) return undefined;
  return { path: raw === 'stdout' ? 'stdout' : w.filePath(f, 'path')!, sample, flushIntervalMs };
}
