// Byte sizes as users write them: integer bytes, or "512B", "16KiB", "10MiB", "1GiB" (binary)
// and "64KB", "1MB", "1GB" (decimal). Units are case-sensitive so "MB" vs "MiB" stays explicit.

import type { ParseResult } from '../shared/cidr.ts';

const UNIT_BYTES: Record<string, number> = {
  B: 1,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  KB: 1000,
  MB: 1000 ** 2,
  GB: 1000 ** 3,
};
const SIZE = /^(\d+)(B|KiB|MiB|GiB|KB|MB|GB)?$/;

export function parseSize(value: string | number): ParseResult<number> {
  const bad = {
    ok: false,
    reason: `invalid size '${value}': expected bytes or e.g. 512B, 16KiB, 10MiB, 1GiB, 64KB, 1MB`,
  } as const;
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) && value >= 0 ? { ok: true, value } : bad;
  }
  const m = SIZE.exec(value);
  if (!m) return bad;
  const bytes = Number(m[1]) * UNIT_BYTES[m[2] ?? 'B']!;
  return Number.isSafeInteger(bytes) ? { ok: true, value: bytes } : bad;
}

/** Short form for messages: 16384 → "16KiB", 1000 → "1000B". */
export function formatSize(bytes: number): string {
  for (const unit of ['GiB', 'MiB', 'KiB'] as const) {
    const n = UNIT_BYTES[unit]!;
    if (bytes >= n && bytes % n === 0) return `${bytes / n}${unit}`;
  }
  return `${bytes}B`;
}
