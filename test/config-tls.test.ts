// TLS config: the keys of the listener `tls` mapping, redirect_https and hsts, and certificates
// as data — the file source reads every certificate and key while it validates, so `fiberlb
// check` rejects an unreadable file, a key that does not match, an expired certificate and a
// route host no certificate covers, each at FILE:LINE:COL of the key that names it.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { checkConfigFile } from '../src/config/check.ts';
import { FileSource } from '../src/config/file-source.ts';
import { formatIssue, parseConfigText } from '../src/config/validate.ts';
import { makeCa } from './helpers/certs.ts';
import { CLI, ROOT, tempDir } from './helpers/cluster-fiberlb.ts';

const ca = makeCa();
const api = ca.leaf(['api.test', '*.apps.test']);
const other = ca.leaf(['other.test']);
const expired = ca.leaf(['old.test'], { expired: true });

const LS = 'load_balancers[0].listeners[0]';

/** A config whose line 11 starts the tls mapping's body; `tls` and `extra` are inserted as is. */
function config(tls: string, extra = ''): string {
  return `load_balancers:
  - name: pub
    org: o
    project: p
    vip: 127.0.0.1
    listeners:
      - name: api
        port: 8443
        protocol: https
        default_pool: web
        tls:
${tls}${extra}
    pools:
      - name: web
        backends: [{ address: 127.0.0.1, port: 9001 }]
`;
}

function certs(cert: string, key: string): string {
  return `          certificates:\n            - { cert: ${cert}, key: ${key} }\n`;
}

async function check(text: string): Promise<{ ok: boolean; lines: string[] }> {
  const dir = tempDir();
  const file = join(dir, 'lb.yaml');
  writeFileSync(file, text);
  const r = await checkConfigFile(file);
  return { ok: r.ok, lines: r.lines.map((l) => l.replace(`${dir}/`, '')) };
}

describe('certificates as data', () => {
  test('a valid pair is read into the config: PEM text and the names it covers', async () => {
    const dir = tempDir();
    const file = join(dir, 'lb.yaml');
    writeFileSync(file, config(certs(api.cert, api.key)));
    const source = new FileSource(file);
    const r = await source.load();
    await source.close();
    assert.ok(r.ok, r.ok ? '' : r.issues.map(formatIssue).join('\n'));
    const c = r.config.dynamic.loadBalancers[0]!.listeners[0]!.tls!.certificates[0]!;
    assert.equal(c.certPem, api.certPem);
    assert.equal(c.keyPem, api.keyPem);
    assert.deepEqual(c.names, ['api.test', '*.apps.test']);
  });

  test('unreadable file, mismatched key, expired certificate: each at its key with the reason', async () => {
    const missing = await check(config(certs('/nonexistent/a.crt', api.key)));
    assert.equal(missing.ok, false);
    assert.deepEqual(missing.lines, [
      `lb.yaml:13:23: ${LS}.tls.certificates[0].cert: cannot read /nonexistent/a.crt: no such file or directory (ENOENT)`,
    ]);
    const mismatch = await check(config(certs(api.cert, other.key)));
    assert.equal(mismatch.lines.length, 1);
    assert.match(
      mismatch.lines[0]!,
      new RegExp(
        `^lb\\.yaml:13:\\d+: ${LS.replace(/[[\]]/g, '\\$&')}\\.tls\\.certificates\\[0\\]\\.key: key does not match the certificate \\(CN=api\\.test\\)$`,
      ),
    );
    const old = await check(config(certs(expired.cert, expired.key)));
    assert.equal(old.lines.length, 1);
    assert.match(
      old.lines[0]!,
      /^lb\.yaml:13:23: .*\.tls\.certificates\[0\]\.cert: certificate expired on \d{4}-/,
    );
    const notPem = await check(config(certs(api.key, api.key)));
    assert.match(notPem.lines[0]!, /certificates\[0\]\.cert: not a PEM certificate/);
  });

  test('a route host no certificate covers is rejected at the route; exact and one-label wildcard pass', async () => {
    const routes = (host: string) =>
      `        routes:\n          - match: { host: ${host} }\n            pool: web\n`;
    assert.equal((await check(config(certs(api.cert, api.key), routes('api.test')))).ok, true);
    assert.equal((await check(config(certs(api.cert, api.key), routes('x.apps.test')))).ok, true);
    const deep = await check(config(certs(api.cert, api.key), routes('a.b.apps.test')));
    assert.deepEqual(deep.lines, [
      `lb.yaml:15:28: ${LS}.routes[0].match.host: no certificate of this listener covers host 'a.b.apps.test' (names: api.test, *.apps.test)`,
    ]);
  });

  test('`fiberlb check` exits 1 naming the file, field and reason', () => {
    const dir = tempDir();
    copyFileSync(api.cert, join(dir, 'a.crt'));
    copyFileSync(other.key, join(dir, 'a.key'));
    const file = join(dir, 'lb.yaml');
    writeFileSync(file, config(certs('a.crt', 'a.key')));
    const r = spawnSync(process.execPath, [CLI, 'check', file], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      new RegExp(`^${file}:13:\\d+: .*certificates\\[0\\]\\.key: key does not match the certificate`, 'm'),
    );
  });
});

describe('tls keys', () => {
  const errors = (text: string) => {
    const r = parseConfigText(text, 't.yaml', { cpuCount: 2 });
    return r.ok ? [] : r.issues.map(formatIssue);
  };
  const base = certs('a.crt', 'a.key');

  test('defaults', () => {
    const r = parseConfigText(config(base), '/etc/x/t.yaml', { cpuCount: 2 });
    assert.ok(r.ok);
    const t = r.config.dynamic.loadBalancers[0]!.listeners[0]!.tls!;
    assert.equal(t.minVersion, 'TLSv1.2');
    assert.equal(t.http2, true);
    assert.equal(t.unknownSni, 'default');
    assert.equal(t.sessionTickets, true);
    assert.equal(t.clientAuth, 'off');
    assert.deepEqual(t.clientCertHeaders, {
      subject: 'x-client-cert-subject',
      fingerprint: 'x-client-cert-fingerprint',
    });
    assert.match(t.ciphers, /^ECDHE-/);
    assert.equal(t.ecdhCurves, 'X25519:P-256:P-384');
  });

  test('bad values are located and named', () => {
    assert.deepEqual(errors(config(`${base}          min_version: TLSv1.1\n`)), [
      `t.yaml:14:24: ${LS}.tls.min_version: invalid value 'TLSv1.1'; expected one of: TLSv1.2, TLSv1.3`,
    ]);
    assert.deepEqual(errors(config(`${base}          client_auth: required\n`)), [
      `t.yaml:12:11: ${LS}.tls.client_ca: is required when client_auth is required`,
    ]);
    assert.deepEqual(errors(config(`${base}          client_ca: ca.pem\n`)), [
      `t.yaml:14:11: ${LS}.tls.client_ca: only allowed when client_auth is optional or required`,
    ]);
    assert.deepEqual(
      errors(
        config(
          `${base}          unknown_sni: drop\n          client_cert_headers: { subject: 'bad header' }\n`,
        ),
      ),
      [
        `t.yaml:14:24: ${LS}.tls.unknown_sni: invalid value 'drop'; expected one of: default, refuse`,
        `t.yaml:15:43: ${LS}.tls.client_cert_headers.subject: invalid header name 'bad header'`,
      ],
    );
    assert.deepEqual(errors(config(base, '        redirect_https: true\n')), [
      `t.yaml:14:9: ${LS}.redirect_https: only allowed on http listeners (this listener is https)`,
    ]);
    assert.deepEqual(errors(config(base, '        hsts: { max_age: 86400, preload: true }\n')), [
      `t.yaml:14:33: ${LS}.hsts.preload: requires include_subdomains: true and max_age of at least 31536000 (a year)`,
    ]);
  });

  test('redirect_https and hsts', () => {
    const http = config(base)
      .replace('protocol: https', 'protocol: http')
      .replace(/ {8}tls:\n.*\n.*\n/, '        redirect_https: { port: 8443 }\n');
    const r = parseConfigText(http, 't.yaml', { cpuCount: 2 });
    assert.ok(r.ok, r.ok ? '' : r.issues.map(formatIssue).join('\n'));
    assert.deepEqual(r.config.dynamic.loadBalancers[0]!.listeners[0]!.redirectHttps, { port: 8443 });
    const h = parseConfigText(
      config(base, '        hsts: { max_age: 31536000, include_subdomains: true, preload: true }\n'),
      't.yaml',
      {
        cpuCount: 2,
      },
    );
    assert.ok(h.ok, h.ok ? '' : h.issues.map(formatIssue).join('\n'));
    assert.deepEqual(h.config.dynamic.loadBalancers[0]!.listeners[0]!.hsts, {
      maxAgeS: 31_536_000,
      includeSubdomains: true,
      preload: true,
    });
    assert.deepEqual(errors(config(base).replace('protocol: https', 'protocol: http')).slice(0, 1), [
      `t.yaml:11:9: ${LS}.tls: only allowed on https listeners (this listener is http)`,
    ]);
  });
});
