// What a worker tells the primary about backend health, on a timer and never per request:
// passive-health batches (upstream/outlier.ts) and in-flight counts of draining backends.

import type { WorkerToPrimary } from '../ipc.ts';
import { REPORT_INTERVAL_MS, takeOutlierBatch } from './upstream/outlier.ts';
import { retryStats } from './upstream/retry.ts';

export function startHealthReports(
  send: (m: WorkerToPrimary) => void,
  revision: () => number,
  draining: () => Record<string, number>,
): void {
  let lastDrain = '';
  let lastRevision = -1;
  setInterval(() => {
    const counts = takeOutlierBatch();
    if (counts.length > 0) send({ type: 'outlier', counts });
    const rev = revision();
    if (rev === 0) return;
    const inflight = draining();
    const sig = JSON.stringify(inflight);
    // Once per revision (so the primary knows this worker has seen it), then on change.
    if (sig === lastDrain && rev === lastRevision) return;
    lastDrain = sig;
    lastRevision = rev;
    send({ type: 'draining', revision: rev, inflight });
  }, REPORT_INTERVAL_MS).unref();
}

/** This worker's health-feature counters for /status and /metrics. */
export function healthCounters(): Record<string, number> {
  return { ...retryStats() };
}
