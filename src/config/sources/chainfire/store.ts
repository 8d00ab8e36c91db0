// The one small interface the Chainfire source, the registration commands and the admin API use
// to reach the store: range at a revision, watch from a revision (batches of events, each with
// its store revision), a multi-key transaction, and leases. etcd-store.ts implements it with
// etcd3 (source.api: etcd, the default).

export interface KeyValue {
  readonly key: string;
  readonly value: string;
  /** The store revision of this key's last change. */
  readonly modRevision: number;
  /** The lease holding the key ('0': none). */
  readonly lease: string;
}

export interface WatchEvent {
  readonly type: 'put' | 'delete';
  readonly key: string;
  /** '' for a delete. */
  readonly value: string;
  readonly modRevision: number;
}

/** One watch response: never half of a transaction (etcd sends a revision's events together). */
export interface WatchBatch {
  readonly events: readonly WatchEvent[];
}

export interface WatchHandlers {
  batch(b: WatchBatch): void;
  /**
   * The watch ended and will not resume by itself (compacted past its revision, canceled by
   * the server): the caller re-lists and watches again. Transient disconnects are retried
   * inside the store and only reported through `disconnected`.
   */
  lost(reason: string, compacted: boolean): void;
  disconnected?(reason: string): void;
  /** The watch is (re-)established on a member. */
  connected?(): void;
}

export interface StoreWatch {
  cancel(): Promise<void>;
}

export type TxnOp =
  | { readonly put: string; readonly value: string; readonly lease?: string }
  | { readonly delete: string; readonly prefix?: boolean };

/** A guard of a transaction: the key must be absent, or still at `modRevision`. */
export interface TxnGuard {
  readonly key: string;
  readonly modRevision: number;
}

export interface StoreLease {
  readonly id: string;
  /** Called once if the store lost the lease (keepalive failed until it expired). */
  onLost(fn: (reason: string) => void): void;
  revoke(): Promise<void>;
}

export interface Store {
  /** Every key under `prefix` at `revision` (the latest when omitted), and that revision. */
  range(prefix: string, revision?: number): Promise<{ revision: number; kvs: KeyValue[] }>;
  /** Watch `prefix` from `fromRevision` (inclusive); resumes after disconnects without loss. */
  watch(prefix: string, fromRevision: number, h: WatchHandlers): Promise<StoreWatch>;
  /** All ops or none; with guards, only if every guard holds (ok false: nothing written). */
  txn(ops: readonly TxnOp[], guards?: readonly TxnGuard[]): Promise<{ ok: boolean; revision: number }>;
  /** A lease of `ttlSeconds`, kept alive by this process until revoked or the store closes. */
  lease(ttlSeconds: number): Promise<StoreLease>;
  close(): Promise<void>;
}

/** The end of a prefix range: the prefix with its last byte incremented (etcd's convention). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}
