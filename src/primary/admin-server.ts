// The admin listener (loopback by default; in production the management network).
// GET /healthz is open (Docker HEALTHCHECK, orchestrators); everything else needs the bearer token.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AdminConfig } from '../config/model.ts';
import { tokenMatches } from './admin-token.ts';
import type { HealthBody, ReloadOutcome } from './health.ts';
import { CONTENT_TYPE } from './metrics/prometheus.ts';

export interface AdminHandlers {
  /** ready false → 503 (no worker serves the current revision, or a listener is not open). */
  health(): { ready: boolean; body: HealthBody };
  status(): Promise<Record<string, unknown>>;
  reload(): Promise<ReloadOutcome>;
  /** Prometheus text (content type CONTENT_TYPE). */
  metrics(): Promise<string>;
}

export function startAdminServer(cfg: AdminConfig, token: string, h: AdminHandlers): Promise<Server> {
  const server = createServer((req, res) => {
    void route(req, res).catch((err: Error) => json(res, 500, { error: err.message }));
  });
  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) {
      const { ready, body } = h.health();
      return json(res, ready ? 200 : 503, body);
    }
    if (
      path === '/metrics' &&
      req.method === 'GET' &&
      (cfg.metricsOpen || tokenMatches(token, req.headers.authorization))
    ) {
      const text = await h.metrics();
      res.writeHead(200, { 'content-type': CONTENT_TYPE, 'content-length': Buffer.byteLength(text) });
      res.end(text);
      return;
    }
    if (!tokenMatches(token, req.headers.authorization)) {
      return json(res, 401, { error: 'missing or wrong bearer token (see admin.token_file)' });
    }
    if (path === '/status' && req.method === 'GET') return json(res, 200, await h.status());
    if (path === '/reload' && req.method === 'POST') {
      const r = await h.reload();
      // 422: the config was rejected (last good kept). 503: accepted, but not fully served.
      return json(res, r.ok ? 200 : r.applied ? 503 : 422, r);
    }
    return json(res, 404, { error: 'not found' });
  }
  server.headersTimeout = 5_000;
  // A reload answers once the workers applied it (bounded by APPLY_TIMEOUT_MS).
  server.requestTimeout = 30_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port, cfg.address, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
