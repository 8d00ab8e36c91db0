// Pieces the HTTP exchange uses for request bodies (only requests that have one):
// - BodyBuffer: a small body read whole into memory before an upstream connection is taken,
//   so a slow small upload holds none (limits.buffer_body).
// - RateWindow: bytes received over a sliding window, for limits.min_body_rate.
// - SplicedBody: the body undici reads when it streams: a chunked body that outgrew buffer_body
//   (the bytes already read, then the rest of the client's stream), or any streamed HTTP/1.x
//   body (no prefix). undici destroys the body it was given when the backend answers early;
//   it must never be the client's own stream, whose destruction stalls Node's parser on that
//   connection (body-drain.ts reads the rest instead).

import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';

/** First allocation once a body arrives in more than one chunk (grows by doubling). */
const MIN_CAPACITY = 1024;
const EMPTY = Buffer.alloc(0);

/**
 * The body so far, in at most `cap` bytes. Memory follows what arrived, never what the client
 * declared: a 1-chunk body is kept as the chunk itself; otherwise one buffer of at most
 * max(1 KiB, 2 × received) bytes, never more than `cap` — so a client that announces 64 KiB
 * and sends 10 bytes costs about 1 KiB, not 64.
 */
export class BodyBuffer {
  length = 0;
  private first: Buffer | null = null;
  private buf: Buffer | null = null;

  constructor(private readonly cap: number) {}

  /** Append; false (nothing copied) if the body would exceed `cap`. */
  add(chunk: Buffer): boolean {
    const need = this.length + chunk.length;
    if (need > this.cap) return false;
    if (this.buf === null) {
      if (this.first === null) {
        this.first = chunk;
        this.length = need;
        return true;
      }
      this.buf = Buffer.allocUnsafe(Math.min(this.cap, Math.max(MIN_CAPACITY, 2 * need)));
      this.first.copy(this.buf, 0);
      this.first = null;
    } else if (need > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.cap, Math.max(2 * this.buf.length, need)));
      this.buf.copy(grown, 0, 0, this.length);
      this.buf = grown;
    }
    chunk.copy(this.buf, this.length);
    this.length = need;
    return true;
  }

  /** The whole body read so far (a view; the buffer is not reused). */
  bytes(): Buffer {
    if (this.buf !== null) return this.buf.subarray(0, this.length);
    return this.first ?? EMPTY;
  }
}

/** Sampling period of the body rate window. */
export const RATE_TICK_MS = 1000;
/** Ticks per window: min_body_rate is judged over the last 10 s, never before 10 s passed. */
export const RATE_WINDOW_TICKS = 10;

/**
 * Bytes received over the last RATE_WINDOW_TICKS ticks. The first judgement comes one full
 * window after the start (or after a restart), which is the grace period: a slow start or a
 * pause shorter than the window is averaged out. restart() is for ticks where the proxy, not
 * the client, held the body back (waiting for an upstream, upstream backpressure).
 */
export class RateWindow {
  /** Cumulative byte counts at the last RATE_WINDOW_TICKS ticks, as a ring. */
  private readonly ring = new Float64Array(RATE_WINDOW_TICKS);
  private n = 0;

  constructor(startBytes: number) {
    this.ring[0] = startBytes;
  }

  restart(bytes: number): void {
    this.n = 0;
    this.ring[0] = bytes;
  }

  /** One tick with `bytes` received in total: the bytes of the last full window, or -1. */
  tick(bytes: number): number {
    this.n++;
    const i = this.n % RATE_WINDOW_TICKS;
    const windowBytes = this.n >= RATE_WINDOW_TICKS ? bytes - this.ring[i]! : -1;
    this.ring[i] = bytes;
    return windowBytes;
  }
}

/**
 * The buffered prefix (may be empty), then the rest of `req` as it arrives. The exchange feeds it (push())
 * from its own 'data' listener and pauses `req` when this stream is full; reading resumes it.
 * Destroying it (undici does on abort) leaves the client's stream to the exchange.
 */
export class SplicedBody extends Readable {
  constructor(
    private readonly req: IncomingMessage,
    prefix: Buffer,
  ) {
    super();
    if (prefix.length > 0) this.push(prefix);
  }

  /** A chunk of the rest; pauses the client's stream if we are ahead of the upstream. */
  feed(chunk: Buffer): void {
    if (this.destroyed) return;
    if (!this.push(chunk)) this.req.pause();
  }

  override _read(): void {
    if (this.req.isPaused()) this.req.resume();
  }

  /** undici is done with the body early (abort, early response): let the rest drain. */
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.req.complete && this.req.isPaused()) this.req.resume();
    cb(err);
  }
}
