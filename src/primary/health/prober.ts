// Active health checking of ONE backend, run in the primary (never in the workers, so a
// backend sees one probe per interval however many workers there are).
//
// A probe starts only after the previous one has settled (its timeout bounds it), so a slow
// backend never has probes piling up: the next one is scheduled `interval` (+ jitter) after
// the last one ended. The state follows `rise` consecutive successes / `fall` consecutive
// failures; before the first probe it is `unknown`, which counts as up, and the first result
// decides at once (a dead backend is not served for fall × interval after a start or reload).

import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect, isIP, type Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import type { HealthCheckConfig } from '../../config/model.ts';

export type ProbeState = 'unknown' | 'up' | 'down';

/** One probe as the admin API shows it. */
export interface ProbeResult {
  /** ISO time the probe started. */
  readonly time: string;
  readonly duration_ms: number;
  readonly outcome: 'ok' | 'fail';
  /** Why it failed, or what it saw ("200"). */
  readonly reason: string;
}

/** Results kept per backend for the admin API. */
export const PROBE_HISTORY = 10;
/** How much of a response body a check reads looking for `body_contains`. */
const BODY_LIMIT = 64 * 1024;

export interface ProbeTarget {
  readonly address: string;
  readonly port: number;
}

export class Prober {
  state: ProbeState = 'unknown';
  /** Consecutive results of the current kind (successes while down, failures while up). */
  private streak = 0;
  private readonly results: ProbeResult[] = [];
  private timer: NodeJS.Timeout | undefined = undefined;
  private running = false;
  private stopped = false;
  probes = 0;
  failures = 0;

  constructor(
    readonly target: ProbeTarget,
    private check: HealthCheckConfig,
    /** Called with the new state when it changes (not for unknown → up). */
    private readonly onChange: (state: ProbeState, reason: string) => void,
    private tls: ConnectionOptions | undefined = undefined,
  ) {}

  /** First probe after `delayMs` (spread the first round of many backends a little). */
  start(delayMs = 0): void {
    this.schedule(delayMs);
  }

  /** Same backend, new settings (a reload): state and history are kept. */
  update(check: HealthCheckConfig, tls: ConnectionOptions | undefined): void {
    const interval = check.intervalMs !== this.check.intervalMs;
    this.check = check;
    this.tls = tls;
    if (interval && !this.running) this.schedule(this.nextDelay());
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  history(): readonly ProbeResult[] {
    return this.results;
  }

  get settings(): HealthCheckConfig {
    return this.check;
  }

  private nextDelay(): number {
    const j = this.check.jitterMs;
    return this.check.intervalMs + (j > 0 ? Math.floor(Math.random() * j) : 0);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.runOnce(), delayMs);
    this.timer.unref();
  }

  /** Run one probe now (tests, and the timer). Never overlaps itself. */
  async runOnce(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = true;
    this.timer = undefined;
    const started = Date.now();
    const check = this.check;
    let outcome: { ok: boolean; reason: string };
    try {
      outcome = await probe(this.target, check, this.tls);
    } catch (err) {
      outcome = { ok: false, reason: (err as Error).message };
    }
    this.running = false;
    if (this.stopped) return;
    this.record(started, outcome.ok, outcome.reason);
    this.schedule(this.nextDelay());
  }

  private record(started: number, ok: boolean, reason: string): void {
    this.probes++;
    if (!ok) this.failures++;
    this.results.push({
      time: new Date(started).toISOString(),
      duration_ms: Date.now() - started,
      outcome: ok ? 'ok' : 'fail',
      reason,
    });
    if (this.results.length > PROBE_HISTORY) this.results.shift();
    const prev = this.state;
    if (prev === 'unknown') {
      this.state = ok ? 'up' : 'down';
      this.streak = 0;
      if (!ok) this.onChange('down', reason);
      return;
    }
    // Count toward the other state; a result agreeing with the current one resets the count.
    if ((prev === 'up') === ok) {
      this.streak = 0;
      return;
    }
    this.streak++;
    const need = prev === 'up' ? this.check.fall : this.check.rise;
    if (this.streak < need) return;
    this.streak = 0;
    this.state = ok ? 'up' : 'down';
    this.onChange(this.state, reason);
  }
}

/** One probe of `target`: resolves (never rejects) within `check.timeoutMs` and a little. */
export function probe(
  target: ProbeTarget,
  check: HealthCheckConfig,
  tls: ConnectionOptions | undefined,
): Promise<{ ok: boolean; reason: string }> {
  return check.type === 'tcp' ? tcpProbe(target, check.timeoutMs) : httpProbe(target, check, tls);
}

function tcpProbe(target: ProbeTarget, timeoutMs: number): Promise<{ ok: boolean; reason: string }> {
  return new Promise((resolve) => {
    let done = false;
    let socket: Socket;
    const finish = (ok: boolean, reason: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ok, reason });
    };
    const timer = setTimeout(() => finish(false, `connect timeout after ${timeoutMs} ms`), timeoutMs);
    socket = connect({ host: target.address, port: target.port });
    socket.once('connect', () => finish(true, 'connected'));
    socket.once('error', (err: NodeJS.ErrnoException) => finish(false, err.code ?? err.message));
  });
}

function httpProbe(
  target: ProbeTarget,
  check: HealthCheckConfig,
  tls: ConnectionOptions | undefined,
): Promise<{ ok: boolean; reason: string }> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (ok: boolean, reason: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      resolve({ ok, reason });
    };
    const host = target.address.includes(':') ? `[${target.address}]` : target.address;
    const headers = {
      host: check.host ?? `${host}:${target.port}`,
      'user-agent': 'fiberlb-health-check',
      // One probe, one connection: nothing kept open between probes.
      connection: 'close',
    };
    const options = {
      host: target.address,
      port: target.port,
      method: check.method,
      path: check.path,
      headers,
      agent: false as const,
    };
    const onResponse = (res: IncomingMessage): void => {
      const status = res.statusCode ?? 0;
      if (!check.expectStatus.some((r) => status >= r.from && status <= r.to)) {
        finish(false, `status ${status}`);
        return;
      }
      const want = check.bodyContains;
      if (want === undefined || check.method === 'HEAD') {
        finish(true, `status ${status}`);
        return;
      }
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
        if (body.includes(want)) finish(true, `status ${status}, body matched`);
        else if (body.length > BODY_LIMIT) finish(false, `body does not contain '${want}'`);
      });
      res.on('end', () => {
        const found = body.includes(want);
        finish(found, found ? `status ${status}, body matched` : `body does not contain '${want}'`);
      });
      res.on('error', (err) => finish(false, err.message));
    };
    const req =
      check.type === 'https'
        ? httpsRequest({ ...options, ...tls, servername: tls?.servername ?? sniFor(check.host) }, onResponse)
        : httpRequest(options, onResponse);
    const timer = setTimeout(() => finish(false, `timeout after ${check.timeoutMs} ms`), check.timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => finish(false, err.code ?? err.message));
    req.end();
  });
}

/** SNI for an https check: the Host header's name, unless it is an IP literal (RFC 6066 §3). */
function sniFor(host: string | undefined): string | undefined {
  if (host === undefined) return undefined;
  const name = host.startsWith('[') ? '' : host.replace(/:\d+$/, '');
  return name === '' || isIP(name) !== 0 ? undefined : name;
}
