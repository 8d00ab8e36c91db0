// Clients for the HTTP listener tests: a plain request helper (fresh connection each time),
// a raw-socket exchange for malformed or hand-framed requests, and curl.

import { execFile } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

/** One request on a new connection (no agent), body collected as text. */
export function request(
  port: number,
  opts: { method?: string; path?: string; headers?: http.OutgoingHttpHeaders; body?: string | Buffer } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: opts.method ?? 'GET',
        path: opts.path ?? '/',
        headers: opts.headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            rawHeaders: res.rawHeaders,
            body: Buffer.concat(chunks).toString(),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/**
 * Write `payload` on a raw connection and collect what comes back until the server closes
 * or `waitMs` passes. `closed` tells whether the server ended the connection.
 */
export function raw(
  port: number,
  payload: string | Buffer | Array<string | Buffer>,
  waitMs = 3000,
): Promise<{ text: string; closed: boolean; error: string | undefined }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let error: string | undefined;
    const done = (closed: boolean) => {
      clearTimeout(t);
      s.destroy();
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed, error });
    };
    const t = setTimeout(() => done(false), waitMs);
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code;
    });
    s.on('close', () => done(true));
    for (const p of Array.isArray(payload) ? payload : [payload]) s.write(p);
  });
}

export function curl(
  args: string[],
  input?: Buffer,
): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve) => {
    const child = execFile(
      'curl',
      ['-sS', '--max-time', '30', ...args],
      { maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        resolve({ stdout, stderr, code: err ? Number((err as { code?: number }).code ?? 1) : 0 });
      },
    );
    if (input !== undefined) child.stdin!.end(input);
  });
}

/** Split a raw HTTP/1.1 response text into status and lower-case header map (last wins). */
export function parseHead(text: string): { status: number; headers: Record<string, string> } {
  const head = text.split('\r\n\r\n')[0] ?? '';
  const [line, ...rest] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const h of rest) {
    const i = h.indexOf(':');
    if (i > 0) headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  return { status: Number(line?.split(' ')[1] ?? 0), headers };
}
