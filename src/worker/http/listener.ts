// The HTTP/1.1 listener: Node's http server in front of the router, the balancer and one
// undici dispatch per request (upstream/http-proxy.ts). Node enforces the client-side head
// limits (header size, header timeout, keep-alive idle); this file maps Node's own error
// answers to error classes so they are counted too.
// TLS termination (tls/https-listener.ts) reuses everything here: it swaps the server (Node's
// HTTP/2 secure server with HTTP/1.1 fallback) and adds a SecureSide; h2 requests take the same
// path as h1 ones, with their head adapted in h2.ts.

import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { Http2ServerResponse } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type Cidr, MAX_HEADERS_LIMIT } from '../../config/model.ts';
import { cidrsContain, plainIp } from '../../shared/cidr.ts';
import { type ErrorClass, statusForError } from '../../shared/errors.ts';
import { errorText, type FailureFields } from '../../shared/failure.ts';
import type { ListenerFactory, ListenerHandle, ListenerState, WorkerEnv } from '../context.ts';
import { listenerKey, listenerName, perWorkerLimit } from '../context.ts';
import { readProxyHeader } from '../proxy-protocol.ts';
import { ConnectionLimits } from '../ratelimit/connection-limits.ts';
import { RequestLimits } from '../ratelimit/request-limits.ts';
import type { PoolRuntime } from '../routing/pool-runtime.ts';
import { Router } from '../routing/router.ts';
import type { AccessLogSink } from '../telemetry/access-log.ts';
import { listenerStats, recordHttp } from '../telemetry/record.ts';
import type { ListenerStats } from '../telemetry/stats.ts';
import { isDraining, isLingering } from './body-drain.ts';
import { clientErrorClass, type ExchangeOwner, exchangeOf, HttpExchange } from './exchange.ts';
import { h2RequestHead } from './h2.ts';
import { rewriteRequestHeaders, validAuthority } from './headers.ts';
import { redirectToHttps } from './redirect.ts';
import { Tunnels } from './upgrade.ts';

/** PROXY header read timeout when the listener has no client header timeout. */
const DEFAULT_PROXY_HEADER_TIMEOUT_MS = 5000;

/** How often Node checks header timeouts (its default, 30 s, is far coarser than ours). */
const CHECK_INTERVAL_MS = 1000;

export const createHttpListener: ListenerFactory = (state, env) =>
  new HttpListener(state, env, createServer, 'http');

/** The one thing an https listener will swap. */
function createServer(options: http.ServerOptions): http.Server {
  return http.createServer(options);
}

/** What an https listener adds to this one (tls/https-listener.ts). */
export interface SecureSide {
  /** New config: new handshakes use its certificates and settings. */
  update(state: ListenerState): void;
  /** Per request: remove client-certificate headers the client sent, add the verified ones. */
  requestHeaders(headers: string[], socket: Socket): void;
  /** Closing: GOAWAY to every h2 session (they finish their streams). */
  drain(): void;
  /** The drain deadline passed: cut every connection. */
  closeAll(): void;
}

/** Everything a request reads from one ListenerState, compiled once per update(). */
class Compiled {
  readonly router: Router;
  /** undefined: no rate limit on this listener or its routes. */
  readonly limits: RequestLimits<PoolRuntime> | undefined;
  /** Appended to every proxied response head (HSTS), or undefined. */
  readonly responseHeaders: readonly string[] | undefined;
  constructor(
    readonly state: ListenerState,
    env: WorkerEnv,
  ) {
    this.router = new Router(state.listener, state.pools);
    const l = state.listener;
    this.limits =
      l.rateLimits.length > 0 || l.routes.some((r) => r.rateLimits.length > 0)
        ? new RequestLimits(state, env.rateLimits)
        : undefined;
    const h = l.hsts;
    this.responseHeaders =
      h === undefined
        ? undefined
        : [
            'strict-transport-security',
            `max-age=${h.maxAgeS}${h.includeSubdomains ? '; includeSubDomains' : ''}${h.preload ? '; preload' : ''}`,
          ];
  }
}

/** Per-connection cache of the peer address and whether it is trusted (per trust list). */
interface PeerInfo {
  readonly ip: string;
  trustList: readonly Cidr[];
  trusted: boolean;
}
const kPeer = Symbol('fiberlb.peer');
type H2Request = { stream: { endAfterHeaders: boolean } };
type PeerSocket = Socket & { [kPeer]?: PeerInfo };

/** The connection's peer (cached on the socket), re-judged against a reloaded trust list. */
function peerOf(socket: PeerSocket, trustedProxies: readonly Cidr[]): PeerInfo {
  let info = socket[kPeer];
  if (info === undefined) {
    const ip = plainIp(socket.remoteAddress);
    info = { ip, trustList: trustedProxies, trusted: cidrsContain(trustedProxies, ip) };
    socket[kPeer] = info;
  } else if (info.trustList !== trustedProxies) {
    // Reloaded since this connection's last request.
    info.trustList = trustedProxies;
    info.trusted = cidrsContain(trustedProxies, info.ip);
  }
  return info;
}

export class HttpListener implements ListenerHandle, ExchangeOwner {
  readonly key: string;
  readonly ready: Promise<void>;
  readonly env: WorkerEnv;
  draining = false;
  deadlinePassed = false;
  private current: Compiled;
  private stats: ListenerStats;
  private log: AccessLogSink | undefined;
  private readonly currentLog = (): AccessLogSink | undefined => this.log;
  private inflight = 0;
  private readonly server: http.Server;
  private readonly proto: string;
  private closing: Promise<void> | undefined;
  private onDrained: (() => void) | undefined;
  /** WebSocket tunnels of this listener (read by tests: active, buffered). */
  readonly tunnels: Tunnels;
  /** connection_rate_limit / max_connections_per_ip, checked at accept (before TLS for https). */
  private readonly connLimits: ConnectionLimits;

  constructor(
    state: ListenerState,
    env: WorkerEnv,
    makeServer: (options: http.ServerOptions) => http.Server,
    proto: 'http' | 'https',
    private readonly secure?: SecureSide,
  ) {
    this.key = listenerKey(state.lb, state.listener);
    this.env = env;
    this.proto = proto;
    this.current = new Compiled(state, env);
    this.connLimits = new ConnectionLimits(env.rateLimits);
    this.stats = listenerStats(env, state);
    this.log = env.telemetry?.accessLogs.sink(state.accessLog);
    const l = state.listener;
    this.server = makeServer({
      maxHeaderSize: l.limits.maxHeaderBytes,
      headersTimeout: l.timeouts.clientHeaderMs,
      // The body has its own gap timer; a whole-request deadline would cut long uploads.
      requestTimeout: 0,
      keepAliveTimeout: l.timeouts.clientIdleMs,
      connectionsCheckingInterval: Math.min(CHECK_INTERVAL_MS, Math.max(100, l.timeouts.clientHeaderMs / 4)),
      // We answer a missing Host ourselves, so the failure is counted.
      requireHostHeader: false,
      noDelay: true,
    });
    // Node keeps the first maxHeadersCount request headers and drops the rest silently, while
    // llhttp still frames the body by a Content-Length past the cap. With the cap one above
    // the largest allowed limit, "more than limits.max_headers" is a length check per request,
    // exact across reloads (Node reads the cap per connection).
    this.server.maxHeadersCount = MAX_HEADERS_LIMIT + 1;
    // A client that half-closes after its request (nc, HTTP/1.0 scripts, health checkers) is
    // answered, then the connection closed; Node's default ends our side at once instead.
    (this.server as { httpAllowHalfOpen?: boolean }).httpAllowHalfOpen = true;
    this.applyServerLimits(state);
    const server = this.server;
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.handle(req, res, false));
    // Expect: 100-continue is answered only once we know the request will be forwarded.
    server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => this.handle(req, res, true));
    server.on('clientError', (err: Error & { code?: string }, socket: Duplex) =>
      this.onClientError(err, socket),
    );
    // WebSocket tunnels (upgrade.ts); other upgrades (h2c, ...) are refused there with 501.
    this.tunnels = new Tunnels(env);
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.upgrade(req, socket, head),
    );
    server.on('connect', (_req: IncomingMessage, socket: Duplex) =>
      this.unsupported(socket, 'CONNECT not supported'),
    );
    server.on('drop', () => this.count('connection_limit', { error: 'connection limit reached' }));
    this.interceptConnections();
    // The client address judged at accept (or read from a PROXY header before the handshake)
    // moves to the TLS socket the requests see.
    if (secure !== undefined)
      server.on('secureConnection', (tlsSocket: PeerSocket & { _parent?: PeerSocket }) => {
        const info = tlsSocket._parent?.[kPeer];
        if (info !== undefined) tlsSocket[kPeer] = info;
      });
    this.ready = new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => {
        this.count('listen_failed', { error: errorText(err) }, 'listen failed');
        reject(err);
      };
      server.once('error', onError);
      server.listen({ host: state.lb.vip, port: l.port }, () => {
        server.off('error', onError);
        // After bind, server errors are accept failures (EMFILE, ENFILE): count, keep serving.
        server.on('error', (err: Error) =>
          this.count('accept_failed', { error: errorText(err) }, 'accept failed'),
        );
        resolve();
      });
    });
  }

  update(state: ListenerState): void {
    this.current = new Compiled(state, this.env);
    if (this.stats.name !== listenerName(state)) this.stats = listenerStats(this.env, state);
    this.log = this.env.telemetry?.accessLogs.sink(state.accessLog);
    const l = state.listener;
    this.server.headersTimeout = l.timeouts.clientHeaderMs;
    this.server.keepAliveTimeout = l.timeouts.clientIdleMs;
    this.applyServerLimits(state);
    this.secure?.update(state);
  }

  /** Appended to proxied response heads (ExchangeOwner). */
  get responseHeaders(): readonly string[] | undefined {
    return this.current.responseHeaders;
  }

  active(): number {
    return this.inflight + this.tunnels.active();
  }

  close(deadlineMs: number): Promise<void> {
    if (this.closing) return this.closing;
    this.draining = true;
    const server = this.server;
    this.closing = new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      let closed = false;
      const finish = () => {
        if (timer) clearTimeout(timer);
        resolve();
      };
      // 'close' fires once every connection has ended (or the server never listened).
      server.close(() => {
        closed = true;
        if (this.inflight === 0) finish();
      });
      server.closeIdleConnections();
      this.secure?.drain();
      this.onDrained = () => {
        if (closed) finish();
        else server.closeIdleConnections();
      };
      timer = setTimeout(() => {
        this.deadlinePassed = true;
        // Upgraded sockets are no longer Node's HTTP connections: cut them ourselves.
        this.tunnels.cutAll();
        if (this.secure !== undefined) this.secure.closeAll();
        else server.closeAllConnections();
        finish();
      }, deadlineMs);
      timer.unref();
    });
    return this.closing;
  }

  // --- ExchangeOwner ---

  requestClosed(ex: HttpExchange): void {
    this.inflight--;
    const now = performance.now();
    recordHttp(this.stats, ex, now);
    this.log?.http(this.stats.name, this.stats.lb, ex, now);
    if (this.draining) {
      // A keep-alive socket whose response just ended is idle now: let it go.
      setImmediate(() => {
        this.server.closeIdleConnections();
        if (this.inflight === 0) this.onDrained?.();
      });
    }
  }

  // --- per request ---

  private handle(req: IncomingMessage, res: ServerResponse, expectContinue: boolean): void {
    // Closing after an early response (body-drain.ts): what follows that body is not served.
    if (req.httpVersionMajor === 1 && isLingering(req.socket)) {
      req.socket.destroy();
      return;
    }
    const c = this.current;
    this.inflight++;
    const ex = new HttpExchange(this, c.state, req, res);
    try {
      this.route(c, ex, expectContinue);
    } catch (err) {
      // A bug must cost one request, not the worker.
      ex.fail('internal_error', err);
    }
  }

  /** A WebSocket (or other) upgrade request: routed and tunnelled by upgrade.ts. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const c = this.current;
    const info = peerOf(socket as PeerSocket, c.state.listener.trustedProxies);
    const site = {
      state: c.state,
      router: c.router,
      proto: this.proto,
      peerIp: info.ip,
      peerTrusted: info.trusted,
      // Upgrades pass the same L7 rate limits as plain requests.
      limits: c.limits,
      // ... and are counted and logged with them.
      stats: this.stats,
      log: this.currentLog,
    };
    this.tunnels.handle(site, req, socket, head);
  }

  private route(c: Compiled, ex: HttpExchange, expectContinue: boolean): void {
    const state = c.state;
    const req = ex.req;
    const socket = req.socket as PeerSocket;
    const info = peerOf(socket, state.listener.trustedProxies);
    const peer = info.ip;
    const trusted = info.trusted;
    ex.peerIp = peer;
    ex.peerTrusted = trusted;
    // h2: pseudo-headers out, :authority as Host, cookies joined (h2.ts); h1 as it came.
    const raw = ex.h2 ? h2RequestHead(req) : req.rawHeaders;
    if (raw.length > 2 * state.listener.limits.maxHeaders) {
      // Nothing is forwarded: Node may have dropped headers past its cap (see constructor).
      ex.fail('header_too_large');
      return;
    }
    rewriteRequestHeaders(raw, peer, trusted, this.proto, ex);
    if (this.secure !== undefined) this.secure.requestHeaders(ex.headers, socket);

    if (
      ex.duplicateHost ||
      (ex.host === undefined ? req.httpVersionMinor === 1 || ex.h2 : !validAuthority(ex.host)) ||
      ex.path.charCodeAt(0) !== 47
    ) {
      // RFC 9112 §3.2 (one valid Host on HTTP/1.1); only origin-form targets ("/...") are proxied.
      ex.fail('client_bad_request');
      return;
    }
    if (state.listener.redirectHttps !== undefined) {
      redirectToHttps(ex, state.listener.redirectHttps.port);
      return;
    }
    if (ex.h2) {
      // h2 frames its own body: DATA frames up to END_STREAM, Content-Length optional.
      if (ex.contentLength < 0 && !(req as unknown as H2Request).stream.endAfterHeaders) ex.chunked = true;
    } else if (ex.chunked) {
      // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means broken framing → 400. Other codings
      // than one chunked → 501, as NGINX does (Node would drop them and forward the bytes).
      if (req.httpVersionMinor === 0) {
        ex.fail('client_bad_request');
        return;
      }
      if (ex.otherCoding) {
        ex.fail('unsupported_request');
        return;
      }
    }
    const maxBody = state.listener.limits.maxBodyBytes;
    if (maxBody > 0 && ex.contentLength > maxBody) {
      ex.fail('body_too_large');
      return;
    }
    const route = c.router.match(ex.method, ex.path, ex.host, req.headers);
    if (route === undefined) {
      ex.fail('no_route');
      return;
    }
    ex.route = route;
    const pool = route.pool;
    if (pool === undefined || pool.availableCount() === 0) {
      ex.unavailable(pool);
      return;
    }
    const limits = c.limits?.limitsFor(route.index);
    if (limits !== undefined) {
      // Before the backend pick, so a refused request reaches no backend; proceeds as below.
      c.limits!.admit(ex, limits, route.index, pool, expectContinue);
      return;
    }
    if (expectContinue) ex.res.writeContinue();
    // The exchange picks the backend (after reading a small body) and takes its slot.
    ex.start(pool);
  }

  // --- connection-level failures ---

  private onClientError(err: Error & { code?: string }, socket: Duplex): void {
    const code = err.code ?? '';
    // Reading the rest of a body already answered (body-drain.ts): the client closing or
    // garbling it costs nobody anything, and nothing more is owed to it.
    if (isDraining(socket)) {
      socket.destroy();
      return;
    }
    // The request being read is in flight (its body broke off or is malformed, or llhttp
    // refused it after emitting it): its exchange settles it, once, with the client's class.
    // Node's parser is done with this connection either way: close once the answer is out.
    const res = (socket as { _httpMessage?: ServerResponse | null })._httpMessage;
    const ex = res ? exchangeOf(res) : undefined;
    if (ex !== undefined && !ex.req.complete) {
      ex.onParseError(code, err);
      if (!socket.destroyed) (socket as Socket).destroySoon();
      return;
    }
    if (code === 'ECONNRESET' || code === 'EPIPE' || socket.destroyed) {
      // The client went away between requests: an idle keep-alive connection closing is not
      // a failure.
      socket.destroy();
      return;
    }
    const cls = clientErrorClass(code);
    // The client as far as we know it: after a PROXY header, the address it carried.
    const peer = (socket as PeerSocket)[kPeer]?.ip ?? plainIp((socket as Socket).remoteAddress);
    this.count(cls, { client: peer, error: errorText(err) });
    this.refuse(socket, statusForError(cls), cls);
  }

  private unsupported(socket: Duplex, text: string): void {
    this.count('unsupported_request', { error: text });
    // h2 CONNECT arrives as (request, response): answer on the stream.
    if (socket instanceof Http2ServerResponse) {
      socket.writeHead(statusForError('unsupported_request'), { 'content-type': 'text/plain' });
      socket.end(`${text}\n`);
      return;
    }
    this.refuse(socket, statusForError('unsupported_request'), text);
  }

  /** Answer on the raw socket (no ServerResponse exists) and close it. */
  private refuse(socket: Duplex, status: number, text: string): void {
    // Never write a raw answer ahead of a response in flight (a pipelined request's): cut.
    const msg = (socket as { _httpMessage?: ServerResponse | null })._httpMessage;
    if (socket.writable && !msg) {
      const body = `${status} ${http.STATUS_CODES[status]}: ${text}\n`;
      socket.end(
        `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: text/plain; charset=utf-8\r\n` +
          `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
      // Destroy once flushed, so a client that never closes its side cannot hold the socket.
      (socket as Socket).destroySoon();
    } else socket.destroy();
  }

  private count(cls: ErrorClass, fields: FailureFields, msg = 'http connection failed'): void {
    this.env.failures.report(cls, msg, {
      listener: listenerName(this.current.state),
      bind: this.key,
      ...fields,
    });
  }

  /**
   * PROXY protocol from trusted peers: the header must be read before Node's HTTP parser sees
   * the socket, so the server's own 'connection' handler is taken out and called once the
   * header is parsed. Untrusted peers (and listeners without accept) go straight through.
   */
  private interceptConnections(): void {
    const server = this.server;
    const httpOnConnection = server.listeners('connection') as Array<(socket: Socket) => void>;
    server.removeAllListeners('connection');
    const handOver = (socket: Socket) => {
      for (const fn of httpOnConnection) fn.call(server, socket);
    };
    server.on('connection', (socket: PeerSocket) => {
      countConnection(this.stats, socket);
      const l = this.current.state.listener;
      if (l.connectionRateLimit !== undefined || l.maxConnectionsPerIp > 0) socket.on('error', () => {}); // a lease wait may come first; a reset then is not ours
      const peer = plainIp(socket.remoteAddress);
      // The peer, judged once per connection: the TLS socket takes it over (secureConnection),
      // so its requests never look the address up again.
      const trusted = cidrsContain(l.trustedProxies, peer);
      if (!l.acceptProxyProtocol || !trusted) {
        socket[kPeer] = { ip: peer, trustList: l.trustedProxies, trusted };
        return this.admitConnection(socket, peer, handOver);
      }
      socket.on('error', () => {}); // until Node's handler owns the socket; a reset then is not ours
      const timeout =
        l.timeouts.clientHeaderMs > 0 ? l.timeouts.clientHeaderMs : DEFAULT_PROXY_HEADER_TIMEOUT_MS;
      readProxyHeader(socket, timeout, (r) => {
        if (!r.ok) {
          // A peer that connects and closes (a health probe) is not a protocol error.
          this.count(r.reason === 'closed' ? 'client_abort' : 'proxy_protocol_invalid', {
            client: peer,
            error: r.message,
          });
          socket.destroy();
          return;
        }
        // LOCAL/UNKNOWN: the proxy speaks for itself, so its own address is the client's.
        const ip = r.header ? plainIp(r.header.sourceAddress) : peer;
        socket[kPeer] = { ip, trustList: l.trustedProxies, trusted: cidrsContain(l.trustedProxies, ip) };
        this.admitConnection(socket, ip, (s) => {
          handOver(s);
          // TLS takes the TCP handle over and feeds itself the bytes left unshifted; reading the
          // JS side again would steal the handshake from it.
          if (this.secure === undefined) s.resume();
        });
      });
    });
  }

  /** The L4 limits for a new connection from `ip` (already plainIp'd), then `go` (Node's own connection handler). */
  private admitConnection(socket: Socket, ip: string, go: (socket: Socket) => void): void {
    this.connLimits.admit(this.current.state, ip, (refused, why, held) => {
      if (socket.destroyed) {
        if (held !== undefined) this.connLimits.release(held);
        return;
      }
      if (refused !== undefined) {
        this.count(refused, { client: ip, error: why }, 'connection refused by limit');
        socket.destroy();
        return;
      }
      if (held !== undefined) socket.once('close', () => this.connLimits.release(held));
      go(socket);
    });
  }

  /** Per-worker share of the listener's connection limit, and the head size limit. */
  private applyServerLimits(state: ListenerState): void {
    const l = state.listener;
    // Node reads maxHeaderSize per new connection, so a reload applies to new connections.
    (this.server as { maxHeaderSize?: number }).maxHeaderSize = l.limits.maxHeaderBytes;
    this.server.maxConnections =
      perWorkerLimit(l.connectionLimit, state.workerCount) || Number.MAX_SAFE_INTEGER;
  }
}

const kStats = Symbol('fiberlb.connectionStats');
type StatSocket = Socket & { [kStats]?: ListenerStats };

/** A client connection opened; its bytes are added when it closes (Node counts them anyway). */
function countConnection(stats: ListenerStats, socket: StatSocket): void {
  stats.connections++;
  // One shared listener ('close' fires once), not a closure and a once-wrapper per connection.
  socket[kStats] = stats;
  socket.on('close', onConnectionClose);
}

function onConnectionClose(this: StatSocket): void {
  const stats = this[kStats]!;
  stats.closed++;
  stats.bytesIn += this.bytesRead;
  stats.bytesOut += this.bytesWritten;
}
