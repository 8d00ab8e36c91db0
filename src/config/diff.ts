// What a change does to the served config: listeners, routes, pools and backends added,
// removed or changed. Used by `fiberlb plan` and logged by the Chainfire source on every change.

import type { DynamicConfig } from './model.ts';
import { hideIfPrivateKey } from './secrets.ts';

/** JSON of a config part; private keys as digests (GET /config shows them so). */
function text(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => hideIfPrivateKey(x));
}

export interface Plan {
  readonly added: string[];
  readonly removed: string[];
  readonly changed: string[];
}

function index(c: DynamicConfig): Map<string, string> {
  const m = new Map<string, string>();
  for (const lb of c.loadBalancers) {
    const { listeners, pools, ...lbRest } = lb;
    m.set(`load_balancer ${lb.name}`, text(lbRest));
    for (const l of listeners) {
      const { routes, ...rest } = l;
      m.set(`listener ${lb.name}/${l.name}`, text(rest));
      for (const [i, r] of routes.entries()) m.set(`route ${lb.name}/${l.name}[${i}]`, text(r));
    }
    for (const p of pools) {
      const { backends, ...rest } = p;
      m.set(`pool ${lb.name}/${p.name}`, text(rest));
      for (const b of backends) m.set(`backend ${lb.name}/${p.name}/${b.id}`, text(b));
    }
  }
  return m;
}

export function diffConfigs(from: DynamicConfig, to: DynamicConfig): Plan {
  const a = index(from);
  const b = index(to);
  const plan: Plan = { added: [], removed: [], changed: [] };
  for (const [k, v] of b) {
    const old = a.get(k);
    if (old === undefined) plan.added.push(k);
    else if (old !== v) plan.changed.push(k);
  }
  for (const k of a.keys()) if (!b.has(k)) plan.removed.push(k);
  return plan;
}

export function planLines(p: Plan): string[] {
  return [
    ...p.added.map((x) => `+ ${x}`),
    ...p.removed.map((x) => `- ${x}`),
    ...p.changed.map((x) => `~ ${x}`),
  ];
}

export function planSummary(p: Plan): string {
  return `${p.added.length} added, ${p.removed.length} removed, ${p.changed.length} changed`;
}
