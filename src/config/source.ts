// Where a config comes from. The file source and (later) the Chainfire source both hand back a
// fully validated Config or every problem found; callers keep their last good config on failure.
// A source can also push: watch() tells the caller when to load() again, so a change is applied
// exactly like a SIGHUP (Traefik's providers push the same way, pkg/provider/provider.go).

import type { ConfigIssue } from './issue.ts';
import type { Config } from './model.ts';

export type LoadResult =
  | {
      readonly ok: true;
      readonly config: Config;
      /**
       * Monotonic per source, the snapshot's revision: the file source counts its good loads;
       * the Chainfire source will use the store's revision.
       */
      readonly revision: number;
    }
  | { readonly ok: false; readonly issues: ConfigIssue[] };

export interface ConfigSource {
  /** For logs and messages, e.g. the file path. */
  readonly description: string;
  /** Read and validate everything. Never rejects for bad input: that is an issue. */
  load(): Promise<LoadResult>;
  /**
   * Call `onChange` whenever the content may have changed (debounced by the source); the
   * caller then load()s. At most one watch per source; close() ends it.
   */
  watch(onChange: () => void): void;
  close(): Promise<void>;
  /** Source-specific state for /status (Chainfire: revision, connection, quarantined keys). */
  status?(): Record<string, unknown>;
}
