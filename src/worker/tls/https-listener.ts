// The https listener: the http listener (http/listener.ts: router, limits, header rewriting,
// exchange, error classes) on Node's HTTP/2 secure server with HTTP/1.1 fallback, so ALPN picks
// h2 or http/1.1 on one port. What TLS adds lives here: certificates by SNI (secure-context.ts),
// shared session tickets, client certificates, handshake failures as error classes, and the
// h2 sessions a drain must close.

import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { SecureContext, TLSSocket } from 'node:tls';
import type { TlsConfig } from '../../config/model.ts';
import { plainIp } from '../../shared/cidr.ts';
import type { ErrorClass } from '../../shared/errors.ts';
import { errorText, type FailureFields } from '../../shared/failure.ts';
import type { ListenerFactory, ListenerState, WorkerEnv } from '../context.ts';
import { listenerKey, listenerName } from '../context.ts';
import { HttpListener, type SecureSide } from '../http/listener.ts';
import { CertificateStore, contextOptions, sessionIdContextFor } from './secure-context.ts';

export const createHttpsListener: ListenerFactory = (state, env) => {
  const side = new TlsSide(state, env);
  return new HttpListener(state, env, (o) => side.createServer(o), 'https', side);
};

/** Verified client certificate of a connection, as request headers [name, value, name, value]. */
const kClientCert = Symbol('fiberlb.clientCert');
type CertSocket = TLSSocket & { [kClientCert]?: string[] };

const counters = { handshakes: 0, resumed: 0, handshakeFailures: 0, clientCertsVerified: 0, h2Sessions: 0 };

/** Counters for /metrics (this worker, all https listeners). */
export function tlsStats(): Readonly<typeof counters> {
  return { ...counters };
}

class TlsSide implements SecureSide {
  private server: http2.Http2SecureServer | undefined;
  private store!: CertificateStore;
  private tlsJson = '';
  private state: ListenerState;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly sid: string;
  private h2 = true;
  /** Header names of the verified client certificate: always removed from requests. */
  private stripNames: readonly [string, string];
  /** The server's own slot for SNICallback (a Node-internal symbol), when found. */
  private sniKey: symbol | undefined;

  /** Certificate by the ClientHello's server name (secure-context.ts). */
  private readonly sni = (name: string, cb: (err: Error | null, ctx?: SecureContext) => void): void => {
    const ctx = this.store.select(name);
    if (ctx !== undefined) cb(null, ctx);
    else cb(new Error(`no certificate for server name '${name}' (unknown_sni: refuse)`));
  };

  constructor(
    state: ListenerState,
    private readonly env: WorkerEnv,
  ) {
    this.state = state;
    this.sid = sessionIdContextFor(listenerName(state));
    const h = tlsOf(state).clientCertHeaders;
    this.stripNames = [h.subject, h.fingerprint];
  }

  createServer(o: http.ServerOptions): http.Server {
    const l = this.state.listener;
    const cfg = tlsOf(this.state);
    const options = {
      ...contextOptions(cfg, cfg.certificates[0]!, this.env.tickets.lifetimeS),
      allowHTTP1: true,
      sessionIdContext: this.sid,
      SNICallback: this.sni,
      // The ClientHello must arrive in time too (Node's default is 120 s).
      handshakeTimeout: l.timeouts.clientHeaderMs > 0 ? l.timeouts.clientHeaderMs : 120_000,
      noDelay: true,
      settings: { maxHeaderListSize: l.limits.maxHeaderBytes, enablePush: false },
      // Node's own cap (128 pairs) would refuse what max_headers allows; ours is checked per request.
      maxHeaderListPairs: 1100,
    };
    // `http2: false`: a plain https server (ALPN http/1.1 only). Read when the listener opens.
    const server = (
      cfg.http2 ? http2.createSecureServer(options) : https.createServer({ ...o, ...options })
    ) as http2.Http2SecureServer;
    this.h2 = cfg.http2;
    this.server = server;
    // Where the server keeps the callback (Node reads it per connection): found by identity.
    this.sniKey = Object.getOwnPropertySymbols(server).find(
      (k) => (server as unknown as Record<symbol, unknown>)[k] === this.sni,
    );
    // The HTTP/1.1 side reads these as server properties (http2 never copies http options).
    Object.assign(server, {
      maxHeaderSize: o.maxHeaderSize,
      headersTimeout: o.headersTimeout,
      requestTimeout: o.requestTimeout,
      keepAliveTimeout: o.keepAliveTimeout,
      connectionsCheckingInterval: o.connectionsCheckingInterval,
      requireHostHeader: false,
    });
    this.apply(this.state, true);
    // http2's own handler re-emits handshake errors as 'clientError' (an HTTP 400 over a socket
    // that never spoke TLS): handshake failures are ours to classify.
    if (this.h2) server.removeAllListeners('tlsClientError');
    server.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) =>
      this.onHandshakeError(err, socket),
    );
    server.on('secureConnection', (socket: CertSocket) => this.onSecure(socket));
    // Cache the peer address on the TCP socket now: a failed handshake may log it after the
    // socket is gone.
    server.on('connection', (raw: Socket) => void raw.remoteAddress);
    server.on('session', (session: http2.ServerHttp2Session) => this.onSession(session));
    server.on('sessionError', (err: Error) =>
      this.count('client_bad_request', { error: errorText(err) }, 'h2 session failed'),
    );
    return server as unknown as http.Server;
  }

  update(state: ListenerState): void {
    this.state = state;
    this.apply(state, false);
  }

  /** New certificates, CA, versions or ciphers: new handshakes use them, open connections keep theirs. */
  private apply(state: ListenerState, first: boolean): void {
    const cfg = tlsOf(state);
    const json = JSON.stringify(cfg);
    if (!first && json === this.tlsJson) return;
    const server = this.server!;
    this.store = new CertificateStore(cfg, this.sid, this.env.tickets);
    server.setSecureContext({
      ...contextOptions(cfg, cfg.certificates[0]!, this.env.tickets.lifetimeS),
      sessionIdContext: this.sid,
    });
    // The server's own context (no SNI, resumed sessions): Node keeps it as _sharedCreds.
    const shared = (server as unknown as { _sharedCreds?: SecureContext })._sharedCreds;
    if (cfg.sessionTickets && shared !== undefined) this.env.tickets.install(shared);
    const s = server as unknown as { requestCert: boolean; rejectUnauthorized: boolean };
    s.requestCert = cfg.clientAuth !== 'off';
    s.rejectUnauthorized = cfg.clientAuth === 'required';
    this.stripNames = [cfg.clientCertHeaders.subject, cfg.clientCertHeaders.fingerprint];
    // One certificate that serves every name: the server's own context is the answer, and the
    // SNI callback (a handshake paused for a JS call and a context switch) is left out of new
    // handshakes; several certificates or `unknown_sni: refuse` put it back.
    if (this.sniKey !== undefined)
      (server as unknown as Record<symbol, unknown>)[this.sniKey] =
        cfg.certificates.length > 1 || cfg.unknownSni === 'refuse' ? this.sni : undefined;
    this.tlsJson = json;
  }

  // --- SecureSide ---

  requestHeaders(headers: string[], socket: Socket): void {
    stripHeaders(headers, this.stripNames);
    const cert = (socket as CertSocket)[kClientCert];
    if (cert !== undefined) headers.push(cert[0]!, cert[1]!, cert[2]!, cert[3]!);
  }

  drain(): void {
    for (const s of this.sessions) if (!s.closed) s.close();
  }

  closeAll(): void {
    for (const s of this.sessions) s.destroy();
    // The HTTP/1.1 connections: http.Server's own list (http2 tracks them with allowHTTP1).
    try {
      http.Server.prototype.closeAllConnections.call(this.server as unknown as http.Server);
    } catch {
      // not listening (no connection list): nothing to close
    }
  }

  // --- events ---

  private onSecure(socket: CertSocket): void {
    counters.handshakes++;
    if (socket.isSessionReused()) counters.resumed++;
    const cfg = tlsOf(this.state);
    if (cfg.clientAuth === 'off' || !socket.authorized) return;
    const x = socket.getPeerX509Certificate();
    if (x === undefined) return;
    counters.clientCertsVerified++;
    const h = cfg.clientCertHeaders;
    // One RDN per comma, in certificate order; fingerprint as lower-case hex.
    socket[kClientCert] = [
      h.subject,
      x.subject.split('\n').join(','),
      h.fingerprint,
      x.fingerprint256.replace(/:/g, '').toLowerCase(),
    ];
  }

  private onSession(session: http2.ServerHttp2Session): void {
    counters.h2Sessions++;
    this.sessions.add(session);
    session.once('close', () => this.sessions.delete(session));
    // Keep-alive idle for h2: GOAWAY after client_idle without frames; open streams finish.
    const idle = this.state.listener.timeouts.clientIdleMs;
    if (idle > 0) session.setTimeout(idle, () => session.close());
  }

  private onHandshakeError(err: Error & { code?: string }, socket: TLSSocket): void {
    const code = err.code ?? '';
    // A client certificate that failed verification (required): Node completes the handshake,
    // then cuts the socket, which surfaces here as a hang-up.
    const rejected = (socket as { authorizationError?: unknown }).authorizationError;
    const cls: ErrorClass =
      rejected !== undefined && rejected !== null
        ? 'tls_handshake'
        : code === 'ERR_TLS_HANDSHAKE_TIMEOUT'
          ? 'client_timeout'
          : code === 'ECONNRESET' || /disconnected before secure TLS connection/.test(err.message)
            ? 'client_abort'
            : 'tls_handshake';
    if (cls === 'tls_handshake') counters.handshakeFailures++;
    const raw = (socket as unknown as { _parent?: Socket })._parent;
    this.count(cls, {
      client: plainIp(socket.remoteAddress ?? raw?.remoteAddress),
      error: rejected ? `client certificate rejected: ${String(rejected)}` : errorText(err),
    });
    socket.destroy();
  }

  private count(cls: ErrorClass, fields: FailureFields, msg = 'tls connection failed'): void {
    this.env.failures.report(cls, msg, {
      listener: listenerName(this.state),
      bind: listenerKey(this.state.lb, this.state.listener),
      ...fields,
    });
  }
}

function tlsOf(state: ListenerState): TlsConfig {
  const t = state.listener.tls;
  if (t === undefined) throw new Error('https listener without tls');
  return t;
}

/** Remove headers named `names` (lower-case) from a flat [name, value, ...] list, in place. */
export function stripHeaders(h: string[], names: readonly [string, string]): void {
  const a = names[0];
  const b = names[1];
  let w = 0;
  for (let i = 0; i < h.length; i += 2) {
    const n = h[i]!;
    if ((n.length === a.length || n.length === b.length) && (n.toLowerCase() === a || n.toLowerCase() === b))
      continue;
    h[w++] = n;
    h[w++] = h[i + 1]!;
  }
  h.length = w;
}
