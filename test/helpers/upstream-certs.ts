// Certificates for TLS backends in tests, made by the real `openssl` CLI in a temp dir (removed
// when the test ends): a trusted CA with a server leaf (SAN IP:127.0.0.1 and DNS names) and a
// client leaf, plus a second, untrusted CA with its own server leaf for the same names.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

export interface Pem {
  /** Paths (for config files). */
  readonly certFile: string;
  readonly keyFile: string;
  /** Contents (for servers and the model). */
  readonly cert: string;
  readonly key: string;
}

export interface UpstreamCerts {
  readonly dir: string;
  /** The CA a pool's `tls.ca` names. */
  readonly ca: Pem;
  /** Server leaf from `ca`: SAN IP:127.0.0.1, DNS:localhost, DNS:backend.test. */
  readonly server: Pem;
  /** Client leaf from `ca`, subject CN=fiberlb-client (what a backend with requestCert sees). */
  readonly client: Pem;
  /** A CA nobody trusts, and a server leaf from it with the same names. */
  readonly otherCa: Pem;
  readonly untrustedServer: Pem;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

function pem(dir: string, name: string): Pem {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  return { certFile, keyFile, cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
}

function makeCa(dir: string, name: string, cn: string): void {
  openssl(dir, [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '2',
    '-subj',
    `/CN=${cn}`,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.crt`,
  ]);
}

function makeLeaf(dir: string, name: string, ca: string, cn: string, ext: string): void {
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(dir, [
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-subj',
    `/CN=${cn}`,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
  ]);
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${ca}.crt`,
    '-CAkey',
    `${ca}.key`,
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    `${name}.ext`,
    '-out',
    `${name}.crt`,
  ]);
}

const SERVER_EXT =
  'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:backend.test\nextendedKeyUsage=serverAuth\n';
const CLIENT_EXT = 'extendedKeyUsage=clientAuth\n';

/** Generate the set once per call (≈ 0.1 s of openssl); the directory goes when `t` ends. */
export function upstreamCerts(t: TestContext): UpstreamCerts {
  const dir = mkdtempSync(join(tmpdir(), 'fiberlb-upcerts-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  makeCa(dir, 'ca', 'FiberLB Test CA');
  makeLeaf(dir, 'server', 'ca', 'backend.test', SERVER_EXT);
  makeLeaf(dir, 'client', 'ca', 'fiberlb-client', CLIENT_EXT);
  makeCa(dir, 'other-ca', 'Untrusted Test CA');
  makeLeaf(dir, 'untrusted', 'other-ca', 'backend.test', SERVER_EXT);
  return {
    dir,
    ca: pem(dir, 'ca'),
    server: pem(dir, 'server'),
    client: pem(dir, 'client'),
    otherCa: pem(dir, 'other-ca'),
    untrustedServer: pem(dir, 'untrusted'),
  };
}
