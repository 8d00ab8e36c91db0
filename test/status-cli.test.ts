// `fiberlb status` against a running FiberLB: tables of workers, listeners and backends, a
// backend taken out shows as out with its reason, the token from FIBERLB_ADMIN_TOKEN wins over
// the file (and a wrong one fails cleanly), colours only on a terminal (a real pty via script(1)).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { CLI, ROOT, startPubWebLb, tempDir, writeConfig } from './helpers/cluster-fiberlb.ts';

const ESC = String.fromCharCode(27);

function status(file: string, env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [CLI, 'status', '--config', file], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '', ...env },
    timeout: 20_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('fiberlb status', () => {
  test('tables, a backend out with its reason, token from the environment, colours only on a TTY', async (t) => {
    const { file, httpPort, token, a, b, backendAction } = await startPubWebLb(t, 2);

    const first = status(file);
    assert.equal(first.code, 0, first.err);
    assert.ok(!first.out.includes(`${ESC}[`), 'no colour codes when stdout is not a TTY');
    assert.match(first.out, /^FiberLB \S+ {2}ok {2}revision 1 \(.*fiberlb\.yaml\) {2}workers 2\/2/);
    assert.match(first.out, /^Listeners\nlistener +protocol +bind +default pool +state\n-+/m);
    assert.match(
      first.out,
      new RegExp(`^pub/web +http +http://127\\.0\\.0\\.1:${httpPort} +web +open$`, 'm'),
    );
    assert.match(
      first.out,
      new RegExp(`^pub/web +a +127\\.0\\.0\\.1:${a.port} +1 +enabled +unchecked +serving$`, 'm'),
    );
    assert.match(first.out, /^0 +\d+ +1 +ready +0$/m);

    assert.equal(await backendAction('b', 'drain'), 200);
    // The environment's token is used (the file's would work too): a wrong one fails cleanly.
    const bad = status(file, { FIBERLB_ADMIN_TOKEN: 'x'.repeat(32) });
    assert.equal(bad.code, 1);
    assert.equal(bad.err, 'fiberlb: the admin API refused the token (HTTP 401)\n');
    const after = status(file, { FIBERLB_ADMIN_TOKEN: token });
    assert.equal(after.code, 0, after.err);
    assert.match(
      after.out,
      new RegExp(
        `^pub/web +b +127\\.0\\.0\\.1:${b.port} +1 +drain +unchecked +out +admin_state drain \\(admin API\\)$`,
        'm',
      ),
    );

    // A real terminal: script(1) runs it on a pty.
    const tty = spawnSync(
      'script',
      ['-qec', `${process.execPath} ${CLI} status --config ${file}`, '/dev/null'],
      {
        cwd: ROOT,
        encoding: 'utf8',
        env: { ...process.env, NO_COLOR: '' },
        timeout: 20_000,
      },
    );
    assert.equal(tty.status, 0, tty.stderr);
    assert.ok(tty.stdout.includes(`${ESC}[32mserving${ESC}[0m`), tty.stdout);
    assert.ok(tty.stdout.includes(`${ESC}[31mout${ESC}[0m`), tty.stdout);
  });

  test('unreachable admin API: one line, exit 1', () => {
    const dir = tempDir();
    const file = writeConfig(dir, 'admin: { address: 127.0.0.1, port: 9 }\nload_balancers: []\n');
    const r = status(file, { FIBERLB_ADMIN_TOKEN: 'y'.repeat(32) });
    assert.equal(r.code, 1);
    assert.match(r.err, /^fiberlb: cannot reach the admin API at 127\.0\.0\.1:9: .*ECONNREFUSED/);
  });
});
