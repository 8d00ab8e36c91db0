// The things we measure. Each target starts fresh (per round), pinned to the proxy core, and
// is checked to answer GET / with 200 + the expected body before any load is applied.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  fiberlbConfig,
  haproxyConfig,
  NGINX_STREAM_MODULE,
  nginxBackendConfig,
  nginxProxyConfig,
  nginxStreamConfig,
} from './configs.mjs';
import {
  freePort,
  httpGet,
  rememberTree,
  spawnPinned,
  stop,
  waitForOutput,
  waitForPort,
  which,
} from './proc.mjs';
import { VARIANTS } from './variants.mjs';

// The body every target must serve (verify() checks it). Scenarios with another response size
// set it with setBody(); a scenario whose backend is not HTTP sets setHttpCheck('tcp') (the port
// accepts, e.g. iperf3) or false (UDP).
export let BODY = 'hello, world\n';
let checkHttp = true;
export function setBody(bytes) {
  BODY = bytes ? `${'x'.repeat(bytes - 1)}\n` : 'hello, world\n';
}
export function setHttpCheck(on) {
  checkHttp = on;
}

// Binaries can be overridden (e.g. a newer build) with HAPROXY_BIN / NGINX_BIN.
export const haproxyBin = () => (process.env.HAPROXY_BIN ? which(process.env.HAPROXY_BIN) : which('haproxy'));
export const nginxBin = () => (process.env.NGINX_BIN ? which(process.env.NGINX_BIN) : which('nginx'));

const tail = (s, n = 1500) => {
  const t = s.trim();
  return t.length > n ? `…${t.slice(-n)}` : t;
};

function outputTail(child) {
  const err = tail(child.out.stderr);
  const out = tail(child.out.stdout, 800);
  return [err && `stderr: ${err}`, out && `stdout: ${out}`].filter(Boolean).join('\n') || '(no output)';
}

/** Check one request through the target; throw with a readable message otherwise. */
async function verify(port) {
  if (checkHttp === 'tcp') return waitForPort(port); // not HTTP (iperf3): the port accepts
  if (checkHttp === false) return; // UDP: readiness comes from the target's own signal
  let last;
  for (let i = 0; i < 20; i++) {
    try {
      const r = await httpGet(port, '/');
      if (r.status === 200 && r.body === BODY) return;
      last = new Error(
        `GET / → ${r.status} ${JSON.stringify(r.body.slice(0, 80))} (expected 200 ${JSON.stringify(BODY)})`,
      );
    } catch (e) {
      last = e;
    }
    await sleep(100);
  }
  throw last;
}

/** First line a `cmd -v` prints (nginx prints its version on stderr). */
export function version(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5000 });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n')[0].trim() || 'unknown';
}

/** Start a node script that prints "listening <port>". */
async function startNodeScript(name, cpu, script, args, root, env) {
  const child = spawnPinned(name, cpu, process.execPath, [script, ...args], { cwd: root, env });
  try {
    await waitForOutput(child, /listening (\d+)/, 10_000);
  } catch (e) {
    await stop(child);
    throw new Error(`${e.message}\n${outputTail(child)}`);
  }
  return child;
}

/**
 * Start nginx in the foreground (`daemon off` is in every generated config, so the master
 * stays our child) with its prefix and logs in `dir`; resolve once `check(port)` passes
 * (default: GET / over plain HTTP serves BODY).
 */
export async function startNginx(name, cpu, dir, conf, port, check = verify) {
  const child = spawnPinned(name, cpu, nginxBin(), [
    '-e',
    path.join(dir, 'startup-error.log'),
    '-c',
    conf,
    '-p',
    `${dir}/`,
  ]);
  try {
    await waitForPort(port, { child });
    await check(port);
  } catch (e) {
    await stop(child);
    throw new Error(`${name} failed: ${e.message}\n${outputTail(child)}`);
  }
  rememberTree(child);
  return child;
}

// ---- backends -------------------------------------------------------------------------------

/** The origin server all targets forward to (pinned to the load core). */
export async function startBackend(kind, { cpu, root, tmp }) {
  if (kind === 'auto') kind = nginxBin() ? 'nginx' : 'node';
  const port = await freePort();
  if (kind === 'node') {
    const child = await startNodeScript(
      'backend',
      cpu,
      path.join(root, 'bench/backend.mjs'),
      [String(port)],
      root,
      { BENCH_BODY_BYTES: String(Buffer.byteLength(BODY)) },
    );
    await verify(port);
    return { kind, port, child, describe: `node:http (bench/backend.mjs, Node ${process.version})` };
  }
  if (kind === 'nginx') {
    const nginx = nginxBin();
    if (!nginx)
      throw new Error(
        '--backend nginx but nginx is not installed (apt-get install -y nginx); use --backend node',
      );
    const dir = mkdtempSync(path.join(tmp, 'backend-nginx-'));
    const conf = nginxBackendConfig({ dir, port });
    const child = await startNginx('backend-nginx', cpu, dir, conf, port);
    return {
      kind,
      port,
      child,
      describe: `${version(nginx, ['-v']).replace(/^nginx version:\s*/, '')} serving a static \`return 200\` (1 worker)`,
    };
  }
  throw new Error(`unknown backend ${kind}`);
}

// ---- targets --------------------------------------------------------------------------------

/**
 * Each target: name, label, isProxy, unavailable() → reason string if it cannot run here,
 * version(), start(ctx) → { port, child } (child = root of the process tree we measure).
 * ctx = { cpu, root, tmp, backendPort }.
 */
/** A small Node proxy from bench/peers/, started as `node SCRIPT <port> <backend url>`. */
function nodePeer(name, label, pkg, script) {
  return {
    name,
    label,
    isProxy: true,
    unavailable: () => undefined,
    version: (ctx) => {
      try {
        const v = execFileSync(process.execPath, ['-p', `require('${pkg}/package.json').version`], {
          cwd: ctx.root,
          encoding: 'utf8',
        });
        return `${pkg} ${v.trim()}`;
      } catch {
        return 'unknown';
      }
    },
    async start(ctx) {
      const port = await freePort();
      const child = await startNodeScript(
        name,
        ctx.cpu,
        path.join(ctx.root, 'bench/peers', script),
        [String(port), `http://127.0.0.1:${ctx.backendPort}`],
        ctx.root,
      );
      await verify(port);
      rememberTree(child);
      return { port, child };
    },
  };
}

/**
 * A FiberLB target. `cliPath()` overrides dist/cli.js; `needsCli` makes the target unavailable
 * (skipped, not failed) when no path is given — the baseline build exists only with --baseline.
 */
function fiberlbTarget(name, label, cliPath, needsCli = false, cfg = {}) {
  return {
    name,
    label,
    isProxy: true,
    cpu: cfg.cpu,
    // A missing dist/ is reported as a start failure, not a skip.
    unavailable: () => (needsCli && !cliPath() ? 'no baseline build (use --baseline REV)' : undefined),
    version: (ctx) => {
      if (process.env.FIBERLB_BASE_REV && needsCli) return `git ${process.env.FIBERLB_BASE_REV}`;
      try {
        return `git ${execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ctx.root, encoding: 'utf8' }).trim()}${execFileSync('git', ['status', '--porcelain', 'src'], { cwd: ctx.root, encoding: 'utf8' }).trim() ? '+dirty' : ''}`;
      } catch {
        return 'unknown';
      }
    },
    async start(ctx) {
      const cli = cliPath() ? path.resolve(cliPath()) : path.join(ctx.root, 'dist/cli.js');
      if (!existsSync(cli))
        throw new Error(`${cli} not found — run \`npm run build\` first (or \`npm run bench\`)`);
      const dir = mkdtempSync(path.join(ctx.tmp, 'fiberlb-'));
      const [port, adminPort] = [await freePort(), await freePort()];
      // BENCH_FIBERLB_LISTENER: one YAML line added to the fiberlb target's listener only (not
      // the baseline's), e.g. a rate_limit that is never hit, to measure what it costs.
      const { accessLog, ...rest } = cfg;
      const listenerExtra =
        rest.listenerExtra ?? (needsCli ? '' : (process.env.BENCH_FIBERLB_LISTENER ?? ''));
      const conf = fiberlbConfig({
        dir,
        port,
        adminPort,
        backendPort: ctx.backendPort,
        listenerExtra,
        accessLog: accessLog ? path.join(dir, 'access.log') : undefined,
        ...rest,
      });
      const child = spawnPinned(name, ctx.cpu, process.execPath, [cli, 'run', '--config', conf], {
        cwd: ctx.root,
        env: { NODE_ENV: 'production' },
      });
      // Ready = admin /healthz answers 200 (workers ready), or — if the admin API is not there —
      // the proxied port answers GET / with the backend's body.
      const deadline = Date.now() + 20_000;
      let ready = false;
      while (!ready && Date.now() < deadline) {
        if (child.exitCode !== null || child.signalCode !== null) break;
        try {
          ready = (await httpGet(adminPort, '/healthz', '127.0.0.1', 500)).status === 200;
        } catch {}
        if (!ready) {
          try {
            if (checkHttp === true) {
              const r = await httpGet(port, '/', '127.0.0.1', 500);
              ready = r.status === 200 && r.body === BODY;
            }
          } catch {}
        }
        if (!ready) await sleep(100);
      }
      try {
        if (!ready)
          throw new Error(
            child.exitCode !== null || child.signalCode !== null
              ? `exited (${child.exitCode ?? child.signalCode})`
              : 'not ready after 20 s',
          );
        await verify(port);
      } catch (e) {
        await stop(child);
        throw new Error(`${e.message}\n${outputTail(child)}`);
      }
      await sleep(200); // let every worker finish its own start-up
      rememberTree(child);
      return { port, child };
    },
  };
}

export const TARGETS = [
  {
    name: 'direct',
    label: 'direct (backend, no proxy)',
    isProxy: false,
    unavailable: () => undefined,
    version: () => 'n/a',
    async start(ctx) {
      return { port: ctx.backendPort, child: undefined };
    },
  },
  fiberlbTarget('fiberlb', 'FiberLB (1 worker)', () => process.env.FIBERLB_CLI),
  // Same build as `fiberlb` from another commit (--baseline REV): the before/after of a change
  // measured in one run. Unavailable unless FIBERLB_BASE_CLI is set (run.mjs sets it).
  fiberlbTarget('fiberlb-base', 'FiberLB baseline (1 worker)', () => process.env.FIBERLB_BASE_CLI, true),
  // The current build with every request in an access log file (the cost of access logs).
  fiberlbTarget(
    'fiberlb-log',
    'FiberLB + access log to a file (1 worker)',
    () => process.env.FIBERLB_CLI,
    false,
    VARIANTS.log,
  ),
  // The current build with what issue 7 adds switched on: an active http health check, passive
  // outlier detection, retries on 502/503, slow start and a circuit breaker (none of them hit).
  fiberlbTarget(
    'fiberlb-health',
    'FiberLB + health checks, outliers, retries (1 worker)',
    () => process.env.FIBERLB_CLI,
    false,
    VARIANTS.health,
  ),
  // The current build with a rate limit that is never hit (rate and burst 1,000,000/s).
  fiberlbTarget(
    'fiberlb-ratelimit',
    'FiberLB + rate limit, not hit (1 worker)',
    () => process.env.FIBERLB_CLI,
    false,
    VARIANTS.ratelimit,
  ),
  nodePeer('undici', 'undici Pool.stream (minimal)', 'undici', 'undici-stream.mjs'),
  nodePeer('http-proxy-3', 'http-proxy-3 (keep-alive agent)', 'http-proxy-3', 'http-proxy-3.mjs'),
  {
    name: 'haproxy',
    label: 'HAProxy (nbthread 1)',
    mode: 'http',
    isProxy: true,
    unavailable: () => (haproxyBin() ? undefined : 'haproxy not installed (apt-get install -y haproxy)'),
    version: () =>
      version(haproxyBin(), ['-v'])
        .replace(/ - https?:.*$/, '')
        .replace(/^HAProxy version /, 'haproxy '),
    async start(ctx) {
      const dir = mkdtempSync(path.join(ctx.tmp, 'haproxy-'));
      const port = await freePort();
      const conf = haproxyConfig({ dir, port, backendPort: ctx.backendPort, mode: this.mode });
      // -db: foreground, no daemon, no master-worker: one process, one thread.
      const child = spawnPinned('haproxy', ctx.cpu, haproxyBin(), ['-db', '-f', conf]);
      try {
        await waitForPort(port, { child });
        await verify(port);
      } catch (e) {
        await stop(child);
        throw new Error(`${e.message}\n${outputTail(child)}`);
      }
      rememberTree(child);
      return { port, child };
    },
  },
  {
    name: 'nginx',
    label: 'NGINX (1 worker)',
    isProxy: true,
    unavailable: () => (nginxBin() ? undefined : 'nginx not installed (apt-get install -y nginx)'),
    version: () => version(nginxBin(), ['-v']).replace(/^nginx version:\s*/, ''),
    async start(ctx) {
      const dir = mkdtempSync(path.join(ctx.tmp, 'nginx-'));
      const port = await freePort();
      const conf = (this.stream ? nginxStreamConfig : nginxProxyConfig)({
        dir,
        port,
        backendPort: ctx.backendPort,
      });
      const child = await startNginx('nginx', ctx.cpu, dir, conf, port);
      return { port, child };
    },
  },
];

// ---- more targets, used by scenarios (not by the default http-small run) --------------------

const byName = (n) => TARGETS.find((t) => t.name === n);
TARGETS.push(
  fiberlbTarget('fiberlb-tcp', 'FiberLB tcp listener (1 worker)', () => process.env.FIBERLB_CLI, false, {
    protocol: 'tcp',
  }),
  nodePeer('node-pipe', 'node:net pipe (minimal)', 'undici', 'net-pipe.mjs'),
  fiberlbTarget('fiberlb-udp', 'FiberLB udp listener (1 worker)', () => process.env.FIBERLB_CLI, false, {
    protocol: 'udp',
  }),
  nodePeer('udp-relay', 'node:dgram relay (minimal)', 'undici', 'udp-relay.mjs'),
  { ...byName('haproxy'), name: 'haproxy-tcp', label: 'HAProxy mode tcp (nbthread 1)', mode: 'tcp' },
  {
    ...byName('nginx'),
    name: 'nginx-stream',
    label: 'NGINX stream (1 worker)',
    stream: true,
    unavailable: () =>
      !nginxBin()
        ? 'nginx not installed (apt-get install -y nginx)'
        : !existsSync(NGINX_STREAM_MODULE)
          ? `no ${NGINX_STREAM_MODULE} (apt-get install -y libnginx-mod-stream)`
          : undefined,
  },
  fiberlbTarget('fiberlb-10-routes', 'FiberLB, 10 routes', () => process.env.FIBERLB_CLI, false, {
    routes: 10,
  }),
  fiberlbTarget('fiberlb-10k-routes', 'FiberLB, 10,000 routes', () => process.env.FIBERLB_CLI, false, {
    routes: 10_000,
  }),
  fiberlbTarget('fiberlb-w1', 'FiberLB, 1 worker on 2 cores', () => process.env.FIBERLB_CLI, false, {
    workers: 1,
    cpu: '0,1',
  }),
  fiberlbTarget('fiberlb-w2', 'FiberLB, 2 workers on 2 cores', () => process.env.FIBERLB_CLI, false, {
    workers: 2,
    cpu: '0,1',
  }),
);
// node-pipe's version is Node's own.
byName('node-pipe').version = () => `node ${process.version}`;
byName('udp-relay').version = () => `node ${process.version}`;

export { outputTail };
