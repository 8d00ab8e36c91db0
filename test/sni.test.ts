// The ClientHello parser of tls_passthrough (src/worker/listeners/sni.ts) on real ClientHellos
// captured from Node's TLS client and from openssl s_client, refragmented, truncated, mutated
// and replaced by random bytes (fast-check): it never throws, and every answer is a name,
// none, "more bytes" or a clear error.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import fc from 'fast-check';
import {
  ClientHelloReader,
  type HelloResult,
  MAX_PEEK_BYTES,
  parseClientHello,
} from '../src/worker/listeners/sni.ts';
import { HOST } from './helpers/net.ts';

/** The first flight a client sends to a raw TCP server (its ClientHello), until it parses. */
async function capture(start: (port: number) => { stop(): void }): Promise<Buffer> {
  let chunks: Buffer[] = [];
  let got: (b: Buffer) => void = () => {};
  const done = new Promise<Buffer>((r) => (got = r));
  const server = createServer((s: Socket) => {
    s.on('data', (d) => {
      chunks.push(d);
      const all = Buffer.concat(chunks);
      if (parseClientHello(all).kind !== 'more') got(all);
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, HOST, r));
  const client = start((server.address() as AddressInfo).port);
  try {
    return await done;
  } finally {
    client.stop();
    server.close();
    chunks = [];
  }
}

function nodeHello(servername: string | undefined, alpn?: string[]): Promise<Buffer> {
  return capture((port) => {
    const s = tlsConnect({ host: HOST, port, servername, ALPNProtocols: alpn, rejectUnauthorized: false });
    s.on('error', () => {});
    return { stop: () => s.destroy() };
  });
}

function opensslHello(servername: string): Promise<Buffer> {
  return capture((port) => {
    const p = spawn('openssl', ['s_client', '-connect', `${HOST}:${port}`, '-servername', servername], {
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    return { stop: () => p.kill('SIGKILL') };
  });
}

/** The handshake bytes of `hello` re-framed into TLS records of the given sizes (cycled). */
function refragment(hello: Buffer, sizes: readonly number[]): Buffer {
  const recs: Buffer[] = [];
  let p = 0;
  let hs = Buffer.alloc(0);
  while (p < hello.length) {
    const len = hello.readUInt16BE(p + 3);
    hs = Buffer.concat([hs, hello.subarray(p + 5, p + 5 + len)]);
    p += 5 + len;
  }
  let i = 0;
  for (let o = 0; o < hs.length; i++) {
    const n = Math.min(sizes[i % sizes.length]!, hs.length - o);
    recs.push(Buffer.from([22, 3, 1, n >> 8, n & 255]), hs.subarray(o, o + n));
    o += n;
  }
  return Buffer.concat(recs);
}

function isValidResult(r: HelloResult): boolean {
  if (r.kind === 'more') return true;
  if (r.kind === 'error') return typeof r.reason === 'string' && r.reason.length > 0;
  return (r.sni === undefined || /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(r.sni)) && Array.isArray(r.alpn);
}

describe('ClientHello parser', async () => {
  const fromNode = await nodeHello('API.Example.com', ['h2', 'http/1.1']);
  const fromOpenssl = await opensslHello('x.wild.example');
  const noSni = await nodeHello(undefined);

  test('reads server_name and ALPN from real ClientHellos', () => {
    assert.deepEqual(parseClientHello(fromNode), {
      kind: 'hello',
      sni: 'api.example.com',
      alpn: ['h2', 'http/1.1'],
    });
    const o = parseClientHello(fromOpenssl);
    assert.equal(o.kind, 'hello');
    assert.equal(o.kind === 'hello' && o.sni, 'x.wild.example');
    assert.deepEqual(parseClientHello(noSni), { kind: 'hello', sni: undefined, alpn: [] });
  });

  test('every strict prefix asks for more bytes; bytes after the ClientHello are ignored', () => {
    for (let n = 1; n < fromNode.length; n++)
      assert.equal(parseClientHello(fromNode.subarray(0, n)).kind, 'more', `prefix ${n}`);
    const withData = Buffer.concat([fromNode, Buffer.from('early data that is not a record')]);
    assert.equal(parseClientHello(withData).kind, 'hello');
  });

  test('a ClientHello fragmented over many records (1-byte ones included) parses the same', () => {
    const want = parseClientHello(fromOpenssl);
    for (const sizes of [[1], [2, 3], [7, 1, 100], [16384]]) {
      const frag = refragment(fromOpenssl, sizes);
      assert.deepEqual(parseClientHello(frag), want, `sizes ${sizes.join(',')}`);
      // …and still only when complete.
      assert.equal(parseClientHello(frag.subarray(0, frag.length - 1)).kind, 'more');
    }
  });

  test('clear errors for what is not a ClientHello', () => {
    const e = (b: Buffer | number[]) => {
      const r = parseClientHello(Buffer.from(b as number[]));
      assert.equal(r.kind, 'error', JSON.stringify(r));
      return r.kind === 'error' ? r.reason : '';
    };
    assert.match(e(Buffer.from('GET / HTTP/1.1\r\n')), /not a TLS handshake \(first byte 0x47\)/);
    assert.match(e([0x17]), /not a TLS handshake \(first byte 0x17\)/);
    assert.match(e([0x16, 2, 0]), /not TLS/);
    assert.match(e([0x16, 3, 1, 0x40, 1]), /record length 16385 exceeds 16384/);
    assert.match(e([0x16, 3, 1, 0, 4, 2, 0, 0, 0]), /type 2, not ClientHello/);
    assert.match(e([0x16, 3, 1, 0, 4, 1, 0, 0x50, 0]), /ClientHello of 20480 bytes exceeds 16384/);
    // A record of another type in the middle of a fragmented ClientHello.
    const frag = refragment(fromNode, [10]);
    const bad = Buffer.from(frag);
    bad[15] = 23;
    assert.match(e(bad), /record of type 23 inside the ClientHello/);
    // A large ClientHello in 1-byte records: what is worth waiting for is bounded.
    const big = Buffer.concat([Buffer.from([22, 3, 1, 0x3e, 0x84, 1, 0, 0x3e, 0x80]), Buffer.alloc(0x3e80)]);
    const slivers = refragment(big, [1]);
    assert.equal(parseClientHello(slivers.subarray(0, MAX_PEEK_BYTES - 1)).kind, 'more');
    assert.match(e(slivers.subarray(0, MAX_PEEK_BYTES)), /no complete ClientHello in the first 32768 bytes/);
  });

  test('fed in random pieces, the incremental reader answers as one-shot parsing, keeping every byte', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(fromNode, fromOpenssl, refragment(fromOpenssl, [3, 1])),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 20 }),
        (hello, cuts) => {
          const reader = new ClientHelloReader();
          let r: HelloResult = { kind: 'more' };
          let o = 0;
          for (let i = 0; o < hello.length; i++) {
            const n = cuts[i % cuts.length]!;
            r = reader.push(hello.subarray(o, o + n));
            o += n;
            if (r.kind !== 'more') break;
          }
          assert.deepEqual(r, parseClientHello(hello));
          assert.ok(Buffer.from(reader.bytes()).equals(hello.subarray(0, o)));
          return true;
        },
      ),
      { numRuns: 500 },
    );
  });

  test('never throws on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => isValidResult(parseClientHello(bytes))),
      { numRuns: 5000 },
    );
    // Random bytes behind a plausible record header reach the body parser.
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 400 }), (body) => {
        const hs = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 255]), body]);
        const rec = Buffer.concat([Buffer.from([22, 3, 1, hs.length >> 8, hs.length & 255]), hs]);
        return isValidResult(parseClientHello(rec));
      }),
      { numRuns: 5000 },
    );
  });

  test('never throws on mutated real ClientHellos (flipped bytes, cut lengths, refragmented)', () => {
    const seeds = [fromNode, fromOpenssl, noSni];
    fc.assert(
      fc.property(
        fc.constantFrom(...seeds),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        (seed, flips, sizes, frag) => {
          const b = Buffer.from(frag ? refragment(seed, sizes) : seed);
          for (const [at, v] of flips) b[at % b.length] = v;
          const r = parseClientHello(b);
          return isValidResult(r);
        },
      ),
      { numRuns: 5000 },
    );
  });
});
