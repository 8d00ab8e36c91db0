// The backend answered before the client finished sending its request body (an early 401,
// 413 or `res.end('ok')`), over HTTP/1.x. Node's parser reaches the next request on that
// connection only once the rest of this body has been read, so something must read it:
// - up to limits.drain_body bytes, it is read and discarded here while keep-alive goes on
//   (as NGINX discards an unread body, ngx_http_discard_request_body), bounded in time by the
//   client's body timeouts and DRAIN_MAX_MS;
// - past that (known up front from Content-Length, or found out while draining a chunked
//   body), or when a time bound passes, the connection is closed once the response is out —
//   with a lingering close (RFC 9112 §9.6, NGINX lingering_close): our FIN first, then the
//   client's bytes are still read and dropped for up to LINGER_MS, so closing never resets a
//   connection with unread bytes and cuts the response still in flight.
// The leftover bytes are never forwarded, and never parsed as a request of their own: a
// request that follows on a lingering connection is dropped with it (isLingering).
// FiberLB's own answers to a request whose body is still coming (413 past max_body, 503 with
// no backend, 429) close the connection the same lingering way (lingerAfterAnswer).

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/** Longest a drain may take, whatever the client timeouts allow (NGINX lingering_time, 30 s). */
export const DRAIN_MAX_MS = 30_000;
/** After our FIN, how long the client's bytes are still read before the socket is destroyed
 * (NGINX lingering_timeout, 5 s). */
export const LINGER_MS = 5000;

export interface DrainLimits {
  /** Most bytes read and discarded (limits.drain_body); 0: never drain, close. */
  readonly maxBytes: number;
  /** Longest gap between two body chunks (timeouts.client_body); 0: none. */
  readonly gapMs: number;
  /** Time left of the body's whole deadline (timeouts.client_body_total); 0: none. */
  readonly deadlineMs: number;
}

/** Counters for /metrics (monotonic, per worker). */
const counters = {
  /** Drains that read the whole rest: the connection stayed open for the next request. */
  completed: 0,
  /** Body bytes read and discarded after early responses. */
  bytes: 0,
  /** Closed after the response: the rest was (or grew) larger than drain_body. */
  closedOverLimit: 0,
  /** Closed after the response: the client's body timeouts (or DRAIN_MAX_MS) passed. */
  closedTimeout: 0,
  /** The client went away while its body was being drained. */
  clientGone: 0,
  /** FiberLB answered itself (an error) before the body was read: closed, lingering. */
  closedAfterAnswer: 0,
};

export type BodyDrainStats = Readonly<typeof counters>;

/** A copy of the counters (plain numbers, for /metrics). */
export function bodyDrainStats(): BodyDrainStats {
  return { ...counters };
}

const kDrain = Symbol('fiberlb.drain');
type DrainSocket = Duplex & { [kDrain]?: Drain };

/** The connection is reading the rest of a body nobody will use (draining or lingering). */
export function isDraining(socket: Duplex | null): boolean {
  return socket !== null && (socket as DrainSocket)[kDrain] !== undefined;
}

/** The connection is being closed after an early response: a request on it is not served. */
export function isLingering(socket: Duplex | null): boolean {
  return socket !== null && (socket as DrainSocket)[kDrain]?.lingering === true;
}

/**
 * Take over the rest of `req`'s body after its response `res` was ended early. `left` is what
 * the client still owes by Content-Length, or -1 for a chunked body.
 */
export function drainBody(
  req: IncomingMessage,
  res: ServerResponse,
  left: number,
  limits: DrainLimits,
): void {
  const d = takeOver(req, res, limits.maxBytes);
  if (d === undefined) return;
  if (limits.maxBytes === 0 || left > limits.maxBytes) {
    d.close('over_limit');
    return;
  }
  if (limits.gapMs > 0) d.gapTimer = setTimeout(onDrainTimeout, limits.gapMs, d).unref();
  const total = limits.deadlineMs > 0 ? Math.min(limits.deadlineMs, DRAIN_MAX_MS) : DRAIN_MAX_MS;
  d.deadlineTimer = setTimeout(onDrainTimeout, total, d).unref();
}

/**
 * FiberLB answered `req` itself (`res`, with `Connection: close`) before its body was read:
 * once the answer is out, close lingering — read and drop what the client still sends until
 * it closes too (or LINGER_MS) — instead of closing with unread bytes, which resets the
 * connection and can destroy the answer before the client reads it.
 */
export function lingerAfterAnswer(req: IncomingMessage, res: ServerResponse): void {
  takeOver(req, res, 0)?.close('answered');
}

/** A Drain reading the rest of `req`'s body off its socket; undefined if the socket is gone or taken. */
function takeOver(req: IncomingMessage, res: ServerResponse, maxBytes: number): Drain | undefined {
  const socket = req.socket as DrainSocket | null;
  if (socket === null || socket.destroyed || socket[kDrain] !== undefined) return undefined;
  const d = new Drain(req, res, socket, maxBytes);
  socket[kDrain] = d;
  socket.once('close', d.onClose);
  req.on('data', d.onData);
  req.once('end', d.onEnd);
  // The client's stream may be paused (upstream backpressure): it must flow to be read.
  req.resume();
  return d;
}

function onDrainTimeout(d: Drain): void {
  d.close('timeout');
}

function onLingerTimeout(socket: Duplex): void {
  socket.destroy();
}

function destroySelf(this: Duplex): void {
  this.destroy();
}

class Drain {
  /** Our side is closing: bytes are still read, then the socket goes. */
  lingering = false;
  gapTimer: NodeJS.Timeout | undefined = undefined;
  deadlineTimer: NodeJS.Timeout | undefined = undefined;
  private lingerTimer: NodeJS.Timeout | undefined = undefined;
  private read = 0;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly socket: DrainSocket,
    private readonly maxBytes: number,
  ) {}

  readonly onData = (chunk: Buffer): void => {
    counters.bytes += chunk.length;
    if (this.lingering) return;
    this.read += chunk.length;
    this.gapTimer?.refresh();
    // Only a chunked body can get here past the limit (a Content-Length one was judged up front).
    if (this.read > this.maxBytes) this.close('over_limit');
  };

  /** The whole body is read: the connection is free for the next request (unless lingering). */
  readonly onEnd = (): void => {
    if (this.lingering) return;
    counters.completed++;
    this.stopTimers();
    this.detach();
  };

  readonly onClose = (): void => {
    if (!this.lingering && !this.req.complete) counters.clientGone++;
    this.stopTimers();
    if (this.lingerTimer !== undefined) clearTimeout(this.lingerTimer);
    this.detach();
  };

  /** Close the connection once the response is out (lingering close). */
  close(why: 'over_limit' | 'timeout' | 'answered'): void {
    if (this.lingering) return;
    this.lingering = true;
    if (why === 'over_limit') counters.closedOverLimit++;
    else if (why === 'timeout') counters.closedTimeout++;
    else counters.closedAfterAnswer++;
    this.stopTimers();
    // A response with `Connection: close` makes Node call socket.destroySoon() when it is out
    // (a FIN, then destroy: a reset if bytes are unread): linger instead.
    (this.socket as Duplex & { destroySoon?: () => void }).destroySoon = this.linger;
    const res = this.res;
    if (res.writableFinished) this.linger();
    // A response that never finishes (the client left) closes the socket anyway: onClose.
    else res.once('finish', this.linger);
  }

  private readonly linger = (): void => {
    const socket = this.socket;
    if (socket.destroyed || this.lingerTimer !== undefined) return;
    // FIN after the response; the client's FIN (or LINGER_MS) ends it. Node's parser keeps
    // reading meanwhile, and this body's bytes are dropped in onData.
    socket.end();
    socket.once('end', destroySelf);
    this.lingerTimer = setTimeout(onLingerTimeout, LINGER_MS, socket).unref();
  };

  private stopTimers(): void {
    if (this.gapTimer !== undefined) clearTimeout(this.gapTimer);
    if (this.deadlineTimer !== undefined) clearTimeout(this.deadlineTimer);
    this.gapTimer = undefined;
    this.deadlineTimer = undefined;
  }

  private detach(): void {
    this.req.off('data', this.onData);
    this.req.off('end', this.onEnd);
    this.socket.off('close', this.onClose);
    if (this.socket[kDrain] === this) this.socket[kDrain] = undefined;
  }
}
