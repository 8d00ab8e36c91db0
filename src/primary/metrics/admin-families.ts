// Metric families of the admin API's backend actions, read from the writer in force
// (admin/backend-writer.ts: the file source's overrides, or Chainfire). Names pinned by
// test/metrics.test.ts.

import { counter, type MetricFamily } from '../../shared/metrics.ts';
import type { BackendWriter } from '../admin/backend-writer.ts';

export function adminWriterFamilies(writer: BackendWriter): MetricFamily[] {
  const s = writer.stats();
  const writesTo = writer.writesTo;
  return [
    counter(
      'fiberlb_admin_backend_actions_total',
      'Admin API backend actions (drain, disable, enable, weight, reset) by result, and where they were written.',
      [
        { labels: { writes_to: writesTo, result: 'written' }, value: s.written },
        { labels: { writes_to: writesTo, result: 'failed' }, value: s.failed },
        { labels: { writes_to: writesTo, result: 'denied' }, value: s.denied },
      ],
    ),
    counter(
      'fiberlb_admin_store_write_conflicts_total',
      'Backend action writes to Chainfire tried again after a concurrent change won.',
      [{ labels: {}, value: s.conflictsRetried }],
    ),
  ];
}
