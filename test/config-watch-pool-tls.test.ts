// With `source: { type: file, watch: true }` a pool's TLS files (tls.ca, tls.cert, tls.key)
// are read through the file source's tracking reader like a listener's certificates
// (config/pool-tls.ts → material.ts readPem with FileSource's reader), so replacing one on disk
// reloads: the FileSource's watch fires, and a running FiberLB serves the next revision.

import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { FileSource } from '../src/config/file-source.ts';
import { makeCa } from './helpers/certs.ts';
import { getText, nameServer, startLb, tempDir, writeConfig } from './helpers/cluster-fiberlb.ts';
import { freeTcpPort, sleep } from './helpers/net.ts';

const first = makeCa('Pool CA one');
const second = makeCa('Pool CA two');
const client = first.client('fiberlb');

/** A config with pool `web` over TLS: its CA bundle and client certificate under pki/. */
function yaml(admin: number, port: number, backend: number): string {
  return `admin: { address: 127.0.0.1, port: ${admin} }
cluster: { workers: 1, drain_timeout: 1s }
source: { type: file, watch: true }
load_balancers:
  - name: w
    org: o
    project: p
    vip: 127.0.0.1
    listeners:
      - { name: api, port: ${port}, protocol: http, default_pool: web }
    pools:
      - name: web
        tls: { ca: pki/ca.pem, cert: pki/client.crt, key: pki/client.key }
        backends: [{ address: 127.0.0.1, port: ${backend} }]
`;
}

/** pki/ca.pem (and the client pair) beside the config; replaced by rename, as tools do. */
function setup(): { dir: string; replaceCa: (pem: string) => void } {
  const dir = tempDir();
  mkdirSync(join(dir, 'pki'));
  copyFileSync(first.cert, join(dir, 'pki/ca.pem'));
  copyFileSync(client.cert, join(dir, 'pki/client.crt'));
  copyFileSync(client.key, join(dir, 'pki/client.key'));
  return {
    dir,
    replaceCa: (from) => {
      copyFileSync(from, join(dir, 'pki/ca.pem.tmp'));
      renameSync(join(dir, 'pki/ca.pem.tmp'), join(dir, 'pki/ca.pem'));
    },
  };
}

describe('pool TLS files are watched', () => {
  test('FileSource: a replaced pool CA bundle fires the watch, and the next load carries it', async () => {
    const { dir, replaceCa } = setup();
    const file = writeConfig(dir, yaml(1, 2, 3));
    const source = new FileSource(file, { cpuCount: 1 });
    try {
      const r = await source.load();
      assert.ok(r.ok, JSON.stringify(r));
      assert.equal(r.config.dynamic.loadBalancers[0]!.pools[0]!.tls!.ca, first.certPem);
      let changes = 0;
      source.watch(() => changes++);
      replaceCa(second.cert);
      for (let i = 0; i < 50 && changes === 0; i++) await sleep(100);
      assert.equal(changes, 1, 'the watch fired once for the replaced CA bundle');
      const next = await source.load();
      assert.ok(next.ok);
      assert.equal(next.config.dynamic.loadBalancers[0]!.pools[0]!.tls!.ca, second.certPem);
      assert.equal(next.revision, r.revision + 1);
    } finally {
      await source.close();
    }
  });

  test('a running FiberLB reloads when a pool CA file changes on disk (revision moves)', async (t) => {
    const { dir, replaceCa } = setup();
    const backend = await nameServer('web');
    t.after(() => backend.close());
    const [admin, port] = [await freeTcpPort(), await freeTcpPort()];
    const file = writeConfig(dir, yaml(admin, port, backend.port));
    const lb = await startLb(file, admin);
    t.after(() => lb.stop());
    const revision = async () =>
      (JSON.parse((await getText(`http://127.0.0.1:${admin}/healthz`)).body) as { revision: number })
        .revision;
    const r0 = await revision();
    replaceCa(second.cert);
    let r = r0;
    for (let i = 0; i < 80 && r === r0; i++) {
      await sleep(100);
      r = await revision();
    }
    assert.equal(r, r0 + 1, `revision ${r0} → ${r}\n${lb.output()}`);
  });
});
