// Small demo backends so a newcomer can see FiberLB work without a cluster: HTTP servers
// that say who they are, a TCP echo and a UDP echo, all on loopback.

import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';

export interface DemoBackends {
  close(): Promise<void>;
}

export interface DemoSpec {
  readonly http: ReadonlyArray<{ name: string; port: number }>;
  readonly tcpEcho: number;
  readonly udpEcho: number;
}

export const DEFAULT_DEMO: DemoSpec = {
  http: [
    { name: 'web-1', port: 9001 },
    { name: 'web-2', port: 9002 },
    { name: 'iam', port: 9003 },
  ],
  tcpEcho: 9004,
  udpEcho: 9005,
};

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

function listen(server: HttpServer | TcpServer, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
}

export async function startDemoBackends(spec: DemoSpec = DEFAULT_DEMO): Promise<DemoBackends> {
  const servers: Array<HttpServer | TcpServer> = [];
  for (const b of spec.http) {
    const s = httpBackend(b.name);
    await listen(s, b.port);
    servers.push(s);
  }
  const echo = createTcpServer({ allowHalfOpen: true }, (sock) => {
    sock.on('error', () => sock.destroy());
    sock.pipe(sock);
  });
  await listen(echo, spec.tcpEcho);
  servers.push(echo);
  const udp: UdpSocket = createSocket('udp4');
  udp.on('message', (msg, rinfo) => udp.send(msg, rinfo.port, rinfo.address));
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(spec.udpEcho, '127.0.0.1', () => resolve());
  });
  return {
    async close() {
      udp.close();
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              if ('closeAllConnections' in s) s.closeAllConnections();
            }),
        ),
      );
    },
  };
}
