// One client request forwarded to one backend: an undici dispatch handler that streams the
// request body up and the response down with backpressure both ways, and settles every
// failure exactly once with its error class.
//
// Hot-path notes: the exchange object is at once the undici DispatchOptions and the handler
// (one allocation instead of three), listeners are module-level functions that find the
// exchange through a symbol on req/res (no per-request closures), and aborts go through
// undici's controller (no AbortController).

import type { IncomingMessage, ServerResponse } from 'node:http';
import { STATUS_CODES } from 'node:http';
import type { Dispatcher } from 'undici';
import { classifyUpstreamError, type ErrorClass, statusForError } from '../../shared/errors.ts';
import { errorText } from '../../shared/failure.ts';
import { backendAddress, type ListenerState, listenerName, type WorkerEnv } from '../context.ts';
import type { BackendTarget } from '../routing/balancer/types.ts';
import type { PoolRuntime } from '../routing/pool-runtime.ts';
import { type RequestHead, rewriteResponseHeaders } from './headers.ts';

/** What an exchange needs from its listener. */
export interface ExchangeOwner {
  readonly env: WorkerEnv;
  /** Closing: every response gets `connection: close`. */
  readonly draining: boolean;
  /** The drain deadline passed and the listener is cutting what is left. */
  readonly deadlinePassed: boolean;
  /** Called once per request, when its response has closed (finished or aborted). */
  requestClosed(): void;
}

const kExchange = Symbol('fiberlb.exchange');
type Tagged<T> = T & { [kExchange]?: HttpExchange };

/** The reason we hand undici when we abort: the real class is kept on the exchange. */
const ABORTED = new Error('request settled by the proxy');

const NO_HEADERS: string[] = [];

export class HttpExchange implements Dispatcher.DispatchHandler, RequestHead {
  // --- undici DispatchOptions (read by undici's Request; keep other names off this list:
  // origin, query, idempotent, blocking, upgrade, reset, expectContinue, servername,
  // throwOnError, maxRedirections, typeOfService) ---
  path: string;
  method: string;
  headers: string[] = NO_HEADERS;
  body: IncomingMessage | null = null;
  headersTimeout: number;
  bodyTimeout: number;

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
  /** Normalized peer address (for logs and XFF). */
  peerIp = '';
  private pool: PoolRuntime | undefined = undefined;
  /** The backend picked for this request (kept after release, for the failure line). */
  private target: BackendTarget | undefined = undefined;
  /** The target's in-flight count is held (acquire) and not yet released. */
  private holding = false;
  private controller: Dispatcher.DispatchController | null = null;
  /** The client side is decided: response ended, or a failure counted and answered. */
  private settled = false;
  private bodyTimer: NodeJS.Timeout | undefined = undefined;
  private bodyBytes = 0;
  private bodyHooked = false;
  private drainHooked = false;
  // The response head, held until the first body byte or the end (Node would not send it
  // earlier either): until then a failure can still answer 502 instead of a cut connection.
  private headStatus = 0;
  private headMessage: string | undefined = undefined;
  private headHeaders: Array<string | string[]> | undefined = undefined;

  constructor(owner: ExchangeOwner, state: ListenerState, req: IncomingMessage, res: ServerResponse) {
    this.owner = owner;
    this.state = state;
    this.req = req;
    this.res = res;
    this.path = req.url ?? '/';
    this.method = req.method ?? 'GET';
    this.headersTimeout = state.listener.timeouts.upstreamResponseMs;
    this.bodyTimeout = state.listener.timeouts.upstreamBodyMs;
    (res as Tagged<ServerResponse>)[kExchange] = this;
    res.on('close', onResClose);
  }

  /** Does the client send a body (Content-Length > 0 or chunked)? */
  hasBody(): boolean {
    return this.chunked || this.contentLength > 0;
  }

  /** Send the request to `target` (already picked from `pool`) through `upstream`. */
  forward(pool: PoolRuntime, target: BackendTarget, upstream: Dispatcher): void {
    this.pool = pool;
    this.target = target;
    this.holding = true;
    pool.acquire(target);
    if (this.hasBody()) {
      this.body = this.req;
      (this.req as Tagged<IncomingMessage>)[kExchange] = this;
      const ms = this.state.listener.timeouts.clientBodyMs;
      if (ms > 0) this.bodyTimer = setTimeout(onBodyTimeout, ms, this).unref();
    }
    upstream.dispatch(this, this);
  }

  // --- undici handler ---

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.settled) {
      controller.abort(ABORTED);
      return;
    }
    // Hook the body only now: a 'data' listener switches the stream to flowing, and undici
    // attaches its own right after this call (same tick), so no chunk can be missed.
    if (this.body !== null && !this.bodyHooked) {
      this.bodyHooked = true;
      this.body.on('data', onReqData);
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
    const max = this.state.listener.limits.maxHeaders;
    // A client that half-closed cannot send another request: say the connection ends.
    // (res.socket is null while queued behind a pipelined response.)
    const close = this.owner.draining || this.res.socket?.readableEnded === true;
    const out = rewriteResponseHeaders(headers, this.requestId, close, max);
    if (out === undefined) {
      this.fail('upstream_protocol_error', new Error(`response head has more than ${max} headers`));
      controller.abort(ABORTED);
      return;
    }
    this.headStatus = statusCode;
    this.headMessage = statusMessage;
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
    this.release();
    if (this.settled) return;
    if (this.headHeaders !== undefined && !this.writeHead(controller)) return;
    this.settled = true;
    this.stopBodyTimer();
    // Trailers reach the client only on a chunked response (Node drops them otherwise).
    for (const _ in trailers) {
      this.res.addTrailers(trailers as Record<string, string>);
      break;
    }
    this.res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    // `_controller` is undefined when the request failed before reaching a socket.
    this.release();
    if (this.settled) return; // we aborted it ourselves: the failure is already counted
    // A request body that broke off (the client left mid-body) is the client's failure, even
    // when undici reports it first.
    const req = this.req;
    const cls: ErrorClass =
      this.clientGone() || (req.destroyed && !req.complete) ? this.goneClass() : classifyUpstreamError(err);
    // Retry seam (later issue): when nothing reached the client (!res.headersSent) and the
    // body was not consumed (body === null), pick another backend and dispatch again here.
    this.fail(cls, err);
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
    this.stopBodyTimer();
    const t = this.target;
    this.owner.env.failures.report(cls, 'http request failed', {
      listener: listenerName(this.state),
      backend: t?.key,
      backend_address: t === undefined ? undefined : backendAddress(t),
      client: this.peerIp,
      request_id: this.requestId,
      error: errorText(err),
      method: this.method,
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
    sendError(res, statusForError(cls), `${cls}\n`, this.requestId, close);
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

  /** Fail and stop the upstream request (client gone, body too large or too slow). */
  abort(cls: ErrorClass): void {
    this.fail(cls);
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
    if (!this.holding) return;
    this.holding = false;
    this.pool!.release(this.target!);
  }

  private stopBodyTimer(): void {
    if (this.bodyTimer !== undefined) {
      clearTimeout(this.bodyTimer);
      this.bodyTimer = undefined;
    }
  }

  /** The response closed: normal end, or the client went away first. */
  onClientClose(): void {
    if (!this.settled) this.abort(this.goneClass());
    this.owner.requestClosed();
  }

  onClientDrain(): void {
    this.controller?.resume();
  }

  /** A request body chunk passed by (undici reads the same stream). */
  onBodyChunk(length: number): void {
    this.bodyTimer?.refresh();
    if (!this.chunked) return; // Content-Length was checked up front; Node enforces it
    this.bodyBytes += length;
    const max = this.state.listener.limits.maxBodyBytes;
    if (max > 0 && this.bodyBytes > max) this.abort('body_too_large');
  }

  /** The body gap timer fired. */
  onBodyIdle(): void {
    this.bodyTimer = undefined;
    const req = this.req;
    if (this.settled || req.complete) return;
    // Not the client's fault while we are the slow side (upstream backpressure, or still
    // connecting): wait again.
    if (this.controller === null || req.readableFlowing === false || req.readableLength > 0) {
      this.bodyTimer = setTimeout(onBodyTimeout, this.state.listener.timeouts.clientBodyMs, this).unref();
      return;
    }
    this.abort('client_timeout');
  }
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
  this[kExchange]?.onBodyChunk(chunk.length);
}

function onBodyTimeout(ex: HttpExchange): void {
  ex.onBodyIdle();
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
  res.writeHead(status, headers);
  res.end(body);
}
