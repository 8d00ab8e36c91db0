// A minimal RFC 6455 WebSocket client and echo server for the tests (Node 20 has no global
// WebSocket client, and this keeps the project free of another dependency): the opening
// handshake with Sec-WebSocket-Accept checked, masked client frames, unmasked server frames,
// 7/16/64-bit lengths, ping/pong and close. Unfragmented messages only; no extensions. The
// server can speak wss (node:https) for TLS pools.

import { createHash, randomBytes } from 'node:crypto';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import { HOST } from './net.ts';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
export const OP_TEXT = 1;
export const OP_BINARY = 2;
export const OP_CLOSE = 8;
export const OP_PING = 9;
export const OP_PONG = 10;

export function acceptKey(key: string): string {
  return createHash('sha1')
    .update(key + GUID)
    .digest('base64');
}

export function encodeFrame(opcode: number, payload: Buffer, mask: boolean): Buffer {
  const n = payload.length;
  const lenBytes = n < 126 ? 0 : n < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + lenBytes + (mask ? 4 : 0));
  head[0] = 0x80 | opcode;
  head[1] = (mask ? 0x80 : 0) | (n < 126 ? n : n < 65536 ? 126 : 127);
  if (lenBytes === 2) head.writeUInt16BE(n, 2);
  else if (lenBytes === 8) head.writeBigUInt64BE(BigInt(n), 2);
  if (!mask) return Buffer.concat([head, payload]);
  const key = randomBytes(4);
  key.copy(head, 2 + lenBytes);
  const body = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) body[i] = payload[i]! ^ key[i & 3]!;
  return Buffer.concat([head, body]);
}

export interface Frame {
  readonly opcode: number;
  readonly payload: Buffer;
}

/** Incremental frame parser: push bytes, get whole frames. */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: Frame[] = [];
    for (;;) {
      const b = this.buf;
      if (b.length < 2) break;
      const masked = (b[1]! & 0x80) !== 0;
      let len = b[1]! & 0x7f;
      let p = 2;
      if (len === 126) {
        if (b.length < 4) break;
        len = b.readUInt16BE(2);
        p = 4;
      } else if (len === 127) {
        if (b.length < 10) break;
        len = Number(b.readBigUInt64BE(2));
        p = 10;
      }
      const keyAt = p;
      if (masked) p += 4;
      if (b.length < p + len) break;
      let payload = b.subarray(p, p + len);
      if (masked) {
        const m = Buffer.allocUnsafe(len);
        for (let i = 0; i < len; i++) m[i] = payload[i]! ^ b[keyAt + (i & 3)]!;
        payload = m;
      }
      out.push({ opcode: b[0]! & 0x0f, payload: Buffer.from(payload) });
      this.buf = b.subarray(p + len);
    }
    return out;
  }
}

export interface WsClient {
  readonly socket: Socket;
  /** The 101 response head as received. */
  readonly response: string;
  send(data: string | Buffer): boolean;
  /** The next data message (text or binary), rejecting if the socket closes first. */
  next(): Promise<Buffer>;
  close(): void;
  /** Resolves when the TCP socket has closed. */
  readonly closed: Promise<void>;
}

export interface WsConnectOptions {
  readonly path?: string;
  readonly host?: string;
  readonly headers?: Record<string, string>;
  /** wss: TLS options (ca, servername, ALPNProtocols); the handshake starts once TLS is up. */
  readonly tls?: ConnectionOptions;
}

/**
 * Open a WebSocket to 127.0.0.1:port. Rejects with the HTTP status line when the answer is
 * not 101 (e.g. "HTTP/1.1 404 Not Found"), or when Sec-WebSocket-Accept is wrong.
 */
export function wsConnect(port: number, o: WsConnectOptions = {}): Promise<WsClient> {
  return new Promise((resolve, reject) => {
    const socket: Socket = o.tls ? tlsConnect({ host: HOST, port, ...o.tls }) : connect({ host: HOST, port });
    const key = randomBytes(16).toString('base64');
    const extra = Object.entries(o.headers ?? {})
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
    socket.on('error', (e) => reject(e));
    socket.once(o.tls ? 'secureConnect' : 'connect', () => {
      socket.write(
        `GET ${o.path ?? '/'} HTTP/1.1\r\nHost: ${o.host ?? `${HOST}:${port}`}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
      );
    });
    let head = Buffer.alloc(0);
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    // Closed before a complete response head (e.g. dropped at a connection limit); a no-op later.
    socket.once('close', () => reject(new Error('connection closed before the handshake completed')));
    const onHead = (d: Buffer) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onHead);
      const response = head.subarray(0, end).toString('latin1');
      const rest = head.subarray(end + 4);
      const status = response.split('\r\n')[0]!;
      if (!/^HTTP\/1\.1 101 /.test(status)) {
        socket.destroy();
        reject(Object.assign(new Error(status), { response: `${response}\r\n\r\n${rest.toString()}` }));
        return;
      }
      const accept = /\r\nsec-websocket-accept: *([^\r]+)/i.exec(response)?.[1];
      if (accept !== acceptKey(key)) {
        socket.destroy();
        reject(new Error(`bad Sec-WebSocket-Accept '${accept}'`));
        return;
      }
      const reader = new FrameReader();
      const messages: Buffer[] = [];
      const waiters: Array<{ ok: (b: Buffer) => void; fail: (e: Error) => void }> = [];
      let ended = false;
      const deliver = (frames: Frame[]) => {
        for (const f of frames) {
          if (f.opcode === OP_PING) socket.write(encodeFrame(OP_PONG, f.payload, true));
          else if (f.opcode === OP_TEXT || f.opcode === OP_BINARY) {
            const w = waiters.shift();
            if (w) w.ok(f.payload);
            else messages.push(f.payload);
          }
        }
      };
      socket.on('data', (chunk: Buffer) => deliver(reader.push(chunk)));
      socket.once('close', () => {
        ended = true;
        for (const w of waiters.splice(0)) w.fail(new Error('socket closed'));
      });
      if (rest.length > 0) deliver(reader.push(rest));
      resolve({
        socket,
        response,
        send: (data) =>
          socket.write(encodeFrame(typeof data === 'string' ? OP_TEXT : OP_BINARY, Buffer.from(data), true)),
        next: () => {
          const m = messages.shift();
          if (m) return Promise.resolve(m);
          if (ended) return Promise.reject(new Error('socket closed'));
          return new Promise((ok, fail) => waiters.push({ ok, fail }));
        },
        close: () => {
          socket.write(encodeFrame(OP_CLOSE, Buffer.from([0x03, 0xe8]), true));
        },
        closed,
      });
    };
    socket.on('data', onHead);
  });
}

export interface WsServer {
  readonly port: number;
  readonly server: http.Server;
  /** Upgrade requests received (their headers as Node parsed them). */
  readonly requests: IncomingMessage[];
  /** Upgraded sockets still open. */
  readonly sockets: Set<Socket>;
  close(): Promise<void>;
}

export interface WsServerOptions {
  /** Called with each upgraded socket before echoing starts (e.g. to pause it). */
  readonly onSocket?: (s: Socket, req: IncomingMessage) => void;
  /** Answer the upgrade with this status instead of 101. */
  readonly refuse?: number;
  /** Never close on the peer's FIN (a backend that leaves half-open sockets behind). */
  readonly ignoreEnd?: boolean;
  /** Serve wss: a node:https server with these (e.g. a certificate, requestCert + ca). */
  readonly tls?: https.ServerOptions;
}

/** An echo WebSocket server: every data message comes back with the same opcode. */
export async function wsEchoServer(o: WsServerOptions = {}): Promise<WsServer> {
  const requests: IncomingMessage[] = [];
  const sockets = new Set<Socket>();
  const onRequest: http.RequestListener = (_req, res) => res.writeHead(426).end('upgrade required\n');
  const server = o.tls ? https.createServer(o.tls, onRequest) : http.createServer(onRequest);
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    requests.push(req);
    socket.on('error', () => {});
    if (o.refuse !== undefined) {
      const body = 'refused\n';
      socket.end(
        `HTTP/1.1 ${o.refuse} ${http.STATUS_CODES[o.refuse]}\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
      );
      return;
    }
    const key = req.headers['sec-websocket-key'];
    if (typeof key !== 'string' || (req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
      socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`,
    );
    const reader = new FrameReader();
    const onFrames = (frames: Frame[]) => {
      for (const f of frames) {
        if (f.opcode === OP_CLOSE) {
          socket.end(encodeFrame(OP_CLOSE, f.payload, false));
          return;
        }
        if (f.opcode === OP_PING) socket.write(encodeFrame(OP_PONG, f.payload, false));
        else if (f.opcode === OP_TEXT || f.opcode === OP_BINARY) {
          // Backpressure: stop reading while the echo cannot be written.
          if (!socket.write(encodeFrame(f.opcode, f.payload, false))) {
            socket.pause();
            socket.once('drain', () => socket.resume());
          }
        }
      }
    };
    o.onSocket?.(socket, req);
    socket.on('data', (d: Buffer) => onFrames(reader.push(d)));
    if (!o.ignoreEnd) socket.on('end', () => socket.end());
    if (head.length > 0) onFrames(reader.push(head));
  });
  server.on('clientError', (_e, s) => s.destroy());
  // Every accepted socket, so close() also cuts upgraded ones a test took over.
  const all = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    all.add(s);
    s.once('close', () => all.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, HOST, r));
  return {
    port: (server.address() as AddressInfo).port,
    server,
    requests,
    sockets,
    close: () =>
      new Promise<void>((r) => {
        for (const s of all) s.destroy();
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** Open server-side connections (upgraded ones included: Node counts every accepted socket). */
export function connections(server: http.Server): Promise<number> {
  return new Promise((resolve, reject) => server.getConnections((e, n) => (e ? reject(e) : resolve(n))));
}
