// An in-process https listener (tls/https-listener.ts) over test certificates (certs.ts), and
// the real clients the TLS tests speak through: curl and openssl s_client, run asynchronously
// (the listener lives in the test process, so a blocking spawnSync would deadlock it).

import { execFile } from 'node:child_process';
import type { TestContext } from 'node:test';
import type { PoolConfig, TlsConfig } from '../../src/config/model.ts';
import { DEFAULT_CIPHERS, DEFAULT_ECDH_CURVES } from '../../src/config/model.ts';
import { createHttpsListener } from '../../src/worker/tls/https-listener.ts';
import type { Pem } from './certs.ts';
import {
  type ListenerOverrides,
  listenerConfig,
  listenerState,
  type RunningHttpListener,
  workerEnv,
} from './http-fixtures.ts';
import { freeTcpPort } from './net.ts';

export function tlsConfig(certs: readonly Pem[], o: Partial<TlsConfig> = {}): TlsConfig {
  return {
    minVersion: 'TLSv1.2',
    certificates: certs.map((c) => ({
      cert: c.cert,
      key: c.key,
      certPem: c.certPem,
      keyPem: c.keyPem,
      names: [],
    })),
    ciphers: DEFAULT_CIPHERS,
    ecdhCurves: DEFAULT_ECDH_CURVES,
    http2: true,
    unknownSni: 'default',
    sessionTickets: true,
    clientAuth: 'off',
    clientCa: undefined,
    clientCaPem: undefined,
    clientCertHeaders: { subject: 'x-client-cert-subject', fingerprint: 'x-client-cert-fingerprint' },
    ...o,
  };
}

export async function startHttpsListener(
  t: TestContext,
  o: ListenerOverrides,
  pools: PoolConfig[],
): Promise<RunningHttpListener> {
  const port = await freeTcpPort();
  const state = listenerState(listenerConfig(port, { protocol: 'https', ...o }), pools);
  const env = workerEnv();
  const handle = createHttpsListener(state, env);
  await handle.ready;
  t.after(async () => {
    await handle.close(500);
    await env.upstreams.close();
  });
  return { port, state, handle, env };
}

export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function run(cmd: string, args: readonly string[], input = '', timeoutMs = 10_000): Promise<Run> {
  return new Promise((resolve) => {
    const p = execFile(cmd, args, { encoding: 'utf8', timeout: timeoutMs }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    p.stdin?.end(input);
  });
}

/** curl over TLS to `name` (resolved to 127.0.0.1:port), trusting `ca`. */
export function curl(
  port: number,
  name: string,
  ca: string,
  path = '/',
  extra: readonly string[] = [],
): Promise<Run> {
  return run('curl', [
    '-sS',
    '--max-time',
    '5',
    '--cacert',
    ca,
    '--resolve',
    `${name}:${port}:127.0.0.1`,
    '-D',
    '-',
    ...extra,
    `https://${name}:${port}${path}`,
  ]);
}

/**
 * openssl s_client handshake (stdin closed after a short wait so a TLS 1.3 ticket can arrive).
 * Returns the output; `New,`/`Reused,` and the peer certificate's subject are in it.
 */
export function sClient(port: number, args: readonly string[], waitMs = 300): Promise<Run> {
  return new Promise((resolve) => {
    const p = execFile(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${port}`, ...args],
      { encoding: 'utf8', timeout: 10_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    setTimeout(() => p.stdin?.end(), waitMs);
  });
}

/** The subject CN of the certificate the server presented, from s_client output. */
export function servedCn(out: string): string | undefined {
  return /^subject=.*?CN\s?=\s?([^,\n/]+)/m.exec(out)?.[1]?.trim();
}
