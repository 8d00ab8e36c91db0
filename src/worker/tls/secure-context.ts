// The certificates of one https listener as SecureContexts, one per certificate, picked by the
// ClientHello's server name: exact name first, then a one-label wildcard ("*.example.com"),
// else the first certificate (or a refused handshake with `unknown_sni: refuse`). A client
// without SNI gets the first certificate. Built from the PEM text in the snapshot (the worker
// never reads files) and rebuilt only when the listener's TLS settings change.

import { constants, createHash, X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import type { TlsCertificate, TlsConfig } from '../../config/model.ts';
import { wildcardOf } from '../../shared/tls-names.ts';
import type { TicketKeyRing } from './ticket-keys.ts';

const { SSL_OP_NO_TICKET, SSL_OP_NO_RENEGOTIATION, SSL_OP_CIPHER_SERVER_PREFERENCE } = constants;

export class CertificateStore {
  /** The first certificate's context: no SNI, or an unknown one with unknown_sni: default. */
  readonly fallback: tls.SecureContext;
  private readonly byName = new Map<string, tls.SecureContext>();

  constructor(
    readonly config: TlsConfig,
    /** Same on every worker for a listener, so sessions resume across them. */
    readonly sessionIdContext: string,
    tickets: TicketKeyRing,
  ) {
    let first: tls.SecureContext | undefined;
    for (const c of config.certificates) {
      const ctx = tls.createSecureContext(contextOptions(config, c, tickets.lifetimeS));
      ctx.context.setSessionIdContext(sessionIdContext);
      if (config.sessionTickets) tickets.install(ctx);
      first ??= ctx;
      // Earlier certificates win a name both cover (the first is the default for a reason).
      for (const name of namesOf(c)) if (!this.byName.has(name)) this.byName.set(name, ctx);
    }
    if (first === undefined) throw new Error('https listener has no certificate');
    this.fallback = first;
  }

  /** The context for a ClientHello's server name; undefined = refuse the handshake. */
  select(servername: string): tls.SecureContext | undefined {
    const name = servername.toLowerCase();
    const exact = this.byName.get(name);
    if (exact !== undefined) return exact;
    const w = wildcardOf(name);
    const wild = w === undefined ? undefined : this.byName.get(w);
    if (wild !== undefined) return wild;
    return this.config.unknownSni === 'refuse' ? undefined : this.fallback;
  }
}

/** Everything a context needs; also the server's own (default) options. */
export function contextOptions(
  cfg: TlsConfig,
  c: TlsCertificate,
  lifetimeS: number,
): tls.SecureContextOptions {
  if (c.certPem === undefined || c.keyPem === undefined)
    throw new Error(`certificate ${c.cert} was not loaded by the primary`);
  let secureOptions = SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE;
  if (!cfg.sessionTickets) secureOptions |= SSL_OP_NO_TICKET;
  return {
    cert: c.certPem,
    key: c.keyPem,
    minVersion: cfg.minVersion,
    ciphers: cfg.ciphers,
    ecdhCurve: cfg.ecdhCurves,
    honorCipherOrder: true,
    secureOptions,
    sessionTimeout: lifetimeS,
    // The CA must be in every context: verification uses the SNI-selected one.
    ...(cfg.clientCaPem !== undefined ? { ca: cfg.clientCaPem } : {}),
  };
}

/** Names from the snapshot (the primary parsed them), or from the PEM when validated without. */
function namesOf(c: TlsCertificate): readonly string[] {
  if (c.names.length > 0 || c.certPem === undefined) return c.names;
  const alt = new X509Certificate(c.certPem).subjectAltName ?? '';
  return alt
    .split(', ')
    .filter((p) => p.startsWith('DNS:'))
    .map((p) => p.slice(4).toLowerCase());
}

/**
 * A session id context per listener ("lb/listener"): identical in every worker, so sessions
 * resume across them, and different between listeners, so a session (and the client
 * certificate it verified) never resumes on a listener with other TLS settings.
 */
export function sessionIdContextFor(listener: string): string {
  return createHash('sha256').update(`fiberlb ${listener}`).digest('hex').slice(0, 32);
}
