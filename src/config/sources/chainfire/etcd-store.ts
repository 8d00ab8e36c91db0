// The Store over etcd v3 with the etcd3 client (source.api: etcd). The client gets every
// member endpoint: it spreads calls and fails over to a live member (with one fixed endpoint a
// watch on a killed leader never recovered, field notes). The watch resumes from the revision
// after the last event this process saw, not etcd3's own bookkeeping: etcd3 resumes from the
// response header's revision + 1, which skips events when a catch-up batch was cut short.

import { readFileSync } from 'node:fs';
import type * as EtcdModule from 'etcd3';
import type { Etcd3, IOptions, Watcher } from 'etcd3';
import { lazyRequire } from '../../../shared/lazy-require.ts';

const etcd3 = lazyRequire<typeof EtcdModule>('etcd3');

import {
  type KeyValue,
  prefixEnd,
  type Store,
  type StoreLease,
  type StoreWatch,
  type TxnGuard,
  type TxnOp,
  type WatchEvent,
  type WatchHandlers,
} from './store.ts';

export interface StoreOptions {
  readonly endpoints: readonly string[];
  readonly tls?: { readonly ca: string; readonly cert?: string; readonly key?: string };
  readonly username?: string;
  readonly password?: string;
  /** Per-call deadline for unary calls (range, txn): a dead cluster fails instead of hanging. */
  readonly callTimeoutMs?: number;
}

/**
 * HTTP/2 pings on idle connections too: a watch whose member vanished without a FIN or RST
 * (power loss, partition) would otherwise wait silently forever. 6 s stays above etcd's
 * default --grpc-keepalive-min-time (5 s), below which it answers too_many_pings.
 */
export const KEEPALIVE = {
  'grpc.keepalive_time_ms': 6_000,
  'grpc.keepalive_timeout_ms': 3_000,
  'grpc.keepalive_permit_without_calls': 1,
} as const;

export function etcdOptions(o: StoreOptions): IOptions {
  return {
    hosts: [...o.endpoints],
    dialTimeout: 2_000,
    grpcOptions: { ...KEEPALIVE },
    ...(o.tls
      ? {
          credentials: {
            rootCertificate: readFileSync(o.tls.ca),
            ...(o.tls.cert && o.tls.key
              ? { certChain: readFileSync(o.tls.cert), privateKey: readFileSync(o.tls.key) }
              : {}),
          },
        }
      : {}),
    ...(o.username !== undefined ? { auth: { username: o.username, password: o.password ?? '' } } : {}),
  };
}

export class EtcdStore implements Store {
  private readonly client: Etcd3;
  private readonly watchers = new Set<Watcher>();
  private readonly leases = new Set<StoreLease>();
  private readonly callTimeoutMs: number;

  constructor(o: StoreOptions) {
    this.client = new (etcd3().Etcd3)(etcdOptions(o));
    this.callTimeoutMs = o.callTimeoutMs ?? 5_000;
  }

  private deadline(): { deadline: number } {
    return { deadline: Date.now() + this.callTimeoutMs };
  }

  async range(prefix: string, revision?: number): Promise<{ revision: number; kvs: KeyValue[] }> {
    const key = Buffer.from(prefix);
    const res = await this.client.kv.range(
      { key, range_end: prefixEnd(key), ...(revision ? { revision } : {}) },
      this.deadline(),
    );
    return {
      revision: Number(res.header.revision),
      kvs: res.kvs.map((kv) => ({
        key: kv.key.toString(),
        value: kv.value.toString(),
        modRevision: Number(kv.mod_revision),
        lease: String(kv.lease ?? '0'),
      })),
    };
  }

  async watch(prefix: string, fromRevision: number, h: WatchHandlers): Promise<StoreWatch> {
    let next = fromRevision;
    const watcher = this.client.watch().prefix(prefix).startRevision(String(fromRevision)).watcher();
    this.watchers.add(watcher);
    // Registered after etcd3's own listeners (in the Watcher constructor), so these run last
    // and the resume point is ours.
    const pin = () => {
      watcher.request.start_revision = String(next);
    };
    watcher.on('connected', () => {
      pin();
      h.connected?.();
    });
    watcher.on('data', (res) => {
      const events: WatchEvent[] = [];
      for (const ev of res.events) {
        const rev = Number(ev.kv.mod_revision);
        if (rev < next) continue; // replayed after a reconnect: already delivered
        events.push({
          type: ev.type === 'Delete' ? 'delete' : 'put',
          key: ev.kv.key.toString(),
          value: ev.type === 'Delete' ? '' : ev.kv.value.toString(),
          modRevision: rev,
        });
      }
      if (events.length > 0) next = events[events.length - 1]!.modRevision + 1;
      pin();
      if (events.length > 0) h.batch({ events });
    });
    watcher.on('disconnected', (err) => {
      h.disconnected?.(err.message);
      // The watch stream reuses the client's cached token: when it expired (or the member
      // restarted and forgot it), a unary call re-authenticates, and the reconnect uses it.
      if (err instanceof etcd3().EtcdInvalidAuthTokenError || /auth token|unauthenticated/i.test(err.message))
        void this.range(prefix.slice(0, 1), undefined).catch(() => {});
    });
    watcher.on('error', (err) => {
      this.watchers.delete(watcher);
      // etcd cancels a watch whose start revision was compacted with an empty cancel_reason
      // (the compact_revision field is not passed on by etcd3): an empty reason means that.
      h.lost(err.message, /compact|canceled: $/i.test(err.message));
    });
    return {
      cancel: async () => {
        this.watchers.delete(watcher);
        await watcher.cancel().catch(() => {});
      },
    };
  }

  async txn(
    ops: readonly TxnOp[],
    guards: readonly TxnGuard[] = [],
  ): Promise<{ ok: boolean; revision: number }> {
    const res = await this.client.kv.txn(
      {
        compare: guards.map((g) => ({
          key: Buffer.from(g.key),
          target: 'Mod' as const,
          result: 'Equal' as const,
          mod_revision: g.modRevision,
        })),
        success: ops.map((op) =>
          'put' in op
            ? {
                request_put: {
                  key: Buffer.from(op.put),
                  value: Buffer.from(op.value),
                  ...(op.lease ? { lease: op.lease } : {}),
                },
              }
            : {
                request_delete_range: {
                  key: Buffer.from(op.delete),
                  ...(op.prefix ? { range_end: prefixEnd(Buffer.from(op.delete)) } : {}),
                },
              },
        ),
        failure: [],
      },
      this.deadline(),
    );
    return { ok: res.succeeded, revision: Number(res.header.revision) };
  }

  async lease(ttlSeconds: number): Promise<StoreLease> {
    const lease = this.client.lease(ttlSeconds);
    const id = await lease.grant();
    const lost: Array<(reason: string) => void> = [];
    lease.on('lost', (err) => {
      for (const fn of lost) fn(err.message);
    });
    const handle: StoreLease = {
      id,
      onLost: (fn) => lost.push(fn),
      revoke: async () => {
        this.leases.delete(handle);
        await lease.revoke().catch(() => {});
      },
    };
    this.leases.add(handle);
    return handle;
  }

  async close(): Promise<void> {
    // Cancel watchers before close, or etcd3 logs reconnect errors for 30 s (field notes).
    await Promise.all([...this.watchers].map((w) => w.cancel().catch(() => {})));
    this.watchers.clear();
    this.client.close();
  }
}
