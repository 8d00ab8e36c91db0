// GET /config (admin token): the served config as the running primary holds it (revision,
// origin, load balancers in model form), so `fiberlb plan` diffs against what really runs.
// Private keys are shown as digests (config/secrets.ts), never as PEM.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { withoutPrivateKeys } from '../../config/secrets.ts';
import type { Snapshot } from '../../config/snapshot.ts';
import type { AdminRoute } from './registration.ts';
import { tokenMatches } from './token.ts';

export function configRoute(token: string, current: () => Snapshot | undefined): AdminRoute {
  return async (req: IncomingMessage, res: ServerResponse, path: string) => {
    if (path !== '/config' || req.method !== 'GET') return false;
    const s = current();
    const [status, body] = !tokenMatches(token, req.headers.authorization)
      ? [401, { error: 'missing or wrong bearer token (see admin.token_file)' }]
      : s
        ? [200, { revision: s.revision, origin: s.origin, config: withoutPrivateKeys(s.config) }]
        : [503, { error: 'no config loaded yet' }];
    const text = `${JSON.stringify(body)}\n`;
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
    return true;
  };
}

/** Several extra routes as one: the first that handles the request wins. */
export function routes(...list: Array<AdminRoute | undefined>): AdminRoute {
  const all = list.filter((r): r is AdminRoute => r !== undefined);
  return async (req, res, path) => {
    for (const r of all) if (await r(req, res, path)) return true;
    return false;
  };
}
