// The last applied Chainfire state on disk: the raw keys at one revision (re-validated on boot
// exactly like a fresh read). Written atomically: temp file, fsync, rename over, fsync the
// directory, so a crash leaves either the old file or the new one, never half of one.

import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../../../shared/atomic-file.ts';

export interface LastGood {
  readonly revision: number;
  readonly prefix: string;
  readonly kvs: ReadonlyMap<string, string>;
}

const FORMAT = 1;

export async function writeLastGood(path: string, state: LastGood): Promise<void> {
  const body = JSON.stringify({
    format: FORMAT,
    revision: state.revision,
    prefix: state.prefix,
    kvs: Object.fromEntries(state.kvs),
  });
  await writeFileAtomic(path, body);
}

/** The saved state, or why there is none usable (missing, unreadable, corrupt, other prefix). */
export async function readLastGood(
  path: string,
  prefix: string,
): Promise<{ ok: true; state: LastGood } | { ok: false; reason: string }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { ok: false, reason: code === 'ENOENT' ? 'missing' : `unreadable: ${(err as Error).message}` };
  }
  try {
    const o = JSON.parse(text) as { format?: unknown; revision?: unknown; prefix?: unknown; kvs?: unknown };
    if (o.format !== FORMAT) return { ok: false, reason: `corrupt: unknown format ${String(o.format)}` };
    if (typeof o.revision !== 'number' || !Number.isSafeInteger(o.revision) || o.revision < 1)
      return { ok: false, reason: 'corrupt: no revision' };
    if (o.prefix !== prefix)
      return { ok: false, reason: `written for prefix ${String(o.prefix)}, not ${prefix}` };
    if (!o.kvs || typeof o.kvs !== 'object' || Array.isArray(o.kvs))
      return { ok: false, reason: 'corrupt: no keys' };
    const kvs = new Map<string, string>();
    for (const [k, v] of Object.entries(o.kvs)) {
      if (typeof v !== 'string') return { ok: false, reason: `corrupt: value of ${k} is not a string` };
      kvs.set(k, v);
    }
    return { ok: true, state: { revision: o.revision, prefix, kvs } };
  } catch (err) {
    return { ok: false, reason: `corrupt: ${(err as Error).message}` };
  }
}
