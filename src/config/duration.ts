// Durations as users write them ("250ms", "2s", "1m30s") → whole milliseconds. Bare numbers
// are rejected: "30" could mean seconds or milliseconds, and guessing wrong is a silent outage.

import type { ParseResult } from '../shared/cidr.ts';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;

// setTimeout fires immediately for delays above 2^31-1 ms, so longer values would misbehave.
export const MAX_DURATION_MS = 2 ** 31 - 1;

export function parseDuration(value: string | number): ParseResult<number> {
  if (typeof value === 'number' || /^\d+(\.\d+)?$/.test(value))
    return { ok: false, reason: 'duration needs a unit (ms, s, m, h)' };
  if (value === '')
    return { ok: false, reason: "invalid duration '': expected e.g. 250ms, 2s, 1m, 1h, 1m30s" };
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < value.length) {
    const at = PART.lastIndex;
    const m = PART.exec(value);
    if (!m || m.index !== at)
      return { ok: false, reason: `invalid duration '${value}': expected e.g. 250ms, 2s, 1m, 1h, 1m30s` };
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
  }
  // Round away float noise ("0.1s" * 1000) but refuse sub-millisecond precision.
  const ms = Math.round(total * 1000) / 1000;
  if (!Number.isInteger(ms))
    return { ok: false, reason: `invalid duration '${value}': must be a whole number of milliseconds` };
  if (ms > MAX_DURATION_MS) return { ok: false, reason: `duration '${value}' is too long (max 596h)` };
  return { ok: true, value: ms };
}

/** Canonical short form for messages: 1500 → "1.5s", 90000 → "1m30s". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${ms / 1000}s`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = (ms % 60_000) / 1000;
  return `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${s ? `${s}s` : ''}`;
}
