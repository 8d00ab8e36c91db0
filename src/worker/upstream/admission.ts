// Admission in front of one upstream (one undici Pool): at most `capacity` requests in flight
// — the Pool's connection count, so undici itself never holds a request it cannot put on a
// connection at once — and the rest wait in FIFO order for a released slot. How many may wait
// and for how long is the pool's business (`max_queue`, `queue_timeout`), so each waiter is
// also counted against its pool's PoolQueue. As in Envoy, the balancer picks the backend first
// and the request then waits for that backend; the bound is per pool (Envoy's
// max_pending_requests per cluster, HAProxy's `timeout queue`).
//
// Hot path: tryAcquire()/release() with nobody waiting are a compare and an increment; a
// Ticket (and its timer) exists only for a request that actually waits.
// Per-backend circuit breaking joins here: a backend's max_requests / max_connections (this
// worker's share) lowers its gate's capacity (limit()), so requests over it wait in the same
// bounded pool queue, and overflow answers 503 queue_full at once.

/** Who waits for a slot (the HTTP exchange). Exactly one of these is called, once. */
export interface Waiter {
  /** A slot is now held for the waiter (called from the releasing request's stack). */
  admitted(): void;
  /** The waiter spent its pool's `queue_timeout` in the queue; it holds no slot. */
  queueTimedOut(): void;
}

/** A pool's queue settings (PoolConfig has them). */
export interface QueueLimits {
  readonly maxQueue: number;
  readonly queueTimeoutMs: number;
}

/** A pool's share of the waiting: how many of its requests wait now, and its limits. */
export class PoolQueue {
  waiting = 0;
  constructor(readonly limits: QueueLimits) {}
}

// One PoolQueue per pool config object, made on first use (only once a backend is full).
// A reload brings new config objects and so new counters; requests already waiting stay
// counted on the old one, so during one queue_timeout after a reload a pool may hold up to
// twice max_queue waiters.
const queues = new WeakMap<QueueLimits, PoolQueue>();

export function queueOf(limits: QueueLimits): PoolQueue {
  let q = queues.get(limits);
  if (q === undefined) {
    q = new PoolQueue(limits);
    queues.set(limits, q);
  }
  return q;
}

/** One waiting request. Returned by Gate.enqueue so the waiter can cancel() it. */
export class Ticket {
  prev: Ticket | null = null;
  next: Ticket | null = null;
  timer: NodeJS.Timeout | undefined = undefined;
  constructor(
    readonly gate: Gate,
    readonly waiter: Waiter,
    readonly queue: PoolQueue,
  ) {}

  /** The waiter gave up (client gone, request failed): leave the queue, no callback. */
  cancel(): void {
    this.gate.remove(this);
  }
}

function onTicketTimeout(t: Ticket): void {
  t.timer = undefined;
  if (!t.gate.remove(t)) return;
  t.waiter.queueTimedOut();
}

export class Gate {
  /** Requests holding a slot (dispatched to undici or about to be). */
  inflight = 0;
  private head: Ticket | null = null;
  private tail: Ticket | null = null;
  private length = 0;
  /** Called once the queue is empty (set when the upstream is retired on reload). */
  private onEmpty: (() => void) | undefined = undefined;

  /** Slots: the upstream's connection count, or less where a circuit breaker says so. */
  capacity: number;

  constructor(readonly connections: number) {
    this.capacity = connections;
  }

  /**
   * This worker's circuit-breaker limit for the backend (0 = none): capacity becomes
   * min(connections, limit). Raising it admits waiters at once; lowering it lets the requests
   * already in flight finish (no new one is admitted until inflight is below it).
   */
  limit(limit: number): void {
    const cap = limit > 0 && limit < this.connections ? limit : this.connections;
    if (cap === this.capacity) return;
    this.capacity = cap;
    while (this.inflight < this.capacity && this.head !== null) {
      const t = this.head;
      this.inflight++;
      this.remove(t);
      t.waiter.admitted();
    }
  }

  /** Take a slot if one is free and nobody is waiting ahead (FIFO). */
  tryAcquire(): boolean {
    if (this.inflight < this.capacity && this.head === null) {
      this.inflight++;
      return true;
    }
    return false;
  }

  /**
   * Wait for a slot, counted against `queue`: undefined when the pool's queue is full. The
   * waiter is called back with admitted() or queueTimedOut(), unless it cancels first.
   */
  enqueue(waiter: Waiter, queue: PoolQueue): Ticket | undefined {
    if (queue.waiting >= queue.limits.maxQueue) return undefined;
    const t = new Ticket(this, waiter, queue);
    queue.waiting++;
    this.length++;
    if (this.tail === null) this.head = t;
    else {
      this.tail.next = t;
      t.prev = this.tail;
    }
    this.tail = t;
    t.timer = setTimeout(onTicketTimeout, queue.limits.queueTimeoutMs, t);
    return t;
  }

  /** A slot holder is done: hand the slot to the oldest waiter, or free it. */
  release(): void {
    const t = this.head;
    if (t === null || this.inflight > this.capacity) {
      // Clamped: a stray extra release must not open a slot that does not exist. Over a
      // lowered capacity, the slot is not handed on.
      if (this.inflight > 0) this.inflight--;
      return;
    }
    // The slot passes straight on; inflight is unchanged.
    this.remove(t);
    t.waiter.admitted();
  }

  /** Requests waiting for this upstream. */
  waiting(): number {
    return this.length;
  }

  /** Call `fn` once nobody waits any more (now, if the queue is empty). */
  whenEmpty(fn: () => void): void {
    if (this.length === 0) fn();
    else this.onEmpty = fn;
  }

  /** Unlink `t`; false if it had already left (granted, timed out or cancelled). */
  remove(t: Ticket): boolean {
    if (t.prev === null && this.head !== t) return false;
    if (t.prev === null) this.head = t.next;
    else t.prev.next = t.next;
    if (t.next === null) this.tail = t.prev;
    else t.next.prev = t.prev;
    t.prev = null;
    t.next = null;
    if (t.timer !== undefined) {
      clearTimeout(t.timer);
      t.timer = undefined;
    }
    t.queue.waiting--;
    this.length--;
    if (this.length === 0 && this.onEmpty !== undefined) {
      const fn = this.onEmpty;
      this.onEmpty = undefined;
      // After the caller has dispatched the last waiter (release() calls admitted() next).
      queueMicrotask(fn);
    }
    return true;
  }
}
