// Pool `tls` and `http2` in the config: the PEM files are read at validation (in the primary)
// into the model, and every problem is reported as file:line:col: path: reason.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { checkConfigFile } from '../src/config/check.ts';
import { readPem } from '../src/config/material.ts';
import { poolTlsWarnings } from '../src/config/pool-tls.ts';
import { formatIssue, parseConfigText } from '../src/config/validate.ts';
import { upstreamCerts } from './helpers/upstream-certs.ts';

// Line numbers below refer to this document; POOL_EXTRA goes at line 13 (after the pool name).
function doc(poolExtra: string, protocol = 'http'): string {
  return `load_balancers:
  - name: public
    org: platform
    project: core
    vip: 127.0.0.1
    listeners:
      - name: api
        port: 8080
        protocol: ${protocol}
        default_pool: web
    pools:
      - name: web
${poolExtra}        backends:
          - { address: 127.0.0.1, port: 9001 }
`;
}

const P0 = 'load_balancers[0].pools[0]';

function parse(text: string, dir: string) {
  return parseConfigText(text, join(dir, 't.yaml'), { cpuCount: 1 });
}

function errors(text: string, dir: string): string[] {
  const r = parse(text, dir);
  assert.equal(r.ok, false, 'expected validation to fail');
  // Paths in messages are absolute: make them relative to the temp dir for the comparison.
  return r.ok ? [] : r.issues.map(formatIssue).map((l) => l.split(`${dir}/`).join(''));
}

describe('pool tls / http2 config', () => {
  test('files are read into the model; relative paths from the config file; defaults', (t) => {
    const c = upstreamCerts(t);
    const r = parse(
      doc(
        '        tls: { ca: ca.crt, cert: client.crt, key: client.key, servername: API.Internal., min_version: TLSv1.3 }\n        http2: true\n',
      ),
      c.dir,
    );
    assert.ok(r.ok, r.ok ? '' : r.issues.map(formatIssue).join('\n'));
    const p = r.config.dynamic.loadBalancers[0]!.pools[0]!;
    assert.equal(p.http2, true);
    assert.deepEqual(p.tls, {
      ca: c.ca.cert,
      verify: true,
      servername: 'api.internal',
      cert: c.client.cert,
      key: c.client.key,
      minVersion: 'TLSv1.3',
    });
    assert.ok(Object.isFrozen(p.tls));

    const plain = parse(doc(''), c.dir);
    assert.ok(plain.ok);
    assert.equal(plain.config.dynamic.loadBalancers[0]!.pools[0]!.tls, undefined);
    assert.equal(plain.config.dynamic.loadBalancers[0]!.pools[0]!.http2, false);

    const short = parse(doc('        tls: true\n'), c.dir);
    assert.ok(short.ok);
    assert.deepEqual(short.config.dynamic.loadBalancers[0]!.pools[0]!.tls, {
      ca: undefined,
      verify: true,
      servername: undefined,
      cert: undefined,
      key: undefined,
      minVersion: 'TLSv1.2',
    });
    const off = parse(doc('        tls: { enabled: false, ca: ca.crt }\n'), c.dir);
    assert.ok(off.ok);
    assert.equal(off.config.dynamic.loadBalancers[0]!.pools[0]!.tls, undefined);
  });

  test('unreadable or bad PEM files, each at its key with the file and the reason', (t) => {
    const c = upstreamCerts(t);
    writeFileSync(join(c.dir, 'junk.pem'), 'not a certificate\n');
    writeFileSync(
      join(c.dir, 'broken.pem'),
      '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
    );
    assert.deepEqual(
      errors(
        doc('        tls:\n          ca: missing.crt\n          cert: junk.pem\n          key: ca.crt\n'),
        c.dir,
      ),
      [
        `t.yaml:14:15: ${P0}.tls.ca: cannot read CA bundle file 'missing.crt': no such file (ENOENT)`,
        `t.yaml:15:17: ${P0}.tls.cert: 'junk.pem' is not a PEM certificate (no "-----BEGIN ...-----" line of that kind)`,
        `t.yaml:16:16: ${P0}.tls.key: 'ca.crt' is not a PEM private key (no "-----BEGIN ...-----" line of that kind)`,
      ],
    );
    const bad = errors(doc('        tls: { ca: broken.pem }\n'), c.dir);
    assert.equal(bad.length, 1);
    assert.match(
      bad[0]!,
      /^t\.yaml:13:20: load_balancers\[0\]\.pools\[0\]\.tls\.ca: 'broken\.pem' is not a valid PEM CA bundle: /,
    );
  });

  test('cert without key, a key of another certificate, servername as an IP, wrong types', (t) => {
    const c = upstreamCerts(t);
    assert.deepEqual(errors(doc('        tls: { cert: client.crt }\n'), c.dir), [
      `t.yaml:13:14: ${P0}.tls.key: is required with cert (a client certificate needs both)`,
    ]);
    assert.deepEqual(errors(doc('        tls: { cert: client.crt, key: server.key }\n'), c.dir), [
      `t.yaml:13:39: ${P0}.tls.key: does not match the certificate in cert`,
    ]);
    assert.deepEqual(errors(doc('        tls: { servername: 10.0.0.1, verify: "no" }\n'), c.dir), [
      `t.yaml:13:28: ${P0}.tls.servername: '10.0.0.1' is an IP address; SNI carries DNS names only (omit servername for IP backends)`,
      `t.yaml:13:46: ${P0}.tls.verify: expected true or false, got string 'no'`,
    ]);
    assert.deepEqual(errors(doc('        tls: yes please\n        http2: 1\n'), c.dir), [
      `t.yaml:13:14: ${P0}.tls: expected true, false or a mapping, got string 'yes please'`,
      `t.yaml:14:16: ${P0}.http2: expected true or false, got number 1`,
    ]);
    assert.deepEqual(errors(doc('        tls: { min_version: TLSv1.1, sni: x }\n'), c.dir), [
      `t.yaml:13:29: ${P0}.tls.min_version: invalid value 'TLSv1.1'; expected one of: TLSv1.2, TLSv1.3`,
      `t.yaml:13:38: ${P0}.tls.sni: unknown key 'sni'`,
    ]);
  });

  test('tls / http2 pools only behind http and https listeners', (t) => {
    const c = upstreamCerts(t);
    assert.deepEqual(errors(doc('        tls: true\n', 'tcp'), c.dir), [
      "t.yaml:10:23: load_balancers[0].listeners[0].default_pool: pool 'web' sets tls, which only http and https listeners use, not tcp",
    ]);
    assert.deepEqual(errors(doc('        tls: true\n        http2: true\n', 'tls_passthrough'), c.dir), [
      "t.yaml:10:23: load_balancers[0].listeners[0].default_pool: pool 'web' sets tls and http2, which only http and https listeners use, not tls_passthrough",
    ]);
    assert.deepEqual(errors(doc('        http2: true\n', 'udp'), c.dir), [
      "t.yaml:10:23: load_balancers[0].listeners[0].default_pool: pool 'web' sets http2, which only http and https listeners use, not udp",
    ]);
  });

  test('verify: false is a warning at every load and in `fiberlb check`', async (t) => {
    const c = upstreamCerts(t);
    const file = join(c.dir, 'lb.yaml');
    writeFileSync(file, doc('        tls: { verify: false }\n'));
    const r = parse(doc('        tls: { verify: false }\n'), c.dir);
    assert.ok(r.ok);
    assert.deepEqual(poolTlsWarnings(r.config.dynamic), [
      `${P0}.tls.verify: false — backend certificates of pool 'public/web' are not verified (anyone on the path can impersonate them)`,
    ]);
    const out = await checkConfigFile(file);
    assert.equal(out.ok, true);
    assert.ok(
      out.lines.some((l) => l.includes(': warning: ') && l.includes('tls.verify: false')),
      out.lines.join('\n'),
    );
    const safe = parse(doc('        tls: true\n'), c.dir);
    assert.ok(safe.ok);
    assert.deepEqual(poolTlsWarnings(safe.config.dynamic), []);
  });

  test('readPem: the text of a good file, the reason for a bad one', (t) => {
    const c = upstreamCerts(t);
    assert.deepEqual(readPem(c.ca.certFile, 'CA bundle'), { ok: true, value: c.ca.cert });
    assert.deepEqual(readPem(c.client.keyFile, 'private key'), { ok: true, value: c.client.key });
    const r = readPem(c.dir, 'certificate');
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : r.reason, /^cannot read certificate file '.*': .*EISDIR/);
  });
});
