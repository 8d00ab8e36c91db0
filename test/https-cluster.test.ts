// https through a real `fiberlb run` with 2 workers: TLS sessions resume on either worker
// (ticket keys from the primary), and certificates rotate on reload (SIGHUP) and with the file
// watch, for new handshakes only, without a failed request.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { makeCa } from './helpers/certs.ts';
import {
  childPids,
  nameServer,
  type RunningLb,
  startLb,
  tempDir,
  writeConfig,
} from './helpers/cluster-fiberlb.ts';
import { freeTcpPort, sleep } from './helpers/net.ts';

const ca = makeCa();

function yaml(o: {
  admin: number;
  port: number;
  backend: number;
  dir: string;
  watch?: boolean;
  rotation?: string;
}) {
  return `
admin: { address: 127.0.0.1, port: ${o.admin}, token_file: ${join(o.dir, 'admin.token')} }
cluster: { workers: 2, drain_timeout: 2s${o.rotation ? `, tls_ticket_rotation: ${o.rotation}` : ''} }
${o.watch ? 'source: { type: file, watch: true }' : ''}
load_balancers:
  - name: pub
    org: platform
    project: core
    vip: 127.0.0.1
    listeners:
      - name: api
        port: ${o.port}
        protocol: https
        default_pool: web
        tls:
          certificates:
            - { cert: api.crt, key: api.key }
    pools:
      - name: web
        backends: [{ address: 127.0.0.1, port: ${o.backend} }]
`;
}

/** One TLS 1.2 connection (tickets are simplest to reason about there); closes it after `fn`. */
function connect(port: number, session?: Buffer): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      port,
      host: '127.0.0.1',
      servername: 'api.test',
      ca: ca.certPem,
      session,
      maxVersion: 'TLSv1.2',
    });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

/** The pid of the process holding the server side of a client socket (ss -p; root). */
function serverPid(lbPort: number, clientPort: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    execFile(
      'ss',
      ['-tnpH', 'state', 'established', `( sport = :${lbPort} and dport = :${clientPort} )`],
      (_e, out) => resolve(Number(/pid=(\d+)/.exec(out ?? '')?.[1]) || undefined),
    );
  });
}

describe('https in cluster mode', () => {
  let lb: RunningLb;
  let port: number;
  let dir: string;
  const backends: Array<{ close(): Promise<void> }> = [];

  before(async () => {
    dir = tempDir();
    const leaf = ca.leaf(['api.test'], { file: 'first' });
    copyFileSync(leaf.cert, join(dir, 'api.crt'));
    copyFileSync(leaf.key, join(dir, 'api.key'));
    const b = await nameServer('web');
    backends.push(b);
    const admin = await freeTcpPort();
    port = await freeTcpPort();
    const file = writeConfig(dir, yaml({ admin, port, backend: b.port, dir, watch: true }));
    lb = await startLb(file, admin);
  });
  after(async () => {
    await lb?.stop();
    for (const b of backends) await b.close();
  });

  test('a session from one worker resumes on the other', async () => {
    const workers = await childPids(lb.pid);
    assert.equal(workers.length, 2);
    const first = await connect(port);
    const session = await new Promise<Buffer>((r) => {
      const s = first.getSession();
      if (s) r(s);
      else first.once('session', r);
    });
    const issuer = await serverPid(port, (first.address() as AddressInfo).port);
    first.destroy();
    assert.ok(issuer !== undefined && workers.includes(issuer), `issuer ${issuer} of ${workers}`);
    const resumedOn = new Set<number>();
    for (let i = 0; i < 40 && resumedOn.size < 2; i++) {
      const s = await connect(port, session);
      const pid = await serverPid(port, (s.address() as AddressInfo).port);
      assert.equal(s.isSessionReused(), true, `connection ${i} (worker ${pid}) did not resume`);
      if (pid !== undefined) resumedOn.add(pid);
      s.destroy();
    }
    assert.deepEqual([...resumedOn].sort(), [...workers].sort(), 'both workers resumed the session');
  });

  test('a replaced certificate is served to new handshakes (watch and SIGHUP); open connections and requests survive', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 4, ca: ca.certPem, servername: 'api.test' });
    let failed = 0;
    let done = 0;
    let stop = false;
    const get = () =>
      new Promise<void>((resolve) => {
        const req = https.get(
          { host: '127.0.0.1', port, path: '/', agent, servername: 'api.test' },
          (res) => {
            res.resume();
            res.on('end', () => {
              if (res.statusCode === 200) done++;
              else failed++;
              resolve();
            });
          },
        );
        req.on('error', () => {
          failed++;
          resolve();
        });
      });
    const loops = [0, 1, 2, 3].map(async () => {
      while (!stop) await get();
    });
    const served = async () => {
      const s = await connect(port);
      const serial = new X509Certificate(s.getPeerX509Certificate()!.raw).serialNumber;
      s.destroy();
      return serial;
    };
    const s0 = await served();
    // A connection opened before the rotations, used again after them.
    const held = await connect(port);
    const ask = () =>
      new Promise<string>((resolve, reject) => {
        let got = '';
        const timer = setTimeout(
          () => reject(new Error(`no answer on the held connection: ${JSON.stringify(got)}`)),
          5000,
        );
        const onData = (c: Buffer) => {
          got += c.toString('latin1');
          if (/\r\n0\r\n\r\n$|\r\n\r\nweb$/.test(got)) {
            held.off('data', onData);
            clearTimeout(timer);
            resolve(got);
          }
        };
        held.on('data', onData);
        held.write('GET / HTTP/1.1\r\nHost: api.test\r\n\r\n');
      });
    assert.match(await ask(), /^HTTP\/1.1 200/);
    // Rotation 1: the file watch picks it up.
    const second = ca.leaf(['api.test'], { file: 'second' });
    copyFileSync(second.key, join(dir, 'api.key.tmp'));
    copyFileSync(second.cert, join(dir, 'api.crt.tmp'));
    const { renameSync } = await import('node:fs');
    renameSync(join(dir, 'api.key.tmp'), join(dir, 'api.key'));
    renameSync(join(dir, 'api.crt.tmp'), join(dir, 'api.crt'));
    let s1 = s0;
    for (let i = 0; i < 60 && s1 !== second.serial; i++) {
      await sleep(100);
      s1 = await served();
    }
    assert.equal(s1, second.serial, 'the watch reloaded the new certificate');
    // Rotation 2: SIGHUP.
    const third = ca.leaf(['api.test'], { file: 'third' });
    copyFileSync(third.key, join(dir, 'api.key'));
    copyFileSync(third.cert, join(dir, 'api.crt'));
    process.kill(lb.pid, 'SIGHUP');
    let s2 = s1;
    for (let i = 0; i < 60 && s2 !== third.serial; i++) {
      await sleep(100);
      s2 = await served();
    }
    assert.equal(s2, third.serial, 'SIGHUP reloaded the new certificate');
    assert.match(await ask(), /^HTTP\/1.1 200/, 'the connection from before the rotations still serves');
    assert.equal(new X509Certificate(held.getPeerX509Certificate()!.raw).serialNumber, s0);
    held.destroy();
    await sleep(300);
    stop = true;
    await Promise.all(loops);
    agent.destroy();
    assert.equal(failed, 0, `${failed} failed of ${done + failed}`);
    assert.ok(done > 20, `only ${done} requests`);
  });
});
