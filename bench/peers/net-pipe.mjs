// Reference minimal L4 proxy: node:net server, one upstream connection per client, piped both
// ways (the "node:net pipe" the L4 targets are held to).
// Usage: node bench/peers/net-pipe.mjs <listenPort> <upstreamUrl>   (prints "listening <port>")
import net from 'node:net';

const [listenPort, upstream] = [Number(process.argv[2] ?? 0), new URL(process.argv[3])];
const server = net.createServer((c) => {
  const u = net.connect(Number(upstream.port), upstream.hostname);
  c.pipe(u).pipe(c);
  const close = () => {
    c.destroy();
    u.destroy();
  };
  c.on('error', close);
  u.on('error', close);
  c.on('close', close);
  u.on('close', close);
});
server.listen(listenPort, '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
process.on('SIGTERM', () => process.exit(0));
