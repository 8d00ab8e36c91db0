// Structured JSON-lines logger. One line per event on stdout (stderr for warn/error), with the
// process role so primary and worker lines can be told apart. No dependency: the hot path
// logs only failures, and those are rate-limited per error class (failure.ts).

export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

const minLevel: number = ORDER[(process.env.FIBERLB_LOG_LEVEL as Level) ?? 'info'] ?? ORDER.info;
let role = 'main';

export function setLogRole(r: string): void {
  role = r;
}

export function log(level: Level, msg: string, fields?: Record<string, unknown>): void {
  if (ORDER[level] < minLevel) return;
  const line = JSON.stringify({
    ts: new Date().toISOString(),
    level,
    role,
    pid: process.pid,
    msg,
    ...fields,
  });
  sink(level, line);
}

export type LogSink = (level: Level, line: string) => void;

const stdio: LogSink = (level, line) => {
  if (ORDER[level] >= ORDER.warn) process.stderr.write(`${line}\n`);
  else process.stdout.write(`${line}\n`);
};
let sink: LogSink = stdio;

/** Send log lines elsewhere (tests capture the lines they provoke); undefined restores stdio. */
export function setLogSink(s: LogSink | undefined): void {
  sink = s ?? stdio;
}
