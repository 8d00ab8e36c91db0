import assert from 'node:assert/strict';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import {
  encodeProxyV1,
  encodeProxyV2,
  PROXY_V1_MAX_BYTES,
  type ProxyAddresses,
  type ProxyParseResult,
  parseProxyHeader,
  proxyAddresses,
  type ReadProxyResult,
  readProxyHeader,
} from '../src/worker/proxy-protocol.ts';

const V4: ProxyAddresses = {
  family: 4,
  sourceAddress: '203.0.113.7',
  sourcePort: 4242,
  destAddress: '198.51.100.1',
  destPort: 443,
};
const V6: ProxyAddresses = {
  family: 6,
  sourceAddress: '2001:db8::7',
  sourcePort: 65535,
  destAddress: 'fe80::1:2:0:0',
  destPort: 0,
};

function done(r: ProxyParseResult): { header: ProxyAddresses | null; consumed: number } {
  assert.ok(!('error' in r), `unexpected error: ${'error' in r ? r.error : ''}`);
  assert.ok(r.done, 'expected a complete header');
  return r;
}
const isError = (r: ProxyParseResult) => 'error' in r;
const needsMore = (r: ProxyParseResult) => !('error' in r) && !r.done;

test('v1 TCP4 and TCP6 parse, leaving the payload', () => {
  const line = Buffer.from('PROXY TCP4 203.0.113.7 198.51.100.1 4242 443\r\n');
  const r = done(parseProxyHeader(Buffer.concat([line, Buffer.from('GET /')])));
  assert.deepEqual(r.header, V4);
  assert.equal(r.consumed, line.length);
  const r6 = done(parseProxyHeader(Buffer.from('PROXY TCP6 2001:db8::7 fe80::1:2:0:0 65535 0\r\n')));
  assert.deepEqual(r6.header, V6);
});

test('v1 UNKNOWN yields no addresses', () => {
  const r = done(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\nxyz')));
  assert.equal(r.header, null);
  assert.equal(r.consumed, 15);
  // Anything after UNKNOWN is ignored by spec.
  assert.equal(done(parseProxyHeader(Buffer.from('PROXY UNKNOWN ffff::1 ::1 1 2\r\n'))).header, null);
});

test('v1 encode round-trips', () => {
  for (const a of [V4, V6]) assert.deepEqual(done(parseProxyHeader(encodeProxyV1(a))).header, a);
  assert.equal(encodeProxyV1(null).toString(), 'PROXY UNKNOWN\r\n');
});

test('v1 rejects malformed lines', () => {
  for (const bad of [
    'PROXY TCP4 203.0.113.7 198.51.100.1 4242 443\n', // LF only
    'PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n', // wrong family
    'PROXY TCP4 10.0.300.1 198.51.100.1 1 2\r\n',
    'PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n',
    'PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n',
    'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n',
    'PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n',
    'PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n',
    'PROXX TCP4',
  ]) {
    assert.ok(isError(parseProxyHeader(Buffer.from(bad))), bad);
  }
});

test('v1 oversize line is rejected, not waited on', () => {
  const long = Buffer.from(`PROXY UNKNOWN ${'x'.repeat(PROXY_V1_MAX_BYTES)}`);
  assert.ok(isError(parseProxyHeader(long)));
  assert.ok(needsMore(parseProxyHeader(long.subarray(0, PROXY_V1_MAX_BYTES - 1))));
});

test('v2 TCP4/TCP6 encode and parse', () => {
  for (const a of [V4, V6]) {
    const enc = encodeProxyV2(a);
    assert.equal(enc.length, a.family === 4 ? 28 : 52);
    const r = done(parseProxyHeader(Buffer.concat([enc, Buffer.from('payload')])));
    assert.deepEqual(r.header, a);
    assert.equal(r.consumed, enc.length);
  }
});

test('v2 LOCAL, UNSPEC and TLVs', () => {
  const local = encodeProxyV2(null);
  assert.equal(local.length, 16);
  assert.equal(local[12], 0x20);
  assert.deepEqual(done(parseProxyHeader(local)), { done: true, header: null, consumed: 16 });
  // PROXY command with AF_UNSPEC: addresses unknown.
  const unspec = Buffer.from(local);
  unspec[12] = 0x21;
  assert.equal(done(parseProxyHeader(unspec)).header, null);
  // TLVs after the addresses are skipped via the length field.
  const base = encodeProxyV2(V4);
  const tlv = Buffer.from([0x04, 0x00, 0x03, 1, 2, 3]); // PP2_TYPE_NOOP, 3 bytes
  const withTlv = Buffer.concat([base, tlv]);
  withTlv.writeUInt16BE(12 + tlv.length, 14);
  const r = done(parseProxyHeader(Buffer.concat([withTlv, Buffer.from('x')])));
  assert.deepEqual(r.header, V4);
  assert.equal(r.consumed, withTlv.length);
});

test('v2 IPv4-mapped and compressed IPv6 formatting', () => {
  const a: ProxyAddresses = { ...V6, sourceAddress: '::ffff:10.1.2.3', destAddress: '2001:db8:0:0:1::1' };
  const h = done(parseProxyHeader(encodeProxyV2(a))).header;
  assert.equal(h?.sourceAddress, '::ffff:10.1.2.3');
  assert.equal(h?.destAddress, '2001:db8::1:0:0:1');
});

test('partial input needs more, byte by byte, for both versions', () => {
  for (const full of [encodeProxyV1(V4), encodeProxyV1(V6), encodeProxyV2(V4), encodeProxyV2(V6)]) {
    for (let i = 0; i < full.length; i++) assert.ok(needsMore(parseProxyHeader(full.subarray(0, i))), `${i}`);
    assert.equal(done(parseProxyHeader(full)).consumed, full.length);
  }
});

test('garbage and bad v2 fields are errors', () => {
  assert.ok(isError(parseProxyHeader(Buffer.from('GET / HTTP/1.1\r\n'))));
  assert.ok(isError(parseProxyHeader(Buffer.from([0x16, 0x03, 0x01]))));
  const sig = encodeProxyV2(V4);
  const badSig = Buffer.from(sig);
  badSig[5] = 0x00;
  assert.ok(isError(parseProxyHeader(badSig)));
  const v3 = Buffer.from(sig);
  v3[12] = 0x31;
  assert.ok(isError(parseProxyHeader(v3)));
  const cmd = Buffer.from(sig);
  cmd[12] = 0x22;
  assert.ok(isError(parseProxyHeader(cmd)));
  const short = Buffer.from(sig);
  short.writeUInt16BE(4, 14); // INET with a 4-byte address block
  assert.ok(isError(parseProxyHeader(short)));
});

test('v2 oversize is rejected as soon as the length is known', () => {
  const h = encodeProxyV2(null);
  h.writeUInt16BE(5000, 14);
  assert.ok(isError(parseProxyHeader(h)));
  h.writeUInt16BE(100, 14);
  assert.ok(isError(parseProxyHeader(h, 64)));
});

test('proxyAddresses normalises families', () => {
  assert.deepEqual(proxyAddresses('::ffff:127.0.0.1', 1, '127.0.0.1', 2), {
    family: 4,
    sourceAddress: '127.0.0.1',
    sourcePort: 1,
    destAddress: '127.0.0.1',
    destPort: 2,
  });
  assert.deepEqual(proxyAddresses('2001:db8::1', 1, '10.0.0.1', 2), {
    family: 6,
    sourceAddress: '2001:db8::1',
    sourcePort: 1,
    destAddress: '::ffff:10.0.0.1',
    destPort: 2,
  });
  assert.equal(proxyAddresses(undefined, 1, '10.0.0.1', 2), null);
  assert.equal(
    encodeProxyV1(proxyAddresses('fe80::1%eth0', 1, 'fe80::2', 2)).toString(),
    'PROXY TCP6 fe80::1 fe80::2 1 2\r\n',
  );
});

async function withSocketPair(fn: (client: Socket, server: Socket) => Promise<void>): Promise<void> {
  const accepted: Socket[] = [];
  const srv = createServer((s) => accepted.push(s));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const client = connect((srv.address() as AddressInfo).port, '127.0.0.1');
  await new Promise((r) => client.once('connect', r));
  while (accepted.length === 0) await new Promise((r) => setImmediate(r));
  try {
    await fn(client, accepted[0]!);
  } finally {
    client.destroy();
    accepted[0]!.destroy();
    await new Promise((r) => srv.close(r));
  }
}

const read = (s: Socket, timeoutMs: number) =>
  new Promise<ReadProxyResult>((r) => readProxyHeader(s, timeoutMs, r));

test('readProxyHeader: split header, then the payload is still readable in order', async () => {
  await withSocketPair(async (client, server) => {
    const hdr = encodeProxyV2(V4);
    client.write(hdr.subarray(0, 5));
    setTimeout(() => client.write(Buffer.concat([hdr.subarray(5), Buffer.from('hello')])), 20);
    setTimeout(() => client.end(' world'), 40);
    const r = await read(server, 1000);
    assert.deepEqual(r, { ok: true, header: V4 });
    assert.equal(server.isPaused(), true);
    const chunks: Buffer[] = [];
    server.on('data', (d) => chunks.push(d));
    server.resume();
    await new Promise((res) => server.once('end', res));
    assert.equal(Buffer.concat(chunks).toString(), 'hello world');
  });
});

test('readProxyHeader: timeout, garbage and early close', async () => {
  await withSocketPair(async (_client, server) => {
    const r = await read(server, 50);
    assert.equal(r.ok ? 'ok' : r.reason, 'timeout');
  });
  await withSocketPair(async (client, server) => {
    client.write('SSH-2.0-x\r\n');
    const r = await read(server, 1000);
    assert.equal(r.ok ? 'ok' : r.reason, 'invalid');
  });
  await withSocketPair(async (client, server) => {
    client.end('PROXY TCP4 1.2');
    const r = await read(server, 1000);
    assert.equal(r.ok ? 'ok' : r.reason, 'closed');
  });
});
