// Runs autocannon (programmatic API) and prints its result as one JSON line, plus this
// process's own CPU time (so the harness can tell the load generator's CPU from foreign load).
// Usage: node bench/lib/ac-runner.mjs <url> <connections> <durationS> [{"method":"POST","bodyBytes":N}]
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(path.join(path.dirname(fileURLToPath(import.meta.url)), '../../package.json'));
const autocannon = require('autocannon');
const [url, connections, duration, request] = process.argv.slice(2);
const shape = request ? JSON.parse(request) : {};
const result = await autocannon({
  url,
  connections: Number(connections),
  duration: Number(duration),
  pipelining: 1,
  ...(shape.method ? { method: shape.method } : {}),
  ...(shape.bodyBytes ? { body: Buffer.alloc(shape.bodyBytes, 'x') } : {}),
});
const cpu = process.cpuUsage();
process.stdout.write(`${JSON.stringify({ ...result, selfCpuUs: cpu.user + cpu.system })}\n`);
