// fiberlb's commands (run, check, reload, status, backends, capacity, version), loaded by cli.ts
// in the primary / the command line only. Every failure a user can cause ends in one "fiberlb: ..." line and an exit code (2: usage,
// 1: anything else), never a stack trace.

import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { CAPACITY_USAGE, capacityCommand } from './capacity/command.ts';
import { CHAINFIRE_USAGE, chainfireCommand } from './chainfire-cli.ts';
import { checkConfigFile } from './config/check.ts';
import { FileSource } from './config/file-source.ts';
import { formatIssue } from './config/issue.ts';
import { openConfigSource } from './config/open-source.ts';
import { readToken } from './primary/admin/token.ts';
import type { ReloadOutcome } from './primary/health.ts';
import { APPLY_TIMEOUT_MS, Primary } from './primary/primary.ts';
import { StatusError, statusCommand } from './status-command.ts';

const USAGE = `usage:
  fiberlb run [--config FILE]          run the load balancer (default FILE: config/fiberlb.yaml)
  fiberlb check FILE                   validate a config; exit 0 valid, 1 invalid
  fiberlb reload [--config FILE]       ask a running FiberLB to re-read its config (admin API)
  fiberlb reload --pid PID             same, by sending SIGHUP to the primary
${CHAINFIRE_USAGE}
  fiberlb status [--config FILE]       workers, listeners and backends of a running FiberLB (admin API)
${CAPACITY_USAGE}
  fiberlb version`;

const DEFAULT_CONFIG = 'config/fiberlb.yaml';

class UsageError extends Error {}

function fail(message: string, code = 1): never {
  process.stderr.write(`fiberlb: ${message}\n`);
  process.exit(code);
}

/** `--name value` flags (only those in `known`) and positional arguments. */
function parseArgs(cmd: string, args: string[], known: readonly string[]) {
  const flags = new Map<string, string>();
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) {
      positional.push(a);
      continue;
    }
    if (!known.includes(a)) throw new UsageError(`${cmd}: unknown option '${a}'`);
    const v = args[i + 1];
    if (v === undefined || v.startsWith('--')) throw new UsageError(`${a} needs a value`);
    flags.set(a, v);
    i++;
  }
  return { flags, positional };
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

async function run(args: string[]): Promise<void> {
  const { flags, positional } = parseArgs('run', args, ['--config']);
  if (positional.length > 0) throw new UsageError(`run: unexpected argument '${positional[0]}'`);
  const file = flags.get('--config') ?? DEFAULT_CONFIG;
  const started = await new Primary(await openConfigSource(file)).start();
  if (!started.ok) fail(started.reason);
}

async function check(args: string[]): Promise<void> {
  const { positional } = parseArgs('check', args, []);
  const file = positional[0];
  if (!file) throw new UsageError('check needs a FILE');
  if (positional.length > 1) throw new UsageError(`check takes one FILE, got ${positional.length}`);
  const result = await checkConfigFile(file);
  for (const line of result.lines) (result.ok ? process.stdout : process.stderr).write(`${line}\n`);
  process.exit(result.ok ? 0 : 1);
}

async function reload(args: string[]): Promise<void> {
  const { flags, positional } = parseArgs('reload', args, ['--config', '--pid']);
  if (positional.length > 0) throw new UsageError(`reload: unexpected argument '${positional[0]}'`);
  const pid = flags.get('--pid');
  if (pid !== undefined) {
    if (flags.has('--config')) throw new UsageError('reload takes --config or --pid, not both');
    return signalReload(pid);
  }
  const file = flags.get('--config') ?? DEFAULT_CONFIG;
  // The admin address and token come from the same file, so an invalid file is not sent at all.
  const loaded = await new FileSource(file).load();
  if (!loaded.ok) {
    for (const issue of loaded.issues) process.stderr.write(`${formatIssue(issue)}\n`);
    fail(`${file} is invalid; nothing reloaded (the running FiberLB keeps its last good config)`);
  }
  const { admin } = loaded.config.static;
  if (!admin.tokenFile) fail('admin.token_file is not set: use `fiberlb reload --pid PID` (SIGHUP)');
  const token = await existingToken(admin.tokenFile, file);
  const at = adminAt(admin);
  const { status, body } = await post(admin.address, admin.port, token).catch((err: Error) =>
    fail(`cannot reach the admin API at ${at}: ${err.message}`),
  );
  let r: ReloadOutcome;
  try {
    r = JSON.parse(body) as ReloadOutcome;
    if (typeof r.revision !== 'number') throw new Error('no revision');
  } catch {
    fail(`unexpected answer from ${at} (HTTP ${status}): ${body.trim().slice(0, 200) || '(empty)'}`);
  }
  if (r.ok) {
    process.stdout.write(`reloaded: revision ${r.revision}\n`);
    process.exit(0);
  }
  if (!r.applied) {
    for (const line of r.issues ?? []) process.stderr.write(`${line}\n`);
    process.stderr.write(`reload rejected (HTTP ${status}); still serving revision ${r.revision}\n`);
    process.exit(1);
  }
  for (const f of r.listeners_failed ?? [])
    process.stderr.write(
      `listener ${f.listener} (${f.bind}) is not open in ${f.workers} of ${r.workers} workers: ${f.error}\n`,
    );
  for (const line of r.issues ?? []) process.stderr.write(`${line}\n`);
  process.stderr.write(
    `reloaded with failures (HTTP ${status}): revision ${r.revision} is not fully served\n`,
  );
  process.exit(1);
}

async function status(args: string[]): Promise<void> {
  const { flags, positional } = parseArgs('status', args, ['--config']);
  if (positional.length > 0) throw new UsageError(`status: unexpected argument '${positional[0]}'`);
  const file = flags.get('--config') ?? DEFAULT_CONFIG;
  const loaded = await new FileSource(file).load();
  if (!loaded.ok) {
    for (const issue of loaded.issues) process.stderr.write(`${formatIssue(issue)}\n`);
    fail(`${file} is invalid; cannot find the admin API from it`);
  }
  const { admin } = loaded.config.static;
  let token = process.env.FIBERLB_ADMIN_TOKEN?.trim() || undefined;
  if (token === undefined) {
    if (!admin.tokenFile) fail('no token: set FIBERLB_ADMIN_TOKEN or admin.token_file');
    token = await existingToken(admin.tokenFile, file);
  }
  const colour = process.stdout.isTTY === true && !process.env.NO_COLOR;
  const at = adminAt(admin);
  const r = await statusCommand(admin, token, colour).catch((err: Error) =>
    fail(err instanceof StatusError ? err.message : `cannot reach the admin API at ${at}: ${err.message}`),
  );
  process.stdout.write(r.text);
  process.exit(r.ok ? 0 : 1);
}

/**
 * The running primary's admin token from `tokenFile` (named by config `file`). Never created
 * here: a fresh token could not match the one the running primary holds.
 */
async function existingToken(tokenFile: string, file: string): Promise<string> {
  let token: string | undefined;
  try {
    token = await readToken(tokenFile);
  } catch (err) {
    fail(`admin token ${tokenFile}: ${(err as Error).message}`);
  }
  if (token === undefined) fail(`admin token ${tokenFile} does not exist: is FiberLB running with ${file}?`);
  return token;
}

/** host:port of the admin listener, for messages (an IPv6 address in brackets). */
function adminAt(admin: { readonly address: string; readonly port: number }): string {
  return `${admin.address.includes(':') ? `[${admin.address}]` : admin.address}:${admin.port}`;
}

function post(host: string, port: number, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host, port, path: '/reload', method: 'POST', headers: { authorization: `Bearer ${token}` } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      },
    );
    // The primary answers once its workers applied the reload (bounded by APPLY_TIMEOUT_MS).
    req.setTimeout(APPLY_TIMEOUT_MS + 5_000, () => req.destroy(new Error('no answer in time')));
    req.on('error', reject);
    req.end();
  });
}

/** SIGHUP to a FiberLB primary, after checking that PID is one (a stray SIGHUP kills most processes). */
function signalReload(text: string): void {
  if (!/^\d+$/.test(text) || Number(text) < 1 || !Number.isSafeInteger(Number(text)))
    throw new UsageError(`--pid needs a process id (a positive integer), got '${text}'`);
  const pid = Number(text);
  const what = describeProcess(pid);
  if (what.kind === 'missing') fail(`no process with PID ${pid}`);
  if (what.kind === 'other')
    fail(`PID ${pid} is not a FiberLB primary (it runs: ${what.cmdline}); not signalled`);
  if (what.kind === 'worker')
    fail(`PID ${pid} is a FiberLB worker; reload its primary instead: fiberlb reload --pid ${what.ppid}`);
  try {
    process.kill(pid, 'SIGHUP');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') fail(`no process with PID ${pid}`);
    if (code === 'EPERM') fail(`not permitted to signal PID ${pid} (run as its user)`);
    fail(`cannot signal PID ${pid}: ${(err as Error).message}`);
  }
  process.stdout.write(`sent SIGHUP to ${pid} (its log says whether the reload applied)\n`);
}

type ProcessKind =
  | { kind: 'missing' }
  | { kind: 'primary' }
  | { kind: 'worker'; ppid: string }
  | { kind: 'other'; cmdline: string };

/** From /proc (Linux); where /proc is not there, trust the caller. */
function describeProcess(pid: number): ProcessKind {
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      try {
        readFileSync('/proc/self/cmdline');
      } catch {
        return { kind: 'primary' }; // no /proc at all
      }
      return { kind: 'missing' };
    }
    return { kind: 'primary' }; // not ours to read (EACCES): let kill() decide
  }
  // `node …/dist/cli.js run …`, `…/bin/fiberlb run …` (npx, npm bin), `node dist/cli.js run`.
  const i = argv.findIndex((a) => /(^|\/)(cli\.js|fiberlb)$/.test(a));
  if (i < 0 || argv[i + 1] !== 'run') return { kind: 'other', cmdline: argv.join(' ').slice(0, 120) || '?' };
  // Cluster workers run the same command line; the primary gives them NODE_UNIQUE_ID.
  try {
    if (
      readFileSync(`/proc/${pid}/environ`, 'utf8')
        .split('\0')
        .some((e) => e.startsWith('NODE_UNIQUE_ID='))
    ) {
      const ppid = /^PPid:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '?';
      return { kind: 'worker', ppid };
    }
  } catch {
    // environ is readable only by the owner: without it, assume a primary
  }
  return { kind: 'primary' };
}

async function main(): Promise<void> {
  const [cmd, ...args] = process.argv.slice(2);
  switch (cmd) {
    case 'run':
      return run(args);
    case 'check':
      return check(args);
    case 'reload':
      return reload(args);
    case 'backends':
    case 'plan':
    case 'import':
    case 'export': {
      const r = await chainfireCommand(cmd, args);
      if (r.usage) throw new UsageError(r.usage);
      process.exit(r.code);
      break;
    }
    case 'status':
      return status(args);
    case 'capacity': {
      const r = await capacityCommand(args);
      if (r.usage) throw new UsageError(r.usage);
      process.exit(r.code);
      break;
    }
    case 'version':
    case '--version':
      process.stdout.write(`fiberlb ${version()} (node ${process.version})\n`);
      return;
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return;
    case undefined:
      process.stderr.write(`${USAGE}\n`);
      process.exit(2);
      break;
    default:
      throw new UsageError(`unknown command '${cmd}'`);
  }
}

main().catch((err: unknown) => {
  if (err instanceof UsageError) fail(`${err.message}\n${USAGE}`, 2);
  // A bug, not a user error: still one line (the stack only on request).
  if (process.env.FIBERLB_DEBUG) process.stderr.write(`${(err as Error)?.stack ?? err}\n`);
  fail(`internal error: ${(err as Error)?.message ?? String(err)}`);
});
