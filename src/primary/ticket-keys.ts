// TLS session ticket keys for the whole cluster: made here (48 random bytes each) and sent to
// every worker, so a session resumes on any worker. Rotated every `cluster.tls_ticket_rotation`;
// the previous key is sent along and keeps opening (and renewing) tickets for one more
// interval, so a ticket resumes for at least one interval and at most two. The keys live only
// in memory: a restart of the primary makes new ones (clients then do one full handshake).

import { randomBytes } from 'node:crypto';
import type { TicketKeySet } from '../ipc.ts';

export class TicketKeyRotation {
  private current = randomBytes(48);
  private previous: Buffer | undefined;
  private timer: NodeJS.Timeout | undefined;
  private intervalMs = 0;
  private rotations = 0;

  constructor(private readonly onRotate: (keys: TicketKeySet) => void) {}

  /** (Re)start the timer; a changed interval applies from now. */
  schedule(intervalMs: number): void {
    if (intervalMs === this.intervalMs && this.timer !== undefined) return;
    this.intervalMs = intervalMs;
    clearInterval(this.timer);
    this.timer = setInterval(() => this.rotate(), intervalMs);
    this.timer.unref();
    this.onRotate(this.keys());
  }

  rotate(): void {
    this.previous = this.current;
    this.current = randomBytes(48);
    this.rotations++;
    this.onRotate(this.keys());
  }

  keys(): TicketKeySet {
    return {
      current: this.current.toString('base64'),
      previous: this.previous?.toString('base64'),
      lifetimeS: Math.max(1, Math.round(this.intervalMs / 1000)),
    };
  }

  /** For /metrics: rotations since start. */
  stats(): { rotations: number } {
    return { rotations: this.rotations };
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
