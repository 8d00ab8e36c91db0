// Config generation for the native peers (HAProxy, NGINX) and for FiberLB.
// Everything lives in a per-run temp dir; nothing touches /etc or system services.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const userName = () => process.env.USER || (isRoot ? 'root' : undefined);

/**
 * HAProxy: one thread, HTTP mode, keep-alive both sides, server connections reused across clients.
 * `tls: { pem }` (certificate + key in one file) terminates TLS 1.3 on the bind line.
 */
export function haproxyConfig({ dir, port, backendPort, mode = 'http', tls }) {
  const file = path.join(dir, 'haproxy.cfg');
  writeFileSync(
    file,
    `global
  nbthread 1
  maxconn 4096
  pidfile ${path.join(dir, 'haproxy.pid')}

defaults
  mode ${mode}
${mode === 'http' ? '  option http-keep-alive\n  http-reuse always\n' : ''}  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s

frontend fe
  bind 127.0.0.1:${port}${tls ? ` ssl crt ${tls.pem} ssl-min-ver TLSv1.3 alpn http/1.1` : ''}
  default_backend be

backend be
  server s1 127.0.0.1:${backendPort} maxconn 1000
`,
  );
  return file;
}

/** Shared NGINX preamble: one worker, files in dir, runs as the current user. */
function nginxMain(dir, httpBody) {
  for (const d of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'])
    mkdirSync(path.join(dir, `${d}_temp`), { recursive: true });
  // As root, NGINX would switch its worker to `nobody`; keep it as the current user instead.
  const user = isRoot ? `user ${userName()};\n` : '';
  return `${user}worker_processes 1;
daemon off;
pid ${path.join(dir, 'nginx.pid')};
error_log ${path.join(dir, 'nginx-error.log')} warn;
events { worker_connections 10000; multi_accept on; }
http {
  access_log off;
  client_body_temp_path ${path.join(dir, 'client_body_temp')};
  proxy_temp_path ${path.join(dir, 'proxy_temp')};
  fastcgi_temp_path ${path.join(dir, 'fastcgi_temp')};
  uwsgi_temp_path ${path.join(dir, 'uwsgi_temp')};
  scgi_temp_path ${path.join(dir, 'scgi_temp')};
  keepalive_timeout 60s;
  keepalive_requests 10000000;
${httpBody}
}
`;
}

/**
 * NGINX as a reverse proxy: upstream keep-alive pool, HTTP/1.1 to the upstream, no access log.
 * `tls: { cert, key }` terminates TLS 1.3 (session cache + tickets on, as a typical site has).
 */
export function nginxProxyConfig({ dir, port, backendPort, tls }) {
  const file = path.join(dir, 'nginx.conf');
  writeFileSync(
    file,
    nginxMain(
      dir,
      `  upstream be {
    server 127.0.0.1:${backendPort};
    keepalive 256;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
  }
  server {
    listen 127.0.0.1:${port}${tls ? ' ssl' : ''} reuseport;${
      tls
        ? `
    ssl_certificate ${tls.cert};
    ssl_certificate_key ${tls.key};
    ssl_protocols TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets on;`
        : ''
    }
    location / {
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering on;
    }
  }`,
    ),
  );
  return file;
}

/** NGINX as the static backend: `return 200 "hello, world\n"` (same 13-byte body as backend.mjs). */
export function nginxBackendConfig({ dir, port }) {
  const file = path.join(dir, 'nginx.conf');
  writeFileSync(
    file,
    nginxMain(
      dir,
      `  server {
    listen 127.0.0.1:${port} reuseport;
    default_type text/plain;
    location / { return 200 "hello, world\\n"; }
  }`,
    ),
  );
  return file;
}

/**
 * BENCH_FIBERLB_HEALTH=1 gives the pool an active http health check (a key every FiberLB
 * since the core validates; it runs probes only where health checks are built), so a run with
 * --baseline measures health checks + retries against the core alone.
 */
function healthCheck() {
  return process.env.BENCH_FIBERLB_HEALTH === '1'
    ? '        health_check: { type: http, path: /, interval: 2s, timeout: 1s }\n'
    : '';
}

/** FiberLB config (shape from /work/shared/design.md): 1 worker, one HTTP listener, one pool. */
export function fiberlbConfig({
  dir,
  port,
  adminPort,
  backendPort,
  protocol = 'http',
  routes = 0,
  workers = 1,
  listenerExtra = '',
  poolExtra = '',
  backendExtra = '',
  accessLog,
}) {
  // routes: N-1 host routes that never match, then a catch-all (a linear router would walk them
  // all; the indexed one looks only at the catch-all).
  const routeLines = routes
    ? `        routes:\n${Array.from({ length: routes - 1 }, (_, i) => `          - { match: { host: r${i}.bench.example }, pool: backend }\n`).join('')}          - { match: { path_prefix: / }, pool: backend }\n`
    : '';
  const file = path.join(dir, 'fiberlb.yaml');
  writeFileSync(
    file,
    `admin: { address: 127.0.0.1, port: ${adminPort}, token_file: ${path.join(dir, 'admin.token')} }
cluster: { workers: ${workers} }
source: { type: file }
${accessLog ? `access_log: { path: ${accessLog} }\n` : ''}load_balancers:
  - name: bench
    org: bench
    project: bench
    vip: 127.0.0.1
    listeners:
      - name: http
        port: ${port}
        protocol: ${protocol}
        default_pool: backend
${listenerExtra ? `        ${listenerExtra}\n` : ''}${routeLines}    pools:
      - name: backend
        algorithm: round_robin
${healthCheck()}${poolExtra}        backends:
          - { address: 127.0.0.1, port: ${backendPort}${backendExtra} }
`,
  );
  return file;
}

export const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

/** NGINX stream (L4) proxy: one worker, one upstream. Needs Debian's libnginx-mod-stream. */
export function nginxStreamConfig({ dir, port, backendPort }) {
  const file = path.join(dir, 'nginx.conf');
  const main = nginxMain(dir, '').replace(/http \{[\s\S]*$/, '');
  writeFileSync(
    file,
    `load_module ${NGINX_STREAM_MODULE};
${main}stream {
  upstream be { server 127.0.0.1:${backendPort}; }
  server { listen 127.0.0.1:${port} reuseport; proxy_pass be; }
}
`,
  );
  return file;
}
