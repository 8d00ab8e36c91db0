// A pool's `tls` (TLS to its backends) and `http2`, validated, with the PEM files read here in
// the primary: the snapshot carries their text, so workers never touch the filesystem and a
// changed file is picked up by an ordinary reload. Each unreadable file or bad PEM is reported
// at its key (file:line:col) with the file and the reason.

import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ParseResult } from '../shared/cidr.ts';
import { checkHostname } from './address.ts';
import type { DynamicConfig, UpstreamTlsConfig } from './model.ts';
import type { Node } from './tree.ts';
import type { Fields, Walker } from './walker.ts';

export type PemKind = 'certificate' | 'CA bundle' | 'private key';

const BEGIN: Record<PemKind, RegExp> = {
  certificate: /-----BEGIN CERTIFICATE-----/,
  'CA bundle': /-----BEGIN CERTIFICATE-----/,
  'private key': /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----/,
};

/**
 * Read one PEM file and check that it parses as `kind`: its text, or why not (the reason names
 * the file). Synchronous: validation runs once per load in the primary, never in a worker.
 */
export function readPem(path: string, kind: PemKind): ParseResult<string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const e = err as { code?: string; message?: string };
    const why = e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.message;
    return { ok: false, reason: `cannot read ${kind} file '${path}': ${why}${e.code ? ` (${e.code})` : ''}` };
  }
  if (!BEGIN[kind].test(text))
    return {
      ok: false,
      reason: `'${path}' is not a PEM ${kind} (no "-----BEGIN ...-----" line of that kind)`,
    };
  try {
    if (kind === 'private key') createPrivateKey(text);
    else if (kind === 'certificate') new X509Certificate(text);
    // Every certificate of a bundle: the TLS stack would skip a broken one silently.
    else for (const block of text.match(CERT_BLOCKS) ?? []) new X509Certificate(block);
  } catch (err) {
    return { ok: false, reason: `'${path}' is not a valid PEM ${kind}: ${(err as Error).message}` };
  }
  return { ok: true, value: text };
}

const CERT_BLOCKS = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

const TLS_KEYS = ['enabled', 'ca', 'verify', 'servername', 'cert', 'key', 'min_version'] as const;

/**
 * `tls: true`, `tls: false`, or a mapping (enabled unless `enabled: false`). undefined = no TLS.
 * Reads `ca`, `cert` and `key` (paths relative to the config file).
 */
export function validatePoolTls(w: Walker, node: Node, path: string): UpstreamTlsConfig | undefined {
  if (node.kind === 'scalar' && typeof node.value === 'boolean') return node.value ? DEFAULT_TLS : undefined;
  if (node.kind !== 'map') {
    w.typeError(node, path, 'true, false or a mapping');
    return undefined;
  }
  const f = w.map(node, path, TLS_KEYS);
  const enabled = w.bool(f, 'enabled', true);
  const verify = w.bool(f, 'verify', true);
  const minVersion = w.oneOf(f, 'min_version', ['TLSv1.2', 'TLSv1.3'] as const, 'TLSv1.2') ?? 'TLSv1.2';
  let servername = w.str(f, 'servername');
  if (servername !== undefined) {
    // RFC 6066 §3: SNI carries DNS names only.
    const reason = /^[\d.]+$|:/.test(servername)
      ? `'${servername}' is an IP address; SNI carries DNS names only (omit servername for IP backends)`
      : checkHostname(servername);
    if (reason) {
      w.report(f.get('servername')!.pos, f.at('servername'), reason);
      servername = undefined;
    } else servername = servername.toLowerCase().replace(/\.$/, '');
  }
  const ca = pemAt(w, f, 'ca', 'CA bundle');
  const cert = pemAt(w, f, 'cert', 'certificate');
  const key = pemAt(w, f, 'key', 'private key');
  if (f.has('cert') !== f.has('key')) {
    const missing = f.has('cert') ? 'key' : 'cert';
    w.missing(
      f,
      missing,
      `is required with ${missing === 'key' ? 'cert' : 'key'} (a client certificate needs both)`,
    );
  } else if (
    cert !== undefined &&
    key !== undefined &&
    !new X509Certificate(cert).checkPrivateKey(createPrivateKey(key))
  ) {
    w.report(f.get('key')!.pos, f.at('key'), 'does not match the certificate in cert');
  }
  if (!enabled) return undefined;
  return { ca, verify, servername, cert, key, minVersion };
}

const DEFAULT_TLS: UpstreamTlsConfig = {
  ca: undefined,
  verify: true,
  servername: undefined,
  cert: undefined,
  key: undefined,
  minVersion: 'TLSv1.2',
};

function pemAt(w: Walker, f: Fields, key: string, kind: PemKind): string | undefined {
  const file = w.filePath(f, key);
  if (file === undefined) return undefined;
  const r = readPem(file, kind);
  if (r.ok) return r.value;
  w.report(f.get(key)!.pos, f.at(key), r.reason);
  return undefined;
}

/** Warnings for the operator at every load: pools that do not verify their backends. */
export function poolTlsWarnings(config: DynamicConfig): string[] {
  const out: string[] = [];
  config.loadBalancers.forEach((lb, i) => {
    lb.pools.forEach((p, j) => {
      if (p.tls !== undefined && !p.tls.verify)
        out.push(
          `load_balancers[${i}].pools[${j}].tls.verify: false — backend certificates of pool '${lb.name}/${p.name}' are not verified (anyone on the path can impersonate them)`,
        );
    });
  });
  return out;
}
