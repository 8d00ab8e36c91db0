// Chainfire keys → the same config tree the YAML file produces, validated by THE SAME validator
// (validate.ts). Issues are located by key instead of file:line:col: each assembled object
// remembers which key it came from, and an issue's YAML path is mapped back to that key and the
// field inside its value (the "location provider" of this source; the validator is unchanged).
// A key that fails is quarantined and left out, and the rest is validated again, so what
// depends on it (a listener whose pool is bad, the backends of a bad pool) is reported too and
// everything else applies.

import type { Config } from '../../model.ts';
import { type ConfigIssue, type ValidateOptions, validateConfigObject } from '../../validate.ts';
import { type KeyRef, parseKey } from './keys.ts';

export interface Quarantined {
  readonly key: string;
  /** The field inside the key's JSON value ('(value)' for the whole value, '(key)' for its name). */
  readonly field: string;
  readonly reason: string;
  /** Set when the key itself may be fine but something it needs is missing or quarantined. */
  readonly depends_on?: string;
}

export type AssembleResult =
  | { readonly ok: true; readonly config: Config; readonly quarantined: readonly Quarantined[] }
  | { readonly ok: false; readonly issues: ConfigIssue[] };

type Json = Record<string, unknown>;

interface Parsed {
  readonly key: string;
  readonly ref: KeyRef;
  readonly value: Json;
}

/**
 * `statics`: the local file's admin/cluster/source sections (plain values); `kvs`: every key
 * under the prefix at one revision.
 */
export function assembleConfig(
  statics: Json,
  prefix: string,
  kvs: ReadonlyMap<string, string>,
  origin: string,
  opts: ValidateOptions,
): AssembleResult {
  const quarantine = new Map<string, Quarantined>();
  const parsed: Parsed[] = [];
  for (const key of [...kvs.keys()].sort()) {
    const ref = parseKey(prefix, key);
    if (!ref) {
      quarantine.set(key, {
        key,
        field: '(key)',
        reason: `unknown key: expected ${prefix}{loadbalancers/ORG/PROJECT/LB,listeners/LB/ID,pools/LB/ID,backends/POOL/ID}`,
      });
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(kvs.get(key)!);
    } catch (err) {
      quarantine.set(key, { key, field: '(value)', reason: `invalid JSON: ${(err as Error).message}` });
      continue;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      quarantine.set(key, { key, field: '(value)', reason: 'expected a JSON object' });
      continue;
    }
    parsed.push({ key, ref, value: value as Json });
  }

  // Bounded: every round quarantines at least one more key or ends.
  for (let round = 0; round <= parsed.length; round++) {
    const { doc, locate, poolKeyByName } = build(parsed, prefix, quarantine);
    const r = validateConfigObject({ ...statics, load_balancers: doc }, origin, opts);
    if (r.ok) {
      return { ok: true, config: r.config, quarantined: [...quarantine.values()] };
    }
    let added = 0;
    for (const issue of r.issues) {
      const loc = locate(issue.path);
      // Not inside any key's value: the local file's part, which the file check reports.
      if (!loc) return { ok: false, issues: r.issues };
      if (quarantine.has(loc.key)) continue;
      const message = issue.message.replace(PATH_RE, (p) => locate(p)?.key ?? p);
      const missingPool = /^pool '([^']+)' is not defined/.exec(issue.message);
      const dependsOn = missingPool ? poolKeyByName(loc.key, missingPool[1]!) : undefined;
      quarantine.set(loc.key, {
        key: loc.key,
        field: loc.field,
        reason: message,
        ...(dependsOn ? { depends_on: dependsOn } : {}),
      });
      added++;
    }
    if (added === 0) return { ok: false, issues: r.issues };
  }
  return { ok: false, issues: [{ origin, path: '(root)', message: 'quarantine did not converge' }] };
}

const PATH_RE = /load_balancers\[\d+\](?:\.(?:pools|listeners)\[\d+\])?(?:\.backends\[\d+\])?/g;
const LOC_RE = /^(load_balancers\[\d+\])(\.(?:pools|listeners)\[\d+\])?(\.backends\[\d+\])?(.*)$/;

function build(parsed: readonly Parsed[], prefix: string, quarantine: Map<string, Quarantined>) {
  const at = new Map<string, string>(); // YAML path of an assembled object → its key
  const lbs = parsed.filter((p) => p.ref.kind === 'lb' && !quarantine.has(p.key));
  const lbKeyById = new Map<string, string>();
  for (const lb of lbs) {
    const id = (lb.ref as { lbId: string }).lbId;
    const other = lbKeyById.get(id);
    if (other) {
      quarantine.set(lb.key, {
        key: lb.key,
        field: '(key)',
        reason: `load balancer id '${id}' is also used by ${other}`,
      });
      continue;
    }
    lbKeyById.set(id, lb.key);
    // org and project come from the key: a value naming another tenant is refused, and so are
    // listeners/pools inside the value (they are keys of their own, each with its own checks).
    const ref = lb.ref as Extract<KeyRef, { kind: 'lb' }>;
    const mismatch = (['org', 'project'] as const).find(
      (k) => lb.value[k] !== undefined && lb.value[k] !== ref[k],
    );
    const nested = (['listeners', 'pools'] as const).find((k) => lb.value[k] !== undefined);
    if (mismatch)
      quarantine.set(lb.key, {
        key: lb.key,
        field: mismatch,
        reason: `'${String(lb.value[mismatch])}' does not match the key's ${mismatch} '${ref[mismatch]}'`,
      });
    else if (nested)
      quarantine.set(lb.key, {
        key: lb.key,
        field: nested,
        reason: `not allowed in a load balancer's value: ${nested} are keys of their own (${prefix}${nested}/${id}/ID)`,
      });
  }
  const live = (p: Parsed) => !quarantine.has(p.key);
  const orphan = (p: Parsed, parent: string, depends?: string) =>
    quarantine.set(p.key, {
      key: p.key,
      field: '(key)',
      reason: depends ? `${parent} is quarantined` : `${parent} does not exist`,
      ...(depends ? { depends_on: depends } : {}),
    });
  const parentState = (key: string | undefined) =>
    key === undefined ? 'missing' : quarantine.has(key) ? 'bad' : 'ok';

  // Pools by id: backends name their pool by id only, so an id used by two load balancers is ambiguous.
  const poolsById = new Map<string, Parsed[]>();
  for (const p of parsed)
    if (p.ref.kind === 'pool' && live(p)) {
      const list = poolsById.get(p.ref.poolId) ?? [];
      list.push(p);
      poolsById.set(p.ref.poolId, list);
    }
  for (const p of parsed) {
    if (!live(p)) continue;
    if (p.ref.kind === 'pool' && p.value.backends !== undefined)
      quarantine.set(p.key, {
        key: p.key,
        field: 'backends',
        reason: `not allowed in a pool's value: backends are keys of their own (${prefix}backends/${p.ref.poolId}/ID)`,
      });
    else if (p.ref.kind === 'listener' || p.ref.kind === 'pool') {
      const lbKey = lbKeyById.get(p.ref.lbId);
      const s = parentState(lbKey ?? findAnyLbKey(parsed, p.ref.lbId));
      if (s === 'missing')
        orphan(p, `load balancer '${p.ref.lbId}' (${prefix}loadbalancers/*/*/${p.ref.lbId})`);
      else if (s === 'bad' || !lbKey) {
        const bad = lbKey ?? findAnyLbKey(parsed, p.ref.lbId)!;
        orphan(p, bad, bad);
      }
    }
  }
  for (const p of parsed) {
    if (!live(p) || p.ref.kind !== 'backend') continue;
    const pools = (poolsById.get(p.ref.poolId) ?? []).filter(live);
    if (pools.length > 1)
      quarantine.set(p.key, {
        key: p.key,
        field: '(key)',
        reason: `pool id '${p.ref.poolId}' is used by ${pools.map((x) => x.key).join(' and ')}; pool ids must be unique`,
      });
    else if (pools.length === 0) {
      const bad = parsed.find(
        (x) => x.ref.kind === 'pool' && x.ref.poolId === (p.ref as { poolId: string }).poolId,
      );
      if (bad) orphan(p, bad.key, bad.key);
      else orphan(p, `pool '${p.ref.poolId}' (${prefix}pools/*/${p.ref.poolId})`);
    }
  }

  // Children by parent id: one pass instead of a scan of every key per load balancer and pool.
  const childrenOf = new Map<string, Parsed[]>();
  for (const p of parsed) {
    if (p.ref.kind === 'lb') continue;
    const parent = p.ref.kind === 'backend' ? p.ref.poolId : p.ref.lbId;
    const k = `${p.ref.kind}/${parent}`;
    const list = childrenOf.get(k) ?? [];
    list.push(p);
    childrenOf.set(k, list);
  }
  const doc: Json[] = [];
  const poolNames = new Map<string, Map<string, string>>(); // lb key → pool name → pool key (incl. quarantined)
  for (const lb of lbs) {
    if (!live(lb)) continue;
    const ref = lb.ref as Extract<KeyRef, { kind: 'lb' }>;
    const { listeners: _l, pools: _p, ...rest } = lb.value;
    const lbPath = `load_balancers[${doc.length}]`;
    at.set(lbPath, lb.key);
    const pools: Json[] = [];
    const names = new Map<string, string>();
    poolNames.set(lb.key, names);
    for (const p of childrenOf.get(`pool/${ref.lbId}`) ?? []) {
      if (p.ref.kind !== 'pool') continue;
      const poolId = p.ref.poolId;
      names.set(String(p.value.name ?? poolId), p.key);
      if (!live(p)) continue;
      const poolPath = `${lbPath}.pools[${pools.length}]`;
      at.set(poolPath, p.key);
      const backends: Json[] = [];
      for (const b of childrenOf.get(`backend/${poolId}`) ?? []) {
        if (b.ref.kind !== 'backend' || !live(b)) continue;
        at.set(`${poolPath}.backends[${backends.length}]`, b.key);
        backends.push({ id: b.ref.backendId, ...b.value });
      }
      pools.push({ name: poolId, ...p.value, backends });
    }
    const listeners: Json[] = [];
    for (const l of childrenOf.get(`listener/${ref.lbId}`) ?? []) {
      if (l.ref.kind !== 'listener' || !live(l)) continue;
      at.set(`${lbPath}.listeners[${listeners.length}]`, l.key);
      listeners.push({ name: l.ref.listenerId, ...l.value });
    }
    doc.push({ name: ref.lbId, ...rest, org: ref.org, project: ref.project, listeners, pools });
  }

  const locate = (path: string): { key: string; field: string } | undefined => {
    const m = LOC_RE.exec(path);
    if (!m) return undefined;
    const candidates = [m[1]! + (m[2] ?? '') + (m[3] ?? ''), m[1]! + (m[2] ?? ''), m[1]!];
    for (const c of candidates) {
      const key = at.get(c);
      if (key !== undefined) {
        const field = path.slice(c.length).replace(/^\./, '');
        return { key, field: field || '(value)' };
      }
    }
    return undefined;
  };
  const poolKeyByName = (listenerKey: string, name: string): string | undefined => {
    const lbId = listenerKey.slice(prefix.length).split('/')[1];
    const lbKey = lbId !== undefined ? lbKeyById.get(lbId) : undefined;
    const key = lbKey ? poolNames.get(lbKey)?.get(name) : undefined;
    return key && quarantine.has(key) ? key : undefined;
  };
  return { doc, locate, poolKeyByName };
}

function findAnyLbKey(parsed: readonly Parsed[], lbId: string): string | undefined {
  return parsed.find((p) => p.ref.kind === 'lb' && p.ref.lbId === lbId)?.key;
}
