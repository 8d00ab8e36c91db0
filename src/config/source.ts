// Where a config comes from. The file source and (later) the Chainfire source both hand back a
// fully validated Config or every problem found; callers keep their last good config on failure.

import type { ConfigIssue } from './issue.ts';
import type { Config } from './model.ts';

export type LoadResult = { ok: true; config: Config } | { ok: false; issues: ConfigIssue[] };

export interface ConfigSource {
  /** For logs and messages, e.g. the file path. */
  readonly description: string;
  /** Read and validate everything. Never rejects for bad input: that is an issue. */
  load(): Promise<LoadResult>;
  close(): Promise<void>;
}
