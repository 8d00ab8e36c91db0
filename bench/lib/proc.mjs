// Process management for the benchmark: spawn pinned to a core, wait for readiness, read the
// CPU time and RSS of a whole process tree from /proc, and make sure every process we start
// is stopped (by PID) on normal exit, on errors and on Ctrl-C.
import { execFileSync, spawn } from 'node:child_process';
import {
  accessSync,
  closeSync,
  constants,
  fstatSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  statSync,
} from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const CLK_TCK = 100; // USER_HZ on Linux (getconf CLK_TCK); /proc/<pid>/stat times are in these ticks.
let hasTaskset;

/** True when `taskset` (util-linux) is available; without it we run unpinned and say so. */
export function tasksetAvailable() {
  if (hasTaskset === undefined) {
    hasTaskset = which('taskset') !== undefined;
  }
  return hasTaskset;
}

const live = new Map(); // pid → { name, child }

let logDir;
let logSeq = 0;
/** Directory for the children's stdout/stderr files (default: a fresh temp dir). */
export function setLogDir(dir) {
  logDir = dir;
}

function readTail(file, max = 65536) {
  let fd;
  try {
    fd = openSync(file, 'r');
    const size = fstatSync(fd).size;
    const len = Math.min(size, max);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, size - len);
    return buf.toString('utf8');
  } catch {
    return '';
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Spawn `cmd args` pinned to `cpu` (a taskset CPU list, e.g. "0"), in its own process group.
 * `taskset` execs the command, so the returned child's PID is the command's own PID.
 * stdout/stderr go to files (not pipes: a chatty proxy must not make this process — on the
 * load core — do work per log line); `child.out.stdout` / `.stderr` read their last 64 KiB.
 */
export function spawnPinned(name, cpu, cmd, args, opts = {}) {
  logDir ??= mkdtempSync(path.join(os.tmpdir(), 'fiberlb-bench-logs-'));
  const base = path.join(logDir, `${String(++logSeq).padStart(3, '0')}-${name}`);
  const [outFile, errFile] = [`${base}.out`, `${base}.err`];
  const [outFd, errFd] = [openSync(outFile, 'w'), openSync(errFile, 'w')];
  const pinned = cpu !== undefined && tasksetAvailable();
  let child;
  try {
    child = spawn(pinned ? 'taskset' : cmd, pinned ? ['-c', String(cpu), cmd, ...args] : args, {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', outFd, errFd],
      detached: true, // own process group, so we can stop the whole group by PID
    });
  } finally {
    closeSync(outFd);
    closeSync(errFd);
  }
  let spawnError = '';
  child.out = {
    get stdout() {
      return readTail(outFile);
    },
    get stderr() {
      return readTail(errFile) + spawnError;
    },
  };
  child.exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (err) => {
      spawnError = `\nspawn error: ${err.message}`;
      resolve({ code: null, signal: null, error: err });
    });
  });
  if (child.pid) live.set(child.pid, { name, child });
  child.exited.then(() => live.delete(child.pid));
  return child;
}

/**
 * Stop a spawned process: SIGTERM to the process itself (so a master — FiberLB's primary,
 * NGINX's master — can shut its children down), then SIGKILL to its whole process group and to
 * every descendant seen earlier (`child.knownTree`) after `graceMs`.
 */
export async function stop(child, graceMs = 3000) {
  if (!child?.pid) return;
  const running = () => child.exitCode === null && child.signalCode === null;
  if (running()) {
    try {
      process.kill(child.pid, 'SIGTERM');
    } catch {}
    await Promise.race([child.exited, sleep(graceMs)]);
  }
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {}
  if (running()) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {}
  }
  killKnownTree(child);
  if (running()) await Promise.race([child.exited, sleep(1000)]);
}

/**
 * Wait for a spawned `child` to exit (its { code, signal }); past `timeoutMs` it is stopped
 * (SIGTERM, SIGKILL after `graceMs`) and "<what> did not finish within N s" is thrown.
 */
export async function exitWithin(child, timeoutMs, what, graceMs = 3000) {
  const result = await Promise.race([child.exited, sleep(timeoutMs).then(() => 'timeout')]);
  if (result === 'timeout') {
    await stop(child, graceMs);
    throw new Error(`${what} did not finish within ${Math.round(timeoutMs / 1000)} s`);
  }
  return result;
}

/** Remember the current descendants of `child` so they can be stopped even if orphaned. */
export function rememberTree(child) {
  const seen = new Map((child.knownTree ?? []).map((p) => [p.pid, p]));
  for (const pid of processTree(child.pid)) {
    const st = readStat(pid);
    if (st) seen.set(pid, { pid, start: st.start });
  }
  child.knownTree = [...seen.values()];
}

/** SIGKILL remembered descendants that still exist — only if the PID was not reused (same start time). */
function killKnownTree(child) {
  for (const { pid, start } of child.knownTree ?? []) {
    if (readStat(pid)?.start !== start) continue;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
}

/** Synchronous last-resort cleanup used from process 'exit'. */
function killAllSync() {
  for (const [pid, { child }] of live) {
    for (const p of [-pid, pid]) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {}
    }
    killKnownTree(child);
  }
  live.clear();
}

let handlersInstalled = false;
/** Make sure every child dies with us: normal exit, uncaught errors, Ctrl-C, SIGTERM. */
export function installCleanupHandlers() {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', killAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      process.stderr.write(`\n${sig}: stopping ${live.size} benchmark process(es)\n`);
      killAllSync();
      process.exit(130);
    });
  }
}

/** Wait until `child` prints a line matching `re` on stdout (or exits / times out). */
export async function waitForOutput(child, re, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const m = child.out.stdout.match(re);
    if (m) return m;
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`exited (${child.exitCode ?? child.signalCode}) before ready`);
    await sleep(20);
  }
  throw new Error(`not ready after ${timeoutMs} ms`);
}

/** Resolve when a TCP connect to host:port succeeds. */
export async function waitForPort(port, { host = '127.0.0.1', timeoutMs = 10_000, child } = {}) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && (child.exitCode !== null || child.signalCode !== null))
      throw new Error(`exited (${child.exitCode ?? child.signalCode}) before listening`);
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, host);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`port ${port} not listening after ${timeoutMs} ms`);
}

/** GET http://host:port/path once; resolves { status, body } or throws. */
export function httpGet(port, path = '/', host = '127.0.0.1', timeoutMs = 2000) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, host);
    let buf = '';
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error('timeout'));
    }, timeoutMs);
    s.on('connect', () =>
      s.write(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nConnection: close\r\n\r\n`),
    );
    s.on('data', (d) => {
      buf += d;
    });
    s.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    s.on('close', () => {
      clearTimeout(t);
      const m = buf.match(/^HTTP\/1\.[01] (\d{3})/);
      if (!m) return reject(new Error(`bad response: ${JSON.stringify(buf.slice(0, 100))}`));
      resolve({ status: Number(m[1]), body: buf.slice(buf.indexOf('\r\n\r\n') + 4) });
    });
  });
}

/** A free TCP port on 127.0.0.1 (bind to 0, read, close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// ---- /proc readers -------------------------------------------------------------------------

function readStat(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may contain spaces/parens: split after the last ')'.
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // rest[0] = state (field 3); ppid = field 4, utime = 14, stime = 15, starttime = 22.
    return { ppid: Number(rest[1]), utime: Number(rest[11]), stime: Number(rest[12]), start: rest[19] };
  } catch {
    return undefined;
  }
}

/** All live descendants of `rootPid` (including itself), found by scanning /proc ppids. */
export function processTree(rootPid) {
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(name);
    if (!st) continue;
    const pid = Number(name);
    if (!children.has(st.ppid)) children.set(st.ppid, []);
    children.get(st.ppid).push(pid);
  }
  const out = [];
  const stack = [rootPid];
  while (stack.length) {
    const pid = stack.pop();
    if (readStat(pid) === undefined) continue;
    out.push(pid);
    for (const c of children.get(pid) ?? []) stack.push(c);
  }
  return out;
}

/**
 * CPU time (µs, user + system) of each process in the tree, keyed by PID. Comparing two
 * snapshots by PID gives the tree's CPU delta; a process that appears later counts from 0.
 */
export function treeCpu(rootPid) {
  const pids = processTree(rootPid);
  const byPid = new Map();
  for (const pid of pids) {
    const st = readStat(pid);
    if (st) byPid.set(pid, ((st.utime + st.stime) * 1e6) / CLK_TCK);
  }
  return byPid;
}

/** CPU µs spent by the tree between two treeCpu() snapshots. */
export function cpuDeltaUs(before, after) {
  let total = 0;
  for (const [pid, us] of after) total += us - (before.get(pid) ?? 0);
  return total;
}

function statusKb(pid, field) {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Current RSS of the tree (sum of VmRSS, KiB) and the sum of per-process peaks (VmHWM, KiB). */
export function treeRss(rootPid) {
  let rss = 0;
  let hwm = 0;
  const pids = processTree(rootPid);
  for (const pid of pids) {
    rss += statusKb(pid, 'VmRSS');
    hwm += statusKb(pid, 'VmHWM');
  }
  return { rssKb: rss, hwmKb: hwm, pids };
}

/** Sample the tree's RSS every `intervalMs`; `.stop()` returns the max summed RSS seen (KiB). */
export function rssSampler(rootPid, intervalMs = 100) {
  let peak = 0;
  const sample = () => {
    const { rssKb } = treeRss(rootPid);
    if (rssKb > peak) peak = rssKb;
  };
  sample();
  const t = setInterval(sample, intervalMs);
  return {
    stop() {
      clearInterval(t);
      sample();
      return peak;
    },
  };
}

/** The CPU model line from /proc/cpuinfo (or "unknown"). */
export function cpuModel() {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    return info.match(/^model name\s*:\s*(.+)$/m)?.[1]?.trim() ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Is `cmd` on PATH (or an absolute path that exists)? Returns the resolved path or undefined. */
export function which(cmd) {
  const dirs = cmd.includes('/') ? [''] : (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin']);
  for (const d of dirs) {
    const p = d ? `${d}/${cmd}` : cmd;
    try {
      accessSync(p, constants.X_OK);
      if (statSync(p).isFile()) return p;
    } catch {}
  }
  return undefined;
}

/**
 * Per-CPU times in µs from /proc/stat: { all, cpu0, cpu1, … } each { busy, task, softirq, total }.
 * busy = everything but idle/iowait; task = user + nice + system + steal (time that shows up in
 * processes' utime/stime); softirq = irq + softirq (with IRQ time accounting, e.g. loopback TCP
 * receive processing, charged to no process).
 */
export function cpuTimes() {
  const out = {};
  const us = (t) => (t * 1e6) / CLK_TCK;
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d*)\s+(.*)$/.exec(line);
    if (!m) continue;
    // user nice system idle iowait irq softirq steal guest guest_nice (guest* already in user)
    const [user, nice, system, idle, iowait, irq, softirq, steal] = m[2]
      .split(/\s+/)
      .map((x) => Number(x) || 0);
    out[m[1] === '' ? 'all' : `cpu${m[1]}`] = {
      busy: us(user + nice + system + irq + softirq + steal),
      task: us(user + nice + system + steal),
      softirq: us(irq + softirq),
      total: us(user + nice + system + idle + iowait + irq + softirq + steal),
    };
  }
  return out;
}

/** Deltas between two cpuTimes() snapshots: { cpuN: { busy, task, softirq } }. */
export function cpuTimesDelta(a, b) {
  const out = {};
  for (const k of Object.keys(b)) {
    if (!a[k]) continue;
    out[k] = {
      busy: b[k].busy - a[k].busy,
      task: b[k].task - a[k].task,
      softirq: b[k].softirq - a[k].softirq,
    };
  }
  return out;
}

/** Pin this process (all its threads) to `cpu` so the orchestrator stays off the proxy core. */
export function pinSelf(cpu) {
  if (!tasksetAvailable()) return false;
  try {
    execFileSync('taskset', ['-a', '-cp', String(cpu), String(process.pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
