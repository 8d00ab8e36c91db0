// Config generation for the TLS targets of the `https` and `h2` scenarios (bench/lib/tls-targets.mjs).
// The plain-HTTP shapes are in configs.mjs; these add TLS termination (one certificate, TLS 1.3)
// and, for h2, HTTP/2 offered by ALPN next to HTTP/1.1. The backend side is HTTP/1.1 keep-alive
// everywhere. Everything lives in the run's temp dir.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { nginxProxyConfig } from './configs.mjs';

/** FiberLB: 1 worker, one https listener (ALPN h2 + http/1.1 unless http2 is false), one pool. */
export function fiberlbHttpsConfig({ dir, port, adminPort, backendPort, cert, key, http2 = true }) {
  const file = path.join(dir, 'fiberlb.yaml');
  writeFileSync(
    file,
    `admin: { address: 127.0.0.1, port: ${adminPort}, token_file: ${path.join(dir, 'admin.token')} }
cluster: { workers: 1 }
load_balancers:
  - name: bench
    org: bench
    project: bench
    vip: 127.0.0.1
    listeners:
      - name: https
        port: ${port}
        protocol: https
        default_pool: backend
        tls: { certificates: [{ cert: ${cert}, key: ${key} }], http2: ${http2} }
    pools:
      - name: backend
        backends: [{ address: 127.0.0.1, port: ${backendPort} }]
`,
  );
  return file;
}

/**
 * HAProxy terminating TLS 1.3 with `alpn h2,http/1.1` (HTTP/2 to clients that offer it), one
 * thread, HTTP/1.1 keep-alive to the backend with connections reused across clients — the
 * `haproxyConfig` of configs.mjs with another bind line.
 */
export function haproxyH2Config({ dir, port, backendPort, pem }) {
  const file = path.join(dir, 'haproxy.cfg');
  writeFileSync(
    file,
    `global
  nbthread 1
  maxconn 4096
  pidfile ${path.join(dir, 'haproxy.pid')}

defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s

frontend fe
  bind 127.0.0.1:${port} ssl crt ${pem} ssl-min-ver TLSv1.3 alpn h2,http/1.1
  default_backend be

backend be
  server s1 127.0.0.1:${backendPort} maxconn 1000
`,
  );
  return file;
}

/** "nginx version: nginx/1.22.1" → [1, 22, 1]. */
export function nginxVersion(versionLine) {
  const m = /nginx\/(\d+)\.(\d+)\.(\d+)/.exec(versionLine ?? '');
  return m ? m.slice(1).map(Number) : undefined;
}

/**
 * NGINX terminating TLS with HTTP/2: configs.mjs's TLS proxy server with h2 switched on —
 * `http2 on;` from NGINX 1.25.1, `listen … ssl http2` before (Debian 12 has 1.22). Since
 * 1.19.7 `keepalive_requests` (10M in nginxMain) also bounds requests per HTTP/2 connection.
 */
export function nginxH2Config({ dir, port, backendPort, cert, key, version }) {
  const file = nginxProxyConfig({ dir, port, backendPort, tls: { cert, key } });
  const conf = readFileSync(file, 'utf8');
  const listen = `listen 127.0.0.1:${port} ssl`;
  if (!conf.includes(listen)) throw new Error(`nginx config: no "${listen}" line to add http2 to`);
  const v = version ?? [0, 0, 0];
  const modern = v[0] > 1 || (v[0] === 1 && (v[1] > 25 || (v[1] === 25 && v[2] >= 1)));
  writeFileSync(
    file,
    modern ? conf.replace(listen, `http2 on;\n    ${listen}`) : conf.replace(listen, `${listen} http2`),
  );
  return file;
}
