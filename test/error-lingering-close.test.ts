// An answer FiberLB gives itself while the client is still sending its body (413 for a
// Content-Length past limits.max_body, 503 with no healthy backend before the body is read)
// closes the connection. Closing a socket with unread bytes makes the kernel send a reset,
// which can destroy the answer in the client's receive queue before it reads it: the client
// sees ECONNRESET instead of the 413. A lingering close (FIN after the answer, the rest of
// the body read and dropped) delivers it. Real sockets on loopback; the client is the kind
// that sends its whole body before reading (most scripts, many SDKs).

import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { bodyDrainStats } from '../src/worker/http/body-drain.ts';
import { captureLog } from './helpers/capture-log.ts';
import { backend, poolConfig, startBackend, startHttpListener } from './helpers/http-fixtures.ts';

/** Headers, then `bodyBytes` of body as fast as the socket takes it; reads only afterwards. */
function uploadThenRead(
  port: number,
  head: string,
  bodyBytes: number,
): Promise<{ text: string; error: string | undefined; sent: number }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.pause(); // read nothing until the body is sent (or sending fails)
    const chunks: Buffer[] = [];
    let error: string | undefined;
    let sent = 0;
    const body = Buffer.alloc(64 * 1024, 0x61);
    const finish = (): void => resolve({ text: Buffer.concat(chunks).toString('latin1'), error, sent });
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', (e: NodeJS.ErrnoException) => {
      error ??= e.code ?? e.message;
    });
    s.on('close', finish);
    s.write(head);
    const pump = (): void => {
      while (sent < bodyBytes && !s.destroyed) {
        sent += body.length;
        if (!s.write(body)) {
          s.once('drain', pump);
          return;
        }
      }
      // All sent (or the socket broke): now read what came back.
      s.resume();
    };
    // Give FiberLB time to answer and close while the body is still coming.
    setTimeout(pump, 50);
    setTimeout(() => s.destroy(), 10_000).unref();
  });
}

describe('errors answered while the body is still coming: lingering close', () => {
  it('413 for a Content-Length past max_body reaches a client that reads only after sending', async (t) => {
    const log = captureLog(t);
    const b = await startBackend((_req, res) => res.end('never'));
    t.after(() => b.close());
    const p = await startHttpListener(t, { limits: { maxBodyBytes: 1000 } }, [
      poolConfig('web', [backend(b.port)]),
    ]);
    const before = bodyDrainStats();
    const size = 4 * 1024 * 1024;
    for (let i = 0; i < 3; i++) {
      const r = await uploadThenRead(
        p.port,
        `POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n`,
        size,
      );
      assert.match(
        r.text,
        /^HTTP\/1\.1 413 /,
        `try ${i}: got ${JSON.stringify(r.text.slice(0, 60))}, ${r.error}`,
      );
      assert.match(r.text, /body_too_large/);
      assert.equal(r.error, undefined, `try ${i}: the connection was reset`);
      assert.equal(r.sent >= size, true, `try ${i}: the whole body was taken (${r.sent})`);
      assert.match(r.text, /\r\nconnection: close\r\n/i);
    }
    const after = bodyDrainStats();
    assert.ok(
      after.bytes >= before.bytes + 3 * (size - 2 * 1024 * 1024),
      'the rest of each body was read and dropped',
    );
    assert.equal(after.closedAfterAnswer, before.closedAfterAnswer + 3);
    assert.equal(log.of('body_too_large').length, 3);
  });

  it('503 with no healthy backend, before the body is read: the answer arrives, then a FIN', async (t) => {
    const log = captureLog(t);
    const down = new Set(['lb1/web/127.0.0.1:1']);
    const p = await startHttpListener(t, {}, [poolConfig('web', [backend(1)])], { down });
    const size = 4 * 1024 * 1024;
    const r = await uploadThenRead(
      p.port,
      `POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n`,
      size,
    );
    assert.match(r.text, /^HTTP\/1\.1 503 /, `got ${JSON.stringify(r.text.slice(0, 60))}, ${r.error}`);
    assert.match(r.text, /retry-after: \d+/i);
    assert.equal(r.error, undefined, 'the connection was reset');
    assert.equal(log.of('no_healthy_backend').length, 1);
  });
});
