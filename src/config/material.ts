// Certificates as data: the primary reads every PEM file a config names while it validates it,
// so the snapshot carries the certificates themselves (workers never touch the filesystem, and
// a replaced file is an ordinary, atomic config change on the next reload). Checked here, each
// problem reported at the config key that names the file: unreadable, not a certificate or
// key, a key that does not belong to its certificate, an expired certificate.

import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** Reads one file as text; throws (with a Node error code) when it cannot. */
export type FileReader = (path: string) => string;

export const readFileText: FileReader = (path) => readFileSync(path, 'utf8');

export type Read = { ok: true; text: string } | { ok: false; reason: string };

export function readMaterial(read: FileReader, path: string): Read {
  try {
    return { ok: true, text: read(path) };
  } catch (err) {
    return { ok: false, reason: osReason(err, path) };
  }
}

export interface CertificateFacts {
  /** DNS (and IP) names it covers, lower-case: SAN entries, else the subject CN. */
  readonly names: string[];
  readonly notAfter: Date;
}

/**
 * Parse a leaf certificate (the first PEM block; the rest is its chain) and its key.
 * `now` decides expiry. Returns the facts, or which file is wrong and why.
 */
export function inspectPair(
  certPem: string,
  keyPem: string,
  now: number,
): { ok: true; facts: CertificateFacts } | { ok: false; field: 'cert' | 'key'; reason: string } {
  let x: X509Certificate;
  try {
    x = new X509Certificate(certPem);
  } catch (err) {
    return { ok: false, field: 'cert', reason: `not a PEM certificate (${(err as Error).message})` };
  }
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    return { ok: false, field: 'key', reason: `not a PEM private key (${(err as Error).message})` };
  }
  if (!x.checkPrivateKey(key))
    return {
      ok: false,
      field: 'key',
      reason: `key does not match the certificate (${x.subject.replace(/\n/g, ', ')})`,
    };
  const notAfter = new Date(x.validTo);
  if (notAfter.getTime() <= now)
    return { ok: false, field: 'cert', reason: `certificate expired on ${notAfter.toISOString()}` };
  const notBefore = new Date(x.validFrom);
  if (notBefore.getTime() > now)
    return { ok: false, field: 'cert', reason: `certificate is not valid before ${notBefore.toISOString()}` };
  return { ok: true, facts: { names: certificateNames(x), notAfter } };
}

/** Check a CA bundle: at least one PEM certificate. */
export function inspectCaBundle(pem: string): string | undefined {
  try {
    new X509Certificate(pem);
    return undefined;
  } catch (err) {
    return `not a PEM certificate bundle (${(err as Error).message})`;
  }
}

function certificateNames(x: X509Certificate): string[] {
  const names: string[] = [];
  for (const part of (x.subjectAltName ?? '').split(', ')) {
    if (part.startsWith('DNS:')) names.push(part.slice(4).toLowerCase());
    else if (part.startsWith('IP Address:')) names.push(part.slice(11).toLowerCase());
  }
  if (names.length > 0) return names;
  // RFC 6125 falls back to the CN only without any DNS SAN.
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(x.subject);
  return cn ? [cn[1]!.toLowerCase()] : [];
}

/** "ENOENT: no such file..." → "cannot read /x: no such file or directory (ENOENT)". */
function osReason(err: unknown, path: string): string {
  const e = err as { code?: unknown; message?: unknown };
  const message = typeof e?.message === 'string' ? e.message : String(err);
  const m = /^([A-Z][A-Z0-9_]+): ([^,]+)/.exec(message);
  return m ? `cannot read ${path}: ${m[2]} (${m[1]})` : `cannot read ${path}: ${message}`;
}
