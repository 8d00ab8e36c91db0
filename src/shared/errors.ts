// The error catalog: every failure FiberLB can observe has exactly one class, declared here
// once with the HTTP status it answers, the side it blames, whether a retry on another backend
// is safe, and a one-line meaning. Logs carry the class as `error_class`, counters and metrics
// count by it, HTTP failure answers take their status from it, and the README/docs table is
// tested against it (test/error-catalog.test.ts).

/** Who is at fault: alerts on `upstream` must never be raised by a client's bytes. */
export type ErrorSide = 'client' | 'routing' | 'upstream' | 'process';

export interface ErrorClassInfo {
  /** Status answered when the response has not started; undefined = the connection is closed. */
  readonly status: number | undefined;
  readonly side: ErrorSide;
  /** Safe to try another backend: nothing of the request reached this one. */
  readonly retriable: boolean;
  readonly meaning: string;
}

function c(status: number | undefined, side: ErrorSide, retriable: boolean, meaning: string): ErrorClassInfo {
  return { status, side, retriable, meaning };
}

export const ERROR_CATALOG = {
  // client side
  client_abort: c(undefined, 'client', false, 'the client went away before the response finished'),
  client_timeout: c(
    408,
    'client',
    false,
    'the client was too slow: `client_header`, `client_body`, `client_body_total`, `min_body_rate`, tcp `idle` or `tunnel_idle`',
  ),
  client_bad_request: c(400, 'client', false, 'malformed request (syntax, framing, Host / authority)'),
  unsupported_request: c(
    501,
    'client',
    false,
    'valid HTTP that FiberLB does not proxy (a transfer coding other than a final chunked, an upgrade other than WebSocket, CONNECT)',
  ),
  header_too_large: c(
    431,
    'client',
    false,
    'request head over `limits.max_header_bytes` or `limits.max_headers`',
  ),
  body_too_large: c(413, 'client', false, 'request body over `limits.max_body_bytes`'),
  proxy_protocol_invalid: c(undefined, 'client', false, 'bad or missing PROXY header from a trusted peer'),
  connection_limit: c(
    undefined,
    'client',
    false,
    'listener `connection_limit` or `max_connections_per_ip` (or udp `max_sessions`) reached',
  ),
  rate_limited: c(
    429,
    'client',
    false,
    'over a listener or route `rate_limit` (429), or `connection_rate_limit` (connection closed)',
  ),
  tls_handshake: c(undefined, 'client', false, 'TLS handshake failed'),
  // routing
  no_route: c(404, 'routing', false, 'no route matched and the listener has no `default_pool`'),
  no_healthy_backend: c(503, 'routing', true, 'every backend of the pool is drained, disabled or down'),
  queue_full: c(503, 'routing', true, "the pool's wait queue for an upstream connection is full"),
  queue_timeout: c(
    503,
    'routing',
    true,
    "waited `queue_timeout` in the pool's queue for an upstream connection",
  ),
  // upstream side
  upstream_connect_refused: c(502, 'upstream', true, 'the backend refused the connection'),
  upstream_connect_timeout: c(504, 'upstream', true, '`timeouts.connect` elapsed'),
  upstream_timeout: c(504, 'upstream', false, '`timeouts.upstream_response` / `upstream_body` elapsed'),
  upstream_reset: c(
    502,
    'upstream',
    false,
    'the backend closed or reset mid-request (after headers: the client connection is cut)',
  ),
  upstream_protocol_error: c(
    502,
    'upstream',
    false,
    'invalid HTTP from the backend (syntax, framing, too many or too large headers)',
  ),
  upstream_error: c(502, 'upstream', false, 'any other upstream failure (DNS, EHOSTUNREACH, ...)'),
  // process / control plane
  drain_deadline: c(
    undefined,
    'process',
    false,
    'in-flight work cut when the drain deadline passed (SIGTERM or removed listener)',
  ),
  listen_failed: c(undefined, 'process', false, 'a listener could not bind (port taken, permission)'),
  accept_failed: c(
    undefined,
    'process',
    false,
    'out of file descriptors (EMFILE/ENFILE): a client connection could not be accepted or an upstream connection not opened',
  ),
  config_invalid: c(undefined, 'process', false, 'a config was rejected; the last good one keeps serving'),
  worker_crash: c(undefined, 'process', false, 'a worker exited unexpectedly and is respawned'),
  internal_error: c(500, 'process', false, 'a bug: one request or connection is lost, never the worker'),
  // Appended after the first catalog (the README table follows this order).
  upstream_tls: c(
    502,
    'upstream',
    true,
    'TLS to the backend failed before the request was sent: certificate not trusted, name mismatch, expired, protocol or version refused (pool `tls`)',
  ),
  tls_client_hello: c(
    undefined,
    'client',
    false,
    'tls_passthrough: no valid ClientHello (not TLS, malformed, truncated, over 32 KiB, or not within `client_header`)',
  ),
  admin_store_unavailable: c(
    503,
    'process',
    false,
    'an admin API backend action could not read or write Chainfire (unreachable, timed out, refused); nothing was written',
  ),
  admin_backend_gone: c(
    404,
    'process',
    false,
    'an admin API backend action found no Chainfire key for a backend this FiberLB serves (removed meanwhile); nothing was written',
  ),
  admin_write_conflict: c(
    409,
    'process',
    false,
    "an admin API backend action's guarded write lost to a concurrent change on every bounded retry; nothing was written",
  ),
  admin_state_file: c(
    500,
    'process',
    false,
    '`admin.state_file` could not be written (the action is refused, nothing changes) or read at start (served without its overrides)',
  ),
} as const satisfies Record<string, ErrorClassInfo>;

export type ErrorClass = keyof typeof ERROR_CATALOG;

export const ERROR_CLASSES = Object.keys(ERROR_CATALOG) as readonly ErrorClass[];

/** HTTP status for an error class when the response has not started (502 where it has none). */
export function statusForError(cls: ErrorClass): number {
  return ERROR_CATALOG[cls].status ?? 502;
}

/** Classify a Node/undici error raised while talking to an upstream. */
export function classifyUpstreamError(err: unknown): ErrorClass {
  const e = err as { code?: string; name?: string } | null;
  // undici 7 builds its parser errors' code from a reversed table, so it is undefined
  // ("Response does not match the HTTP/1.1 protocol (...)"): go by the name.
  if (e?.name === 'HTTPParserError') return 'upstream_protocol_error';
  switch (e?.code) {
    case 'ECONNREFUSED':
      return 'upstream_connect_refused';
    // Our own process (or the system) is out of descriptors: not the backend's fault.
    case 'EMFILE':
    case 'ENFILE':
      return 'accept_failed';
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
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
    case 'UND_ERR_INVALID_ARG':
    case 'UND_ERR_HEADERS_OVERFLOW':
      return 'upstream_protocol_error';
    case 'UND_ERR_ABORTED':
    case 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH':
      return 'client_abort';
    // An assertion inside undici is a bug on our side of the wire (it fired on client bytes
    // such as "Host: [" before those were validated), never the backend's fault.
    case 'ERR_ASSERTION':
      return 'internal_error';
    // OpenSSL's failures surface as EPROTO ("...:SSL routines:..."); a plain socket's EPROTO
    // (rare) stays generic.
    case 'EPROTO':
      return /SSL routines|TLS/.test(String((e as { message?: unknown }).message))
        ? 'upstream_tls'
        : 'upstream_error';
    default:
      if (typeof e?.code === 'string') {
        if (e.code.startsWith('HPE_')) return 'upstream_protocol_error';
        if (isTlsCode(e.code)) return 'upstream_tls';
      }
      return 'upstream_error';
  }
}

/** OpenSSL's certificate verification results, as Node names them (X509_V_ERR_* without it). */
const CERT_VERIFY_CODES: ReadonlySet<string> = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_CRL',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CRL_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CRL_NOT_YET_VALID',
  'CRL_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'ERROR_IN_CRL_LAST_UPDATE_FIELD',
  'ERROR_IN_CRL_NEXT_UPDATE_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
]);

/** A Node error code that only the TLS layer raises. */
function isTlsCode(code: string): boolean {
  return code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || CERT_VERIFY_CODES.has(code);
}
