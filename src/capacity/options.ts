// `fiberlb capacity` flags → CapacityOptions. Every mistake is one CapacityUsageError line.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parseDuration } from '../config/duration.ts';

export const CAPACITY_USAGE = `  fiberlb capacity URL [--slo-p99 50ms] [--max-errors 1%] [--start-rate 100] [--step x1.25|+N]
                   [--stage-duration 2s] [--max-rate 20000] [--max-duration 60s] [--svg FILE]
                   [--json FILE] [--method GET] [--header 'K: V']... [--body TEXT|--body-file F]
                   [--connections 256] [--timeout 2s] [--warmup 1s] [--allow-remote]
                                       ramp an open-loop request rate against URL until p99 or
                                       the error share breaks the SLO; report the highest rate held`;

export class CapacityUsageError extends Error {}

export interface CapacityOptions {
  url: URL;
  sloP99Ms: number;
  maxErrorShare: number;
  startRate: number;
  /** Next stage's rate from the last one. */
  step: { kind: 'factor'; value: number } | { kind: 'add'; value: number };
  stageMs: number;
  warmupMs: number;
  maxRate: number;
  maxDurationMs: number;
  maxConnections: number;
  timeoutMs: number;
  method: string;
  headers: Array<[string, string]>;
  body: Buffer | undefined;
  svgFile: string;
  jsonFile: string | undefined;
  allowRemote: boolean;
}

const DEFAULTS = {
  'slo-p99': '50ms',
  'max-errors': '1%',
  'start-rate': '100',
  step: 'x1.25',
  'stage-duration': '2s',
  warmup: '1s',
  'max-rate': '20000',
  'max-duration': '60s',
  connections: '256',
  timeout: '2s',
  method: 'GET',
  svg: 'fiberlb-capacity.svg',
};

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/; // RFC 9110 token (method, header name)

function duration(flag: string, v: string, min = 1): number {
  const r = parseDuration(v);
  if (!r.ok) throw new CapacityUsageError(`--${flag}: ${r.reason}`);
  if (r.value < min) throw new CapacityUsageError(`--${flag} must be at least ${min}ms, got '${v}'`);
  return r.value;
}

function positive(flag: string, v: string, { integer = false, max = Infinity } = {}): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n)) || n > max)
    throw new CapacityUsageError(
      `--${flag} needs a positive ${integer ? 'integer' : 'number'}${max < Infinity ? ` ≤ ${max}` : ''}, got '${v}'`,
    );
  return n;
}

/** "1%", "0.5%" or a fraction "0.01". */
function share(flag: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)%$/.exec(v);
  const n = m ? Number(m[1]) / 100 : /^\d+(\.\d+)?$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isFinite(n) || n < 0 || n > 1)
    throw new CapacityUsageError(`--${flag} needs a share like 1% or 0.01 (0–100%), got '${v}'`);
  return n;
}

function step(v: string): CapacityOptions['step'] {
  const f = /^[x×*](\d+(?:\.\d+)?)$/.exec(v);
  if (f && Number(f[1]) > 1 && Number(f[1]) <= 10) return { kind: 'factor', value: Number(f[1]) };
  const a = /^\+(\d+(?:\.\d+)?)$/.exec(v);
  if (a && Number(a[1]) > 0) return { kind: 'add', value: Number(a[1]) };
  throw new CapacityUsageError(
    `--step needs a factor like x1.25 (> 1, ≤ 10) or an increment like +500, got '${v}'`,
  );
}

export function parseCapacityArgs(args: string[]): CapacityOptions {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(args);
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION')
      throw new CapacityUsageError(`capacity: unknown option ${/'[^']*'/.exec(e.message)?.[0] ?? ''}`);
    if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE')
      throw new CapacityUsageError(`capacity: ${e.message.split('\n')[0]}`);
    if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL')
      throw new CapacityUsageError('capacity takes one URL');
    throw err;
  }
  const { values: v, positionals } = parsed;
  if (positionals.length === 0)
    throw new CapacityUsageError('capacity needs a URL (e.g. http://127.0.0.1:8080/)');
  if (positionals.length > 1)
    throw new CapacityUsageError(`capacity takes one URL, got ${positionals.length}`);
  let url: URL;
  try {
    url = new URL(positionals[0]!);
  } catch {
    throw new CapacityUsageError(`capacity: '${positionals[0]}' is not a URL (e.g. http://127.0.0.1:8080/)`);
  }
  if (url.protocol === 'https:')
    throw new CapacityUsageError('capacity: https URLs are not supported yet (measure the http listener)');
  if (url.protocol !== 'http:')
    throw new CapacityUsageError(`capacity: ${url.protocol} URLs are not supported`);
  if (url.username || url.password)
    throw new CapacityUsageError('capacity: credentials in the URL are not supported (use --header)');

  const method = v.method!.toUpperCase();
  if (!TOKEN.test(method)) throw new CapacityUsageError(`--method: '${v.method}' is not an HTTP method`);
  const headers: Array<[string, string]> = [];
  for (const h of v.header ?? []) {
    const i = h.indexOf(':');
    const name = i > 0 ? h.slice(0, i).trim() : '';
    const value = i > 0 ? h.slice(i + 1).trim() : '';
    if (!TOKEN.test(name) || /[\r\n\0]/.test(value))
      throw new CapacityUsageError(`--header needs 'Name: value', got '${h}'`);
    if (/^(host|content-length|transfer-encoding|connection)$/i.test(name))
      throw new CapacityUsageError(`--header: ${name} is set by the tool`);
    headers.push([name, value]);
  }
  if (v.body !== undefined && v['body-file'] !== undefined)
    throw new CapacityUsageError('capacity takes --body or --body-file, not both');
  let body: Buffer | undefined;
  if (v.body !== undefined) body = Buffer.from(v.body);
  if (v['body-file'] !== undefined) {
    try {
      body = readFileSync(v['body-file']);
    } catch (err) {
      throw new CapacityUsageError(
        `--body-file ${v['body-file']}: ${(err as NodeJS.ErrnoException).code ?? err}`,
      );
    }
  }

  const sloP99Ms = duration('slo-p99', v['slo-p99']!);
  const timeoutMs = duration('timeout', v.timeout!);
  if (timeoutMs <= sloP99Ms)
    throw new CapacityUsageError(`--timeout (${v.timeout}) must be longer than --slo-p99 (${v['slo-p99']})`);
  const maxRate = positive('max-rate', v['max-rate']!, { max: 1_000_000 });
  const startRate = positive('start-rate', v['start-rate']!, { max: 1_000_000 });
  if (startRate > maxRate)
    throw new CapacityUsageError(`--start-rate (${startRate}) is above --max-rate (${maxRate})`);
  const stageMs = duration('stage-duration', v['stage-duration']!, 200);
  const maxDurationMs = duration('max-duration', v['max-duration']!);
  const warmupMs = v.warmup === '0' ? 0 : duration('warmup', v.warmup!, 0);
  if (warmupMs + stageMs > maxDurationMs)
    throw new CapacityUsageError(
      `--max-duration (${v['max-duration']}) leaves no room for one stage (${v['stage-duration']} after a ${v.warmup} warm-up)`,
    );
  return {
    url,
    sloP99Ms,
    maxErrorShare: share('max-errors', v['max-errors']!),
    startRate,
    step: step(v.step!),
    stageMs,
    warmupMs,
    maxRate,
    maxDurationMs,
    maxConnections: positive('connections', v.connections!, { integer: true, max: 10_000 }),
    timeoutMs,
    method,
    headers,
    body,
    svgFile: v.svg!,
    jsonFile: v.json,
    allowRemote: v['allow-remote'] === true,
  };
}

function parse(args: string[]) {
  const s = (d?: string) =>
    d === undefined ? { type: 'string' as const } : { type: 'string' as const, default: d };
  return parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      'slo-p99': s(DEFAULTS['slo-p99']),
      'max-errors': s(DEFAULTS['max-errors']),
      'start-rate': s(DEFAULTS['start-rate']),
      step: s(DEFAULTS.step),
      'stage-duration': s(DEFAULTS['stage-duration']),
      warmup: s(DEFAULTS.warmup),
      'max-rate': s(DEFAULTS['max-rate']),
      'max-duration': s(DEFAULTS['max-duration']),
      connections: s(DEFAULTS.connections),
      timeout: s(DEFAULTS.timeout),
      method: s(DEFAULTS.method),
      header: { type: 'string', multiple: true },
      body: s(),
      'body-file': s(),
      svg: s(DEFAULTS.svg),
      json: s(),
      'allow-remote': { type: 'boolean', default: false },
    },
  });
}
