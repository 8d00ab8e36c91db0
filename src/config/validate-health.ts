// Validation of a pool's health settings: the active `health_check`, `retry`,
// `outlier_detection`, and the small pool keys that go with them (panic_threshold,
// slow_start). Split from validate.ts so the health work stays in one file.

import { formatDuration } from './duration.ts';
import {
  HEALTH_CHECK_TYPES,
  type HealthCheckConfig,
  type OutlierDetectionConfig,
  type RetryConfig,
  type StatusRange,
} from './model.ts';
import type { Node } from './tree.ts';
import { describe, type Fields, type Walker } from './walker.ts';

/** Token characters of an HTTP method (RFC 9110 §5.6.2). */
const METHOD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const RANGE = /^([1-5]\d\d)(?:\s*-\s*([1-5]\d\d))?$/;

export const DEFAULT_RETRY: RetryConfig = {
  attempts: 2,
  onStatus: [],
  budgetPercent: 20,
  budgetMin: 3,
  maxRetryAfterMs: 1_000,
};

export function validateHealthCheck(w: Walker, node: Node, path: string): HealthCheckConfig {
  const f = w.map(node, path, [
    'type',
    'path',
    'method',
    'host',
    'expect_status',
    'body_contains',
    'interval',
    'timeout',
    'jitter',
    'rise',
    'fall',
  ]);
  const type = w.oneOf(f, 'type', HEALTH_CHECK_TYPES, 'tcp') ?? 'tcp';
  const http = type !== 'tcp';
  for (const key of ['path', 'method', 'host', 'expect_status', 'body_contains'])
    if (!http && f.has(key)) w.report(f.keyPos(key), f.at(key), 'only allowed when type is http or https');
  let checkPath = http ? w.str(f, 'path') : undefined;
  if (checkPath !== undefined && !checkPath.startsWith('/')) {
    w.report(f.get('path')!.pos, f.at('path'), `path '${checkPath}' must start with /`);
    checkPath = undefined;
  }
  let method = http ? w.str(f, 'method') : undefined;
  if (method !== undefined && !METHOD.test(method)) {
    w.report(f.get('method')!.pos, f.at('method'), `invalid method '${method}'`);
    method = undefined;
  }
  const host = http ? w.str(f, 'host') : undefined;
  // Spaces or control characters would break the request head (the check refuses them).
  if (host !== undefined && /[^\x21-\x7e]/.test(host))
    w.report(f.get('host')!.pos, f.at('host'), 'must be printable ASCII without spaces');
  const expectStatus = http ? statusRanges(w, f, 'expect_status') : undefined;
  const bodyContains = http ? w.str(f, 'body_contains') : undefined;
  const intervalMs = w.duration(f, 'interval', 2_000);
  const timeoutMs = w.duration(f, 'timeout', 1_000);
  // A probe that may outlive its interval would overlap the next one.
  if (timeoutMs >= intervalMs)
    w.report(
      f.get('timeout')?.pos ?? f.get('interval')?.pos ?? f.pos,
      f.has('timeout') ? f.at('timeout') : f.at('interval'),
      `timeout (${formatDuration(timeoutMs)}) must be less than interval (${formatDuration(intervalMs)})`,
    );
  const jitterMs = w.duration(f, 'jitter', 0, true);
  if (jitterMs > intervalMs)
    w.report(
      f.get('jitter')!.pos,
      f.at('jitter'),
      `jitter (${formatDuration(jitterMs)}) must not exceed interval (${formatDuration(intervalMs)})`,
    );
  return {
    type,
    path: checkPath ?? '/',
    method: (method ?? 'GET').toUpperCase(),
    host,
    expectStatus: expectStatus ?? [{ from: 200, to: 399 }],
    bodyContains,
    intervalMs,
    timeoutMs,
    jitterMs,
    rise: w.int(f, 'rise', 1, 100, 2),
    fall: w.int(f, 'fall', 1, 100, 3),
  };
}

/** `"200-399"`, `200`, or a list of those → ranges; undefined when absent or invalid. */
function statusRanges(w: Walker, f: Fields, key: string): StatusRange[] | undefined {
  const n = f.get(key);
  if (n === undefined) return undefined;
  const items = n.kind === 'seq' ? n.items : [n];
  const out: StatusRange[] = [];
  items.forEach((item, i) => {
    const at = n.kind === 'seq' ? `${f.at(key)}[${i}]` : f.at(key);
    const text = item.kind === 'scalar' && item.value !== null ? String(item.value).trim() : undefined;
    const m = text === undefined ? null : RANGE.exec(text);
    if (m === null) {
      w.report(
        item.pos,
        at,
        `expected a status or range like 200 or "200-399", got ${text ?? describe(item)}`,
      );
      return;
    }
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (to < from) w.report(item.pos, at, `range ${text} is empty (${to} < ${from})`);
    else out.push({ from, to });
  });
  if (n.kind === 'seq' && items.length === 0) w.report(n.pos, f.at(key), 'must list at least one status');
  return out.length > 0 ? out : undefined;
}

/** A list of HTTP statuses 100-599 (an absent key → []). */
function statusList(w: Walker, f: Fields, key: string): number[] {
  const out: number[] = [];
  for (const item of w.list(f, key)) {
    const n = item.node;
    if (n.kind !== 'scalar' || typeof n.value !== 'number' || !Number.isInteger(n.value)) {
      w.typeError(n, item.path, 'an HTTP status (integer)');
      continue;
    }
    if (n.value < 100 || n.value > 599) w.report(n.pos, item.path, `${n.value} is out of range 100-599`);
    else out.push(n.value);
  }
  return out;
}

export function validateRetry(w: Walker, node: Node | undefined, path: string): RetryConfig {
  if (node === undefined) return DEFAULT_RETRY;
  const f = w.map(node, path, ['attempts', 'on_status', 'budget_percent', 'budget_min', 'max_retry_after']);
  const d = DEFAULT_RETRY;
  return {
    attempts: w.int(f, 'attempts', 0, 10, d.attempts),
    onStatus: statusList(w, f, 'on_status'),
    budgetPercent: w.int(f, 'budget_percent', 0, 100, d.budgetPercent),
    budgetMin: w.int(f, 'budget_min', 0, 1_000_000, d.budgetMin),
    maxRetryAfterMs: w.duration(f, 'max_retry_after', d.maxRetryAfterMs, true),
  };
}

export function validateOutlier(w: Walker, node: Node, path: string): OutlierDetectionConfig {
  const f = w.map(node, path, [
    'consecutive_failures',
    'on_status',
    'base_ejection_time',
    'max_ejection_time',
    'max_ejection_percent',
  ]);
  const baseEjectionMs = w.duration(f, 'base_ejection_time', 30_000);
  let maxEjectionMs = w.duration(f, 'max_ejection_time', 300_000);
  if (maxEjectionMs < baseEjectionMs) {
    w.report(
      f.get('max_ejection_time')?.pos ?? f.pos,
      f.at('max_ejection_time'),
      `max_ejection_time (${formatDuration(maxEjectionMs)}) must be at least base_ejection_time (${formatDuration(baseEjectionMs)})`,
    );
    maxEjectionMs = baseEjectionMs;
  }
  return {
    consecutiveFailures: w.int(f, 'consecutive_failures', 1, 1000, 5),
    onStatus: statusList(w, f, 'on_status'),
    baseEjectionMs,
    maxEjectionMs,
    maxEjectionPercent: w.int(f, 'max_ejection_percent', 0, 100, 50),
  };
}
