// Backend actions with the file source: the primary's in-memory overrides (overrides.ts),
// written to admin.state_file before they take effect. If that write fails the override is put
// back as it was and the action is refused (500, admin_state_file): what serves never differs
// from what a restart would serve. Then the overrides are applied as the next revision and the
// answer waits for the workers (Primary.reapply).

import { errorText, type Failures } from '../../shared/failure.ts';
import type { ReloadOutcome } from '../health.ts';
import type { BackendOverrides } from '../overrides.ts';
import type { OverridesStateFile } from '../overrides-state.ts';
import {
  type BackendTarget,
  type BackendWriter,
  describeAction,
  type WriteOutcome,
  type WriterStats,
} from './backend-writer.ts';
import type { BackendAction } from './routes.ts';

export interface OverrideActionsDeps {
  readonly overrides: BackendOverrides;
  /** The state file (known once the first config is read); undefined: memory only. */
  stateFile(): OverridesStateFile | undefined;
  reapply(reason: string): Promise<ReloadOutcome>;
  readonly failures: Failures;
}

export class OverrideActions implements BackendWriter {
  readonly writesTo = 'overrides';
  /** Change + save, one at a time: memory and file change in the same order. */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly counters = { written: 0, failed: 0 };

  constructor(private readonly d: OverrideActionsDeps) {}

  async write(t: BackendTarget, a: BackendAction): Promise<WriteOutcome> {
    const saved = this.queue.then(() => this.change(t, a));
    this.queue = saved.catch(() => {});
    const r = await saved;
    if (r) return r;
    const outcome = await this.d.reapply(`admin: ${t.key} ${describeAction(a)}`);
    const file = this.d.stateFile();
    return { ok: true, outcome, extra: file ? { state_file: file.path } : {} };
  }

  status(): Record<string, unknown> {
    return { writes_to: 'overrides', state_file: this.d.stateFile()?.status() ?? null };
  }

  stats(): WriterStats {
    return { ...this.counters, denied: 0, conflictsRetried: 0 };
  }

  /** undefined: changed (and saved); else the refusal. */
  private async change(t: BackendTarget, a: BackendAction): Promise<WriteOutcome | undefined> {
    const { overrides } = this.d;
    const before = overrides.get(t.key);
    if (a.kind === 'reset') overrides.clear(t.key);
    else if (a.kind === 'weight') overrides.set(t.key, { weight: a.weight });
    else overrides.set(t.key, { adminState: a.adminState });
    const file = this.d.stateFile();
    if (!file) {
      this.counters.written++;
      return undefined;
    }
    try {
      await file.save(overrides.entries());
      this.counters.written++;
      return undefined;
    } catch (err) {
      this.counters.failed++;
      overrides.restore(t.key, before);
      this.d.failures.report('admin_state_file', 'cannot write the admin state file; action refused', {
        backend: t.key,
        state_file: file.path,
        error: errorText(err),
      });
      return {
        ok: false,
        status: 500,
        error: `cannot write ${file.path} (${errorText(err)}); nothing changed`,
        errorClass: 'admin_state_file',
      };
    }
  }
}
