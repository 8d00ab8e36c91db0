// Open-loop HTTP/1.1 load generator for `fiberlb capacity`, in-process (the shipped CLI must not
// depend on bench/; bench/lib/loadgen.mjs is the same idea as a child process for the bench).
//
// Open loop: request i of a stage is *scheduled* at start + i / rate, whatever the target does.
// Every ~1 ms timer tick issues the requests whose time has come: on an idle keep-alive
// connection, on a new one (the pool grows on demand up to maxConnections), or — all busy — in a
// FIFO backlog. Latency is counted from the scheduled time, not from when the request got a
// connection: that is the coordinated-omission correction (a stalled target is charged for every
// request it kept waiting, not only for the one it was serving). The generator's own timer lag
// is reported so a client that fell behind can be told apart from a slow target.

import net from 'node:net';

export interface RequestSpec {
  /** Address to connect to (already resolved) and port. */
  address: string;
  port: number;
  /** The whole request, bytes on the wire (head + body), sent once per request. */
  wire: Buffer;
  /** HEAD responses carry no body whatever their content-length says. */
  head: boolean;
}

export interface StageResult {
  rate: number;
  durationS: number;
  /** Requests scheduled in the stage (rate × duration). */
  issued: number;
  /** Responses received (any status). */
  completed: number;
  /** Responses with status ≥ 400. */
  badStatus: number;
  /** Connection failures (refused, reset, closed mid-response). */
  connErrors: number;
  /** Requests with no response within the timeout (in flight or still waiting for a connection). */
  timeouts: number;
  /** (badStatus + connErrors + timeouts) / issued. */
  errorShare: number;
  /** Good responses (status < 400) per second received within the stage's window. */
  achievedRate: number;
  /** Latency percentiles in µs over responses and timeouts (a timeout counts as the timeout). */
  p50Us: number | null;
  p99Us: number | null;
  p999Us: number | null;
  maxUs: number | null;
  /** Deepest backlog (requests due with every connection busy) and connections in use at the end. */
  backlogMax: number;
  connections: number;
  /** How late the generator's ticks were behind the schedule, p99 in ms. */
  tickLagP99Ms: number;
}

export interface GeneratorOptions {
  maxConnections: number;
  timeoutMs: number;
}

/** Percentile (nearest rank) of a sorted array; null when empty. */
export function percentile(sorted: Float64Array, p: number): number | null {
  const n = sorted.length;
  if (n === 0) return null;
  return sorted[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))]!;
}

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

/** Per-stage counters; one instance is live at a time (stages run one after the other). */
class Stage {
  issued = 0;
  settled = 0;
  completed = 0;
  badStatus = 0;
  connErrors = 0;
  timeouts = 0;
  backlogMax = 0;
  lat: Float64Array;
  nLat = 0;
  lags: number[] = [];
  /** Good responses (status < 400) received by the end of the stage's scheduled window. */
  inWindow = 0;
  endUs = 0;
  constructor(capacity: number) {
    this.lat = new Float64Array(capacity);
  }
  record(us: number): void {
    if (this.nLat < this.lat.length) this.lat[this.nLat++] = us;
  }
}

// Response parser states.
const HEAD = 0;
const BODY = 1; // content-length bytes left in `remaining`
const CHUNK_SIZE = 2;
const CHUNK_DATA = 3;
const TRAILER = 4;
const UNTIL_CLOSE = 5; // no length, not chunked: the body ends when the connection closes

class Conn {
  readonly sock: net.Socket;
  ready = false;
  busy = false;
  dead = false;
  timedOut = false;
  dueUs = 0;
  private buf: Buffer | null = null;
  private state = HEAD;
  private remaining = 0;
  private status = 0;
  private closeAfter = false;

  constructor(private readonly gen: Generator) {
    const { address, port } = gen.spec;
    const s = net.connect({ host: address, port });
    s.setNoDelay(true);
    this.sock = s;
    s.on('connect', () => {
      this.ready = true;
      if (this.busy) s.write(gen.spec.wire);
      else gen.onIdle(this);
    });
    s.on('data', (d: Buffer) => this.onData(d));
    s.on('error', () => {}); // 'close' follows and does the accounting
    s.on('close', () => {
      if (this.state === UNTIL_CLOSE && this.busy) this.complete();
      this.dead = true;
      gen.onClose(this, this.busy);
      this.busy = false;
    });
  }

  send(dueUs: number): void {
    this.busy = true;
    this.dueUs = dueUs;
    if (this.ready) this.sock.write(this.gen.spec.wire);
  }

  private onData(d: Buffer): void {
    const buf = this.buf ? Buffer.concat([this.buf, d]) : d;
    this.buf = null;
    let off = 0;
    while (off < buf.length) {
      if (this.state === HEAD) {
        const end = buf.indexOf('\r\n\r\n', off);
        if (end < 0) break;
        const head = buf.toString('latin1', off, end);
        off = end + 4;
        this.status = Number(head.slice(9, 12));
        if (this.status >= 100 && this.status < 200) continue; // 100 Continue etc.: the real head follows
        this.closeAfter = /\r\nconnection:[ \t]*close/i.test(head);
        const cl = /\r\ncontent-length:[ \t]*(\d+)/i.exec(head);
        if (this.gen.spec.head || this.status === 204 || this.status === 304) this.remaining = 0;
        else if (/\r\ntransfer-encoding:[^\r]*chunked/i.test(head)) {
          this.state = CHUNK_SIZE;
          continue;
        } else if (cl) this.remaining = Number(cl[1]);
        else {
          this.state = UNTIL_CLOSE;
          return;
        }
        this.state = BODY;
      }
      if (this.state === BODY) {
        const take = Math.min(this.remaining, buf.length - off);
        off += take;
        this.remaining -= take;
        if (this.remaining === 0) this.complete();
        continue;
      }
      if (this.state === CHUNK_SIZE || this.state === TRAILER) {
        const eol = buf.indexOf('\r\n', off);
        if (eol < 0) break;
        const line = buf.toString('latin1', off, eol);
        off = eol + 2;
        if (this.state === TRAILER) {
          if (line === '') this.complete();
          continue;
        }
        const size = Number.parseInt(line, 16);
        if (size === 0) this.state = TRAILER;
        else {
          this.remaining = size + 2; // data + CRLF
          this.state = CHUNK_DATA;
        }
        continue;
      }
      if (this.state === CHUNK_DATA) {
        const take = Math.min(this.remaining, buf.length - off);
        off += take;
        this.remaining -= take;
        if (this.remaining === 0) this.state = CHUNK_SIZE;
        continue;
      }
      return; // UNTIL_CLOSE: discard
    }
    if (off < buf.length) this.buf = buf.subarray(off);
  }

  private complete(): void {
    const status = this.status;
    const closeAfter = this.closeAfter;
    this.state = HEAD;
    this.status = 0;
    this.closeAfter = false;
    this.busy = false;
    this.gen.onResponse(this, status, this.dueUs);
    if (closeAfter) this.sock.destroy();
    else this.gen.onIdle(this);
  }
}

export class Generator {
  private readonly conns = new Set<Conn>();
  private readonly idle: Conn[] = [];
  private backlog: number[] = []; // scheduled times (µs) of requests waiting for a connection
  private backlogHead = 0;
  private stage: Stage | undefined;
  private readonly timeoutUs: number;

  constructor(
    readonly spec: RequestSpec,
    private readonly opts: GeneratorOptions,
  ) {
    this.timeoutUs = opts.timeoutMs * 1000;
  }

  /** Connections open (or opening) right now. */
  get connectionCount(): number {
    return this.conns.size;
  }

  onIdle(c: Conn): void {
    if (c.dead) return;
    if (this.backlogHead < this.backlog.length) c.send(this.backlog[this.backlogHead++]!);
    else this.idle.push(c);
  }

  onResponse(_c: Conn, status: number, dueUs: number): void {
    const st = this.stage;
    if (!st) return;
    st.settled++;
    st.completed++;
    const now = nowUs();
    if (status >= 400 || status === 0) st.badStatus++;
    else if (now <= st.endUs) st.inWindow++;
    st.record(now - dueUs);
  }

  onClose(c: Conn, wasBusy: boolean): void {
    this.conns.delete(c);
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
    if (wasBusy && this.stage && !c.timedOut) {
      this.stage.settled++;
      this.stage.connErrors++;
    }
  }

  private issue(dueUs: number): void {
    const st = this.stage!;
    st.issued++;
    const c = this.idle.pop();
    if (c) {
      c.send(dueUs);
      return;
    }
    if (this.conns.size < this.opts.maxConnections) {
      const n = new Conn(this);
      this.conns.add(n);
      n.send(dueUs);
      return;
    }
    this.backlog.push(dueUs);
    const depth = this.backlog.length - this.backlogHead;
    if (depth > st.backlogMax) st.backlogMax = depth;
  }

  /** Requests in flight or waiting longer than the timeout: counted once, connection dropped. */
  private expire(now: number): void {
    const st = this.stage!;
    const limit = now - this.timeoutUs;
    for (const c of this.conns) {
      if (c.busy && !c.timedOut && c.dueUs < limit) {
        c.timedOut = true;
        st.timeouts++;
        st.settled++;
        st.record(this.timeoutUs);
        c.sock.destroy(); // a late answer must not be read as the next request's
      }
    }
    while (this.backlogHead < this.backlog.length && this.backlog[this.backlogHead]! < limit) {
      this.backlogHead++;
      st.timeouts++;
      st.settled++;
      st.record(this.timeoutUs);
    }
    if (this.backlogHead > 4096 && this.backlogHead * 2 > this.backlog.length) {
      this.backlog = this.backlog.slice(this.backlogHead);
      this.backlogHead = 0;
    }
  }

  /**
   * One stage at a fixed rate for durationMs, then wait until every request of the stage has
   * an outcome (answered, failed or timed out: bounded by the timeout). `progress` is called
   * every ~250 ms with the stage so far.
   */
  async run(
    rate: number,
    durationMs: number,
    progress?: (p: { elapsedMs: number; completed: number; errors: number }) => void,
  ): Promise<StageResult> {
    const total = Math.floor((rate * durationMs) / 1000);
    const st = new Stage(total + 16);
    this.stage = st;
    const startUs = nowUs();
    const endUs = startUs + durationMs * 1000;
    st.endUs = endUs;
    let scheduled = 0;
    let lastExpire = startUs;
    let lastProgress = startUs;
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const now = nowUs();
        // Request i is scheduled at start + i / rate (i = 0 … total-1): the count due by now.
        const due = Math.min(total, Math.floor(((now - startUs) * rate) / 1e6) + 1);
        if (due > scheduled) st.lags.push((now - (startUs + (scheduled * 1e6) / rate)) / 1000);
        while (scheduled < due) {
          this.issue(startUs + (scheduled * 1e6) / rate);
          scheduled++;
        }
        if (now - lastExpire >= 20_000) {
          lastExpire = now;
          this.expire(now);
        }
        if (progress && now - lastProgress >= 250_000) {
          lastProgress = now;
          progress({
            elapsedMs: (now - startUs) / 1000,
            completed: st.completed,
            errors: st.badStatus + st.connErrors + st.timeouts,
          });
        }
        if (scheduled >= total && (now >= endUs || total === 0) && st.settled >= st.issued) {
          clearInterval(timer);
          resolve();
        }
      }, 1);
    });
    this.stage = undefined;
    const lat = st.lat.subarray(0, st.nLat).sort();
    const lags = Float64Array.from(st.lags).sort();
    const errors = st.badStatus + st.connErrors + st.timeouts;
    return {
      rate,
      durationS: durationMs / 1000,
      issued: st.issued,
      completed: st.completed,
      badStatus: st.badStatus,
      connErrors: st.connErrors,
      timeouts: st.timeouts,
      errorShare: st.issued ? errors / st.issued : 0,
      achievedRate: st.inWindow / (durationMs / 1000),
      p50Us: percentile(lat, 50),
      p99Us: percentile(lat, 99),
      p999Us: percentile(lat, 99.9),
      maxUs: lat.length ? lat[lat.length - 1]! : null,
      backlogMax: st.backlogMax,
      connections: this.conns.size,
      tickLagP99Ms: percentile(lags, 99) ?? 0,
    };
  }

  close(): void {
    for (const c of this.conns) c.sock.destroy();
    this.conns.clear();
    this.idle.length = 0;
  }
}
