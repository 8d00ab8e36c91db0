// Config validation: YAML text or a JSON value → a deep-frozen Config, or EVERY problem found,
// each located (file:line:col when known) and named by its YAML path. Both entry points feed
// the same walker over a position-aware tree (tree.ts), so there is one set of rules.

import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { parseCidr } from '../shared/cidr.ts';
import { namesCover } from '../shared/tls-names.ts';
import { validateAccessLog } from './access-log.ts';
import { canonicalAddress, checkCidr, checkHostOrIp, checkIpLiteral } from './address.ts';
import type { ConfigIssue } from './issue.ts';
import { type FileReader, inspectCaBundle, inspectPair, readMaterial } from './material.ts';
import {
  ADMIN_STATES,
  type AdminConfig,
  ALGORITHMS,
  type BackendConfig,
  type Cidr,
  CLIENT_AUTH_MODES,
  type ClusterConfig,
  type Config,
  DEFAULT_CIPHERS,
  DEFAULT_ECDH_CURVES,
  type HstsConfig,
  type ListenerConfig,
  type ListenerLimits,
  type ListenerTimeouts,
  type LoadBalancerConfig,
  MAX_HEADERS_LIMIT,
  type PoolConfig,
  PROTOCOLS,
  type Protocol,
  type ProxyProtocolVersion,
  type RateLimitConfig,
  type RateLimitStoreConfig,
  type RedirectHttpsConfig,
  type RouteConfig,
  type RouteMatch,
  type SourceConfig,
  TLS_VERSIONS,
  type TlsCertificate,
  type TlsConfig,
} from './model.ts';
import { validatePoolTls } from './pool-tls.ts';
import {
  validateAllowList,
  validateConnectionRateLimit,
  validateRateLimitStore,
  validateRateLimits,
} from './rate-limit-schema.ts';
import { deepFreeze } from './snapshot.ts';
import { fromJson, fromYaml, type Node, type Pos } from './tree.ts';
import { validateHealthCheck, validateOutlier, validateRetry } from './validate-health.ts';
import { describe, type Fields, Walker } from './walker.ts';

const MIB = 1024 * 1024;

export { type ConfigIssue, formatIssue } from './issue.ts';

export interface ValidateOptions {
  /** What `cluster.workers: auto` resolves to; defaults to os.availableParallelism(). */
  readonly cpuCount?: number;
  /** Directory relative paths are resolved against (parseConfigText: the file's directory). */
  readonly baseDir?: string;
  /**
   * Read the files the config names (certificates, keys, CA bundles) and check them
   * (material.ts). The file source passes one; without it files are not read (unit tests).
   */
  readonly readFile?: FileReader;
  /** "Now" for certificate expiry (ms since the epoch); defaults to Date.now(). */
  readonly now?: number;
}

export type ValidationResult = { ok: true; config: Config } | { ok: false; issues: ConfigIssue[] };

/** Parse and validate YAML config text; `file` names it in issues and anchors relative paths. */
export function parseConfigText(text: string, file: string, opts: ValidateOptions = {}): ValidationResult {
  const { root, errors } = fromYaml(text);
  // Schema errors on a half-parsed document would mostly be noise, so syntax errors come alone.
  if (errors.length > 0) {
    return {
      ok: false,
      issues: errors.map((e) => ({ origin: file, ...e.pos, path: '(yaml)', message: e.message })),
    };
  }
  return validateTree(root, file, { line: 1, col: 1 }, { baseDir: dirname(resolve(file)), ...opts });
}

/** Validate an already-parsed JSON value (e.g. from Chainfire); issues carry no line:col. */
export function validateConfigObject(
  value: unknown,
  origin: string,
  opts: ValidateOptions = {},
): ValidationResult {
  return validateTree(value === undefined ? undefined : fromJson(value), origin, undefined, opts);
}

// ---------------------------------------------------------------------------------------------
// The schema

const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/i; // RFC 9110 token: header names and methods
const HTTP: readonly Protocol[] = ['http', 'https'];
/** Listeners with routes: http/https by host, path, ...; tls_passthrough by SNI. */
const ROUTED: readonly Protocol[] = ['http', 'https', 'tls_passthrough'];

function validateTree(
  root: Node | undefined,
  origin: string,
  rootPos: Pos | undefined,
  opts: ValidateOptions,
): ValidationResult {
  const w = new Walker(origin, opts.baseDir ?? process.cwd());
  if (root === undefined) {
    w.report(rootPos, '', 'config is empty; expected a mapping with load_balancers');
    return { ok: false, issues: w.issues };
  }
  const top = w.map(root, '', [
    'admin',
    'cluster',
    'source',
    'rate_limit_store',
    'access_log',
    'load_balancers',
  ]);
  const admin = validateAdmin(w, top);
  const cluster = validateCluster(w, top, opts);
  const source = validateSource(w, top);
  const rateLimitStore = validateRateLimitStore(w, top);
  const accessLog = top.has('access_log')
    ? validateAccessLog(w, top.get('access_log')!, top.at('access_log'))
    : undefined;

  const binds: Bind[] = [];
  if (admin.port !== undefined) addBind(w, binds, admin.address, admin.port, 'tcp', 'admin', undefined, '');
  const loadBalancers: LoadBalancerConfig[] = [];
  const lbNames = new Map<string, string>();
  if (!top.has('load_balancers')) w.missing(top, 'load_balancers', 'is required (may be an empty list)');
  for (const { node, path } of w.list(top, 'load_balancers')) {
    const lb = validateLoadBalancer(w, node, path, lbNames, binds, rateLimitStore, opts);
    if (lb) loadBalancers.push(lb);
  }

  if (w.issues.length > 0) return { ok: false, issues: sortIssues(w.issues) };
  const base = { admin, cluster, source, rateLimitStore };
  const statics = accessLog ? { ...base, accessLog } : base;
  return { ok: true, config: deepFreeze({ static: statics, dynamic: { loadBalancers } }) };
}

function sortIssues(issues: ConfigIssue[]): ConfigIssue[] {
  // Cross-reference checks run after the walk; sorting puts everything back in document order.
  return issues
    .map((issue, i) => ({ issue, i }))
    .sort(
      (a, b) =>
        (a.issue.line ?? 0) - (b.issue.line ?? 0) || (a.issue.col ?? 0) - (b.issue.col ?? 0) || a.i - b.i,
    )
    .map((x) => x.issue);
}

function validateAdmin(w: Walker, top: Fields): AdminConfig {
  const f = w.map(top.get('admin'), 'admin', [
    'address',
    'port',
    'token_file',
    'tenant_tokens',
    'metrics_open',
    'state_file',
  ]);
  const tenantTokens = w.filePath(f, 'tenant_tokens');
  const tokenFile = w.filePath(f, 'token_file');
  const stateFile = validateStateFile(w, f, top, [tokenFile, tenantTokens]);
  return {
    address: w.address(f, 'address', checkIpLiteral) ?? '127.0.0.1',
    port: w.port(f, 'port', 9092) ?? 9092,
    tokenFile,
    ...(tenantTokens !== undefined ? { tenantTokens } : {}),
    metricsOpen: w.bool(f, 'metrics_open', false),
    ...(stateFile !== undefined ? { stateFile } : {}),
  };
}

/**
 * admin.state_file: file source only (with Chainfire the actions write the store); not a path
 * another admin file uses (the token would be overwritten). `others`: token_file, tenant_tokens.
 */
function validateStateFile(
  w: Walker,
  f: Fields,
  top: Fields,
  others: ReadonlyArray<string | undefined>,
): string | undefined {
  const src = top.get('source');
  const chainfire =
    src?.kind === 'map' &&
    src.entries.some((e) => e.key === 'type' && e.value.kind === 'scalar' && e.value.value === 'chainfire');
  if (chainfire) {
    if (f.has('state_file'))
      w.report(
        f.keyPos('state_file'),
        f.at('state_file'),
        'only allowed with source type file (with chainfire, admin actions write the store)',
      );
    return undefined;
  }
  const raw = w.str(f, 'state_file');
  // Default: where FiberLB already writes (the token file's directory), else next to the config.
  const tokenFile = others[0];
  if (raw === undefined)
    return f.has('state_file')
      ? undefined
      : tokenFile !== undefined
        ? resolve(dirname(tokenFile), 'admin-state.json')
        : resolve(w.baseDir, '.fiberlb/admin-state.json');
  const given = resolve(w.baseDir, raw);
  const reason = raw.endsWith('/')
    ? 'must name a file, not a directory'
    : others.includes(given)
      ? 'must not be the token_file or tenant_tokens file'
      : undefined;
  if (reason) w.report(f.get('state_file')!.pos, f.at('state_file'), reason);
  return reason ? undefined : given;
}

function validateCluster(w: Walker, top: Fields, opts: ValidateOptions): ClusterConfig {
  const f = w.map(top.get('cluster'), 'cluster', [
    'workers',
    'drain_timeout',
    'tls_ticket_rotation',
    'worker_old_space',
  ]);
  const auto = () => Math.min(256, Math.max(1, opts.cpuCount ?? availableParallelism()));
  let workers = auto();
  const n = f.get('workers');
  if (n !== undefined && !(n.kind === 'scalar' && n.value === 'auto')) {
    if (n.kind === 'scalar' && typeof n.value === 'number' && Number.isInteger(n.value)) {
      if (n.value >= 1 && n.value <= 256) workers = n.value;
      else w.report(n.pos, f.at('workers'), `${n.value} is out of range 1-256`);
    } else {
      w.report(n.pos, f.at('workers'), `expected an integer 1-256 or 'auto', got ${describe(n)}`);
    }
  }
  return {
    workers,
    drainTimeoutMs: w.duration(f, 'drain_timeout', 30_000, true),
    // An hour, as Cloudflare rotates; nginx's default is never (one key for the process' life).
    ticketRotationMs: w.duration(f, 'tls_ticket_rotation', 3_600_000),
    // V8 takes whole MiB; 0 leaves the heap to V8 (src/primary/worker-heap.ts says why not).
    workerOldSpaceMiB: Math.ceil(w.size(f, 'worker_old_space', 64 * MIB, 0, 16 * 1024 * MIB) / MIB),
  };
}

function validateSource(w: Walker, top: Fields): SourceConfig {
  const f = w.map(top.get('source'), 'source', ['type', 'watch', ...CHAINFIRE_KEYS]);
  const type = w.oneOf(f, 'type', ['file', 'chainfire'] as const, 'file');
  if (type !== 'chainfire') {
    for (const key of CHAINFIRE_KEYS)
      if (f.has(key)) w.report(f.keyPos(key), f.at(key), 'only allowed with source type chainfire');
    return { type: 'file', watch: w.bool(f, 'watch', false) };
  }
  // Chainfire always watches its store; a file-style switch there would do nothing.
  if (f.has('watch')) w.report(f.keyPos('watch'), f.at('watch'), 'only allowed with source type file');
  const endpoints: string[] = [];
  if (!f.has('endpoints')) w.missing(f, 'endpoints', 'is required for source type chainfire');
  const items = w.list(f, 'endpoints');
  if (f.get('endpoints')?.kind === 'seq' && items.length === 0)
    w.report(f.get('endpoints')!.pos, f.at('endpoints'), 'must list at least one endpoint');
  for (const { node, path } of items) {
    const s = w.strNode(node, path);
    if (s === undefined) continue;
    const reason = checkEndpoint(s);
    if (reason) w.report(node.pos, path, reason);
    else endpoints.push(s);
  }
  let prefix = w.str(f, 'prefix') ?? '/fiberlb/';
  if (!prefix.startsWith('/'))
    w.report(f.get('prefix')!.pos, f.at('prefix'), `prefix '${prefix}' must start with /`);
  if (!prefix.endsWith('/')) prefix += '/';
  const api = w.oneOf(f, 'api', ['etcd', 'chainfire'] as const, 'etcd') ?? 'etcd';
  let tls: { ca: string; cert?: string; key?: string } | undefined;
  if (f.has('tls')) {
    const t = w.map(f.get('tls'), f.at('tls'), ['ca', 'cert', 'key']);
    const ca = w.filePath(t, 'ca', true);
    const cert = w.filePath(t, 'cert');
    const key = w.filePath(t, 'key');
    if ((cert === undefined) !== (key === undefined))
      w.report(t.pos, t.path, 'cert and key go together (a client certificate needs its key)');
    if (ca !== undefined) tls = { ca, ...(cert && key ? { cert, key } : {}) };
    if (tls)
      for (const e of endpoints)
        if (!e.startsWith('https:')) w.report(t.pos, t.path, `endpoint ${e} is not https`);
  }
  const username = w.str(f, 'username');
  if (username !== undefined && api === 'chainfire')
    w.report(
      f.keyPos('username'),
      f.at('username'),
      "not with api: chainfire (Chainfire's API has no Auth service)",
    );
  const passwordFile = w.filePath(f, 'password_file');
  if ((username === undefined) !== (passwordFile === undefined) && f.present)
    w.report(f.pos, f.path, 'username and password_file go together');
  const lastGood = w.filePath(f, 'last_good') ?? resolve(w.baseDir, '.fiberlb/last-good.json');
  return { type: 'chainfire', endpoints, prefix, api, tls, username, passwordFile, lastGood };
}

const CHAINFIRE_KEYS = ['endpoints', 'prefix', 'api', 'tls', 'username', 'password_file', 'last_good'];

function checkEndpoint(s: string): string | undefined {
  const m = /^(https?):\/\/(\[[^\]]*\]|[^/:?#]*)(?::(\d+))?\/?$/i.exec(s);
  if (!m) return `invalid endpoint '${s}': expected http://HOST:PORT or https://HOST:PORT`;
  const host = m[2]!.startsWith('[') ? m[2]!.slice(1, -1) : m[2]!;
  const reason = checkHostOrIp(host);
  if (reason) return `invalid endpoint '${s}': ${reason}`;
  if (m[3] !== undefined && (Number(m[3]) < 1 || Number(m[3]) > 65535))
    return `invalid endpoint '${s}': port ${m[3]} is out of range 1-65535`;
  return undefined;
}

function validateLoadBalancer(
  w: Walker,
  node: Node,
  path: string,
  lbNames: Map<string, string>,
  binds: Bind[],
  store: RateLimitStoreConfig | undefined,
  opts: ValidateOptions,
): LoadBalancerConfig | undefined {
  const f = w.map(node, path, ['name', 'org', 'project', 'vip', 'listeners', 'pools']);
  const name = w.name(f, 'name');
  w.unique(lbNames, name, `load balancer name '${name}'`, f, 'name');
  const org = w.str(f, 'org', true);
  const project = w.str(f, 'project', true);
  const vip = w.address(f, 'vip', checkIpLiteral, true);

  // Pools first: listeners and routes refer to them by name.
  const pools: PoolConfig[] = [];
  const poolNames = new Map<string, string>();
  for (const item of w.list(f, 'pools')) {
    const pool = validatePool(w, item.node, item.path, poolNames, opts.readFile);
    if (pool) pools.push(pool);
  }
  const ctx: LbContext = {
    lbName: name,
    vip,
    poolNames: [...poolNames.keys()],
    proxySendPools: new Set(pools.filter((p) => p.proxyProtocol).map((p) => p.name)),
    httpOnlyPools: new Map(pools.flatMap((p) => (httpOnlyKeys(p) ? [[p.name, httpOnlyKeys(p)!]] : []))),
    binds,
    hasStore: store !== undefined,
    readFile: opts.readFile,
    now: opts.now ?? Date.now(),
  };
  const listeners: ListenerConfig[] = [];
  const listenerNames = new Map<string, string>();
  for (const item of w.list(f, 'listeners')) {
    const l = validateListener(w, item.node, item.path, listenerNames, ctx);
    if (l) listeners.push(l);
  }
  if (!f.present || name === undefined || org === undefined || project === undefined || vip === undefined)
    return undefined;
  return { name, org, project, vip, listeners, pools };
}

interface LbContext {
  readonly lbName: string | undefined;
  readonly vip: string | undefined;
  readonly poolNames: readonly string[];
  /** Pools with `proxy_protocol`: only byte-stream listeners can send a per-client header. */
  readonly proxySendPools: ReadonlySet<string>;
  /** Pools with `tls` / `http2` (pool name → those keys): HTTP upstream options, http/https only. */
  readonly httpOnlyPools: ReadonlyMap<string, string>;
  readonly binds: Bind[];
  /** A rate_limit_store is configured (scope: global limits are usable). */
  readonly hasStore: boolean;
  readonly readFile: FileReader | undefined;
  readonly now: number;
}

/** "tls", "http2", "tls and http2", or undefined: the pool's options only HTTP upstreams have. */
function httpOnlyKeys(p: PoolConfig): string | undefined {
  const keys = [p.tls ? 'tls' : '', p.http2 ? 'http2' : ''].filter((k) => k !== '');
  return keys.length > 0 ? keys.join(' and ') : undefined;
}

const PROXY_SEND_PROTOCOLS: readonly Protocol[] = ['tcp', 'tls_passthrough'];

function poolRef(
  w: Walker,
  f: Fields,
  key: string,
  ctx: LbContext,
  protocol: Protocol | undefined,
  required: string | undefined,
): string | undefined {
  const n = f.get(key);
  if (n === undefined) {
    if (required) w.missing(f, key, required);
    return undefined;
  }
  const s = w.strNode(n, f.at(key));
  if (s !== undefined && !ctx.poolNames.includes(s)) {
    const known = ctx.poolNames.length ? `defined pools: ${ctx.poolNames.join(', ')}` : 'it has no pools';
    w.report(
      n.pos,
      f.at(key),
      `pool '${s}' is not defined in load balancer '${ctx.lbName ?? '?'}' (${known})`,
    );
  } else if (
    s !== undefined &&
    protocol &&
    ctx.proxySendPools.has(s) &&
    !PROXY_SEND_PROTOCOLS.includes(protocol)
  ) {
    // HTTP shares keep-alive upstream connections between clients and UDP has no stream,
    // so a per-connection PROXY header cannot be honoured there.
    w.report(
      n.pos,
      f.at(key),
      `pool '${s}' sends a PROXY protocol header (proxy_protocol), which only tcp and tls_passthrough listeners support, not ${protocol}`,
    );
  } else if (s !== undefined && protocol && !HTTP.includes(protocol) && ctx.httpOnlyPools.has(s)) {
    // tcp/tls_passthrough relay bytes and udp datagrams: TLS origination is HTTP-only for now.
    w.report(
      n.pos,
      f.at(key),
      `pool '${s}' sets ${ctx.httpOnlyPools.get(s)}, which only http and https listeners use, not ${protocol}`,
    );
  }
  return s;
}

/** Report `key` as not applicable to this listener's protocol; true when it is allowed. */
function allowedOn(
  w: Walker,
  f: Fields,
  key: string,
  protocol: Protocol | undefined,
  allowed: readonly Protocol[],
): boolean {
  if (!f.has(key) || protocol === undefined || allowed.includes(protocol)) return true;
  w.report(
    f.keyPos(key),
    f.at(key),
    `only allowed on ${allowed.join('/')} listeners (this listener is ${protocol})`,
  );
  return false;
}

interface Bind {
  readonly family: 4 | 6 | 0;
  readonly addr: string;
  readonly any: boolean;
  readonly port: number;
  readonly transport: 'tcp' | 'udp';
  readonly owner: string;
}

function transportOf(p: Protocol): 'tcp' | 'udp' {
  return p === 'udp' ? 'udp' : 'tcp';
}

function hostPort(addr: string, port: number): string {
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}

function addBind(
  w: Walker,
  binds: Bind[],
  address: string,
  port: number,
  transport: 'tcp' | 'udp',
  owner: string,
  pos: Pos | undefined,
  path: string,
): void {
  const canon = canonicalAddress(address);
  const family = canon.startsWith('4/') ? 4 : canon.startsWith('6/') ? 6 : 0;
  const any = /^[46]\/[0.]+$/.test(canon);
  const b: Bind = { family, addr: canon, any, port, transport, owner };
  const clash = binds.find(
    (o) =>
      o.port === port &&
      o.transport === transport &&
      (o.addr === canon ||
        // The OS refuses a specific address on a port already bound to the wildcard (and
        // vice versa); "::" is dual-stack by default, so it also covers IPv4.
        ((o.any || any) && (o.family === family || (o.any && o.family === 6) || (any && family === 6)))),
  );
  if (clash) {
    w.report(pos, path, `${hostPort(address, port)}/${transport} is already bound by ${clash.owner}`);
    return;
  }
  binds.push(b);
}

function validateListener(
  w: Walker,
  node: Node,
  path: string,
  names: Map<string, string>,
  ctx: LbContext,
): ListenerConfig | undefined {
  const f = w.map(node, path, [
    'name',
    'port',
    'protocol',
    'default_pool',
    'routes',
    'connection_limit',
    'timeouts',
    'limits',
    'trusted_proxies',
    'proxy_protocol',
    'tls',
    'redirect_https',
    'hsts',
    'rate_limit',
    'rate_limit_allow',
    'connection_rate_limit',
    'max_connections_per_ip',
    'access_log',
  ]);
  const name = w.name(f, 'name');
  w.unique(names, name, `listener name '${name}'`, f, 'name');
  const port = w.port(f, 'port');
  const protocol = w.oneOf(f, 'protocol', PROTOCOLS, undefined);
  if (protocol && port !== undefined && ctx.vip !== undefined) {
    const owner = `${path} (${ctx.lbName ?? '?'}/${name ?? '?'})`;
    addBind(w, ctx.binds, ctx.vip, port, transportOf(protocol), owner, f.get('port')!.pos, f.at('port'));
  }

  const routes: RouteConfig[] = [];
  /** Where each route's host is written, for the certificate coverage check. */
  const routeHosts: Array<{ host: string; pos: Pos | undefined; path: string }> = [];
  let routeCount = 0;
  if (allowedOn(w, f, 'routes', protocol, ROUTED)) {
    const items = w.list(f, 'routes');
    routeCount = items.length;
    for (const item of items) {
      const r = validateRoute(w, item.node, item.path, ctx, protocol);
      if (r) routes.push(r);
      const hostNode = childNode(childNode(item.node, 'match'), 'host');
      if (r?.match.host !== undefined)
        routeHosts.push({ host: r.match.host, pos: hostNode?.pos, path: `${item.path}.match.host` });
    }
  }
  // Without a default pool, a request no route matches gets a 404; with no routes, every request.
  const needsDefault = protocol !== undefined && (!ROUTED.includes(protocol) || routeCount === 0);
  const defaultPool = poolRef(
    w,
    f,
    'default_pool',
    ctx,
    protocol,
    needsDefault
      ? ROUTED.includes(protocol!)
        ? 'is required when the listener has no routes'
        : `is required for ${protocol} listeners`
      : undefined,
  );

  let connectionLimit = 0;
  if (allowedOn(w, f, 'connection_limit', protocol, ['tcp', 'tls_passthrough', 'http', 'https']))
    connectionLimit = w.int(f, 'connection_limit', 0, Number.MAX_SAFE_INTEGER, 0);
  const timeouts = validateTimeouts(w, w.map(f.get('timeouts'), f.at('timeouts'), TIMEOUT_KEYS), protocol);
  const limits = validateLimits(w, w.map(f.get('limits'), f.at('limits'), LIMIT_KEYS), protocol);

  const trustedProxies: Cidr[] = [];
  const proxyItems = w.list(f, 'trusted_proxies');
  for (const item of proxyItems) {
    const s = w.strNode(item.node, item.path);
    if (s === undefined) continue;
    const reason = checkCidr(s);
    if (reason) w.report(item.node.pos, item.path, reason);
    else {
      const c = parseCidr(s);
      if (c.ok) trustedProxies.push(c.value);
    }
  }

  let acceptProxyProtocol = false;
  if (allowedOn(w, f, 'proxy_protocol', protocol, ['tcp', 'http', 'https'])) {
    const pp = w.map(f.get('proxy_protocol'), f.at('proxy_protocol'), ['accept']);
    acceptProxyProtocol = w.bool(pp, 'accept', false);
    // Without a trust list anyone could forge their client address with a PROXY header.
    if (acceptProxyProtocol && proxyItems.length === 0)
      w.report(
        pp.keyPos('accept'),
        pp.at('accept'),
        'requires a non-empty trusted_proxies list on this listener',
      );
  }

  let tls: TlsConfig | undefined;
  if (protocol === 'https' && !f.has('tls')) w.missing(f, 'tls', 'is required for https listeners');
  if (allowedOn(w, f, 'tls', protocol, ['https']) && f.has('tls'))
    tls = validateTls(w, f.get('tls')!, f.at('tls'), ctx);
  if (tls?.certificates.every((c) => c.certPem !== undefined)) {
    // A route host no certificate covers would get the default certificate: a name mismatch
    // for every client. Only checked when the certificates were read.
    for (const r of routeHosts)
      if (!tls.certificates.some((c) => namesCover(c.names, r.host)))
        w.report(
          r.pos,
          r.path,
          `no certificate of this listener covers host '${r.host}' (names: ${tls.certificates.flatMap((c) => c.names).join(', ') || 'none'})`,
        );
  }

  let redirectHttps: RedirectHttpsConfig | undefined;
  if (allowedOn(w, f, 'redirect_https', protocol, ['http']) && f.has('redirect_https'))
    redirectHttps = validateRedirect(w, f);
  let hsts: HstsConfig | undefined;
  if (allowedOn(w, f, 'hsts', protocol, ['https']) && f.has('hsts')) {
    const h = w.map(f.get('hsts'), f.at('hsts'), ['max_age', 'include_subdomains', 'preload']);
    // Seconds, as in the header (a year is beyond what durations allow: they are timers).
    const maxAgeS = w.int(h, 'max_age', 0, 2 ** 31 - 1, 31_536_000) ?? 31_536_000;
    const includeSubdomains = w.bool(h, 'include_subdomains', false);
    const preload = w.bool(h, 'preload', false);
    // The preload list refuses entries without these (hstspreload.org requirements).
    if (preload && (!includeSubdomains || maxAgeS < 31_536_000))
      w.report(
        h.keyPos('preload'),
        h.at('preload'),
        'requires include_subdomains: true and max_age of at least 31536000 (a year)',
      );
    if (h.present) hsts = { maxAgeS, includeSubdomains, preload };
  }

  let rateLimits: RateLimitConfig[] = [];
  if (allowedOn(w, f, 'rate_limit', protocol, HTTP)) rateLimits = validateRateLimits(w, f, 'rate_limit', ctx);
  const L4: readonly Protocol[] = ['tcp', 'tls_passthrough', 'http', 'https'];
  let rateLimitAllow: Cidr[] = [];
  if (allowedOn(w, f, 'rate_limit_allow', protocol, L4))
    rateLimitAllow = validateAllowList(w, f, 'rate_limit_allow');
  let connectionRateLimit: RateLimitConfig | undefined;
  if (allowedOn(w, f, 'connection_rate_limit', protocol, L4) && f.has('connection_rate_limit'))
    connectionRateLimit = validateConnectionRateLimit(
      w,
      f.get('connection_rate_limit')!,
      f.at('connection_rate_limit'),
      ctx,
    );
  let maxConnectionsPerIp = 0;
  if (allowedOn(w, f, 'max_connections_per_ip', protocol, L4))
    maxConnectionsPerIp = w.int(f, 'max_connections_per_ip', 0, Number.MAX_SAFE_INTEGER, 0);

  const accessLog = f.has('access_log')
    ? validateAccessLog(w, f.get('access_log')!, f.at('access_log'))
    : undefined;

  if (!f.present || name === undefined || port === undefined || protocol === undefined) return undefined;
  return {
    ...(accessLog ? { accessLog } : {}),
    name,
    port,
    protocol,
    defaultPool,
    routes,
    connectionLimit,
    timeouts,
    limits,
    trustedProxies,
    acceptProxyProtocol,
    tls,
    rateLimits,
    rateLimitAllow,
    connectionRateLimit,
    maxConnectionsPerIp,
    redirectHttps,
    hsts,
  };
}

/** `redirect_https: true` (port 443) or `{ port: N }`. */
function validateRedirect(w: Walker, f: Fields): RedirectHttpsConfig | undefined {
  const n = f.get('redirect_https')!;
  if (n.kind === 'scalar' && typeof n.value === 'boolean') return n.value ? { port: 443 } : undefined;
  if (n.kind !== 'map') {
    w.typeError(n, f.at('redirect_https'), 'true, false or a mapping { port }');
    return undefined;
  }
  const r = w.map(n, f.at('redirect_https'), ['port']);
  return { port: w.port(r, 'port', 443) ?? 443 };
}

/** The value under `key` of a mapping node (no reporting: the walk reports shapes). */
function childNode(n: Node | undefined, key: string): Node | undefined {
  return n?.kind === 'map' ? n.entries.find((e) => e.key === key)?.value : undefined;
}

const TIMEOUT_KEYS = [
  'connect',
  'idle',
  'client_header',
  'client_body',
  'client_idle',
  'upstream_response',
  'upstream_body',
  'client_body_total',
  'tunnel_idle',
] as const;

function validateTimeouts(w: Walker, f: Fields, protocol: Protocol | undefined): ListenerTimeouts {
  allowedOn(w, f, 'connect', protocol, ['tcp', 'tls_passthrough', 'http', 'https']);
  // http/https idle connections are governed by client_idle (keep-alive) instead.
  allowedOn(w, f, 'idle', protocol, ['tcp', 'tls_passthrough', 'udp']);
  // On tcp, client_header bounds the wait for an accepted PROXY protocol header.
  allowedOn(w, f, 'client_header', protocol, [...HTTP, 'tcp', 'tls_passthrough']);
  for (const k of TIMEOUT_KEYS.slice(3)) allowedOn(w, f, k, protocol, HTTP);
  const idleDefault =
    protocol === 'udp' ? 30_000 : protocol === 'tcp' || protocol === 'tls_passthrough' ? 300_000 : 60_000;
  return {
    connectMs: w.duration(f, 'connect', 5_000),
    idleMs: w.duration(f, 'idle', idleDefault),
    clientHeaderMs: w.duration(f, 'client_header', 10_000),
    clientBodyMs: w.duration(f, 'client_body', 30_000),
    // 10 minutes: the default max_body_bytes (10 MiB) at ~17 KB/s, so only a body that is
    // both large and slow meets it; min_body_rate catches trickling bodies far sooner.
    clientBodyTotalMs: w.duration(f, 'client_body_total', 600_000, true),
    clientIdleMs: w.duration(f, 'client_idle', 60_000),
    upstreamResponseMs: w.duration(f, 'upstream_response', 60_000),
    upstreamBodyMs: w.duration(f, 'upstream_body', 60_000),
    // 1 h, HAProxy's documented `timeout tunnel` example: long enough for WebSocket apps that
    // ping every few minutes or less, short enough that a vanished peer (no FIN, no RST)
    // releases its two sockets the same hour.
    tunnelIdleMs: w.duration(f, 'tunnel_idle', 3_600_000),
  };
}

const LIMIT_KEYS = [
  'max_header_bytes',
  'max_headers',
  'max_body_bytes',
  'max_sessions',
  'buffer_body',
  'min_body_rate',
  'drain_body',
] as const;

function validateLimits(w: Walker, f: Fields, protocol: Protocol | undefined): ListenerLimits {
  allowedOn(w, f, 'max_header_bytes', protocol, HTTP);
  allowedOn(w, f, 'max_headers', protocol, HTTP);
  allowedOn(w, f, 'max_body_bytes', protocol, HTTP);
  allowedOn(w, f, 'max_sessions', protocol, ['udp']);
  allowedOn(w, f, 'buffer_body', protocol, HTTP);
  allowedOn(w, f, 'min_body_rate', protocol, HTTP);
  allowedOn(w, f, 'drain_body', protocol, HTTP);
  return {
    maxHeaderBytes: w.size(f, 'max_header_bytes', 16 * 1024, 1024, 1024 * 1024),
    // 100 like Envoy (HAProxy: 101). Node alone would pass 1000 and drop the rest silently.
    maxHeaders: w.int(f, 'max_headers', 1, MAX_HEADERS_LIMIT, 100),
    maxBodyBytes: w.size(f, 'max_body_bytes', 10 * 1024 * 1024, 0, Number.MAX_SAFE_INTEGER),
    // 64 KiB covers nearly every API request body; the cap bounds what one buffering request
    // may hold in memory (the worker holds at most this per request still being read).
    bufferBodyBytes: w.size(f, 'buffer_body', 64 * 1024, 0, 16 * 1024 * 1024),
    // 256 B/s is far below any real client (a 2G uplink does several KB/s) and only cuts
    // bodies that trickle; Kestrel's MinRequestBodyDataRate (240 B/s) is the same idea.
    minBodyRate: w.size(f, 'min_body_rate', 256, 0, 1024 * 1024 * 1024),
    maxSessions: w.int(f, 'max_sessions', 1, Number.MAX_SAFE_INTEGER, 10_000),
    // 1 MiB: NGINX's client_max_body_size default, and cheap to read on a fast link; what a
    // client still owes past it costs less as a new connection than as bytes read for nothing.
    drainBodyBytes: w.size(f, 'drain_body', 1024 * 1024, 0, 16 * 1024 * 1024),
  };
}

const HTTP_MATCH_KEYS = ['host', 'path_prefix', 'headers', 'method'];

function validateRoute(
  w: Walker,
  node: Node,
  path: string,
  ctx: LbContext,
  protocol: Protocol | undefined,
): RouteConfig | undefined {
  const passthrough = protocol === 'tls_passthrough';
  const f = w.map(node, path, ['match', 'pool', 'rate_limit']);
  allowedOn(w, f, 'rate_limit', protocol, HTTP);
  // A passthrough stream may carry a pool's PROXY header; an HTTP route's pool may not.
  const pool = poolRef(w, f, 'pool', ctx, passthrough ? protocol : 'http', 'is required');
  const matchNode = f.get('match');
  const wanted = passthrough ? 'sni' : 'at least one of host, path_prefix, headers, method';
  if (matchNode === undefined) w.missing(f, 'match', `is required (${wanted})`);
  const m = w.map(matchNode, f.at('match'), [...HTTP_MATCH_KEYS, 'sni']);
  // The stream is never decrypted, so only the ClientHello's name can route it; and an HTTP
  // listener sees Host, not SNI.
  for (const k of HTTP_MATCH_KEYS) allowedOn(w, m, k, protocol, HTTP);
  allowedOn(w, m, 'sni', protocol, ['tls_passthrough']);
  if (m.present && !(passthrough ? m.has('sni') : HTTP_MATCH_KEYS.some((k) => m.has(k))))
    w.report(m.pos, m.path, `needs ${wanted}`);

  let sni = passthrough ? w.str(m, 'sni') : undefined;
  if (sni !== undefined) {
    sni = sni.toLowerCase();
    const bare = sni.startsWith('*.') ? sni.slice(2) : sni;
    const reason = isIP(bare)
      ? `sni '${sni}' is an IP address; clients send no SNI for addresses (use default_pool)`
      : bare.includes(':')
        ? `sni '${sni}' must not include a port`
        : checkHostOrIp(bare);
    if (reason) w.report(m.get('sni')!.pos, m.at('sni'), reason);
  }

  let host = w.str(m, 'host');
  if (host !== undefined) {
    host = host.toLowerCase();
    const bare = host.startsWith('*.') ? host.slice(2) : host;
    const reason = bare.includes(':') ? `host '${host}' must not include a port` : checkHostOrIp(bare);
    if (reason) w.report(m.get('host')!.pos, m.at('host'), reason);
  }
  const pathPrefix = w.str(m, 'path_prefix');
  if (pathPrefix !== undefined && !pathPrefix.startsWith('/'))
    w.report(m.get('path_prefix')!.pos, m.at('path_prefix'), `path_prefix '${pathPrefix}' must start with /`);

  // Header names are free-form keys, so this mapping is read directly rather than via w.map.
  const headers: Array<{ name: string; value: string }> = [];
  const hNode = m.get('headers');
  if (hNode !== undefined && hNode.kind !== 'map')
    w.typeError(hNode, m.at('headers'), 'a mapping of header name to value');
  if (hNode?.kind === 'map') {
    for (const e of hNode.entries) {
      const p = `${m.at('headers')}.${e.key}`;
      if (!TOKEN.test(e.key)) w.report(e.keyPos, p, `invalid header name '${e.key}'`);
      const v = w.strNode(e.value, p);
      if (v !== undefined) headers.push({ name: e.key.toLowerCase(), value: v });
    }
  }

  const methods: string[] = [];
  const mNode = m.get('method');
  if (mNode !== undefined) {
    const items = mNode.kind === 'seq' ? w.list(m, 'method') : [{ node: mNode, path: m.at('method') }];
    if (mNode.kind === 'seq' && items.length === 0)
      w.report(mNode.pos, m.at('method'), 'must not be an empty list; omit it to match any method');
    for (const { node: n, path: p } of items) {
      const s = w.strNode(n, p);
      if (s === undefined) continue;
      if (!TOKEN.test(s)) w.report(n.pos, p, `invalid HTTP method '${s}'`);
      else methods.push(s.toUpperCase());
    }
  }
  const rateLimits = validateRateLimits(w, f, 'rate_limit', ctx);
  if (!f.present || pool === undefined) return undefined;
  const match: RouteMatch = { host, sni, pathPrefix, headers, methods };
  return { match, pool, rateLimits };
}

const TLS_KEYS = [
  'certificates',
  'min_version',
  'ciphers',
  'ecdh_curves',
  'http2',
  'unknown_sni',
  'session_tickets',
  'client_auth',
  'client_ca',
  'client_cert_headers',
] as const;

function validateTls(w: Walker, node: Node, path: string, ctx: LbContext): TlsConfig | undefined {
  const f = w.map(node, path, TLS_KEYS);
  const minVersion = w.oneOf(f, 'min_version', TLS_VERSIONS, 'TLSv1.2') ?? 'TLSv1.2';
  const certificates: TlsCertificate[] = [];
  const certsNode = f.get('certificates');
  if (certsNode === undefined) w.missing(f, 'certificates', 'is required (at least one { cert, key })');
  else if (certsNode.kind === 'seq' && certsNode.items.length === 0)
    w.report(certsNode.pos, f.at('certificates'), 'must list at least one { cert, key }');
  for (const item of w.list(f, 'certificates')) {
    const c = w.map(item.node, item.path, ['cert', 'key']);
    const cert = w.filePath(c, 'cert', true);
    const key = w.filePath(c, 'key', true);
    if (cert === undefined || key === undefined) continue;
    const entry = readPair(w, c, cert, key, ctx);
    if (entry) certificates.push(entry);
  }
  const ciphers = w.str(f, 'ciphers') ?? DEFAULT_CIPHERS;
  const ecdhCurves = w.str(f, 'ecdh_curves') ?? DEFAULT_ECDH_CURVES;
  const http2 = w.bool(f, 'http2', true);
  const unknownSni = w.oneOf(f, 'unknown_sni', ['default', 'refuse'] as const, 'default') ?? 'default';
  const sessionTickets = w.bool(f, 'session_tickets', true);
  const clientAuth = w.oneOf(f, 'client_auth', CLIENT_AUTH_MODES, 'off') ?? 'off';
  const clientCa = w.filePath(f, 'client_ca');
  let clientCaPem: string | undefined;
  if (clientAuth !== 'off' && clientCa === undefined && !f.has('client_ca'))
    w.missing(f, 'client_ca', `is required when client_auth is ${clientAuth}`);
  if (clientCa !== undefined && clientAuth === 'off')
    w.report(
      f.keyPos('client_ca'),
      f.at('client_ca'),
      'only allowed when client_auth is optional or required',
    );
  else if (clientCa !== undefined && ctx.readFile) {
    const r = readMaterial(ctx.readFile, clientCa);
    const bad = r.ok ? inspectCaBundle(r.value) : r.reason;
    if (bad) w.report(f.get('client_ca')!.pos, f.at('client_ca'), bad);
    else if (r.ok) clientCaPem = r.value;
  }
  const h = w.map(f.get('client_cert_headers'), f.at('client_cert_headers'), ['subject', 'fingerprint']);
  const header = (k: string, def: string): string => {
    const v = w.str(h, k);
    if (v === undefined) return def;
    if (!TOKEN.test(v)) {
      w.report(h.get(k)!.pos, h.at(k), `invalid header name '${v}'`);
      return def;
    }
    return v.toLowerCase();
  };
  const clientCertHeaders = {
    subject: header('subject', 'x-client-cert-subject'),
    fingerprint: header('fingerprint', 'x-client-cert-fingerprint'),
  };
  if (clientCertHeaders.subject === clientCertHeaders.fingerprint)
    w.report(h.pos, f.at('client_cert_headers'), 'subject and fingerprint must be different headers');
  if (!f.present) return undefined;
  return {
    minVersion,
    certificates,
    ciphers,
    ecdhCurves,
    http2,
    unknownSni,
    sessionTickets,
    clientAuth,
    clientCa,
    clientCaPem,
    clientCertHeaders,
  };
}

/** One { cert, key }: read and checked when the validation reads files. */
function readPair(
  w: Walker,
  c: Fields,
  cert: string,
  key: string,
  ctx: LbContext,
): TlsCertificate | undefined {
  if (!ctx.readFile) return { cert, key, certPem: undefined, keyPem: undefined, names: [] };
  const certText = readMaterial(ctx.readFile, cert);
  const keyText = readMaterial(ctx.readFile, key);
  if (!certText.ok) w.report(c.get('cert')!.pos, c.at('cert'), certText.reason);
  if (!keyText.ok) w.report(c.get('key')!.pos, c.at('key'), keyText.reason);
  if (!certText.ok || !keyText.ok) return undefined;
  const r = inspectPair(certText.value, keyText.value, ctx.now);
  if (!r.ok) {
    w.report(c.get(r.field)!.pos, c.at(r.field), r.reason);
    return undefined;
  }
  return { cert, key, certPem: certText.value, keyPem: keyText.value, names: r.facts.names };
}

function validatePool(
  w: Walker,
  node: Node,
  path: string,
  names: Map<string, string>,
  /** The source's reader (the file source tracks what it read, to watch it); else a plain read. */
  readFile: FileReader | undefined,
): PoolConfig | undefined {
  const f = w.map(node, path, [
    'name',
    'algorithm',
    'proxy_protocol',
    'health_check',
    'max_queue',
    'queue_timeout',
    'tls',
    'http2',
    'retry',
    'outlier_detection',
    'panic_threshold',
    'slow_start',
    'backends',
  ]);
  const name = w.name(f, 'name');
  w.unique(names, name, `pool name '${name}'`, f, 'name');
  const algorithm = w.oneOf(f, 'algorithm', ALGORITHMS, 'round_robin') ?? 'round_robin';
  const proxyProtocol = w.oneOf<ProxyProtocolVersion>(f, 'proxy_protocol', ['v1', 'v2'], undefined, true);
  const healthCheck = f.has('health_check')
    ? validateHealthCheck(w, f.get('health_check')!, f.at('health_check'))
    : undefined;
  // Requests wait here only while a backend already has UPSTREAM_CONNECTIONS in flight from
  // this worker. 1024 is Envoy's max_pending_requests default; 5 s is HAProxy's fallback for
  // `timeout queue` (its `timeout connect`, ours by default): a queued request is a connection
  // not made yet, and failing it soon with a retriable 503 beats a client-side timeout.
  const maxQueue = w.int(f, 'max_queue', 0, 1_000_000, 1024);
  const queueTimeoutMs = w.duration(f, 'queue_timeout', 5_000);
  const tls = f.has('tls') ? validatePoolTls(w, f.get('tls')!, f.at('tls'), readFile) : undefined;
  const http2 = w.bool(f, 'http2', false);
  const retry = validateRetry(w, f.get('retry'), f.at('retry'));
  const outlierDetection = f.has('outlier_detection')
    ? validateOutlier(w, f.get('outlier_detection')!, f.at('outlier_detection'))
    : undefined;
  const panicThreshold = w.int(f, 'panic_threshold', 0, 100, 0);
  const slowStartMs = w.duration(f, 'slow_start', 0, true);

  const backends: BackendConfig[] = [];
  const ids = new Map<string, string>();
  const targets = new Map<string, string>();
  for (const item of w.list(f, 'backends')) {
    const b = w.map(item.node, item.path, [
      'id',
      'address',
      'port',
      'weight',
      'admin_state',
      'max_connections',
      'max_requests',
    ]);
    const address = w.address(b, 'address', checkHostOrIp, true);
    const port = w.port(b, 'port');
    const explicitId = w.str(b, 'id');
    const id =
      explicitId ?? (address !== undefined && port !== undefined ? hostPort(address, port) : undefined);
    let sameTarget = false;
    if (address !== undefined && port !== undefined) {
      const target = `${canonicalAddress(address)}|${port}`;
      sameTarget = w.unique(targets, target, `backend ${hostPort(address, port)}`, b, 'address');
    }
    // A defaulted id repeats only when address:port does, which was just reported.
    if (!(sameTarget && explicitId === undefined)) w.unique(ids, id, `backend id '${id}'`, b, 'id');
    const weight = w.int(b, 'weight', 1, 1000, 1);
    const adminState = w.oneOf(b, 'admin_state', ADMIN_STATES, 'enabled') ?? 'enabled';
    const maxConnections = w.int(b, 'max_connections', 0, 1_000_000, 0);
    const maxRequests = w.int(b, 'max_requests', 0, 1_000_000, 0);
    if (b.present && id !== undefined && address !== undefined && port !== undefined)
      backends.push({ id, address, port, weight, adminState, maxConnections, maxRequests });
  }
  if (!f.present || name === undefined) return undefined;
  return {
    name,
    algorithm,
    proxyProtocol,
    healthCheck,
    maxQueue,
    queueTimeoutMs,
    retry,
    outlierDetection,
    panicThreshold,
    slowStartMs,
    tls,
    http2,
    backends,
  };
}
