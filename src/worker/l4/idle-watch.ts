// Idle timeout for a spliced connection without a timer refresh per chunk.
//
// socket.setTimeout() re-arms its timer on every read and write (a libuv clock read and a
// timer-list move each time, four per request-response through a tunnel). Here the data path
// only sets a flag; a timer that fires every quarter of the timeout checks it, and the
// connection is idle after four quiet quarters in a row: it closes between 1× and 1.25× the
// timeout after the last byte moved, never before.

const QUARTERS = 4;

export class IdleWatch {
  /** Set by the data path whenever bytes move; cleared by each check. */
  active = false;
  private quiet = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(timeoutMs: number, onIdle: () => void) {
    this.timer = setTimeout(
      () => {
        if (this.active) {
          this.active = false;
          this.quiet = 0;
        } else if (++this.quiet >= QUARTERS) {
          onIdle();
          return;
        }
        this.timer.refresh();
      },
      Math.max(1, Math.ceil(timeoutMs / QUARTERS)),
    );
    // An open connection keeps the worker alive by its sockets, not by this timer.
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}
