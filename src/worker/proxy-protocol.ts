// PROXY protocol v1 (text) and v2 (binary), as specified by HAProxy: encoders for the header we
// send to backends, an incremental parser for the header a trusted peer sends us, and a helper
// that reads that header off a net.Socket. Shared by the tcp and http listeners.

import { isIPv4, isIPv6, type Socket } from 'node:net';
import { parseIp } from '../shared/cidr.ts';

/** The connection endpoints a PROXY header asserts (source = the real client). */
export interface ProxyAddresses {
  readonly family: 4 | 6;
  readonly sourceAddress: string;
  readonly sourcePort: number;
  readonly destAddress: string;
  readonly destPort: number;
}

export type ProxyParseResult =
  | { readonly done: false }
  | {
      readonly done: true;
      /** null: LOCAL command, UNKNOWN/UNSPEC or a non-IP family — use the real peer address. */
      readonly header: ProxyAddresses | null;
      /** Bytes of `buf` that belong to the header; the rest is payload. */
      readonly consumed: number;
    }
  | { readonly error: string };

/** v1 lines are at most 107 bytes including CRLF (spec §2.1). */
export const PROXY_V1_MAX_BYTES = 107;
/** Cap for v2 (16-byte preamble + addresses + TLVs); real headers are far smaller. */
export const PROXY_V2_MAX_BYTES = 4096;

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const V2_SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const NEED_MORE: ProxyParseResult = Object.freeze({ done: false });
const PORT_RE = /^(?:0|[1-9]\d{0,4})$/;

/** Does `buf` agree with `sig` on every byte both have? */
function prefixMatches(buf: Buffer, sig: Buffer): boolean {
  const n = Math.min(buf.length, sig.length);
  for (let i = 0; i < n; i++) if (buf[i] !== sig[i]) return false;
  return true;
}

/**
 * Parse a PROXY header at the start of `buf` (everything received so far). Call again with more
 * bytes while it returns `{ done: false }`. `maxV2Bytes` caps the accepted v2 header size.
 */
export function parseProxyHeader(buf: Buffer, maxV2Bytes = PROXY_V2_MAX_BYTES): ProxyParseResult {
  if (buf.length === 0) return NEED_MORE;
  if (buf[0] === V1_PREFIX[0]) {
    if (!prefixMatches(buf, V1_PREFIX)) return { error: 'not a PROXY protocol header' };
    return parseV1(buf);
  }
  if (buf[0] === V2_SIG[0]) {
    if (!prefixMatches(buf, V2_SIG)) return { error: 'not a PROXY protocol header' };
    return parseV2(buf, maxV2Bytes);
  }
  return { error: 'not a PROXY protocol header' };
}

function parseV1(buf: Buffer): ProxyParseResult {
  const limit = Math.min(buf.length, PROXY_V1_MAX_BYTES);
  let lf = -1;
  for (let i = V1_PREFIX.length; i < limit; i++) {
    if (buf[i] === 0x0a) {
      lf = i;
      break;
    }
  }
  if (lf < 0) return buf.length >= PROXY_V1_MAX_BYTES ? { error: 'PROXY v1 line too long' } : NEED_MORE;
  if (buf[lf - 1] !== 0x0d) return { error: 'PROXY v1 line not terminated by CRLF' };
  const consumed = lf + 1;
  const parts = buf.toString('latin1', V1_PREFIX.length, lf - 1).split(' ');
  const proto = parts[0];
  // UNKNOWN may carry anything after it; the receiver must ignore it (spec §2.1).
  if (proto === 'UNKNOWN') return { done: true, header: null, consumed };
  if (proto !== 'TCP4' && proto !== 'TCP6') return { error: `PROXY v1 unsupported protocol '${proto}'` };
  if (parts.length !== 5) return { error: 'PROXY v1 malformed address line' };
  const [, src, dst, sport, dport] = parts as [string, string, string, string, string];
  const isIp = proto === 'TCP4' ? isIPv4 : isIPv6;
  if (!isIp(src) || !isIp(dst)) return { error: `PROXY v1 invalid ${proto} address` };
  if (!PORT_RE.test(sport) || !PORT_RE.test(dport) || Number(sport) > 65535 || Number(dport) > 65535)
    return { error: 'PROXY v1 invalid port' };
  return {
    done: true,
    consumed,
    header: {
      family: proto === 'TCP4' ? 4 : 6,
      sourceAddress: src,
      sourcePort: Number(sport),
      destAddress: dst,
      destPort: Number(dport),
    },
  };
}

function parseV2(buf: Buffer, maxBytes: number): ProxyParseResult {
  if (buf.length < 16) return NEED_MORE;
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) return { error: 'PROXY v2 unsupported version' };
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return { error: 'PROXY v2 unsupported command' };
  const total = 16 + buf.readUInt16BE(14);
  if (total > maxBytes) return { error: 'PROXY v2 header too large' };
  if (buf.length < total) return NEED_MORE;
  // LOCAL: the proxy's own connection (e.g. a health check); addresses are ignored.
  if (cmd === 0) return { done: true, header: null, consumed: total };
  const fam = buf[13]! >> 4;
  if (fam === 1) {
    if (total < 16 + 12) return { error: 'PROXY v2 address block too short' };
    return {
      done: true,
      consumed: total,
      header: {
        family: 4,
        sourceAddress: `${buf[16]}.${buf[17]}.${buf[18]}.${buf[19]}`,
        destAddress: `${buf[20]}.${buf[21]}.${buf[22]}.${buf[23]}`,
        sourcePort: buf.readUInt16BE(24),
        destPort: buf.readUInt16BE(26),
      },
    };
  }
  if (fam === 2) {
    if (total < 16 + 36) return { error: 'PROXY v2 address block too short' };
    return {
      done: true,
      consumed: total,
      header: {
        family: 6,
        sourceAddress: formatIPv6(buf, 16),
        destAddress: formatIPv6(buf, 32),
        sourcePort: buf.readUInt16BE(48),
        destPort: buf.readUInt16BE(50),
      },
    };
  }
  if (fam === 0 || fam === 3) return { done: true, header: null, consumed: total }; // UNSPEC, UNIX
  return { error: 'PROXY v2 unsupported address family' };
}

/** RFC 5952 text for 16 bytes at `off`; IPv4-mapped addresses as ::ffff:a.b.c.d, like Node. */
function formatIPv6(b: Buffer, off: number): string {
  let mapped = b[off + 10] === 0xff && b[off + 11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) if (b[off + i] !== 0) mapped = false;
  if (mapped) return `::ffff:${b[off + 12]}.${b[off + 13]}.${b[off + 14]}.${b[off + 15]}`;
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(b.readUInt16BE(off + i * 2));
  // Longest run (≥2) of zero groups, first one wins on ties.
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) =>
    g
      .slice(from, to)
      .map((n) => n.toString(16))
      .join(':');
  return bestAt < 0 ? hex(0, 8) : `${hex(0, bestAt)}::${hex(bestAt + bestLen, 8)}`;
}

/** Strip the IPv4-mapped prefix Node reports on dual-stack sockets ("::ffff:1.2.3.4"). */
function unmap(addr: string): string {
  return addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr;
}

/**
 * Normalise a socket's endpoints for a header: v4 when both ends are IPv4 (mapped or not), else
 * v6 with any IPv4 end written IPv4-mapped. Returns null when an address is missing or not IP.
 */
export function proxyAddresses(
  sourceAddress: string | undefined,
  sourcePort: number | undefined,
  destAddress: string | undefined,
  destPort: number | undefined,
): ProxyAddresses | null {
  if (!sourceAddress || !destAddress || sourcePort === undefined || destPort === undefined) return null;
  let src = unmap(sourceAddress);
  let dst = unmap(destAddress);
  const zone = (a: string) => (a.includes('%') ? a.slice(0, a.indexOf('%')) : a);
  src = zone(src);
  dst = zone(dst);
  const s4 = isIPv4(src);
  const d4 = isIPv4(dst);
  if (s4 && d4) return { family: 4, sourceAddress: src, sourcePort, destAddress: dst, destPort };
  if ((!s4 && !isIPv6(src)) || (!d4 && !isIPv6(dst))) return null;
  if (s4) src = `::ffff:${src}`;
  if (d4) dst = `::ffff:${dst}`;
  return { family: 6, sourceAddress: src, sourcePort, destAddress: dst, destPort };
}

/** "PROXY TCP4|TCP6 src dst sport dport\r\n", or "PROXY UNKNOWN\r\n" for null. */
export function encodeProxyV1(a: ProxyAddresses | null): Buffer {
  if (!a) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  return Buffer.from(
    `PROXY TCP${a.family} ${a.sourceAddress} ${a.destAddress} ${a.sourcePort} ${a.destPort}\r\n`,
    'latin1',
  );
}

/** Binary v2 header: PROXY over TCP/IPv4 or TCP/IPv6, or LOCAL for null. */
export function encodeProxyV2(a: ProxyAddresses | null): Buffer {
  if (!a) {
    const out = Buffer.alloc(16);
    V2_SIG.copy(out, 0);
    out[12] = 0x20; // v2, LOCAL
    return out;
  }
  const src = parseIp(a.sourceAddress);
  const dst = parseIp(a.destAddress);
  // Unreachable for values from proxyAddresses(); degrade to LOCAL rather than send garbage.
  if (!src.ok || !dst.ok || src.value.family !== a.family || dst.value.family !== a.family)
    return encodeProxyV2(null);
  const n = a.family === 4 ? 4 : 16;
  const out = Buffer.alloc(16 + 2 * n + 4);
  V2_SIG.copy(out, 0);
  out[12] = 0x21; // v2, PROXY
  out[13] = a.family === 4 ? 0x11 : 0x21; // INET/INET6 over STREAM
  out.writeUInt16BE(2 * n + 4, 14);
  for (let i = 0; i < n; i++) {
    out[16 + i] = src.value.bytes[i]!;
    out[16 + n + i] = dst.value.bytes[i]!;
  }
  out.writeUInt16BE(a.sourcePort, 16 + 2 * n);
  out.writeUInt16BE(a.destPort, 18 + 2 * n);
  return out;
}

export type ReadProxyResult =
  | { readonly ok: true; readonly header: ProxyAddresses | null }
  /** 'closed': the peer went away before a full header (an abort, not necessarily a bad header). */
  | { readonly ok: false; readonly reason: 'invalid' | 'timeout' | 'closed'; readonly message: string };

/**
 * Read a PROXY header off `socket`, then call `cb` exactly once. On success the socket is left
 * paused with any bytes after the header unshifted back, so the caller can pipe it as if fresh.
 * On failure the socket is left as is (the caller destroys it).
 */
export function readProxyHeader(
  socket: Socket,
  timeoutMs: number,
  cb: (result: ReadProxyResult) => void,
  maxV2Bytes = PROXY_V2_MAX_BYTES,
): void {
  let buf: Buffer | null = null;
  let finished = false;
  const finish = (r: ReadProxyResult, rest: Buffer | null = null): void => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    socket.removeListener('data', onData);
    socket.removeListener('end', onEnd);
    socket.removeListener('close', onEnd);
    socket.removeListener('error', onEnd);
    // Pause before unshifting: unshift on a flowing stream may emit 'data' synchronously.
    socket.pause();
    if (rest) socket.unshift(rest);
    cb(r);
  };
  const onData = (chunk: Buffer): void => {
    // Headers nearly always arrive in one segment; only concatenate when they don't.
    buf = buf === null ? chunk : Buffer.concat([buf, chunk]);
    const r = parseProxyHeader(buf, maxV2Bytes);
    if ('error' in r) finish({ ok: false, reason: 'invalid', message: r.error });
    else if (r.done)
      finish({ ok: true, header: r.header }, r.consumed < buf.length ? buf.subarray(r.consumed) : null);
  };
  const onEnd = (): void =>
    finish({ ok: false, reason: 'closed', message: 'connection closed before a complete PROXY header' });
  const timer = setTimeout(
    () => finish({ ok: false, reason: 'timeout', message: `no complete PROXY header within ${timeoutMs}ms` }),
    timeoutMs,
  );
  socket.on('data', onData);
  socket.once('end', onEnd);
  socket.once('close', onEnd);
  socket.once('error', onEnd);
  socket.resume();
}
