// source: { type: file, watch: true } against a running FiberLB: real file edits (in place and
// by rename, as editors save) reload like SIGHUP; an invalid intermediate save is rejected and
// the last good config keeps serving; an unchanged save does nothing; a static change warns
// "takes effect on restart" and a served change never does.

import assert from 'node:assert/strict';
import { renameSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  getText,
  nameServer,
  type RunningLb,
  startLb,
  tempDir,
  writeConfig,
} from './helpers/cluster-fiberlb.ts';
import { freeTcpPort, sleep } from './helpers/net.ts';

function yaml(o: { admin: number; api: number; backend: number; watch?: boolean }): string {
  return `
admin: { address: 127.0.0.1, port: ${o.admin} }
cluster: { workers: 1, drain_timeout: 1s }
source: { type: file, watch: ${o.watch ?? true} }
load_balancers:
  - name: w
    org: o
    project: p
    vip: 127.0.0.1
    listeners:
      - { name: api, port: ${o.api}, protocol: http, default_pool: web }
    pools:
      - name: web
        backends: [{ address: 127.0.0.1, port: ${o.backend} }]
`;
}

describe('config file watch', () => {
  const backends: Array<Awaited<ReturnType<typeof nameServer>>> = [];
  let lb: RunningLb | undefined;
  let file = '';
  let dir = '';
  const ports = { admin: 0, api: 0 };

  const body = async () =>
    (await getText(`http://127.0.0.1:${ports.api}/`, { headers: { connection: 'close' } })).body;
  const revision = async () =>
    (JSON.parse((await getText(`http://127.0.0.1:${ports.admin}/healthz`)).body) as { revision: number })
      .revision;
  /** Until the listener answers `name` from revision `rev` (a watch reload takes ~200 ms). */
  async function until(name: string, rev: number): Promise<void> {
    const deadline = Date.now() + 8_000;
    let last = '';
    while (Date.now() < deadline) {
      last = await body();
      if (last === name && (await revision()) === rev) return;
      await sleep(50);
    }
    assert.fail(`still '${last}' at revision ${await revision()}, want '${name}' at ${rev}\n${lb?.output()}`);
  }

  before(async () => {
    backends.push(await nameServer('a'), await nameServer('b'), await nameServer('c'));
    ports.admin = await freeTcpPort();
    ports.api = await freeTcpPort();
    dir = tempDir();
    file = writeConfig(dir, yaml({ ...ports, backend: backends[0]!.port }));
    lb = await startLb(file, ports.admin);
  });
  after(async () => {
    await lb?.stop();
    await Promise.all(backends.map((b) => b.close()));
  });

  test('an in-place edit reloads, without a restart warning', async () => {
    assert.equal(await body(), 'a');
    assert.equal(await revision(), 1);
    writeFileSync(file, yaml({ ...ports, backend: backends[1]!.port }));
    await until('b', 2);
    assert.match(lb!.output(), /"msg":"reload","trigger":"watch"/);
    assert.doesNotMatch(lb!.output(), /takes effect on restart/);
  });

  test('a save by rename (write a temp file, rename over) reloads', async () => {
    const tmp = join(dir, '.fiberlb.yaml.swp');
    writeFileSync(tmp, yaml({ ...ports, backend: backends[2]!.port }));
    renameSync(tmp, file);
    await until('c', 3);
    // The file watch was re-armed on the new inode: an in-place edit after the rename is seen.
    writeFileSync(file, yaml({ ...ports, backend: backends[0]!.port }));
    await until('a', 4);
  });

  test('an invalid intermediate save is rejected and the last good config keeps serving', async () => {
    const before = lb!.output().length;
    writeFileSync(file, `${yaml({ ...ports, backend: backends[1]!.port }).slice(0, 200)}\n  oops: [\n`);
    const deadline = Date.now() + 8_000;
    while (!lb!.output().slice(before).includes('"error_class":"config_invalid"') && Date.now() < deadline)
      await sleep(50);
    assert.match(lb!.output().slice(before), /"msg":"config rejected; keeping last good config"/);
    assert.equal(await body(), 'a');
    assert.equal(await revision(), 4);
    writeFileSync(file, yaml({ ...ports, backend: backends[1]!.port }));
    await until('b', 5);
  });

  test('touching the file or writing the same content does not reload', async () => {
    const now = new Date();
    utimesSync(file, now, now);
    writeFileSync(file, yaml({ ...ports, backend: backends[1]!.port }));
    writeFileSync(join(dir, 'unrelated.txt'), 'x');
    await sleep(1_000);
    assert.equal(await revision(), 5);
  });

  test('a static change warns "takes effect on restart" and keeps the started admin', async () => {
    const other = await freeTcpPort();
    writeFileSync(file, yaml({ admin: other, api: ports.api, backend: backends[2]!.port, watch: false }));
    await until('c', 6);
    const warn = lb!
      .output()
      .split('\n')
      .find((l) => l.includes('takes effect on restart'));
    assert.ok(warn, lb!.output());
    assert.deepEqual((JSON.parse(warn) as { changed: string[] }).changed, ['admin.port', 'source.watch']);
    // The admin API stays where it started (the revision above was read from it).
  });
});
