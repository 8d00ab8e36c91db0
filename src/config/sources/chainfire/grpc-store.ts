// The Store over plain gRPC (@grpc/grpc-js) with the etcd messages, for source.api: chainfire
// (Chainfire's own service names, see wire.ts). Unlike the etcd3 path this store does its own
// failover: unary calls try each endpoint from the last one that answered; a watch that breaks
// reconnects to the next endpoint with backoff (100 ms → 5 s) and resumes after the last
// event it delivered; a canceled watch (compacted) is reported as lost for a re-list.
// Chainfire has no Auth service, so there is no username/password here (validate.ts refuses it).

import { readFileSync } from 'node:fs';
import type * as Grpc from '@grpc/grpc-js';
import { lazyRequire } from '../../../shared/lazy-require.ts';
import { KEEPALIVE, type StoreOptions } from './etcd-store.ts';
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
import { clientFor, type GenericClient, type ServiceName, type WireApi } from './wire.ts';

interface RawKv {
  key: Buffer;
  value: Buffer;
  mod_revision: string;
  lease: string;
}

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5_000;
const grpc = lazyRequire<typeof Grpc>('@grpc/grpc-js');
const retriable = (code: number): boolean =>
  code === grpc().status.UNAVAILABLE || code === grpc().status.DEADLINE_EXCEEDED;

export class GrpcStore implements Store {
  private readonly hosts: string[];
  private readonly creds: Grpc.ChannelCredentials;
  private readonly clients = new Map<string, GenericClient>();
  private preferred = 0;
  private readonly callTimeoutMs: number;
  private readonly closers = new Set<() => void>();

  constructor(
    o: StoreOptions,
    private readonly api: WireApi,
  ) {
    this.hosts = o.endpoints.map((e) => e.replace(/^https?:\/\//, '').replace(/\/$/, ''));
    this.creds = o.tls
      ? grpc().credentials.createSsl(
          readFileSync(o.tls.ca),
          o.tls.key ? readFileSync(o.tls.key) : null,
          o.tls.cert ? readFileSync(o.tls.cert) : null,
        )
      : grpc().credentials.createInsecure();
    this.callTimeoutMs = o.callTimeoutMs ?? 5_000;
  }

  private client(service: ServiceName, i: number): GenericClient {
    const host = this.hosts[i]!;
    const k = `${service}@${host}`;
    let c = this.clients.get(k);
    if (!c) {
      c = clientFor(service, this.api, host, this.creds, KEEPALIVE);
      this.clients.set(k, c);
    }
    return c;
  }

  private async unary<T>(service: ServiceName, method: string, req: unknown): Promise<T> {
    let last: unknown;
    for (let n = 0; n < this.hosts.length; n++) {
      const i = (this.preferred + n) % this.hosts.length;
      try {
        const res = await new Promise<T>((resolve, reject) => {
          this.client(service, i)[method]!(
            req,
            { deadline: Date.now() + this.callTimeoutMs },
            (err: Grpc.ServiceError | null, r: T) => (err ? reject(err) : resolve(r)),
          );
        });
        this.preferred = i;
        return res;
      } catch (err) {
        last = err;
        if (!retriable((err as Grpc.ServiceError).code)) throw err;
      }
    }
    throw last;
  }

  async range(prefix: string, revision?: number): Promise<{ revision: number; kvs: KeyValue[] }> {
    const key = Buffer.from(prefix);
    const res = await this.unary<{ header: { revision: string }; kvs: RawKv[] }>('KV', 'Range', {
      key,
      range_end: prefixEnd(key),
      revision: revision ?? 0,
    });
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

  async txn(
    ops: readonly TxnOp[],
    guards: readonly TxnGuard[] = [],
  ): Promise<{ ok: boolean; revision: number }> {
    const res = await this.unary<{ header: { revision: string }; succeeded: boolean }>('KV', 'Txn', {
      compare: guards.map((g) => ({
        key: Buffer.from(g.key),
        target: 'Mod',
        result: 'Equal',
        mod_revision: g.modRevision,
      })),
      success: ops.map((op) =>
        'put' in op
          ? { request_put: { key: Buffer.from(op.put), value: Buffer.from(op.value), lease: op.lease ?? 0 } }
          : {
              request_delete_range: {
                key: Buffer.from(op.delete),
                ...(op.prefix ? { range_end: prefixEnd(Buffer.from(op.delete)) } : {}),
              },
            },
      ),
      failure: [],
    });
    return { ok: res.succeeded, revision: Number(res.header.revision) };
  }

  async watch(prefix: string, fromRevision: number, h: WatchHandlers): Promise<StoreWatch> {
    const key = Buffer.from(prefix);
    let next = fromRevision;
    let done = false;
    let backoff = BACKOFF_MIN_MS;
    let stream: Grpc.ClientDuplexStream<unknown, unknown> | undefined;
    let timer: NodeJS.Timeout | undefined;
    const connect = () => {
      if (done) return;
      const i = this.preferred;
      const s = this.client('Watch', i).Watch!() as Grpc.ClientDuplexStream<unknown, unknown>;
      stream = s;
      let broken = false;
      const broke = (why: string) => {
        if (broken || done) return;
        broken = true;
        s.cancel();
        h.disconnected?.(why);
        this.preferred = (i + 1) % this.hosts.length; // try the next member
        timer = setTimeout(connect, backoff);
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      };
      s.on('data', (raw) => {
        const res = raw as {
          created: boolean;
          canceled: boolean;
          cancel_reason: string;
          compact_revision: string;
          events: Array<{ type: string; kv: RawKv }>;
        };
        if (res.canceled) {
          done = true;
          s.cancel();
          const compacted = Number(res.compact_revision) > 0;
          h.lost(
            res.cancel_reason || (compacted ? `compacted at ${res.compact_revision}` : 'canceled'),
            compacted,
          );
          return;
        }
        if (res.created) {
          backoff = BACKOFF_MIN_MS;
          h.connected?.();
        }
        const events: WatchEvent[] = [];
        for (const ev of res.events) {
          const rev = Number(ev.kv.mod_revision);
          if (rev < next) continue;
          const del = ev.type === 'Delete'; // etcd3's kv.proto names the enum values Put and Delete
          events.push({
            type: del ? 'delete' : 'put',
            key: ev.kv.key.toString(),
            value: del ? '' : ev.kv.value.toString(),
            modRevision: rev,
          });
        }
        if (events.length > 0) {
          next = events[events.length - 1]!.modRevision + 1;
          h.batch({ events });
        }
      });
      s.on('error', (err: Error) => broke(err.message));
      s.on('end', () => broke('watch stream ended'));
      s.write({ create_request: { key, range_end: prefixEnd(key), start_revision: next } });
    };
    connect();
    const cancel = () => {
      done = true;
      clearTimeout(timer);
      stream?.cancel();
    };
    this.closers.add(cancel);
    return {
      cancel: async () => {
        this.closers.delete(cancel);
        cancel();
      },
    };
  }

  async lease(ttlSeconds: number): Promise<StoreLease> {
    const res = await this.unary<{ ID: string; TTL: string }>('Lease', 'LeaseGrant', {
      TTL: ttlSeconds,
      ID: 0,
    });
    const id = String(res.ID);
    const lostFns: Array<(reason: string) => void> = [];
    let lastOk = Date.now();
    let stream: Grpc.ClientDuplexStream<unknown, unknown> | undefined;
    let stopped = false;
    const lose = (reason: string) => {
      if (stopped) return;
      stop();
      for (const fn of lostFns) fn(reason);
    };
    const open = () => {
      const s = this.client('Lease', this.preferred).LeaseKeepAlive!() as Grpc.ClientDuplexStream<
        unknown,
        unknown
      >;
      s.on('data', (r) => {
        if (Number((r as { TTL: string }).TTL) <= 0) lose('lease expired');
        else lastOk = Date.now();
      });
      const broke = () => {
        if (stream !== s) return;
        stream = undefined;
        this.preferred = (this.preferred + 1) % this.hosts.length;
      };
      s.on('error', broke);
      s.on('end', broke);
      stream = s;
    };
    // A keepalive every third of the TTL, as etcd clients do; lost once a whole TTL went by.
    const tick = setInterval(
      () => {
        if (Date.now() - lastOk > ttlSeconds * 1000) return lose('no keepalive answered within the TTL');
        if (!stream) open();
        stream!.write({ ID: id });
      },
      Math.max(200, (ttlSeconds * 1000) / 3),
    );
    const stop = () => {
      stopped = true;
      clearInterval(tick);
      stream?.cancel();
      this.closers.delete(stop);
    };
    this.closers.add(stop);
    return {
      id,
      onLost: (fn) => lostFns.push(fn),
      revoke: async () => {
        stop();
        await this.unary('Lease', 'LeaseRevoke', { ID: id }).catch(() => {});
      },
    };
  }

  async close(): Promise<void> {
    for (const c of [...this.closers]) c();
    this.closers.clear();
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
