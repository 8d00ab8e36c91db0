// Tiny HTTP backend for the benchmark: answers every request with a fixed small body.
// Usage: node bench/backend.mjs [port] [host]   (prints "listening <port>" when ready)
import http from 'node:http';

const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
const host = process.argv[3] ?? '127.0.0.1';
// BENCH_BODY_BYTES: another body size (x…x\n), for the 16 KiB scenario.
const size = Number(process.env.BENCH_BODY_BYTES) || 0;
const body = Buffer.from(size && size !== 13 ? `${'x'.repeat(size - 1)}\n` : 'hello, world\n');

const server = http.createServer((req, res) => {
  // Drain any request body; respond with a fixed 13-byte body and an explicit length.
  req.resume();
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.headersTimeout = 65_000;
server.listen(port, host, () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
const stop = () => server.close(() => process.exit(0)).closeAllConnections();
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
