// Reference minimal HTTP/2 proxy for the `h2` scenario: node:http2 secure server (ALPN h2 and
// http/1.1, as FiberLB's https listener; TLS 1.2+, the bench certificate) using the compat API
// (req, res) — the API FiberLB's listener uses too — + undici Pool.stream to the HTTP/1.1
// backend, as bench/peers/undici-https.mjs does for HTTP/1.1 over TLS.
// Usage: node bench/peers/undici-h2.mjs <port> <upstreamUrl> <cert> <key>
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import { Pool } from 'undici';

const [listenPort, upstream, cert, key] = [Number(process.argv[2] ?? 0), ...process.argv.slice(3)];
const pool = new Pool(upstream, { connections: 256, pipelining: 1, keepAliveTimeout: 60_000 });
// Hop-by-hop headers: not forwarded, and HTTP/2 forbids them in a response.
const HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade'];
const strip = (h) => {
  for (const k of HOP) delete h[k];
  return h;
};
/** The request head for the HTTP/1.1 upstream: no pseudo-headers, :authority as Host. */
function upstreamHeaders(req) {
  const h = {};
  for (const [k, v] of Object.entries(req.headers)) if (k.charCodeAt(0) !== 58 /* : */) h[k] = v;
  if (h.host === undefined && req.headers[':authority']) h.host = req.headers[':authority'];
  return strip(h);
}
const server = http2.createSecureServer(
  { cert: readFileSync(cert), key: readFileSync(key), minVersion: 'TLSv1.2', allowHTTP1: true },
  (req, res) => {
    const hasBody =
      req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
    pool.stream(
      {
        path: req.url,
        method: req.method,
        headers: upstreamHeaders(req),
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
  },
);
server.listen(listenPort, '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
const stop = () => {
  server.close();
  pool.destroy().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref(); // open h2 sessions would hold close()
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
