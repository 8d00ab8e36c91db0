// Backend actions with the Chainfire source: the backend's key in the store is rewritten
// (admin_state or weight in its JSON value) by a transaction guarded by the key's mod_revision,
// retried a bounded number of times on a conflict (chainfire/registration.ts patchBackend), so
// every FiberLB watching the store applies it through its normal watch path and a restart
// keeps it. The answer waits (bounded) until this FiberLB serves the written revision in every
// worker. Tenant tokens are scoped exactly as /v1/backends scopes them (TenantAccess): a pool
// of another org/project is 403 and nothing is written. Every failure writes nothing (the
// transaction is all-or-nothing) and is counted under its error class.

import { findBackend, patchBackend, RegistrationError } from '../../config/sources/chainfire/registration.ts';
import type { ErrorClass } from '../../shared/errors.ts';
import { errorText, type Failures } from '../../shared/failure.ts';
import { log } from '../../shared/log.ts';
import type { ReloadOutcome } from '../health.ts';
import {
  type BackendTarget,
  type BackendWriter,
  describeAction,
  type WriteOutcome,
  type WriterStats,
} from './backend-writer.ts';
import type { TenantAccess } from './registration.ts';
import type { BackendAction, Caller } from './routes.ts';

/** Wait (bounded) until store revision `rev` is served by every worker of this FiberLB. */
export type WaitServed = (storeRevision: number) => Promise<ReloadOutcome>;

export class StoreActions implements BackendWriter {
  readonly writesTo = 'chainfire';
  private readonly counters = {
    writes: 0,
    /** Guarded writes that lost to a concurrent change and were tried again. */
    conflicts_retried: 0,
    denied_403: 0,
    failed: 0,
  };

  constructor(
    private readonly access: TenantAccess,
    private readonly served: WaitServed,
    private readonly failures: Failures,
  ) {}

  /** Counters for /metrics: writes, conflicts retried, tenant refusals, failures. */
  stats(): WriterStats {
    const c = this.counters;
    return {
      written: c.writes,
      failed: c.failed,
      denied: c.denied_403,
      conflictsRetried: c.conflicts_retried,
    };
  }

  status(): Record<string, unknown> {
    return { writes_to: 'chainfire', prefix: this.access.source.prefix, ...this.counters };
  }

  async write(t: BackendTarget, a: BackendAction, caller: Caller): Promise<WriteOutcome> {
    if (a.kind === 'reset')
      return {
        ok: false,
        status: 400,
        error:
          "reset drops an in-memory override; with source chainfire the store's value is the config: use enable or weight",
      };
    const patch = a.kind === 'weight' ? { weight: a.weight } : { admin_state: a.adminState };
    const prefix = this.access.source.prefix;
    let key: string | undefined;
    let r: Awaited<ReturnType<typeof patchBackend>>;
    try {
      const store = this.access.store();
      const found = await findBackend(store, prefix, t.lb, t.pool, t.id);
      key = found.key;
      if (caller.kind === 'tenant' && !this.access.allowed(caller, found.pool)) {
        this.counters.denied_403++;
        return { ok: false, status: 403, error: `pool '${t.pool}' belongs to another tenant` };
      }
      r = await patchBackend(store, found.key, patch, `no key for backend ${t.key} (${found.key})`);
    } catch (err) {
      this.counters.failed++;
      const cls: ErrorClass =
        err instanceof RegistrationError
          ? err.status === 404
            ? 'admin_backend_gone'
            : 'admin_write_conflict'
          : 'admin_store_unavailable';
      const status = cls === 'admin_store_unavailable' ? 503 : cls === 'admin_backend_gone' ? 404 : 409;
      const error =
        cls === 'admin_store_unavailable'
          ? `chainfire not reachable (${errorText(err)}); nothing written`
          : (err as Error).message;
      this.failures.report(cls, 'admin action not written to chainfire', {
        backend: t.key,
        ...(key ? { key } : {}),
        action: describeAction(a),
        error: errorText(err),
      });
      return { ok: false, status, error, errorClass: cls };
    }
    this.counters.writes++;
    this.counters.conflicts_retried += r.attempts - 1;
    log('info', 'admin action written to chainfire', {
      backend: t.key,
      key: r.key,
      action: describeAction(a),
      store_revision: r.revision,
      by: caller.kind === 'admin' ? 'admin' : `${caller.org}/${caller.project}`,
    });
    const outcome = await this.served(r.revision);
    return { ok: true, outcome, extra: { store_key: r.key, store_revision: r.revision } };
  }
}
