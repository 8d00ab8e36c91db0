// A small, position-aware view of a parsed config document. YAML text and JSON values (the
// Chainfire source) are both turned into this tree so that ONE validator walks them; YAML nodes
// carry line:col, JSON nodes carry none.

import YAML, { LineCounter } from 'yaml';

export interface Pos {
  readonly line: number;
  readonly col: number;
}

export interface Entry {
  readonly key: string;
  readonly keyPos: Pos | undefined;
  readonly value: Node;
}

export type Node =
  | { readonly kind: 'map'; readonly pos: Pos | undefined; readonly entries: readonly Entry[] }
  | { readonly kind: 'seq'; readonly pos: Pos | undefined; readonly items: readonly Node[] }
  | {
      readonly kind: 'scalar';
      readonly pos: Pos | undefined;
      readonly value: string | number | boolean | null;
    }
  /** Something no config value can be (JSON: undefined, bigint, a cycle...); `what` describes it. */
  | { readonly kind: 'invalid'; readonly pos: Pos | undefined; readonly what: string };

export interface YamlError {
  readonly pos: Pos;
  readonly message: string;
}

// Aliases are expanded into the tree, so a "billion laughs" document must be cut off.
const MAX_NODES = 200_000;

export function fromYaml(text: string): { root: Node | undefined; errors: YamlError[] } {
  const lc = new LineCounter();
  const doc = YAML.parseDocument(text, { lineCounter: lc, prettyErrors: false });
  const errors: YamlError[] = doc.errors.map((e) => ({
    pos: lc.linePos(e.pos[0]),
    // yaml's "Map keys must be unique" does not name the key, and its span is one character.
    message: e.code === 'DUPLICATE_KEY' ? `duplicate key '${keyAt(text, e.pos[0])}'` : e.message,
  }));
  if (errors.length > 0 || doc.contents === null) return { root: undefined, errors };

  let count = 0;
  const posOf = (n: { range?: readonly number[] | null | undefined }): Pos | undefined =>
    n.range ? lc.linePos(n.range[0]!) : undefined;
  const convert = (n: unknown, fallback: Pos | undefined, active: Set<unknown>): Node => {
    if (++count > MAX_NODES) throw new TooLarge();
    if (YAML.isAlias(n)) {
      const target = n.resolve(doc);
      if (!target) return { kind: 'invalid', pos: posOf(n), what: `an unresolved alias *${n.source}` };
      if (active.has(target))
        return { kind: 'invalid', pos: posOf(n), what: `a recursive alias *${n.source}` };
      active.add(target);
      const out = convert(target, posOf(n), active);
      active.delete(target);
      return out;
    }
    if (YAML.isMap(n)) {
      const entries: Entry[] = n.items.map((pair) => {
        const keyPos = YAML.isNode(pair.key) ? posOf(pair.key) : undefined;
        const key = YAML.isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
        // An empty value ("key:") has a zero-width range after the colon; point at the key instead.
        const v = pair.value;
        const empty = v === null || (YAML.isScalar(v) && v.value === null && v.range?.[0] === v.range?.[1]);
        return {
          key,
          keyPos,
          value: empty ? { kind: 'scalar', pos: keyPos, value: null } : convert(v, keyPos, active),
        };
      });
      return { kind: 'map', pos: posOf(n) ?? fallback, entries };
    }
    if (YAML.isSeq(n)) {
      const pos = posOf(n) ?? fallback;
      return { kind: 'seq', pos, items: n.items.map((i) => convert(i, pos, active)) };
    }
    if (YAML.isScalar(n)) {
      const v = n.value;
      const pos = posOf(n) ?? fallback;
      if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean')
        return { kind: 'scalar', pos, value: v };
      return { kind: 'invalid', pos, what: describeForeign(v) };
    }
    return { kind: 'invalid', pos: fallback, what: describeForeign(n) };
  };
  try {
    return { root: convert(doc.contents, { line: 1, col: 1 }, new Set()), errors };
  } catch (e) {
    if (!(e instanceof TooLarge)) throw e;
    return {
      root: undefined,
      errors: [{ pos: { line: 1, col: 1 }, message: `document expands to more than ${MAX_NODES} nodes` }],
    };
  }
}

class TooLarge extends Error {}

function keyAt(text: string, offset: number): string {
  const m = /^\s*("[^"\n]*"|'[^'\n]*'|[^:,{}\n]*)/.exec(text.slice(offset));
  return (m?.[1] ?? '').trim().replace(/^(["'])(.*)\1$/, '$2');
}

export function fromJson(value: unknown): Node {
  const active = new Set<object>();
  const convert = (v: unknown): Node => {
    if (v === null || typeof v === 'string' || typeof v === 'boolean')
      return { kind: 'scalar', pos: undefined, value: v };
    if (typeof v === 'number') {
      return Number.isFinite(v)
        ? { kind: 'scalar', pos: undefined, value: v }
        : { kind: 'invalid', pos: undefined, what: `a non-finite number (${v})` };
    }
    if (typeof v !== 'object') return { kind: 'invalid', pos: undefined, what: describeForeign(v) };
    if (active.has(v)) return { kind: 'invalid', pos: undefined, what: 'a circular reference' };
    active.add(v);
    try {
      if (Array.isArray(v)) return { kind: 'seq', pos: undefined, items: v.map(convert) };
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null)
        return { kind: 'invalid', pos: undefined, what: describeForeign(v) };
      const entries = Object.entries(v as Record<string, unknown>)
        // JSON has no undefined; an explicitly undefined property is the same as a missing one.
        .filter(([, x]) => x !== undefined)
        .map(([key, x]) => ({ key, keyPos: undefined, value: convert(x) }));
      return { kind: 'map', pos: undefined, entries };
    } finally {
      active.delete(v);
    }
  };
  return convert(value);
}

function describeForeign(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (typeof v === 'object' && v !== null) return `an object of type ${v.constructor?.name ?? 'unknown'}`;
  return `a ${typeof v}`;
}
