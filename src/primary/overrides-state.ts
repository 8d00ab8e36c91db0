// The admin overrides on disk (source file: admin.state_file), so a drain or a weight set
// through the admin API survives a restart. The whole set is written after every change,
// atomically (shared/atomic-file.ts: temp file, fsync, rename, fsync of the directory), and
// read back at start before the first config is applied; overrides of backends the config no
// longer has are then dropped (and logged) like on any load. A file that cannot be read or
// parsed is reported (error class admin_state_file), moved aside to FILE.corrupt so the next
// write does not destroy it, and FiberLB starts without its overrides: never a failed boot.

import { readFile, rename } from 'node:fs/promises';
import { ADMIN_STATES, type AdminState } from '../config/model.ts';
import { writeFileAtomic } from '../shared/atomic-file.ts';
import { errorText, type Failures } from '../shared/failure.ts';
import { log } from '../shared/log.ts';
import type { BackendOverride, BackendOverrides } from './overrides.ts';

const FORMAT = 1;

type Entry = [string, BackendOverride];

export class OverridesStateFile {
  private chain: Promise<unknown> = Promise.resolve();
  private readonly counters = { writes: 0, write_failures: 0 };
  private lastError: string | undefined;

  constructor(readonly path: string) {}

  /** Write the whole set. Calls are serialized, so the file ends with the last call's content. */
  save(entries: readonly Entry[]): Promise<void> {
    const body = `${JSON.stringify({
      format: FORMAT,
      overrides: Object.fromEntries(
        entries.map(([key, o]) => [
          key,
          {
            ...(o.adminState !== undefined ? { admin_state: o.adminState } : {}),
            ...(o.weight !== undefined ? { weight: o.weight } : {}),
            at: o.at,
          },
        ]),
      ),
    })}\n`;
    const run = this.chain.then(() => writeFileAtomic(this.path, body));
    this.chain = run.catch(() => {});
    return run.then(
      () => {
        this.counters.writes++;
        this.lastError = undefined;
      },
      (err: unknown) => {
        this.counters.write_failures++;
        this.lastError = `cannot write: ${errorText(err)}`;
        throw err;
      },
    );
  }

  /** The saved overrides; `missing` when there is no file yet (not an error). */
  async read(): Promise<{ ok: true; entries: Entry[] } | { ok: false; missing: boolean; reason: string }> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      return { ok: false, missing, reason: missing ? 'missing' : `unreadable: ${errorText(err)}` };
    }
    let o: { format?: unknown; overrides?: unknown };
    try {
      o = JSON.parse(text) as typeof o;
    } catch (err) {
      return { ok: false, missing: false, reason: `corrupt: ${(err as Error).message}` };
    }
    if (o === null || typeof o !== 'object' || o.format !== FORMAT)
      return { ok: false, missing: false, reason: `corrupt: not a format ${FORMAT} state file` };
    if (!o.overrides || typeof o.overrides !== 'object' || Array.isArray(o.overrides))
      return { ok: false, missing: false, reason: 'corrupt: no overrides object' };
    const entries: Entry[] = [];
    for (const [key, v] of Object.entries(o.overrides as Record<string, unknown>)) {
      const e = parseEntry(v);
      if (typeof e === 'string') return { ok: false, missing: false, reason: `corrupt: ${key}: ${e}` };
      entries.push([key, e]);
    }
    return { ok: true, entries };
  }

  /** Move an unusable file aside (FILE.corrupt), so the next write does not overwrite the evidence. */
  async setAside(): Promise<string | undefined> {
    const to = `${this.path}.corrupt`;
    try {
      await rename(this.path, to);
      return to;
    } catch {
      return undefined;
    }
  }

  /** For /api/v1/status: where, how many writes, the last write error. */
  status(): Record<string, unknown> {
    return { path: this.path, ...this.counters, error: this.lastError ?? null };
  }
}

function parseEntry(v: unknown): BackendOverride | string {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return 'not an object';
  const { admin_state: state, weight, at } = v as Record<string, unknown>;
  if (state !== undefined && !ADMIN_STATES.includes(state as AdminState))
    return `admin_state must be one of ${ADMIN_STATES.join(', ')}`;
  if (
    weight !== undefined &&
    (typeof weight !== 'number' || !Number.isInteger(weight) || weight < 1 || weight > 1000)
  )
    return 'weight must be an integer 1-1000';
  if (state === undefined && weight === undefined) return 'neither admin_state nor weight';
  return {
    ...(state !== undefined ? { adminState: state as AdminState } : {}),
    ...(weight !== undefined ? { weight: weight as number } : {}),
    at: typeof at === 'string' ? at : new Date(0).toISOString(),
  };
}

/**
 * At start, before the first config is applied: the saved overrides into `overrides`. A bad
 * file is reported and set aside; the boot goes on without it.
 */
export async function restoreOverrides(
  file: OverridesStateFile,
  overrides: BackendOverrides,
  failures: Failures,
): Promise<void> {
  const r = await file.read();
  if (r.ok) {
    for (const [key, o] of r.entries) overrides.restore(key, o);
    if (r.entries.length > 0)
      log('info', 'admin overrides restored', { state_file: file.path, overrides: r.entries.length });
    return;
  }
  if (r.missing) return;
  const movedTo = await file.setAside();
  failures.report('admin_state_file', 'admin state file unusable; starting without its overrides', {
    state_file: file.path,
    error: r.reason,
    ...(movedTo ? { moved_to: movedTo } : {}),
  });
}

/** After overrides were dropped by a load: the file follows (a failure is reported, not fatal). */
export function saveAfterDrop(
  file: OverridesStateFile,
  overrides: BackendOverrides,
  failures: Failures,
): void {
  file.save(overrides.entries()).catch((err: unknown) =>
    failures.report('admin_state_file', 'cannot write the admin state file', {
      state_file: file.path,
      error: errorText(err),
    }),
  );
}
