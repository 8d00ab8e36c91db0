// Forks and supervises the data-plane workers. A worker that dies unexpectedly is respawned
// with exponential backoff (per slot), so a crash loop cannot spin the CPU, while the other
// workers keep serving on the shared listening sockets.

import cluster, { type Worker } from 'node:cluster';
import type { HealthState, Snapshot } from '../config/snapshot.ts';
import type {
  LeaseGrant,
  LeaseRequest,
  LeaseReturn,
  PrimaryToWorker,
  TicketKeySet,
  WorkerToPrimary,
} from '../ipc.ts';
import type { Failures } from '../shared/failure.ts';
import { log } from '../shared/log.ts';
import { workerExecArgv } from './worker-heap.ts';

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 10_000;
/** A worker that stayed up this long resets its slot's backoff. */
const STABLE_AFTER_MS = 10_000;

interface Slot {
  readonly index: number;
  worker: Worker | undefined;
  startedAt: number;
  crashes: number;
  respawnTimer: NodeJS.Timeout | undefined;
  appliedRevision: number;
  /** Listeners of appliedRevision that did not open in this worker. */
  listenersFailed: readonly ListenerFailure[];
  /** listener_error messages arrive before their 'applied': collected here until it comes. */
  collecting: { revision: number; failures: ListenerFailure[] };
}

/** A listener that did not open in one worker. */
export interface ListenerFailure {
  /** "lb/listener" */
  readonly listener: string;
  /** "http://127.0.0.1:8080" */
  readonly bind: string;
  readonly error: string;
}

export type WorkerMetrics = WorkerToPrimary & { type: 'metrics' };

export interface WorkerInfo {
  readonly slot: number;
  readonly pid: number | undefined;
  readonly appliedRevision: number;
  readonly crashes: number;
  readonly listenersFailed: readonly ListenerFailure[];
}

/** Worker reports the primary's health monitor consumes (passive health, drain counts). */
export type WorkerReport = Extract<WorkerToPrimary, { type: 'outlier' | 'draining' }>;

export class WorkerSet {
  /** Set by the primary: worker reports for the health monitor, and worker exits. */
  onReport: ((slot: number, m: WorkerReport) => void) | undefined = undefined;
  onWorkerExit: (() => void) | undefined = undefined;

  private readonly slots: Slot[] = [];
  private stopping = false;
  private snapshot: Snapshot | undefined;
  private health: HealthState = { down: [] };
  private ticketKeys: TicketKeySet | undefined;
  /** Workers that said hello: only they can receive messages reliably. */
  private readonly greeted = new WeakSet<Worker>();
  /** Drain requests for workers that have not said hello yet (deadline in ms). */
  private readonly pendingDrain = new WeakMap<Worker, number>();
  /** Per worker, FIFO: IPC keeps order, so each status reply answers the oldest request. */
  private readonly statusWaiters = new Map<
    Worker,
    Array<(m: WorkerToPrimary & { type: 'status' }) => void>
  >();
  /** Answers workers' rate-limit lease requests (the primary's ledger). */
  leases: ((reqs: readonly LeaseRequest[], returns: readonly LeaseReturn[]) => LeaseGrant[]) | undefined;
  /** Metrics replies by request id (see metrics()). */
  private readonly metricsWaiters = new Map<number, (m: WorkerMetrics) => void>();
  private metricsId = 0;
  /** Called with a worker's last metrics answer when it exits (its counters would vanish). */
  onRetired: ((slot: number, last: WorkerMetrics) => void) | undefined;
  private readonly lastMetrics = new WeakMap<Worker, WorkerMetrics>();
  /** Workers whose last report went to onRetired. */
  private readonly retired = new WeakSet<Worker>();
  /** waitApplied() checks, re-run whenever a worker applies, exits or the set is resized. */
  private readonly appliedWaiters = new Set<() => void>();

  constructor(private readonly failures: Failures) {
    // Workers share each listening socket directly (the kernel spreads accepts) instead of
    // the primary accepting and handing connections over: the primary stays off the data path.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
  }

  /** cluster.worker_old_space in MiB, for the workers forked from now on. */
  private oldSpaceMiB = 0;

  /**
   * Grow or shrink to `count` workers. Shrinking drains the surplus workers. `oldSpaceMiB`
   * (cluster.worker_old_space) applies to workers forked from now on (worker-heap.ts).
   */
  resize(count: number, drainDeadlineMs: number, oldSpaceMiB: number): void {
    this.oldSpaceMiB = oldSpaceMiB;
    while (this.slots.length < count) {
      const slot: Slot = {
        index: this.slots.length,
        worker: undefined,
        startedAt: 0,
        crashes: 0,
        respawnTimer: undefined,
        appliedRevision: 0,
        listenersFailed: [],
        collecting: { revision: 0, failures: [] },
      };
      this.slots.push(slot);
      this.fork(slot);
    }
    while (this.slots.length > count) {
      const slot = this.slots.pop()!;
      clearTimeout(slot.respawnTimer);
      if (slot.worker) this.drain(slot.worker, drainDeadlineMs);
      slot.worker = undefined;
    }
    this.recheckApplied();
  }

  /**
   * Resolves true once every slot has a live worker that applied `revision` (or a later one),
   * false after `timeoutMs` or when stopping. Bounded, so a crash-looping worker cannot hang
   * a reload.
   */
  waitApplied(revision: number, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (result: boolean): void => {
        clearTimeout(timer);
        this.appliedWaiters.delete(check);
        resolve(result);
      };
      const check = (): void => {
        if (this.stopping) done(false);
        else if (this.slots.every((s) => s.worker && s.appliedRevision >= revision)) done(true);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      this.appliedWaiters.add(check);
      check();
    });
  }

  private recheckApplied(): void {
    for (const check of [...this.appliedWaiters]) check();
  }

  broadcastSnapshot(snapshot: Snapshot): void {
    this.snapshot = snapshot;
    for (const s of this.slots) if (s.worker) this.send(s.worker, { type: 'snapshot', snapshot });
  }

  broadcastTicketKeys(keys: TicketKeySet): void {
    this.ticketKeys = keys;
    for (const s of this.slots) if (s.worker) this.send(s.worker, { type: 'ticket_keys', keys });
  }

  /** Tell every worker to reopen its access log files (SIGUSR1, for logrotate). */
  broadcastReopenLogs(): void {
    for (const s of this.slots) if (s.worker) this.send(s.worker, { type: 'reopen_logs' });
  }

  /** The health state last broadcast (which backends are down). */
  currentHealth(): HealthState {
    return this.health;
  }

  broadcastHealth(health: HealthState): void {
    this.health = health;
    for (const s of this.slots) if (s.worker) this.send(s.worker, { type: 'health', health });
  }

  info(): WorkerInfo[] {
    return this.slots.map((s) => ({
      slot: s.index,
      pid: s.worker?.process.pid,
      appliedRevision: s.appliedRevision,
      crashes: s.crashes,
      listenersFailed: s.listenersFailed,
    }));
  }

  /** Ask every live worker for its counters; workers that do not answer in time are skipped. */
  async status(timeoutMs = 1000): Promise<Array<WorkerToPrimary & { type: 'status' }>> {
    const live = this.slots.flatMap((s) => (s.worker ? [s.worker] : []));
    const answers = live.map(
      (w) =>
        new Promise<(WorkerToPrimary & { type: 'status' }) | undefined>((resolve) => {
          const queue = this.statusWaiters.get(w) ?? [];
          this.statusWaiters.set(w, queue);
          const waiter = (m: WorkerToPrimary & { type: 'status' }) => {
            clearTimeout(t);
            resolve(m);
          };
          const t = setTimeout(() => {
            // Stop waiting; a late reply then answers the next request, which is as fresh as any.
            queue.splice(queue.indexOf(waiter), 1);
            resolve(undefined);
          }, timeoutMs);
          queue.push(waiter);
          this.send(w, { type: 'status' });
        }),
    );
    return (await Promise.all(answers)).filter((a) => a !== undefined);
  }

  /**
   * Every live worker's metrics (full: all families; else only the summary). A worker that
   * does not answer within `timeoutMs` counts with its last full report, or is left out.
   */
  async metrics(full: boolean, timeoutMs = 1000): Promise<Array<{ slot: number; m: WorkerMetrics }>> {
    const live = this.slots.flatMap((s) => (s.worker && this.greeted.has(s.worker) ? [s] : []));
    const answers = live.map(
      (s) =>
        new Promise<{ slot: number; m: WorkerMetrics } | undefined>((resolve) => {
          const worker = s.worker!;
          const id = ++this.metricsId;
          const t = setTimeout(() => {
            this.metricsWaiters.delete(id);
            // A busy worker's last full report rather than none: leaving it out would make
            // every counter dip, which Prometheus reads as a reset.
            // (Not once it exited: its last report is in the retired counts by then.)
            const last = full && !this.retired.has(worker) ? this.lastMetrics.get(worker) : undefined;
            resolve(last ? { slot: s.index, m: last } : undefined);
          }, timeoutMs);
          this.metricsWaiters.set(id, (m) => {
            clearTimeout(t);
            this.metricsWaiters.delete(id);
            if (full) this.lastMetrics.set(worker, m);
            resolve({ slot: s.index, m });
          });
          this.send(worker, { type: 'metrics', id, full });
        }),
    );
    return (await Promise.all(answers)).filter((a) => a !== undefined);
  }

  /** SIGTERM path: no more respawns; every worker drains and exits. */
  async drainAll(deadlineMs: number): Promise<void> {
    this.stopping = true;
    this.recheckApplied();
    const exits: Array<Promise<void>> = [];
    for (const s of this.slots) {
      clearTimeout(s.respawnTimer);
      const w = s.worker;
      if (!w || w.isDead()) continue;
      exits.push(
        new Promise((resolve) => {
          w.once('exit', () => resolve());
          // Backstop: a worker that ignores its deadline is killed shortly after it.
          const kill = setTimeout(() => w.process.kill('SIGKILL'), deadlineMs + 5_000);
          kill.unref();
        }),
      );
      this.drain(w, deadlineMs);
    }
    await Promise.all(exits);
  }

  private fork(slot: Slot): void {
    // The worker count is not passed here: it travels in every snapshot, so a resize re-splits
    // per-listener limits in the workers that keep running.
    cluster.setupPrimary({ execArgv: workerExecArgv(this.oldSpaceMiB) });
    const worker = cluster.fork({ FIBERLB_WORKER_SLOT: String(slot.index) });
    slot.worker = worker;
    slot.startedAt = Date.now();
    slot.appliedRevision = 0;
    slot.listenersFailed = [];
    slot.collecting = { revision: 0, failures: [] };
    worker.on('message', (m: WorkerToPrimary) => this.onMessage(slot, worker, m));
    worker.on('exit', (code, signal) => this.onExit(slot, worker, code, signal));
    // An IPC send to a dying worker errors asynchronously; exit handling covers it.
    worker.on('error', (err) => log('warn', 'worker ipc error', { slot: slot.index, reason: err.message }));
  }

  private onMessage(slot: Slot, worker: Worker, m: WorkerToPrimary): void {
    switch (m.type) {
      case 'hello': {
        this.greeted.add(worker);
        const deadlineMs = this.pendingDrain.get(worker);
        if (deadlineMs !== undefined) {
          this.send(worker, { type: 'drain', deadlineMs });
          break;
        }
        // Health first: the first snapshot then builds pools that already know what is down.
        this.send(worker, { type: 'health', health: this.health });
        // Ticket keys before the snapshot: its https listeners resume sessions from the start.
        if (this.ticketKeys) this.send(worker, { type: 'ticket_keys', keys: this.ticketKeys });
        if (this.snapshot) this.send(worker, { type: 'snapshot', snapshot: this.snapshot });
        break;
      }
      case 'applied':
        if (slot.worker !== worker) break;
        slot.appliedRevision = m.revision;
        slot.listenersFailed = slot.collecting.revision === m.revision ? slot.collecting.failures : [];
        slot.collecting = { revision: 0, failures: [] };
        this.recheckApplied();
        break;
      case 'listener_error':
        // Counted and logged by the worker's listener; the primary aggregates them per revision
        // for /healthz, reload answers and its own "listen failed" line.
        if (slot.worker !== worker) break;
        if (slot.collecting.revision !== m.revision) slot.collecting = { revision: m.revision, failures: [] };
        slot.collecting.failures.push({ listener: m.listener, bind: m.bind, error: m.message });
        break;
      case 'status': {
        this.statusWaiters.get(worker)?.shift()?.(m);
        break;
      }
      case 'rl_lease': {
        // Any worker, even one being drained: its returns must be taken and its asks answered.
        const grants = this.leases?.(m.reqs, m.returns) ?? [];
        if (grants.length > 0) this.send(worker, { type: 'rl_grant', grants });
        break;
      }
      case 'metrics':
        this.metricsWaiters.get(m.id)?.(m);
        break;
      case 'outlier':
      case 'draining':
        if (slot.worker === worker) this.onReport?.(slot.index, m);
        break;
    }
  }

  private onExit(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    this.statusWaiters.delete(worker);
    const last = this.lastMetrics.get(worker);
    this.retired.add(worker);
    if (last) this.onRetired?.(slot.index, last);
    if (slot.worker !== worker) return; // a drained surplus worker or an already replaced one
    slot.worker = undefined;
    slot.listenersFailed = [];
    this.onWorkerExit?.();
    if (this.stopping) return;
    const lived = Date.now() - slot.startedAt;
    slot.crashes = lived >= STABLE_AFTER_MS ? 1 : slot.crashes + 1;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (slot.crashes - 1));
    this.failures.report('worker_crash', 'worker exited unexpectedly; respawning', {
      slot: slot.index,
      pid: worker.process.pid,
      code: code ?? undefined,
      signal: signal ?? undefined,
      lived_ms: lived,
      respawn_in_ms: delay,
    });
    slot.respawnTimer = setTimeout(() => {
      slot.respawnTimer = undefined;
      if (!this.stopping && this.slots[slot.index] === slot) this.fork(slot);
    }, delay);
  }

  /** Ask a worker to drain and exit; deferred until its hello if it is still starting. */
  private drain(worker: Worker, deadlineMs: number): void {
    if (this.greeted.has(worker)) this.send(worker, { type: 'drain', deadlineMs });
    else this.pendingDrain.set(worker, deadlineMs);
  }

  private send(worker: Worker, m: PrimaryToWorker): void {
    if (worker.isConnected()) worker.send(m);
  }
}
