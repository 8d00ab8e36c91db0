// Header rewriting for one proxied HTTP/1.1 exchange, in both directions.
//
// Request: the client's raw header list is copied in one pass (case and duplicates kept) minus
// hop-by-hop headers, `Expect` (Node already answered 100-continue) and every header named in
// `Connection`; then X-Forwarded-For (appended), X-Forwarded-Proto/Host and X-Request-Id are set.
// Proto/Host/Request-Id sent by the client are kept only when the peer is a trusted proxy.
// Response: the same hop-by-hop removal, duplicates (set-cookie) kept, and X-Request-Id set.

import { randomBytes } from 'node:crypto';
import { isIPv6 } from 'node:net';
import type { Cidr } from '../../config/model.ts';
import { cidrsContain, plainIp } from '../../shared/cidr.ts';

/** Facts gathered from the client's request head while copying it. */
export interface RequestHead {
  /** Headers to send upstream, flat [name, value, ...]. */
  headers: string[];
  /** First Host header as sent. */
  host: string | undefined;
  /** More than one Host header (RFC 9112 §3.2: answer 400). */
  duplicateHost: boolean;
  /** Incoming X-Forwarded-For values joined with ", " (before our append). */
  forwardedFor: string | undefined;
  requestId: string;
  /** Content-Length as sent, or -1. */
  contentLength: number;
  /** Transfer-Encoding was present (Node has already de-chunked the body). */
  chunked: boolean;
  /**
   * Transfer-Encoding was anything but one `chunked` ("gzip, chunked", two TE lines, ...):
   * Node de-chunks it but would forward the other codings' bytes as if they were none.
   */
  otherCoding: boolean;
  /** KEPT_* bits: which X-Forwarded-Proto/Host and X-Request-Id were kept from a trusted peer. */
  kept: number;
}

/** A head before rewriteRequestHeaders fills it (HttpExchange's fields start the same). */
export function emptyRequestHead(): RequestHead {
  return {
    headers: [],
    host: undefined,
    duplicateHost: false,
    forwardedFor: undefined,
    requestId: '',
    contentLength: -1,
    chunked: false,
    otherCoding: false,
    kept: 0,
  };
}

export const KEPT_PROTO = 1;
export const KEPT_HOST = 2;
export const KEPT_ID = 4;

// Header name codes, found by length first so most names are never lower-cased.
const OTHER = 0;
const DROP = 1; // hop-by-hop or otherwise not forwarded
const HOST = 2;
const CONNECTION = 3;
const TE = 4;
const TRANSFER_ENCODING = 5;
const CONTENT_LENGTH = 6;
const XFF = 7;
const XF_PROTO = 8;
const XF_HOST = 9;
const REQUEST_ID = 10;

function classify(name: string): number {
  let l: string;
  switch (name.length) {
    case 2:
      return name.toLowerCase() === 'te' ? TE : OTHER;
    case 4:
      return name.toLowerCase() === 'host' ? HOST : OTHER;
    case 6:
      return name.toLowerCase() === 'expect' ? DROP : OTHER;
    case 7:
      l = name.toLowerCase();
      return l === 'upgrade' || l === 'trailer' ? DROP : OTHER;
    case 10:
      l = name.toLowerCase();
      return l === 'connection' ? CONNECTION : l === 'keep-alive' ? DROP : OTHER;
    case 12:
      return name.toLowerCase() === 'x-request-id' ? REQUEST_ID : OTHER;
    case 14:
      // HTTP2-Settings belongs to an h2c upgrade, which is never forwarded (and an HTTP/2
      // upstream refuses the request outright when it is present).
      l = name.toLowerCase();
      return l === 'content-length' ? CONTENT_LENGTH : l === 'http2-settings' ? DROP : OTHER;
    case 15:
      return name.toLowerCase() === 'x-forwarded-for' ? XFF : OTHER;
    case 16:
      l = name.toLowerCase();
      return l === 'x-forwarded-host' ? XF_HOST : l === 'proxy-connection' ? DROP : OTHER;
    case 17:
      l = name.toLowerCase();
      return l === 'transfer-encoding' ? TRANSFER_ENCODING : l === 'x-forwarded-proto' ? XF_PROTO : OTHER;
    case 18:
      return name.toLowerCase() === 'proxy-authenticate' ? DROP : OTHER;
    case 19:
      return name.toLowerCase() === 'proxy-authorization' ? DROP : OTHER;
    default:
      return OTHER;
  }
}

/** Lower-case header names listed in Connection, minus the ones always handled; undefined if none. */
function connectionTokens(value: string, into: Set<string> | undefined): Set<string> | undefined {
  // Nearly every message says just this; skip the split.
  if (value === 'keep-alive' || value === 'close' || value === 'Keep-Alive') return into;
  for (const part of value.split(',')) {
    const t = part.trim().toLowerCase();
    if (t === '' || t === 'close' || t === 'keep-alive' || t === 'te' || t === 'upgrade') continue;
    if (into === undefined) into = new Set();
    into.add(t);
  }
  return into;
}

function hasToken(value: string, token: string): boolean {
  for (const part of value.split(',')) {
    // "trailers" may carry parameters in theory ("trailers;q=1" is not valid, but be lenient).
    const t = part.trim().toLowerCase();
    if (t === token || t.startsWith(`${token};`)) return true;
  }
  return false;
}

// Request ids: a per-process random prefix plus a counter — unique enough across workers and
// restarts, and far cheaper than a UUID per request.
const ID_PREFIX = randomBytes(6).toString('base64url');
let idCounter = 0;
export function newRequestId(): string {
  idCounter = (idCounter + 1) % Number.MAX_SAFE_INTEGER;
  return `${ID_PREFIX}-${idCounter.toString(36)}`;
}

/**
 * Copy the client's head into `out` for the upstream request. `peerIp` is the connection's
 * address; `trusted` whether it is in trusted_proxies.
 */
export function rewriteRequestHeaders(
  raw: readonly string[],
  peerIp: string,
  trusted: boolean,
  proto: string,
  out: RequestHead,
): void {
  const listed = scanRequest(raw, trusted, out, undefined);
  // Rare: Connection names other headers. Copy again, now skipping those names.
  if (listed !== undefined) scanRequest(raw, trusted, out, listed);
  const h = out.headers;
  h.push('x-forwarded-for', out.forwardedFor === undefined ? peerIp : `${out.forwardedFor}, ${peerIp}`);
  if ((out.kept & KEPT_PROTO) === 0) h.push('x-forwarded-proto', proto);
  if ((out.kept & KEPT_HOST) === 0 && out.host !== undefined) h.push('x-forwarded-host', out.host);
  if ((out.kept & KEPT_ID) === 0) {
    out.requestId = newRequestId();
    h.push('x-request-id', out.requestId);
  }
}

function scanRequest(
  raw: readonly string[],
  trusted: boolean,
  out: RequestHead,
  skip: ReadonlySet<string> | undefined,
): Set<string> | undefined {
  const h: string[] = [];
  let listed: Set<string> | undefined;
  let te = false;
  out.host = undefined;
  out.duplicateHost = false;
  out.forwardedFor = undefined;
  out.contentLength = -1;
  out.chunked = false;
  out.otherCoding = false;
  out.kept = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const code = classify(name);
    // Host and Content-Length frame the request and TE is handled below (a compliant client
    // lists it: "Connection: TE"), so Connection cannot remove them.
    if (
      skip !== undefined &&
      code !== HOST &&
      code !== CONTENT_LENGTH &&
      code !== TE &&
      skip.has(name.toLowerCase())
    )
      continue;
    switch (code) {
      case OTHER:
        h.push(name, value);
        break;
      case DROP:
        break;
      case HOST:
        if (out.host === undefined) {
          out.host = value;
          h.push(name, value);
        } else out.duplicateHost = true;
        break;
      case CONNECTION:
        if (skip === undefined) listed = connectionTokens(value, listed);
        break;
      case TE:
        if (!te && hasToken(value, 'trailers')) {
          te = true;
          h.push('te', 'trailers');
        }
        break;
      case TRANSFER_ENCODING:
        // Like NGINX: exactly one `chunked` (case-insensitive) or nothing; llhttp has already
        // refused a coding after chunked, and refuses a non-chunked last one after this.
        if (out.chunked || (value !== 'chunked' && (value.length !== 7 || value.toLowerCase() !== 'chunked')))
          out.otherCoding = true;
        out.chunked = true;
        break;
      case CONTENT_LENGTH:
        out.contentLength = Number(value);
        h.push(name, value);
        break;
      case XFF:
        out.forwardedFor = out.forwardedFor === undefined ? value : `${out.forwardedFor}, ${value}`;
        break;
      case XF_PROTO:
        if (trusted && (out.kept & KEPT_PROTO) === 0) {
          out.kept |= KEPT_PROTO;
          h.push(name, value);
        }
        break;
      case XF_HOST:
        if (trusted && (out.kept & KEPT_HOST) === 0) {
          out.kept |= KEPT_HOST;
          h.push(name, value);
        }
        break;
      case REQUEST_ID:
        if (trusted && (out.kept & KEPT_ID) === 0 && value !== '') {
          out.kept |= KEPT_ID;
          out.requestId = value;
          h.push(name, value);
        }
        break;
    }
  }
  out.headers = h;
  return listed;
}

/**
 * The client address to balance on: the peer, or — when the peer is a trusted proxy — the
 * right-most X-Forwarded-For entry that is not itself trusted (the left-most if all are).
 */
export function clientIp(
  peerIp: string,
  trusted: boolean,
  forwardedFor: string | undefined,
  trustedProxies: readonly Cidr[],
): string {
  if (!trusted || forwardedFor === undefined) return peerIp;
  const hops = forwardedFor.split(',');
  let ip = peerIp;
  for (let i = hops.length - 1; i >= 0; i--) {
    // An IPv4-mapped hop is its IPv4 client: one bucket per client, and the trust check below.
    const hop = plainIp(hops[i]!.trim());
    if (hop === '') continue;
    ip = hop;
    if (!cidrsContain(trustedProxies, hop)) return hop;
  }
  return ip;
}

// RFC 3986 reg-name characters: unreserved / sub-delims / "%" (pct-encoded, checked apart).
const REG_NAME = new Uint8Array(128);
for (const ch of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=%")
  REG_NAME[ch.charCodeAt(0)] = 1;

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || ((c | 32) >= 97 && (c | 32) <= 102);
}

/**
 * Is `host` a valid Host header value (RFC 9110 §7.2: uri-host [":" port], RFC 3986 §3.2.2)?
 * reg-name (which covers IPv4 and names), "[" IPv6 or IPvFuture "]", an optional port 0-65535.
 * Empty is valid (a target without authority). Checked before dispatch because undici asserts
 * on what it cannot split ("[", "[::1"), and a client's bytes must not count as upstream errors.
 * Allocation-free for names; an IPv6 literal is checked by net.isIPv6 on a slice.
 */
export function validAuthority(host: string): boolean {
  const n = host.length;
  let i = 0;
  if (n > 0 && host.charCodeAt(0) === 91 /* [ */) {
    const close = host.indexOf(']');
    if (close < 2 || !validIpLiteral(host, close)) return false;
    i = close + 1;
  } else {
    for (; i < n; i++) {
      const c = host.charCodeAt(i);
      if (c === 58 /* : */) break;
      if (c >= 128 || REG_NAME[c] === 0) return false;
      if (c === 37 /* % */ && !(i + 2 < n && isHex(host.charCodeAt(i + 1)) && isHex(host.charCodeAt(i + 2))))
        return false;
    }
  }
  if (i === n) return true;
  if (host.charCodeAt(i) !== 58) return false;
  // port = *DIGIT (RFC 3986 allows it empty), at most 65535.
  let port = 0;
  for (let j = i + 1; j < n; j++) {
    const d = host.charCodeAt(j) - 48;
    if (d < 0 || d > 9) return false;
    port = port * 10 + d;
    if (port > 65535) return false;
  }
  return true;
}

/** host[1, close) of "[...]": an IPv6 address (no zone id) or IPvFuture "v" HEX+ "." ... */
function validIpLiteral(host: string, close: number): boolean {
  const first = host.charCodeAt(1) | 32;
  if (first === 118 /* v */) {
    let i = 2;
    while (i < close && isHex(host.charCodeAt(i))) i++;
    if (i === 2 || i >= close - 1 || host.charCodeAt(i) !== 46 /* . */) return false;
    for (i++; i < close; i++) {
      const c = host.charCodeAt(i);
      if (c === 37 || c >= 128 || (REG_NAME[c] === 0 && c !== 58)) return false;
    }
    return true;
  }
  for (let i = 1; i < close; i++) {
    const c = host.charCodeAt(i);
    if (!isHex(c) && c !== 58 && c !== 46) return false; // also rules out a zone id ("%eth0")
  }
  return isIPv6(host.slice(1, close));
}

/**
 * For an HTTP/2 upstream: lower-case the header names in place. undici merges repeated names
 * only when spelled alike, and Node's HTTP/2 client throws — outside any request's error path
 * — on "Content-Type" and "content-type" both present (a single-value header given twice).
 */
export function lowerCaseNames(headers: string[]): void {
  for (let i = 0; i < headers.length; i += 2) headers[i] = headers[i]!.toLowerCase();
}

const RESPONSE_HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
  'x-request-id',
]);

/**
 * Upstream response headers (undici's parsed object: lower-case names, repeated headers as
 * arrays) → a flat list for `res.writeHead`, without hop-by-hop headers, with our request id,
 * and `connection: close` when the client connection must end after this response.
 * undefined when the head has more than `maxHeaders` header lines (undici caps only bytes).
 */
export function rewriteResponseHeaders(
  headers: Record<string, string | string[] | undefined>,
  requestId: string,
  close: boolean,
  maxHeaders: number,
): Array<string | string[]> | undefined {
  const out: Array<string | string[]> = [];
  const conn = headers.connection;
  const listed = conn === undefined ? undefined : connectionTokens(String(conn), undefined);
  let lines = 0;
  for (const name in headers) {
    const v = headers[name];
    if (v === undefined) continue;
    lines += typeof v === 'string' ? 1 : v.length;
    if (RESPONSE_HOP_BY_HOP.has(name)) continue;
    if (listed?.has(name) === true) continue;
    out.push(name, v);
  }
  if (lines > maxHeaders) return undefined;
  out.push('x-request-id', requestId);
  if (close) out.push('connection', 'close');
  return out;
}
