// A pool's `tls` (TLS to its backends) and `http2`, validated, with the PEM files read in the
// primary (material.ts, the one reader of a config's PEM files): the snapshot carries their
// text, so workers never touch the filesystem and a changed file is picked up by an ordinary
// reload (or, with `source: { type: file, watch: true }`, by the watch: they are read through
// the source's tracking reader). Each unreadable file or bad PEM is reported at its key
// (file:line:col) with the file and the reason.

import { checkHostname } from './address.ts';
import { type FileReader, keyMatches, type PemKind, readFileText, readPem } from './material.ts';
import type { DynamicConfig, UpstreamTlsConfig } from './model.ts';
import type { Node } from './tree.ts';
import type { Fields, Walker } from './walker.ts';

const TLS_KEYS = ['enabled', 'ca', 'verify', 'servername', 'cert', 'key', 'min_version'] as const;

/**
 * `tls: true`, `tls: false`, or a mapping (enabled unless `enabled: false`). undefined = no TLS.
 * Reads `ca`, `cert` and `key` (paths relative to the config file) with `read`: the config
 * source's reader when it has one (the file source's records every file, so a changed pool
 * certificate reloads like a listener's with `watch: true`).
 */
export function validatePoolTls(
  w: Walker,
  node: Node,
  path: string,
  read: FileReader = readFileText,
): UpstreamTlsConfig | undefined {
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
  const ca = pemAt(w, f, 'ca', 'CA bundle', read);
  const cert = pemAt(w, f, 'cert', 'certificate', read);
  const key = pemAt(w, f, 'key', 'private key', read);
  if (f.has('cert') !== f.has('key')) {
    const missing = f.has('cert') ? 'key' : 'cert';
    w.missing(
      f,
      missing,
      `is required with ${missing === 'key' ? 'cert' : 'key'} (a client certificate needs both)`,
    );
  } else if (cert !== undefined && key !== undefined && !keyMatches(cert, key)) {
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

function pemAt(w: Walker, f: Fields, key: string, kind: PemKind, read: FileReader): string | undefined {
  const file = w.filePath(f, key);
  if (file === undefined) return undefined;
  const r = readPem(file, kind, read);
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
