// The targets of the `https` and `h2` scenarios, registered in targets.mjs's TARGETS (so
// run.mjs's --only/--skip, skip reasons and versions work as for every other target). Each
// terminates TLS 1.3 with the run's one certificate (tls-cert.mjs) and forwards HTTP/1.1
// keep-alive to the same backend; each start is checked with a real request over TLS — for the
// h2 targets an HTTP/2 request that must negotiate `h2` by ALPN — before any load.
//   https: fiberlb-https, undici-https (the reference), haproxy-https, nginx-https
//   h2:    fiberlb-h2, undici-h2 (the reference), haproxy-h2, nginx-h2
// BENCH_PROF=DIR runs FiberLB and the undici peers under `node --cpu-prof` (profiles in DIR/<target>).
// A start's ctx may also carry `profDir` (the same, for one start), `cli` (FiberLB from another
// build's cli.js) and `http2` (false: FiberLB's listener with `tls.http2: false`).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { haproxyConfig, nginxProxyConfig } from './configs.mjs';
import { freePort, httpGet, rememberTree, spawnPinned, stop, waitForOutput, waitForPort } from './proc.mjs';
import { BODY, haproxyBin, nginxBin, outputTail, startNginx, TARGETS, version } from './targets.mjs';
import { SERVERNAME, tlsFiles } from './tls-cert.mjs';
import { fiberlbHttpsConfig, haproxyH2Config, nginxH2Config, nginxVersion } from './tls-configs.mjs';

async function retry(fn, tries = 50) {
  let last;
  for (let i = 0; i < tries; i++) {
    try {
      return await fn();
    } catch (e) {
      last = e;
      await sleep(100);
    }
  }
  throw last;
}

/** GET / over TLS 1.3 (HTTP/1.1), retried while the target starts → { protocol, cipher, alpn }. */
export function verifyTls(port, tries = 50) {
  return retry(
    () =>
      new Promise((resolve, reject) => {
        const req = https.get(
          {
            host: '127.0.0.1',
            port,
            path: '/',
            servername: SERVERNAME,
            rejectUnauthorized: false, // the run's throw-away self-signed certificate
            minVersion: 'TLSv1.3',
            ALPNProtocols: ['http/1.1'], // as handshake-gen offers; a target that picks h2 would fail here
            agent: false,
            timeout: 2000,
          },
          (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (d) => {
              body += d;
            });
            res.on('end', () => {
              if (res.statusCode !== 200 || body !== BODY)
                return reject(new Error(`GET / → ${res.statusCode} ${JSON.stringify(body.slice(0, 80))}`));
              resolve({
                protocol: res.socket.getProtocol(),
                cipher: res.socket.getCipher()?.name,
                alpn: res.socket.alpnProtocol || 'none',
              });
            });
          },
        );
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
      }),
    tries,
  );
}

/** GET / over HTTP/2 (TLS 1.3, ALPN h2 only), retried while the target starts. */
export function verifyH2(port, tries = 50) {
  return retry(
    () =>
      new Promise((resolve, reject) => {
        const session = http2.connect(`https://127.0.0.1:${port}`, {
          servername: SERVERNAME,
          rejectUnauthorized: false,
          minVersion: 'TLSv1.3',
          ALPNProtocols: ['h2'],
        });
        let timer;
        const fail = (e) => {
          clearTimeout(timer);
          session.destroy();
          reject(e);
        };
        timer = setTimeout(() => fail(new Error('timeout')), 2000);
        session.on('error', fail);
        const req = session.request({ ':path': '/', ':method': 'GET' });
        let status;
        let body = '';
        req.setEncoding('utf8');
        req.on('response', (h) => {
          status = h[':status'];
        });
        req.on('data', (d) => {
          body += d;
        });
        req.on('error', fail);
        req.on('end', () => {
          clearTimeout(timer);
          const sock = session.socket;
          const out = {
            protocol: sock?.getProtocol?.(),
            cipher: sock?.getCipher?.()?.name,
            alpn: session.alpnProtocol,
          };
          session.close();
          if (status !== 200 || body !== BODY)
            return reject(new Error(`h2 GET / → ${status} ${JSON.stringify(body.slice(0, 80))}`));
          if (out.alpn !== 'h2') return reject(new Error(`ALPN negotiated ${out.alpn}, not h2`));
          resolve(out);
        });
        req.end();
      }),
    tries,
  );
}

const gitRev = (root) => {
  try {
    const rev = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', 'src'], {
      cwd: root,
      encoding: 'utf8',
    }).trim();
    return `git ${rev}${dirty ? '+dirty' : ''}`;
  } catch {
    return 'unknown';
  }
};
const pkgVersion = (root, pkg) => {
  try {
    return `${pkg} ${JSON.parse(readFileSync(path.join(root, 'node_modules', pkg, 'package.json'), 'utf8')).version}`;
  } catch {
    return 'unknown';
  }
};
const profArgs = (name, dir = process.env.BENCH_PROF) =>
  dir ? ['--cpu-prof', `--cpu-prof-dir=${path.join(path.resolve(dir), name)}`] : [];
const haproxyVersion = () =>
  version(haproxyBin(), ['-v'])
    .replace(/ - https?:.*$/, '')
    .replace(/^HAProxy version /, 'haproxy ');
const nginxVersionLine = () => version(nginxBin(), ['-v']).replace(/^nginx version:\s*/, '');

function fiberlb(name, label, h2) {
  return {
    name,
    label,
    isProxy: true,
    tls: true,
    h2,
    unavailable: () => undefined, // a missing dist/ is a start failure, not a skip
    version: (ctx) => gitRev(ctx.root),
    async start(ctx) {
      const cli = ctx.cli ?? process.env.FIBERLB_CLI;
      const cliPath = cli ? path.resolve(cli) : path.join(ctx.root, 'dist/cli.js');
      if (!existsSync(cliPath)) throw new Error(`${cliPath} not found — run \`npm run build\` first`);
      const { cert, key } = tlsFiles(ctx.tmp);
      const dir = mkdtempSync(path.join(ctx.tmp, `${name}-`));
      const [port, adminPort] = [await freePort(), await freePort()];
      // BENCH_HTTP2=false (https only): `tls.http2: false`, ALPN http/1.1 only.
      const conf = fiberlbHttpsConfig({
        dir,
        port,
        adminPort,
        backendPort: ctx.backendPort,
        cert,
        key,
        http2: h2 || (ctx.http2 ?? process.env.BENCH_HTTP2 !== 'false'),
      });
      // --cpu-prof is refused in NODE_OPTIONS; cluster workers inherit the primary's execArgv.
      const child = spawnPinned(
        name,
        ctx.cpu,
        process.execPath,
        [...profArgs(name, ctx.profDir), cliPath, 'run', '--config', conf],
        { cwd: ctx.root, env: { NODE_ENV: 'production' } },
      );
      return ready(child, port, h2, async () => {
        // Ready = admin /healthz answers 200 (every worker up), then one request over TLS.
        const deadline = Date.now() + 20_000;
        for (;;) {
          if (child.exitCode !== null || child.signalCode !== null)
            throw new Error(`exited (${child.exitCode ?? child.signalCode})`);
          try {
            if ((await httpGet(adminPort, '/healthz', '127.0.0.1', 500)).status === 200) break;
          } catch {}
          if (Date.now() > deadline) throw new Error('not ready after 20 s');
          await sleep(100);
        }
      });
    },
  };
}

function undiciPeer(name, label, script, h2) {
  return {
    name,
    label,
    isProxy: true,
    tls: true,
    h2,
    unavailable: () => undefined,
    version: (ctx) => `${pkgVersion(ctx.root, 'undici')}, Node ${process.version}`,
    async start(ctx) {
      const { cert, key } = tlsFiles(ctx.tmp);
      const port = await freePort();
      const child = spawnPinned(
        name,
        ctx.cpu,
        process.execPath,
        [
          ...profArgs(name, ctx.profDir),
          path.join(ctx.root, 'bench/peers', script),
          String(port),
          `http://127.0.0.1:${ctx.backendPort}`,
          cert,
          key,
        ],
        { cwd: ctx.root },
      );
      return ready(child, port, h2, async () => {
        await waitForOutput(child, /listening/);
      });
    },
  };
}

function haproxy(name, label, h2) {
  return {
    name,
    label,
    isProxy: true,
    tls: true,
    h2,
    unavailable: () => (haproxyBin() ? undefined : 'haproxy not installed (apt-get install -y haproxy)'),
    version: haproxyVersion,
    async start(ctx) {
      const { pem } = tlsFiles(ctx.tmp);
      const dir = mkdtempSync(path.join(ctx.tmp, `${name}-`));
      const port = await freePort();
      const conf = h2
        ? haproxyH2Config({ dir, port, backendPort: ctx.backendPort, pem })
        : haproxyConfig({ dir, port, backendPort: ctx.backendPort, tls: { pem } }); // alpn http/1.1
      const child = spawnPinned(name, ctx.cpu, haproxyBin(), ['-db', '-f', conf]); // one process, one thread
      return ready(child, port, h2, async () => {
        await waitForPort(port, { child });
      });
    },
  };
}

function nginx(name, label, h2) {
  return {
    name,
    label,
    isProxy: true,
    tls: true,
    h2,
    unavailable: () => (nginxBin() ? undefined : 'nginx not installed (apt-get install -y nginx)'),
    version: nginxVersionLine,
    async start(ctx) {
      const { cert, key } = tlsFiles(ctx.tmp);
      const dir = mkdtempSync(path.join(ctx.tmp, `${name}-`));
      const port = await freePort();
      const conf = h2
        ? nginxH2Config({
            dir,
            port,
            backendPort: ctx.backendPort,
            cert,
            key,
            version: nginxVersion(version(nginxBin(), ['-v'])),
          })
        : nginxProxyConfig({ dir, port, backendPort: ctx.backendPort, tls: { cert, key } });
      const child = await startNginx(name, ctx.cpu, dir, conf, port, h2 ? verifyH2 : verifyTls);
      return { port, child };
    },
  };
}

/**
 * Wait until a started target is up (`waitUp`), then check it answers over TLS (h2 or
 * HTTP/1.1); on failure stop it and say why with its last output.
 */
async function ready(child, port, h2, waitUp) {
  try {
    await waitUp();
    await (h2 ? verifyH2 : verifyTls)(port);
  } catch (e) {
    await stop(child);
    throw new Error(`${e.message}\n${outputTail(child)}`);
  }
  rememberTree(child);
  return { port, child };
}

export const HTTPS_TARGETS = [
  fiberlb('fiberlb-https', 'FiberLB https listener (1 worker)', false),
  undiciPeer('undici-https', 'node:https + undici Pool.stream (minimal)', 'undici-https.mjs', false),
  haproxy('haproxy-https', 'HAProxy (nbthread 1)', false),
  nginx('nginx-https', 'NGINX (1 worker)', false),
];
export const H2_TARGETS = [
  fiberlb('fiberlb-h2', 'FiberLB https listener, h2 (1 worker)', true),
  undiciPeer('undici-h2', 'node:http2 + undici Pool.stream (minimal)', 'undici-h2.mjs', true),
  haproxy('haproxy-h2', 'HAProxy alpn h2,http/1.1 (nbthread 1)', true),
  nginx('nginx-h2', 'NGINX http2 (1 worker)', true),
];
for (const t of [...HTTPS_TARGETS, ...H2_TARGETS])
  if (!TARGETS.some((x) => x.name === t.name)) TARGETS.push(t);
