// Private keys are config values (the primary reads PEM files into the snapshot) but must never
// leave the process: wherever the config is shown or compared outside the data plane (GET
// /config, `fiberlb plan`), a private key is replaced by a digest of it. The digest still tells
// whether a key changed, and reveals nothing.

import { createHash } from 'node:crypto';

const PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;
const DIGEST = 'sha256:';

/** Whether a config string is private key material (PEM). */
export function isPrivateKey(v: string): boolean {
  return PRIVATE_KEY.test(v);
}

/** A private key's stand-in: "sha256:<hex>" of the PEM text; anything else unchanged. */
export function hideIfPrivateKey(v: unknown): unknown {
  return typeof v === 'string' && isPrivateKey(v)
    ? `${DIGEST}${createHash('sha256').update(v).digest('hex')}`
    : v;
}

/** A deep copy of `value` with every private key replaced by its digest. */
export function withoutPrivateKeys<T>(value: T): T {
  return JSON.parse(JSON.stringify(value, (_k, v: unknown) => hideIfPrivateKey(v))) as T;
}
