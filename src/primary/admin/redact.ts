// Secrets never leave the admin API: the running config is shown with every field whose name
// says it holds one replaced by "[redacted]" (by name, so fields added later by other issues
// are covered when they follow the naming: *_password, *_token, *_secret, credentials, ...).

import { isPrivateKey } from '../../config/secrets.ts';

export const REDACTED = '[redacted]';

/** Field names (snake_case, as the API shows them) that hold secrets wherever they appear. */
export const SECRET_FIELDS: readonly string[] = [
  'password',
  'passphrase',
  'secret',
  'token',
  'credentials',
  'private_key',
  'pfx',
  'authorization',
  'api_key',
];

const SECRET_SUFFIX = /_(password|passphrase|secret|token|credentials|private_key|api_key)$/;

/**
 * A field that holds a secret: one of SECRET_FIELDS or ending like one (`redis_password`), and
 * `key` inside a TLS section (a private key or its path; `rate_limit.key` is not a secret).
 */
export function isSecretField(name: string, parents: readonly string[]): boolean {
  if (SECRET_FIELDS.includes(name) || SECRET_SUFFIX.test(name)) return true;
  return (
    (name === 'key' || name === 'key_pem') &&
    parents.some((p) => p === 'tls' || p === 'certificates' || p === 'client_tls')
  );
}

/** A deep copy of `value` with snake_case keys and every secret field redacted. */
export function redactedConfig(value: unknown, parents: readonly string[] = []): unknown {
  if (Array.isArray(value)) return value.map((v) => redactedConfig(v, parents));
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const name = snake(k);
    // By name, and by value: PEM private key text is hidden under whatever name it travels.
    const secret = isSecretField(name, parents) || (typeof v === 'string' && isPrivateKey(v));
    out[name] = secret && v !== undefined ? REDACTED : redactedConfig(v, [...parents, name]);
  }
  return out;
}

/** "connectMs" → "connect_ms"; snake_case stays as it is. */
export function snake(k: string): string {
  return k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}
