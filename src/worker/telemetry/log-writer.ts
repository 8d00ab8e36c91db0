// An append-only line writer that never blocks the event loop: lines are queued in memory and
// written by one asynchronous fs.write at a time (libuv's thread pool), batched: a write goes
// out FLUSH_DELAY_MS after the first line queued since the last one (or at once when a batch
// is full), so one write carries many lines. An async fs.write costs ~60 µs of CPU in the
// thread-pool hand-off alone, so one write per request would cost more than the request. The queue is
// bounded (MAX_PENDING_BYTES): when the disk or the reader of stdout cannot keep up, new lines
// are dropped and counted instead of growing memory or stalling requests. reopen() (SIGUSR1,
// reload) closes and reopens a file after logrotate moved it.

import { close, open, write } from 'node:fs';

/** Lines waiting to be written, at most (then they are dropped and counted). */
export const MAX_PENDING_BYTES = 4 * 1024 * 1024;
/** One write() carries at most this much (a few hundred lines). */
const MAX_BATCH_BYTES = 256 * 1024;
/** stdout as a non-blocking pipe may say EAGAIN: try again shortly. */
const EAGAIN_RETRY_MS = 5;
/** An idle writer waits this long after a first line, so one write carries many lines. */
const FLUSH_DELAY_MS = 5;

export class LogWriter {
  /** Lines dropped because the queue was full, and lines lost to write errors. */
  dropped = 0;
  written = 0;
  errors = 0;
  /** write() calls made: lines ÷ writes is the batching. */
  writes = 0;
  private pending: string[] = [];
  private pendingBytes = 0;
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

  /** `target`: "stdout" or a file path (created if missing, appended to). */
  constructor(readonly target: string) {
    if (target === 'stdout') this.fd = 1;
    else this.openFile();
  }

  write(line: string): void {
    if (this.closed) return;
    const n = line.length + 1;
    if (this.pendingBytes + n > MAX_PENDING_BYTES) {
      this.dropped++;
      return;
    }
    this.pending.push(line);
    this.pendingBytes += n;
    this.kick();
  }

  /** Schedule the next write (unless one is running or scheduled); a full batch goes now. */
  private kick(): void {
    if (this.writing || this.scheduled || this.pending.length === 0) return;
    if (this.pendingBytes >= MAX_BATCH_BYTES) {
      this.flush();
      return;
    }
    this.scheduled = true;
    setTimeout(this.flushSoon, FLUSH_DELAY_MS).unref();
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
        if ((this.pending.length === 0 && !this.writing && !this.scheduled) || Date.now() > deadline) {
          this.closed = true;
          if (this.fd !== undefined && this.fd !== 1) close(this.fd, () => {});
          this.fd = undefined;
          resolve();
        } else setTimeout(check, 5);
      };
      check();
    });
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
        this.dropped += this.pending.length;
        this.pending = [];
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
    if (this.writing || this.fd === undefined || this.pending.length === 0) return;
    let bytes = 0;
    let i = 0;
    while (i < this.pending.length && (i === 0 || bytes < MAX_BATCH_BYTES))
      bytes += this.pending[i++]!.length + 1;
    const lines = i === this.pending.length ? this.pending : this.pending.slice(0, i);
    this.pending = i === this.pending.length ? [] : this.pending.slice(i);
    this.pendingBytes -= bytes;
    const buf = Buffer.from(`${lines.join('\n')}\n`);
    this.writing = true;
    this.writeOut(buf, 0, lines.length);
  }

  private writeOut(buf: Buffer, offset: number, count: number): void {
    const fd = this.fd!;
    this.writes++;
    write(fd, buf, offset, buf.length - offset, null, (err, n) => {
      if (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN' && !this.closed) {
          setTimeout(() => this.writeOut(buf, offset, count), EAGAIN_RETRY_MS);
          return;
        }
        this.errors++;
        this.dropped += count;
      } else if (offset + n < buf.length) {
        this.writeOut(buf, offset + n, count);
        return;
      } else this.written += count;
      this.writing = false;
      if (this.reopenWanted) this.reopenNow();
      else this.kick();
    });
  }
}
