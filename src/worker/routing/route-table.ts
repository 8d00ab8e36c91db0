// The compiled route table: a listener's routes indexed once per snapshot, so a request looks
// only at the routes its host and path can match, and still gets exactly the route a walk over
// every route in configured order would give (first match wins).
//
// Routes are grouped by their host condition — exact host → a Map, wildcard "*.example.com" → a
// radix tree over the reversed suffix (".example.com" → "moc.elpmaxe.", walked from the host's
// end), no host → one group — and within a group by path prefix in a radix tree (no prefix: its
// root). A request visits its exact host's group, every wildcard group whose suffix ends its
// host, and the hostless group, and in each the trie nodes along its path: those hold exactly
// the routes whose host and path conditions hold. A node lists its routes in configured order,
// so its first one whose method and header conditions hold is its best; the request takes the
// lowest configured index over every node visited, and a node's scan stops at the best index
// found so far. Nothing is allocated per request.
//
// Semantics (the router's, see router.ts): hosts compared lower-case without port and one
// trailing dot; "*.example.com" needs at least one char before ".example.com"; a path prefix is
// a plain string prefix of the raw path; header conditions as in headersMatch below.

import type { IncomingHttpHeaders } from 'node:http';
import type { RouteConfig } from '../../config/model.ts';
import { type RadixNode, radixInsert, radixNode } from './radix.ts';

interface Rule<T> {
  /** The route's index in the listener's routes: lower wins. */
  readonly index: number;
  readonly headers: ReadonlyArray<{ readonly name: string; readonly value: string }>;
  readonly methods: ReadonlySet<string> | undefined;
  readonly target: T;
}

/** Shared by the routes without header conditions (most), so a big table builds less garbage. */
const NONE: Rule<unknown>['headers'] = [];

/** One host group's routes by path prefix; a node's value: its routes in configured order. */
type PathTrie<T> = RadixNode<Rule<T>[]>;

const counters = {
  /** Tables built (one per listener and snapshot). */
  tables: 0,
  /** Routes indexed, summed over the tables built. */
  tableRoutes: 0,
  /** Time spent building tables, µs. */
  buildUs: 0,
  lookups: 0,
  /** Routes whose method/header conditions were evaluated: per lookup, the ones not skipped. */
  routesChecked: 0,
};

/** Per-worker counters of this module, for /metrics. */
export function routeTableStats(): Readonly<typeof counters> {
  return { ...counters };
}

export class RouteTable<T> {
  private readonly exact = new Map<string, PathTrie<T>>();
  /** Keyed by the reversed suffix; a node's value: the group of the suffix it spells. */
  private readonly wildcard: RadixNode<PathTrie<T>> = radixNode();
  private readonly hostless: PathTrie<T> = radixNode();
  /** Some route has a host condition (else lookups need no host). */
  readonly usesHost: boolean;

  constructor(routes: readonly RouteConfig[], target: (route: RouteConfig, index: number) => T) {
    const start = performance.now();
    let usesHost = false;
    for (let i = 0; i < routes.length; i++) {
      const route = routes[i]!;
      const m = route.match;
      const rule: Rule<T> = {
        index: i,
        headers:
          m.headers.length > 0
            ? m.headers.map((x) => ({ name: x.name.toLowerCase(), value: x.value }))
            : NONE,
        methods: m.methods.length > 0 ? new Set(m.methods.map((x) => x.toUpperCase())) : undefined,
        target: target(route, i),
      };
      const h = m.host?.toLowerCase();
      let group = this.hostless;
      if (h !== undefined) {
        usesHost = true;
        group = h.startsWith('*.')
          ? this.wildcardGroup(reverse(stripDot(h.slice(1))))
          : this.exactGroup(stripDot(h));
      }
      // No prefix (or an empty one) is the root: it holds for every path.
      const node = radixInsert(group, m.pathPrefix ?? '');
      node.value ??= [];
      node.value.push(rule);
    }
    this.usesHost = usesHost;
    counters.tables++;
    counters.tableRoutes += routes.length;
    counters.buildUs += Math.round((performance.now() - start) * 1000);
  }

  /**
   * The first route in configured order whose conditions all hold, or undefined. `host` is
   * normalized (normalizeHost: lower-case, no port, no trailing dot; '' when absent).
   */
  lookup(method: string, path: string, host: string, headers: IncomingHttpHeaders): T | undefined {
    counters.lookups++;
    let best = scanPaths(this.hostless, undefined, method, path, headers);
    const exact = this.exact.get(host);
    if (exact !== undefined) best = scanPaths(exact, best, method, path, headers);
    let node = this.wildcard;
    let end = host.length;
    for (;;) {
      // The suffix spelled so far ends the host; it matches with at least one char before it.
      if (node.value !== undefined && end > 0) best = scanPaths(node.value, best, method, path, headers);
      const edge = node.edges?.get(host.charCodeAt(end - 1));
      if (edge === undefined || !endsWithReversed(host, end, edge.label)) break;
      end -= edge.label.length;
      node = edge.node;
    }
    return best?.target;
  }

  private exactGroup(host: string): PathTrie<T> {
    let group = this.exact.get(host);
    if (group === undefined) {
      group = radixNode();
      this.exact.set(host, group);
    }
    return group;
  }

  private wildcardGroup(reversedSuffix: string): PathTrie<T> {
    const node = radixInsert(this.wildcard, reversedSuffix);
    node.value ??= radixNode();
    return node.value;
  }
}

/** The best of `best` and the routes of `trie` whose path prefix `path` starts with. */
function scanPaths<T>(
  trie: PathTrie<T>,
  bestSoFar: Rule<T> | undefined,
  method: string,
  path: string,
  headers: IncomingHttpHeaders,
): Rule<T> | undefined {
  let best = bestSoFar;
  let node = trie;
  let pos = 0;
  for (;;) {
    if (node.value !== undefined) best = scanRules(node.value, best, method, headers);
    // Past the path's end charCodeAt is NaN, which no edge is keyed by.
    const edge = node.edges?.get(path.charCodeAt(pos));
    if (edge === undefined || !path.startsWith(edge.label, pos)) return best;
    pos += edge.label.length;
    node = edge.node;
  }
}

/** The first of `rules` (configured order) whose method and headers hold, if it beats `best`. */
function scanRules<T>(
  rules: readonly Rule<T>[],
  best: Rule<T> | undefined,
  method: string,
  headers: IncomingHttpHeaders,
): Rule<T> | undefined {
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i]!;
    // Sorted: neither this route nor any after it can come before the best one.
    if (best !== undefined && r.index > best.index) return best;
    counters.routesChecked++;
    if (r.methods !== undefined && !r.methods.has(method)) continue;
    if (r.headers.length > 0 && !headersMatch(r.headers, headers)) continue;
    return r;
  }
  return best;
}

/** Header conditions: the value as Node joins duplicates, or one of an array's; "*" = present. */
function headersMatch(
  conds: ReadonlyArray<{ readonly name: string; readonly value: string }>,
  headers: IncomingHttpHeaders,
): boolean {
  for (let i = 0; i < conds.length; i++) {
    const c = conds[i]!;
    const v = headers[c.name];
    if (v === undefined) return false;
    if (c.value === '*') continue;
    if (typeof v === 'string' ? v !== c.value : !v.includes(c.value)) return false;
  }
  return true;
}

/** Whether s[0, end) ends with the reverse of `reversed` (compared char by char, no copy). */
function endsWithReversed(s: string, end: number, reversed: string): boolean {
  for (let j = 0; j < reversed.length; j++) {
    if (s.charCodeAt(end - 1 - j) !== reversed.charCodeAt(j)) return false;
  }
  return true;
}

/** By UTF-16 code unit, as the lookup compares (split('') splits surrogate pairs too). */
function reverse(s: string): string {
  return s.split('').reverse().join('');
}

function stripDot(h: string): string {
  return h.endsWith('.') ? h.slice(0, -1) : h;
}
