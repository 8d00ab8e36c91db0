// Capture the JSON log lines a test provokes (instead of printing them) and find the failure
// lines by error class.

import type { TestContext } from 'node:test';
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
