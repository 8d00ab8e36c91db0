// http-proxy-3 peer with a keep-alive agent (without one, every upstream request is
// `connection: close` and throughput collapses — see /work/shared/field-notes.md).
// Usage: node bench/peers/http-proxy-3.mjs <listenPort> <upstreamUrl>   (prints "listening <port>")
import http from 'node:http';
import { createProxyServer } from 'http-proxy-3';

const [listenPort, upstream] = [Number(process.argv[2] ?? 0), process.argv[3]];
const agent = new http.Agent({ keepAlive: true, maxSockets: 256, keepAliveMsecs: 60_000 });
const proxy = createProxyServer({ target: upstream, agent });
proxy.on('error', (_err, _req, res) => {
  if (res && typeof res.writeHead === 'function' && !res.headersSent)
    res.writeHead(502, { 'content-length': 0 }).end();
  else res?.destroy?.();
});

const server = http.createServer((req, res) => proxy.web(req, res));
server.keepAliveTimeout = 60_000;
server.listen(listenPort, '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
const stop = () => {
  server.close();
  server.closeAllConnections();
  agent.destroy();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
