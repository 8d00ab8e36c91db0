// What an https listener does per new connection (bench/results/tls-handshakes-2026-12-01.md):
// the SNI callback only where it can change the answer, the client address judged once at
// accept and carried to the TLS socket, and ticket IVs cut from a batch of random bytes — each
// with the behaviour it must keep across reloads. In one process, real TLS clients on loopback.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import tls from 'node:tls';
import type { TlsConfig } from '../src/config/model.ts';
import type { HttpListener } from '../src/worker/http/listener.ts';
import { nextIv } from '../src/worker/tls/ticket-keys.ts';
import { captureLog } from './helpers/capture-log.ts';
import { makeCa } from './helpers/certs.ts';
import { backend, listenerConfig, listenerState, poolConfig, startBackend } from './helpers/http-fixtures.ts';
import { startHttpsListener, tlsConfig } from './helpers/https-fixtures.ts';
import { cidrs } from './helpers/net.ts';

const ca = makeCa();
const api = ca.leaf(['api.test']);
const wild = ca.leaf(['*.apps.test']);

/** The server's TLS sockets as they finish their handshakes (the listener's own server). */
function serverSockets(handle: unknown): tls.TLSSocket[] {
  const server = (handle as { server: tls.Server }).server;
  const out: tls.TLSSocket[] = [];
  server.on('secureConnection', (s: tls.TLSSocket) => out.push(s));
  return out;
}

/**
 * Handshake with `servername` and one request (so the server finishes its side too) → the
 * served certificate's CN, or the error's code.
 */
function handshake(port: number, servername: string): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ port, host: '127.0.0.1', servername, ca: ca.certPem, rejectUnauthorized: false });
    s.once('secureConnect', () => {
      const cn = s.getPeerCertificate().subject?.CN;
      s.end(`GET / HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`);
      s.resume();
      s.once('close', () => resolve(String(cn)));
    });
    s.once('error', (e: Error & { code?: string }) => resolve(`error ${e.code ?? e.message}`));
  });
}

const sniOn = (s: tls.TLSSocket) =>
  typeof (s as unknown as { _SNICallback?: unknown })._SNICallback === 'function';

describe('https listener, per new connection', () => {
  test('one certificate serves every name without the SNI callback; several, or unknown_sni: refuse, bring it back — across reloads', async (t) => {
    captureLog(t);
    const b = await startBackend((_req, res) => res.end('ok'));
    t.after(() => b.close());
    const pools = [poolConfig('web', [backend(b.port)])];
    const { port, handle } = await startHttpsListener(t, { tls: tlsConfig([api]) }, pools);
    const seen = serverSockets(handle);
    const reload = (cfg: TlsConfig) =>
      (handle as HttpListener).update(
        listenerState(listenerConfig(port, { protocol: 'https', tls: cfg }), pools),
      );

    assert.equal(await handshake(port, 'api.test'), 'api.test');
    assert.equal(await handshake(port, 'other.test'), 'api.test');
    assert.deepEqual(seen.map(sniOn), [false, false], 'one certificate: no SNI callback');

    reload(tlsConfig([api, wild]));
    assert.equal(await handshake(port, 'x.apps.test'), '*.apps.test');
    assert.equal(await handshake(port, 'api.test'), 'api.test');
    assert.deepEqual(seen.slice(2).map(sniOn), [true, true], 'two certificates: SNI picks');

    reload(tlsConfig([wild], { unknownSni: 'refuse' }));
    assert.match(await handshake(port, 'other.test'), /^error /, 'refused: unknown name');
    assert.equal(await handshake(port, 'y.apps.test'), '*.apps.test');
    assert.equal(sniOn(seen.at(-1)!), true, 'refuse needs the callback with one certificate too');

    reload(tlsConfig([wild]));
    assert.equal(await handshake(port, 'other.test'), '*.apps.test', 'back to default: served');
    assert.equal(sniOn(seen.at(-1)!), false);
  });

  test('the client address is judged at accept and carried to the TLS socket; a reload re-judges it on an open connection', async (t) => {
    const b = await startBackend((req, res) => {
      const body = JSON.stringify({
        proto: req.headers['x-forwarded-proto'],
        xff: req.headers['x-forwarded-for'],
      });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    t.after(() => b.close());
    const pools = [poolConfig('web', [backend(b.port)])];
    const { port, handle } = await startHttpsListener(t, { tls: tlsConfig([api]) }, pools);
    const seen = serverSockets(handle);
    const s = tls.connect({ port, host: '127.0.0.1', servername: 'api.test', ca: ca.certPem });
    t.after(() => s.destroy());
    await new Promise<void>((r, j) => s.once('secureConnect', r).once('error', j));
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
    });
    /** One keep-alive request on the connection → the backend's JSON. */
    const ask = async (): Promise<{ proto: string; xff: string }> => {
      buf = '';
      s.write(
        'GET / HTTP/1.1\r\nHost: api.test\r\nX-Forwarded-Proto: http\r\nX-Forwarded-For: 10.9.9.9\r\n\r\n',
      );
      const complete = () => {
        const end = buf.indexOf('\r\n\r\n');
        const len = /^content-length: *(\d+)/im.exec(buf)?.[1];
        return end >= 0 && len !== undefined && buf.length >= end + 4 + Number(len);
      };
      for (let i = 0; i < 500 && !complete(); i++) await new Promise((r) => setTimeout(r, 10));
      return JSON.parse(buf.slice(buf.indexOf('\r\n\r\n') + 4));
    };
    const untrusted = await ask();
    assert.equal(untrusted.proto, 'https', 'an untrusted peer cannot set X-Forwarded-Proto');
    assert.equal(untrusted.xff, '10.9.9.9, 127.0.0.1');
    (handle as HttpListener).update(
      listenerState(
        listenerConfig(port, {
          protocol: 'https',
          tls: tlsConfig([api]),
          trustedProxies: cidrs('127.0.0.1/32'),
        }),
        pools,
      ),
    );
    const trusted = await ask();
    assert.equal(trusted.proto, 'http', 'the same connection, now from a trusted proxy');
    assert.equal(trusted.xff, '10.9.9.9, 127.0.0.1');
    // The address came from the TCP socket at accept: the TLS socket never looked it up.
    assert.equal(seen.length, 1);
    assert.equal((seen[0] as unknown as { _peername?: unknown })._peername, undefined);
  });

  test('ticket IVs: 16 bytes each, never repeated across batches, never overwritten by a refill', () => {
    const ivs = Array.from({ length: 1000 }, () => nextIv());
    const copies = ivs.map((iv) => Buffer.from(iv));
    assert.ok(ivs.every((iv) => iv.length === 16));
    assert.equal(new Set(ivs.map((iv) => iv.toString('hex'))).size, 1000);
    for (let i = 0; i < 1000; i++) nextIv(); // several refills later
    assert.ok(ivs.every((iv, i) => iv.equals(copies[i]!)));
  });

  test('sessions resume past a refill of the IV batch (hundreds of tickets sealed)', async (t) => {
    const b = await startBackend((_req, res) => res.end('ok'));
    t.after(() => b.close());
    const { port } = await startHttpsListener(t, { tls: tlsConfig([api]) }, [
      poolConfig('web', [backend(b.port)]),
    ]);
    /** A full TLS 1.3 handshake, its last ticket; or a resumption of `session`. */
    const connect = (session?: Buffer) =>
      new Promise<{ session: Buffer | undefined; reused: boolean }>((resolve, reject) => {
        const s = tls.connect({ port, host: '127.0.0.1', servername: 'api.test', ca: ca.certPem, session });
        let reused = false;
        const done = (x?: Buffer) => {
          clearTimeout(timer);
          s.destroy();
          resolve({ session: x, reused });
        };
        // TLS 1.3 tickets come after the handshake; a resumed one brings a new ticket too.
        const timer = setTimeout(() => done(), 2000);
        s.once('secureConnect', () => {
          reused = s.isSessionReused();
          s.write('GET / HTTP/1.1\r\nHost: api.test\r\n\r\n');
        });
        s.resume();
        s.once('session', (x: Buffer) => setImmediate(() => done(x)));
        s.once('error', reject);
      });
    const sessions: Buffer[] = [];
    for (let i = 0; i < 14; i++) {
      const batch = await Promise.all(Array.from({ length: 10 }, () => connect()));
      for (const r of batch) {
        assert.ok(r.session, 'every full handshake brings a ticket');
        sessions.push(r.session);
      }
    }
    // 140 handshakes × 2 tickets each > one batch of 256 IVs.
    for (const s of [sessions[0]!, sessions[70]!, sessions[139]!])
      assert.equal((await connect(s)).reused, true);
  });
});
