// L4 TCP listener: accept, pick a backend by client IP, connect, then splice the two sockets
// (splice.ts) with backpressure and half-close propagation. Optionally reads a PROXY header from trusted
// peers and/or writes one to the backend.
//
// Client sockets start paused (pauseOnConnect) and are only piped once the upstream is
// connected, so early client bytes wait in the kernel instead of in our memory.

import { connect, createServer, type Socket } from 'node:net';
import { cidrsContain } from '../../shared/cidr.ts';
import { classifyUpstreamError, type ErrorClass } from '../../shared/errors.ts';
import { errorText } from '../../shared/failure.ts';
import { log } from '../../shared/log.ts';
import {
  backendAddress,
  type ListenerFactory,
  type ListenerHandle,
  type ListenerState,
  listenerKey,
  listenerName,
  perWorkerLimit,
  type WorkerEnv,
} from '../context.ts';
import { encodeProxyV1, encodeProxyV2, proxyAddresses, readProxyHeader } from '../proxy-protocol.ts';
import { ConnectionLimits } from '../ratelimit/connection-limits.ts';
import type { BackendTarget } from '../routing/balancer/types.ts';
import { byKey } from '../routing/pick-context.ts';
import type { AccessLogSink } from '../telemetry/access-log.ts';
import { listenerStats } from '../telemetry/record.ts';
import { outlierFailure, outlierResult } from '../upstream/outlier.ts';
import { IdleWatch } from './idle-watch.ts';
import { splice } from './splice.ts';

/** Used when the listener has no client header timeout configured. */
const DEFAULT_PROXY_HEADER_TIMEOUT_MS = 5000;

/** One accepted client connection and everything it holds. */
interface Conn {
  readonly client: Socket;
  /** The state this connection was accepted under; reloads never change it. */
  readonly state: ListenerState;
  upstream: Socket | null;
  connected: boolean;
  /** Target acquired for least_connections; null once released. */
  target: BackendTarget | null;
  clientClosed: boolean;
  /** A failure was counted and both sockets destroyed; later events are consequences. */
  failed: boolean;
  /** performance.now() at accept and when the upstream connect began / completed (0 = not). */
  readonly startedAt: number;
  connectStartedAt: number;
  connectedAt: number;
  errorClass: ErrorClass | undefined;
  /** The backend picked (kept after release, for the access log). */
  picked: BackendTarget | null;
  readonly log: AccessLogSink | undefined;
}

/**
 * How a stream listener chooses the pool of a new connection once the client address is known
 * (tls_passthrough: by the ClientHello's SNI). It may read from the paused client socket but
 * must put back (unshift) every byte it read and leave the socket paused; then it calls `done`
 * with a pool name, or `fail` with the failure to count (the connection is then destroyed).
 */
export type PoolChooser = (
  client: Socket,
  state: ListenerState,
  done: (pool: string) => void,
  fail: (cls: ErrorClass, msg: string) => void,
) => void;

export const createTcpListener: ListenerFactory = (initial, env) => createStreamListener(initial, env);

/** A byte-stream proxy; `choose` picks the pool per connection (default: the default_pool). */
export function createStreamListener(
  initial: ListenerState,
  env: WorkerEnv,
  choose?: PoolChooser,
): ListenerHandle {
  let state = initial;
  let stats = listenerStats(env, initial);
  let accessLog = env.telemetry?.accessLogs.sink(initial.accessLog);
  const key = listenerKey(initial.lb, initial.listener);
  const conns = new Set<Conn>();
  let closing: Promise<void> | null = null;
  let onDrained: (() => void) | null = null;
  // Per-client connection rate and count; kept across reloads with the listener.
  const limits = new ConnectionLimits(env.rateLimits);

  const fail = (c: Conn, cls: ErrorClass, msg: string, err?: unknown): void => {
    if (c.failed) return;
    c.failed = true;
    c.errorClass = cls;
    const t = c.target;
    env.failures.report(cls, msg, {
      listener: listenerName(c.state),
      backend: t?.key,
      backend_address: t === null ? undefined : backendAddress(t),
      client: c.client.remoteAddress,
      error: errorText(err),
    });
    c.client.destroy();
    c.upstream?.destroy();
  };

  const finished = (c: Conn): void => {
    if (!c.clientClosed || (c.upstream !== null && !c.upstream.destroyed) || c.target !== null) return;
    if (conns.delete(c))
      c.log?.l4({
        type: 'tcp',
        listener: listenerName(c.state),
        pool:
          c.state.listener.defaultPool === undefined
            ? null
            : `${c.state.lb.name}/${c.state.listener.defaultPool}`,
        target: c.picked,
        client: c.client.remoteAddress,
        bytesIn: c.client.bytesRead,
        bytesOut: c.client.bytesWritten,
        durationMs: performance.now() - c.startedAt,
        connectMs: c.connectedAt > 0 ? c.connectedAt - c.connectStartedAt : undefined,
        errorClass: c.errorClass,
      });
    if (conns.size === 0) onDrained?.();
  };

  const route = (c: Conn, clientIp: string, clientPort: number | undefined): void => {
    if (choose === undefined) {
      startUpstream(c, clientIp, clientPort, c.state.listener.defaultPool);
      return;
    }
    choose(
      c.client,
      c.state,
      (pool) => {
        if (!c.failed) startUpstream(c, clientIp, clientPort, pool);
      },
      (cls, msg) => fail(c, cls, msg),
    );
  };

  const startUpstream = (
    c: Conn,
    clientIp: string,
    clientPort: number | undefined,
    poolName: string | undefined,
  ): void => {
    const { listener, pools } = c.state;
    const pool = poolName === undefined ? undefined : pools.get(poolName);
    const picked = pool?.pick(byKey(clientIp));
    if (!pool || !picked) {
      fail(c, 'no_healthy_backend', `no healthy backend in pool '${poolName ?? ''}'`);
      return;
    }
    // Circuit breaking: a backend at its max_connections (this worker's share) takes no more.
    const target = pool.underLimit(picked, clientIp);
    if (target === undefined) {
      fail(c, 'queue_full', `every backend of pool '${pool.name}' is at its max_connections`);
      return;
    }
    const { client } = c;
    let up: Socket;
    try {
      up = connect({ host: target.address, port: target.port, allowHalfOpen: true, noDelay: true });
    } catch (err) {
      // Only a config the validator should have refused gets here; never crash the worker.
      fail(c, 'upstream_error', 'upstream connect failed', err);
      return;
    }
    pool.acquire(target);
    c.target = target;
    c.picked = target;
    c.upstream = up;
    c.connectStartedAt = performance.now();
    const upStats = env.telemetry?.upstream(backendAddress(target));
    // The socket timer serves the connect phase only (cleared on connect; idle is the splice's).
    if (listener.timeouts.connectMs > 0) up.setTimeout(listener.timeouts.connectMs);
    const od = pool.config.outlierDetection;
    up.on('timeout', () => {
      if (c.connected) return;
      outlierFailure(od, target, 'upstream_connect_timeout');
      fail(c, 'upstream_connect_timeout', 'upstream connect timeout');
    });
    up.on('error', (err) => {
      const cls = classifyUpstreamError(err);
      // Passive health judges connecting: later errors may be either side's doing.
      if (!c.connected) outlierFailure(od, target, cls);
      fail(c, cls, 'upstream error', err);
    });
    up.once('connect', () => {
      c.connected = true;
      c.connectedAt = performance.now();
      if (upStats) {
        upStats.connects++;
        upStats.connectTime.observe((c.connectedAt - c.connectStartedAt) / 1000);
      }
      outlierResult(od, target, 0);
      const idle = listener.timeouts.idleMs;
      // The connect timer is done; idle is watched by the splice, which sees every byte moved
      // without re-arming a socket timer per chunk (idle-watch.ts).
      up.setTimeout(0);
      const watch =
        idle > 0 ? new IdleWatch(idle, () => fail(c, 'client_timeout', 'tcp idle timeout')) : undefined;
      const pp = pool.config.proxyProtocol;
      if (pp) {
        const addrs = proxyAddresses(clientIp, clientPort, client.localAddress, client.localPort);
        up.write(pp === 'v1' ? encodeProxyV1(addrs) : encodeProxyV2(addrs));
      }
      // Both ways with backpressure; a FIN one way ends the other socket (half-close).
      splice(client, up, watch);
    });
    up.once('close', (hadError) => {
      if (!c.connected && upStats) upStats.connectErrors++;
      pool.release(target);
      c.target = null;
      // A clean close means both directions finished; otherwise the client cannot be served.
      if (hadError || !client.readableEnded) client.destroy();
      finished(c);
    });
  };

  /** L4 limits for the client address (peer, or the PROXY header's source), then connect. */
  const admit = (c: Conn, clientIp: string, clientPort: number | undefined): void => {
    limits.admit(c.state, clientIp, (refused, why, held) => {
      if (c.failed || c.clientClosed) {
        if (held !== undefined) limits.release(held);
        return;
      }
      if (refused !== undefined) {
        fail(c, refused, 'connection refused by limit', why);
        return;
      }
      if (held !== undefined) c.client.once('close', () => limits.release(held));
      route(c, clientIp, clientPort);
    });
  };

  const onConnection = (client: Socket): void => {
    const st = state;
    const limit = perWorkerLimit(st.listener.connectionLimit, st.workerCount);
    if (closing !== null) {
      client.destroy();
      return;
    }
    if (limit > 0 && conns.size >= limit) {
      env.failures.report('connection_limit', 'tcp connection limit reached', {
        listener: listenerName(st),
        client: client.remoteAddress,
        limit,
      });
      client.destroy();
      return;
    }
    const c: Conn = {
      client,
      state: st,
      upstream: null,
      connected: false,
      target: null,
      clientClosed: false,
      failed: false,
      startedAt: performance.now(),
      connectStartedAt: 0,
      connectedAt: 0,
      errorClass: undefined,
      picked: null,
      log: accessLog,
    };
    conns.add(c);
    const connStats = stats;
    connStats.connections++;
    client.setNoDelay(true);
    client.on('error', (err) => fail(c, 'client_abort', 'client connection error', err));
    client.once('close', (hadError) => {
      c.clientClosed = true;
      connStats.closed++;
      connStats.bytesIn += client.bytesRead;
      connStats.bytesOut += client.bytesWritten;
      const up = c.upstream;
      // Let a cleanly finished upstream flush what the client sent; otherwise cut it.
      if (up && (hadError || !up.readableEnded)) up.destroy();
      finished(c);
    });

    const peer = client.remoteAddress;
    const l = st.listener;
    if (!l.acceptProxyProtocol || !cidrsContain(l.trustedProxies, peer)) {
      admit(c, peer ?? '', client.remotePort);
      return;
    }
    const timeout =
      l.timeouts.clientHeaderMs > 0 ? l.timeouts.clientHeaderMs : DEFAULT_PROXY_HEADER_TIMEOUT_MS;
    readProxyHeader(client, timeout, (r) => {
      if (c.failed) return;
      if (!r.ok) {
        if (r.reason === 'closed') fail(c, 'client_abort', r.message);
        else fail(c, 'proxy_protocol_invalid', r.message);
        return;
      }
      // LOCAL/UNKNOWN: the proxy speaks for itself, so its own address is the client's.
      if (r.header) admit(c, r.header.sourceAddress, r.header.sourcePort);
      else admit(c, peer ?? '', client.remotePort);
    });
  };

  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, onConnection);
  const ready = new Promise<void>((resolve, reject) => {
    const onListenError = (err: Error): void => {
      env.failures.report('listen_failed', 'listen failed', {
        listener: listenerName(initial),
        bind: key,
        error: errorText(err),
      });
      reject(err);
    };
    server.once('error', onListenError);
    server.listen({ host: initial.lb.vip, port: initial.listener.port }, () => {
      server.removeListener('error', onListenError);
      // After bind, server errors are accept failures (EMFILE, ...): count them, keep serving.
      server.on('error', (err) =>
        env.failures.report('accept_failed', 'tcp accept failed', {
          listener: listenerName(state),
          error: errorText(err),
        }),
      );
      resolve();
    });
  });
  // The registry awaits `ready`; this only keeps an unobserved rejection from killing the worker.
  ready.catch(() => {});

  return {
    key,
    ready,
    update(next) {
      state = next;
      if (stats.name !== listenerName(next)) stats = listenerStats(env, next);
      accessLog = env.telemetry?.accessLogs.sink(next.accessLog);
    },
    active: () => conns.size,
    close(deadlineMs) {
      if (closing) return closing;
      closing = new Promise<void>((resolve) => {
        let serverClosed = false;
        let timer: NodeJS.Timeout | undefined;
        const check = (): void => {
          if (!serverClosed || conns.size > 0) return;
          clearTimeout(timer);
          resolve();
        };
        onDrained = check;
        server.close(() => {
          serverClosed = true;
          check();
        });
        if (conns.size > 0) {
          timer = setTimeout(() => {
            log('info', 'tcp drain deadline reached, closing connections', {
              listener: listenerName(state),
              connections: conns.size,
            });
            for (const c of conns) fail(c, 'drain_deadline', 'connection cut at the drain deadline');
          }, deadlineMs);
        }
      });
      return closing;
    },
  };
}
