// fiberlb backends | plan | import | export: the Chainfire side of the command line. These talk
// to the store named by FILE's `source` directly, with its credentials (endpoints, TLS,
// username/password_file): they are platform-team tools, as trusted as that file. With
// FIBERLB_ADMIN_TOKEN set (a tenant token), `backends` goes through the running FiberLB's admin
// API instead (/v1/backends, scoped to the token's org/project); ephemeral --ttl registrations
// need the store (the command itself keeps the lease alive), so they are refused that way.

import { readFile } from 'node:fs/promises';
import YAML from 'yaml';
import { diffConfigs, planLines, planSummary } from './config/diff.ts';
import { parseDuration } from './config/duration.ts';
import { FileSource } from './config/file-source.ts';
import { formatIssue } from './config/issue.ts';
import type { ChainfireSourceConfig, Config, DynamicConfig } from './config/model.ts';
import { assembleConfig } from './config/sources/chainfire/assemble.ts';
import { openStore } from './config/sources/chainfire/connect.ts';
import { keyOf, parseKey } from './config/sources/chainfire/keys.ts';
import {
  findPool,
  listBackends,
  putBackend,
  RegistrationError,
  removeBackend,
  setAdminState,
} from './config/sources/chainfire/registration.ts';
import type { Store, TxnOp } from './config/sources/chainfire/store.ts';
import { readToken } from './primary/admin/token.ts';

export const CHAINFIRE_USAGE = `  fiberlb backends add|remove|list|drain|enable --config FILE --pool NAME [--lb ID]
                   --address A --port P [--weight W] [--ttl 30s]
                                       register a backend in Chainfire (--ttl: on a lease kept
                                       alive until this command is stopped)
  fiberlb plan --config FILE [TARGET.yaml]   what TARGET's load balancers (default: Chainfire's
                                       current state) would change in the running FiberLB
  fiberlb import FILE                  write FILE's load balancers into Chainfire (one transaction; batches past 128 keys)
  fiberlb export --config FILE         print Chainfire's load balancers as YAML`;

type Out = { code: number; usage?: string };

function flags(args: string[], known: string[]): { f: Map<string, string>; pos: string[] } {
  const f = new Map<string, string>();
  const pos: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) {
      pos.push(a);
      continue;
    }
    if (!known.includes(a)) throw new RegistrationError(`unknown option '${a}'`, 2);
    const v = args[i + 1];
    if (v === undefined || v.startsWith('--')) throw new RegistrationError(`${a} needs a value`, 2);
    f.set(a, v);
    i++;
  }
  return { f, pos };
}

async function loadFile(file: string): Promise<{ config: Config; text: string }> {
  const r = await new FileSource(file).load();
  if (!r.ok) throw new RegistrationError(`${file} is invalid:\n${r.issues.map(formatIssue).join('\n')}`, 1);
  return { config: r.config, text: await readFile(file, 'utf8') };
}

function chainfireOf(file: string, c: Config): ChainfireSourceConfig {
  if (c.static.source.type !== 'chainfire')
    throw new RegistrationError(`${file}: source.type is not chainfire (nothing to talk to)`, 1);
  return c.static.source;
}

export async function chainfireCommand(cmd: string, args: string[]): Promise<Out> {
  let store: Store | undefined;
  try {
    switch (cmd) {
      case 'backends': {
        const [verb, ...rest] = args;
        const { f } = flags(rest, ['--config', '--pool', '--lb', '--address', '--port', '--weight', '--ttl']);
        if (!verb || !['add', 'remove', 'list', 'drain', 'enable'].includes(verb))
          throw new RegistrationError('backends needs add, remove, list, drain or enable', 2);
        const file = f.get('--config');
        const poolName = f.get('--pool');
        if (!file || !poolName)
          throw new RegistrationError('backends needs --config FILE and --pool NAME', 2);
        const loaded = (await loadFile(file)).config;
        const cfg = chainfireOf(file, loaded);
        const tenantToken = process.env.FIBERLB_ADMIN_TOKEN;
        if (tenantToken) return await viaAdminApi(verb, f, loaded, tenantToken);
        store = openStore(cfg);
        const pool = await findPool(store, cfg.prefix, poolName, f.get('--lb'));
        if (verb === 'list') {
          for (const b of await listBackends(store, cfg.prefix, pool))
            process.stdout.write(`${b.key} ${JSON.stringify(b.value)}${b.ephemeral ? ' (ephemeral)' : ''}\n`);
          return { code: 0 };
        }
        const address = f.get('--address');
        const port = Number(f.get('--port'));
        if (!address || !Number.isInteger(port) || port < 1 || port > 65535)
          throw new RegistrationError('needs --address A and --port P (1-65535)', 2);
        if (verb === 'remove') {
          const r = await removeBackend(store, cfg.prefix, pool, address, port);
          process.stdout.write(`removed ${r.key} (revision ${r.revision})\n`);
          return { code: 0 };
        }
        if (verb === 'drain' || verb === 'enable') {
          const r = await setAdminState(
            store,
            cfg.prefix,
            pool,
            address,
            port,
            verb === 'drain' ? 'drain' : 'enabled',
          );
          process.stdout.write(
            `${verb === 'drain' ? 'draining' : 'enabled'} ${r.key} (revision ${r.revision})\n`,
          );
          return { code: 0 };
        }
        const weight = f.has('--weight') ? Number(f.get('--weight')) : undefined;
        if (weight !== undefined && (!Number.isInteger(weight) || weight < 1 || weight > 1000))
          throw new RegistrationError('--weight must be an integer 1-1000', 2);
        const spec = { address, port, ...(weight !== undefined ? { weight } : {}) };
        const ttlText = f.get('--ttl');
        if (ttlText === undefined) {
          const r = await putBackend(store, cfg.prefix, pool, spec);
          process.stdout.write(`registered ${r.key} (revision ${r.revision})\n`);
          return { code: 0 };
        }
        const ttl = parseDuration(ttlText);
        if (!ttl.ok || ttl.value < 2000) throw new RegistrationError(`--ttl: at least 2s (${ttlText})`, 2);
        const lease = await store.lease(Math.ceil(ttl.value / 1000));
        const r = await putBackend(store, cfg.prefix, pool, spec, lease);
        process.stdout.write(
          `registered ${r.key} on lease ${lease.id} (ttl ${ttlText}); kept alive until this command stops\n`,
        );
        return await new Promise<Out>((resolve) => {
          const stop = () => {
            // Revoked on a clean stop: the backend leaves at once instead of after the TTL.
            void lease.revoke().finally(() => {
              process.stdout.write(`unregistered ${r.key}\n`);
              resolve({ code: 0 });
            });
          };
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
          lease.onLost((reason) => {
            process.stderr.write(`fiberlb: lease lost (${reason}); ${r.key} is gone\n`);
            resolve({ code: 1 });
          });
        });
      }
      case 'plan': {
        const { f, pos } = flags(args, ['--config']);
        const file = f.get('--config');
        if (!file) throw new RegistrationError("plan needs --config FILE (the running FiberLB's)", 2);
        const { config, text } = await loadFile(file);
        const running = await runningConfig(file, config);
        let target: DynamicConfig;
        if (pos[0]) target = (await loadFile(pos[0])).config.dynamic;
        else {
          const cfg = chainfireOf(file, config);
          store = openStore(cfg);
          target = await currentConfig(store, cfg, text, file);
        }
        const plan = diffConfigs(running.config, target);
        for (const line of planLines(plan)) process.stdout.write(`${line}\n`);
        process.stdout.write(`plan: ${planSummary(plan)} (against running revision ${running.revision})\n`);
        return { code: 0 };
      }
      case 'import': {
        const { pos } = flags(args, []);
        const file = pos[0];
        if (!file) throw new RegistrationError('import needs FILE', 2);
        const { config, text } = await loadFile(file);
        const cfg = chainfireOf(file, config);
        const ops = importOps(cfg.prefix, YAML.parse(text) as { load_balancers?: unknown[] });
        store = openStore(cfg);
        const batches = importBatches(ops, MAX_TXN_OPS);
        let revision = 0;
        for (const batch of batches) revision = (await store.txn(batch)).revision;
        process.stdout.write(
          batches.length === 1
            ? `imported ${ops.length} keys under ${cfg.prefix} in one transaction (revision ${revision})\n`
            : `imported ${ops.length} keys under ${cfg.prefix} in ${batches.length} transactions of at most ${MAX_TXN_OPS} (etcd's --max-txn-ops), backends first, load balancers last (revision ${revision})\n`,
        );
        return { code: 0 };
      }
      case 'export': {
        const { f } = flags(args, ['--config']);
        const file = f.get('--config');
        if (!file) throw new RegistrationError('export needs --config FILE', 2);
        const cfg = chainfireOf(file, (await loadFile(file)).config);
        store = openStore(cfg);
        const { kvs } = await store.range(cfg.prefix);
        process.stdout.write(YAML.stringify({ load_balancers: exportDoc(cfg.prefix, kvs) }));
        return { code: 0 };
      }
    }
    return { code: 2, usage: `unknown command '${cmd}'` };
  } catch (err) {
    if (err instanceof RegistrationError) {
      if (err.status === 2) return { code: 2, usage: err.message };
      process.stderr.write(`fiberlb: ${err.message}\n`);
      return { code: 1 };
    }
    process.stderr.write(`fiberlb: ${(err as Error).message}\n`);
    return { code: 1 };
  } finally {
    await store?.close();
  }
}

/** The served config of the FiberLB running with `file` (GET /config with its admin token). */
async function runningConfig(
  file: string,
  config: Config,
): Promise<{ revision: number; config: DynamicConfig }> {
  const { address, port, tokenFile } = config.static.admin;
  if (!tokenFile)
    throw new RegistrationError(`${file}: admin.token_file is not set: cannot ask the running FiberLB`, 1);
  const token = await readToken(tokenFile);
  if (token === undefined)
    throw new RegistrationError(
      `admin token ${tokenFile} does not exist: is FiberLB running with ${file}?`,
      1,
    );
  const at = `${address.includes(':') ? `[${address}]` : address}:${port}`;
  const res = await fetch(`http://${at}/config`, { headers: { authorization: `Bearer ${token}` } }).catch(
    (err: Error) => {
      throw new RegistrationError(`cannot reach the admin API at ${at}: ${err.message}`, 1);
    },
  );
  const body = (await res.json().catch(() => ({}))) as {
    revision?: number;
    config?: DynamicConfig;
    error?: string;
  };
  if (!res.ok || !body.config || typeof body.revision !== 'number')
    throw new RegistrationError(`admin API at ${at} (HTTP ${res.status}): ${body.error ?? 'no config'}`, 1);
  return { revision: body.revision, config: body.config };
}

/** `backends VERB` through the admin API with a tenant token (persistent registrations only). */
async function viaAdminApi(
  verb: string,
  f: Map<string, string>,
  config: Config,
  token: string,
): Promise<Out> {
  if (f.has('--ttl'))
    throw new RegistrationError(
      '--ttl needs the store: an ephemeral registration holds a lease this command keeps alive; unset FIBERLB_ADMIN_TOKEN to use the source credentials of --config',
      1,
    );
  const { address: host, port: adminPort } = config.static.admin;
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${adminPort}/v1/backends`;
  const pool = f.get('--pool')!;
  const lb = f.get('--lb');
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  let res: Response;
  if (verb === 'list') {
    const q = new URLSearchParams({ pool, ...(lb ? { lb } : {}) });
    res = await fetch(`${base}?${q}`, { headers });
  } else {
    const address = f.get('--address');
    const port = Number(f.get('--port'));
    if (!address || !Number.isInteger(port) || port < 1 || port > 65535)
      throw new RegistrationError('needs --address A and --port P (1-65535)', 2);
    const weight = f.has('--weight') ? Number(f.get('--weight')) : undefined;
    const body: Record<string, unknown> = { pool, ...(lb ? { lb } : {}), address, port };
    if (verb === 'add' && weight !== undefined) body.weight = weight;
    if (verb === 'drain' || verb === 'enable') body.admin_state = verb === 'drain' ? 'drain' : 'enabled';
    const method = verb === 'add' ? 'POST' : verb === 'remove' ? 'DELETE' : 'PATCH';
    res = await fetch(base, { method, headers, body: JSON.stringify(body) });
  }
  const answer = (await res.json().catch(() => ({}))) as {
    error?: string;
    key?: string;
    revision?: number;
    backends?: Array<{ key: string; value: unknown; ephemeral: boolean }>;
  };
  if (!res.ok)
    throw new RegistrationError(`admin API (HTTP ${res.status}): ${answer.error ?? 'no answer'}`, 1);
  if (verb === 'list') {
    for (const b of answer.backends ?? [])
      process.stdout.write(`${b.key} ${JSON.stringify(b.value)}${b.ephemeral ? ' (ephemeral)' : ''}\n`);
  } else {
    const done = { add: 'registered', remove: 'removed', drain: 'draining', enable: 'enabled' }[verb];
    process.stdout.write(`${done} ${answer.key} (revision ${answer.revision})\n`);
  }
  return { code: 0 };
}

async function currentConfig(store: Store, cfg: ChainfireSourceConfig, text: string, file: string) {
  const { kvs } = await store.range(cfg.prefix);
  const raw = YAML.parse(text) as Record<string, unknown>;
  const r = assembleConfig(
    { admin: raw.admin, cluster: raw.cluster, source: raw.source },
    cfg.prefix,
    new Map(kvs.map((kv) => [kv.key, kv.value])),
    file,
    {},
  );
  if (!r.ok) throw new RegistrationError(r.issues.map(formatIssue).join('\n'), 1);
  return r.config.dynamic;
}

type Raw = Record<string, unknown>;

/** YAML load balancers → keys. Pool ids are the pool names, or LB.NAME where a name repeats. */
export function importOps(prefix: string, doc: { load_balancers?: unknown[] }): TxnOp[] {
  const lbs = (doc.load_balancers ?? []) as Raw[];
  const count = new Map<string, number>();
  for (const lb of lbs)
    for (const p of (lb.pools ?? []) as Raw[])
      count.set(String(p.name), (count.get(String(p.name)) ?? 0) + 1);
  const ops: TxnOp[] = [];
  for (const lb of lbs) {
    const { name, org, project, listeners = [], pools = [], ...rest } = lb;
    const lbId = String(name);
    ops.push({
      put: keyOf(prefix, { kind: 'lb', org: String(org), project: String(project), lbId }),
      value: JSON.stringify(rest),
    });
    for (const l of listeners as Raw[]) {
      const { name: ln, ...lv } = l;
      ops.push({
        put: keyOf(prefix, { kind: 'listener', lbId, listenerId: String(ln) }),
        value: JSON.stringify(lv),
      });
    }
    for (const p of pools as Raw[]) {
      const { name: pn, backends = [], ...pv } = p;
      const poolId = count.get(String(pn))! > 1 ? `${lbId}.${String(pn)}` : String(pn);
      ops.push({
        put: keyOf(prefix, { kind: 'pool', lbId, poolId }),
        value: JSON.stringify(poolId === pn ? pv : { name: pn, ...pv }),
      });
      for (const b of backends as Raw[]) {
        const { id, ...bv } = b;
        const backendId = id !== undefined ? String(id) : `${String(b.address)}:${String(b.port)}`;
        ops.push({ put: keyOf(prefix, { kind: 'backend', poolId, backendId }), value: JSON.stringify(bv) });
      }
    }
  }
  return ops;
}

/** etcd refuses a transaction of more operations than its --max-txn-ops, 128 by default. */
export const MAX_TXN_OPS = 128;

/**
 * `ops` in transactions of at most `max`: one when they fit. Otherwise in reference order —
 * backends, pools, listeners, then load balancers — so a FiberLB watching meanwhile never
 * sees a listener whose pool is missing: a new load balancer appears, whole, with the last
 * transaction (keys it replaces change batch by batch).
 */
export function importBatches(ops: readonly TxnOp[], max: number): TxnOp[][] {
  if (ops.length <= max) return [[...ops]];
  const rank = (op: TxnOp): number => {
    const key = 'put' in op ? op.put : op.delete;
    return ORDER.findIndex((part) => key.includes(part));
  };
  const sorted = ops.map((op, i) => ({ op, i, r: rank(op) })).sort((a, b) => b.r - a.r || a.i - b.i);
  const out: TxnOp[][] = [];
  for (let i = 0; i < sorted.length; i += max) out.push(sorted.slice(i, i + max).map((x) => x.op));
  return out;
}
const ORDER = ['/loadbalancers/', '/listeners/', '/pools/', '/backends/'];

/** Keys → YAML load balancers (the reverse of importOps; values that are not JSON are skipped). */
export function exportDoc(prefix: string, kvs: ReadonlyArray<{ key: string; value: string }>): Raw[] {
  const lbs = new Map<string, Raw>();
  const pools = new Map<string, Raw>();
  const parsed = kvs.flatMap((kv) => {
    const ref = parseKey(prefix, kv.key);
    try {
      return ref ? [{ ref, value: JSON.parse(kv.value) as Raw }] : [];
    } catch {
      return [];
    }
  });
  for (const { ref, value } of parsed)
    if (ref.kind === 'lb')
      lbs.set(ref.lbId, {
        name: ref.lbId,
        org: ref.org,
        project: ref.project,
        ...value,
        listeners: [],
        pools: [],
      });
  for (const { ref, value } of parsed) {
    if (ref.kind === 'listener')
      (lbs.get(ref.lbId)?.listeners as Raw[] | undefined)?.push({ name: ref.listenerId, ...value });
    if (ref.kind === 'pool') {
      const p = { name: ref.poolId, ...value, backends: [] };
      pools.set(ref.poolId, p);
      (lbs.get(ref.lbId)?.pools as Raw[] | undefined)?.push(p);
    }
  }
  for (const { ref, value } of parsed)
    if (ref.kind === 'backend')
      (pools.get(ref.poolId)?.backends as Raw[] | undefined)?.push({ id: ref.backendId, ...value });
  return [...lbs.values()];
}
