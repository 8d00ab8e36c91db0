// Header rewriting unit tests (src/worker/http/headers.ts): the request head as Node gives it in
// rawHeaders (flat [name, value, ...], case and duplicates kept) → what goes upstream and the
// facts gathered on the way; the upstream response head (undici's object) → what the client
// gets; the balancing address behind trusted proxies; Host validation; request ids.
// http-proxy.test.ts checks the same rewriting end to end over real sockets.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  clientIp,
  emptyRequestHead,
  KEPT_HOST,
  KEPT_ID,
  KEPT_PROTO,
  lowerCaseNames,
  newRequestId,
  type RequestHead,
  rewriteRequestHeaders,
  rewriteResponseHeaders,
  validAuthority,
} from '../src/worker/http/headers.ts';
import { maskedIp } from '../src/worker/ratelimit/keys.ts';
import { cidrs } from './helpers/net.ts';

const PEER = '192.0.2.7';

function rewrite(raw: string[], opts: { trusted?: boolean; proto?: string } = {}): RequestHead {
  const out = emptyRequestHead();
  rewriteRequestHeaders(raw, PEER, opts.trusted ?? false, opts.proto ?? 'http', out);
  return out;
}

/** A flat rawHeaders list from [name, value] pairs. */
function flat(...lines: Array<[string, string]>): string[] {
  return lines.flat();
}

function pairs(flat: readonly unknown[]): Array<[unknown, unknown]> {
  const out: Array<[unknown, unknown]> = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i], flat[i + 1]]);
  return out;
}

/** The upstream headers minus the four we always add (checked apart). */
function forwarded(out: RequestHead): Array<[unknown, unknown]> {
  const added = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id']);
  return pairs(out.headers).filter(([n]) => !added.has(String(n)));
}

function values(out: RequestHead, name: string): unknown[] {
  return pairs(out.headers)
    .filter(([n]) => String(n).toLowerCase() === name)
    .map(([, v]) => v);
}

const ID = /^[A-Za-z0-9_-]{8}-[0-9a-z]+$/;

/** Facts of a head that had none of them: one Host, no XFF, no length, no coding, nothing kept. */
function assertNoFacts(out: RequestHead): void {
  assert.deepEqual(
    [out.duplicateHost, out.forwardedFor, out.contentLength, out.chunked, out.otherCoding, out.kept],
    [false, undefined, -1, false, false, 0],
  );
}

describe('request headers', () => {
  it('forwards end-to-end headers in order with their case and duplicates', () => {
    // One name of every length classify() looks at, none of them special.
    const raw = flat(
      ['Host', 'shop.example'],
      ['DN', '2'],
      ['Date', 'Tue, 01 Dec 2026 00:00:00 GMT'],
      ['Cookie', 'a=1'],
      ['Referer', 'http://r.example/'],
      ['User-Agent', 'curl/8'],
      ['Content-Type', 'text/plain'],
      ['Authorization', 'Bearer t'],
      ['Accept-Charset', 'utf-8'],
      ['Accept-Encoding', 'gzip'],
      ['Content-Language', 'en'],
      ['If-Modified-Since', 'Tue, 01 Dec 2026 00:00:00 GMT'],
      ['X-Custom-Header-18', 'x18'],
      ['If-Unmodified-Since', 'Tue, 01 Dec 2026 00:00:00 GMT'],
      ['X-Twenty-Chars-Name1', 'x20'],
      ['Accept', 'a/b'],
      ['accept', 'c/d'],
    );
    const out = rewrite(raw);
    assert.deepEqual(forwarded(out), pairs(raw));
    assert.equal(out.host, 'shop.example');
    assertNoFacts(out);
  });

  it('drops hop-by-hop headers, Expect and HTTP2-Settings whatever their case', () => {
    const raw = flat(
      ['Host', 'x'],
      ['Connection', 'keep-alive'],
      ['Keep-Alive', 'timeout=5'],
      ['Proxy-Connection', 'keep-alive'],
      ['Upgrade', 'websocket'],
      ['Trailer', 'x-t'],
      ['Expect', '100-continue'],
      ['HTTP2-Settings', 'AAMAAABkAAQAoAAAAAIAAAAA'],
      ['Proxy-Authenticate', 'Basic'],
      ['Proxy-Authorization', 'Basic eDp5'],
      ['TE', 'gzip'],
      ['Transfer-Encoding', 'chunked'],
      ['X-Kept', 'yes'],
    );
    const out = rewrite(raw);
    assert.deepEqual(forwarded(out), [
      ['Host', 'x'],
      ['X-Kept', 'yes'],
    ]);
    assert.equal(out.host, 'x');
    assert.equal(out.duplicateHost, false, 'a dropped header is no second Host');
    assert.equal(out.chunked, true);
  });

  it('drops every header named in Connection, not Host, Content-Length or TE', () => {
    const raw = flat(
      ['Host', 'x'],
      ['X-A', '1'],
      ['Connection', 'Close, X-A ,x-b,, Host, content-length, TE'],
      ['x-B', '2'],
      ['X-C', '3'],
      ['Content-Length', '0'],
      ['TE', 'trailers'],
    );
    const out = rewrite(raw);
    assert.deepEqual(forwarded(out), [
      ['Host', 'x'],
      ['X-C', '3'],
      ['Content-Length', '0'],
      ['te', 'trailers'],
    ]);
    // The second pass over the head gathers the same facts as the first.
    assert.equal(out.host, 'x');
    assert.equal(out.duplicateHost, false);
    assert.equal(out.contentLength, 0);
  });

  it('a Connection header listing one name drops exactly that one', () => {
    const out = rewrite(['Host', 'x', 'X-Only', '1', 'X-Other', '2', 'Connection', 'x-only']);
    assert.deepEqual(forwarded(out), [
      ['Host', 'x'],
      ['X-Other', '2'],
    ]);
  });

  it('names listed over several Connection lines are all dropped', () => {
    const out = rewrite(['Connection', 'X-A', 'Connection', 'X-B', 'X-A', '1', 'X-B', '2', 'X-C', '3']);
    assert.deepEqual(forwarded(out), [['X-C', '3']]);
  });

  it('sends te: trailers once when TE offers trailers, and no TE otherwise', () => {
    assert.deepEqual(values(rewrite(['TE', 'trailers']), 'te'), ['trailers']);
    assert.deepEqual(values(rewrite(['Te', 'gzip, Trailers']), 'te'), ['trailers']);
    assert.deepEqual(values(rewrite(['te', 'trailers;q=1']), 'te'), ['trailers']);
    assert.deepEqual(values(rewrite(['TE', 'trailers', 'TE', 'trailers']), 'te'), ['trailers']);
    assert.deepEqual(values(rewrite(['TE', 'gzip']), 'te'), []);
    assert.deepEqual(values(rewrite(['TE', 'gzip;q=1, xtrailers, trailersx']), 'te'), []);
  });

  it('keeps the first Host and flags a second one', () => {
    const out = rewrite(['Host', 'a.example', 'X-Mid', '1', 'host', 'b.example']);
    assert.equal(out.host, 'a.example');
    assert.equal(out.duplicateHost, true);
    assert.deepEqual(forwarded(out), [
      ['Host', 'a.example'],
      ['X-Mid', '1'],
    ]);
    assert.deepEqual(values(out, 'x-forwarded-host'), ['a.example']);
  });

  it('a head without Host has no host and gets no X-Forwarded-Host', () => {
    const out = rewrite(['Accept', '*/*']);
    assert.equal(out.host, undefined);
    assert.deepEqual(values(out, 'x-forwarded-host'), []);
  });

  it('reads Content-Length and forwards it', () => {
    const out = rewrite(['Host', 'x', 'content-length', '42']);
    assert.equal(out.contentLength, 42);
    assert.deepEqual(values(out, 'content-length'), ['42']);
    assert.equal(out.chunked, false);
  });

  it('Transfer-Encoding: one chunked (any case) is chunked; anything else is another coding too', () => {
    for (const te of ['chunked', 'Chunked', 'CHUNKED']) {
      const out = rewrite(['Host', 'x', 'Transfer-Encoding', te]);
      assert.equal(out.chunked, true, te);
      assert.equal(out.otherCoding, false, te);
      assert.deepEqual(values(out, 'transfer-encoding'), [], 'never forwarded');
    }
    for (const te of [
      ['gzip, chunked'],
      ['deflate'],
      ['chunkex'],
      ['chunked', 'chunked'],
      ['gzip', 'chunked'],
    ]) {
      const raw = ['Host', 'x'];
      for (const v of te) raw.push('transfer-encoding', v);
      const out = rewrite(raw);
      assert.equal(out.chunked, true, te.join(' | '));
      assert.equal(out.otherCoding, true, te.join(' | '));
    }
  });

  it('appends the peer to X-Forwarded-For, joining the client’s lines', () => {
    assert.deepEqual(values(rewrite(['Host', 'x']), 'x-forwarded-for'), [PEER]);
    const out = rewrite([
      'X-Forwarded-For',
      '203.0.113.1',
      'Host',
      'x',
      'x-forwarded-for',
      '198.51.100.2, 10.0.0.3',
    ]);
    assert.equal(out.forwardedFor, '203.0.113.1, 198.51.100.2, 10.0.0.3');
    assert.deepEqual(values(out, 'x-forwarded-for'), [`203.0.113.1, 198.51.100.2, 10.0.0.3, ${PEER}`]);
  });

  it('from an untrusted peer: replaces X-Forwarded-Proto/Host and X-Request-Id', () => {
    const out = rewrite(
      flat(
        ['Host', 'shop.example:8080'],
        ['X-Forwarded-Proto', 'https'],
        ['X-Forwarded-Host', 'evil.example'],
        ['X-Request-Id', 'client-id'],
      ),
      { proto: 'http' },
    );
    assert.equal(out.kept, 0);
    assert.deepEqual(values(out, 'x-forwarded-proto'), ['http']);
    assert.deepEqual(values(out, 'x-forwarded-host'), ['shop.example:8080']);
    assert.match(out.requestId, ID);
    assert.deepEqual(values(out, 'x-request-id'), [out.requestId]);
  });

  it('the proto we set is the listener’s', () => {
    assert.deepEqual(values(rewrite(['Host', 'x'], { proto: 'https' }), 'x-forwarded-proto'), ['https']);
  });

  it('from a trusted peer: keeps the first X-Forwarded-Proto/Host and X-Request-Id as sent', () => {
    const out = rewrite(
      flat(
        ['Host', 'inner.example'],
        ['X-Forwarded-Proto', 'https'],
        ['x-forwarded-proto', 'http'],
        ['X-Forwarded-Host', 'public.example'],
        ['x-forwarded-host', 'other.example'],
        ['X-Request-Id', 'edge-42'],
        ['x-request-id', 'edge-43'],
      ),
      { trusted: true, proto: 'http' },
    );
    assert.equal(out.kept, KEPT_PROTO | KEPT_HOST | KEPT_ID);
    assert.deepEqual(values(out, 'x-forwarded-proto'), ['https']);
    assert.deepEqual(values(out, 'x-forwarded-host'), ['public.example']);
    assert.deepEqual(values(out, 'x-request-id'), ['edge-42']);
    assert.equal(out.requestId, 'edge-42');
    assert.deepEqual(
      pairs(out.headers).filter(([n]) => String(n).startsWith('X-')),
      [
        ['X-Forwarded-Proto', 'https'],
        ['X-Forwarded-Host', 'public.example'],
        ['X-Request-Id', 'edge-42'],
      ],
      'kept as sent, in place',
    );
  });

  it('from a trusted peer: each header it did not send is still set', () => {
    const proto = rewrite(['Host', 'h.example', 'X-Forwarded-Proto', 'https'], { trusted: true });
    assert.equal(proto.kept, KEPT_PROTO);
    assert.deepEqual(values(proto, 'x-forwarded-host'), ['h.example']);
    assert.match(proto.requestId, ID);

    const host = rewrite(['Host', 'h.example', 'X-Forwarded-Host', 'p.example'], {
      trusted: true,
      proto: 'http',
    });
    assert.equal(host.kept, KEPT_HOST);
    assert.deepEqual(values(host, 'x-forwarded-proto'), ['http']);
    assert.deepEqual(values(host, 'x-forwarded-host'), ['p.example']);

    const id = rewrite(['Host', 'h.example', 'X-Request-Id', 'edge-1'], { trusted: true, proto: 'http' });
    assert.equal(id.kept, KEPT_ID);
    assert.deepEqual(values(id, 'x-forwarded-proto'), ['http']);
    assert.deepEqual(values(id, 'x-request-id'), ['edge-1']);
  });

  it('an empty X-Request-Id from a trusted peer is replaced by ours', () => {
    const out = rewrite(['Host', 'x', 'X-Request-Id', '', 'X-Request-Id', 'edge-2'], { trusted: true });
    assert.equal(out.kept, KEPT_ID);
    assert.equal(out.requestId, 'edge-2');
    assert.deepEqual(values(out, 'x-request-id'), ['edge-2']);

    const only = rewrite(['Host', 'x', 'X-Request-Id', ''], { trusted: true });
    assert.equal(only.kept, 0);
    assert.match(only.requestId, ID);
    assert.deepEqual(values(only, 'x-request-id'), [only.requestId]);
  });

  it('facts are gathered afresh into a reused head', () => {
    const out = emptyRequestHead();
    rewriteRequestHeaders(
      [
        'Host',
        'a',
        'Host',
        'b',
        'Content-Length',
        '5',
        'Transfer-Encoding',
        'gzip',
        'X-Forwarded-For',
        '1.1.1.1',
      ],
      PEER,
      true,
      'http',
      out,
    );
    assert.equal(out.duplicateHost, true);
    rewriteRequestHeaders(['Host', 'c', 'Connection', 'X-Z', 'X-Z', '1'], PEER, false, 'http', out);
    assert.equal(out.host, 'c');
    assertNoFacts(out);
  });
});

describe('request ids', () => {
  it('are a per-process base64url prefix and a base-36 counter that counts up', () => {
    const a = newRequestId();
    const b = newRequestId();
    assert.match(a, ID);
    assert.match(b, ID);
    assert.equal(a.slice(0, 8), b.slice(0, 8));
    assert.equal(Number.parseInt(b.slice(9), 36), Number.parseInt(a.slice(9), 36) + 1);
  });
});

describe('clientIp', () => {
  const proxies = cidrs('10.0.0.0/8', '2001:db8::/32');

  it('is the peer unless the peer is trusted and sent X-Forwarded-For', () => {
    assert.equal(clientIp('10.9.9.9', false, '203.0.113.5', proxies), '10.9.9.9');
    assert.equal(clientIp('10.9.9.9', true, undefined, proxies), '10.9.9.9');
  });

  it('is the right-most untrusted hop', () => {
    assert.equal(clientIp('10.9.9.9', true, '203.0.113.9, 198.51.100.7, 10.1.2.3', proxies), '198.51.100.7');
    assert.equal(clientIp('10.9.9.9', true, '198.51.100.7,2001:db8::1', proxies), '198.51.100.7');
    assert.equal(clientIp('10.9.9.9', true, '198.51.100.7', proxies), '198.51.100.7');
  });

  it('skips empty entries', () => {
    assert.equal(clientIp('10.9.9.9', true, '198.51.100.7, ,10.0.0.1,', proxies), '198.51.100.7');
    assert.equal(clientIp('10.9.9.9', true, ' , ', proxies), '10.9.9.9');
  });

  it('is the left-most hop when every hop is trusted', () => {
    assert.equal(clientIp('10.9.9.9', true, '10.0.0.1, 10.0.0.2', proxies), '10.0.0.1');
  });

  it('reads an IPv4-mapped hop as its IPv4 client, for the answer and the trust check', () => {
    // A Node proxy in front on a dual-stack socket writes its peers this way: each must stay
    // its own client (its own rate-limit bucket), not one ::/64 for all of them.
    assert.equal(clientIp('10.9.9.9', true, '::ffff:192.0.2.9', proxies), '192.0.2.9');
    assert.equal(clientIp('10.9.9.9', true, '198.51.100.7, ::ffff:10.1.2.3', proxies), '198.51.100.7');
    assert.equal(clientIp('10.9.9.9', true, '::ffff:10.1.2.3', proxies), '10.1.2.3');
    assert.notEqual(
      maskedIp(clientIp('10.9.9.9', true, '::ffff:192.0.2.9', proxies), 24, 64),
      maskedIp(clientIp('10.9.9.9', true, '::ffff:203.0.113.9', proxies), 24, 64),
    );
  });
});

describe('lowerCaseNames', () => {
  it('lower-cases names, not values', () => {
    const h = ['Content-Type', 'Text/Plain', 'X-A', 'B', 'x-c', 'D'];
    lowerCaseNames(h);
    assert.deepEqual(h, ['content-type', 'Text/Plain', 'x-a', 'B', 'x-c', 'D']);
  });
});

describe('response headers', () => {
  it('drops hop-by-hop headers and the upstream’s X-Request-Id, keeps repeated set-cookie', () => {
    const out = rewriteResponseHeaders(
      {
        'content-type': 'text/plain',
        connection: 'keep-alive',
        'keep-alive': 'timeout=5',
        'proxy-connection': 'keep-alive',
        'transfer-encoding': 'chunked',
        te: 'trailers',
        trailer: 'x-t',
        upgrade: 'h2c',
        'proxy-authenticate': 'Basic',
        'proxy-authorization': 'Basic eDp5',
        'x-request-id': 'upstream-id',
        'set-cookie': ['a=1', 'b=2'],
        'x-kept': 'yes',
      },
      'our-id',
      false,
      100,
    );
    assert.deepEqual(out, [
      'content-type',
      'text/plain',
      'set-cookie',
      ['a=1', 'b=2'],
      'x-kept',
      'yes',
      'x-request-id',
      'our-id',
    ]);
  });

  it('drops the headers the upstream’s Connection names', () => {
    const out = rewriteResponseHeaders(
      { connection: 'close, X-Secret ,x-other', 'x-secret': 's', 'x-other': 'o', 'x-public': 'p' },
      'id',
      false,
      100,
    );
    assert.deepEqual(out, ['x-public', 'p', 'x-request-id', 'id']);
    // Without a Connection header no name is dropped, however odd.
    assert.deepEqual(rewriteResponseHeaders({ undefined: 'u' }, 'id', false, 100), [
      'undefined',
      'u',
      'x-request-id',
      'id',
    ]);
  });

  it('adds connection: close when the client connection ends', () => {
    assert.deepEqual(rewriteResponseHeaders({ 'x-a': '1' }, 'id', true, 100), [
      'x-a',
      '1',
      'x-request-id',
      'id',
      'connection',
      'close',
    ]);
  });

  it('skips absent headers', () => {
    assert.deepEqual(rewriteResponseHeaders({ 'x-a': undefined, 'x-b': '2' }, 'id', false, 1), [
      'x-b',
      '2',
      'x-request-id',
      'id',
    ]);
  });

  it('refuses more than maxHeaders lines, counting every repeated line and hop-by-hop ones', () => {
    const head = { 'set-cookie': ['a=1', 'b=2', 'c=3'], connection: 'keep-alive', 'x-long': 'a long value' };
    assert.ok(rewriteResponseHeaders(head, 'id', false, 5) !== undefined, 'exactly at the limit');
    assert.equal(rewriteResponseHeaders(head, 'id', false, 4), undefined);
  });
});

describe('validAuthority', () => {
  it('accepts reg-names, IPv4, IPv6 and IPvFuture literals with an optional port', () => {
    for (const h of [
      '',
      'example.com',
      'EXAMPLE.com:8080',
      "a.b-c_d~!$&'()*+,;=",
      'ex%41mple',
      'ex%a1',
      'ex%Fe',
      'ex%09',
      'ex%9f',
      'ex%0A',
      '%41',
      '10.0.0.1',
      '999.1.1.1',
      'x:',
      'h:0',
      'h:65535',
      'h:09',
      '[2001:db8::1]',
      '[::1]:80',
      '[::1]:',
      '[::ffff:1.2.3.4]:0',
      '[v1.fe:x]',
      '[V1f.a]',
      '[vA.b]:1',
    ])
      assert.ok(validAuthority(h), h);
  });

  it('refuses everything else', () => {
    for (const h of [
      'h:65536',
      'h:99999',
      'h:-1',
      'h: 1',
      'h:1a',
      'h:/',
      'h/p',
      'h?q',
      'h#f',
      'h\\',
      'h@u',
      'h\u00e9',
      'h\u0100',
      'h%',
      'h%4',
      'h%4g',
      'h%g4',
      'h%/4',
      'h%:4',
      'h%`0',
      'h%@0',
      'h%4`',
      'h%4G',
      'h\u0080',
      'h::',
      '[',
      '[]',
      '[:',
      '[2001:db8::1',
      '[2001:db8::1]]',
      '[2001:db8::1]x',
      '[2001:db8::1]:x',
      '[1.2.3.4]',
      '[fe80::1%25eth0]',
      '[fe80::1%eth0]',
      '[g::1]',
      '[::1/8]',
      '[v.x]',
      '[v1]',
      '[v1.]',
      '[v1x]',
      '[vg.x]',
      '[v1.a%41]',
      '[v1.a/b]',
      '[v1.\u00e9]',
      '[v1.\u0080]',
      '[v1xy]',
      '[v1.a]x',
    ])
      assert.ok(!validAuthority(h), h);
  });
});
