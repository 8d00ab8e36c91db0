// tls_passthrough: a TCP proxy that routes on the ClientHello's server_name without ever
// terminating TLS. The client socket starts paused; its first bytes are read until the
// ClientHello is complete (listeners/sni.ts), put back with unshift(), and then the whole
// stream — peeked bytes included — is spliced to the backend unchanged by tcp.ts.
//
// Routing: the listener's routes with `match.sni` (exact or "*.example.com"), first match
// wins, then default_pool; no match and no default_pool → no_route. A ClientHello without
// server_name (a client connecting by IP) goes to default_pool. Reading the ClientHello is
// bounded by timeouts.client_header and MAX_PEEK_BYTES.

import type { Socket } from 'node:net';
import type { ErrorClass } from '../../shared/errors.ts';
import type { ListenerFactory, ListenerState } from '../context.ts';
import { ClientHelloReader } from '../listeners/sni.ts';
import { Router, type RouteTarget } from '../routing/router.ts';
import { createStreamListener, type PoolChooser } from './tcp.ts';

/** Used when the listener has no client header timeout configured. */
const DEFAULT_HELLO_TIMEOUT_MS = 10_000;

const counters = {
  /** Complete ClientHellos read. */
  hellos: 0,
  /** Connections routed by a route's `sni` match. */
  routedBySni: 0,
  /** Connections sent to default_pool (no SNI, or no route matched it). */
  routedDefault: 0,
  /** ClientHellos without server_name. */
  noSni: 0,
};

/** Per-worker counters of this module, for /metrics (failures are counted per class apart). */
export function stats(): Readonly<typeof counters> {
  return { ...counters };
}

export type HelloRead =
  | { readonly ok: true; readonly sni: string | undefined; readonly alpn: readonly string[] }
  | { readonly ok: false; readonly cls: ErrorClass; readonly message: string };

/**
 * Read the ClientHello from a paused socket, then pause it again with every byte read put
 * back. `cb` is called exactly once.
 */
export function readClientHello(socket: Socket, timeoutMs: number, cb: (r: HelloRead) => void): void {
  const reader = new ClientHelloReader();
  let got = 0;
  let done = false;
  const finish = (r: HelloRead): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    socket.removeListener('data', onData);
    socket.removeListener('end', onEnd);
    socket.removeListener('close', onEnd);
    socket.removeListener('error', onEnd);
    // Pause before unshifting: unshift on a flowing stream may emit 'data' synchronously.
    socket.pause();
    if (r.ok) {
      // A view, not a copy: the reader is done with its buffer.
      const b = reader.bytes();
      socket.unshift(Buffer.from(b.buffer, b.byteOffset, b.length));
    }
    cb(r);
  };
  const onData = (chunk: Buffer): void => {
    got += chunk.length;
    const r = reader.push(chunk);
    if (r.kind === 'hello') finish({ ok: true, sni: r.sni, alpn: r.alpn });
    else if (r.kind === 'error') finish({ ok: false, cls: 'tls_client_hello', message: r.reason });
  };
  const onEnd = (): void => {
    // A peer that connects and leaves (a TCP health probe) is not a protocol error.
    if (got === 0) finish({ ok: false, cls: 'client_abort', message: 'closed before a ClientHello' });
    else
      finish({
        ok: false,
        cls: 'tls_client_hello',
        message: `truncated ClientHello: closed after ${got} bytes`,
      });
  };
  const timer = setTimeout(
    () =>
      finish({
        ok: false,
        cls: 'tls_client_hello',
        message: `no complete ClientHello within ${timeoutMs}ms (${got} bytes received)`,
      }),
    timeoutMs,
  );
  socket.on('data', onData);
  socket.once('end', onEnd);
  socket.once('close', onEnd);
  socket.once('error', onEnd);
  socket.resume();
}

const NO_HEADERS = {};

/** The listener's sni routes as a Router over host names (same exact/wildcard semantics). */
interface SniRouter {
  readonly router: Router;
  /** What the router answers when no route matches (default_pool or undefined). */
  readonly fallback: RouteTarget | undefined;
}
// Compiled once per ListenerState (a reload brings a new state object), keyed weakly so old
// states go with their last connection.
const routers = new WeakMap<ListenerState, SniRouter>();
function routerOf(state: ListenerState): SniRouter {
  let r = routers.get(state);
  if (r === undefined) {
    const routes = state.listener.routes.map((route) => ({
      pool: route.pool,
      match: { host: route.match.sni, sni: undefined, pathPrefix: undefined, headers: [], methods: [] },
      rateLimits: [],
    }));
    const router = new Router({ routes, defaultPool: state.listener.defaultPool }, state.pools);
    // Every route has a host, so an empty one matches none of them.
    r = { router, fallback: router.match('', '', undefined, NO_HEADERS) };
    routers.set(state, r);
  }
  return r;
}

const chooseBySni: PoolChooser = (client, state, done, fail) => {
  const t = state.listener.timeouts.clientHeaderMs;
  readClientHello(client, t > 0 ? t : DEFAULT_HELLO_TIMEOUT_MS, (r) => {
    if (!r.ok) {
      fail(r.cls, r.message);
      return;
    }
    counters.hellos++;
    if (r.sni === undefined) counters.noSni++;
    const { router, fallback } = routerOf(state);
    const target = router.match('', '', r.sni, NO_HEADERS);
    if (target === undefined) {
      fail('no_route', `no route for SNI '${r.sni ?? ''}' and no default_pool`);
      return;
    }
    if (target === fallback) counters.routedDefault++;
    else counters.routedBySni++;
    done(target.poolName);
  });
};

export const createPassthroughListener: ListenerFactory = (state, env) =>
  createStreamListener(state, env, chooseBySni);
