// L4 UDP listener: one session per client address:port, each with its own socket connect()ed to
// the picked backend. Client datagrams go out through the session socket; backend replies go
// back through the listener socket, so they come from the VIP:port the client talked to.
//
// In cluster mode all workers share one listening UDP socket and the kernel hands each
// datagram to whichever worker reads first, so one client's datagrams may reach several
// workers, each keeping its own session (and possibly its own backend unless the algorithm
// hashes the client IP). Replies still reach the right client: every session sends them to
// its client's address through the shared socket.

import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { classifyUpstreamError, type ErrorClass } from '../../shared/errors.ts';
import { errorText, type FailureFields } from '../../shared/failure.ts';
import { backendAddress, type ListenerFactory, listenerKey, listenerName } from '../context.ts';
import type { BackendTarget } from '../routing/balancer/types.ts';
import { byKey } from '../routing/pick-context.ts';
import type { PoolRuntime } from '../routing/pool-runtime.ts';
import type { AccessLogSink } from '../telemetry/access-log.ts';
import { listenerStats } from '../telemetry/record.ts';
import type { ListenerStats } from '../telemetry/stats.ts';

/** Datagrams held per session while its socket connects (a few ms at most). */
const MAX_PENDING = 32;

interface Session {
  readonly address: string;
  readonly port: number;
  readonly sock: Socket;
  readonly pool: PoolRuntime;
  readonly target: BackendTarget;
  /** From the state the session started with; reloads only affect new sessions. */
  readonly idleMs: number;
  /** The listener's stats when the session opened (bytes and the close count go there). */
  readonly stats: ListenerStats;
  readonly log: AccessLogSink | undefined;
  readonly listener: string;
  readonly poolName: string;
  readonly startedAt: number;
  bytesIn: number;
  bytesOut: number;
  lastSeen: number;
  /** The failure that ended the session, if any. */
  errorClass: string | undefined;
  /** Non-null until the session socket is connected. */
  pending: Buffer[] | null;
  closed: boolean;
}

/** Sweep often enough that a session outlives idleMs by at most ~25%. */
function sweepInterval(idleMs: number): number {
  return idleMs > 0 ? Math.max(10, Math.min(1000, Math.floor(idleMs / 4))) : 1000;
}

export const createUdpListener: ListenerFactory = (initial, env) => {
  let state = initial;
  let stats = listenerStats(env, initial);
  let accessLog = env.telemetry?.accessLogs.sink(initial.accessLog);
  const key = listenerKey(initial.lb, initial.listener);
  // address → port → session: no per-datagram key string.
  const sessions = new Map<string, Map<number, Session>>();
  let count = 0;
  let closing: Promise<void> | null = null;

  const failure = (cls: ErrorClass, msg: string, fields: FailureFields): void => {
    env.failures.report(cls, msg, { listener: listenerName(state), ...fields });
  };

  const closeSession = (s: Session): void => {
    if (s.closed) return;
    s.closed = true;
    const byPort = sessions.get(s.address);
    if (byPort?.get(s.port) === s) {
      byPort.delete(s.port);
      if (byPort.size === 0) sessions.delete(s.address);
    }
    count--;
    s.stats.closed++;
    s.log?.l4({
      type: 'udp',
      listener: s.listener,
      pool: s.poolName,
      target: s.target,
      client: s.address,
      bytesIn: s.bytesIn,
      bytesOut: s.bytesOut,
      durationMs: performance.now() - s.startedAt,
      connectMs: undefined,
      errorClass: s.errorClass,
    });
    s.pool.release(s.target);
    s.pending = null;
    s.sock.close();
  };

  const openSession = (rinfo: RemoteInfo): Session | null => {
    const { listener, pools } = state;
    const max = listener.limits.maxSessions;
    if (max > 0 && count >= max) {
      failure('connection_limit', 'udp session limit reached', { client: rinfo.address, limit: max });
      return null;
    }
    const pool = listener.defaultPool === undefined ? undefined : pools.get(listener.defaultPool);
    const target = pool?.pick(byKey(rinfo.address));
    if (!pool || !target) {
      failure('no_healthy_backend', `no healthy backend in pool '${listener.defaultPool ?? ''}'`, {
        client: rinfo.address,
      });
      return null;
    }
    pool.acquire(target);
    const sock = createSocket(target.address.includes(':') ? 'udp6' : 'udp4');
    const s: Session = {
      address: rinfo.address,
      port: rinfo.port,
      sock,
      pool,
      target,
      idleMs: listener.timeouts.idleMs,
      stats,
      log: accessLog,
      listener: listenerName(state),
      poolName: `${state.lb.name}/${listener.defaultPool}`,
      startedAt: performance.now(),
      bytesIn: 0,
      bytesOut: 0,
      errorClass: undefined,
      lastSeen: Date.now(),
      pending: [],
      closed: false,
    };
    let byPort = sessions.get(s.address);
    if (!byPort) {
      byPort = new Map();
      sessions.set(s.address, byPort);
    }
    byPort.set(s.port, s);
    count++;
    stats.connections++;
    sock.on('message', (msg) => {
      if (s.closed) return;
      s.lastSeen = Date.now();
      s.bytesOut += msg.length;
      s.stats.bytesOut += msg.length;
      server.send(msg, s.port, s.address);
    });
    // ICMP port unreachable from the backend surfaces here as ECONNREFUSED. The session is
    // dropped so the client's next datagram picks again.
    sock.on('error', (err) => {
      s.errorClass = classifyUpstreamError(err);
      failure(classifyUpstreamError(err), 'udp upstream error', {
        client: s.address,
        backend: target.key,
        backend_address: backendAddress(target),
        error: errorText(err),
      });
      closeSession(s);
    });
    try {
      sock.connect(target.port, target.address, () => {
        const queued = s.pending;
        s.pending = null;
        if (s.closed || !queued) return;
        for (const m of queued) sock.send(m);
      });
    } catch (err) {
      // Only a config the validator should have refused gets here; never crash the worker.
      failure('upstream_error', 'udp upstream connect failed', { error: errorText(err) });
      closeSession(s);
      return null;
    }
    return s;
  };

  const server = createSocket(initial.lb.vip.includes(':') ? 'udp6' : 'udp4');
  server.on('message', (msg, rinfo) => {
    if (closing !== null) return;
    let s = sessions.get(rinfo.address)?.get(rinfo.port);
    if (s === undefined) {
      const opened = openSession(rinfo);
      if (opened === null) return;
      s = opened;
    }
    s.lastSeen = Date.now();
    s.bytesIn += msg.length;
    s.stats.bytesIn += msg.length;
    if (s.pending === null) s.sock.send(msg);
    else if (s.pending.length < MAX_PENDING) s.pending.push(msg);
  });

  const ready = new Promise<void>((resolve, reject) => {
    const onBindError = (err: Error): void => {
      failure('listen_failed', 'listen failed', { bind: key, error: errorText(err) });
      reject(err);
    };
    server.once('error', onBindError);
    server.bind({ address: initial.lb.vip, port: initial.listener.port }, () => {
      server.removeListener('error', onBindError);
      // After bind, errors come from sends to clients (ENOBUFS, EHOSTUNREACH, ...).
      server.on('error', (err) =>
        failure('internal_error', 'udp listener socket error', { error: errorText(err) }),
      );
      resolve();
    });
  });
  // The registry awaits `ready`; this only keeps an unobserved rejection from killing the worker.
  ready.catch(() => {});

  const sweep = (): void => {
    const now = Date.now();
    for (const byPort of sessions.values()) {
      for (const s of byPort.values()) {
        if (s.idleMs > 0 && now - s.lastSeen >= s.idleMs) closeSession(s);
      }
    }
  };
  let interval = sweepInterval(initial.listener.timeouts.idleMs);
  let sweeper = setInterval(sweep, interval);
  sweeper.unref();

  return {
    key,
    ready,
    update(next) {
      state = next;
      if (stats.name !== listenerName(next)) stats = listenerStats(env, next);
      accessLog = env.telemetry?.accessLogs.sink(next.accessLog);
      const wanted = sweepInterval(next.listener.timeouts.idleMs);
      if (wanted !== interval && closing === null) {
        clearInterval(sweeper);
        interval = wanted;
        sweeper = setInterval(sweep, interval);
        sweeper.unref();
      }
    },
    active: () => count,
    // Nothing is in flight in UDP beyond single datagrams, so there is nothing to wait for.
    close(_deadlineMs) {
      if (closing) return closing;
      closing = new Promise<void>((resolve) => {
        clearInterval(sweeper);
        for (const byPort of sessions.values()) for (const s of byPort.values()) closeSession(s);
        try {
          server.close(() => resolve());
        } catch {
          resolve(); // never bound, or already closed after a bind error
        }
      });
      return closing;
    },
  };
};
