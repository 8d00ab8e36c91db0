// Reference minimal proxy: node:http server + undici Pool.stream writing straight into the
// ServerResponse. Keep-alive pool, hop-by-hop headers stripped both ways, 502 on upstream error.
// Usage: node bench/peers/undici-stream.mjs <listenPort> <upstreamUrl>   (prints "listening <port>")
import http from 'node:http';
import { Pool } from 'undici';

const [listenPort, upstream] = [Number(process.argv[2] ?? 0), process.argv[3]];
const pool = new Pool(upstream, { connections: 256, pipelining: 1, keepAliveTimeout: 60_000 });
const HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade'];
const strip = (h) => {
  for (const k of HOP) delete h[k];
  return h;
};

const server = http.createServer((req, res) => {
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
});
server.keepAliveTimeout = 60_000;
server.listen(listenPort, '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
const stop = () => {
  server.close();
  server.closeAllConnections();
  pool.destroy().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
