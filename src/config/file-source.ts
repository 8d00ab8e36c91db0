// The default config source: one YAML file, re-read in full on every load(). Its revision is
// its own counter of good loads. With `source: { type: file, watch: true }` the primary also
// calls watch(): a saved edit then reloads exactly like SIGHUP. The files the config names
// (certificates, keys, CA bundles) are read by the same load() and watched too, so a replaced
// certificate is picked up like an edit of the config.

import { type FSWatcher, watch as fsWatch, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { type FileReader, osErrorText } from './material.ts';
import type { ConfigSource, LoadResult } from './source.ts';
import { parseConfigText, type ValidateOptions } from './validate.ts';

/** Editors write in bursts (truncate, write, rename, chmod): one reload per burst. */
const DEBOUNCE_MS = 200;

export class FileSource implements ConfigSource {
  readonly description: string;
  private revision = 0;
  /** The text the last load() read (valid or not): watch events that leave it unchanged are dropped. */
  private lastText: string | undefined;
  private fileWatcher: FSWatcher | undefined;
  private dirWatcher: FSWatcher | undefined;
  /** Files the config named in the last load() → their text then (undefined: unreadable). */
  private material = new Map<string, string | undefined>();
  /** Directory watches for those files, by directory. */
  private readonly materialDirs = new Map<string, FSWatcher>();
  private kick: (() => void) | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private closed = false;

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
      this.lastText = undefined;
      return {
        ok: false,
        issues: [{ origin: this.path, path: '(file)', message: `cannot read: ${osErrorText(err)}` }],
      };
    }
    this.lastText = text;
    const material = new Map<string, string | undefined>();
    const reader: FileReader = (p) => {
      try {
        const t = readFileSync(p, 'utf8');
        material.set(p, t);
        return t;
      } catch (err) {
        material.set(p, undefined);
        throw err;
      }
    };
    const r = parseConfigText(text, this.path, { readFile: reader, ...this.opts });
    this.material = material;
    this.armMaterialWatch();
    return r.ok ? { ok: true, config: r.config, revision: ++this.revision } : r;
  }

  /**
   * Watches the file itself and its directory: editors that save by writing a temp file and
   * renaming it over the original replace the inode, which a watch on the file alone stops
   * seeing (so the file watch is re-armed after every burst). A burst is debounced, then the
   * file is read and compared with what the last load() saw, so touch, chmod or an unrelated
   * file in the directory never reload.
   */
  watch(onChange: () => void): void {
    if (this.dirWatcher || this.closed) return;
    const file = resolve(this.path);
    const name = basename(file);
    const settle = async (): Promise<void> => {
      this.armFileWatch(file, kick);
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch {
        return; // gone mid-replace (or deleted): the create that follows fires again
      }
      if (!this.closed && (text !== this.lastText || this.materialChanged())) onChange();
    };
    const kick = (): void => {
      clearTimeout(this.debounce);
      this.debounce = setTimeout(() => void settle(), DEBOUNCE_MS);
    };
    this.kick = kick;
    this.armMaterialWatch();
    // persistent: false — watching must never keep a stopping primary alive.
    this.dirWatcher = fsWatch(dirname(file), { persistent: false }, (_event, entry) => {
      // Other entries matter too when the file is a symlink swapped by its directory
      // (Kubernetes ConfigMaps rename "..data"); the content comparison filters the rest.
      if (entry === null || entry === name || entry.startsWith('..')) kick();
    });
    this.dirWatcher.on('error', () => {});
    this.armFileWatch(file, kick);
  }

  /** Did a file the config names change since the last load() (content, or readability)? */
  private materialChanged(): boolean {
    for (const [p, before] of this.material) {
      let now: string | undefined;
      try {
        now = readFileSync(p, 'utf8');
      } catch {
        now = undefined;
      }
      if (now !== before) return true;
    }
    return false;
  }

  /** Watch the directories of the files the last load() read (after watch() was called). */
  private armMaterialWatch(): void {
    const kick = this.kick;
    if (kick === undefined || this.closed) return;
    const names = new Map<string, Set<string>>();
    for (const p of this.material.keys()) {
      const dir = dirname(p);
      if (!names.has(dir)) names.set(dir, new Set());
      names.get(dir)!.add(basename(p));
    }
    for (const [dir, w] of this.materialDirs)
      if (!names.has(dir)) {
        w.close();
        this.materialDirs.delete(dir);
      }
    for (const [dir, files] of names) {
      this.materialDirs.get(dir)?.close();
      try {
        // Same rules as the config's own directory: renames over the file, "..data" swaps.
        const w = fsWatch(dir, { persistent: false }, (_e, entry) => {
          if (entry === null || files.has(entry) || entry.startsWith('..')) kick();
        });
        w.on('error', () => {});
        this.materialDirs.set(dir, w);
      } catch {
        this.materialDirs.delete(dir); // a missing directory: reported by the load itself
      }
    }
  }

  private armFileWatch(file: string, kick: () => void): void {
    this.fileWatcher?.close();
    this.fileWatcher = undefined;
    if (this.closed) return;
    try {
      const w = fsWatch(file, { persistent: false }, kick);
      // ENOENT/EPERM after a replace: the directory watch still sees the next write.
      w.on('error', () => {
        w.close();
        if (this.fileWatcher === w) this.fileWatcher = undefined;
      });
      this.fileWatcher = w;
    } catch {
      // The file is missing right now; the directory watch re-arms it once it is back.
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.debounce);
    this.fileWatcher?.close();
    this.dirWatcher?.close();
    this.fileWatcher = this.dirWatcher = undefined;
    for (const w of this.materialDirs.values()) w.close();
    this.materialDirs.clear();
  }
}
