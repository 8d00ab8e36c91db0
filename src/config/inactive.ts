// Parts of the config shape that validate today but whose runtime arrives with later work.
// They are named to the operator (by `check` and at startup) instead of being silently ignored.

import type { DynamicConfig } from './model.ts';

export function inactiveFeatures(config: DynamicConfig): string[] {
  const notes: string[] = [];
  config.loadBalancers.forEach((lb, i) => {
    lb.listeners.forEach((l, j) => {
      const at = `load_balancers[${i}].listeners[${j}]`;
      if (l.protocol === 'https')
        notes.push(`${at}: https (TLS termination) is not served yet; this listener will not open`);
      if (l.protocol === 'tls_passthrough')
        notes.push(`${at}: tls_passthrough is a plain TCP pass-through for now (no SNI routing yet)`);
      if (l.rateLimit) notes.push(`${at}.rate_limit: rate limiting is not enforced yet`);
    });
  });
  return notes;
}
