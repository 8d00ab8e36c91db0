// Every failure FiberLB can observe has exactly one error class. Logs carry it as
// `error_class`, metrics count by it, and HTTP failure responses are chosen from it.

export const ERROR_CLASSES = [
  // client side
  'client_abort', // client closed before we finished
  'client_timeout', // client too slow (headers, body, idle)
  'client_bad_request', // malformed request / protocol violation by the client
  'header_too_large',
  'body_too_large',
  'proxy_protocol_invalid', // bad or missing PROXY header from a trusted peer
  'connection_limit', // listener connection limit reached
  'rate_limited',
  'tls_handshake',
  // routing
  'no_route', // no route matched and no default_pool
  'no_healthy_backend', // pool has no enabled+healthy backend
  // upstream side
  'upstream_connect_refused',
  'upstream_connect_timeout',
  'upstream_timeout', // response headers or body too slow
  'upstream_reset', // upstream closed/reset the connection mid-request
  'upstream_protocol_error', // invalid HTTP from upstream
  'upstream_error', // any other upstream failure (DNS, EHOSTUNREACH, ...)
  // process / control plane
  'drain_deadline', // in-flight work cut because the drain deadline (SIGTERM, removed listener) passed
  'listen_failed',
  'config_invalid',
  'worker_crash',
  'internal_error',
] as const;

export type ErrorClass = (typeof ERROR_CLASSES)[number];

/** HTTP status returned to the client for an error class (when headers were not sent yet). */
export function statusForError(cls: ErrorClass): number {
  switch (cls) {
    case 'no_route':
      return 404;
    case 'client_timeout':
      return 408;
    case 'body_too_large':
      return 413;
    case 'header_too_large':
      return 431;
    case 'rate_limited':
      return 429;
    case 'client_bad_request':
    case 'proxy_protocol_invalid':
      return 400;
    case 'no_healthy_backend':
    case 'connection_limit':
      return 503;
    case 'upstream_connect_timeout':
    case 'upstream_timeout':
      return 504;
    default:
      return 502;
  }
}

/** Classify a Node/undici error raised while talking to an upstream. */
export function classifyUpstreamError(err: unknown): ErrorClass {
  const e = err as { code?: string; name?: string } | null;
  switch (e?.code) {
    case 'ECONNREFUSED':
      return 'upstream_connect_refused';
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ETIMEDOUT':
      return 'upstream_connect_timeout';
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return 'upstream_timeout';
    case 'UND_ERR_SOCKET':
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_CLOSED':
      return 'upstream_reset';
    case 'HPE_INVALID_CONSTANT':
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
    case 'UND_ERR_INVALID_ARG':
      return 'upstream_protocol_error';
    case 'UND_ERR_ABORTED':
    case 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH':
      return 'client_abort';
    default:
      if (typeof e?.code === 'string' && e.code.startsWith('HPE_')) return 'upstream_protocol_error';
      return 'upstream_error';
  }
}

/** Per-process counters by error class; cheap enough for the hot path (one Map lookup). */
export class ErrorCounters {
  readonly counts = new Map<ErrorClass, number>();
  inc(cls: ErrorClass): void {
    this.counts.set(cls, (this.counts.get(cls) ?? 0) + 1);
  }
  toJSON(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }
}
