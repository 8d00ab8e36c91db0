// Trailers for HTTP/1.x clients. HTTP/1.1 carries trailers only in a chunked body, so a
// response that arrives with a Content-Length would lose them (Node's ServerResponse drops
// them silently). Only an HTTP/2 backend can send both — gRPC servers may, and an HTTP/1.1
// backend cannot — so for http2 pools, when the client is HTTP/1.1 and said `te: trailers`
// (every gRPC client does), the response is re-framed as chunked: the Content-Length is
// dropped and the trailers arrive. Otherwise (no `te: trailers`, which RFC 9110 §6.5.1 takes
// as a client that may discard them; an HTTP/1.0 client, which cannot take chunked at all)
// the Content-Length is kept and the trailers are dropped — counted, never an error.

import type { IncomingMessage, ServerResponse } from 'node:http';

const counters = {
  /** Responses re-framed as chunked so an HTTP/1.1 client gets the backend's trailers. */
  rechunked: 0,
  /** Responses whose trailers could not reach an HTTP/1.x client (not chunked). */
  dropped: 0,
};

/** Per-worker trailer counters (for /metrics). */
export function stats(): Readonly<typeof counters> {
  return { ...counters };
}

/**
 * A response from an HTTP/2 backend with Content-Length: when the client is HTTP/1.1 and
 * sent `te: trailers` (kept by the request rewrite as the pair "te", "trailers" in
 * `upstreamHeaders`), remove Content-Length from `out` so Node sends it chunked.
 */
export function chunkForTrailers(
  out: Array<string | string[]>,
  req: IncomingMessage,
  upstreamHeaders: readonly string[],
  status: number,
): void {
  // HEAD, 204 and 304 have no body to frame; an HTTP/1.0 client cannot take chunked.
  if (req.httpVersionMajor !== 1 || req.httpVersionMinor < 1 || req.method === 'HEAD') return;
  if (status === 204 || status === 304) return;
  let te = false;
  for (let i = 0; i < upstreamHeaders.length; i += 2) {
    if (upstreamHeaders[i] === 'te') {
      te = true;
      break;
    }
  }
  if (!te) return;
  for (let i = 0; i < out.length; i += 2) {
    if (out[i] === 'content-length') {
      out.splice(i, 2);
      counters.rechunked++;
      return;
    }
  }
}

/**
 * Would trailers added now reach the client? Not on an HTTP/1.x response that is not
 * chunked (then they are counted as dropped). An HTTP/2 response always carries them.
 */
export function trailersReach(res: ServerResponse): boolean {
  if ((res as { chunkedEncoding?: boolean }).chunkedEncoding !== false) return true;
  counters.dropped++;
  return false;
}
