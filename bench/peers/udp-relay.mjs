// Reference minimal UDP proxy: one connect()ed upstream socket per client address:port, replies
// sent back through the listening socket (what FiberLB's udp listener does, without limits,
// expiry or routing). Usage: node bench/peers/udp-relay.mjs <port> <http://host:port of the upstream>
import dgram from 'node:dgram';

const [port, upstream] = [Number(process.argv[2] ?? 0), new URL(process.argv[3])];
const front = dgram.createSocket('udp4');
const sessions = new Map();
front.on('message', (msg, rinfo) => {
  const key = `${rinfo.address}:${rinfo.port}`;
  let s = sessions.get(key);
  if (!s) {
    s = { sock: dgram.createSocket('udp4'), pending: [] };
    sessions.set(key, s);
    s.sock.on('message', (reply) => front.send(reply, rinfo.port, rinfo.address));
    s.sock.connect(Number(upstream.port), upstream.hostname, () => {
      for (const m of s.pending) s.sock.send(m);
      s.pending = null;
    });
  }
  if (s.pending) s.pending.push(msg);
  else s.sock.send(msg);
});
front.bind(port, '127.0.0.1', () => process.stdout.write(`listening ${front.address().port}\n`));
process.on('SIGTERM', () => process.exit(0));
