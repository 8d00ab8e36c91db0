// The one failure path. Every place that observes a failure calls Failures.report(): it
// counts the class (the per-process counters that /status and metrics read) and logs one
// rate-limited line with one field schema, so logs, counters and (later) metrics and access
// logs never disagree about what happened.

import type { ErrorClass } from './errors.ts';
import { log } from './log.ts';

/** The fields of a failure line, in addition to `msg` and `error_class`. */
export interface FailureFields {
  /** "lb/listener" */
  readonly listener?: string | undefined;
  /** "lb/pool/backend_id" */
  readonly backend?: string | undefined;
  /** "address:port" of the backend */
  readonly backend_address?: string | undefined;
  /** Client address (after PROXY protocol / trusted X-Forwarded-For). */
  readonly client?: string | undefined;
  readonly request_id?: string | undefined;
  /** What went wrong: the underlying error ("ECONNREFUSED: ...") or our own words. */
  readonly error?: string | undefined;
  /** Anything else worth a field (kept flat and small: no bodies, no secrets). */
  readonly [extra: string]: string | number | boolean | undefined | readonly string[];
}

// At most LIMIT lines per error class per second; the rest are counted and summarised, so a
// flood of client aborts cannot turn logging into the bottleneck.
const LIMIT = 20;

export class Failures {
  /** Count per error class since the process started. */
  readonly counts = new Map<ErrorClass, number>();
  private readonly windowStart = new Map<ErrorClass, number>();
  private readonly inWindow = new Map<ErrorClass, number>();
  private readonly suppressed = new Map<ErrorClass, number>();

  report(cls: ErrorClass, msg: string, fields?: FailureFields): void {
    this.counts.set(cls, (this.counts.get(cls) ?? 0) + 1);
    const now = Date.now();
    if (now - (this.windowStart.get(cls) ?? 0) >= 1000) {
      const dropped = this.suppressed.get(cls) ?? 0;
      if (dropped > 0) log('warn', 'failures suppressed', { error_class: cls, suppressed: dropped });
      this.windowStart.set(cls, now);
      this.inWindow.set(cls, 0);
      this.suppressed.set(cls, 0);
    }
    const n = (this.inWindow.get(cls) ?? 0) + 1;
    this.inWindow.set(cls, n);
    if (n > LIMIT) {
      this.suppressed.set(cls, (this.suppressed.get(cls) ?? 0) + 1);
      return;
    }
    log('warn', msg, { error_class: cls, ...fields });
  }

  toJSON(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }
}

/** "ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:9" for the `error` field. */
export function errorText(err: unknown): string | undefined {
  if (err === undefined || err === null) return undefined;
  const e = err as { code?: unknown; message?: unknown };
  const message = typeof e.message === 'string' ? e.message : String(err);
  return typeof e.code === 'string' && !message.startsWith(e.code) ? `${e.code}: ${message}` : message;
}
