// One throw-away TLS certificate per benchmark run (self-signed P-256 ECDSA, SAN bench.test and
// 127.0.0.1), shared by every TLS target so they all do the same handshake work. Made on first
// use in the run's temp dir; HAProxy wants certificate and key in one file (`pem`).
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const SERVERNAME = 'bench.test';
const made = new Map(); // dir → { cert, key, pem }

export function tlsFiles(dir) {
  let f = made.get(dir);
  if (f) return f;
  f = {
    cert: path.join(dir, 'tls-cert.pem'),
    key: path.join(dir, 'tls-key.pem'),
    pem: path.join(dir, 'tls.pem'),
  };
  execFileSync(
    'openssl',
    [
      ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
      ...['-keyout', f.key, '-out', f.cert, '-days', '2', '-subj', `/CN=${SERVERNAME}`],
      ...['-addext', `subjectAltName=DNS:${SERVERNAME},IP:127.0.0.1`],
    ],
    { stdio: 'ignore' },
  );
  writeFileSync(f.pem, readFileSync(f.cert, 'utf8') + readFileSync(f.key, 'utf8'));
  made.set(dir, f);
  return f;
}
