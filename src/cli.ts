#!/usr/bin/env node
// fiberlb command line. In a cluster worker the same file runs, and only starts the data plane.

import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { checkConfigFile } from './config/check.ts';
import { FileSource } from './config/file-source.ts';
import { loadOrCreateToken } from './primary/admin-token.ts';
import { Primary } from './primary/primary.ts';
import { runWorker } from './worker/worker.ts';

const USAGE = `usage:
  fiberlb run [--config FILE]          run the load balancer (default FILE: config/fiberlb.yaml)
  fiberlb check FILE                   validate a config; exit 0 valid, 1 invalid
  fiberlb reload [--config FILE]       ask a running FiberLB to re-read its config (admin API)
  fiberlb reload --pid PID             same, by sending SIGHUP to the primary
  fiberlb version`;

const DEFAULT_CONFIG = 'config/fiberlb.yaml';

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) fail(`${name} needs a value`);
  return v;
}

function fail(message: string, code = 2): never {
  process.stderr.write(`fiberlb: ${message}\n`);
  process.exit(code);
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

async function run(args: string[]): Promise<void> {
  const file = flag(args, '--config') ?? DEFAULT_CONFIG;
  const primary = new Primary(new FileSource(file));
  if (!(await primary.start())) process.exit(1);
}

async function check(args: string[]): Promise<void> {
  const file = args[0];
  if (!file) fail('check needs a FILE');
  const result = await checkConfigFile(file);
  for (const line of result.lines) (result.ok ? process.stdout : process.stderr).write(`${line}\n`);
  process.exit(result.ok ? 0 : 1);
}

async function reload(args: string[]): Promise<void> {
  const pid = flag(args, '--pid');
  if (pid) {
    process.kill(Number(pid), 'SIGHUP');
    process.stdout.write(`sent SIGHUP to ${pid}\n`);
    return;
  }
  const file = flag(args, '--config') ?? DEFAULT_CONFIG;
  const loaded = await new FileSource(file).load();
  if (!loaded.ok) fail(`${file} is invalid; run \`fiberlb check ${file}\``, 1);
  const { admin } = loaded.config;
  if (!admin.tokenFile) fail('admin.token_file is not set: use `fiberlb reload --pid PID` (SIGHUP)');
  const token = await loadOrCreateToken(admin.tokenFile);
  const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request(
      {
        host: admin.address,
        port: admin.port,
        path: '/reload',
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  }).catch((err: Error) =>
    fail(`cannot reach admin API at ${admin.address}:${admin.port}: ${err.message}`, 1),
  );
  const result = JSON.parse(body) as { ok: boolean; revision: number; issues: string[] };
  if (result.ok) process.stdout.write(`reloaded: revision ${result.revision}\n`);
  else {
    for (const line of result.issues ?? [body]) process.stderr.write(`${line}\n`);
    process.stderr.write(`reload rejected (HTTP ${status}); still serving revision ${result.revision}\n`);
  }
  process.exit(result.ok ? 0 : 1);
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
    case 'version':
    case '--version':
      process.stdout.write(`fiberlb ${version()} (node ${process.version})\n`);
      return;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(`${USAGE}\n`);
      return;
    default:
      fail(`unknown command '${cmd}'\n${USAGE}`);
  }
}

if (cluster.isWorker) runWorker();
else void main();
