// One client request forwarded to one backend: an undici dispatch handler that streams the
// request body up and the response down with backpressure both ways, and settles every
// failure exactly once with its error class.
//
// Request bodies: a small one (Content-Length up to limits.buffer_body, or chunked while it
// stays under it) is read whole before a backend is picked and a connection taken, so a slow
// small upload holds no upstream connection; a larger one streams. Every body is bounded by
// client_body (gap), client_body_total and min_body_rate. The backend's slot is taken at its
// admission gate (upstream/admission.ts); a request waits there in FIFO order when the
// backend is full, bounded by its pool's max_queue and queue_timeout.
//
// Hot-path notes: the exchange object is at once the undici DispatchOptions and the handler
// (one allocation instead of three), listeners are module-level functions that find the
// exchange through a symbol on req/res (no per-request closures), and aborts go through
// undici's controller (no AbortController).

import type { IncomingMessage, ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { formatDuration } from '../../config/duration.ts';
import type { PoolConfig } from '../../config/model.ts';
import { classifyUpstreamError, type ErrorClass, statusForError } from '../../shared/errors.ts';
import { errorText } from '../../shared/failure.ts';
import { backendAddress, type ListenerState, listenerName, type WorkerEnv } from '../context.ts';
import type { BackendTarget, PickContext } from '../routing/balancer/types.ts';
import type { PoolRuntime } from '../routing/pool-runtime.ts';
import type { RouteTarget } from '../routing/router.ts';
import { queueOf, type Ticket, type Waiter } from '../upstream/admission.ts';
import type { Upstream } from '../upstream/http-pools.ts';
import { outlierFailure, outlierResult } from '../upstream/outlier.ts';
import {
  countRetry,
  countRetryAfterTooLong,
  isIdempotent,
  type RetryBudget,
  retriableFailure,
  retryAfterMs,
} from '../upstream/retry.ts';
import { drainBody, lingerAfterAnswer } from './body-drain.ts';
import { clientIp, lowerCaseNames, type RequestHead, rewriteResponseHeaders } from './headers.ts';
import { BodyBuffer, RATE_TICK_MS, RATE_WINDOW_TICKS, RateWindow, SplicedBody } from './request-body.ts';
import { chunkForTrailers, trailersReach } from './trailers.ts';

/** What an exchange needs from its listener. */
export interface ExchangeOwner {
  readonly env: WorkerEnv;
  /** Closing: every response gets `connection: close`. */
  readonly draining: boolean;
  /** The drain deadline passed and the listener is cutting what is left. */
  readonly deadlinePassed: boolean;
  /** Called once per request, when its response has closed (finished or aborted). */
  requestClosed(ex: HttpExchange): void;
  /** Appended to every proxied response head (HSTS on https), or undefined. */
  readonly responseHeaders: readonly string[] | undefined;
}

const kExchange = Symbol('fiberlb.exchange');
type Tagged<T> = T & { [kExchange]?: HttpExchange };

/** The reason we hand undici when we abort: the real class is kept on the exchange. */
const ABORTED = new Error('request settled by the proxy');

const NO_HEADERS: string[] = [];
/** The prefix of a streamed body that was not buffered first. */
const NO_PREFIX = Buffer.alloc(0);

// How the request body travels (bodyMode).
const NO_BODY = 0;
/** Read whole into `buffered`, then dispatched as one Buffer. */
const BUFFER = 1;
/** The client's stream itself is the upstream body (undici reads it): HTTP/2 only, where
 * undici destroying it resets one stream, not the connection. */
const STREAM = 2;
/** `body` is a SplicedBody we feed: an HTTP/1.x body that streams (from the start, or after
 * it outgrew buffer_body). */
const SPLICE = 3;

export class HttpExchange implements Dispatcher.DispatchHandler, RequestHead, Waiter, PickContext {
  // --- undici DispatchOptions (read by undici's Request; keep other names off this list:
  // origin, query, blocking, upgrade, reset, expectContinue,
  // throwOnError, maxRedirections, typeOfService) ---
  path: string;
  method: string;
  headers: string[] = NO_HEADERS;
  body: Buffer | Readable | null = null;
  headersTimeout: number;
  bodyTimeout: number;
  /** The upstream's constant servername (else undici takes it from the client's Host). */
  servername = '';
  /**
   * Lets undici's h2 client put this request on a connection with others in flight (else a
   * POST waits for an idle one: upstream/h2-mux.ts). It means nothing else to undici here:
   * it never retries for us and our h1 pipelining is 1.
   */
  readonly idempotent = true;

  // --- RequestHead, filled by rewriteRequestHeaders ---
  host: string | undefined = undefined;
  duplicateHost = false;
  forwardedFor: string | undefined = undefined;
  requestId = '';
  contentLength = -1;
  chunked = false;
  otherCoding = false;
  kept = 0;

  readonly owner: ExchangeOwner;
  readonly state: ListenerState;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /**
   * An HTTP/2 request (Node's compat objects behind the same types): no Connection header may
   * be sent, no status message, and a stream — not the connection — ends a failed exchange.
   */
  readonly h2: boolean;
  /** Normalized peer address (for logs and XFF). */
  peerIp = '';
  /** The peer is in trusted_proxies (its X-Forwarded-For names the client). */
  peerTrusted = false;
  /** PickContext: backends a retry must not pick again (none yet). */
  exclude: ReadonlySet<BackendTarget> | undefined = undefined;
  // --- telemetry (metrics, access log): numbers set as the request goes, read once at its end.
  /** The route that matched (set by the listener), for the route/pool labels. */
  route: RouteTarget | undefined = undefined;
  /** performance.now() at arrival, at dispatch to undici, on the upstream socket, at the
   * upstream response head and its end (0 = did not happen). */
  readonly startedAt: number;
  dispatchedAt = 0;
  sentAt = 0;
  firstByteAt = 0;
  upstreamEndAt = 0;
  /** Response body bytes relayed from the backend. */
  responseBytes = 0;
  /** The failure this request settled with, if any. */
  errorClass: ErrorClass | undefined = undefined;
  private pool: PoolRuntime | undefined = undefined;
  /** The backend picked for this request (kept after release, for the failure line). */
  private target: BackendTarget | undefined = undefined;
  /** The target's in-flight count is held (acquire) and not yet released. */
  private holding = false;
  private upstream: Upstream | undefined = undefined;
  /** A slot at the upstream's gate is held and not yet released. */
  private slot = false;
  /** Handed to undici (its callbacks will release what we hold). */
  private dispatched = false;
  /** Waiting at the upstream's gate. */
  private ticket: Ticket | null = null;
  private controller: Dispatcher.DispatchController | null = null;
  /** The client side is decided: response ended, or a failure counted and answered. */
  private settled = false;
  private bodyMode = NO_BODY;
  private buffered: BodyBuffer | null = null;
  /** client_body: gap between body chunks. */
  private bodyTimer: NodeJS.Timeout | undefined = undefined;
  /** client_body_total and min_body_rate, ticking every RATE_TICK_MS. */
  private progressTimer: NodeJS.Timeout | undefined = undefined;
  private bodyStartedAt = 0;
  private rate: RateWindow | null = null;
  private rateTicks = 0;
  private bodyBytes = 0;
  private bodyHooked = false;
  private drainHooked = false;
  // The response head, held until the first body byte or the end (Node would not send it
  // earlier either): until then a failure can still answer 502 instead of a cut connection.
  private headStatus = 0;
  private headMessage: string | undefined = undefined;
  private headHeaders: Array<string | string[]> | undefined = undefined;
  // --- retries (upstream/retry.ts) ---
  /** The pool's budget, counted from start() to the response's close. */
  private budget: RetryBudget | undefined = undefined;
  /** Tries after the first. */
  private attempt = 0;
  /** Counted in the budget's `retrying` (from the first retry to the close). */
  private onRetry = false;
  /** ≥ 0: a status retry was decided and the upstream aborted; wait this long, then retry. */
  private retryDelay = -1;
  /** The next try goes to the same backend (nothing else left; see mayRetry). */
  private sameBackend = false;
  /** The failure the next try answers if no other backend is left. */
  private lastClass: ErrorClass = 'upstream_error';
  private lastError: unknown = undefined;

  constructor(owner: ExchangeOwner, state: ListenerState, req: IncomingMessage, res: ServerResponse) {
    this.owner = owner;
    this.state = state;
    this.startedAt = performance.now();
    this.req = req;
    this.res = res;
    this.h2 = req.httpVersionMajor === 2;
    this.path = req.url ?? '/';
    this.method = req.method ?? 'GET';
    this.headersTimeout = state.listener.timeouts.upstreamResponseMs;
    this.bodyTimeout = state.listener.timeouts.upstreamBodyMs;
    (res as Tagged<ServerResponse>)[kExchange] = this;
    res.on('close', onResClose);
  }

  /** Headers added to the proxy's own error answer (429: Retry-After, RateLimit-*). */
  private errorHeaders: string[] | undefined = undefined;

  /** Rate limits passed (now, or once a lease answered): go on unless the client left meanwhile. */
  proceed(pool: PoolRuntime, expectContinue: boolean): void {
    if (this.settled) return;
    try {
      if (expectContinue) this.res.writeContinue();
      this.start(pool);
    } catch (err) {
      // A bug must cost one request, not the worker.
      this.fail('internal_error', err);
    }
  }

  /** Over a rate limit: 429 rate_limited with `headers`, nothing forwarded. */
  refuse(headers: string[], message: string): void {
    this.errorHeaders = headers;
    this.fail('rate_limited', message);
  }

  /** The backend picked, if any. */
  get backend(): BackendTarget | undefined {
    return this.target;
  }

  /** Request body bytes read from the client so far. */
  get requestBytes(): number {
    return this.bodyBytes;
  }

  /** Does the client send a body (Content-Length > 0 or chunked)? */
  hasBody(): boolean {
    return this.chunked || this.contentLength > 0;
  }

  /**
   * PickContext: the client identity for ip_hash / maglev. Computed only when the pool's
   * algorithm asks, so round robin never splits X-Forwarded-For.
   */
  hashKey(): string {
    return clientIp(this.peerIp, this.peerTrusted, this.forwardedFor, this.state.listener.trustedProxies);
  }

  /**
   * Forward the request to a backend of `pool`. A small body is read whole first; the backend
   * is picked only then (the exchange is its own PickContext, so the pick allocates nothing).
   */
  start(pool: PoolRuntime): void {
    this.pool = pool;
    this.budget = pool.retryBudget;
    this.budget.active++;
    if (!this.hasBody()) {
      this.send();
      return;
    }
    // undici's HTTP/2 client ends a GET/HEAD stream with its headers and then fails writing
    // the body (tearing down the client's request with it): refuse it cleanly instead.
    if (pool.config.http2 && (this.method === 'GET' || this.method === 'HEAD')) {
      this.fail('unsupported_request', `a ${this.method} request body cannot be sent to an HTTP/2 backend`);
      return;
    }
    const req = this.req;
    (req as Tagged<IncomingMessage>)[kExchange] = this;
    const l = this.state.listener;
    this.startBodyTimers();
    const limit = l.limits.bufferBodyBytes;
    if (limit > 0 && (this.chunked || this.contentLength <= limit)) {
      this.bodyMode = BUFFER;
      this.buffered = new BodyBuffer(this.chunked ? limit : this.contentLength);
      this.bodyHooked = true;
      req.on('data', onReqData);
      req.on('end', onReqEnd);
      return;
    }
    if (this.h2) {
      this.bodyMode = STREAM;
      this.body = req;
    } else {
      // Never the client's own stream: undici destroys the body it has when the backend
      // answers early, and a destroyed request stalls Node's parser on the connection.
      this.bodyMode = SPLICE;
      this.body = new SplicedBody(req, NO_PREFIX);
    }
    this.send();
  }

  /** Pick the backend, take a slot at its gate (or wait for one), dispatch. */
  private send(): void {
    const pool = this.pool!;
    const target = pool.pick(this);
    if (target === undefined) {
      // A retry found no other backend: the client gets the failure it would have had.
      if (this.attempt > 0) this.fail(this.lastClass, this.lastError);
      else this.fail('no_healthy_backend');
      return;
    }
    this.target = target;
    this.holding = true;
    pool.acquire(target);
    const up = this.owner.env.upstreams.get(target, this.state.listener.timeouts.connectMs, pool.config);
    this.upstream = up;
    this.servername = up.servername;
    if (pool.config.http2) lowerCaseNames(this.headers);
    // Circuit breaking: the backend's max_requests / max_connections (this worker's share).
    up.gate.limit(pool.limitOf(target));
    if (up.gate.tryAcquire()) {
      this.slot = true;
      this.dispatch();
      return;
    }
    const ticket = up.gate.enqueue(this, queueOf(pool.config));
    if (ticket === undefined) {
      this.fail(
        'queue_full',
        `${up.gate.inflight} requests in flight, max_queue ${pool.config.maxQueue} waiting`,
      );
      return;
    }
    this.ticket = ticket;
  }

  private dispatch(): void {
    this.dispatched = true;
    this.dispatchedAt = performance.now();
    this.upstream!.dispatcherFor(this.body).dispatch(this, this);
  }

  /**
   * Go on from an event (body complete, slot handed over) rather than from the listener's
   * request handler, which guards the first step: a bug must still cost one request only.
   */
  private sendLater(): void {
    try {
      if (this.slot) this.dispatch();
      else this.send();
    } catch (err) {
      // Whatever undici did not take is given back by fail(); release() runs only once.
      this.dispatched = false;
      this.fail('internal_error', err);
    }
  }

  // --- admission (Waiter) ---

  admitted(): void {
    this.ticket = null;
    this.slot = true;
    this.sendLater();
  }

  queueTimedOut(): void {
    this.ticket = null;
    this.fail(
      'queue_timeout',
      `waited ${formatDuration(this.pool!.config.queueTimeoutMs)} for one of ${this.upstream!.gate.capacity} connections`,
    );
  }

  // --- undici handler ---

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    this.sentAt = performance.now();
    if (this.settled) {
      controller.abort(ABORTED);
      return;
    }
    // Hook the body only now: a 'data' listener switches the stream to flowing, and undici
    // attaches its own right after this call (same tick), so no chunk can be missed.
    if (this.bodyMode !== NO_BODY && !this.bodyHooked) {
      this.bodyHooked = true;
      this.req.on('data', onReqData);
      if (this.bodyMode === SPLICE) this.req.on('end', onReqEnd);
    }
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    statusMessage?: string,
  ): void {
    // 1xx (e.g. 103 Early Hints) are not relayed; Node answered 100-continue itself.
    if (statusCode < 200 || this.settled) return;
    this.firstByteAt = performance.now();
    const pool = this.pool!;
    outlierResult(pool.config.outlierDetection, this.target!, statusCode);
    if (statusCode >= 500 && pool.config.retry.onStatus.includes(statusCode) && this.statusRetry(headers)) {
      controller.abort(ABORTED);
      return;
    }
    const max = this.state.listener.limits.maxHeaders;
    // A client that half-closed cannot send another request: say the connection ends.
    // (res.socket is null while queued behind a pipelined response.)
    const close = !this.h2 && (this.owner.draining || this.res.socket?.readableEnded === true);
    const out = rewriteResponseHeaders(headers, this.requestId, close, max);
    if (out === undefined) {
      this.fail('upstream_protocol_error', new Error(`response head has more than ${max} headers`));
      controller.abort(ABORTED);
      return;
    }
    const extra = this.owner.responseHeaders;
    if (extra !== undefined) for (let i = 0; i < extra.length; i++) out.push(extra[i]!);
    // Only an HTTP/2 backend can send trailers with a Content-Length (trailers.ts).
    if (this.pool!.config.http2 && headers['content-length'] !== undefined)
      chunkForTrailers(out, this.req, this.headers, statusCode);
    this.headStatus = statusCode;
    // HTTP/2 has no reason phrase (Node warns when given one).
    this.headMessage = this.h2 ? undefined : statusMessage;
    this.headHeaders = out;
  }

  /** Write the held response head; false (failure settled, upstream aborted) if Node refuses it. */
  private writeHead(controller: Dispatcher.DispatchController): boolean {
    const out = this.headHeaders!;
    this.headHeaders = undefined;
    try {
      if (this.headMessage) this.res.writeHead(this.headStatus, this.headMessage, out);
      else this.res.writeHead(this.headStatus, out);
      return true;
    } catch (err) {
      // Node rejects what llhttp accepted (bad status code or header characters).
      this.fail('upstream_protocol_error', err);
      controller.abort(ABORTED);
      return false;
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.headHeaders !== undefined && !this.writeHead(controller)) return;
    if (this.settled) return;
    this.responseBytes += chunk.length;
    if (this.res.write(chunk)) return;
    controller.pause();
    if (!this.drainHooked) {
      this.drainHooked = true;
      this.res.on('drain', onResDrain);
    }
  }

  onResponseEnd(
    controller: Dispatcher.DispatchController,
    trailers: Record<string, string | string[] | undefined>,
  ): void {
    this.upstreamEndAt = performance.now();
    this.release();
    if (this.settled) return;
    if (this.headHeaders !== undefined && !this.writeHead(controller)) return;
    // Trailers reach an HTTP/1.x client only on a chunked response (else counted, dropped).
    const t = trailersOf(controller, trailers);
    if (t !== undefined && trailersReach(this.res)) {
      try {
        this.res.addTrailers(t as Record<string, string>);
      } catch (err) {
        // Node refuses what the upstream parser accepted: cut, never end without them.
        this.fail('upstream_protocol_error', err);
        return;
      }
    }
    this.settled = true;
    this.stopBodyTimer();
    this.res.end();
    // The backend answered before it had all of the client's body. Node's parser goes on to
    // the next request on this connection only once this body is read to its end.
    if (this.bodyMode === SPLICE && !this.req.readableEnded) {
      // Only bytes already off the socket are left (the stream may be paused): drop them.
      if (this.req.complete) this.req.resume();
      // The client still sends: read the rest (bounded), or close (body-drain.ts). A draining
      // listener closes this connection after the response anyway.
      else if (!this.owner.draining) this.drainRest();
    }
  }

  private drainRest(): void {
    const l = this.state.listener;
    const total = l.timeouts.clientBodyTotalMs;
    drainBody(this.req, this.res, this.chunked ? -1 : this.contentLength - this.bodyBytes, {
      maxBytes: l.limits.drainBodyBytes,
      gapMs: l.timeouts.clientBodyMs,
      // bodyStartedAt is set whenever client_body_total is on (startBodyTimers).
      deadlineMs: total > 0 ? Math.max(1, total - (Date.now() - this.bodyStartedAt)) : 0,
    });
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    // `_controller` is undefined when the request failed before reaching a socket.
    this.release();
    if (this.retryDelay >= 0) {
      // We aborted it for a status retry (statusRetry): go on once it is given back.
      const delay = this.retryDelay;
      this.retryDelay = -1;
      this.retryAfter(delay, true);
      return;
    }
    if (this.settled) return; // we aborted it ourselves: the failure is already counted
    // A request body that broke off (the client left mid-body) is the client's failure, even
    // when undici reports it first.
    const req = this.req;
    const cls: ErrorClass =
      this.clientGone() || (req.destroyed && !req.complete) ? this.goneClass() : classifyUpstreamError(err);
    if (this.target !== undefined) outlierFailure(this.pool!.config.outlierDetection, this.target, cls);
    // A refused connection cost the backend nothing, so its retry is outside the budget (which
    // exists so retries never add load to backends in trouble); every other retry is in it.
    const free = cls === 'upstream_connect_refused';
    if (
      this.mayRetry(cls) &&
      retriableFailure(cls, isIdempotent(this.method)) &&
      (free || this.budget!.allow())
    ) {
      this.lastClass = cls;
      this.lastError = err;
      countRetry(false);
      this.retryAfter(0, !free);
      return;
    }
    this.fail(cls, err);
  }

  // --- retries ---

  /**
   * Whether another try is possible at all: attempts left, nothing of a response reached the
   * client (the held head was not written) and the body can be sent again (none, or read
   * whole into memory — a streamed body is gone once sent).
   */
  private mayRetry(cls?: ErrorClass): boolean {
    const pool = this.pool;
    if (pool === undefined || this.attempt >= pool.config.retry.attempts) return false;
    if (this.res.headersSent || this.clientGone()) return false;
    if (this.bodyMode !== NO_BODY && this.bodyMode !== BUFFER) return false;
    // Another backend must be there to try (the ones tried, and this one, are excluded) —
    // except for a reset pooled socket (the keep-alive race): a new connection to the same
    // backend is the fix, so a one-backend pool retries there.
    this.sameBackend = pool.availableCount() <= (this.exclude?.size ?? 0) + 1;
    return !this.sameBackend || cls === 'upstream_reset';
  }

  /** A status in retry.on_status: retry (true) if allowed and Retry-After is short enough. */
  private statusRetry(headers: Record<string, string | string[] | undefined>): boolean {
    if (!isIdempotent(this.method) || !this.mayRetry()) return false;
    const wait = retryAfterMs(headers['retry-after']) ?? 0;
    if (wait > this.pool!.config.retry.maxRetryAfterMs) {
      countRetryAfterTooLong();
      return false;
    }
    if (!this.budget!.allow()) return false;
    this.lastClass = 'upstream_error';
    this.lastError = undefined;
    this.retryDelay = wait;
    countRetry(true);
    return true;
  }

  /** Try another backend after `delayMs` (the one just tried is excluded from the pick). */
  private retryAfter(delayMs: number, budgeted: boolean): void {
    this.attempt++;
    if (budgeted && !this.onRetry) {
      this.onRetry = true;
      this.budget!.retrying++;
    }
    // Allocated only on this path: the first try uses no exclude set.
    if (!this.sameBackend) {
      const tried = (this.exclude as Set<BackendTarget> | undefined) ?? new Set<BackendTarget>();
      tried.add(this.target!);
      this.exclude = tried;
    }
    this.controller = null;
    this.dispatched = false;
    this.headStatus = 0;
    this.headMessage = undefined;
    this.headHeaders = undefined;
    this.upstream = undefined;
    // Not from inside undici's callback: the next dispatch starts on a clean stack.
    if (delayMs === 0) setImmediate(onRetryTimer, this);
    else setTimeout(onRetryTimer, delayMs, this).unref();
  }

  /** The retry timer fired. */
  onRetryDue(): void {
    if (this.settled) return;
    this.sendLater();
  }

  // --- failures ---

  /**
   * Settle the client side with a failure: count and log it once, then answer with the
   * class's status, or — if the response already started or the client left — cut the
   * connection (a truncated response must never look complete).
   */
  fail(cls: ErrorClass, err?: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.errorClass = cls;
    this.stopBodyTimer();
    if (!this.dispatched) {
      // Never reached undici (reading the body, waiting at the gate, refused): nothing will
      // call back, so give back what is held here.
      if (this.ticket !== null) {
        this.ticket.cancel();
        this.ticket = null;
      }
      this.release();
    }
    const t = this.target;
    this.owner.env.failures.report(cls, 'http request failed', {
      listener: listenerName(this.state),
      backend: t?.key,
      backend_address: t === undefined ? undefined : backendAddress(t),
      client: this.peerIp,
      request_id: this.requestId,
      error: errorText(err),
      method: this.method,
      // Tries on other backends before this failure (absent when none).
      retries: this.attempt > 0 ? this.attempt : undefined,
    });
    const res = this.res;
    this.headHeaders = undefined;
    if (cls === 'client_abort' || cls === 'drain_deadline' || res.headersSent) {
      res.destroy();
      return;
    }
    // Close where the request's framing is in doubt or its body unread.
    const close =
      this.owner.draining ||
      (this.hasBody() && !this.req.complete) ||
      cls === 'client_bad_request' ||
      cls === 'client_timeout' ||
      cls === 'header_too_large' ||
      cls === 'unsupported_request';
    // No healthy backend: say when to come back (rise × interval, at least 1 s).
    const extra =
      cls === 'no_healthy_backend'
        ? ['retry-after', String(retryAfterSeconds(this.pool?.config))]
        : this.errorHeaders;
    sendError(res, statusForError(cls), `${cls}\n`, this.requestId, close && !this.h2, extra);
    this.lingerIfBodyComing();
  }

  /**
   * After an answer of our own with `Connection: close`: a body the client is still sending
   * (well framed, just unread) is read and dropped until it closes too (body-drain.ts), so
   * the answer is not lost to a reset.
   */
  private lingerIfBodyComing(): void {
    if (this.h2 || !this.hasBody() || this.req.complete || this.req.destroyed) return;
    if (this.errorClass === 'client_bad_request' || this.errorClass === 'header_too_large') return;
    lingerAfterAnswer(this.req, this.res);
  }

  /** Answer from the proxy itself without a failure (a redirect): settles the exchange. */
  reply(status: number, headers: string[], text: string): void {
    if (this.settled) return;
    this.settled = true;
    const res = this.res;
    const body = text;
    headers.push(
      'content-type',
      'text/plain; charset=utf-8',
      'content-length',
      String(Buffer.byteLength(body)),
    );
    if (this.requestId !== '') headers.push('x-request-id', this.requestId);
    // An unread request body would be parsed as the next request: close after answering.
    if (!this.h2 && (this.owner.draining || (this.hasBody() && !this.req.complete)))
      headers.push('connection', 'close');
    res.writeHead(status, headers);
    res.end(body);
    this.lingerIfBodyComing();
  }

  /**
   * Node's parser failed on this connection while this exchange was in flight (a malformed or
   * cut-off request body, a reset): settle it with the client's class, once.
   */
  onParseError(code: string, err: Error): void {
    if (this.settled) return; // already answered (e.g. 501 before llhttp refused the coding)
    // The client closed (or reset) before its body was complete: it is gone, not malformed.
    if (code === 'HPE_INVALID_EOF_STATE' || code === 'ECONNRESET' || code === 'EPIPE') {
      this.abort(this.goneClass());
      return;
    }
    this.fail(clientErrorClass(code), err);
    this.controller?.abort(ABORTED);
  }

  /** The pool has no backend to offer (checked before the body is read): 503 with Retry-After. */
  unavailable(pool: PoolRuntime | undefined): void {
    this.pool = pool;
    this.fail('no_healthy_backend');
  }

  /** Fail and stop the upstream request (client gone, body too large or too slow). */
  abort(cls: ErrorClass, err?: unknown): void {
    this.fail(cls, err);
    // Without a controller yet the request is still queued: onRequestStart aborts it.
    this.controller?.abort(ABORTED);
  }

  /** Why the client side is gone: the client left, or we cut it at the drain deadline. */
  private goneClass(): ErrorClass {
    return this.owner.deadlinePassed ? 'drain_deadline' : 'client_abort';
  }

  private clientGone(): boolean {
    const s = this.res.socket;
    return this.res.destroyed || s?.destroyed === true;
  }

  private release(): void {
    if (this.holding) {
      this.holding = false;
      this.pool!.release(this.target!);
    }
    if (this.slot) {
      this.slot = false;
      // May dispatch the oldest waiter right here.
      this.upstream!.gate.release();
    }
  }

  private startBodyTimers(): void {
    const t = this.state.listener.timeouts;
    if (t.clientBodyMs > 0) this.bodyTimer = setTimeout(onBodyTimeout, t.clientBodyMs, this).unref();
    if (t.clientBodyTotalMs > 0 || this.state.listener.limits.minBodyRate > 0) {
      this.bodyStartedAt = Date.now();
      this.progressTimer = setTimeout(onBodyProgress, this.nextProgressDelay(0), this).unref();
    }
  }

  private stopBodyTimer(): void {
    if (this.bodyTimer !== undefined) {
      clearTimeout(this.bodyTimer);
      this.bodyTimer = undefined;
    }
    if (this.progressTimer !== undefined) {
      clearTimeout(this.progressTimer);
      this.progressTimer = undefined;
    }
  }

  /**
   * The proxy, not the client, holds the body back: still waiting for the upstream (gate,
   * connect) or the upstream is not reading as fast as the client sends. A buffered body is
   * read as it comes, so its pace is always the client's.
   */
  private holdingBodyBack(): boolean {
    if (this.bodyMode === BUFFER) return false;
    const req = this.req;
    return this.controller === null || req.readableFlowing === false || req.readableLength > 0;
  }

  /** The response closed: normal end, or the client went away first. */
  onClientClose(): void {
    if (!this.settled) this.abort(this.goneClass());
    const b = this.budget;
    if (b !== undefined) {
      this.budget = undefined;
      b.active--;
      if (this.onRetry) b.retrying--;
    }
    this.owner.requestClosed(this);
  }

  onClientDrain(): void {
    this.controller?.resume();
  }

  /** A request body chunk arrived (STREAM: undici reads the same stream). */
  onBodyChunk(chunk: Buffer): void {
    if (this.settled) return;
    this.bodyTimer?.refresh();
    this.bodyBytes += chunk.length;
    if (this.chunked) {
      // Content-Length was checked up front; Node enforces it.
      const max = this.state.listener.limits.maxBodyBytes;
      if (max > 0 && this.bodyBytes > max) {
        this.abort('body_too_large');
        return;
      }
    }
    if (this.bodyMode === BUFFER) {
      if (this.buffered!.add(chunk)) return;
      // A chunked body outgrew buffer_body: stream what was read, then the rest.
      const spliced = new SplicedBody(this.req, this.buffered!.bytes());
      this.buffered = null;
      this.bodyMode = SPLICE;
      this.body = spliced;
      spliced.feed(chunk);
      this.sendLater();
    } else if (this.bodyMode === SPLICE) (this.body as SplicedBody).feed(chunk);
  }

  /** The client's body ended (BUFFER, SPLICE; undici sees STREAM's end itself). */
  onBodyEnd(): void {
    if (this.settled) return;
    if (this.bodyMode === SPLICE) {
      (this.body as SplicedBody).push(null);
      return;
    }
    if (this.bodyMode !== BUFFER) return;
    this.stopBodyTimer();
    this.body = this.buffered!.bytes();
    this.buffered = null;
    this.sendLater();
  }

  /** The body gap timer fired. */
  onBodyIdle(): void {
    this.bodyTimer = undefined;
    const req = this.req;
    if (this.settled || req.complete) return;
    // Not the client's fault while we are the slow side: wait again.
    if (this.holdingBodyBack()) {
      this.bodyTimer = setTimeout(onBodyTimeout, this.state.listener.timeouts.clientBodyMs, this).unref();
      return;
    }
    this.abort(
      'client_timeout',
      `client_body: no body data for ${formatDuration(this.state.listener.timeouts.clientBodyMs)}`,
    );
  }

  /** The progress timer fired: client_body_total, then min_body_rate over its window. */
  onBodyProgress(): void {
    this.progressTimer = undefined;
    if (this.settled || this.req.complete) return;
    const l = this.state.listener;
    const elapsed = Date.now() - this.bodyStartedAt;
    const total = l.timeouts.clientBodyTotalMs;
    if (total > 0 && elapsed >= total) {
      this.abort(
        'client_timeout',
        `client_body_total: body not complete after ${formatDuration(total)} (${this.bodyBytes} bytes)`,
      );
      return;
    }
    const min = l.limits.minBodyRate;
    // A wake-up for the total deadline may come between two rate ticks: judge only on ticks.
    if (min > 0 && elapsed >= (this.rateTicks + 1) * RATE_TICK_MS) {
      this.rateTicks++;
      // The window exists only for bodies slower than one tick.
      this.rate ??= new RateWindow(0);
      if (this.holdingBodyBack()) this.rate.restart(this.bodyBytes);
      else {
        const got = this.rate.tick(this.bodyBytes);
        const windowS = (RATE_TICK_MS * RATE_WINDOW_TICKS) / 1000;
        if (got >= 0 && got < min * windowS) {
          this.abort(
            'client_timeout',
            `min_body_rate: ${Math.floor(got / windowS)} B/s over the last ${windowS}s, below ${min} B/s`,
          );
          return;
        }
      }
    }
    this.progressTimer = setTimeout(onBodyProgress, this.nextProgressDelay(elapsed), this).unref();
  }

  /** Delay to the next progress wake-up: the next rate tick or the total deadline. */
  private nextProgressDelay(elapsed: number): number {
    const total = this.state.listener.timeouts.clientBodyTotalMs;
    const toTotal = total > 0 ? total - elapsed : Number.POSITIVE_INFINITY;
    const toTick =
      this.state.listener.limits.minBodyRate > 0
        ? (this.rateTicks + 1) * RATE_TICK_MS - elapsed
        : Number.POSITIVE_INFINITY;
    return Math.max(1, Math.min(toTotal, toTick));
  }
}

/**
 * The response's trailers, or undefined when it has none. undici 7 hands an HTTP/2 response's
 * trailers to onResponseEnd as {} (it parses Node's trailer object as if it were a raw list);
 * the object itself is left on the controller as `rawTrailers` (an array for HTTP/1.1).
 */
function trailersOf(
  controller: Dispatcher.DispatchController,
  trailers: Record<string, string | string[] | undefined>,
): Record<string, string | string[] | undefined> | undefined {
  for (const _ in trailers) return trailers;
  const raw = (controller as { rawTrailers?: unknown }).rawTrailers;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return undefined;
  for (const _ in raw) return raw as Record<string, string | string[]>;
  return undefined;
}

/** The exchange a response belongs to (undefined for Node's own answers). */
export function exchangeOf(res: ServerResponse): HttpExchange | undefined {
  return (res as Tagged<ServerResponse>)[kExchange];
}

/** Error class for a Node HTTP parser / server error on a client connection. */
export function clientErrorClass(code: string): ErrorClass {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return 'header_too_large';
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return 'client_timeout';
    // llhttp refuses a coding after `chunked`, and a last coding other than chunked.
    case 'HPE_INVALID_TRANSFER_ENCODING':
      return 'unsupported_request';
    default:
      return 'client_bad_request';
  }
}

function onResClose(this: Tagged<ServerResponse>): void {
  this[kExchange]!.onClientClose();
}

function onResDrain(this: Tagged<ServerResponse>): void {
  this[kExchange]!.onClientDrain();
}

function onReqData(this: Tagged<IncomingMessage>, chunk: Buffer): void {
  this[kExchange]?.onBodyChunk(chunk);
}

function onReqEnd(this: Tagged<IncomingMessage>): void {
  this[kExchange]?.onBodyEnd();
}

function onBodyTimeout(ex: HttpExchange): void {
  ex.onBodyIdle();
}

function onBodyProgress(ex: HttpExchange): void {
  ex.onBodyProgress();
}

function onRetryTimer(ex: HttpExchange): void {
  ex.onRetryDue();
}

/**
 * Retry-After for a pool with no healthy backend: the soonest a down backend can be back
 * (rise × interval of its health check), at least 1 s.
 */
export function retryAfterSeconds(pool: PoolConfig | undefined): number {
  const hc = pool?.healthCheck;
  return hc === undefined ? 1 : Math.max(1, Math.ceil((hc.rise * hc.intervalMs) / 1000));
}

/**
 * A short plain-text answer from the proxy itself. `connection: close` only when the
 * connection cannot be reused (unread request body, protocol trouble, draining).
 */
export function sendError(
  res: ServerResponse,
  status: number,
  text: string,
  requestId: string,
  close: boolean,
  extra?: readonly string[],
): void {
  const body = `${status} ${STATUS_CODES[status] ?? ''}: ${text}`;
  const headers: string[] = [
    'content-type',
    'text/plain; charset=utf-8',
    'content-length',
    String(Buffer.byteLength(body)),
  ];
  if (requestId !== '') headers.push('x-request-id', requestId);
  if (close) headers.push('connection', 'close');
  if (extra !== undefined) headers.push(...extra);
  res.writeHead(status, headers);
  res.end(body);
}
