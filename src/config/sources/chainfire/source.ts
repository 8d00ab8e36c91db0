// source.type: chainfire. The served part (load balancers) comes from the store; admin,
// cluster and source still come from the local file. Consistency: the prefix is read at one
// revision, then watched from revision + 1; each watch batch is applied whole to an in-memory
// copy of the keys, and a snapshot is always assembled from that copy, so a multi-key
// transaction is never half-applied. Bursts are debounced for DEBOUNCE_MS before the primary is
// told (one snapshot per burst). Compaction past the watch revision or a lost watch → re-list;
// an unreachable store at boot → the last-good file, then converge when it answers.

import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import YAML from 'yaml';
import { log } from '../../../shared/log.ts';
import { diffConfigs, planLines, planSummary } from '../../diff.ts';
import type { ChainfireSourceConfig, DynamicConfig } from '../../model.ts';
import type { ConfigSource, LoadResult } from '../../source.ts';
import { parseConfigText, type ValidateOptions } from '../../validate.ts';
import { assembleConfig, type Quarantined } from './assemble.ts';
import { describeSource, openStore } from './connect.ts';
import { readLastGood, writeLastGood } from './last-good.ts';
import type { Store, StoreWatch } from './store.ts';

/** One snapshot per burst of watch batches: short enough for the 100 ms propagation budget. */
export const DEBOUNCE_MS = 10;
const BOOT_TIMEOUT_MS = 3_000;
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5_000;

type Origin = 'store' | 'last_good' | 'empty';

export class ChainfireSource implements ConfigSource {
  readonly description: string;
  private store: Store | undefined;
  private watchHandle: StoreWatch | undefined;
  private kvs = new Map<string, string>();
  private revision = 0;
  private origin: Origin = 'empty';
  private connected = false;
  private started: Promise<void> | undefined;
  private onChange: (() => void) | undefined;
  private pendingChange = false;
  private debounce: NodeJS.Timeout | undefined;
  private resyncing = false;
  private closed = false;
  private quarantined: readonly Quarantined[] = [];
  private served: DynamicConfig | undefined;
  private servedRevision = 0;
  private lastGoodError: string | undefined;
  private persistedRevision = 0;
  private persisting: Promise<void> = Promise.resolve();
  private readonly counters = { batches: 0, events: 0, relists: 0, watch_lost: 0, last_good_writes: 0 };

  constructor(
    readonly file: string,
    private readonly cfg: ChainfireSourceConfig,
    private readonly opts: ValidateOptions = {},
  ) {
    this.description = describeSource(cfg);
  }

  async load(): Promise<LoadResult> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      return { ok: false, issues: [{ origin: this.file, path: '(file)', message: (err as Error).message }] };
    }
    const local = parseConfigText(text, this.file, this.opts);
    if (!local.ok) return local;
    if (local.config.static.source.type !== 'chainfire')
      return {
        ok: false,
        issues: [
          {
            origin: this.file,
            path: 'source.type',
            message: 'changed from chainfire: takes effect on restart',
          },
        ],
      };
    if (local.config.dynamic.loadBalancers.length > 0)
      return {
        ok: false,
        issues: [
          {
            origin: this.file,
            path: 'load_balancers',
            message:
              'must be [] with source type chainfire: load balancers come from Chainfire (`fiberlb import FILE` writes a file’s there)',
          },
        ],
      };
    this.started ??= this.boot();
    try {
      await this.started;
    } catch (err) {
      // Not the store being down (that boots from last-good): its settings cannot be used,
      // e.g. an unreadable password_file or TLS file. Reported; the next load tries again.
      this.started = undefined;
      return {
        ok: false,
        issues: [{ origin: this.file, path: 'source', message: (err as Error).message }],
      };
    }
    const raw = YAML.parse(text) as Record<string, unknown>;
    const statics = { admin: raw.admin, cluster: raw.cluster, source: raw.source };
    const kvs = this.kvs;
    const revision = this.revision;
    const r = assembleConfig(statics, this.cfg.prefix, kvs, this.description, {
      baseDir: dirname(this.file),
      ...this.opts,
    });
    if (!r.ok) return r;
    this.reportQuarantine(r.quarantined, revision);
    if (this.served && revision !== this.servedRevision) {
      const plan = diffConfigs(this.served, r.config.dynamic);
      log('info', 'chainfire change', {
        revision,
        summary: planSummary(plan),
        changes: planLines(plan).slice(0, 50),
      });
    }
    this.served = r.config.dynamic;
    this.servedRevision = revision;
    if (this.origin === 'store' && revision !== this.persistedRevision) this.persist(kvs, revision);
    return { ok: true, config: r.config, revision };
  }

  watch(onChange: () => void): void {
    this.onChange = onChange;
    if (this.pendingChange) this.changed();
  }

  /** For /status: where the served keys came from, the revision, and every quarantined key. */
  status(): Record<string, unknown> {
    return {
      type: 'chainfire',
      api: this.cfg.api,
      endpoints: this.cfg.endpoints,
      prefix: this.cfg.prefix,
      revision: this.revision,
      serving_from: this.origin,
      connected: this.connected,
      keys: this.kvs.size,
      quarantined: this.quarantined,
      last_good: { path: this.cfg.lastGood, revision: this.persistedRevision, error: this.lastGoodError },
      stats: this.stats(),
    };
  }

  /** Counters for /metrics: watch batches and events applied, re-lists, lost watches, last-good writes. */
  stats(): Readonly<Record<string, number>> {
    return { ...this.counters, revision: this.revision, quarantined: this.quarantined.length };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.debounce);
    await this.watchHandle?.cancel();
    await this.persisting;
    await this.store?.close();
  }

  private async boot(): Promise<void> {
    this.store ??= openStore(this.cfg, BOOT_TIMEOUT_MS);
    try {
      await this.relist();
      this.pendingChange = false; // this is the load() that asked: nothing to tell anyone
      return;
    } catch (err) {
      const error = (err as Error).message;
      const saved = await readLastGood(this.cfg.lastGood, this.cfg.prefix);
      if (saved.ok) {
        this.kvs = new Map(saved.state.kvs);
        this.revision = this.persistedRevision = saved.state.revision;
        this.origin = 'last_good';
        log('warn', 'chainfire unreachable at start; serving the last-good state until it answers', {
          source: this.description,
          last_good: this.cfg.lastGood,
          revision: this.revision,
          error,
        });
      } else {
        this.lastGoodError = saved.reason;
        // Revision 1: the first snapshot a worker accepts; any real store state is later.
        this.revision = 1;
        this.origin = 'empty';
        log(
          'error',
          'chainfire unreachable at start and no usable last-good state; serving nothing until it answers',
          {
            source: this.description,
            last_good: this.cfg.lastGood,
            last_good_error: saved.reason,
            error,
          },
        );
      }
      void this.resync('unreachable at start');
    }
  }

  /** Read the whole prefix at one revision and watch from the next one. */
  private async relist(): Promise<void> {
    const store = this.store!;
    await this.watchHandle?.cancel();
    this.watchHandle = undefined;
    const { revision, kvs } = await store.range(this.cfg.prefix);
    if (this.closed) return;
    this.counters.relists++;
    if (revision < this.revision)
      log('warn', 'chainfire revision went backwards (store restored or replaced?)', {
        from: this.revision,
        to: revision,
      });
    const next = new Map(kvs.map((kv) => [kv.key, kv.value]));
    const same = this.origin === 'store' && sameMap(next, this.kvs);
    this.kvs = next;
    this.revision = revision;
    this.origin = 'store';
    this.connected = true;
    this.watchHandle = await store.watch(this.cfg.prefix, revision + 1, {
      batch: (b) => {
        // A copy per batch: a load() in progress keeps the map it started with.
        const kvs = new Map(this.kvs);
        let last = this.revision;
        for (const ev of b.events) {
          if (ev.modRevision <= this.revision) continue; // already in the listing
          if (ev.type === 'put') kvs.set(ev.key, ev.value);
          else kvs.delete(ev.key);
          last = Math.max(last, ev.modRevision);
          this.counters.events++;
        }
        if (last === this.revision) return;
        this.counters.batches++;
        this.kvs = kvs;
        this.revision = last;
        this.connected = true;
        this.changed();
      },
      lost: (reason, compacted) => {
        // The store already dropped this watch: canceling it again would wait forever.
        this.watchHandle = undefined;
        this.counters.watch_lost++;
        this.connected = false;
        log(
          'warn',
          compacted ? 'chainfire watch compacted; re-listing' : 'chainfire watch lost; re-listing',
          {
            source: this.description,
            revision: this.revision,
            reason,
          },
        );
        void this.resync(reason);
      },
      disconnected: (reason) => {
        if (this.connected)
          log('warn', 'chainfire watch disconnected; reconnecting', { source: this.description, reason });
        this.connected = false;
      },
      connected: () => {
        if (!this.connected)
          log('info', 'chainfire watch reconnected', { source: this.description, revision: this.revision });
        this.connected = true;
      },
    });
    if (!same) this.changed();
  }

  private async resync(reason: string): Promise<void> {
    if (this.resyncing || this.closed) return;
    this.resyncing = true;
    let delay = BACKOFF_MIN_MS;
    try {
      while (!this.closed) {
        try {
          await this.relist();
          log('info', 'chainfire listed', {
            source: this.description,
            revision: this.revision,
            after: reason,
          });
          return;
        } catch (err) {
          log('warn', 'chainfire not reachable; retrying', {
            source: this.description,
            retry_ms: delay,
            error: (err as Error).message,
          });
          await new Promise((r) => setTimeout(r, delay));
          delay = Math.min(delay * 2, BACKOFF_MAX_MS);
        }
      }
    } finally {
      this.resyncing = false;
    }
  }

  private changed(): void {
    if (!this.onChange) {
      this.pendingChange = true;
      return;
    }
    this.pendingChange = false;
    if (this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      if (!this.closed) this.onChange?.();
    }, DEBOUNCE_MS);
  }

  private reportQuarantine(list: readonly Quarantined[], revision: number): void {
    const before = new Set(this.quarantined.map((q) => JSON.stringify(q)));
    for (const q of list)
      if (!before.has(JSON.stringify(q)))
        log('warn', 'chainfire key quarantined', { ...q, revision, source: this.description });
    this.quarantined = list;
  }

  private persist(kvs: ReadonlyMap<string, string>, revision: number): void {
    this.persistedRevision = revision;
    this.persisting = this.persisting
      .then(() => writeLastGood(this.cfg.lastGood, { revision, prefix: this.cfg.prefix, kvs }))
      .then(
        () => {
          this.counters.last_good_writes++;
          this.lastGoodError = undefined;
        },
        (err: Error) => {
          this.lastGoodError = `cannot write: ${err.message}`;
          log('error', 'cannot write the chainfire last-good file', {
            last_good: this.cfg.lastGood,
            error: err.message,
          });
        },
      );
  }
}

function sameMap(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}
