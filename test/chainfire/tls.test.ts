// test: serial — real etcd members on ports picked free: alone, no other test can take them first.
// source.tls against a real etcd that serves TLS and requires a client certificate: FiberLB
// connects with the CA and its client certificate; without the client certificate it cannot.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { Etcd3 } from 'etcd3';
import { EtcdStore } from '../../src/config/sources/chainfire/etcd-store.ts';
import { body, eventually, putBackend, seedAB, startChainfireLb } from '../helpers/chainfire.ts';
import { tempDir } from '../helpers/cluster-fiberlb.ts';
import { EtcdCluster } from '../helpers/etcd.ts';

/** A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl. */
function pki(dir: string) {
  const o = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  o(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '1',
    '-subj',
    '/CN=test-ca',
  );
  writeFileSync(
    join(dir, 'server.ext'),
    'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n',
  );
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const n of ['server', 'client']) {
    o('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${n}.key`, '-out', `${n}.csr`, '-subj', `/CN=${n}`);
    o(
      'x509',
      '-req',
      '-in',
      `${n}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${n}.crt`,
      '-days',
      '1',
      '-extfile',
      `${n}.ext`,
    );
  }
  return (n: string) => join(dir, n);
}

test('TLS with a client certificate', async (t) => {
  const dir = tempDir();
  const f = pki(dir);
  const etcd = await EtcdCluster.start({
    tls: { ca: f('ca.crt'), cert: f('server.crt'), key: f('server.key') },
  });
  t.after(() => etcd.stop());
  const { readFileSync } = await import('node:fs');
  const c = new Etcd3({
    hosts: etcd.endpoints,
    credentials: {
      rootCertificate: readFileSync(f('ca.crt')),
      certChain: readFileSync(f('client.crt')),
      privateKey: readFileSync(f('client.key')),
    },
  });
  t.after(() => c.close());
  const { b, port } = await seedAB(t, c);

  const lb = await startChainfireLb(etcd.endpoints, {
    extra: `  tls: { ca: ${f('ca.crt')}, cert: ${f('client.crt')}, key: ${f('client.key')} }`,
  });
  t.after(() => lb.lb.stop());
  assert.equal(await body(port), '200 a');
  await putBackend(c, 'b0', b.port);
  await eventually(async () => (await body(port)) === '200 b');

  // The CA alone is not enough: etcd requires the client certificate.
  const noCert = new EtcdStore({ endpoints: etcd.endpoints, tls: { ca: f('ca.crt') }, callTimeoutMs: 2_000 });
  await assert.rejects(noCert.range('/fiberlb/'));
  await noCert.close();
});
