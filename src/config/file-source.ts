// The default config source: one YAML file, re-read in full on every load().

import { readFile } from 'node:fs/promises';
import type { ConfigSource, LoadResult } from './source.ts';
import { parseConfigText, type ValidateOptions } from './validate.ts';

export class FileSource implements ConfigSource {
  readonly description: string;

  constructor(
    readonly path: string,
    private readonly opts: ValidateOptions = {},
  ) {
    this.description = path;
  }

  async load(): Promise<LoadResult> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      return { ok: false, issues: [{ origin: this.path, path: '(file)', message: osReason(err) }] };
    }
    return parseConfigText(text, this.path, this.opts);
  }

  async close(): Promise<void> {}
}

/** "ENOENT: no such file or directory, open 'x'" → "cannot read: no such file or directory (ENOENT)". */
function osReason(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  const message = typeof e?.message === 'string' ? e.message : String(err);
  const m = /^([A-Z][A-Z0-9_]+): ([^,]+)/.exec(message);
  return m ? `cannot read: ${m[2]} (${m[1]})` : `cannot read: ${message}`;
}
