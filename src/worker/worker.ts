// Worker process entry: the data plane. It receives snapshots and health from the primary
// over IPC and makes its listeners match; it never reads config itself.

import cluster from 'node:cluster';
import { deepFreeze, type Snapshot } from '../config/snapshot.ts';
import { isPrimaryMessage, type WorkerToPrimary } from '../ipc.ts';
import { Failures } from '../shared/failure.ts';
import { watchFdExhaustion } from '../shared/fd-limit.ts';
import { log, setLogRole } from '../shared/log.ts';
import { healthCounters, startHealthReports } from './health-reports.ts';
import { ListenerRegistry } from './listeners/registry.ts';
import { LeaseClient } from './ratelimit/lease-client.ts';
import { featureFamilies } from './telemetry/feature-families.ts';
import { WorkerTelemetry } from './telemetry/telemetry.ts';
import { TicketKeyRing } from './tls/ticket-keys.ts';
import { UpstreamPools } from './upstream/http-pools.ts';

export function runWorker(): void {
  const worker = cluster.worker;
  if (!worker) throw new Error('runWorker() must run in a cluster worker');
  setLogRole(`worker-${worker.id}`);

  const failures = new Failures();
  const send = (m: WorkerToPrimary) => {
    if (process.connected) process.send?.(m);
  };
  // Leases come from the primary's ledger; a batch of asks is one IPC message.
  const rateLimits = new LeaseClient({ send: (reqs, returns) => send({ type: 'rl_lease', reqs, returns }) });
  const tickets = new TicketKeyRing();
  const telemetry = new WorkerTelemetry(failures, process.env.FIBERLB_WORKER_SLOT ?? String(worker.id));
  telemetry.registry.add('features', () => featureFamilies(rateLimits));
  const upstreams = new UpstreamPools({ stats: (address) => telemetry.upstream(address) });
  const registry = new ListenerRegistry({ failures, upstreams, rateLimits, tickets, telemetry });
  // Node reports no error when accept() hits EMFILE (see shared/fd-limit.ts): probe for it.
  watchFdExhaustion(failures);
  let revision = 0;
  let draining = false;
  // Snapshots are applied strictly in order; a newer one queued behind a slow apply wins.
  let applying: Promise<void> = Promise.resolve();

  const apply = (snapshot: Snapshot) => {
    applying = applying.then(async () => {
      if (draining || snapshot.revision <= revision) return;
      rateLimits.workers = snapshot.workers;
      const report = await registry.apply(snapshot);
      revision = snapshot.revision;
      for (const f of report.failures)
        send({
          type: 'listener_error',
          revision,
          listener: f.listener,
          bind: f.bind,
          errorClass: 'listen_failed',
          message: f.message,
        });
      send({ type: 'applied', revision, listeners: report.listeners });
    });
  };

  const drain = async (deadlineMs: number) => {
    if (draining) return;
    draining = true;
    log('info', 'draining', { active: registry.active(), deadline_ms: deadlineMs });
    await applying;
    await registry.closeAll(deadlineMs);
    rateLimits.close(); // unused tokens go back to the primary for the workers that stay
    await telemetry.accessLogs.close();
    log('info', 'drained');
    process.exit(0);
  };

  process.on('message', (m: unknown) => {
    if (!isPrimaryMessage(m)) return;
    switch (m.type) {
      case 'snapshot':
        // IPC hands us a fresh plain copy; freeze it so nothing in the data plane can drift
        // from what the primary validated.
        apply(deepFreeze(m.snapshot));
        break;
      case 'health':
        registry.setHealth(m.health);
        break;
      case 'rl_grant':
        rateLimits.onGrants(m.grants);
        break;
      case 'ticket_keys':
        tickets.set(m.keys);
        break;
      case 'drain':
        void drain(m.deadlineMs);
        break;
      case 'status':
        send({
          type: 'status',
          revision,
          active: registry.active(),
          errors: failures.toJSON(),
          rateLimits: { ...rateLimits.stats() },
          counters: healthCounters(),
        });
        break;
      case 'reopen_logs':
        telemetry.accessLogs.reopen();
        break;
      case 'metrics':
        send({
          type: 'metrics',
          id: m.id,
          families: m.full ? telemetry.collect() : [],
          summary: telemetry.summary(),
        });
        break;
    }
  });

  // A bug that escapes every handler leaves this process in an unknown state: log it with its
  // class and exit, so the primary respawns a clean worker while the others keep serving.
  process.on('uncaughtException', (err) => {
    log('error', 'uncaught exception; worker exits', {
      error_class: 'internal_error',
      err: err.stack ?? String(err),
    });
    process.exit(1);
  });

  send({ type: 'hello' });
  startHealthReports(
    send,
    () => revision,
    () => registry.drainingInflight(),
  );

  // The primary drives shutdown; a SIGTERM/SIGINT sent to the whole process group must not
  // cut this worker's in-flight requests short, so the worker just waits for 'drain'.
  process.on('SIGTERM', () => {});
  process.on('SIGINT', () => {});
  // If the primary dies, the IPC channel closes: nothing will ever drain us, so drain now.
  process.on('disconnect', () => void drain(5_000));
}
