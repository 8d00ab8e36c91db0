// Real TLS and HTTP/2 backends on 127.0.0.1 for the upstream-TLS tests: node:https, node:http2
// (secure, with or without an HTTP/1.1 fallback, or h2c), each counting the connections it
// accepted and remembering what the last request saw (SNI, HTTP version, client certificate).
// Closed, open sessions included, when the test ends.

import http2 from 'node:http2';
import https from 'node:https';
import type net from 'node:net';
import type { TestContext } from 'node:test';
import type tls from 'node:tls';
import type { Pem } from './upstream-certs.ts';

export interface Seen {
  httpVersion: string;
  /** SNI the client sent (false / undefined: none). */
  servername: string | false | null | undefined;
  /** CN of the client certificate presented, if any. */
  clientCn: string | undefined;
  headers: Record<string, string | string[] | undefined>;
}

export interface TlsBackend {
  readonly port: number;
  /** Connections accepted (TLS handshakes, or TCP connections for h2c). */
  connections(): number;
  /** Most requests seen in flight at once on one connection (h2 session or h1 socket). */
  maxInFlightPerConnection(): number;
  /** Most requests seen in flight at once, all connections together. */
  maxInFlight(): number;
  /** One entry per request, in arrival order. */
  readonly seen: Seen[];
}

/** Request handler shared by the h1 and h2 servers (the compat API is the same). */
export type Handler = (
  req: http2.Http2ServerRequest | import('node:http').IncomingMessage,
  res: http2.Http2ServerResponse | import('node:http').ServerResponse,
) => void;

export interface TlsBackendOptions {
  /** 'h1' node:https; 'h2' node:http2 secure (h2 only); 'h2+h1' with HTTP/1.1 fallback; 'h2c' plain. */
  readonly kind: 'h1' | 'h2' | 'h2+h1' | 'h2c';
  readonly cert?: Pem;
  /** Ask for a client certificate, verified against this CA. */
  readonly clientCa?: string;
  /** Highest TLS version the backend accepts. */
  readonly maxVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** HTTP/2 settings the backend advertises (e.g. maxConcurrentStreams). */
  readonly settings?: http2.Settings;
}

export async function startTlsBackend(
  t: TestContext,
  o: TlsBackendOptions,
  handler: Handler,
): Promise<TlsBackend> {
  const seen: Seen[] = [];
  let conns = 0;
  let maxInFlight = 0;
  let all = 0;
  let maxAll = 0;
  const inFlight = new WeakMap<object, number>();
  const onRequest: Handler = (req, res) => {
    const conn: object = 'stream' in req ? req.stream.session! : req.socket;
    const n = (inFlight.get(conn) ?? 0) + 1;
    inFlight.set(conn, n);
    maxInFlight = Math.max(maxInFlight, n);
    maxAll = Math.max(maxAll, ++all);
    res.once('close', () => {
      inFlight.set(conn, inFlight.get(conn)! - 1);
      all--;
    });
    const sock = req.socket as tls.TLSSocket;
    const peer = typeof sock.getPeerCertificate === 'function' ? sock.getPeerCertificate() : undefined;
    seen.push({
      httpVersion: req.httpVersion,
      servername: sock.servername,
      clientCn: peer?.subject?.CN as string | undefined,
      headers: { ...req.headers },
    });
    handler(req, res);
  };
  const tlsOpts = {
    cert: o.cert?.cert,
    key: o.cert?.key,
    ...(o.clientCa ? { requestCert: true, rejectUnauthorized: true, ca: o.clientCa } : {}),
    ...(o.maxVersion ? { maxVersion: o.maxVersion } : {}),
  };
  let server: net.Server;
  if (o.kind === 'h1') server = https.createServer(tlsOpts, onRequest as never);
  else if (o.kind === 'h2c') server = http2.createServer({ settings: o.settings }, onRequest as never);
  else
    server = http2.createSecureServer(
      { ...tlsOpts, allowHTTP1: o.kind === 'h2+h1', settings: o.settings },
      onRequest as never,
    );
  server.on(o.kind === 'h2c' ? 'connection' : 'secureConnection', () => conns++);
  // h2 sessions are not closed by server.close(): track and destroy them.
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  t.after(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        for (const s of sockets) s.destroy();
      }),
  );
  return {
    port,
    connections: () => conns,
    maxInFlightPerConnection: () => maxInFlight,
    maxInFlight: () => maxAll,
    seen,
  };
}

/** A gRPC-style unary answer: one length-prefixed message, then grpc-status / grpc-message trailers. */
export function grpcReply(status: number, message: string, payload: Buffer): Handler {
  return (req, res) => {
    req.resume();
    req.on('end', () => {
      const frame = Buffer.alloc(5 + payload.length);
      frame.writeUInt32BE(payload.length, 1);
      payload.copy(frame, 5);
      res.writeHead(200, { 'content-type': 'application/grpc' });
      res.addTrailers({ 'grpc-status': String(status), 'grpc-message': message });
      res.end(frame);
    });
  };
}
