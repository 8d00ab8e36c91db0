// How one pool's requests reach a backend: plain HTTP/1.1 over TCP (the default, built exactly
// as before), or TLS and/or HTTP/2 from the pool's `tls` / `http2`. For those we build undici's
// connector ourselves, because:
// - undici derives each request's TLS servername from the client's Host header and reconnects
//   whenever it changes; the SNI and the name verified must come from the pool instead (the
//   configured servername, else the backend address when it is a name, else none), and one
//   backend connection must serve every Host;
// - a Pool does not hand `useH2c` (HTTP/2 prior knowledge over plain TCP) to its connector.
// One SecureContext per pool tls config, so the CA bundle is parsed once, not on every handshake.

import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import { buildConnector, type Pool } from 'undici';
import type { PoolConfig, UpstreamTlsConfig } from '../../config/model.ts';

/** transportKey() of a plain HTTP/1.1 pool. */
export const PLAIN_TRANSPORT = '';

const keys = new WeakMap<PoolConfig, string>();

/**
 * Identity of what shapes a pool's backend connections (tls, http2), short enough to be part of
 * a map key: '' for plain pools without any lookup (the hot path), else a digest computed once
 * per pool config. Pools with equal settings share connections to the same backend.
 */
export function transportKey(cfg: PoolConfig): string {
  if (cfg.tls === undefined && !cfg.http2) return PLAIN_TRANSPORT;
  let k = keys.get(cfg);
  if (k === undefined) {
    const spec = JSON.stringify([cfg.http2, cfg.tls ?? null]);
    k = createHash('sha256').update(spec).digest('base64url').slice(0, 16);
    keys.set(cfg, k);
  }
  return k;
}

export interface UpstreamTransport {
  /** The undici Pool origin ("http://10.0.0.1:80", "https://[::1]:443"). */
  readonly origin: string;
  /** Extra Pool options (a connector); empty for plain pools. */
  readonly options: Pool.Options;
  /**
   * The `servername` every request to this upstream carries: undici reconnects when it
   * changes, so it is one constant per upstream (SNI itself is decided by the connector).
   */
  readonly servername: string;
  /** SNI sent and name verified; undefined = none sent (IP backend), verified against the IP. */
  readonly sni: string | undefined;
}

export function upstreamTransport(
  address: string,
  port: number,
  cfg: PoolConfig | undefined,
  connectMs: number,
): UpstreamTransport {
  const host = address.includes(':') ? `[${address}]` : address;
  const tls = cfg?.tls;
  const http2 = cfg?.http2 === true;
  const scheme = tls === undefined ? 'http' : 'https';
  const origin = `${scheme}://${host}:${port}`;
  if (tls === undefined && !http2) return { origin, options: {}, servername: address, sni: undefined };
  if (tls === undefined) {
    // h2c with prior knowledge: the backend must speak HTTP/2 on this port (no Upgrade dance).
    const base = buildConnector({ timeout: connectMs, useH2c: true } as buildConnector.BuildOptions);
    const connect: buildConnector.connector = (opts, cb) => base(opts, counted(cb));
    return { origin, options: { connect }, servername: address, sni: undefined };
  }
  const { sni, secureContext, rejectUnauthorized } = tlsClientOptions(address, tls);
  const base = buildConnector({
    timeout: connectMs,
    allowH2: http2,
    secureContext,
    rejectUnauthorized,
  });
  const connect: buildConnector.connector = (opts, cb) => base({ ...opts, servername: sni }, counted(cb));
  return { origin, options: { connect }, servername: sni ?? address, sni };
}

/** What a TLS connection to one backend of a `tls` pool is made with (tlsClientOptions). */
export interface TlsClientOptions {
  /** SNI sent and name verified; undefined = none sent (IP backend), verified against the IP. */
  readonly sni: string | undefined;
  readonly secureContext: SecureContext;
  readonly rejectUnauthorized: boolean;
}

const contexts = new WeakMap<UpstreamTlsConfig, SecureContext>();

/**
 * The TLS material for a backend at `address` of a pool with `tls`: the same for its HTTP
 * requests (undici) and its WebSocket tunnels (node:https), so both verify, name and present
 * a client certificate alike. The SecureContext is built once per pool tls config.
 */
export function tlsClientOptions(address: string, tls: UpstreamTlsConfig): TlsClientOptions {
  // RFC 6066: SNI carries DNS names only, and without a trailing dot.
  const sni = tls.servername ?? (isIP(address) === 0 ? address.replace(/\.$/, '') : undefined);
  let secureContext = contexts.get(tls);
  if (secureContext === undefined) {
    secureContext = createSecureContext({
      ca: tls.ca,
      cert: tls.cert,
      key: tls.key,
      minVersion: tls.minVersion,
    });
    contexts.set(tls, secureContext);
  }
  return { sni, secureContext, rejectUnauthorized: tls.verify };
}

// Per-worker counters of connections opened by tls / http2 pools (plain pools are not counted:
// their connect path is undici's own). Read by stats(); failures are counted by error class.
let tlsConnections = 0;
let tlsResumed = 0;
let h2Connections = 0;

/** Connections opened so far by this worker's tls / http2 upstreams. */
export function stats(): { tlsConnections: number; tlsResumed: number; h2Connections: number } {
  return { tlsConnections, tlsResumed, h2Connections };
}

/** Count a connection once it is up (per connection, never per request). */
function counted(cb: buildConnector.Callback): buildConnector.Callback {
  return (err, socket) => {
    if (socket) {
      const s = socket as TLSSocket;
      if (s.encrypted === true) {
        tlsConnections++;
        if (s.isSessionReused()) tlsResumed++;
        s.prependListener('error', onTlsError);
      }
      if (s.alpnProtocol === 'h2') h2Connections++;
    }
    (cb as (e: Error | null, s: unknown) => void)(err, socket);
  };
}

/**
 * A TLS alert after the handshake (TLS 1.3: the backend refuses a missing or untrusted client
 * certificate only after the client has finished, so it arrives as the answer to the request)
 * is emitted without destroying the socket, and the EOF that follows makes undici's HTTP/1.1
 * client replace it with "other side closed" (upstream_reset). Destroying the socket with the
 * alert keeps it as the request's error: upstream_tls. The backend application never saw the
 * request (its TLS layer refused the connection first).
 */
function onTlsError(this: TLSSocket, err: Error & { code?: string }): void {
  if (!this.destroyed && typeof err.code === 'string' && err.code.startsWith('ERR_SSL_')) this.destroy(err);
}
