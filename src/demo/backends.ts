// Small demo backends so a newcomer can see FiberLB work without a cluster: HTTP servers
// that say who they are, TCP echoes and UDP echoes, on the loopback addresses the config names.

import { createSocket } from 'node:dgram';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type Socket, type Server as TcpServer } from 'node:net';
import type { DemoBackendSpec } from './layout.ts';

export interface DemoBackends {
  close(): Promise<void>;
}

/** A demo backend could not bind: which one, where, and the OS's reason (EADDRINUSE, ...). */
export class DemoBindError extends Error {
  constructor(
    readonly spec: DemoBackendSpec,
    readonly code: string | undefined,
    reason: string,
  ) {
    super(reason);
  }
}

function httpBackend(name: string): HttpServer {
  return createHttpServer((req, res) => {
    if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    req.resume();
    req.on('end', () => {
      const body = `${JSON.stringify({
        backend: name,
        method: req.method,
        url: req.url,
        x_forwarded_for: req.headers['x-forwarded-for'],
        x_request_id: req.headers['x-request-id'],
      })}\n`;
      res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    });
  });
}

function tcpEcho(): { server: TcpServer; conns: Set<Socket> } {
  const conns = new Set<Socket>();
  const server = createTcpServer({ allowHalfOpen: true }, (sock) => {
    conns.add(sock);
    sock.on('close', () => conns.delete(sock));
    sock.on('error', () => sock.destroy());
    sock.pipe(sock);
  });
  return { server, conns };
}

/** A started backend; close() also cuts its open connections. */
type Running = () => Promise<void>;

function start(spec: DemoBackendSpec): Promise<Running> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => reject(new DemoBindError(spec, err.code, err.message));
    if (spec.kind === 'udp') {
      const socket = createSocket(spec.address.includes(':') ? 'udp6' : 'udp4');
      socket.on('message', (msg, rinfo) => socket.send(msg, rinfo.port, rinfo.address));
      socket.once('error', onError);
      socket.bind(spec.port, spec.address, () => {
        socket.off('error', onError);
        resolve(() => new Promise<void>((done) => socket.close(() => done())));
      });
      return;
    }
    let server: HttpServer | TcpServer;
    let cut: () => void;
    if (spec.kind === 'http') {
      const http = httpBackend(spec.name);
      server = http;
      cut = () => http.closeAllConnections();
    } else {
      const echo = tcpEcho();
      server = echo.server;
      cut = () => {
        for (const c of echo.conns) c.destroy();
      };
    }
    server.once('error', onError);
    server.listen(spec.port, spec.address, () => {
      server.off('error', onError);
      resolve(
        () =>
          new Promise<void>((done) => {
            server.close(() => done());
            cut();
          }),
      );
    });
  });
}

/**
 * Start every backend, in order. If one cannot bind, the ones already started are closed
 * and the DemoBindError is thrown, so nothing is left listening.
 */
export async function startDemoBackends(specs: readonly DemoBackendSpec[]): Promise<DemoBackends> {
  const running: Running[] = [];
  const close = async () => {
    await Promise.all(running.splice(0).map((close) => close()));
  };
  try {
    for (const s of specs) running.push(await start(s));
  } catch (err) {
    await close();
    throw err;
  }
  return { close };
}
