// Structured JSON-lines logger. One line per event on stdout (stderr for warn/error), with the
// process role so primary and worker lines can be told apart. No dependency: the hot path
// logs only failures, and those are rate-limited per error class by `logFailure`.

import type { ErrorClass } from './errors.ts';

export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

let minLevel: number = ORDER[(process.env.FIBERLB_LOG_LEVEL as Level) ?? 'info'] ?? ORDER.info;
let role = 'main';

export function setLogRole(r: string): void {
  role = r;
}
export function setLogLevel(l: Level): void {
  minLevel = ORDER[l];
}

export function log(level: Level, msg: string, fields?: Record<string, unknown>): void {
  if (ORDER[level] < minLevel) return;
  const line = JSON.stringify({
    ts: new Date().toISOString(),
    level,
    role,
    pid: process.pid,
    msg,
    ...fields,
  });
  if (ORDER[level] >= ORDER.warn) process.stderr.write(`${line}\n`);
  else process.stdout.write(`${line}\n`);
}

// At most LIMIT failure lines per error class per second; the rest are counted and summarised,
// so a flood of client aborts cannot turn logging into the bottleneck.
const LIMIT = 20;
const windowStart = new Map<ErrorClass, number>();
const inWindow = new Map<ErrorClass, number>();
const suppressed = new Map<ErrorClass, number>();

export function logFailure(cls: ErrorClass, msg: string, fields?: Record<string, unknown>): void {
  const now = Date.now();
  const start = windowStart.get(cls) ?? 0;
  if (now - start >= 1000) {
    const dropped = suppressed.get(cls) ?? 0;
    if (dropped > 0) log('warn', 'failures suppressed', { error_class: cls, suppressed: dropped });
    windowStart.set(cls, now);
    inWindow.set(cls, 0);
    suppressed.set(cls, 0);
  }
  const n = (inWindow.get(cls) ?? 0) + 1;
  inWindow.set(cls, n);
  if (n > LIMIT) {
    suppressed.set(cls, (suppressed.get(cls) ?? 0) + 1);
    return;
  }
  log('warn', msg, { error_class: cls, ...fields });
}
