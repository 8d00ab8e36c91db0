// The built CLI (dist/cli.js) on every path a user can get wrong: one "fiberlb: ..." line and
// an exit code (2 usage, 1 otherwise), never a stack trace, and never a signal to a process
// that is not a FiberLB primary.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  CLI,
  childPids,
  ROOT,
  type RunningLb,
  startLb,
  tempDir,
  writeConfig,
} from './helpers/cluster-fiberlb.ts';
import { freeTcpPort, sleep } from './helpers/net.ts';

function cli(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 20_000 });
}

/** Like cli(), without blocking this process (for tests whose own servers must answer it). */
function cliAsync(...args: string[]): Promise<ReturnType<typeof cli>> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { cwd: ROOT });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const kill = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.on('close', (status, signal) => {
      clearTimeout(kill);
      resolve({ status, signal, stdout, stderr, pid: p.pid ?? 0, output: [null, stdout, stderr] });
    });
  });
}

/** Exit code, and stderr is "fiberlb: <message>" (plus usage for code 2) without a stack trace. */
function assertOneLine(r: ReturnType<typeof cli>, code: number, message: RegExp): void {
  assert.equal(r.status, code, `exit ${r.status}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'stack trace printed');
  assert.doesNotMatch(r.stderr, /node:internal|Error \[/);
  const first = r.stderr.split('\n')[0]!;
  assert.match(first, /^fiberlb: /);
  assert.match(first, message);
  if (code === 2) assert.match(r.stderr, /^usage:/m);
  else assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
}

function minimalConfig(adminPort: number, extra = ''): string {
  return `admin: { address: 127.0.0.1, port: ${adminPort}${extra} }\ncluster: { workers: 1 }\nload_balancers: []\n`;
}

describe('fiberlb CLI errors', () => {
  test('no command: usage on stderr, exit 2; help: usage on stdout, exit 0', () => {
    const r = cli();
    assert.equal(r.status, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^usage:\n {2}fiberlb run/);
    const h = cli('help');
    assert.equal(h.status, 0);
    assert.match(h.stdout, /^usage:/);
  });

  test('usage errors exit 2 with one line and the usage', () => {
    assertOneLine(cli('bogus'), 2, /unknown command 'bogus'/);
    assertOneLine(cli('run', '--conifg', 'x.yaml'), 2, /run: unknown option '--conifg'/);
    assertOneLine(cli('check'), 2, /check needs a FILE/);
    assertOneLine(cli('check', 'a.yaml', 'b.yaml'), 2, /check takes one FILE, got 2/);
    assertOneLine(cli('reload', '--pid'), 2, /--pid needs a value/);
    assertOneLine(
      cli('reload', '--pid', 'abc'),
      2,
      /--pid needs a process id \(a positive integer\), got 'abc'/,
    );
    // 0 would signal the whole process group, -1 every process we may signal.
    assertOneLine(cli('reload', '--pid', '0'), 2, /got '0'/);
    assertOneLine(cli('reload', '--pid', '-1'), 2, /got '-1'/);
  });

  test('reload --pid of a dead process: one line, exit 1', async () => {
    const child = spawn(process.execPath, ['-e', '0']);
    const pid = child.pid!;
    await new Promise((r) => child.on('exit', r));
    assertOneLine(cli('reload', '--pid', String(pid)), 1, new RegExp(`no process with PID ${pid}`));
  });

  test('reload --pid of a process that is not FiberLB: refused, the process is not signalled', async (t) => {
    const child: ChildProcess = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)']);
    t.after(() => child.kill('SIGKILL'));
    await sleep(100);
    assertOneLine(
      cli('reload', '--pid', String(child.pid)),
      1,
      /is not a FiberLB primary \(it runs: .*node -e/,
    );
    await sleep(100);
    assert.equal(child.exitCode, null, 'the process was signalled');
    assert.equal(child.signalCode, null);
  });

  test('reload --config: no token file, nothing listening, or something else answering', async (t) => {
    const dir = tempDir();
    const adminPort = await freeTcpPort();
    const file = writeConfig(dir, minimalConfig(adminPort, ', token_file: admin.token'));
    assertOneLine(cli('reload', '--config', file), 1, /admin token .*admin\.token does not exist/);
    // An invalid file: its issues, then one line; nothing is sent.
    const bad = writeConfig(dir, `${minimalConfig(adminPort)}cluster: 3\n`, 'bad.yaml');
    const r = cli('reload', '--config', bad);
    assert.equal(r.status, 1);
    assert.deepEqual(r.stderr.trim().split('\n'), [
      `${bad}:4:1: (yaml): duplicate key 'cluster'`,
      `fiberlb: ${bad} is invalid; nothing reloaded (the running FiberLB keeps its last good config)`,
    ]);
    assert.ok(!existsSync(join(dir, 'admin.token')), 'reload created a token file');
    writeFileSync(join(dir, 'admin.token'), 'short\n');
    assertOneLine(
      cli('reload', '--config', file),
      1,
      /admin token .*admin\.token: too short \(5 characters, at least 16\)/,
    );
    writeFileSync(join(dir, 'admin.token'), 'x'.repeat(32));
    assertOneLine(
      cli('reload', '--config', file),
      1,
      /cannot reach the admin API at 127\.0\.0\.1:\d+: .*ECONNREFUSED/,
    );
    const other = createHttpServer((_req, res) =>
      res.writeHead(404, { 'content-type': 'text/html' }).end('<h1>nope</h1>'),
    );
    await new Promise<void>((r) => other.listen(adminPort, '127.0.0.1', r));
    t.after(() => other.close());
    assertOneLine(
      await cliAsync('reload', '--config', file),
      1,
      /unexpected answer from 127\.0\.0\.1:\d+ \(HTTP 404\): <h1>nope/,
    );
  });

  test('run: admin port taken, or the token file unusable: one line, exit 1', async (t) => {
    const dir = tempDir();
    const adminPort = await freeTcpPort();
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(adminPort, '127.0.0.1', r));
    t.after(() => blocker.close());
    const taken = cli('run', '--config', writeConfig(dir, minimalConfig(adminPort)));
    assert.equal(taken.status, 1);
    assert.doesNotMatch(taken.stderr, /^\s+at /m);
    assert.match(taken.stderr, /"msg":"listen failed","error_class":"listen_failed","listener":"admin"/);
    assert.match(taken.stderr, /^fiberlb: admin API cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE/m);

    mkdirSync(join(dir, 'token-is-a-dir'));
    const bad = cli(
      'run',
      '--config',
      writeConfig(dir, minimalConfig(adminPort, ', token_file: token-is-a-dir'), 'b.yaml'),
    );
    assert.equal(bad.status, 1);
    assert.doesNotMatch(bad.stderr, /^\s+at /m);
    assert.match(bad.stderr, /^fiberlb: admin token .*token-is-a-dir: EISDIR/m);
  });
});

describe('fiberlb reload --pid against a running FiberLB', () => {
  let lb: RunningLb | undefined;
  before(async () => {
    const adminPort = await freeTcpPort();
    lb = await startLb(writeConfig(tempDir(), minimalConfig(adminPort)), adminPort);
  });
  after(() => lb?.stop());

  test('the primary gets SIGHUP and reloads; a worker PID is refused and names its primary', async () => {
    assert.ok(lb);
    const r = cli('reload', '--pid', String(lb.pid));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^sent SIGHUP to ${lb.pid}`));
    const until = Date.now() + 5_000;
    while (!/"msg":"reload","trigger":"SIGHUP"/.test(lb.output()) && Date.now() < until) await sleep(50);
    assert.match(lb.output(), /"msg":"config loaded","revision":2/);
    const [worker] = await childPids(lb.pid);
    assert.ok(worker);
    assertOneLine(
      cli('reload', '--pid', String(worker)),
      1,
      new RegExp(
        `PID ${worker} is a FiberLB worker; reload its primary instead: fiberlb reload --pid ${lb.pid}`,
      ),
    );
    assert.deepEqual(await childPids(lb.pid), [worker], 'the worker was signalled');
  });
});
