// The last applied Chainfire state on disk: the raw keys at one revision (re-validated on boot
// exactly like a fresh read). Written atomically: temp file, fsync, rename over, fsync the
// directory, so a crash leaves either the old file or the new one, never half of one.

import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface LastGood {
  readonly revision: number;
  readonly prefix: string;
  readonly kvs: ReadonlyMap<string, string>;
}

const FORMAT = 1;

export async function writeLastGood(path: string, state: LastGood): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const body = JSON.stringify({
    format: FORMAT,
    revision: state.revision,
    prefix: state.prefix,
    kvs: Object.fromEntries(state.kvs),
  });
  const tmp = `${path}.${process.pid}.tmp`;
  const f = await open(tmp, 'w', 0o600);
  try {
    await f.writeFile(body);
    await f.sync();
  } finally {
    await f.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
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
