// Reading typed values out of a config tree (tree.ts) while collecting located issues: the
// vocabulary (strings, ports, enums, durations, sizes, unique names...) the schema is written in.
// Nothing here knows FiberLB's schema; validate.ts does.

import { resolve } from 'node:path';
import { parseDuration } from './duration.ts';
import type { ConfigIssue } from './issue.ts';
import { formatSize, parseSize } from './size.ts';
import type { Entry, Node, Pos } from './tree.ts';

// LB, listener and pool names end up in metric labels, log fields and Chainfire keys.
const NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/i;

type MapNode = Extract<Node, { kind: 'map' }>;

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

function isNull(n: Node): boolean {
  return n.kind === 'scalar' && n.value === null;
}

export function describe(n: Node): string {
  switch (n.kind) {
    case 'map':
      return 'a mapping';
    case 'seq':
      return 'a list';
    case 'invalid':
      return n.what;
    case 'scalar':
      if (n.value === null) return 'nothing';
      return typeof n.value === 'string' ? `string '${n.value}'` : `${typeof n.value} ${n.value}`;
  }
}

function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

function suggest(word: string, known: readonly string[]): string | undefined {
  // camelCase spelling of a snake_case key is the most common slip when coming from JSON APIs.
  const snake = word.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  if (snake !== word && known.includes(snake)) return snake;
  let best: string | undefined;
  let bestDist = 3;
  for (const k of known) {
    const d = levenshtein(word.toLowerCase(), k);
    if (d < bestDist) [best, bestDist] = [k, d];
  }
  return best;
}

function oneOfList(allowed: readonly string[]): string {
  return allowed.join(', ');
}

/** The keys of one mapping in the document, with "key:" (null) treated as absent. */
export class Fields {
  private readonly byKey = new Map<string, Entry>();
  /** False when the mapping is absent or was not a mapping: "required" errors would be noise. */
  readonly present: boolean;

  constructor(
    readonly path: string,
    readonly pos: Pos | undefined,
    node: MapNode | undefined,
  ) {
    this.present = node !== undefined;
    for (const e of node?.entries ?? []) this.byKey.set(e.key, e);
  }

  get(key: string): Node | undefined {
    const e = this.byKey.get(key);
    return e && !isNull(e.value) ? e.value : undefined;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  keyPos(key: string): Pos | undefined {
    return this.byKey.get(key)?.keyPos ?? this.pos;
  }

  at(key: string): string {
    return join(this.path, key);
  }
}

export class Walker {
  readonly issues: ConfigIssue[] = [];

  constructor(
    readonly origin: string,
    /** Relative file paths in the config are resolved against this. */
    readonly baseDir: string,
  ) {}

  report(pos: Pos | undefined, path: string, message: string): void {
    this.issues.push({ origin: this.origin, ...(pos ?? {}), path: path || '(root)', message });
  }

  typeError(n: Node, path: string, expected: string): void {
    // A number or boolean where text was wanted is almost always a missing pair of quotes.
    const hint =
      expected === 'a string' && n.kind === 'scalar' && n.value !== null ? ` (quote it: "${n.value}")` : '';
    this.report(n.pos, path, `expected ${expected}, got ${describe(n)}${hint}`);
  }

  /** Open a mapping, reporting unknown keys (with a suggestion) at the key. */
  map(n: Node | undefined, path: string, known: readonly string[], pos?: Pos): Fields {
    if (n === undefined) return new Fields(path, pos, undefined);
    if (n.kind !== 'map') {
      this.typeError(n, path, 'a mapping');
      return new Fields(path, n.pos, undefined);
    }
    for (const e of n.entries) {
      if (known.includes(e.key)) continue;
      const s = suggest(e.key, known);
      this.report(
        e.keyPos ?? n.pos,
        join(path, e.key),
        `unknown key '${e.key}'${s ? `; did you mean '${s}'?` : ''}`,
      );
    }
    return new Fields(path, n.pos, n);
  }

  /** A list's items with their paths; absent → []. */
  list(f: Fields, key: string): Array<{ node: Node; path: string }> {
    const n = f.get(key);
    if (n === undefined) return [];
    if (n.kind !== 'seq') {
      this.typeError(n, f.at(key), 'a list');
      return [];
    }
    return n.items.map((node, i) => ({ node, path: `${f.at(key)}[${i}]` }));
  }

  missing(f: Fields, key: string, why = 'is required'): void {
    // keyPos: "key:" with no value points at the key, a truly absent key at its mapping.
    if (f.present) this.report(f.keyPos(key), f.at(key), why);
  }

  /** A non-empty string. */
  strNode(n: Node, path: string): string | undefined {
    if (n.kind !== 'scalar' || typeof n.value !== 'string') {
      this.typeError(n, path, 'a string');
      return undefined;
    }
    if (n.value.trim() === '') {
      this.report(n.pos, path, 'must not be empty');
      return undefined;
    }
    return n.value;
  }

  str(f: Fields, key: string, required = false): string | undefined {
    const n = f.get(key);
    if (n === undefined) {
      if (required) this.missing(f, key);
      return undefined;
    }
    return this.strNode(n, f.at(key));
  }

  name(f: Fields, key: string): string | undefined {
    const s = this.str(f, key, true);
    if (s === undefined) return undefined;
    if (!NAME.test(s)) {
      this.report(
        f.get(key)!.pos,
        f.at(key),
        `invalid name '${s}': use 1-63 letters, digits, '_' or '-', starting with a letter or digit`,
      );
    }
    return s;
  }

  int(f: Fields, key: string, min: number, max: number, def: number): number;
  int(f: Fields, key: string, min: number, max: number, def?: number): number | undefined;
  int(f: Fields, key: string, min: number, max: number, def?: number): number | undefined {
    const n = f.get(key);
    if (n === undefined) {
      if (def === undefined) this.missing(f, key);
      return def;
    }
    if (n.kind !== 'scalar' || typeof n.value !== 'number' || !Number.isInteger(n.value)) {
      this.typeError(n, f.at(key), 'an integer');
      return def;
    }
    if (n.value < min || n.value > max) {
      const range =
        max === Number.MAX_SAFE_INTEGER ? `must be at least ${min}` : `is out of range ${min}-${max}`;
      this.report(n.pos, f.at(key), `${n.value} ${range}`);
      return def;
    }
    return n.value;
  }

  port(f: Fields, key: string, def?: number): number | undefined {
    return this.int(f, key, 1, 65535, def);
  }

  positive(f: Fields, key: string): number | undefined {
    const n = f.get(key);
    if (n === undefined) return undefined;
    if (n.kind !== 'scalar' || typeof n.value !== 'number') {
      this.typeError(n, f.at(key), 'a number');
      return undefined;
    }
    if (!(n.value > 0) || !Number.isFinite(n.value)) {
      this.report(n.pos, f.at(key), `${n.value} must be greater than 0`);
      return undefined;
    }
    return n.value;
  }

  bool(f: Fields, key: string, def: boolean): boolean {
    const n = f.get(key);
    if (n === undefined) return def;
    if (n.kind !== 'scalar' || typeof n.value !== 'boolean') {
      this.typeError(n, f.at(key), 'true or false');
      return def;
    }
    return n.value;
  }

  /** `def` undefined: the key is required, unless `optional` (then absent → undefined). */
  oneOf<T extends string>(
    f: Fields,
    key: string,
    allowed: readonly T[],
    def?: T,
    optional = false,
  ): T | undefined {
    const n = f.get(key);
    if (n === undefined) {
      if (def === undefined && !optional) this.missing(f, key, `is required (one of: ${oneOfList(allowed)})`);
      return def;
    }
    if (
      n.kind === 'scalar' &&
      typeof n.value === 'string' &&
      (allowed as readonly string[]).includes(n.value)
    )
      return n.value as T;
    const got = n.kind === 'scalar' && typeof n.value === 'string' ? `'${n.value}'` : describe(n);
    this.report(n.pos, f.at(key), `invalid value ${got}; expected one of: ${oneOfList(allowed)}`);
    return undefined;
  }

  duration(f: Fields, key: string, def: number, allowZero = false): number {
    const n = f.get(key);
    if (n === undefined) return def;
    if (n.kind !== 'scalar' || (typeof n.value !== 'string' && typeof n.value !== 'number')) {
      this.typeError(n, f.at(key), 'a duration (e.g. 250ms, 2s, 1m30s)');
      return def;
    }
    const d = parseDuration(n.value);
    if (!d.ok) {
      this.report(n.pos, f.at(key), d.reason);
      return def;
    }
    if (d.value === 0 && !allowZero) {
      this.report(n.pos, f.at(key), 'must be greater than 0');
      return def;
    }
    return d.value;
  }

  size(f: Fields, key: string, def: number, min: number, max: number): number {
    const n = f.get(key);
    if (n === undefined) return def;
    if (n.kind !== 'scalar' || (typeof n.value !== 'string' && typeof n.value !== 'number')) {
      this.typeError(n, f.at(key), 'a size (bytes, or e.g. 16KiB, 10MiB)');
      return def;
    }
    const s = parseSize(n.value);
    if (!s.ok) {
      this.report(n.pos, f.at(key), s.reason);
      return def;
    }
    if (s.value < min || s.value > max) {
      const range =
        max === Number.MAX_SAFE_INTEGER
          ? `at least ${formatSize(min)}`
          : `${formatSize(min)}-${formatSize(max)}`;
      this.report(n.pos, f.at(key), `size ${n.value} is out of range ${range}`);
      return def;
    }
    return s.value;
  }

  /** A string checked by an address rule (see address.ts). */
  address(
    f: Fields,
    key: string,
    check: (s: string) => string | undefined,
    required = false,
  ): string | undefined {
    const s = this.str(f, key, required);
    if (s === undefined) return undefined;
    const reason = check(s);
    if (reason) {
      this.report(f.get(key)!.pos, f.at(key), reason);
      return undefined;
    }
    return s;
  }

  filePath(f: Fields, key: string, required = false): string | undefined {
    const s = this.str(f, key, required);
    return s === undefined ? undefined : resolve(this.baseDir, s);
  }

  /** Report the second of two equal values; `seen` maps value → the path of its first owner. */
  unique(
    seen: Map<string, string>,
    value: string | undefined,
    what: string,
    at: Fields,
    key: string,
  ): boolean {
    if (value === undefined) return false;
    const first = seen.get(value);
    if (first === undefined) {
      seen.set(value, at.path);
      return false;
    }
    this.report(at.get(key)?.pos ?? at.pos, at.at(key), `duplicate ${what}; first used at ${first}`);
    return true;
  }
}
