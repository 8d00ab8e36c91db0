// The key schema as the platform writes it (design.md), under the source's prefix:
//   loadbalancers/{org}/{project}/{lb_id}   listeners/{lb_id}/{listener_id}
//   pools/{lb_id}/{pool_id}                 backends/{pool_id}/{backend_id}
// Values are JSON objects with the model's snake_case fields (as in the YAML file).

export type KeyRef =
  | { readonly kind: 'lb'; readonly org: string; readonly project: string; readonly lbId: string }
  | { readonly kind: 'listener'; readonly lbId: string; readonly listenerId: string }
  | { readonly kind: 'pool'; readonly lbId: string; readonly poolId: string }
  | { readonly kind: 'backend'; readonly poolId: string; readonly backendId: string };

const SEGMENTS = { loadbalancers: 3, listeners: 2, pools: 2, backends: 2 } as const;

/** undefined: not one of the four shapes (reported as an unknown key). */
export function parseKey(prefix: string, key: string): KeyRef | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const parts = key.slice(prefix.length).split('/');
  const kind = parts.shift() as keyof typeof SEGMENTS;
  if (!(kind in SEGMENTS) || parts.length !== SEGMENTS[kind] || parts.some((p) => p === '')) return undefined;
  const [a, b, c] = parts as [string, string, string];
  switch (kind) {
    case 'loadbalancers':
      return { kind: 'lb', org: a, project: b, lbId: c };
    case 'listeners':
      return { kind: 'listener', lbId: a, listenerId: b };
    case 'pools':
      return { kind: 'pool', lbId: a, poolId: b };
    case 'backends':
      return { kind: 'backend', poolId: a, backendId: b };
  }
}

export function keyOf(prefix: string, ref: KeyRef): string {
  switch (ref.kind) {
    case 'lb':
      return `${prefix}loadbalancers/${ref.org}/${ref.project}/${ref.lbId}`;
    case 'listener':
      return `${prefix}listeners/${ref.lbId}/${ref.listenerId}`;
    case 'pool':
      return `${prefix}pools/${ref.lbId}/${ref.poolId}`;
    case 'backend':
      return `${prefix}backends/${ref.poolId}/${ref.backendId}`;
  }
}

/** A key segment must not contain '/' (it would change the key's shape). */
export function checkSegment(s: string): string | undefined {
  return s === '' || s.includes('/') ? `'${s}' cannot be a key segment (empty or contains '/')` : undefined;
}
