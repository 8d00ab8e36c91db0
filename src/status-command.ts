// `fiberlb status`: the dashboard's picture in the terminal, read from the admin API (/api/v1)
// with the token from FIBERLB_ADMIN_TOKEN or admin.token_file. Colours only when stdout is a
// TTY (and NO_COLOR is not set). Exit 0 when FiberLB reports ok, 1 otherwise.

import { request } from 'node:http';
import type { AdminConfig } from './config/model.ts';

interface Status {
  version: string;
  status: string;
  revision: number;
  source: string;
  uptime_s: number;
  workers: Array<{
    slot: number;
    pid: number | null;
    applied_revision: number;
    ready: boolean;
    crashes: number;
  }>;
  workers_ready: number;
}
interface ListenerView {
  listener: string;
  protocol: string;
  bind: string;
  default_pool: string | null;
  open: boolean;
  error: string | null;
}
interface PoolView {
  pool: string;
  lb: string;
  name: string;
  algorithm: string;
}
interface BackendView {
  id: string;
  address: string;
  port: number;
  weight: number;
  admin_state: string;
  health: { state: string };
  serving: boolean;
  why: string | null;
}
interface Point {
  rps: number;
  errors: number;
  p99_ms: number | null;
}

export class StatusError extends Error {}

export async function statusCommand(
  admin: AdminConfig,
  token: string,
  colour: boolean,
): Promise<{ text: string; ok: boolean }> {
  const c = colours(colour);
  const get = <T>(path: string) => getJson<T>(admin, token, path);
  const [st, listeners, pools, history] = await Promise.all([
    get<Status>('/api/v1/status'),
    get<ListenerView[]>('/api/v1/listeners'),
    get<PoolView[]>('/api/v1/pools'),
    get<{ points: Point[] }>('/api/v1/history'),
  ]);
  const backends = await Promise.all(
    pools.map((p) =>
      get<BackendView[]>(`/api/v1/pools/${encodeURIComponent(p.lb)}/${encodeURIComponent(p.name)}/backends`),
    ),
  );
  const out: string[] = [];
  const badge = st.status === 'ok' ? c.green(st.status) : c.red(st.status);
  out.push(
    `${c.bold('FiberLB')} ${st.version}  ${badge}  revision ${st.revision} (${st.source})  workers ${st.workers_ready}/${st.workers.length}  up ${st.uptime_s}s`,
  );
  const last = history.points.slice(-10);
  if (last.length > 0) {
    const avg = (f: (p: Point) => number) => last.reduce((n, p) => n + f(p), 0) / last.length;
    const p99 = last.map((p) => p.p99_ms).filter((v): v is number => v !== null);
    out.push(
      `last ${last.length}s: ${avg((p) => p.rps).toFixed(1)} req/s, ${avg((p) => p.errors).toFixed(1)} 5xx/s, p99 ${p99.length ? `${Math.max(...p99)} ms` : '–'}`,
    );
  }
  out.push('');
  out.push(c.bold('Workers'));
  out.push(
    table(
      ['slot', 'pid', 'revision', 'state', 'crashes'],
      st.workers.map((w) => [
        String(w.slot),
        String(w.pid ?? '–'),
        String(w.applied_revision),
        w.ready ? c.green('ready') : c.red('not ready'),
        String(w.crashes),
      ]),
    ),
  );
  out.push('');
  out.push(c.bold('Listeners'));
  out.push(
    table(
      ['listener', 'protocol', 'bind', 'default pool', 'state'],
      listeners.map((l) => [
        l.listener,
        l.protocol,
        l.bind,
        l.default_pool ?? '–',
        l.open ? c.green('open') : c.red(`not open: ${l.error ?? ''}`),
      ]),
    ),
  );
  out.push('');
  out.push(c.bold('Backends'));
  const rows: string[][] = [];
  pools.forEach((p, i) => {
    for (const b of backends[i] ?? [])
      rows.push([
        p.pool,
        b.id,
        `${b.address}:${b.port}`,
        String(b.weight),
        b.admin_state,
        b.health.state,
        b.serving ? c.green('serving') : c.red('out'),
        b.why ?? '',
      ]);
  });
  out.push(table(['pool', 'backend', 'address', 'weight', 'admin', 'health', 'state', 'why'], rows));
  return { text: `${out.join('\n')}\n`, ok: st.status === 'ok' };
}

function getJson<T>(admin: AdminConfig, token: string, path: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: admin.address, port: admin.port, path, headers: { authorization: `Bearer ${token}` } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (ch: string) => (body += ch));
        res.on('end', () => {
          if (res.statusCode === 401)
            return reject(new StatusError('the admin API refused the token (HTTP 401)'));
          if (res.statusCode !== 200)
            return reject(new StatusError(`${path}: HTTP ${res.statusCode}: ${body.trim().slice(0, 200)}`));
          try {
            resolve(JSON.parse(body) as T);
          } catch {
            reject(new StatusError(`${path}: not JSON`));
          }
        });
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('no answer in time')));
    req.on('error', reject);
    req.end();
  });
}

/** Columns padded to their widest cell (colour codes do not count). */
export function table(head: string[], rows: string[][]): string {
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => visible(r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell + ' '.repeat(width[i]! - visible(cell).length)))
      .join('  ')
      .trimEnd();
  return [line(head), line(width.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function visible(s: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: strips the colour codes we add
  return s.replace(/\x1b\[[0-9;]*m/g, '');
}

function colours(on: boolean) {
  const wrap = (code: number) => (s: string) => (on ? `\x1b[${code}m${s}\x1b[0m` : s);
  return { bold: wrap(1), green: wrap(32), red: wrap(31) };
}
