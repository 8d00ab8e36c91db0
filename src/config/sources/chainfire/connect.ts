// One Store from the source config: etcd v3 (default) or Chainfire's own wire names.

import { readFileSync } from 'node:fs';
import type { ChainfireSourceConfig } from '../../model.ts';
import { EtcdStore } from './etcd-store.ts';
import { GrpcStore } from './grpc-store.ts';
import type { Store } from './store.ts';

export function openStore(cfg: ChainfireSourceConfig, callTimeoutMs?: number): Store {
  const password = cfg.passwordFile ? readFileSync(cfg.passwordFile, 'utf8').trim() : undefined;
  const opts = {
    endpoints: cfg.endpoints,
    ...(cfg.tls ? { tls: cfg.tls } : {}),
    ...(cfg.username !== undefined ? { username: cfg.username, password } : {}),
    ...(callTimeoutMs !== undefined ? { callTimeoutMs } : {}),
  };
  return cfg.api === 'chainfire' ? new GrpcStore(opts, 'chainfire') : new EtcdStore(opts);
}

export function describeSource(cfg: ChainfireSourceConfig): string {
  return `chainfire:${cfg.endpoints.join(',')}${cfg.prefix}`;
}
