// Real certificates for the TLS tests, made by shelling out to openssl: one throw-away CA and
// leaf certificates signed by it, each for the DNS names asked for (SAN), in a temp dir that
// is removed when the test process exits. EC P-256 keys: fast to generate.

import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './cluster-fiberlb.ts';

export interface Leaf {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: Buffer;
  readonly key: Buffer;
}

export interface TestCa {
  readonly dir: string;
  readonly caFile: string;
  readonly ca: Buffer;
  /** A leaf certificate for `names` (the first is also the subject CN). */
  leaf(label: string, names: readonly string[]): Leaf;
}

function openssl(args: readonly string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export function makeCa(): TestCa {
  const dir = tempDir('fiberlb-certs-');
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key'], dir);
  openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      'ca.key',
      '-sha256',
      '-days',
      '2',
      '-subj',
      '/CN=FiberLB test CA',
      '-out',
      'ca.pem',
    ],
    dir,
  );
  const caFile = join(dir, 'ca.pem');
  return {
    dir,
    caFile,
    ca: readFileSync(caFile),
    leaf(label, names) {
      const key = `${label}.key`;
      openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key], dir);
      openssl(['req', '-new', '-key', key, '-subj', `/CN=${names[0]}`, '-out', `${label}.csr`], dir);
      writeFileSync(
        join(dir, `${label}.ext`),
        `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\nextendedKeyUsage=serverAuth\n`,
      );
      openssl(
        [
          'x509',
          '-req',
          '-in',
          `${label}.csr`,
          '-CA',
          'ca.pem',
          '-CAkey',
          'ca.key',
          '-CAcreateserial',
          '-days',
          '2',
          '-sha256',
          '-extfile',
          `${label}.ext`,
          '-out',
          `${label}.pem`,
        ],
        dir,
      );
      const certFile = join(dir, `${label}.pem`);
      const keyFile = join(dir, key);
      return { certFile, keyFile, cert: readFileSync(certFile), key: readFileSync(keyFile) };
    },
  };
}
