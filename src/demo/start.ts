// `npm start`: demo backends + FiberLB on config/fiberlb.yaml, then print what to try.
// Ctrl-C stops FiberLB (graceful drain) and the backends.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startDemoBackends } from './backends.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const config = process.argv[2] ?? 'config/fiberlb.yaml';

async function waitHealthy(url: string, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    try {
      if ((await fetch(url)).ok) return true;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

const backends = await startDemoBackends();
console.log(
  'demo backends: http 127.0.0.1:9001 (web-1), :9002 (web-2), :9003 (iam); tcp echo :9004; udp echo :9005',
);
const lb = spawn(process.execPath, [`${root}dist/cli.js`, 'run', '--config', config], {
  cwd: root,
  stdio: 'inherit',
});
const stop = () => lb.kill('SIGTERM');
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
lb.on('exit', async (code) => {
  await backends.close();
  process.exit(code ?? 0);
});

if (await waitHealthy('http://127.0.0.1:9092/healthz', 15_000)) {
  console.log(`
FiberLB is up (config: ${config}). Try:
  curl -s http://127.0.0.1:8080/hello                          # round robin over web-1 / web-2
  curl -s -H 'Host: iam.localhost' http://127.0.0.1:8080/v1/users   # routed to the iam pool
  curl -s http://127.0.0.1:8080/iam/whoami                    # path_prefix route to iam
  echo hello | nc -q1 127.0.0.1 7000                          # TCP listener -> echo backend
  echo hello | nc -u -w1 127.0.0.1 5300                       # UDP listener -> echo backend
  curl -s http://127.0.0.1:9092/healthz                       # admin (loopback)
  kill -HUP ${lb.pid}  or  node dist/cli.js reload           # re-read ${config}
Ctrl-C drains and stops.`);
} else {
  console.error('FiberLB did not become healthy within 15 s; see the log above');
}
