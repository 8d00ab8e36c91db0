// An append-only line writer that never blocks the event loop: lines are queued in memory and
// written by one asynchronous fs.write at a time (libuv's thread pool), batched: a write goes
// out `flushMs` (access_log.flush_interval, 100 ms) after the first line queued since the last
// one, or at once when a chunk is full, so one write carries many lines. An async fs.write
// costs ~60–150 µs of the proxy core (the thread-pool hand-off and the pool thread's wake-up
// on the same core), so one write per request would cost more than the request, and even one
// every 5 ms cost 3% of the worker's CPU under load (one every 100 ms: 0.3%). Each
// line is encoded into a reused 256 KiB chunk as it arrives, so no string outlives its request
// (a queue of strings kept ~5 ms survives young-generation GCs and costs more to collect than
// to encode). The queue is bounded (MAX_PENDING_BYTES): when the disk or the reader of stdout cannot keep up, new lines
// are dropped and counted instead of growing memory or stalling requests. reopen() (SIGUSR1,
// reload) closes and reopens a file after logrotate moved it.

import { close, open, write } from 'node:fs';
import { DEFAULT_FLUSH_INTERVAL_MS } from '../../config/access-log.ts';

/** Lines waiting to be written, at most (then they are dropped and counted). */
export const MAX_PENDING_BYTES = 4 * 1024 * 1024;
/** One write() carries at most one chunk of this size (a few hundred lines). */
const CHUNK_BYTES = 256 * 1024;
/** Chunks kept for reuse once written. */
const SPARE_CHUNKS = 2;
/** stdout as a non-blocking pipe may say EAGAIN: try again shortly. */
const EAGAIN_RETRY_MS = 5;

export class LogWriter {
  /** Lines dropped because the queue was full, and lines lost to write errors. */
  dropped = 0;
  written = 0;
  errors = 0;
  /** write() calls made: lines ÷ writes is the batching. */
  writes = 0;
  /** Encoded lines waiting, oldest first; the last chunk is the one being filled. */
  private chunks: Chunk[] = [];
  private pendingBytes = 0;
  private readonly spare: Buffer[] = [];
  private fd: number | undefined;
  private opening = false;
  private writing = false;
  private reopenWanted = false;
  private closed = false;
  private scheduled = false;
  private readonly flushSoon = (): void => {
    this.scheduled = false;
    this.flush();
  };

  /**
   * `target`: "stdout" or a file path (created if missing, appended to). `flushMs`: an idle
   * writer waits this long after a first line, so one write carries many lines.
   */
  constructor(
    readonly target: string,
    public flushMs = DEFAULT_FLUSH_INTERVAL_MS,
  ) {
    if (target === 'stdout') this.fd = 1;
    else this.openFile();
  }

  write(line: string): void {
    if (this.closed) return;
    if (this.pendingBytes + line.length + 1 > MAX_PENDING_BYTES) {
      this.dropped++;
      return;
    }
    // Room for the worst case (3 UTF-8 bytes per UTF-16 unit) and the newline.
    const room = line.length * 3 + 1;
    let c = this.chunks[this.chunks.length - 1];
    if (c === undefined || c.buf.length - c.used < room) {
      const buf =
        room <= CHUNK_BYTES
          ? (this.spare.pop() ?? Buffer.allocUnsafe(CHUNK_BYTES))
          : Buffer.allocUnsafe(room);
      c = { buf, used: 0, lines: 0 };
      this.chunks.push(c);
    }
    const n = c.buf.write(line, c.used, 'utf8');
    c.buf[c.used + n] = 0x0a;
    c.used += n + 1;
    c.lines++;
    this.pendingBytes += n + 1;
    this.kick();
  }

  /** Close and reopen the file (after logrotate renamed it); stdout stays as it is. */
  reopen(): void {
    if (this.target === 'stdout' || this.closed) return;
    if (this.writing || this.opening) {
      this.reopenWanted = true;
      return;
    }
    this.reopenNow();
  }

  /** Write what is queued, then close (bounded by `timeoutMs`). */
  close(timeoutMs = 1000): Promise<void> {
    return new Promise((resolve) => {
      const deadline = Date.now() + timeoutMs;
      const check = (): void => {
        if ((this.chunks.length === 0 && !this.writing && !this.scheduled) || Date.now() > deadline) {
          this.closed = true;
          if (this.fd !== undefined && this.fd !== 1) close(this.fd, () => {});
          this.fd = undefined;
          resolve();
        } else setTimeout(check, 5);
      };
      check();
    });
  }

  /** Schedule the next write (unless one is running or scheduled); a full chunk goes now. */
  private kick(): void {
    if (this.writing || this.scheduled || this.chunks.length === 0) return;
    if (this.chunks.length > 1) {
      this.flush();
      return;
    }
    this.scheduled = true;
    setTimeout(this.flushSoon, this.flushMs).unref();
  }

  private reopenNow(): void {
    this.reopenWanted = false;
    const old = this.fd;
    this.fd = undefined;
    if (old !== undefined) close(old, () => {});
    this.openFile();
  }

  private openFile(): void {
    this.opening = true;
    open(this.target, 'a', 0o640, (err, fd) => {
      this.opening = false;
      if (err) {
        this.errors++;
        // Lines queued meanwhile are lost; a later reopen (SIGUSR1, reload) tries again.
        for (const c of this.chunks) this.dropped += c.lines;
        this.chunks = [];
        this.pendingBytes = 0;
        return;
      }
      if (this.closed) {
        close(fd, () => {});
        return;
      }
      this.fd = fd;
      if (this.reopenWanted) this.reopenNow();
      else this.flush();
    });
  }

  private flush(): void {
    if (this.writing || this.fd === undefined) return;
    const c = this.chunks.shift();
    if (c === undefined) return;
    this.pendingBytes -= c.used;
    this.writing = true;
    this.writeOut(c, 0);
  }

  private writeOut(c: Chunk, offset: number): void {
    const fd = this.fd!;
    this.writes++;
    write(fd, c.buf, offset, c.used - offset, null, (err, n) => {
      if (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN' && !this.closed) {
          setTimeout(() => this.writeOut(c, offset), EAGAIN_RETRY_MS);
          return;
        }
        this.errors++;
        this.dropped += c.lines;
      } else if (offset + n < c.used) {
        this.writeOut(c, offset + n);
        return;
      } else this.written += c.lines;
      if (c.buf.length === CHUNK_BYTES && this.spare.length < SPARE_CHUNKS) this.spare.push(c.buf);
      this.writing = false;
      if (this.reopenWanted) this.reopenNow();
      else this.kick();
    });
  }
}

/** Encoded lines: `used` bytes of `buf`, `lines` of them. */
interface Chunk {
  readonly buf: Buffer;
  used: number;
  lines: number;
}
