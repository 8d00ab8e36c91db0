// Test certificates made by the real openssl CLI (Node has no X.509 generator): a CA, leaf
// certificates it signs with given DNS names, an expired one, client certificates. Each call
// writes PEM files into a temp dir (removed when the test process exits) and returns paths
// and texts. Keys are P-256 (fast to generate; a whole test file needs well under a second).

import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './cluster-fiberlb.ts';

export interface Pem {
  readonly cert: string; // path
  readonly key: string; // path
  readonly certPem: string;
  readonly keyPem: string;
  /** SHA-256 fingerprint as Node prints it ("AB:CD:..."). */
  readonly fingerprint256: string;
  readonly serial: string;
}

export interface Ca extends Pem {
  readonly dir: string;
  /** A leaf for `names` (DNS SANs; the first is also the CN). */
  leaf(names: readonly string[], opts?: LeafOptions): Pem;
  /** A client certificate (extendedKeyUsage clientAuth) with subject CN=`cn`. */
  client(cn: string): Pem;
}

export interface LeafOptions {
  /** File name stem (default: the first name). */
  readonly file?: string;
  /** Already expired: valid from 2 days ago to yesterday. */
  readonly expired?: boolean;
  readonly days?: number;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function pem(dir: string, stem: string): Pem {
  const cert = join(dir, `${stem}.crt`);
  const key = join(dir, `${stem}.key`);
  const certPem = readFileSync(cert, 'utf8');
  const x = new X509Certificate(certPem);
  return {
    cert,
    key,
    certPem,
    keyPem: readFileSync(key, 'utf8'),
    fingerprint256: x.fingerprint256,
    serial: x.serialNumber,
  };
}

const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
let serial = 1000;

/** A self-signed CA (CN=`name`) in a fresh temp dir. */
export function makeCa(name = 'FiberLB Test CA', dir = tempDir('fiberlb-certs-')): Ca {
  const stem = `ca-${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`;
  openssl(
    [
      'req',
      '-x509',
      ...KEY,
      '-keyout',
      `${stem}.key`,
      '-out',
      `${stem}.crt`,
      '-days',
      '30',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  const ca = pem(dir, stem);
  const sign = (out: string, subj: string, ext: string[], days: number, expired: boolean): Pem => {
    openssl(['req', '-new', ...KEY, '-keyout', `${out}.key`, '-out', `${out}.csr`, '-subj', subj], dir);
    writeFileSync(join(dir, `${out}.ext`), `${ext.join('\n')}\n`);
    const validity = expired
      ? // `x509 -req` has no -not_before on OpenSSL 3.0; `ca` does, so expired ones go through it.
        []
      : ['-days', String(days)];
    if (expired) {
      writeFileSync(join(dir, 'index.txt'), '');
      writeFileSync(join(dir, 'serial'), `${(++serial).toString(16).padStart(4, '0')}\n`);
      writeFileSync(
        join(dir, `${out}.cnf`),
        [
          '[ca]',
          'default_ca = d',
          '[d]',
          `dir = ${dir}`,
          'database = $dir/index.txt',
          'serial = $dir/serial',
          'new_certs_dir = $dir',
          'default_md = sha256',
          'policy = p',
          'unique_subject = no',
          '[p]',
          'commonName = supplied',
          '',
        ].join('\n'),
      );
      openssl(
        [
          'ca',
          '-batch',
          '-config',
          `${out}.cnf`,
          '-cert',
          ca.cert,
          '-keyfile',
          ca.key,
          '-in',
          `${out}.csr`,
          '-out',
          `${out}.crt`,
          '-startdate',
          utc(-2),
          '-enddate',
          utc(-1),
          '-extfile',
          `${out}.ext`,
          '-notext',
        ],
        dir,
      );
    } else {
      openssl(
        [
          'x509',
          '-req',
          '-in',
          `${out}.csr`,
          '-CA',
          ca.cert,
          '-CAkey',
          ca.key,
          '-set_serial',
          String(++serial),
          ...validity,
          '-extfile',
          `${out}.ext`,
          '-out',
          `${out}.crt`,
        ],
        dir,
      );
    }
    return pem(dir, out);
  };
  return {
    ...ca,
    dir,
    leaf(names, opts = {}) {
      const stem = opts.file ?? names[0]!.replace(/\*/g, 'wildcard');
      return sign(
        stem,
        `/CN=${names[0]}`,
        [`subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`, 'extendedKeyUsage=serverAuth'],
        opts.days ?? 10,
        opts.expired === true,
      );
    },
    client(cn) {
      return sign(`client-${cn}`, `/CN=${cn}/O=FiberLB Tests`, ['extendedKeyUsage=clientAuth'], 10, false);
    },
  };
}

/** YYYYMMDDHHMMSSZ, `days` from now. */
function utc(days: number): string {
  const d = new Date(Date.now() + days * 86_400_000);
  return `${d.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}
