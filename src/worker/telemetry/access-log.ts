// Access logs: one JSON line per HTTP request, WebSocket upgrade (when its tunnel closes) and
// L4 connection (udp: per session), to a file or stdout through a LogWriter (never blocking),
// sampled per listener. The line is built only when the request is sampled; unsampled
// requests cost one Math.random().

import type { AccessLogConfig } from '../../config/model.ts';
import { counter, type MetricFamily } from '../../shared/metrics.ts';
import { type BackendTarget, backendAddress } from '../routing/balancer/types.ts';
import { LogWriter } from './log-writer.ts';

/** Where one listener's lines go, and how many of them. */

/**
 * What an access log line reads from a request (HttpExchange has it): named here so this
 * module depends on no part of the data plane above it.
 */
export interface LoggedExchange {
  readonly res: { readonly headersSent: boolean; readonly statusCode: number };
  readonly backend: BackendTarget | undefined;
  readonly route: { readonly route: string; readonly poolName: string } | undefined;
  readonly method: string;
  readonly path: string;
  readonly peerIp: string;
  readonly requestId: string;
  readonly errorClass: string | undefined;
  readonly requestBytes: number;
  readonly responseBytes: number;
  readonly startedAt: number;
  readonly dispatchedAt: number;
  readonly sentAt: number;
  readonly firstByteAt: number;
}

export class AccessLogSink {
  constructor(
    readonly writer: LogWriter,
    readonly sample: number,
  ) {}

  sampled(): boolean {
    return this.sample >= 1 || (this.sample > 0 && Math.random() < this.sample);
  }

  http(listener: string, lb: string, ex: LoggedExchange, now: number): void {
    if (!this.sampled()) return;
    const res = ex.res;
    const t = ex.backend;
    const d = ex.dispatchedAt;
    const q = ex.path.indexOf('?');
    const route = ex.route;
    // Built by hand (strings through JSON.stringify for escaping): about twice as fast as
    // stringifying an object, and this runs once per logged request. The parts that depend
    // only on the listener, the route or the backend are formatted once and cached.
    this.writer.write(
      `{"ts":"${isoNow()}","type":"http","listener":${this.listenerPart(listener)}` +
        `${route ? routePart(route, lb) : ',"route":null,"pool":null'}` +
        `${t ? backendPart(t) : ',"backend":null,"backend_address":null'}` +
        `,"client":${str(ex.peerIp)},"method":${str(ex.method)}` +
        // The path without its query string (which may carry credentials).
        `,"path":${str(q < 0 ? ex.path : ex.path.slice(0, q))}` +
        `,"status":${res.headersSent ? res.statusCode : 'null'}` +
        `,"bytes_in":${ex.requestBytes},"bytes_out":${ex.responseBytes}` +
        `,"duration_ms":${ms(now - ex.startedAt)}` +
        `,"upstream_connect_ms":${d > 0 && ex.sentAt > 0 ? ms(ex.sentAt - d) : 'null'}` +
        `,"upstream_first_byte_ms":${d > 0 && ex.firstByteAt > 0 ? ms(ex.firstByteAt - d) : 'null'}` +
        `,"request_id":${ex.requestId ? str(ex.requestId) : 'null'}` +
        `,"error_class":${ex.errorClass ? str(ex.errorClass) : 'null'}}`,
    );
  }

  private lastListener = '';
  private lastListenerPart = '';
  private listenerPart(listener: string): string {
    if (listener !== this.lastListener) {
      this.lastListener = listener;
      this.lastListenerPart = str(listener);
    }
    return this.lastListenerPart;
  }

  /** A WebSocket upgrade, when it ended: refused, or its tunnel closed (not per request: no cache). */
  websocket(listener: string, lb: string, u: LoggedUpgrade, now: number): void {
    if (!this.sampled()) return;
    const t = u.backend;
    const route = u.route;
    const d = u.dispatchedAt;
    const q = u.path.indexOf('?');
    this.writer.write(
      JSON.stringify({
        ts: isoNow(),
        type: 'websocket',
        listener,
        route: route ? route.route : null,
        pool: route ? `${lb}/${route.poolName}` : null,
        backend: t?.key ?? null,
        backend_address: t ? backendAddress(t) : null,
        client: u.peerIp,
        method: 'GET',
        path: q < 0 ? u.path : u.path.slice(0, q),
        status: u.status > 0 ? u.status : null,
        bytes_in: u.bytesIn,
        bytes_out: u.bytesOut,
        duration_ms: msNumber(now - u.startedAt),
        upstream_connect_ms: d > 0 && u.connectedAt > 0 ? msNumber(u.connectedAt - d) : null,
        upstream_first_byte_ms: d > 0 && u.answeredAt > 0 ? msNumber(u.answeredAt - d) : null,
        request_id: u.requestId || null,
        error_class: u.errorClass ?? null,
      }),
    );
  }

  l4(line: L4Line): void {
    if (!this.sampled()) return;
    const t = line.target;
    this.writer.write(
      JSON.stringify({
        ts: isoNow(),
        type: line.type,
        listener: line.listener,
        pool: line.pool,
        backend: t?.key ?? null,
        backend_address: t ? backendAddress(t) : null,
        client: line.client,
        bytes_in: line.bytesIn,
        bytes_out: line.bytesOut,
        duration_ms: msNumber(line.durationMs),
        upstream_connect_ms: line.connectMs === undefined ? null : msNumber(line.connectMs),
        error_class: line.errorClass ?? null,
      }),
    );
  }
}

/**
 * What an access log line reads from one WebSocket upgrade (http/upgrade.ts): its answer, and
 * for a tunnel its bytes and lifetime. Times are performance.now() ms (0: did not happen).
 */
export interface LoggedUpgrade {
  readonly route: { readonly route: string; readonly poolName: string } | undefined;
  readonly backend: BackendTarget | undefined;
  readonly peerIp: string;
  readonly path: string;
  /** What the client got: 101, the backend's refusal, ours; 0 when the connection was cut. */
  readonly status: number;
  readonly requestId: string;
  readonly errorClass: string | undefined;
  /** Through the tunnel after the 101: client → backend, backend → client. */
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** The upgrade request arrived. */
  readonly startedAt: number;
  /** Handed to the backend, on a connection to it, and its answer's head in. */
  readonly dispatchedAt: number;
  readonly connectedAt: number;
  readonly answeredAt: number;
}

export interface L4Line {
  readonly type: 'tcp' | 'udp';
  readonly listener: string;
  readonly pool: string | null;
  readonly target: BackendTarget | null | undefined;
  readonly client: string | undefined;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly durationMs: number;
  readonly connectMs: number | undefined;
  readonly errorClass: string | undefined;
}

// Routes and backends are objects that live as long as their snapshot: their log fragments
// are cached on them weakly (a reload's new objects get new fragments).
const routeParts = new WeakMap<object, string>();
function routePart(route: { readonly route: string; readonly poolName: string }, lb: string): string {
  let p = routeParts.get(route);
  if (p === undefined) {
    p = `,"route":${str(route.route)},"pool":${str(`${lb}/${route.poolName}`)}`;
    routeParts.set(route, p);
  }
  return p;
}
const backendParts = new WeakMap<BackendTarget, string>();
function backendPart(t: BackendTarget): string {
  let p = backendParts.get(t);
  // A target's address never changes (pool-runtime.ts makes a new object for a new address).
  if (p === undefined) {
    p = `,"backend":${str(t.key)},"backend_address":${str(backendAddress(t))}`;
    backendParts.set(t, p);
  }
  return p;
}

function msNumber(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/**
 * Milliseconds to 3 decimals as JSON, in the shortest form (1.05, not 1.050). Formatted from
 * integer µs and a table of fractions: a fractional double's shortest decimal form costs ~3×
 * more (3 per line).
 */
function ms(x: number): string {
  const us = Math.round(x * 1000);
  if (!(us >= 0 && us < 2 ** 31)) return String(msNumber(x));
  const whole = (us / 1000) | 0;
  return `${whole}${FRACTIONS[us - whole * 1000]}`;
}
/** FRACTIONS[n] is n/1000 after the integer part: '', '.001', …, '.05', …, '.999'. */
const FRACTIONS = Array.from({ length: 1000 }, (_, n) =>
  n === 0 ? '' : `.${String(n).padStart(3, '0').replace(/0+$/, '')}`,
);

/** A JSON string literal; plain ASCII without quotes or backslashes (the usual case) as is. */
function str(s: string): string {
  return SAFE.test(s) ? `"${s}"` : JSON.stringify(s);
}
const SAFE = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

// Under load many lines share a millisecond, and every line a second: the date and time up
// to the second are formatted once a second, the milliseconds come from a table.
let lastMs = 0;
let lastIso = '';
let lastSecond = -1;
let secondPrefix = '';
const MILLIS = Array.from({ length: 1000 }, (_, i) => `${String(i).padStart(3, '0')}Z`);
function isoNow(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    const second = Math.floor(now / 1000);
    if (second !== lastSecond) {
      lastSecond = second;
      secondPrefix = new Date(second * 1000).toISOString().slice(0, 20); // "…T12:34:56."
    }
    lastIso = secondPrefix + MILLIS[now - second * 1000];
  }
  return lastIso;
}

/** One writer per target, shared by every listener that logs there. */
export class AccessLogs {
  private readonly writers = new Map<string, LogWriter>();

  sink(cfg: AccessLogConfig | undefined): AccessLogSink | undefined {
    if (cfg === undefined || cfg.sample <= 0) return undefined;
    let w = this.writers.get(cfg.path);
    if (w === undefined) {
      w = new LogWriter(cfg.path, cfg.flushIntervalMs);
      this.writers.set(cfg.path, w);
    } else w.flushMs = cfg.flushIntervalMs; // listeners sharing a file: the latest config's

    return new AccessLogSink(w, cfg.sample);
  }

  /** After a snapshot: close writers nobody uses, reopen the rest (logrotate after a reload). */
  retain(paths: ReadonlySet<string>): void {
    for (const [path, w] of this.writers) {
      if (paths.has(path)) w.reopen();
      else {
        this.writers.delete(path);
        void w.close();
      }
    }
  }

  /** SIGUSR1 (via the primary): reopen every file. */
  reopen(): void {
    for (const w of this.writers.values()) w.reopen();
  }

  async close(): Promise<void> {
    await Promise.all([...this.writers.values()].map((w) => w.close()));
  }

  families(): MetricFamily[] {
    const lines = [...this.writers.values()].flatMap((w) => [
      { labels: { target: w.target, result: 'written' }, value: w.written },
      { labels: { target: w.target, result: 'dropped' }, value: w.dropped },
    ]);
    return [
      counter(
        'fiberlb_access_log_lines_total',
        'Access log lines written, or dropped (queue full, write error).',
        lines,
      ),
    ];
  }
}
