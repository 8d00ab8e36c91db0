// Small real-socket backends and clients on 127.0.0.1 for the tcp/udp listener tests. Each
// returns a close() that tears down everything it opened.

import { spawn } from 'node:child_process';
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { HOST } from './net.ts';

export interface TcpBackend {
  readonly port: number;
  /** Sockets accepted so far (including closed ones). */
  readonly accepted: Socket[];
  close(): Promise<void>;
}

export async function tcpBackend(onConnection: (s: Socket) => void): Promise<TcpBackend> {
  const accepted: Socket[] = [];
  const server = createServer({ allowHalfOpen: true }, (s) => {
    accepted.push(s);
    s.on('error', () => {});
    onConnection(s);
  });
  await new Promise<void>((r) => server.listen(0, HOST, r));
  return {
    port: (server.address() as AddressInfo).port,
    accepted,
    close: () =>
      new Promise<void>((r) => {
        for (const s of accepted) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Echoes every byte, prefixed per chunk with `tag` when given; ends when the client ends. */
export function tcpEcho(tag = ''): Promise<TcpBackend> {
  return tcpBackend((s) => {
    s.on('data', (d) => s.write(tag ? Buffer.concat([Buffer.from(tag), d]) : d));
    s.on('end', () => s.end());
  });
}

export async function tcpConnect(port: number): Promise<Socket> {
  const s = connect({ host: HOST, port, allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  return s;
}

/** Everything the socket delivers until 'end' or 'close'; `closedBy` tells which (or the error). */
export function readToEnd(s: Socket): Promise<{ data: Buffer; closedBy: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const done = (closedBy: string) => resolve({ data: Buffer.concat(chunks), closedBy });
    s.on('data', (d: Buffer) => chunks.push(d));
    s.once('end', () => done('end'));
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code ?? 'error'));
    s.once('close', () => done('close'));
    s.resume();
  });
}

/** Resolves with the first `n` bytes received (rejects if the socket closes first). */
export function readBytes(s: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const onData = (d: Buffer) => {
      chunks.push(d);
      got += d.length;
      if (got >= n) {
        s.off('data', onData);
        s.off('close', onClose);
        s.pause();
        const all = Buffer.concat(chunks);
        if (all.length > n) s.unshift(all.subarray(n));
        resolve(all.subarray(0, n));
      }
    };
    const onClose = () => reject(new Error(`closed after ${got} of ${n} bytes`));
    s.on('data', onData);
    s.once('close', onClose);
    s.resume();
  });
}

/**
 * A TCP port on 127.0.0.1 whose accept queue is full and never drained: a child process
 * listens with backlog 1 and blocks its event loop, and we complete enough handshakes to fill
 * the queue. Further SYNs are dropped by the kernel, so connects to it hang (a connect timeout).
 */
export async function blackholeTcpPort(): Promise<{ port: number; close(): Promise<void> }> {
  const script = `
    const s = require('node:net').createServer();
    s.listen({ host: '127.0.0.1', port: 0, backlog: 1 }, () => {
      process.stdout.write(String(s.address().port) + '\\n', () => {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000);
        process.exit(0);
      });
    });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(Number(out.trim()));
    });
    child.once('exit', () => reject(new Error('blackhole child exited early')));
  });
  const fillers: Socket[] = [];
  // Linux queues backlog+1 completed handshakes; open until one no longer completes promptly.
  for (let i = 0; i < 8; i++) {
    const s = connect({ host: HOST, port });
    s.on('error', () => {});
    fillers.push(s);
    const ok = await new Promise<boolean>((r) => {
      const t = setTimeout(() => r(false), 200);
      s.once('connect', () => {
        clearTimeout(t);
        r(true);
      });
    });
    if (!ok) break;
  }
  return {
    port,
    close: async () => {
      for (const s of fillers) s.destroy();
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGKILL');
      await exited;
    },
  };
}

export interface UdpBackend {
  readonly port: number;
  readonly socket: UdpSocket;
  /** Source ports of datagrams received, in order. */
  readonly sources: number[];
  close(): Promise<void>;
}

/** Replies to each datagram with `reply(msg)` (default: echo). */
export async function udpBackend(
  reply: (msg: Buffer, from: RemoteInfo) => Buffer = (m) => m,
): Promise<UdpBackend> {
  const socket = createSocket('udp4');
  const sources: number[] = [];
  socket.on('message', (msg, rinfo) => {
    sources.push(rinfo.port);
    socket.send(reply(msg, rinfo), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => socket.bind(0, HOST, r));
  return {
    port: socket.address().port,
    socket,
    sources,
    close: () => new Promise<void>((r) => socket.close(r)),
  };
}

export interface UdpClient {
  readonly socket: UdpSocket;
  /** Datagrams received, with the port they came from. */
  readonly received: Array<{ msg: string; port: number }>;
  send(msg: string, port: number): void;
  close(): Promise<void>;
}

export async function udpClient(): Promise<UdpClient> {
  const socket = createSocket('udp4');
  const received: UdpClient['received'] = [];
  socket.on('message', (msg, rinfo) => received.push({ msg: msg.toString(), port: rinfo.port }));
  await new Promise<void>((r) => socket.bind(0, HOST, r));
  return {
    socket,
    received,
    send: (msg, port) => socket.send(msg, port, HOST),
    close: () => new Promise<void>((r) => socket.close(r)),
  };
}

/**
 * Connect and send `payload` through a proxy in front of an echo: true when a byte comes back
 * (admitted), false when the connection closes first or nothing arrives within `timeoutMs`.
 * The socket is pushed to `held` and left open, so admitted connections keep counting.
 */
export function admittedByEcho(
  port: number,
  held: Socket[],
  payload = 'x',
  timeoutMs = 3_000,
): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, HOST);
    held.push(s);
    const timer = setTimeout(() => resolve(false), timeoutMs);
    s.on('data', () => {
      clearTimeout(timer);
      resolve(true);
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve(false);
    });
    s.on('error', () => {});
    s.write(payload);
  });
}
