// HTTP/2 multiplexing to the backends of an `http2` pool: many requests as streams of few
// connections, instead of a connection per request. undici 7.30 can multiplex (a Client's
// `pipelining` is its stream limit on an h2 connection), but four of its behaviours shape
// how we use it, and this file owns the answers:
// - its Pool counts a Client that is still connecting as busy, so a cold burst opens a
//   connection per request; MuxPool (below) picks Clients itself and lets a connecting one
//   take requests up to its stream limit.
// - `pipelining` is per Client, fixed before the connection exists, and also applies when
//   ALPN falls back to HTTP/1.1 — real h1 pipelining (head-of-line blocking; a POST behind a
//   GET). So each Client's limit is set from the protocol its connection actually got, in
//   the connector callback before undici writes anything: 1 for HTTP/1.1, the stream limit
//   for h2. New Clients start from what the backend spoke last (optimistic h2 at first: the
//   pool asked for it). A cold burst to a backend that turns out to speak h1 waits once, in
//   order, on that first connection; every later one has a connection per request again.
// - undici records the peer's SETTINGS_MAX_CONCURRENT_STREAMS but never enforces it (Node's
//   http2 then queues the extra streams inside the session). We lower the Client's limit to
//   the peer's value when its SETTINGS arrive, so another connection opens instead.
// - A request with a stream body waits until its connection has nothing else in flight, and
//   every request queued behind it on that Client waits too (client-h2.js busy()). Streaming
//   uploads (large or unbounded bodies, gRPC client streams) therefore never go to the
//   multiplexed Pool: http-pools.ts sends them to a second Pool with a connection each.
//   A non-idempotent request waits the same way unless it says it is idempotent, so the
//   exchange does (undici never retries for us, and that flag means nothing else to it).
// A paused stream (slow client) holds only its own flow-control window (Node returns the
// connection window as data arrives), so it cannot stall the other streams of its connection.

import type { TLSSocket } from 'node:tls';
import { type buildConnector, Client, type Dispatcher, type Pool } from 'undici';

/**
 * Streams per h2 connection unless the peer allows fewer: undici's own default for
 * maxConcurrentStreams, below NGINX's 128 and Go's 250 advertised limits.
 */
export const H2_STREAMS = 100;

/** What one upstream's connections have told us about the backend. */
interface Learned {
  /** The last connection negotiated h2 (optimistic until one connected). */
  h2: boolean;
  /** Streams per connection: H2_STREAMS, or less if the peer's SETTINGS said so. */
  streams: number;
}

const counters = {
  /** h2 connections whose peer allowed fewer than H2_STREAMS concurrent streams. */
  peerLimited: 0,
  /** Connections of http2 pools that came up as HTTP/1.1 (ALPN fallback). */
  h1Fallbacks: 0,
};

/** Per-worker counters of the multiplexed pools (read by /metrics). */
export function stats(): Readonly<typeof counters> {
  return { ...counters };
}

/** One connection of a MuxPool: an undici Client and what we know of its state. */
interface Conn {
  readonly client: Client;
  /** Its last dispatch() said it is busy; cleared by its 'drain'. */
  full: boolean;
  connected: boolean;
  /** Requests handed to it since it started (re)connecting. */
  early: number;
}

/**
 * The multiplexing dispatcher of an http2 upstream, for requests without a stream body.
 * Like undici's Pool it uses the first Client that is not busy, opening another when all
 * are; unlike it, a Client that is still connecting takes requests up to its stream limit
 * (undici counts a connecting Client as busy, so a Pool opens a connection per request of
 * a cold burst). `connections` stays the upper bound (a peer that
 * allows one stream gets a connection per request, as h1 does); the Gate in front admits
 * no more requests than that many connections can carry, so none waits here for long.
 */
export class MuxPool {
  private readonly conns: Conn[] = [];
  private readonly learned: Learned = { h2: true, streams: H2_STREAMS };
  private readonly base: buildConnector.connector;
  private readonly options: Client.Options;
  private readonly connections: number;
  closed = false;

  /** `options` are the upstream's Pool options, its connector (transport.ts) among them. */
  constructor(
    private readonly origin: string,
    options: Pool.Options,
  ) {
    const { connections, connect, ...rest } = options;
    this.base = connect as buildConnector.connector;
    this.connections = connections ?? 256;
    this.options = rest as Client.Options;
  }

  dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const limit = this.limit();
    const conns = this.conns;
    let c: Conn | undefined;
    for (let i = 0; i < conns.length; i++) {
      const x = conns[i]!;
      if (!x.full || (!x.connected && x.early < limit)) {
        c = x;
        break;
      }
    }
    // All busy and none more allowed: the first one queues it (the Gate makes this rare).
    c ??= conns.length < this.connections ? this.open() : conns[0]!;
    if (!c.connected) c.early++;
    if (!c.client.dispatch(opts, handler)) c.full = true;
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.conns.map((c) => c.client.close().catch(noop)));
  }

  /** Streams a new or connecting connection may take: what the backend told us last. */
  private limit(): number {
    return this.learned.h2 ? this.learned.streams : 1;
  }

  private open(): Conn {
    const learned = this.learned;
    let conn: Conn | undefined;
    const connect: buildConnector.connector = (co, cb) =>
      this.base(co, (err, socket) => {
        // On failure undici passes no socket (undefined, not the null its types say).
        const up = err == null && socket != null && conn !== undefined;
        if (up) onConnected(conn!.client, socket as TLSSocket, learned);
        (cb as (e: Error | null, s: unknown) => void)(err, socket);
        if (up && learned.h2) watchSettings(conn!.client, socket!, learned);
      });
    const client = new Client(this.origin, {
      ...this.options,
      pipelining: this.limit(),
      maxConcurrentStreams: H2_STREAMS,
      connect,
    });
    const c: Conn = { client, full: false, connected: false, early: 0 };
    conn = c;
    client.on('connect', () => {
      c.connected = true;
      c.early = 0;
    });
    client.on('disconnect', () => {
      c.connected = false;
      c.early = 0;
    });
    client.on('drain', () => {
      c.full = false;
    });
    // As undici's Pool does: a Client whose connection failed is not used again.
    client.on('connectionError', () => {
      const i = this.conns.indexOf(c);
      if (i !== -1) this.conns.splice(i, 1);
    });
    this.conns.push(c);
    return c;
  }

  /** Connections (Clients) open or connecting, for tests. */
  size(): number {
    return this.conns.length;
  }
}

function noop(): void {}

/** Before undici uses the socket: the Client's limit follows the protocol it got. */
function onConnected(client: Client, socket: TLSSocket, learned: Learned): void {
  const h2 = socket.alpnProtocol === 'h2';
  if (!h2) counters.h1Fallbacks++;
  learned.h2 = h2;
  const limit = h2 ? learned.streams : 1;
  // The setter resumes the client; while it is still connecting that writes nothing.
  if (client.pipelining !== limit) client.pipelining = limit;
}

/**
 * undici keeps the h2 session on the socket under its own symbol; there is no public way to
 * it. If a later undici renames it, we fall back to H2_STREAMS and Node's queueing.
 */
function sessionOf(socket: object): NodeJS.EventEmitter | undefined {
  for (const sym of Object.getOwnPropertySymbols(socket)) {
    if (sym.description !== 'http2Session') continue;
    const s = (socket as Record<symbol, unknown>)[sym];
    if (s !== null && typeof s === 'object' && typeof (s as NodeJS.EventEmitter).on === 'function')
      return s as NodeJS.EventEmitter;
  }
  return undefined;
}

function watchSettings(client: Client, socket: object, learned: Learned): void {
  const session = sessionOf(socket);
  if (session === undefined) return;
  let first = true;
  session.on('remoteSettings', (settings: { maxConcurrentStreams?: number }) => {
    const peer = settings.maxConcurrentStreams;
    const limit = typeof peer === 'number' && peer >= 1 ? Math.min(peer, H2_STREAMS) : H2_STREAMS;
    if (first && limit < H2_STREAMS) counters.peerLimited++;
    first = false;
    learned.streams = limit;
    if (client.pipelining !== limit && !client.destroyed) client.pipelining = limit;
  });
}
