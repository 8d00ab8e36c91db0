// Where `fiberlb capacity` sends load: resolve the URL's host once (the load goes to that
// address, so a DNS answer cannot change under the run), refuse anything but loopback unless
// told --allow-remote (a capacity ramp is a load test: pointing it at someone else's service by
// mistake is an incident), and check with one request that the target answers at all.

import { lookup } from 'node:dns/promises';
import net from 'node:net';
import type { RequestSpec } from './loadgen.ts';
import type { CapacityOptions } from './options.ts';

export class TargetError extends Error {}

export function isLoopback(address: string): boolean {
  if (net.isIPv4(address)) return address.startsWith('127.');
  const a = address.toLowerCase();
  if (a === '::1') return true;
  // IPv4-mapped, dotted (::ffff:127.0.0.1) or as the URL parser writes it (::ffff:7f00:1).
  const dotted = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (dotted) return dotted[1]!.startsWith('127.');
  const hex = /^::ffff:([0-9a-f]{1,4}):[0-9a-f]{1,4}$/.exec(a);
  return hex !== null && Number.parseInt(hex[1]!, 16) >> 8 === 127;
}

export async function resolveTarget(o: CapacityOptions): Promise<RequestSpec> {
  const host = o.url.hostname.replace(/^\[|\]$/g, '');
  let addresses: string[];
  if (net.isIP(host)) addresses = [host];
  else {
    try {
      addresses = (await lookup(host, { all: true })).map((r) => r.address);
    } catch (err) {
      throw new TargetError(`cannot resolve ${host}: ${(err as NodeJS.ErrnoException).code ?? err}`);
    }
  }
  const remote = addresses.filter((a) => !isLoopback(a));
  if (remote.length > 0 && !o.allowRemote)
    throw new TargetError(
      `${o.url.host} is not a loopback address (${remote[0]}): a capacity ramp is a load test; pass --allow-remote to aim it at another machine`,
    );
  const address = addresses[0]!;
  const port = Number(o.url.port || 80);
  const path = `${o.url.pathname}${o.url.search}`;
  const head = [`${o.method} ${path} HTTP/1.1`, `Host: ${o.url.host}`];
  for (const [k, v] of o.headers) head.push(`${k}: ${v}`);
  if (o.body !== undefined) head.push(`Content-Length: ${o.body.length}`);
  const wire = Buffer.concat([
    Buffer.from(`${head.join('\r\n')}\r\n\r\n`, 'latin1'),
    o.body ?? Buffer.alloc(0),
  ]);
  return { address, port, wire, head: o.method === 'HEAD' };
}

const ERRNO_TEXT: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
};

/** One request on a fresh connection: the status line, or a TargetError saying why not. */
export function probe(spec: RequestSpec, url: URL, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: spec.address, port: spec.port });
    let buf = '';
    let done = false;
    const finish = (err: Error | undefined, status?: number) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      if (err) reject(err);
      else resolve(status!);
    };
    const timer = setTimeout(
      () => finish(new TargetError(`cannot reach ${url.href}: no answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    s.on('connect', () => s.write(spec.wire));
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(buf);
      if (m) finish(undefined, Number(m[1]));
      else if (buf.length > 16 && !buf.startsWith('HTTP/'))
        finish(new TargetError(`${url.href} did not answer HTTP/1.1: ${JSON.stringify(buf.slice(0, 40))}`));
    });
    s.on('error', (err: NodeJS.ErrnoException) =>
      finish(
        new TargetError(
          `cannot reach ${url.href}: ${ERRNO_TEXT[err.code ?? ''] ?? err.message}${err.code ? ` (${err.code})` : ''}`,
        ),
      ),
    );
    s.on('close', () => finish(new TargetError(`cannot reach ${url.href}: closed without an answer`)));
  });
}
