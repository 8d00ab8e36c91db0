// `node dist/demo/send.js tcp://HOST:PORT TEXT` (or udp://): send TEXT and a newline, print
// what comes back. The demo's TCP/UDP lines use it so they need nothing but Node (no `nc`).

import { createSocket } from 'node:dgram';
import { connect } from 'node:net';

const TIMEOUT_MS = 3_000;

function fail(message: string): never {
  process.stderr.write(`send: ${message}\n`);
  process.exit(1);
}

const [target, ...words] = process.argv.slice(2);
const m = /^(tcp|udp):\/\/(\[[^\]]+\]|[^:/]+):(\d+)$/.exec(target ?? '');
if (!m) fail('usage: node dist/demo/send.js tcp://HOST:PORT|udp://HOST:PORT TEXT');
const [, proto, rawHost, portText] = m;
const host = rawHost!.replace(/^\[|\]$/g, '');
const port = Number(portText);
const payload = `${words.join(' ') || 'hello'}\n`;
const timer = setTimeout(() => fail(`no answer from ${target} within ${TIMEOUT_MS / 1000} s`), TIMEOUT_MS);

if (proto === 'tcp') {
  // Send, half-close (like `nc -q`), print until the other side closes.
  const sock = connect({ host, port, allowHalfOpen: true }, () => sock.end(payload));
  sock.on('data', (chunk) => process.stdout.write(chunk));
  sock.on('end', () => {
    clearTimeout(timer);
    sock.destroy();
  });
  sock.on('error', (err) => fail(`${target}: ${err.message}`));
} else {
  // One datagram out, the first one back is the answer.
  const sock = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  sock.on('message', (msg) => {
    clearTimeout(timer);
    process.stdout.write(msg);
    sock.close();
  });
  sock.on('error', (err) => fail(`${target}: ${err.message}`));
  sock.send(payload, port, host);
}
