// Bucket keys: what one rate limit counts by, as a short string.

import { createHash } from 'node:crypto';
import { parseIp } from '../../shared/cidr.ts';

/** Longer keys (header values may be KiBs) are stored as a digest, so a key costs little memory. */
const MAX_KEY_CHARS = 96;

export function boundedKey(s: string): string {
  return s.length <= MAX_KEY_CHARS ? s : `#${createHash('sha256').update(s).digest('base64url')}`;
}

/**
 * The client address grouped by prefix length: "10.1.2.0/24", "2001:db8:1:2::/64"; the address
 * itself at full length (32 / 128). Unparseable input is kept as it is.
 */
export function maskedIp(ip: string, prefix4: number, prefix6: number): string {
  const v6 = ip.includes(':');
  const prefix = v6 ? prefix6 : prefix4;
  if (prefix >= (v6 ? 128 : 32)) return ip;
  const parsed = parseIp(ip);
  if (!parsed.ok) return ip;
  const bytes = parsed.value.bytes;
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    bytes[i]! &= (0xff << (8 - bits)) & 0xff;
  }
  if (!v6) return `${bytes.join('.')}/${prefix}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return `${groups.join(':')}/${prefix}`;
}
