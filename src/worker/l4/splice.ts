// Splice two connected TCP sockets both ways without per-chunk allocation or stream pipes.
//
// `a.pipe(b)` costs, per chunk: a fresh 64 KiB read buffer from C++ (malloc + ArrayBuffer +
// V8 external-memory accounting, so GCs), Readable.push/'data'/pipe bookkeeping, then
// Writable.write. Here each direction reads into a buffer of its own, reused for the life of
// the connection (Node's `onread` user-buffer mode), and writes that buffer straight to the
// other socket.
//
// Safety (data corruption is the worst bug a proxy can have): a write that the kernel did not
// take at once leaves the socket holding a view of the read buffer. Then reading that
// direction stops (`return false` from the read callback) until the write is flushed, so the
// buffer is never read into while a write still refers to it. That is also the backpressure:
// a slow reader on one side stops reads on the other, and at most one buffer per direction is
// in flight.
//
// Server-accepted sockets cannot be given the `onread` option (only `new net.Socket` takes it),
// so the same internal slots that option fills are set on the existing socket. They are found
// by feature detection once; if this Node lacks them, every connection falls back to pipe().

import { Socket, type SocketConstructorOpts } from 'node:net';
import type { IdleWatch } from './idle-watch.ts';

/** Read buffer of a direction that has only seen small reads (interactive traffic). */
export const SMALL_BUFFER = 16 * 1024;
/**
 * Read buffer once a read filled the small one (bulk traffic): fewer, larger reads and writes
 * (Node's own reads are 64 KiB). Allocated per direction on first need, kept until close.
 * iperf3 through FiberLB, proxy CPU per GB: 64 KiB ≈ 730 ms, 256 KiB ≈ 460, 1 MiB ≈ 455.
 */
export const LARGE_BUFFER = 256 * 1024;

const counters = {
  /** Directions spliced through reused buffers. */
  spliced: 0,
  /** Directions that fell back to pipe() (Node without user-buffer reads, or EOF already read). */
  piped: 0,
  /** Writes the kernel did not take at once, each pausing its direction until flushed. */
  blocked: 0,
  /** Directions that switched to the large buffer. */
  grown: 0,
};

/** Per-worker counters of this module, for /metrics. */
export function stats(): Readonly<typeof counters> {
  return { ...counters };
}

/** The net.Socket slots behind the `onread` option (lib/net.js: kBuffer, kBufferCb, kBufferGen). */
interface UserBufferSlots {
  readonly buffer: symbol;
  readonly callback: symbol;
  readonly generator: symbol;
}

type Slotted = Record<symbol, unknown>;
interface HandleWithUserBuffer {
  useUserBuffer(buf: Uint8Array): void;
}

function findSlots(): UserBufferSlots | null {
  // A socket built with `onread` shows which own symbols hold it; no fd is opened.
  const probeBuf = Buffer.alloc(1);
  const probeCb = (): void => {};
  const probeGen = (): Buffer => probeBuf;
  // (@types/node lists `onread` for connect() only; the Socket constructor is what takes it.)
  const opts = (buffer: Buffer | (() => Buffer)) =>
    ({ onread: { buffer, callback: probeCb } }) as SocketConstructorOpts;
  const withBuf = new Socket(opts(probeBuf)) as unknown as Slotted;
  const withGen = new Socket(opts(probeGen)) as unknown as Slotted;
  let buffer: symbol | undefined;
  let callback: symbol | undefined;
  let generator: symbol | undefined;
  for (const s of Object.getOwnPropertySymbols(withBuf)) {
    if (withBuf[s] === probeBuf) buffer = s;
    else if (withBuf[s] === probeCb) callback = s;
  }
  for (const s of Object.getOwnPropertySymbols(withGen)) if (withGen[s] === probeGen) generator = s;
  (withBuf as unknown as Socket).destroy();
  (withGen as unknown as Socket).destroy();
  if (buffer === undefined || callback === undefined || generator === undefined) return null;
  return { buffer, callback, generator };
}

const slots = findSlots();

/** Whether this Node supports the fast path (else splice() pipes). */
export const userBufferReads = slots !== null;

const EMPTY = Buffer.alloc(0);

/** One direction: reads from `src` into a reused buffer, writes to `dst`. */
class Flow {
  private buf: Buffer;
  private large: Buffer | null = null;
  private readonly small: Buffer;
  /** A write to dst still refers to `buf`: reads are stopped until it is flushed. */
  private blocked = false;

  constructor(
    private readonly src: Socket,
    private readonly dst: Socket,
    private readonly watch: IdleWatch | undefined,
  ) {
    this.small = Buffer.allocUnsafe(SMALL_BUFFER);
    this.buf = this.small;
  }

  /** The read callback (Node calls it as a method of the socket; the arrow keeps the flow). */
  readonly onRead = (n: number, buf: Buffer): boolean => {
    const dst = this.dst;
    if (dst.destroyed) return false;
    if (this.watch !== undefined) this.watch.active = true;
    dst.write(n === buf.length ? buf : buf.subarray(0, n));
    if (dst.writableLength === 0) {
      // Flushed synchronously: the buffer is free again. Pick the size for the next read.
      if (n === buf.length && buf === this.small) {
        if (this.large === null) {
          this.large = Buffer.allocUnsafe(LARGE_BUFFER);
          counters.grown++;
        }
        this.buf = this.large;
      } else if (n <= SMALL_BUFFER && buf !== this.small) this.buf = this.small;
      return true;
    }
    // The kernel kept part of it: dst now holds a view of `buf`. Stop reading into it until
    // everything queued is written; the empty write's callback runs after all before it.
    this.blocked = true;
    counters.blocked++;
    dst.write(EMPTY, this.onFlushed);
    return false;
  };

  /** Called by Node after each read callback: the buffer for the next read. */
  readonly nextBuffer = (): Buffer => this.buf;

  private readonly onFlushed = (err?: Error | null): void => {
    // On error the sockets are being destroyed (the owner's 'error' handlers); stay stopped.
    if (err || !this.blocked || this.src.destroyed) return;
    this.blocked = false;
    if (this.watch !== undefined) this.watch.active = true;
    this.src.resume();
  };

  start(): void {
    const src = this.src;
    const slotted = src as unknown as Slotted;
    const s = slots as UserBufferSlots;
    slotted[s.buffer] = this.buf;
    slotted[s.callback] = this.onRead;
    slotted[s.generator] = this.nextBuffer;
    // Pushes a user-buffer stream listener above the default one (what the onread option does
    // when the handle is created). Between event-loop reads, so no read is in progress.
    (src as unknown as { _handle: HandleWithUserBuffer })._handle.useUserBuffer(this.buf);
    // FIN one way ends the other socket's writable side after the queued data (half-close).
    src.once('end', () => this.dst.end());
    src.resume();
  }
}

/**
 * Move bytes both ways between two connected sockets until each side ends, with backpressure
 * and half-close (a FIN read on one is written as a FIN on the other). Both sockets must be
 * paused, connected, and have allowHalfOpen; errors and close stay the caller's. `watch` is
 * told of every byte moved, and stopped once both sockets closed.
 * Bytes already buffered in a socket's readable side (put back by a header reader) go first.
 */
export function splice(client: Socket, upstream: Socket, watch?: IdleWatch): void {
  direction(client, upstream, watch);
  direction(upstream, client, watch);
  if (watch !== undefined) {
    let open = 2;
    const closed = (): void => {
      if (--open === 0) watch.stop();
    };
    client.once('close', closed);
    upstream.once('close', closed);
  }
}

function direction(src: Socket, dst: Socket, watch: IdleWatch | undefined): void {
  const st = (src as unknown as { _readableState?: { ended?: boolean } })._readableState;
  const handle = (src as unknown as { _handle?: Partial<HandleWithUserBuffer> | null })._handle;
  // EOF already read into the stream (a FIN right behind a PROXY header or ClientHello): the
  // stream must deliver it itself, and the handle must not be read again. Rare; pipe it.
  if (slots === null || st?.ended === true || typeof handle?.useUserBuffer !== 'function') {
    counters.piped++;
    if (watch !== undefined)
      src.on('data', () => {
        watch.active = true;
      });
    src.pipe(dst);
    return;
  }
  // Bytes a header reader put back (unshift) or read ahead: forward them first, in order.
  if (src.readableLength > 0) {
    const pending = src.read() as Buffer | null;
    if (pending !== null) dst.write(pending);
  }
  counters.spliced++;
  new Flow(src, dst, watch).start();
}
