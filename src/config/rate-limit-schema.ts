// The rate-limit part of the schema: `rate_limit` lists (listener and route),
// `connection_rate_limit`, `rate_limit_allow` and the static `rate_limit_store`. Kept apart
// from validate.ts so the limits' rules read in one place.

import { parseCidr } from '../shared/cidr.ts';
import { checkCidr, checkIpLiteral } from './address.ts';
import {
  type Cidr,
  MAX_BURST,
  MAX_RATE,
  RATE_LIMIT_KEYS,
  type RateLimitConfig,
  type RateLimitKey,
  type RateLimitStoreConfig,
} from './model.ts';
import type { Node } from './tree.ts';
import { describe, type Fields, type Walker } from './walker.ts';

const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/i; // RFC 9110 token (header names)
const NAME = /^[a-z0-9][a-z0-9_:.-]{0,62}$/i;
const KEY_LIST = 'client_ip, header:NAME, host, route, global';

const LIMIT_KEYS = ['name', 'key', 'prefix', 'prefix_v6', 'rate', 'per', 'burst', 'mode', 'scope'] as const;
const CONN_LIMIT_KEYS = ['name', 'prefix', 'prefix_v6', 'rate', 'per', 'burst', 'mode', 'scope'] as const;

export interface RateLimitContext {
  /** A `rate_limit_store` is configured, so `scope: global` is usable. */
  readonly hasStore: boolean;
}

/**
 * `rate_limit`: a list of limits, or one mapping (the older single-limit form, read as a list
 * of one). Names must be unique within the list.
 */
export function validateRateLimits(
  w: Walker,
  f: Fields,
  key: string,
  ctx: RateLimitContext,
): RateLimitConfig[] {
  const n = f.get(key);
  if (n === undefined) return [];
  const items =
    n.kind === 'seq'
      ? n.items.map((node, i) => ({ node, path: `${f.at(key)}[${i}]` }))
      : [{ node: n, path: f.at(key) }];
  if (n.kind === 'seq' && items.length === 0)
    w.report(n.pos, f.at(key), 'must not be an empty list; omit it for no limit');
  const out: RateLimitConfig[] = [];
  const names = new Map<string, string>();
  for (const item of items) {
    const rl = validateOne(w, item.node, item.path, ctx, true);
    if (rl === undefined) continue;
    const first = names.get(rl.name);
    if (first !== undefined) {
      w.report(
        item.node.pos,
        item.path,
        `duplicate rate limit name '${rl.name}'; first used at ${first} (give each limit its own name:)`,
      );
      continue;
    }
    names.set(rl.name, item.path);
    out.push(rl);
  }
  return out;
}

/** `connection_rate_limit`: one bucket per client address for new connections. */
export function validateConnectionRateLimit(
  w: Walker,
  node: Node,
  path: string,
  ctx: RateLimitContext,
): RateLimitConfig | undefined {
  return validateOne(w, node, path, ctx, false);
}

function validateOne(
  w: Walker,
  node: Node,
  path: string,
  ctx: RateLimitContext,
  keyed: boolean,
): RateLimitConfig | undefined {
  const f = w.map(node, path, keyed ? LIMIT_KEYS : CONN_LIMIT_KEYS);
  let key: RateLimitKey = 'client_ip';
  let header: string | undefined;
  let keyText = 'client_ip';
  const kn = f.get('key');
  if (keyed && kn !== undefined) {
    const s = kn.kind === 'scalar' && typeof kn.value === 'string' ? kn.value : undefined;
    if (s?.startsWith('header:')) {
      const name = s.slice(7);
      if (!TOKEN.test(name)) w.report(kn.pos, f.at('key'), `invalid header name '${name}' in key '${s}'`);
      else {
        key = 'header';
        header = name.toLowerCase();
        keyText = `header:${header}`;
      }
    } else if (s !== undefined && (RATE_LIMIT_KEYS as readonly string[]).includes(s) && s !== 'header') {
      key = s as RateLimitKey;
      keyText = s;
    } else {
      const got = s !== undefined ? `'${s}'` : describe(kn);
      w.report(kn.pos, f.at('key'), `unknown key type ${got}; expected one of: ${KEY_LIST}`);
    }
  }
  const prefix = w.int(f, 'prefix', 1, 32, 32);
  // A single IPv6 host usually holds a whole /64: per-address buckets there would let one
  // client mint fresh buckets at will, so IPv6 clients are grouped by /64 unless told otherwise.
  const prefixV6 = w.int(f, 'prefix_v6', 1, 128, 64);
  for (const k of ['prefix', 'prefix_v6'])
    if (f.has(k) && key !== 'client_ip')
      w.report(f.keyPos(k), f.at(k), `only allowed with key client_ip (this limit's key is ${keyText})`);

  const rate = number(w, f, 'rate', MAX_RATE, 'a limit of 0 admits nothing; remove the limit instead');
  if (rate === undefined && !f.has('rate')) w.missing(f, 'rate', 'is required (requests per `per`, > 0)');
  const perMs = w.duration(f, 'per', 1_000);
  let burst = number(w, f, 'burst', MAX_BURST, 'a bucket of 0 admits nothing');
  if (burst !== undefined && burst < 1) {
    w.report(
      f.get('burst')!.pos,
      f.at('burst'),
      `${burst} must be at least 1 (a bucket smaller than one request never admits any)`,
    );
    burst = undefined;
  }
  const mode = w.oneOf(f, 'mode', ['enforce', 'dry_run'] as const, 'enforce') ?? 'enforce';
  const scope = w.oneOf(f, 'scope', ['local', 'global'] as const, 'local') ?? 'local';
  if (scope === 'global' && !ctx.hasStore)
    w.report(
      f.get('scope')!.pos,
      f.at('scope'),
      'scope global needs a top-level rate_limit_store (e.g. { type: redis, address: 127.0.0.1, port: 6379 })',
    );
  let name = keyed ? keyText : 'connections';
  if (f.has('name')) {
    const s = w.str(f, 'name');
    if (s !== undefined && !NAME.test(s))
      w.report(
        f.get('name')!.pos,
        f.at('name'),
        `invalid name '${s}': use 1-63 letters, digits, '_', '-', '.' or ':', starting with a letter or digit`,
      );
    else if (s !== undefined) name = s;
  }
  if (!f.present || rate === undefined) return undefined;
  // Default burst = rate, but at least one request so fractional rates still admit traffic.
  return {
    name,
    key,
    header,
    prefix,
    prefixV6,
    rate,
    perMs,
    burst: burst ?? Math.min(MAX_BURST, Math.max(1, rate)),
    mode,
    scope,
  };
}

function number(w: Walker, f: Fields, key: string, max: number, zeroWhy: string): number | undefined {
  const n = f.get(key);
  if (n === undefined) return undefined;
  if (n.kind !== 'scalar' || typeof n.value !== 'number' || !Number.isFinite(n.value)) {
    w.typeError(n, f.at(key), 'a number');
    return undefined;
  }
  if (n.value === 0) {
    w.report(n.pos, f.at(key), `0 must be greater than 0 (${zeroWhy})`);
    return undefined;
  }
  if (n.value < 0) {
    w.report(n.pos, f.at(key), `${n.value} must be greater than 0`);
    return undefined;
  }
  if (n.value > max) {
    w.report(n.pos, f.at(key), `${n.value} is out of range: at most ${max}`);
    return undefined;
  }
  return n.value;
}

/** `rate_limit_allow`: CIDRs that no rate or connection limit applies to. */
export function validateAllowList(w: Walker, f: Fields, key: string): Cidr[] {
  const out: Cidr[] = [];
  for (const item of w.list(f, key)) {
    const s = w.strNode(item.node, item.path);
    if (s === undefined) continue;
    const reason = checkCidr(s);
    if (reason) w.report(item.node.pos, item.path, reason);
    else {
      const c = parseCidr(s);
      if (c.ok) out.push(c.value);
    }
  }
  return out;
}

/** Top-level `rate_limit_store`. */
export function validateRateLimitStore(w: Walker, top: Fields): RateLimitStoreConfig | undefined {
  if (!top.has('rate_limit_store')) return undefined;
  const f = w.map(top.get('rate_limit_store'), 'rate_limit_store', [
    'type',
    'address',
    'port',
    'key_prefix',
    'timeout',
  ]);
  w.oneOf(f, 'type', ['redis'] as const, undefined);
  const address = w.address(f, 'address', checkIpLiteral) ?? '127.0.0.1';
  const port = w.port(f, 'port', 6379) ?? 6379;
  const keyPrefix = w.str(f, 'key_prefix') ?? 'fiberlb:rl:';
  const timeoutMs = w.duration(f, 'timeout', 100);
  if (!f.present) return undefined;
  return { type: 'redis', address, port, keyPrefix, timeoutMs };
}
