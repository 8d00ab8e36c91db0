// Real etcd (Debian etcd-server, /usr/bin/etcd) for the Chainfire tests: one member or a
// 3-member cluster on free 127.0.0.1 ports in temp dirs. Members can be killed and restarted;
// stop() kills every process by PID and removes the data dirs, also when a test failed (call it
// from t.after). Each cluster gets its own --initial-cluster-token so members of two test
// clusters can never join each other.

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { tempDir } from './cluster-fiberlb.ts';
import { freeTcpPort, sleep } from './net.ts';

export const ETCD_BIN = process.env.FIBERLB_ETCD ?? '/usr/bin/etcd';

export interface EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  proc: ChildProcess | undefined;
  output: string;
}

export interface EtcdOptions {
  readonly members?: 1 | 3;
  /** Extra etcd flags for every member, e.g. ['--auth-token', 'simple', '--auth-token-ttl', '2']. */
  readonly args?: readonly string[];
  /** Serve clients over TLS with these PEM files and require a client certificate signed by `ca`. */
  readonly tls?: { readonly ca: string; readonly cert: string; readonly key: string };
}

export class EtcdCluster {
  private stopped = false;
  private constructor(
    readonly members: EtcdMember[],
    private readonly token: string,
    private readonly args: readonly string[],
    private readonly tls: EtcdOptions['tls'],
  ) {}

  /** Every member's client URL, in member order (give the client all of them). */
  get endpoints(): string[] {
    return this.members.map((m) => m.clientUrl);
  }

  static async start(opts: EtcdOptions = {}): Promise<EtcdCluster> {
    const n = opts.members ?? 1;
    const dir = tempDir('fiberlb-etcd-');
    const members: EtcdMember[] = [];
    for (let i = 0; i < n; i++) {
      const [c, p] = [await freeTcpPort(), await freeTcpPort()];
      members.push({
        name: `m${i}`,
        clientUrl: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${c}`,
        peerUrl: `http://127.0.0.1:${p}`,
        dataDir: join(dir, `m${i}`),
        proc: undefined,
        output: '',
      });
    }
    const cluster = new EtcdCluster(
      members,
      `fiberlb-test-${randomBytes(6).toString('hex')}`,
      opts.args ?? [],
      opts.tls,
    );
    try {
      for (const m of members) cluster.spawn(m);
      await cluster.waitHealthy(n === 1 ? 10_000 : 20_000);
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  private spawn(m: EtcdMember): void {
    const initial = this.members.map((x) => `${x.name}=${x.peerUrl}`).join(',');
    const proc = spawn(
      ETCD_BIN,
      [
        '--name',
        m.name,
        '--data-dir',
        m.dataDir,
        '--listen-client-urls',
        m.clientUrl,
        '--advertise-client-urls',
        m.clientUrl,
        '--listen-peer-urls',
        m.peerUrl,
        '--initial-advertise-peer-urls',
        m.peerUrl,
        '--initial-cluster',
        initial,
        '--initial-cluster-token',
        this.token,
        '--initial-cluster-state',
        'new',
        // Fast elections keep the leader-kill test short.
        '--heartbeat-interval',
        '50',
        '--election-timeout',
        '500',
        ...(this.tls
          ? [
              '--cert-file',
              this.tls.cert,
              '--key-file',
              this.tls.key,
              '--trusted-ca-file',
              this.tls.ca,
              '--client-cert-auth',
            ]
          : []),
        ...this.args,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    m.proc = proc;
    const keep = (c: Buffer) => {
      m.output = (m.output + c.toString()).slice(-20_000);
    };
    proc.stdout!.on('data', keep);
    proc.stderr!.on('data', keep);
  }

  /** Every running member answers /health with {"health":"true"}. */
  async waitHealthy(timeoutMs = 20_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const live = this.members.filter((m) => m.proc && m.proc.exitCode === null);
      const dead = this.members.find((m) => m.proc && m.proc.exitCode !== null);
      if (dead) {
        await sleep(100); // let its last output arrive
        throw new Error(`etcd ${dead.name} exited (${dead.proc!.exitCode}):\n${dead.output}`);
      }
      const ok = await Promise.all(live.map((m) => healthy(m.clientUrl, this.tls)));
      if (ok.every(Boolean)) return;
      if (Date.now() > until)
        throw new Error(`etcd not healthy within ${timeoutMs} ms:\n${live.map((m) => m.output).join('\n')}`);
      await sleep(50);
    }
  }

  /** The member that is the Raft leader now (asked through the v3 JSON gateway). */
  async leader(): Promise<EtcdMember> {
    for (let i = 0; i < 100; i++) {
      for (const m of this.members) {
        if (!m.proc || m.proc.exitCode !== null) continue;
        const s = await status(m.clientUrl);
        if (s && s.leader !== '0' && s.leader === s.header.member_id) return m;
      }
      await sleep(50);
    }
    throw new Error('no etcd leader');
  }

  /** SIGKILL one member (no graceful leader transfer). */
  async kill(m: EtcdMember): Promise<void> {
    const p = m.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGKILL');
    await gone;
  }

  /** Start a killed member again on its data dir (it rejoins the cluster). */
  async restart(m: EtcdMember): Promise<void> {
    await this.kill(m);
    this.spawn(m);
    await this.waitHealthy();
  }

  /** Kill every member and remove the data dirs. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all(this.members.map((m) => this.kill(m)));
    for (const m of this.members) rmSync(m.dataDir, { recursive: true, force: true });
  }
}

async function healthy(url: string, tls?: EtcdOptions['tls']): Promise<boolean> {
  try {
    const init: RequestInit & { dispatcher?: Agent } = { signal: AbortSignal.timeout(1_000) };
    if (tls)
      init.dispatcher = new Agent({
        connect: { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key) },
      });
    const res = await undiciFetch(`${url}/health`, init as never);
    const body = (await res.json()) as { health?: string };
    return body.health === 'true';
  } catch {
    return false;
  }
}

async function status(url: string): Promise<{ leader: string; header: { member_id: string } } | undefined> {
  try {
    const res = await fetch(`${url}/v3/maintenance/status`, {
      method: 'POST',
      body: '{}',
      signal: AbortSignal.timeout(1_000),
    });
    return res.ok ? ((await res.json()) as { leader: string; header: { member_id: string } }) : undefined;
  } catch {
    return undefined;
  }
}
