// WebSocket over an https listener (wss): the upgrade arrives on the TLS server's HTTP/1.1
// side — Node's h2 secure server with HTTP/1.1 fallback, and the plain https server
// (tls.http2: false) — and is tunnelled by the same upgrade.ts as on http listeners.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { makeCa } from './helpers/certs.ts';
import { backend, poolConfig } from './helpers/http-fixtures.ts';
import { startHttpsListener, tlsConfig } from './helpers/https-fixtures.ts';
import { wsConnect, wsEchoServer } from './helpers/ws.ts';

const ca = makeCa();
const api = ca.leaf(['api.test']);

for (const http2 of [true, false]) {
  test(`wss echo through an https listener (tls.http2: ${http2}); X-Forwarded-Proto is https`, async (t) => {
    const echo = await wsEchoServer();
    t.after(() => echo.close());
    const { port } = await startHttpsListener(t, { tls: tlsConfig([api], { http2 }) }, [
      poolConfig('web', [backend(echo.port)]),
    ]);
    const c = await wsConnect(port, {
      host: 'api.test',
      path: '/chat',
      tls: { ca: ca.certPem, servername: 'api.test', ALPNProtocols: ['http/1.1'] },
    });
    t.after(() => c.socket.destroy());
    c.send('hello over tls');
    assert.equal((await c.next()).toString(), 'hello over tls');
    const bin = randomBytes(200_000);
    c.send(bin);
    assert.ok((await c.next()).equals(bin));
    assert.equal(echo.requests.length, 1);
    assert.equal(echo.requests[0]!.headers['x-forwarded-proto'], 'https');
    c.close();
    await c.closed;
  });
}
