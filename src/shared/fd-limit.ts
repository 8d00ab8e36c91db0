// File descriptors: every client connection, upstream connection and listening socket is one.
// The soft RLIMIT_NOFILE is often 1024 while the hard limit is far higher. The node binary
// itself raises its soft limit to the hard one at start-up (src/node.cc PlatformInit, measured
// on Node 20: started with 256:4096 it runs with 4096:4096), but embedders can turn that off,
// so the primary checks and, where it is still lower, raises it with util-linux
// `prlimit --pid` (Node has no setrlimit). Workers are forked afterwards and inherit it.
// The hard limit itself is the operator's (ulimit -n, systemd LimitNOFILE): see README.
//
// Out of descriptors, Node never reports the accept failure: libuv closes a reserve descriptor,
// accepts the waiting connections and closes them at once (its "EMFILE trick"), so clients see
// a reset and no 'error' event fires. watchFdExhaustion() probes once a second for that state
// and reports it as accept_failed, so it is counted and logged instead of silent.

import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import type { Failures } from './failure.ts';

export interface NofileLimit {
  /** Infinity for "unlimited". */
  readonly soft: number;
  readonly hard: number;
}

/** RLIMIT_NOFILE of a process, from /proc/<pid>/limits (undefined where /proc is not there). */
export function readNofile(pid: number | 'self' = 'self'): NofileLimit | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(
      readFileSync(`/proc/${pid}/limits`, 'utf8'),
    );
    if (!m) return undefined;
    const n = (s: string) => (s === 'unlimited' ? Number.POSITIVE_INFINITY : Number(s));
    return { soft: n(m[1]!), hard: n(m[2]!) };
  } catch {
    return undefined;
  }
}

export type RaiseResult =
  | { readonly raised: true; readonly from: number; readonly to: number }
  | { readonly raised: false; readonly limit: NofileLimit | undefined; readonly reason?: string };

/** Raise the own soft RLIMIT_NOFILE to the hard limit. Never throws: a failure is a reason. */
export function raiseNofileToHard(prlimit = 'prlimit'): RaiseResult {
  const before = readNofile();
  if (!before) return { raised: false, limit: undefined, reason: 'cannot read /proc/self/limits' };
  if (before.soft >= before.hard) return { raised: false, limit: before };
  const hard = before.hard === Number.POSITIVE_INFINITY ? 'unlimited' : String(before.hard);
  const r = spawnSync(prlimit, ['--pid', String(process.pid), `--nofile=${hard}:${hard}`], {
    encoding: 'utf8',
    timeout: 5_000,
  });
  if (r.error) {
    const missing = (r.error as NodeJS.ErrnoException).code === 'ENOENT';
    return {
      raised: false,
      limit: before,
      reason: missing ? 'prlimit not found (install util-linux)' : r.error.message,
    };
  }
  const after = readNofile();
  if (r.status !== 0 || !after || after.soft !== before.hard)
    return { raised: false, limit: after ?? before, reason: r.stderr.trim() || `prlimit exited ${r.status}` };
  return { raised: true, from: before.soft, to: after.soft };
}

/**
 * Once per interval, try to open /dev/null: EMFILE/ENFILE means this process is out of
 * descriptors, so libuv is closing new connections unanswered. Reported as accept_failed once
 * per probe while it lasts (Failures rate-limits the log). O(1) and unref'd.
 */
export function watchFdExhaustion(failures: Failures, intervalMs = 1_000): NodeJS.Timeout {
  const limit = readNofile()?.soft;
  const timer = setInterval(() => {
    try {
      closeSync(openSync('/dev/null', 'r'));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EMFILE' && code !== 'ENFILE') return;
      failures.report('accept_failed', 'out of file descriptors: new connections are closed unanswered', {
        error: `${code}: ${code === 'EMFILE' ? 'process' : 'system'} file descriptor limit reached`,
        nofile_limit: limit,
      });
    }
  }, intervalMs);
  timer.unref();
  return timer;
}
