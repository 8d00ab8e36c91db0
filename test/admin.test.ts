// Admin API access: the Bearer scheme is case-insensitive (RFC 9110 §11.1), and start-up warns
// when the admin API listens beyond loopback or the token file is open to group/others.

import assert from 'node:assert/strict';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { adminExposureWarnings, isLoopback, tokenMatches } from '../src/primary/admin/token.ts';
import { startLb, tempDir, writeConfig } from './helpers/cluster-fiberlb.ts';
import { freeTcpPort } from './helpers/net.ts';

const TOKEN = 'a'.repeat(40);

describe('tokenMatches', () => {
  test('any case of the scheme, one or more spaces; nothing else', () => {
    for (const h of [
      `Bearer ${TOKEN}`,
      `bearer ${TOKEN}`,
      `BEARER ${TOKEN}`,
      `bEaReR  ${TOKEN}`,
      `Bearer\t${TOKEN} `,
    ])
      assert.equal(tokenMatches(TOKEN, h), true, h);
    for (const h of [
      undefined,
      '',
      TOKEN,
      `Basic ${TOKEN}`,
      `Bearer${TOKEN}`,
      `Bearer ${TOKEN}x`,
      `Bearer ${TOKEN.slice(1)}`,
      `Bearer ${TOKEN} extra`,
    ])
      assert.equal(tokenMatches(TOKEN, h), false, String(h));
  });
});

describe('admin exposure warnings', () => {
  test('loopback addresses', () => {
    for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1'])
      assert.equal(isLoopback(a), true, a);
    for (const a of ['0.0.0.0', '::', '10.0.10.5', 'fd00::1', '128.0.0.1'])
      assert.equal(isLoopback(a), false, a);
  });

  test('beyond loopback and a group/other-readable token file are named; 0600 on loopback is quiet', async () => {
    const dir = tempDir();
    const file = join(dir, 'admin.token');
    writeFileSync(file, TOKEN, { mode: 0o600 });
    assert.deepEqual(await adminExposureWarnings({ address: '127.0.0.1', port: 9092, tokenFile: file }), []);
    chmodSync(file, 0o640);
    const w = await adminExposureWarnings({ address: '0.0.0.0', port: 9092, tokenFile: file });
    assert.deepEqual(
      w.map((x) => x.msg),
      [
        'admin API listens beyond loopback; keep it on a management network and firewall it',
        'admin token file is accessible by group or others; chmod 600 it',
      ],
    );
    assert.deepEqual(w[1]!.fields, { token_file: file, mode: '0640' });
  });

  test('through a running FiberLB: the warning is logged and a lower-case scheme is accepted', async (t) => {
    const dir = tempDir();
    const adminPort = await freeTcpPort();
    writeFileSync(join(dir, 'admin.token'), `${TOKEN}\n`);
    chmodSync(join(dir, 'admin.token'), 0o644);
    const file = writeConfig(
      dir,
      `admin: { address: 127.0.0.1, port: ${adminPort}, token_file: admin.token }\ncluster: { workers: 1 }\nload_balancers: []\n`,
    );
    const lb = await startLb(file, adminPort);
    t.after(() => lb.stop());
    assert.match(
      lb.output(),
      /"msg":"admin token file is accessible by group or others; chmod 600 it".*"mode":"0644"/,
    );
    assert.doesNotMatch(lb.output(), /beyond loopback/);
    assert.ok(!lb.output().includes(TOKEN), 'token leaked into logs');
    const token = readFileSync(join(dir, 'admin.token'), 'utf8').trim();
    for (const scheme of ['bearer', 'BEARER', 'Bearer']) {
      const r = await fetch(`http://127.0.0.1:${adminPort}/status`, {
        headers: { authorization: `${scheme} ${token}` },
      });
      assert.equal(r.status, 200, scheme);
      await r.body?.cancel();
    }
    const wrong = await fetch(`http://127.0.0.1:${adminPort}/status`, {
      headers: { authorization: `Basic ${token}` },
    });
    assert.equal(wrong.status, 401);
  });
});
