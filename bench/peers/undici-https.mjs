// Reference minimal HTTPS proxy: bench/peers/undici-stream.mjs given a cert and key (node:https,
// TLS 1.2+, the same cert as FiberLB's listener), kept as its own command for bench/https-small.mjs.
// Usage: node bench/peers/undici-https.mjs <port> <upstreamUrl> <cert> <key>
if (process.argv.length < 6) {
  process.stderr.write('usage: node bench/peers/undici-https.mjs <port> <upstreamUrl> <cert> <key>\n');
  process.exit(2);
}
await import('./undici-stream.mjs');
