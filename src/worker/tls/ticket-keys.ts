// Session ticket keys shared by every worker, so a client resumes its TLS session on whichever
// worker the kernel hands its next connection to. The primary makes the keys (48 random bytes:
// 16 name, 16 HMAC, 16 AES, Node's layout) and rotates them; each worker installs them in every
// SecureContext it builds. Node's public API holds one key per context (a ticket from before a
// rotation would no longer resume), so where Node has it the context's ticket-key callback is
// used instead: new tickets are sealed with the current key, and tickets sealed with the
// previous one still resume (and are renewed) until the next rotation.

import { randomBytes, randomFillSync } from 'node:crypto';
import type { SecureContext } from 'node:tls';
import type { TicketKeySet } from '../../ipc.ts';

interface Key {
  readonly name: Buffer;
  readonly hmac: Buffer;
  readonly aes: Buffer;
  readonly raw: Buffer;
}

function split(raw: Buffer): Key {
  return { raw, name: raw.subarray(0, 16), hmac: raw.subarray(16, 32), aes: raw.subarray(32, 48) };
}

/** The native context's undocumented ticket hook (crypto_context.cc TicketKeyCallback). */
interface NativeContext {
  enableTicketKeyCallback?: () => void;
  onticketkeycallback?: (name: Buffer, iv: Buffer, enc: boolean) => unknown[];
  setTicketKeys(keys: Buffer): void;
}

const ZERO16 = Buffer.alloc(16);

/**
 * Ticket IVs, 16 random bytes each, cut from one random fill per 256: a TLS 1.3 full handshake
 * seals two tickets, and a randomBytes(16) call per ticket cost more than the rest of the
 * callback (≈ 1.5% of a worker's CPU under new connections). Each refill is a fresh buffer, so
 * an IV handed out is never overwritten (Node copies it at once anyway).
 */
const IV_BATCH = 256;
let ivPool = Buffer.alloc(0);
let ivNext = 0;
export function nextIv(): Buffer {
  if (ivNext === ivPool.length) {
    ivPool = randomFillSync(Buffer.allocUnsafeSlow(16 * IV_BATCH));
    ivNext = 0;
  }
  const iv = ivPool.subarray(ivNext, ivNext + 16);
  ivNext += 16;
  return iv;
}

export class TicketKeyRing {
  /** [current, previous?]. Until the primary's keys arrive, a local key (no cross-worker resumption). */
  private keys: Key[] = [split(randomBytes(48))];
  lifetimeS = 3600;
  /** Contexts that could not take the callback and hold a copy of the current key. */
  private readonly copies = new Set<WeakRef<NativeContext>>();
  private stats = { rotations: 0, resumedPrevious: 0 };

  set(set: TicketKeySet): void {
    const next = [split(Buffer.from(set.current, 'base64'))];
    if (set.previous !== undefined) next.push(split(Buffer.from(set.previous, 'base64')));
    this.keys = next;
    this.lifetimeS = set.lifetimeS;
    this.stats.rotations++;
    for (const ref of this.copies) {
      const c = ref.deref();
      if (c === undefined) this.copies.delete(ref);
      else c.setTicketKeys(next[0]!.raw);
    }
  }

  /** Make `ctx` seal and open tickets with the ring's keys. */
  install(ctx: SecureContext): void {
    const native = (ctx as unknown as { context: NativeContext }).context;
    if (typeof native.enableTicketKeyCallback !== 'function') {
      native.setTicketKeys(this.keys[0]!.raw);
      this.copies.add(new WeakRef(native));
      return;
    }
    native.enableTicketKeyCallback();
    native.onticketkeycallback = (name, _iv, enc) => this.onTicket(name, enc);
  }

  /** [result, hmac, aes, name?, iv?]: 1 ok, 2 ok but renew, 0 unknown key (full handshake). */
  private onTicket(name: Buffer, enc: boolean): unknown[] {
    const keys = this.keys;
    if (enc) {
      const k = keys[0]!;
      return [1, k.hmac, k.aes, k.name, nextIv()];
    }
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      if (k.name.equals(name)) {
        if (i > 0) this.stats.resumedPrevious++;
        return [i === 0 ? 1 : 2, k.hmac, k.aes];
      }
    }
    return [0, ZERO16, ZERO16];
  }

  /** Counters for /metrics: key sets received, resumptions with the previous key. */
  counters(): { rotations: number; resumedPrevious: number } {
    return { ...this.stats };
  }
}
