// The dashboard's data: the static page (files next to this module, copied into dist by
// scripts/copy-assets.mjs), the per-second ring, recent config changes, and a server-sent
// event stream with one `tick` a second. The stream is read by the page with fetch() and the
// Authorization header, so the token never appears in a URL (nor in any log of one).

import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TelemetrySummary } from '../../../shared/metrics.ts';
import { type Point, Ring } from '../../metrics/ring.ts';
import type { LiveFeed } from '../api.ts';

const ASSETS: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
};

/** How many config changes the dashboard shows. */
const CHANGES_KEPT = 20;
/** Server-sent event streams open at once (each is one admin connection). */
const MAX_STREAMS = 32;
/** Bytes an event stream may have waiting to be sent before it is closed. */
const MAX_STREAM_BACKLOG = 1024 * 1024;

export interface ConfigChange {
  readonly at: string;
  readonly revision: number;
  /** "reload (SIGHUP)", "admin: pub/web/b drain", "rejected", ... */
  readonly what: string;
  readonly ok: boolean;
  readonly detail?: string | undefined;
}

export interface FeedSources {
  /** Every live worker's summary (the 1 s tick); `full` asks for the whole report. */
  summaries(full: boolean): Promise<TelemetrySummary[]>;
  /** The state the page shows: listeners, pools with their backends, status. */
  state(): Record<string, unknown>;
}

export class DashboardFeed implements LiveFeed {
  readonly ring = new Ring();
  readonly changes: ConfigChange[] = [];
  private readonly files = new Map<string, string>();
  private readonly streams = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | undefined;
  private ticks = 0;
  private ticking = false;

  constructor(private readonly sources: FeedSources) {
    for (const name of Object.keys(ASSETS))
      this.files.set(name, readFileSync(new URL(`./${name}`, import.meta.url), 'utf8'));
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), 1000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    for (const res of this.streams) res.end();
    this.streams.clear();
  }

  change(c: Omit<ConfigChange, 'at'>): void {
    this.changes.unshift({ at: new Date().toISOString(), ...c });
    if (this.changes.length > CHANGES_KEPT) this.changes.pop();
  }

  asset(name: string): { contentType: string; text: string } | undefined {
    const type = ASSETS[name];
    const text = this.files.get(name);
    return type === undefined || text === undefined ? undefined : { contentType: type, text };
  }

  history(): unknown {
    return { points: this.ring.points, changes: this.changes, state: this.sources.state() };
  }

  events(req: IncomingMessage, res: ServerResponse): void {
    if (this.streams.size >= MAX_STREAMS) {
      res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"too many event streams"}\n');
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    res.write(': fiberlb dashboard events\n\n');
    this.streams.add(res);
    req.socket.setTimeout(0);
    res.on('close', () => this.streams.delete(res));
  }

  private async tick(): Promise<void> {
    if (this.ticking) return; // a slow worker answer must not pile ticks up
    this.ticking = true;
    try {
      const full = this.ticks++ % 5 === 0;
      const point = this.ring.add(Math.floor(Date.now() / 1000), await this.sources.summaries(full));
      if (this.streams.size > 0) this.broadcast(point);
    } finally {
      this.ticking = false;
    }
  }

  private broadcast(point: Point): void {
    const data = JSON.stringify({ point, changes: this.changes.slice(0, 5), state: this.sources.state() });
    const frame = `event: tick\ndata: ${data}\n\n`;
    for (const res of this.streams) {
      // A reader that stopped reading must not grow the primary's memory: cut it off.
      if (res.writableLength > MAX_STREAM_BACKLOG) res.destroy();
      else res.write(frame);
    }
  }
}
