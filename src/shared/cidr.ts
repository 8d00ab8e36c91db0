// IPv4/IPv6 address and CIDR parsing that is strict about what it accepts (the platform's
// documents contain addresses like 10.0.300.100 that must be rejected, not "fixed"), plus a
// fast containment check used for trusted-proxy decisions.

import { isIPv6 } from 'node:net';

/** An IPv4/IPv6 network in CIDR form, pre-parsed for fast matching. */
export interface Cidr {
  readonly text: string; // as written, e.g. "10.0.200.0/24"
  readonly family: 4 | 6;
  readonly bytes: readonly number[]; // network address bytes (4 or 16)
  readonly prefix: number;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; reason: string };

/**
 * "::ffff:10.0.0.1" → "10.0.0.1": one spelling per client (a dual-stack socket, or a Node proxy
 * in front writing its peer into X-Forwarded-For, gives the IPv4-mapped form) for XFF, limits,
 * hashing and trusted-proxy checks.
 */
export function plainIp(addr: string | undefined): string {
  if (addr === undefined) return '';
  return addr.startsWith('::ffff:') && addr.includes('.') ? addr.slice(7) : addr;
}

/** Strict dotted-quad: four decimal octets 0–255, no leading zeros, nothing else. */
export function parseIPv4(text: string): ParseResult<number[]> {
  const parts = text.split('.');
  if (parts.length !== 4) return { ok: false, reason: `invalid IPv4 address '${text}': expected 4 octets` };
  const out: number[] = [];
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p))
      return { ok: false, reason: `invalid IPv4 address '${text}': octet '${p}' is not a number 0-255` };
    if (p.length > 1 && p[0] === '0')
      return { ok: false, reason: `invalid IPv4 address '${text}': octet '${p}' has a leading zero` };
    const n = Number(p);
    if (n > 255)
      return { ok: false, reason: `invalid IPv4 address '${text}': octet ${n} is out of range 0-255` };
    out.push(n);
  }
  return { ok: true, value: out };
}

function ipv6Bytes(text: string): number[] {
  // Expand "::" and an embedded IPv4 tail, then read 8 groups.
  let s = text;
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    s = `${s.slice(0, v4.index)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const out: number[] = [];
  for (const g of groups) {
    const n = Number.parseInt(g, 16);
    out.push((n >> 8) & 0xff, n & 0xff);
  }
  return out;
}

/** Parse an IP address (v4 strict, v6 per node:net) into bytes. */
export function parseIp(text: string): ParseResult<{ family: 4 | 6; bytes: number[] }> {
  if (text.includes(':')) {
    if (!isIPv6(text)) return { ok: false, reason: `invalid IPv6 address '${text}'` };
    return { ok: true, value: { family: 6, bytes: ipv6Bytes(text) } };
  }
  const v4 = parseIPv4(text);
  return v4.ok ? { ok: true, value: { family: 4, bytes: v4.value } } : v4;
}

/** "10.0.200.0/24", "::1/128", or a bare address (= host route). */
export function parseCidr(text: string): ParseResult<Cidr> {
  const slash = text.indexOf('/');
  const addr = slash >= 0 ? text.slice(0, slash) : text;
  const ip = parseIp(addr);
  if (!ip.ok) return ip;
  const max = ip.value.family === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max)
      return { ok: false, reason: `invalid prefix length '/${p}' in '${text}': must be 0-${max}` };
    prefix = Number(p);
  }
  // Mask host bits so containment is a straight byte comparison.
  const bytes = ip.value.bytes.slice();
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    bytes[i]! &= (0xff << (8 - bits)) & 0xff;
  }
  return { ok: true, value: { text, family: ip.value.family, bytes, prefix } };
}

/**
 * Does any CIDR contain `ip`? `ip` is a socket address as Node reports it (IPv4-mapped IPv6
 * "::ffff:1.2.3.4" is treated as IPv4). Unparseable input is "not contained".
 */
export function cidrsContain(cidrs: readonly Cidr[], ip: string | undefined): boolean {
  if (!ip || cidrs.length === 0) return false;
  const addr = ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
  const parsed = parseIp(addr);
  if (!parsed.ok) return false;
  const { family, bytes } = parsed.value;
  for (const c of cidrs) {
    if (c.family !== family) continue;
    let match = true;
    for (let i = 0; i < c.bytes.length && match; i++) {
      const bits = Math.max(0, Math.min(8, c.prefix - i * 8));
      if (bits === 0) break;
      const mask = (0xff << (8 - bits)) & 0xff;
      if ((bytes[i]! & mask) !== c.bytes[i]) match = false;
    }
    if (match) return true;
  }
  return false;
}
