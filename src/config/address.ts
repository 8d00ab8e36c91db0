// Address syntax checks for config values. Anything that looks like dotted numbers is an IPv4
// attempt and must be a valid one: "10.0.300.100" is an error naming octet 300, never a hostname.
// Each check returns undefined when fine, or the reason it is not.

import { parseCidr, parseIp } from '../shared/cidr.ts';

const DOTTED_NUMBERS = /^[\d.]+$/;
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

function looksLikeIp(text: string): boolean {
  return text.includes(':') || DOTTED_NUMBERS.test(text);
}

/** An IP literal (v4 or v6); hostnames are refused because a VIP must be bindable as written. */
export function checkIpLiteral(text: string): string | undefined {
  if (!looksLikeIp(text)) return `expected an IP address, got '${text}' (hostnames are not allowed here)`;
  const ip = parseIp(text);
  return ip.ok ? undefined : ip.reason;
}

/** RFC 1123 host name; a trailing dot (FQDN) is allowed. */
export function checkHostname(text: string): string | undefined {
  const name = text.endsWith('.') ? text.slice(0, -1) : text;
  if (name.length === 0 || name.length > 253) return `invalid hostname '${text}': must be 1-253 characters`;
  const labels = name.split('.');
  for (const l of labels) {
    if (!LABEL.test(l))
      return `invalid hostname '${text}': label '${l}' must be 1-63 letters, digits or '-', not starting or ending with '-'`;
  }
  // An all-numeric top label would make the name indistinguishable from an IPv4 address.
  if (/^\d+$/.test(labels[labels.length - 1]!))
    return `invalid hostname '${text}': the last label must not be all-numeric`;
  return undefined;
}

/** A backend address: an IP literal or a DNS host name. */
export function checkHostOrIp(text: string): string | undefined {
  return looksLikeIp(text) ? checkIpLiteral(text) : checkHostname(text);
}

/** "10.0.200.0/24", "::1/128" or a bare address. */
export function checkCidr(text: string): string | undefined {
  const addr = text.split('/')[0]!;
  if (!looksLikeIp(addr)) return `expected an IP address or CIDR, got '${text}'`;
  const c = parseCidr(text);
  return c.ok ? undefined : c.reason;
}

/** Same address written differently ("::1" vs "0:0::1") must compare equal. */
export function canonicalAddress(text: string): string {
  const ip = parseIp(text);
  if (ip.ok) return `${ip.value.family}/${ip.value.bytes.join('.')}`;
  return text.toLowerCase().replace(/\.$/, '');
}
