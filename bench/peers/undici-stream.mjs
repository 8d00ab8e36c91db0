// Reference minimal proxy: node:http server (node:https with a cert and key: TLS 1.2+, the same
// cert as FiberLB's listener) + undici Pool.stream writing straight into the ServerResponse.
// Keep-alive pool, hop-by-hop headers stripped both ways, 502 on upstream error.
// Usage: node bench/peers/undici-stream.mjs <listenPort> <upstreamUrl> [<cert> <key>]
// (prints "listening <port>"); bench/peers/undici-https.mjs is this peer with cert and key.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { Pool } from 'undici';

const [listenPort, upstream, cert, key] = [Number(process.argv[2] ?? 0), ...process.argv.slice(3)];
const pool = new Pool(upstream, { connections: 256, pipelining: 1, keepAliveTimeout: 60_000 });
const HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade'];
const strip = (h) => {
  for (const k of HOP) delete h[k];
  return h;
};

const handler = (req, res) => {
  const hasBody =
    req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  pool.stream(
    {
      path: req.url,
      method: req.method,
      headers: strip({ ...req.headers }),
      body: hasBody ? req : null,
      opaque: res,
    },
    ({ statusCode, headers, opaque }) => {
      opaque.writeHead(statusCode, strip(headers));
      return opaque;
    },
    (err) => {
      if (!err) return;
      if (!res.headersSent) res.writeHead(502, { 'content-length': 0 }).end();
      else res.destroy(err);
    },
  );
};
const server =
  cert !== undefined
    ? https.createServer({ cert: readFileSync(cert), key: readFileSync(key), minVersion: 'TLSv1.2' }, handler)
    : http.createServer(handler);
server.keepAliveTimeout = 60_000;
server.listen(listenPort, '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
const stop = () => {
  server.close();
  server.closeAllConnections();
  pool.destroy().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
