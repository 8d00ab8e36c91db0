// `npm start [-- CONFIG]`: demo backends + FiberLB on CONFIG (default config/fiberlb.yaml), then
// print what to try — only once /healthz says every worker serves every listener. Anything
// that cannot start (a port taken, an invalid config) ends in one line saying what and what
// to do, a non-zero exit, and nothing left running. Ctrl-C drains FiberLB and stops the backends.

import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { FileSource } from '../config/file-source.ts';
import type { Config } from '../config/model.ts';
import { formatIssue } from '../config/validate.ts';
import { type DemoBackends, DemoBindError, startDemoBackends } from './backends.ts';
import { demoBackends, demoTries, formatTries } from './layout.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const configFile = process.argv[2] ?? 'config/fiberlb.yaml';
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;

/** The one line for a failure; printed last, after everything started has stopped. */
function failLine(message: string): void {
  process.stderr.write(`npm start: ${message}\n`);
}

/**
 * The line for a socket that could not bind: port, what it is for, and what to do, by errno
 * code (EADDRINUSE, EACCES, ...); `detail` is the OS's message for the other codes.
 */
function bindFailure(
  what: string,
  transport: 'tcp' | 'udp',
  address: string,
  port: number,
  code: string | undefined,
  detail: string,
): string {
  const where = `${transport.toUpperCase()} port ${port} on ${address} (${what})`;
  switch (code) {
    case 'EADDRINUSE':
      return `${where} is already in use: stop what holds it (\`ss -${transport === 'udp' ? 'u' : 't'}lnp 'sport = :${port}'\` shows it; a previous npm start?) or change the port in ${configFile}`;
    case 'EACCES':
      return `${where} is not allowed: ports below 1024 need root or CAP_NET_BIND_SERVICE; change the port in ${configFile}`;
    case 'EADDRNOTAVAIL':
      return `${where} cannot be bound: ${address} is not an address of this machine; change it in ${configFile}`;
    default:
      return `${where} cannot be bound: ${detail}; change it in ${configFile}`;
  }
}

/** Can we bind address:port over TCP right now? Returns the error if not. */
function tcpBindError(address: string, port: number): Promise<NodeJS.ErrnoException | undefined> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err));
    s.listen({ port, host: address, exclusive: true }, () => s.close(() => resolve(undefined)));
  });
}

interface Health {
  ok: boolean;
  workers?: number;
  workers_ready?: number;
  listeners_failed?: Array<{ listener: string; bind: string; workers?: number; error: string }>;
}

type Outcome =
  | { kind: 'up' }
  | { kind: 'failed'; lines: string[] }
  | { kind: 'exited'; code: number | null; signal: NodeJS.Signals | null }
  | { kind: 'timeout' };

async function readHealth(url: string): Promise<Health | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    const body = (await res.json().catch(() => ({}))) as Omit<Health, 'ok'>;
    return { ...body, ok: res.ok };
  } catch {
    return undefined; // not listening yet
  }
}

/**
 * Poll /healthz until every worker is ready with every listener open (up), a listener failed
 * (failed), FiberLB exited, or the deadline passed. Up needs our FiberLB alive: the admin port
 * was free a moment before it started, and an exit is seen before the next poll.
 */
async function waitUp(lb: ChildProcess, exited: Promise<Outcome>, url: string): Promise<Outcome> {
  let done: Outcome | undefined;
  void exited.then((o) => (done = o));
  const until = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < until) {
    if (done) return done;
    const h = await readHealth(url);
    if (done) return done;
    const failed = h?.listeners_failed ?? [];
    if (failed.length > 0) {
      return {
        kind: 'failed',
        lines: failed.map((f) => {
          // bind is "proto://address:port"; the errno code leads the error text ("listen EADDRINUSE: ...").
          const m = /^(\w+):\/\/\[?([^\]]*?)\]?:(\d+)$/.exec(f.bind);
          const code = /\b(E[A-Z]{3,})\b/.exec(f.error)?.[1];
          const transport = m?.[1] === 'udp' ? 'udp' : 'tcp';
          return bindFailure(
            `FiberLB listener ${f.listener}`,
            transport,
            m?.[2] ?? f.bind,
            Number(m?.[3] ?? 0),
            code,
            f.error,
          );
        }),
      };
    }
    if (h?.ok && lb.exitCode === null && (h.workers === undefined || h.workers_ready === h.workers))
      return { kind: 'up' };
    await new Promise((r) => setTimeout(r, 100));
  }
  return done ?? { kind: 'timeout' };
}

async function main(): Promise<number> {
  const loaded = await new FileSource(configFile).load();
  if (!loaded.ok) {
    for (const issue of loaded.issues) process.stderr.write(`${formatIssue(issue)}\n`);
    failLine(`${configFile} is invalid (the lines above say where); fix it and run npm start again`);
    return 1;
  }
  const config: Config = loaded.config;
  const { admin } = config.static;

  // A squatter on the admin port would answer /healthz for us: refuse before starting anything.
  const adminErr = await tcpBindError(admin.address, admin.port);
  if (adminErr) {
    failLine(
      bindFailure("FiberLB's admin API", 'tcp', admin.address, admin.port, adminErr.code, adminErr.message),
    );
    return 1;
  }

  const specs = demoBackends(config);
  let backends: DemoBackends;
  try {
    backends = await startDemoBackends(specs);
  } catch (err) {
    if (!(err instanceof DemoBindError)) throw err;
    const { spec } = err;
    const transport = spec.kind === 'udp' ? 'udp' : 'tcp';
    failLine(
      bindFailure(`demo backend ${spec.name}`, transport, spec.address, spec.port, err.code, err.message),
    );
    return 1;
  }
  console.log(
    `demo backends: ${specs.map((s) => `${s.name} (${s.kind === 'http' ? 'http' : `${s.kind} echo`}) ${s.address}:${s.port}`).join(', ')}`,
  );

  const lb = spawn(process.execPath, [`${root}dist/cli.js`, 'run', '--config', configFile], {
    stdio: 'inherit',
  });
  const exited = new Promise<Outcome>((resolve) =>
    lb.once('exit', (code, signal) => resolve({ kind: 'exited', code, signal })),
  );
  const stopLb = async (): Promise<void> => {
    if (lb.exitCode !== null || lb.signalCode !== null) return;
    lb.kill('SIGTERM');
    const kill = setTimeout(() => lb.kill('SIGKILL'), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(kill);
  };
  let stopping = false;
  const onSignal = () => {
    stopping = true;
    void stopLb();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const outcome = await waitUp(
    lb,
    exited,
    `http://${admin.address.includes(':') ? `[${admin.address}]` : admin.address}:${admin.port}/healthz`,
  );
  if (outcome.kind !== 'up') {
    await stopLb();
    await backends.close();
    if (stopping) return 0;
    if (outcome.kind === 'failed') for (const line of outcome.lines) failLine(line);
    else if (outcome.kind === 'exited')
      failLine(`FiberLB exited (${outcome.code ?? outcome.signal}) before it was up; its log above says why`);
    else
      failLine(`FiberLB did not become healthy within ${START_TIMEOUT_MS / 1000} s; its log above says why`);
    return 1;
  }

  console.log(`
FiberLB is up (config: ${configFile}, pid ${lb.pid}). Try:
${formatTries(demoTries(config))}
Re-read the config: kill -HUP ${lb.pid}  or  node dist/cli.js reload --config ${configFile}
Ctrl-C drains and stops.`);
  const end = (await exited) as Extract<Outcome, { kind: 'exited' }>;
  await backends.close();
  return end.code ?? (stopping ? 0 : 1);
}

process.exit(await main());
