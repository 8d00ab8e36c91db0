// Load generation for the `h2` scenario: h2load (Debian `nghttp2-client`; native, cheap on the
// load core) when installed, else bench/lib/h2-gen.mjs (Node's http2 client). BENCH_H2_GEN=h2load
// or node forces one (h2load forced but missing → the scenario's targets are skipped);
// H2LOAD_BIN points at another h2load. Both report the same fields, see h2Run().
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLK_TCK, spawnPinned, stop, which } from './proc.mjs';
import { version } from './targets.mjs';

export const h2loadBin = () => (process.env.H2LOAD_BIN ? which(process.env.H2LOAD_BIN) : which('h2load'));

/** → { kind: 'h2load'|'node', describe } or { unavailable: reason }. */
export function h2Generator() {
  const want = process.env.BENCH_H2_GEN ?? 'auto';
  const bin = h2loadBin();
  if (want === 'node' || (want === 'auto' && !bin))
    return { kind: 'node', describe: `bench/lib/h2-gen.mjs (node:http2 client, Node ${process.version})` };
  if (!bin)
    return {
      unavailable: 'h2load not installed (apt-get install -y nghttp2-client), and BENCH_H2_GEN=h2load',
    };
  return { kind: 'h2load', bin, describe: version(bin, ['--version']) };
}

const UNIT_US = { us: 1, ms: 1000, s: 1e6 };
const toUs = (v, u) => Math.round(Number(v) * UNIT_US[u]); // whole µs: h2load prints 2 decimals

/** Parse h2load's summary (the lines after "finished in"). Throws if it has none. */
export function parseH2load(text) {
  const fin = /finished in ([\d.]+)(us|ms|s), ([\d.]+) req\/s/.exec(text);
  const req =
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(
      text,
    );
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(text);
  if (!fin || !req || !codes) throw new Error(`h2load printed no summary: ${text.slice(-600)}`);
  const t = /time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)/.exec(text);
  const [total, started, done, succeeded, failed, errored, timeout] = req.slice(1).map(Number);
  const [c2, c3, c4, c5] = codes.slice(1).map(Number);
  return {
    durationS: toUs(fin[1], fin[2]) / 1e6,
    rps: Number(fin[3]),
    total,
    started,
    done,
    succeeded,
    failed,
    errored,
    timeout,
    status: { '2xx': c2, '3xx': c3, '4xx': c4, '5xx': c5 },
    protocol: /Application protocol: (\S+)/.exec(text)?.[1],
    tlsProtocol: /TLS Protocol: (\S+)/.exec(text)?.[1],
    cipher: /Cipher: (\S+)/.exec(text)?.[1],
    latencyUs: t ? { min: toUs(t[1], t[2]), max: toUs(t[3], t[4]), mean: toUs(t[5], t[6]) } : undefined,
  };
}

/** utime + stime of the waited-for children (cutime, cstime) from a /proc/<pid>/stat line, µs. */
export function childrenCpuUs(statLine) {
  const f = statLine.slice(statLine.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state); cutime and cstime are fields 16 and 17.
  return ((Number(f[13]) + Number(f[14])) * 1e6) / CLK_TCK;
}

async function finish(child, seconds, name) {
  // ref: false — the guard must not keep a finished process alive for its 30 s.
  const guard = sleep((seconds + 30) * 1000, 'timeout', { ref: false });
  const res = await Promise.race([child.exited, guard]);
  if (res === 'timeout') {
    await stop(child, 1000);
    throw new Error(`${name} did not finish within ${seconds + 30} s`);
  }
  return res;
}

/**
 * One closed-loop run of `durationS` against 127.0.0.1:port, pinned to `cpu`:
 * h2: `connections` TLS connections × `streams` concurrent streams (ALPN h2);
 * h1 (the direct run): plain HTTP/1.1, connections × streams connections, one request each in flight.
 * → { generator, rps, total, ok, errors, non2xx, durationS, protocol, latencyUs, selfCpuUs }.
 */
export async function h2Run({ gen, root, cpu, port, connections, streams, durationS, h1 = false }) {
  if (gen.kind === 'h2load') {
    // -T: no connection outlives the run by more than 5 s (a run under heavy load once left
    // h2load waiting on a connection long after its duration).
    const bound = ['-T', String(durationS + 5), '-N', '5'];
    const args = h1
      ? [
          ...bound,
          '--h1',
          '-c',
          String(connections * streams),
          '-m',
          '1',
          '-t',
          '1',
          '-D',
          String(durationS),
          `http://127.0.0.1:${port}/`,
        ]
      : [
          ...bound,
          '-c',
          String(connections),
          '-m',
          String(streams),
          '-t',
          '1',
          '-D',
          String(durationS),
          '--npn-list=h2', // the ALPN list (h2load 1.52 names it npn-list)
          `https://127.0.0.1:${port}/`,
        ];
    // Through sh, so h2load's own CPU can be read afterwards: the shell's cutime/cstime
    // (its waited-for child), printed on stderr after h2load exits.
    const child = spawnPinned('h2load', cpu, '/bin/sh', [
      '-c',
      '"$0" "$@"; rc=$?; cat /proc/$$/stat >&2; exit $rc',
      gen.bin,
      ...args,
    ]);
    const res = await finish(child, durationS, 'h2load');
    const out = child.out.stdout;
    let p;
    try {
      p = parseH2load(out);
    } catch (e) {
      throw new Error(
        `${e.message} (exit ${res.code ?? res.signal}; stderr: ${child.out.stderr.slice(-400)})`,
      );
    }
    const statLine = child.out.stderr.trim().split('\n').pop() ?? '';
    // h2load's "failed" already holds "errored" and the 4xx/5xx answers; "succeeded" the 2xx and
    // 3xx. Counted here: 2xx as done, "failed" + "timeout" as errors ("done" can be a few short
    // of the status counts: streams answered but not finished when time was up).
    const ok = p.status['2xx'];
    return {
      generator: 'h2load',
      rps: ok / p.durationS,
      total: ok,
      ok,
      errors: p.failed + p.timeout,
      non2xx: 0,
      durationS: p.durationS,
      protocol: h1 ? 'http/1.1' : p.protocol,
      tls: h1 ? undefined : `${p.tlsProtocol}/${p.cipher}`,
      latencyUs: p.latencyUs,
      selfCpuUs: /\) /.test(statLine) ? childrenCpuUs(statLine) : undefined,
    };
  }
  if (h1) throw new Error('the node generator has no HTTP/1.1 mode (use autocannon)');
  const child = spawnPinned('h2-gen', cpu, process.execPath, [
    path.join(root, 'bench/lib/h2-gen.mjs'),
    ...['--port', String(port), '--connections', String(connections), '--streams', String(streams)],
    ...['--duration', String(durationS)],
  ]);
  const res = await finish(child, durationS, 'h2-gen');
  const l = child.out.stdout
    .trim()
    .split('\n')
    .reverse()
    .find((x) => x.startsWith('{'));
  if (!l)
    throw new Error(
      `h2-gen printed no JSON (exit ${res.code ?? res.signal}): ${child.out.stderr.slice(-400)}`,
    );
  const r = JSON.parse(l);
  return {
    generator: 'node',
    rps: r.ok / r.durationS,
    total: r.ok,
    ok: r.ok,
    errors: r.errors,
    non2xx: r.non2xx,
    durationS: r.durationS,
    protocol: Object.keys(r.protocols).join(',') || 'none',
    latencyUs: r.latencyUs,
    errorSamples: r.errorSamples,
    selfCpuUs: r.selfCpuUs,
  };
}
