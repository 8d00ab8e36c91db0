// A real redis-server (Debian's) for the global rate-limit tests: on a free 127.0.0.1 port in
// a temp dir, no persistence; stopped by PID when the test ends, even on failure.

import { type ChildProcess, spawn } from 'node:child_process';
import { connect } from 'node:net';
import type { TestContext } from 'node:test';
import { tempDir } from './cluster-fiberlb.ts';
import { freeTcpPort, sleep } from './net.ts';

export interface RunningRedis {
  readonly port: number;
  /** Start (again) on the same port. */
  start(): Promise<void>;
  /** SIGKILL: Redis vanishes mid-test. */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT: a Redis that stalls (accepts, never answers). */
  pause(): void;
  resume(): void;
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(500, () => done(false));
    s.on('error', () => done(false));
    s.on('data', (c) => {
      got += c.toString();
      if (got.includes('\r\n')) done(got.startsWith('+PONG'));
    });
    s.write('PING\r\n');
  });
}

export async function startRedis(t: TestContext | { after(fn: () => unknown): void }): Promise<RunningRedis> {
  const port = await freeTcpPort();
  const dir = tempDir('fiberlb-redis-');
  let proc: ChildProcess | undefined;
  const r: RunningRedis = {
    port,
    async start() {
      proc = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
        { stdio: 'ignore' },
      );
      const until = Date.now() + 5_000;
      while (!(await ping(port))) {
        if (Date.now() > until) throw new Error(`redis-server did not answer on ${port}`);
        await sleep(20);
      }
    },
    async kill() {
      const p = proc;
      proc = undefined;
      if (!p || p.exitCode !== null) return;
      p.kill('SIGCONT');
      const exited = new Promise((res) => p.once('exit', res));
      p.kill('SIGKILL');
      await exited;
    },
    pause() {
      proc?.kill('SIGSTOP');
    },
    resume() {
      proc?.kill('SIGCONT');
    },
  };
  t.after(() => r.kill());
  await r.start();
  return r;
}
