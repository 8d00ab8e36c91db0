// ClientHello peek for tls_passthrough: read the TLS record(s) carrying the first handshake
// message, extract server_name (and ALPN), never answer anything. The caller keeps every byte
// it fed and forwards them unchanged, so the backend sees the original handshake.
//
// The handshake message may be split over several TLS records (RFC 8446 §5.1 allows any
// fragmentation of handshake messages) and the records over any number of TCP segments:
// ClientHelloReader takes the bytes as they arrive and consumes each record once. Bounded:
// records of at most 2^14 bytes, a ClientHello of at most MAX_CLIENT_HELLO bytes, and never
// more than MAX_PEEK_BYTES read in all.

/** Largest ClientHello we wait for. Real ones are 0.2–2 KiB (post-quantum key shares ~1.8 KiB). */
export const MAX_CLIENT_HELLO = 16 * 1024;
/** TLSPlaintext.length limit (RFC 8446 §5.1). */
const MAX_RECORD = 1 << 14;
const RECORD_HEADER = 5;
const HANDSHAKE_HEADER = 4;
/**
 * Most bytes read while waiting for the ClientHello: a 16 KiB one in any number of records,
 * or a common 2 KiB one fragmented into 1-byte records (6 bytes each on the wire). This is
 * what one connection may hold in memory before it is routed.
 */
export const MAX_PEEK_BYTES = 32 * 1024;

const CONTENT_HANDSHAKE = 22;
const HS_CLIENT_HELLO = 1;
const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;

export type HelloResult =
  /** Not enough bytes yet: feed more. */
  | { readonly kind: 'more' }
  /** A complete, well-formed ClientHello. `sni` is lower-case without a trailing dot. */
  | { readonly kind: 'hello'; readonly sni: string | undefined; readonly alpn: readonly string[] }
  /** Not a (valid) TLS ClientHello: close the connection. */
  | { readonly kind: 'error'; readonly reason: string };

const MORE: HelloResult = { kind: 'more' };
const err = (reason: string): HelloResult => ({ kind: 'error', reason });

/**
 * Parse the start of a TLS connection in one go (tests, fuzzing). Only the bytes up to the
 * end of the ClientHello are looked at; anything after it (early data) is ignored.
 */
export function parseClientHello(buf: Uint8Array): HelloResult {
  return new ClientHelloReader().push(buf);
}

/**
 * Incremental ClientHello reader: push() each chunk as it arrives. O(bytes) in total however
 * the bytes are split (a client sending one byte per segment costs no re-parsing): every
 * complete record is consumed once, its fragment appended to the handshake bytes. Keeps all
 * raw bytes (bytes()) so the caller can put them back unchanged.
 */
export class ClientHelloReader {
  private wire: Uint8Array = new Uint8Array(0);
  private wireLen = 0;
  /** Offset in `wire` of the first record not consumed yet. */
  private pos = 0;
  private hs: Uint8Array = new Uint8Array(0);
  private hsLen = 0;
  /** Handshake message length incl. its header, once known; -1 before. */
  private want = -1;
  private result: HelloResult = MORE;

  /** Every byte pushed so far, in order (a view, valid until the next push). */
  bytes(): Uint8Array {
    return this.wire.subarray(0, this.wireLen);
  }

  push(chunk: Uint8Array): HelloResult {
    if (this.result.kind !== 'more') return this.result;
    this.wire = append(this.wire, this.wireLen, chunk);
    this.wireLen += chunk.length;
    this.result = this.advance();
    if (this.result.kind === 'more' && this.wireLen >= MAX_PEEK_BYTES)
      this.result = err(`no complete ClientHello in the first ${MAX_PEEK_BYTES} bytes`);
    return this.result;
  }

  private advance(): HelloResult {
    const buf = this.wire;
    const end = this.wireLen;
    while (this.want < 0 || this.hsLen < this.want) {
      const pos = this.pos;
      if (end - pos < RECORD_HEADER) return pos === 0 && end > 0 ? firstBytes(buf.subarray(0, end)) : MORE;
      const type = buf[pos]!;
      const major = buf[pos + 1]!;
      const len = (buf[pos + 3]! << 8) | buf[pos + 4]!;
      if (type !== CONTENT_HANDSHAKE)
        return err(
          pos === 0
            ? `not a TLS handshake (first byte 0x${hex(type)})`
            : `record of type ${type} inside the ClientHello`,
        );
      if (major !== 3) return err(`record version ${major}.${buf[pos + 2]!} is not TLS`);
      if (len === 0) return err('empty handshake record');
      if (len > MAX_RECORD) return err(`record length ${len} exceeds ${MAX_RECORD}`);
      if (end - pos - RECORD_HEADER < len) {
        // Incomplete record: fail early if its first byte already shows it is not a ClientHello.
        if (this.hsLen === 0 && end - pos > RECORD_HEADER && buf[pos + RECORD_HEADER] !== HS_CLIENT_HELLO)
          return err(`first handshake message is type ${buf[pos + RECORD_HEADER]!}, not ClientHello`);
        return MORE;
      }
      const frag = buf.subarray(pos + RECORD_HEADER, pos + RECORD_HEADER + len);
      this.pos = pos + RECORD_HEADER + len;
      this.hs = append(this.hs, this.hsLen, frag);
      this.hsLen += len;
      if (this.want < 0) {
        const head = this.hs;
        if (head[0] !== HS_CLIENT_HELLO)
          return err(`first handshake message is type ${head[0]!}, not ClientHello`);
        if (this.hsLen >= HANDSHAKE_HEADER) {
          const msgLen = (head[1]! << 16) | (head[2]! << 8) | head[3]!;
          if (msgLen > MAX_CLIENT_HELLO)
            return err(`ClientHello of ${msgLen} bytes exceeds ${MAX_CLIENT_HELLO}`);
          this.want = HANDSHAKE_HEADER + msgLen;
        }
      }
    }
    return parseHelloBody(this.hs.subarray(HANDSHAKE_HEADER, this.want));
  }
}

/** `into[0, used)` followed by `chunk`, growing the array by doubling (amortized O(1) per byte). */
function append(into: Uint8Array, used: number, chunk: Uint8Array): Uint8Array {
  const need = used + chunk.length;
  let out = into;
  if (need > into.length) {
    out = new Uint8Array(Math.max(need, into.length * 2, 512));
    out.set(into.subarray(0, used));
  }
  out.set(chunk, used);
  return out;
}

/** A buffer shorter than one record header: fail at once on what is clearly not TLS. */
function firstBytes(buf: Uint8Array): HelloResult {
  if (buf[0] !== CONTENT_HANDSHAKE) return err(`not a TLS handshake (first byte 0x${hex(buf[0]!)})`);
  if (buf.length >= 2 && buf[1] !== 3) return err(`record version ${buf[1]!}.x is not TLS`);
  return MORE;
}

function parseHelloBody(b: Uint8Array): HelloResult {
  const n = b.length;
  // legacy_version(2) random(32)
  let p = 34;
  if (n < p + 1) return err('ClientHello too short');
  if (b[0] !== 3) return err(`ClientHello version ${b[0]!}.${b[1]!} is not TLS`);
  const sid = b[p]!;
  if (sid > 32) return err(`session id of ${sid} bytes`);
  p += 1 + sid;
  if (n < p + 2) return err('ClientHello truncated in cipher suites');
  const cs = (b[p]! << 8) | b[p + 1]!;
  if (cs < 2 || cs % 2 !== 0) return err(`cipher suites length ${cs}`);
  p += 2 + cs;
  if (n < p + 1) return err('ClientHello truncated in cipher suites');
  const comp = b[p]!;
  if (comp < 1) return err('no compression methods');
  p += 1 + comp;
  if (p > n) return err('ClientHello truncated in compression methods');
  // No extensions at all (pre-TLS 1.2 style): no SNI.
  if (p === n) return { kind: 'hello', sni: undefined, alpn: [] };
  if (n < p + 2) return err('ClientHello truncated in extensions');
  const extLen = (b[p]! << 8) | b[p + 1]!;
  p += 2;
  if (p + extLen !== n) return err(`extensions length ${extLen} does not match the message`);
  let sni: string | undefined;
  let alpn: string[] = [];
  let sawSni = false;
  let sawAlpn = false;
  while (p < n) {
    if (n - p < 4) return err('extension header truncated');
    const type = (b[p]! << 8) | b[p + 1]!;
    const len = (b[p + 2]! << 8) | b[p + 3]!;
    p += 4;
    if (p + len > n) return err(`extension ${type} overruns the ClientHello`);
    const body = b.subarray(p, p + len);
    p += len;
    if (type === EXT_SERVER_NAME) {
      // RFC 8446 §4.2: an extension type appears at most once.
      if (sawSni) return err('server_name sent twice');
      sawSni = true;
      const r = parseServerName(body);
      if (typeof r !== 'string' && r !== undefined) return r;
      sni = r;
    } else if (type === EXT_ALPN) {
      if (sawAlpn) return err('ALPN sent twice');
      sawAlpn = true;
      const r = parseAlpn(body);
      if (!Array.isArray(r)) return r as HelloResult;
      alpn = r;
    }
  }
  return { kind: 'hello', sni, alpn };
}

/** RFC 6066 §3: ServerNameList; the host_name entry (there may be only one). */
function parseServerName(b: Uint8Array): string | undefined | HelloResult {
  if (b.length === 0) return undefined; // a server's empty echo; tolerated from a client too
  if (b.length < 2) return err('server_name truncated');
  const listLen = (b[0]! << 8) | b[1]!;
  if (listLen + 2 !== b.length) return err('server_name list length mismatch');
  let p = 2;
  let name: string | undefined;
  while (p < b.length) {
    if (b.length - p < 3) return err('server_name entry truncated');
    const type = b[p]!;
    const len = (b[p + 1]! << 8) | b[p + 2]!;
    p += 3;
    if (p + len > b.length) return err('server_name entry overruns the list');
    if (type === 0) {
      if (name !== undefined) return err('two host_name entries in server_name');
      const r = hostName(b, p, len);
      if (r === undefined) return err('server_name is not a valid host name');
      name = r;
    }
    p += len;
  }
  return name;
}

/** Letters, digits, '-', '_', '.' (no IP literals by RFC 6066, but tolerated); lower-cased. */
function hostName(b: Uint8Array, start: number, len: number): string | undefined {
  if (len === 0 || len > 255) return undefined;
  let end = start + len;
  if (b[end - 1] === 46 /* . */) end--; // "example.com." names the same host
  if (end === start) return undefined;
  let s = '';
  let label = 0;
  for (let i = start; i < end; i++) {
    let c = b[i]!;
    if (c === 46) {
      if (label === 0) return undefined; // empty label
      label = 0;
    } else {
      label++;
      if (label > 63) return undefined;
      if (c >= 65 && c <= 90) c |= 32;
      else if (!((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 95)) return undefined;
    }
    s += String.fromCharCode(c);
  }
  return label === 0 ? undefined : s;
}

/** RFC 7301 §3.1: ProtocolNameList of non-empty names. */
function parseAlpn(b: Uint8Array): string[] | HelloResult {
  if (b.length < 2) return err('ALPN truncated');
  const listLen = (b[0]! << 8) | b[1]!;
  if (listLen + 2 !== b.length || listLen === 0) return err('ALPN list length mismatch');
  const out: string[] = [];
  let p = 2;
  while (p < b.length) {
    const len = b[p]!;
    if (len === 0 || p + 1 + len > b.length) return err('ALPN protocol name malformed');
    out.push(Buffer.from(b.buffer, b.byteOffset + p + 1, len).toString('latin1'));
    p += 1 + len;
  }
  return out;
}

function hex(n: number): string {
  return n.toString(16).padStart(2, '0');
}
