// PROXY protocol accepted on an http listener: from trusted peers the header is read before
// the HTTP parser and its source address becomes the client (X-Forwarded-For, hashing);
// untrusted peers and listeners without `accept` speak plain HTTP. Real curl where it can.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ListenerHandle } from '../src/worker/context.ts';
import { createHttpListener } from '../src/worker/http/listener.ts';
import { encodeProxyV2, proxyAddresses } from '../src/worker/proxy-protocol.ts';
import { captureFileLog } from './helpers/capture-log.ts';
import { curl, parseHead, raw } from './helpers/http-client.ts';
import {
  backend,
  type ListenerOverrides,
  listenerConfig,
  listenerState,
  poolConfig,
  startBackend,
  type TestBackend,
  workerEnv,
} from './helpers/http-fixtures.ts';
import { cidrs, freeTcpPort } from './helpers/net.ts';

// Failure lines are captured, not printed, and each asserted count is checked against them.
const log = captureFileLog();

describe('http listener: PROXY protocol accept', () => {
  let b: TestBackend;
  const opened: Array<{ handle: ListenerHandle; env: ReturnType<typeof workerEnv> }> = [];

  before(async () => {
    // Answers with the X-Forwarded-For it received.
    b = await startBackend((req, res) => {
      req.resume();
      res.end(String(req.headers['x-forwarded-for']));
    });
  });
  after(async () => {
    for (const o of opened) {
      await o.handle.close(200);
      await o.env.upstreams.close();
    }
    await b.close();
  });

  async function proxy(o: ListenerOverrides) {
    const port = await freeTcpPort();
    const env = workerEnv();
    const handle = createHttpListener(
      listenerState(listenerConfig(port, o), [poolConfig('web', [backend(b.port)])]),
      env,
    );
    await handle.ready;
    opened.push({ handle, env });
    return { port, env };
  }

  it('reads a v1 header from curl --haproxy-protocol (trusted peer)', async () => {
    const p = await proxy({ acceptProxyProtocol: true, trustedProxies: cidrs('127.0.0.0/8') });
    const r = await curl(['--haproxy-protocol', `http://127.0.0.1:${p.port}/`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '127.0.0.1');
  });

  it('uses the v2 source address as the client for every request on the connection', async () => {
    const p = await proxy({ acceptProxyProtocol: true, trustedProxies: cidrs('127.0.0.1') });
    const header = encodeProxyV2(proxyAddresses('203.0.113.9', 40000, '127.0.0.1', p.port));
    const get = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n';
    // Header and two pipelined requests in one write: the bytes after the header must reach
    // the HTTP parser intact.
    const r = await raw(p.port, Buffer.concat([header, Buffer.from(get + get)]), 1500);
    assert.equal(parseHead(r.text).status, 200);
    assert.equal(r.text.match(/HTTP\/1\.1 200 /g)?.length, 2, r.text);
    assert.equal(r.text.match(/\r\n\r\n203\.0\.113\.9/g)?.length, 2, r.text);
  });

  it('rejects garbage from a trusted peer as proxy_protocol_invalid', async () => {
    const p = await proxy({ acceptProxyProtocol: true, trustedProxies: cidrs('127.0.0.1') });
    const r = await raw(p.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', 1500);
    assert.equal(r.text, '');
    assert.ok(r.closed);
    assert.equal(log.counted(p.env.failures, 'proxy_protocol_invalid'), 1);
  });

  it('serves untrusted peers as plain HTTP', async () => {
    const p = await proxy({ acceptProxyProtocol: true, trustedProxies: cidrs('10.0.200.0/24') });
    const r = await curl([`http://127.0.0.1:${p.port}/`]);
    assert.equal(r.stdout, '127.0.0.1');
  });

  it('without accept, a PROXY header is a bad request', async () => {
    const p = await proxy({ trustedProxies: cidrs('127.0.0.1') });
    const r = await curl([
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '--haproxy-protocol',
      `http://127.0.0.1:${p.port}/`,
    ]);
    assert.equal(r.stdout, '400');
    assert.equal(log.counted(p.env.failures, 'client_bad_request'), 1);
  });
});
