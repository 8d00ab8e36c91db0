// Capture the JSON log lines a test provokes (instead of printing them) and find the failure
// lines by error class.

import assert from 'node:assert/strict';
import { beforeEach, type TestContext } from 'node:test';
import { setLogSink } from '../../src/shared/log.ts';

export interface Captured {
  readonly lines: Array<Record<string, unknown>>;
  /** Failure lines of one error class. */
  of(cls: string): Array<Record<string, unknown>>;
}

/** Send every log line to the returned list until the test ends. */
export function captureLog(t: TestContext): Captured {
  const lines: Array<Record<string, unknown>> = [];
  setLogSink((_level, line) => lines.push(JSON.parse(line) as Record<string, unknown>));
  t.after(() => setLogSink(undefined));
  return { lines, of: (cls) => lines.filter((l) => l.error_class === cls) };
}

/**
 * For a whole test file: every log line goes to `lines` (emptied before each test), and
 * `counted(failures, cls)` returns a class's count after asserting that exactly as many
 * failure lines of that class were logged, each naming its listener as "lb/listener" — so a
 * passing run prints nothing and every failure a test provokes is also checked in the log.
 */
export function captureFileLog(): {
  readonly lines: Array<Record<string, unknown>>;
  counted(failures: { toJSON(): Record<string, number> }, cls: string): number;
} {
  const lines: Array<Record<string, unknown>> = [];
  setLogSink((_level, line) => lines.push(JSON.parse(line) as Record<string, unknown>));
  beforeEach(() => {
    lines.length = 0;
  });
  return {
    lines,
    counted(failures, cls) {
      const n = failures.toJSON()[cls] ?? 0;
      const logged = lines.filter((l) => l.error_class === cls);
      assert.equal(logged.length, n, `${cls}: ${n} counted, ${logged.length} logged`);
      for (const l of logged) assert.match(String(l.listener), /^[\w-]+\/[\w-]+$/, JSON.stringify(l));
      return n;
    },
  };
}
