// WebSocket tunnels: an HTTP/1.1 `Upgrade: websocket` request is routed, checked and
// rewritten like any request, then handed to http-proxy-3 (`proxy.ws()`), which sends it to
// the backend and, on its 101, splices the two sockets with pipe() (backpressure both ways).
// This file owns everything around that splice:
// - a failure before the 101 answers the client with its class's status (404, 502, 504, ...);
// - when either side goes away the other socket is destroyed, never just end()ed (http-proxy
//   only end()s it, which leaks half-open sockets when a peer never reads again); a clean
//   FIN still lets the bytes already read reach the other side first, bounded by FLUSH_MS;
// - a client that leaves before the 101 aborts the upstream request;
// - idle tunnels are cut after timeouts.tunnel_idle, and a draining listener cuts what is
//   left at its drain deadline (drain_deadline).
// To a pool with `tls` the tunnel is TLS (wss) with the pool's own TLS material (agentFor).
// Any server's 'upgrade' event can call Tunnels.handle() (http today, https once it opens).
// Upgrades other than WebSocket (h2c, ...) are refused with 501.
//
// Limits: an upgrade request passes the same L7 `rate_limit`s as any request (listener's and
// route's, ratelimit/request-limits.ts), after routing and before the backend pick; over one it
// gets the HTTP path's 429 on the raw socket and nothing reaches a backend.
// A tunnel is a client connection, so connection_limit bounds tunnels too (Node's
// maxConnections counts upgraded sockets). Tunnels do not take one of the backend's in-flight
// request slots (upstream/admission.ts): a slot held for hours would starve plain requests.
// They do count as the backend's active connections for least_connections.
//
// Telemetry: every upgrade request is counted as the HTTP request it is, in the listener's
// request series (route, pool, backend, status class: 101 → 1xx), once its answer is out; its
// duration ends there. One access-log line (type "websocket") is written when it ends: at the
// refusal, or when its tunnel has closed on both sides, with the tunnel's bytes and lifetime.

import http, { type ClientRequest, type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ProxyServer } from 'http-proxy-3';
import { formatDuration } from '../../config/duration.ts';
import type { PoolConfig } from '../../config/model.ts';
import {
  classifyUpstreamError,
  ERROR_CATALOG,
  type ErrorClass,
  statusForError,
} from '../../shared/errors.ts';
import { errorText } from '../../shared/failure.ts';
import { log } from '../../shared/log.ts';
import { backendAddress, type ListenerState, listenerName, type WorkerEnv } from '../context.ts';
import type { LimitedRequest, RequestLimits } from '../ratelimit/request-limits.ts';
import type { BackendTarget } from '../routing/balancer/types.ts';
import { byKey } from '../routing/pick-context.ts';
import type { PoolRuntime } from '../routing/pool-runtime.ts';
import type { Router, RouteTarget } from '../routing/router.ts';
import type { AccessLogSink, LoggedUpgrade } from '../telemetry/access-log.ts';
import { recordUpgrade, type UpgradeTargets } from '../telemetry/record.ts';
import type { ListenerStats } from '../telemetry/stats.ts';
import { upstreamKey } from '../upstream/http-pools.ts';
import { PLAIN_TRANSPORT, tlsClientOptions, transportKey } from '../upstream/transport.ts';
import { retryAfterSeconds } from './exchange.ts';
import {
  clientIp,
  emptyRequestHead,
  type RequestHead,
  rewriteRequestHeaders,
  validAuthority,
} from './headers.ts';

/** Client bytes read ahead while waiting for the backend's 101 (clients normally send none). */
const EARLY_MAX = 64 * 1024;

/** After a clean FIN from one side, how long the other side may take to flush what it got. */
const FLUSH_MS = 1000;

/**
 * Free keep-alive sockets (left by a backend that answered an upgrade with a plain response)
 * are closed after this, below Node's default keepAliveTimeout (5 s), so we close them before
 * the backend does and never reuse one it is closing.
 */
const AGENT_FREE_SOCKET_MS = 4000;

/** What a tunnel needs from the listener that accepted the upgrade request. */
export interface UpgradeSite {
  readonly state: ListenerState;
  readonly router: Router;
  /** 'http' or 'https': X-Forwarded-Proto. */
  readonly proto: string;
  /** Normalized peer address (after PROXY protocol) and whether it is a trusted proxy. */
  readonly peerIp: string;
  readonly peerTrusted: boolean;
  /** The listener's L7 rate limits (its own and its routes'), undefined when it has none. */
  readonly limits: RequestLimits<PoolRuntime> | undefined;
  /** The listener's request series and access log (telemetry/). */
  readonly stats: ListenerStats;
  /**
   * The listener's access log now: a tunnel can outlive reloads, and its line belongs in the
   * log configured when it ends (the one it started with may be closed by then).
   */
  readonly log: () => AccessLogSink | undefined;
}

/** One upgrade request until it is a tunnel: what a refusal answers, counts and logs. */
interface Pending {
  readonly site: UpgradeSite;
  readonly socket: Socket;
  /** Arrival (performance.now()). */
  readonly at: number;
  readonly path: string;
  /** Known once the head is read, and once it is routed. */
  rh: RequestHead | undefined;
  route: RouteTarget | undefined;
}

const counters = {
  /** Tunnels open now (from a routed upgrade request until both sockets closed). */
  active: 0,
  /** Upgrade requests sent to a backend. */
  total: 0,
  /** Of those, answered 101 by the backend. */
  upgraded: 0,
  /** Of those, answered with a plain HTTP response instead (relayed to the client). */
  refusedByBackend: 0,
  /** Bytes client → backend and backend → client through closed tunnels (after the 101). */
  bytesUp: 0,
  bytesDown: 0,
};

/** Per-worker tunnel counters for /metrics (failures are counted per class apart). */
export function stats(): Readonly<typeof counters> {
  return { ...counters };
}

/**
 * One keep-alive agent per backend address and transport (upstreamKey), shared by every
 * listener of the worker. A pool with `tls` gets an https.Agent made with the same TLS
 * material as its HTTP requests (transport.ts: CA, verify, SNI, client certificate,
 * min_version), offering only ALPN http/1.1: a WebSocket upgrade is an HTTP/1.1 request, so an
 * h2-only backend refuses the handshake (upstream_tls) instead of being sent h1 bytes.
 */
const agents = new Map<string, http.Agent>();
function agentFor(t: BackendTarget, cfg: PoolConfig): http.Agent {
  const key = upstreamKey(t.address, t.port, cfg.tls === undefined ? PLAIN_TRANSPORT : transportKey(cfg));
  let a = agents.get(key);
  if (a === undefined) {
    // Upgraded sockets leave the agent on the 101, so its limits never bound tunnels.
    const base = { keepAlive: true, maxFreeSockets: 16, timeout: AGENT_FREE_SOCKET_MS };
    if (cfg.tls === undefined) a = new http.Agent(base);
    else {
      const o = tlsClientOptions(t.address, cfg.tls);
      // Agent options override the request's (Node merges them last); servername '' = no SNI.
      a = new https.Agent({
        ...base,
        secureContext: o.secureContext,
        rejectUnauthorized: o.rejectUnauthorized,
        servername: o.sni ?? '',
        ALPNProtocols: ['http/1.1'],
      });
    }
    agents.set(key, a);
  }
  return a;
}

const kTunnel = Symbol('fiberlb.tunnel');
type TaggedReq = IncomingMessage & { [kTunnel]?: Tunnel };

/** The tunnels of one listener. */
export class Tunnels {
  private readonly open = new Set<Tunnel>();
  private readonly proxy: ProxyServer;

  constructor(readonly env: WorkerEnv) {
    const proxy = new ProxyServer({ ws: true, xfwd: false, prependPath: false });
    // Before the 101 is sent, http-proxy hands us its request to time it and to learn the
    // upstream socket first (our 'upgrade' listener runs before its own).
    proxy.on('proxyReqWs', (proxyReq: ClientRequest, req: IncomingMessage) => {
      (req as TaggedReq)[kTunnel]?.onProxyReq(proxyReq);
    });
    // Client socket errors; without a listener http-proxy would throw.
    proxy.on('error', (err: Error, req: IncomingMessage) => {
      (req as TaggedReq)[kTunnel]?.clientError(err);
    });
    this.proxy = proxy;
  }

  /** Tunnels open (and upgrade requests waiting for their backend). */
  active(): number {
    return this.open.size;
  }

  /** Bytes held in our socket buffers across all tunnels (both sockets, both directions). */
  buffered(): number {
    let n = 0;
    for (const t of this.open) n += t.buffered();
    return n;
  }

  /** Drain deadline: cut every tunnel. */
  cutAll(): void {
    for (const t of [...this.open]) t.fail('drain_deadline', 'tunnel cut at the drain deadline');
  }

  /** Entry point for a server's 'upgrade' event. */
  handle(site: UpgradeSite, req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const p: Pending = {
      site,
      socket: socket as Socket,
      at: performance.now(),
      path: req.url ?? '',
      rh: undefined,
      route: undefined,
    };
    try {
      this.start(p, req, head);
    } catch (err) {
      // A bug must cost one connection, not the worker.
      this.refuse(p, 'internal_error', 'upgrade failed', err);
    }
  }

  private start(p: Pending, req: IncomingMessage, head: Buffer): void {
    const site = p.site;
    const state = site.state;
    const l = state.listener;
    const upgrade = req.headers.upgrade ?? '';
    if (upgrade.toLowerCase() !== 'websocket') {
      this.refuse(p, 'unsupported_request', `upgrade to '${upgrade}' not supported`);
      return;
    }
    if (req.rawHeaders.length > 2 * l.limits.maxHeaders) {
      this.refuse(p, 'header_too_large', `more than ${l.limits.maxHeaders} header lines`);
      return;
    }
    const rh = emptyRequestHead();
    rewriteRequestHeaders(req.rawHeaders, site.peerIp, site.peerTrusted, site.proto, rh);
    p.rh = rh;
    const path = p.path;
    if (rh.duplicateHost || rh.host === undefined || !validAuthority(rh.host) || path.charCodeAt(0) !== 47) {
      this.refuse(p, 'client_bad_request', 'invalid Host or request target');
      return;
    }
    // RFC 6455 §4.1: a GET without a body; a body here would be read as tunnel bytes.
    if (req.method !== 'GET' || rh.chunked || rh.contentLength > 0) {
      this.refuse(p, 'client_bad_request', 'a WebSocket upgrade is a GET without a body');
      return;
    }
    const route = site.router.match('GET', path, rh.host, req.headers);
    if (route === undefined) {
      this.refuse(p, 'no_route', 'no route');
      return;
    }
    p.route = route;
    const pool = route.pool;
    if (pool === undefined || pool.availableCount() === 0) {
      this.unavailable(p, route);
      return;
    }
    const limits = site.limits?.limitsFor(route.index);
    if (limits !== undefined) {
      // As for a plain request (listener.ts): after routing, before the pick, on the client's
      // own headers (req.headers is replaced only in tunnel()).
      const u = new LimitedUpgrade(this, p, req, head, rh, route);
      site.limits!.admit(u, limits, route.index, pool, false);
      u.admitCalled();
      return;
    }
    this.tunnel(p, req, head, rh, route, pool);
  }

  /** Past routing and rate limits: pick a backend and hand the request to http-proxy. */
  tunnel(
    p: Pending,
    req: IncomingMessage,
    head: Buffer,
    rh: RequestHead,
    route: RouteTarget,
    pool: PoolRuntime,
  ): void {
    const site = p.site;
    const socket = p.socket;
    const l = site.state.listener;
    const upgrade = req.headers.upgrade ?? '';
    const target = pool.pick(
      byKey(clientIp(site.peerIp, site.peerTrusted, rh.forwardedFor, l.trustedProxies)),
    );
    if (target === undefined) {
      this.unavailable(p, route);
      return;
    }

    // The rewritten head (X-Forwarded-*, X-Request-Id, hop-by-hop removed) replaces what
    // http-proxy copies from req.headers; Upgrade and Connection are put back for the backend.
    const out: Record<string, string | string[]> = {};
    const h = rh.headers;
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i]!.toLowerCase();
      const prev = out[name];
      out[name] =
        prev === undefined ? h[i + 1]! : Array.isArray(prev) ? [...prev, h[i + 1]!] : [prev, h[i + 1]!];
    }
    out.connection = 'Upgrade';
    out.upgrade = upgrade;
    req.headers = out;

    const t = new Tunnel(this, p, req, pool, target, route, rh.requestId);
    this.open.add(t);
    (req as TaggedReq)[kTunnel] = t;
    counters.total++;
    this.proxy.ws(
      req,
      socket,
      head,
      {
        target: `${pool.config.tls === undefined ? 'http' : 'https'}://${backendAddress(target)}`,
        agent: agentFor(target, pool.config),
        secure: pool.config.tls?.verify ?? true,
        // Our own X-Forwarded-For/Proto/Host are already set; xfwd would append a second set.
        xfwd: false,
      },
      (err: Error) => t.upstreamError(err),
    );
    t.watchClient();
  }

  /** No backend to offer: 503 with the Retry-After a plain request gets (exchange.ts). */
  private unavailable(p: Pending, route: RouteTarget): void {
    const msg = `no healthy backend in pool '${route.poolName}'`;
    const retry = ['retry-after', String(retryAfterSeconds(route.pool?.config))];
    this.refuse(p, 'no_healthy_backend', msg, undefined, retry);
  }

  /**
   * Over an L7 rate limit: what the HTTP path sends (exchange.ts fail/sendError: 429, body
   * naming the class, X-Request-Id, Retry-After and RateLimit-*), counted as `rate_limited`.
   */
  rateLimited(p: Pending, rh: RequestHead, headers: string[], msg: string): void {
    const site = p.site;
    this.env.failures.report('rate_limited', 'upgrade refused', {
      listener: listenerName(site.state),
      client: site.peerIp,
      request_id: rh.requestId || undefined,
      error: msg,
    });
    const status = statusForError('rate_limited');
    const sent = answer(p.socket, status, 'rate_limited', headers, rh.requestId);
    refused(p, sent ? status : 0, 'rate_limited');
  }

  /** Answer an upgrade request we will not tunnel, count it, close. */
  refuse(p: Pending, cls: ErrorClass, msg: string, err?: unknown, extra?: readonly string[]): void {
    const site = p.site;
    const requestId = p.rh?.requestId ?? '';
    this.env.failures.report(cls, 'upgrade refused', {
      listener: listenerName(site.state),
      client: site.peerIp,
      request_id: requestId || undefined,
      error: err === undefined ? msg : errorText(err),
    });
    // A class without a status (client_abort) has nobody to answer.
    const status = ERROR_CATALOG[cls].status;
    let sent = false;
    if (status === undefined) p.socket.destroy();
    else sent = answer(p.socket, status, msg, extra, requestId);
    refused(p, sent ? status! : 0, cls);
  }

  /** A tunnel has closed on both sides. */
  closed(t: Tunnel): void {
    this.open.delete(t);
  }
}

/** A refused upgrade ends here: counted in the listener's request series, and logged. */
function refused(p: Pending, status: number, cls: ErrorClass): void {
  const now = performance.now();
  const site = p.site;
  const u: LoggedUpgrade & UpgradeTargets = {
    route: p.route,
    backend: undefined,
    backendAnswered: false,
    peerIp: site.peerIp,
    path: p.path,
    status,
    requestId: p.rh?.requestId ?? '',
    errorClass: cls,
    bytesIn: 0,
    bytesOut: 0,
    startedAt: p.at,
    dispatchedAt: 0,
    connectedAt: 0,
    answeredAt: now,
  };
  recordUpgrade(site.stats, u);
  site.log()?.websocket(site.stats.name, site.stats.lb, u, now);
}

/** One upgrade handed to a backend, from then until both sockets closed (LoggedUpgrade for its line). */
class Tunnel implements LoggedUpgrade, UpgradeTargets {
  private proxyReq: ClientRequest | null = null;
  private upstream: Socket | null = null;
  private upgraded = false;
  /** The client got an answer other than our own failure (the backend's 101 or response). */
  private answered = false;
  private failed = false;
  private clientClosed = false;
  private upstreamClosed = false;
  private holding = true;
  private timer: NodeJS.Timeout | undefined = undefined;
  // Telemetry (LoggedUpgrade): times are performance.now(), 0 until they happen.
  private readonly site: UpgradeSite;
  private readonly client: Socket;
  readonly startedAt: number;
  readonly dispatchedAt = performance.now();
  readonly path: string;
  connectedAt = 0;
  answeredAt = 0;
  /** What the client got (0: nothing yet, or cut without an answer). */
  status = 0;
  backendAnswered = false;
  errorClass: ErrorClass | undefined = undefined;
  bytesIn = 0;
  bytesOut = 0;
  /** The upstream socket's counts at the 101 (its request head; the 101 head). */
  private upBase = 0;
  private downBase = 0;
  private recorded = false;
  /** Client bytes read while waiting for the 101 (put back before the splice). */
  private early: Buffer[] | null = null;
  private earlyBytes = 0;
  private readonly onEarly = (d: Buffer): void => {
    this.early!.push(d);
    this.earlyBytes += d.length;
    // Bounded: past this, stop reading (the kernel holds the rest) until the splice.
    if (this.earlyBytes >= EARLY_MAX) this.client.pause();
  };
  private readonly onEarlyEnd = (): void => {
    if (!this.answered) this.fail('client_abort', 'client closed before the upgrade completed');
  };

  constructor(
    private readonly owner: Tunnels,
    p: Pending,
    private readonly req: IncomingMessage,
    private readonly pool: PoolRuntime,
    private readonly target: BackendTarget,
    readonly route: RouteTarget,
    readonly requestId: string,
  ) {
    this.site = p.site;
    this.client = p.socket;
    this.startedAt = p.at;
    this.path = p.path;
    const client = this.client;
    pool.acquire(target);
    counters.active++;
    client.once('close', () => {
      this.clientClosed = true;
      if (!this.upgraded) {
        // Gone before the 101: stop the upstream request (http-proxy would let it complete and
        // then pipe into a dead socket).
        if (!this.answered) this.fail('client_abort', 'client closed before the upgrade completed');
        this.proxyReq?.destroy();
      } else this.upstream?.destroy();
      this.maybeDone();
    });
  }

  /**
   * Read the client while waiting for the 101: a client that leaves (FIN) must be noticed, or
   * the upstream request would run on until its timeout. http-proxy has already put `head`
   * back into the socket, so it is read here first.
   */
  watchClient(): void {
    if (this.upgraded || this.failed || this.clientClosed) return;
    this.early = [];
    this.client.on('data', this.onEarly);
    this.client.once('end', this.onEarlyEnd);
    this.client.resume();
  }

  /** Stop reading early bytes and put them back for the splice. */
  private unwatchClient(): void {
    const early = this.early;
    if (early === null) return;
    this.early = null;
    const c = this.client;
    c.off('data', this.onEarly);
    c.off('end', this.onEarlyEnd);
    c.pause();
    if (early.length > 0) c.unshift(early.length === 1 ? early[0]! : Buffer.concat(early));
  }

  get backend(): BackendTarget {
    return this.target;
  }

  get peerIp(): string {
    return this.site.peerIp;
  }

  /** The client has its answer (or none will come): count the upgrade request, once. */
  private answeredWith(status: number, byBackend: boolean): void {
    if (this.recorded) return;
    this.recorded = true;
    this.status = status;
    this.backendAnswered = byBackend;
    this.answeredAt = performance.now();
    recordUpgrade(this.site.stats, this);
  }

  buffered(): number {
    const u = this.upstream;
    const c = this.client;
    return c.writableLength + c.readableLength + (u === null ? 0 : u.writableLength + u.readableLength);
  }

  onProxyReq(proxyReq: ClientRequest): void {
    this.proxyReq = proxyReq;
    const to = this.site.state.listener.timeouts;
    const wait = (cls: ErrorClass, ms: number, what: string) => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.fail(cls, `${what} within ${formatDuration(ms)}`), ms);
    };
    proxyReq.once('socket', (s: Socket) => {
      if (!s.connecting) {
        this.connectedAt = performance.now();
        wait('upstream_timeout', to.upstreamResponseMs, 'no upgrade response');
      } else {
        wait('upstream_connect_timeout', to.connectMs, 'backend not connected');
        s.once('connect', () => {
          this.connectedAt = performance.now();
          wait('upstream_timeout', to.upstreamResponseMs, 'no upgrade response');
        });
      }
    });
    proxyReq.once('response', (res: IncomingMessage) => {
      // The backend refused the upgrade with a plain response: http-proxy relays it and closes.
      clearTimeout(this.timer);
      this.unwatchClient();
      this.answered = true;
      this.answeredWith(res.statusCode ?? 0, true);
      counters.refusedByBackend++;
      const idle = this.site.state.listener.timeouts.tunnelIdleMs;
      this.client.setTimeout(idle, () => this.fail('client_timeout', `idle for ${formatDuration(idle)}`));
    });
    proxyReq.once('upgrade', (_res: IncomingMessage, upstream: Socket, head: Buffer) =>
      this.onUpgrade(upstream, head),
    );
  }

  private onUpgrade(upstream: Socket, head: Buffer): void {
    clearTimeout(this.timer);
    this.unwatchClient();
    this.upstream = upstream;
    this.upgraded = true;
    this.answered = true;
    // Tunnel bytes are counted from here: what was written so far is the request head (client
    // bytes wait in `early` until the splice), what was read is the 101 head plus `head`.
    this.upBase = upstream.bytesWritten;
    this.downBase = upstream.bytesRead - head.length;
    this.answeredWith(101, true);
    counters.upgraded++;
    upstream.once('close', () => {
      this.upstreamClosed = true;
      this.client.destroy();
      this.maybeDone();
    });
    if (this.clientClosed || this.failed) {
      upstream.destroy();
      return;
    }
    // Both sockets see every byte moved (read on one, written on the other), so either timer
    // firing means nothing moved in either direction for tunnel_idle.
    const idle = this.site.state.listener.timeouts.tunnelIdleMs;
    const onIdle = () => this.fail('client_timeout', `tunnel idle for ${formatDuration(idle)}`);
    // Set after http-proxy's setupSocket(), which clears socket timeouts.
    setImmediate(() => {
      if (this.failed || this.clientClosed || this.upstreamClosed) return;
      this.client.setTimeout(idle, onIdle);
      upstream.setTimeout(idle, onIdle);
    });
    // A clean FIN: the side is done. pipe() end()s the other side after what was read; once
    // that is flushed (or after FLUSH_MS) both are destroyed.
    this.client.once('end', () => this.finishAfterFlush(upstream));
    upstream.once('end', () => this.finishAfterFlush(this.client));
  }

  private finishAfterFlush(other: Socket): void {
    const cut = () => {
      this.client.destroy();
      this.upstream?.destroy();
    };
    if (other.writableFinished || other.destroyed) {
      cut();
      return;
    }
    other.once('finish', cut);
    setTimeout(cut, FLUSH_MS).unref();
  }

  /** http-proxy's error callback: the upstream request or socket failed. */
  upstreamError(err: Error): void {
    if (this.clientClosed && !this.upgraded) return; // our own abort after the client left
    const cls = classifyUpstreamError(err);
    // Reset mid-tunnel: the backend went away.
    this.fail(cls === 'upstream_error' && this.upgraded ? 'upstream_reset' : cls, 'upstream failed', err);
  }

  /** The client socket errored (reset, EPIPE). */
  clientError(err: Error): void {
    this.fail('client_abort', 'client connection error', err);
  }

  /** Count once, answer if the client has had no answer yet, destroy both sides. */
  fail(cls: ErrorClass, msg: string, err?: unknown): void {
    if (this.failed) return;
    this.failed = true;
    clearTimeout(this.timer);
    const t = this.target;
    this.owner.env.failures.report(cls, 'websocket tunnel failed', {
      listener: listenerName(this.site.state),
      backend: t.key,
      backend_address: backendAddress(t),
      client: this.site.peerIp,
      request_id: this.requestId,
      error: err === undefined ? msg : errorText(err),
    });
    this.unwatchClient();
    this.errorClass = cls;
    const status = ERROR_CATALOG[cls].status;
    if (!this.answered && !this.clientClosed && status !== undefined) {
      this.answered = true;
      this.answeredWith(answer(this.client, status, msg, undefined, this.requestId) ? status : 0, false);
    } else {
      this.answeredWith(0, false); // a no-op once the client had its answer
      this.client.destroy();
    }
    this.proxyReq?.destroy();
    this.upstream?.destroy();
  }

  private maybeDone(): void {
    if (!this.clientClosed || (this.upstream !== null && !this.upstreamClosed) || !this.holding) return;
    this.holding = false;
    clearTimeout(this.timer);
    this.pool.release(this.target);
    counters.active--;
    const up = this.upstream;
    if (up !== null) {
      this.bytesIn = up.bytesWritten - this.upBase;
      this.bytesOut = up.bytesRead - this.downBase;
      counters.bytesUp += this.bytesIn;
      counters.bytesDown += this.bytesOut;
    }
    this.answeredWith(0, false); // every path above has answered; this only guards a new one
    const now = performance.now();
    const site = this.site;
    site.log()?.websocket(site.stats.name, site.stats.lb, this, now);
    log('debug', 'tunnel closed', {
      listener: listenerName(site.state),
      backend: this.target.key,
      client: site.peerIp,
      request_id: this.requestId,
      upgraded: this.upgraded,
      duration_ms: Math.round(now - this.startedAt),
      bytes_up: this.bytesIn,
      bytes_down: this.bytesOut,
    });
    delete (this.req as TaggedReq)[kTunnel];
    this.owner.closed(this);
  }
}

/**
 * An upgrade request waiting on the L7 rate limits (LimitedRequest): the limiter calls
 * proceed() or refuse() once, at once or after the primary answered a lease request.
 */
class LimitedUpgrade implements LimitedRequest<PoolRuntime> {
  private done = false;
  private key: string | undefined = undefined;
  // While a lease is asked for nobody else watches the socket (Node's server dropped its
  // listeners at the upgrade, http-proxy has not added its own yet). It is still read into
  // its own buffer (bounded by its highWaterMark; bytes stay there for the tunnel), so a FIN
  // with nothing unread ahead of it shows as 'end', a reset as 'error'.
  private watching = false;
  private readonly onError = (): void => {
    this.socket.destroy();
  };
  private readonly onGone = (): void => {
    if (this.settle()) this.aborted();
  };
  private readonly site: UpgradeSite;
  private readonly socket: Socket;

  constructor(
    private readonly owner: Tunnels,
    private readonly p: Pending,
    readonly req: IncomingMessage,
    private readonly head: Buffer,
    private readonly rh: RequestHead,
    private readonly route: RouteTarget,
  ) {
    this.site = p.site;
    this.socket = p.socket;
  }

  get host(): string | undefined {
    return this.rh.host;
  }

  /** The client address, by the same trusted-proxy rule as a plain request's. */
  hashKey(): string {
    this.key ??= clientIp(
      this.site.peerIp,
      this.site.peerTrusted,
      this.rh.forwardedFor,
      this.site.state.listener.trustedProxies,
    );
    return this.key;
  }

  /** admit() returned: if it did not decide yet, watch the socket until it does. */
  admitCalled(): void {
    if (this.done) return;
    const s = this.socket;
    this.watching = true;
    s.on('error', this.onError);
    s.once('end', this.onGone);
    s.once('close', this.onGone);
  }

  /** First decision wins; stop watching the socket. */
  private settle(): boolean {
    if (this.done) return false;
    this.done = true;
    if (this.watching) {
      const s = this.socket;
      s.off('error', this.onError);
      s.off('end', this.onGone);
      s.off('close', this.onGone);
    }
    return true;
  }

  /** The client left (FIN, reset) while the lease was asked for: as a plain request's. */
  private aborted(): void {
    const msg = 'client closed before the upgrade completed';
    this.owner.refuse(this.p, 'client_abort', msg);
  }

  proceed(pool: PoolRuntime): void {
    if (!this.settle()) return;
    if (this.socket.destroyed) {
      this.aborted();
      return;
    }
    try {
      this.owner.tunnel(this.p, this.req, this.head, this.rh, this.route, pool);
    } catch (err) {
      // Possibly called from a lease answer: a bug must cost one connection, not the worker.
      this.owner.refuse(this.p, 'internal_error', 'upgrade failed', err);
    }
  }

  refuse(headers: string[], message: string): void {
    if (!this.settle()) return;
    if (this.socket.destroyed) this.aborted();
    else this.owner.rateLimited(this.p, this.rh, headers, message);
  }
}

/** A short HTTP answer on the raw socket, then close (destroyed once flushed). false: cut instead. */
function answer(
  socket: Socket,
  status: number,
  text: string,
  extra?: readonly string[],
  requestId = '',
): boolean {
  if (!socket.writable) {
    socket.destroy();
    return false;
  }
  const reason = http.STATUS_CODES[status] ?? '';
  const body = `${status} ${reason}: ${text}\n`;
  let head = `HTTP/1.1 ${status} ${reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`;
  if (requestId !== '') head += `x-request-id: ${requestId}\r\n`;
  if (extra !== undefined)
    for (let i = 0; i < extra.length; i += 2) head += `${extra[i]}: ${extra[i + 1]}\r\n`;
  socket.end(`${head}connection: close\r\n\r\n${body}`);
  socket.destroySoon();
  // A client that never reads must not hold the socket: cut it if it has not flushed soon.
  setTimeout(() => socket.destroy(), FLUSH_MS).unref();
  return true;
}
