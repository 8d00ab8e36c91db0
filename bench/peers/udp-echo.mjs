// UDP echo backend for the udp scenario: every datagram goes back to its sender.
// Usage: node bench/peers/udp-echo.mjs [port]   (prints "listening <port>")
import dgram from 'node:dgram';

const s = dgram.createSocket('udp4');
s.on('message', (msg, rinfo) => s.send(msg, rinfo.port, rinfo.address));
s.bind(Number(process.argv[2] ?? 0), '127.0.0.1', () =>
  process.stdout.write(`listening ${s.address().port}\n`),
);
process.on('SIGTERM', () => process.exit(0));
