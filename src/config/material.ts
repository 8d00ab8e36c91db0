// Certificates as data: the primary reads every PEM file a config names while it validates it —
// listener certificates, keys and client CAs (validate.ts) and pool TLS files (pool-tls.ts) —
// so the snapshot carries the certificates themselves (workers never touch the filesystem, and
// a replaced file is an ordinary, atomic config change on the next reload). This is the one
// reader of those files. Checked here, each problem reported at the config key that names the
// file: unreadable, not a certificate or key, a key that does not belong to its certificate, an
// expired certificate. Synchronous: validation runs once per load in the primary, never in a
// worker.

import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ParseResult } from '../shared/cidr.ts';

/** Reads one file as text; throws (with a Node error code) when it cannot. */
export type FileReader = (path: string) => string;

export const readFileText: FileReader = (path) => readFileSync(path, 'utf8');

/** A file's text, or why it could not be had (the reason names the file). */
export type Read = ParseResult<string>;

/** The one read: the text, or `phrase(err)` for the error the reader threw. */
function readWith(read: FileReader, path: string, phrase: (err: unknown) => string): Read {
  try {
    return { ok: true, value: read(path) };
  } catch (err) {
    return { ok: false, reason: phrase(err) };
  }
}

/** A listener's file: "cannot read /x: no such file or directory (ENOENT)". */
export function readMaterial(read: FileReader, path: string): Read {
  return readWith(read, path, (err) => `cannot read ${path}: ${osErrorText(err)}`);
}

export type PemKind = 'certificate' | 'CA bundle' | 'private key';

const BEGIN: Record<PemKind, RegExp> = {
  certificate: /-----BEGIN CERTIFICATE-----/,
  'CA bundle': /-----BEGIN CERTIFICATE-----/,
  'private key': /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/,
};

const CERT_BLOCKS = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/**
 * A pool's file: read it and check that it parses as `kind` — its text, or why not
 * ("cannot read CA bundle file 'x': no such file (ENOENT)", "'x' is not a PEM private key ...").
 */
export function readPem(path: string, kind: PemKind, read: FileReader = readFileText): Read {
  const r = readWith(read, path, (err) => {
    const e = err as { code?: string; message?: string };
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.message;
    return `cannot read ${kind} file '${path}': ${why}${e.code ? ` (${e.code})` : ''}`;
  });
  if (!r.ok) return r;
  if (!BEGIN[kind].test(r.value))
    return {
      ok: false,
      reason: `'${path}' is not a PEM ${kind} (no "-----BEGIN ...-----" line of that kind)`,
    };
  try {
    if (kind === 'private key') createPrivateKey(r.value);
    else if (kind === 'certificate') new X509Certificate(r.value);
    // Every certificate of a bundle: the TLS stack would skip a broken one silently.
    else for (const block of r.value.match(CERT_BLOCKS) ?? []) new X509Certificate(block);
  } catch (err) {
    return { ok: false, reason: `'${path}' is not a valid PEM ${kind}: ${(err as Error).message}` };
  }
  return r;
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

/** Does `keyPem` belong to the (first) certificate of `certPem`? Both already parse. */
export function keyMatches(certPem: string, keyPem: string): boolean {
  return new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem));
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

/** "ENOENT: no such file or directory, open '/x'" → "no such file or directory (ENOENT)". */
export function osErrorText(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  const message = typeof e?.message === 'string' ? e.message : String(err);
  const m = /^([A-Z][A-Z0-9_]+): ([^,]+)/.exec(message);
  return m ? `${m[2]} (${m[1]})` : message;
}
