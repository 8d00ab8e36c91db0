// Runs the real demo (dist/demo/start.js) on config/fiberlb.yaml moved to free ports, so tests
// never collide with a demo someone is running or with each other. Every process the demo
// starts carries the temp config path on its command line: findDemoProcesses() finds them all.

import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfigText } from '../../src/config/validate.ts';
import { demoBackends } from '../../src/demo/layout.ts';
import { ROOT, writeConfig } from './cluster-fiberlb.ts';
import { freeTcpPort, freeUdpPort, sleep } from './net.ts';

export const DEFAULT_CONFIG = join(ROOT, 'config/fiberlb.yaml');

export interface DemoConfig {
  readonly file: string;
  /** Port in config/fiberlb.yaml → the free port this copy uses. */
  readonly ports: ReadonlyMap<number, number>;
  /** Ports that are UDP (the rest are TCP). */
  readonly udp: ReadonlySet<number>;
}

/** config/fiberlb.yaml with every port moved to a free one and the token file in `dir`. */
export async function demoConfig(dir: string): Promise<DemoConfig> {
  const text = readFileSync(DEFAULT_CONFIG, 'utf8');
  const parsed = parseConfigText(text, DEFAULT_CONFIG);
  if (!parsed.ok) throw new Error('config/fiberlb.yaml does not validate');
  const udp = new Set<number>();
  for (const lb of parsed.config.dynamic.loadBalancers)
    for (const l of lb.listeners) if (l.protocol === 'udp') udp.add(l.port);
  for (const b of demoBackends(parsed.config)) if (b.kind === 'udp') udp.add(b.port);
  const ports = new Map<number, number>();
  for (const m of text.matchAll(/\bport: (\d+)/g)) {
    const p = Number(m[1]);
    if (ports.has(p)) continue;
    // Distinct even across TCP and UDP, so no two demo sockets can land on one number.
    let to: number;
    do to = udp.has(p) ? await freeUdpPort() : await freeTcpPort();
    while ([...ports.values()].includes(to));
    ports.set(p, to);
  }
  const moved = text
    .replace(/\bport: (\d+)/g, (_, p: string) => `port: ${ports.get(Number(p))}`)
    .replace(/^(\s*token_file:).*$/m, `$1 ${join(dir, 'admin.token')}`);
  return { file: writeConfig(dir, moved), ports, udp };
}

/** Rewrite 127.0.0.1:PORT for the ports a DemoConfig moved. */
export function movePorts(text: string, ports: ReadonlyMap<number, number>): string {
  return text.replace(/\b127\.0\.0\.1:(\d+)\b/g, (all, p: string) => {
    const to = ports.get(Number(p));
    return to === undefined ? all : `127.0.0.1:${to}`;
  });
}

export interface RunningDemo {
  readonly proc: ChildProcess;
  output(): string;
  /** Resolves with the exit code (or signal name). */
  readonly exited: Promise<number | string>;
  /** Resolves true when the banner is printed, false if the demo exits first or within 30 s. */
  readonly up: Promise<boolean>;
  /** SIGINT (as Ctrl-C would), SIGKILL after 20 s; resolves when the demo has exited. */
  stop(): Promise<void>;
}

export function runDemo(configFile: string): RunningDemo {
  const proc = spawn(process.execPath, [join(ROOT, 'dist/demo/start.js'), configFile], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let resolveUp: (up: boolean) => void = () => {};
  const up = new Promise<boolean>((resolve) => (resolveUp = resolve));
  // A demo that neither prints its banner nor exits within 30 s counts as not up.
  const giveUp = setTimeout(() => resolveUp(false), 30_000);
  const onBanner = (v: boolean) => {
    clearTimeout(giveUp);
    resolveUp(v);
  };
  const take = (c: Buffer) => {
    out += c.toString();
    if (out.includes('Ctrl-C drains and stops.')) onBanner(true);
  };
  proc.stdout!.on('data', take);
  proc.stderr!.on('data', take);
  const exited = new Promise<number | string>((resolve) =>
    proc.on('exit', (code, signal) => {
      onBanner(false);
      resolve(code ?? signal ?? -1);
    }),
  );
  return {
    proc,
    output: () => out,
    exited,
    up,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGINT');
        const t = setTimeout(() => proc.kill('SIGKILL'), 20_000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}

/** PIDs of live (non-zombie) processes whose command line mentions `needle`. */
export function findDemoProcesses(needle: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8');
      const state = /^State:\s+(\S)/m.exec(readFileSync(`/proc/${name}/status`, 'utf8'))?.[1];
      if (cmdline.includes(needle) && state !== 'Z') out.push(Number(name));
    } catch {
      // gone while we looked
    }
  }
  return out;
}

/** Wait until no process mentions `needle` (a drain takes a moment); returns the stragglers. */
export async function waitGone(needle: string, timeoutMs = 10_000): Promise<number[]> {
  const until = Date.now() + timeoutMs;
  let left = findDemoProcesses(needle);
  while (left.length > 0 && Date.now() < until) {
    await sleep(50);
    left = findDemoProcesses(needle);
  }
  return left;
}
