// What `fiberlb capacity` prints and writes: a table per step, the answer, and an SVG chart
// (offered rate vs p50/p99 latency and error share), hand-written so the tool has no dependency.

import { ms, pct, type RampResult, type Step } from './ramp.ts';

const int = (x: number): string => Math.round(x).toLocaleString('en-US');

export function table(r: RampResult): string {
  const head = [
    'step',
    'offered req/s',
    'achieved req/s',
    'p50 ms',
    'p99 ms',
    'p99.9 ms',
    'errors',
    'verdict',
  ];
  const rows = r.steps.map((s) => [
    String(s.index),
    int(s.rate),
    int(s.achievedRate),
    ms(s.p50Us),
    ms(s.p99Us),
    ms(s.p999Us),
    pct(s.errorShare),
    s.held ? 'held' : `broke: ${s.reasons.join(', ')}`,
  ]);
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : i === 0 ? c.padEnd(width[i]!) : c.padStart(width[i]!)))
      .join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}

export function summary(r: RampResult): string {
  const slo = `p99 ≤ ${r.sloP99Ms} ms, errors ≤ ${pct(r.maxErrorShare)}`;
  const lines: string[] = [];
  if (r.held) lines.push(`capacity: ${int(r.held.rate)} req/s held the SLO (${slo}) at ${r.method} ${r.url}`);
  else lines.push(`capacity: no step held the SLO (${slo}) at ${r.method} ${r.url}`);
  if (r.broke)
    lines.push(`broke at step ${r.broke.index}: ${int(r.broke.rate)} req/s (${r.broke.reasons.join(', ')})`);
  for (const n of r.notes) lines.push(`note: ${n}`);
  return lines.join('\n');
}

const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Tick values for a linear axis 0..max: about `n` round steps. */
function linearTicks(max: number, n = 5): number[] {
  const raw = max / n;
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  const stepv = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = 0; v <= max + 1e-9; v += stepv) out.push(Number(v.toFixed(6)));
  return out;
}

/**
 * x: offered req/s (linear); left y: latency ms (log10, so a 1 ms p50 and a 2 s p99 are both
 * readable); right y: error share (linear). One <g class="step"> per step with its numbers.
 */
export function svg(r: RampResult): string {
  const W = 760;
  const H = 420;
  const L = 64;
  const R = 64;
  const T = 48;
  const B = 56;
  const pw = W - L - R;
  const ph = H - T - B;
  const steps = r.steps;
  const xMax = Math.max(1, ...steps.map((s) => s.rate)) * 1.05;
  const latMs = steps
    .flatMap((s) => [s.p50Us, s.p99Us])
    .filter((x): x is number => x !== null)
    .map((u) => u / 1000);
  const lo = 10 ** Math.floor(Math.log10(Math.max(0.01, Math.min(r.sloP99Ms, ...latMs))));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(r.sloP99Ms * 2, ...latMs)));
  const eMax = Math.max(r.maxErrorShare * 2, ...steps.map((s) => s.errorShare), 0.01);
  const x = (rate: number) => L + (rate / xMax) * pw;
  const yl = (v: number) =>
    T + ph - ((Math.log10(Math.max(lo, v)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * ph;
  const ye = (e: number) => T + ph - (e / eMax) * ph;
  const f = (n: number) => n.toFixed(1);
  const o: string[] = [];
  o.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
  );
  o.push(`<title>${esc(`fiberlb capacity ${r.method} ${r.url}`)}</title>`);
  o.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  o.push(
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${esc(`${r.method} ${r.url} — ${r.held ? `held ${int(r.held.rate)} req/s` : 'no step held'} (p99 ≤ ${r.sloP99Ms} ms, errors ≤ ${pct(r.maxErrorShare)})`)}</text>`,
  );
  // Grid and axes.
  o.push('<g class="axes" stroke="#cccccc" stroke-width="1">');
  for (let d = lo; d <= hi * 1.0001; d *= 10)
    o.push(`<line x1="${L}" y1="${f(yl(d))}" x2="${L + pw}" y2="${f(yl(d))}"/>`);
  for (const t of linearTicks(xMax))
    o.push(`<line x1="${f(x(t))}" y1="${T}" x2="${f(x(t))}" y2="${T + ph}"/>`);
  o.push(`<rect x="${L}" y="${T}" width="${pw}" height="${ph}" fill="none" stroke="#333333"/>`);
  o.push('</g>');
  o.push('<g class="labels" fill="#333333">');
  for (let d = lo; d <= hi * 1.0001; d *= 10)
    o.push(
      `<text x="${L - 6}" y="${f(yl(d) + 4)}" text-anchor="end">${d >= 1 ? d : d.toPrecision(1)}</text>`,
    );
  for (const t of linearTicks(xMax))
    o.push(`<text x="${f(x(t))}" y="${T + ph + 16}" text-anchor="middle">${int(t)}</text>`);
  for (const t of linearTicks(eMax, 4))
    o.push(`<text x="${L + pw + 6}" y="${f(ye(t) + 4)}">${pct(t)}</text>`);
  o.push(`<text x="${L + pw / 2}" y="${H - 14}" text-anchor="middle">offered rate (req/s)</text>`);
  o.push(
    `<text transform="translate(16 ${T + ph / 2}) rotate(-90)" text-anchor="middle">latency (ms, log scale)</text>`,
  );
  o.push(
    `<text transform="translate(${W - 12} ${T + ph / 2}) rotate(90)" text-anchor="middle">error share</text>`,
  );
  o.push('</g>');
  // SLO line and the answer.
  o.push(
    `<line class="slo" x1="${L}" y1="${f(yl(r.sloP99Ms))}" x2="${L + pw}" y2="${f(yl(r.sloP99Ms))}" stroke="#d62728" stroke-dasharray="6 4"/>`,
  );
  o.push(`<text x="${L + 4}" y="${f(yl(r.sloP99Ms) - 4)}" fill="#d62728">SLO p99 ${r.sloP99Ms} ms</text>`);
  if (r.held)
    o.push(
      `<line class="held" x1="${f(x(r.held.rate))}" y1="${T}" x2="${f(x(r.held.rate))}" y2="${T + ph}" stroke="#2ca02c" stroke-width="2"/>`,
    );
  // Series.
  const poly = (cls: string, color: string, pts: Array<[number, number]>, dash = '') =>
    pts.length
      ? `<polyline class="${cls}" fill="none" stroke="${color}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''} points="${pts.map(([a, b]) => `${f(a)},${f(b)}`).join(' ')}"/>`
      : '';
  const withLat = (k: 'p50Us' | 'p99Us') =>
    steps.filter((s) => s[k] !== null).map((s): [number, number] => [x(s.rate), yl(s[k]! / 1000)]);
  o.push(poly('p50', '#1f77b4', withLat('p50Us')));
  o.push(poly('p99', '#ff7f0e', withLat('p99Us')));
  o.push(
    poly(
      'errors',
      '#d62728',
      steps.map((s): [number, number] => [x(s.rate), ye(s.errorShare)]),
      '2 3',
    ),
  );
  for (const s of steps) o.push(stepGroup(s, x, yl, ye));
  // Legend.
  const lg: Array<[string, string, string]> = [
    ['p50', '#1f77b4', ''],
    ['p99', '#ff7f0e', ''],
    ['error share (right axis)', '#d62728', '2 3'],
  ];
  o.push('<g class="legend">');
  lg.forEach(([label, color, dash], i) => {
    const lx = L + 10 + i * 120;
    o.push(
      `<line x1="${lx}" y1="${T - 12}" x2="${lx + 20}" y2="${T - 12}" stroke="${color}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`,
    );
    o.push(`<text x="${lx + 24}" y="${T - 8}">${esc(label)}</text>`);
  });
  o.push('</g>');
  o.push('</svg>');
  return `${o.filter(Boolean).join('\n')}\n`;
}

function stepGroup(
  s: Step,
  x: (r: number) => number,
  yl: (v: number) => number,
  ye: (e: number) => number,
): string {
  const f = (n: number) => n.toFixed(1);
  const tip = esc(
    `step ${s.index}: ${int(s.rate)} req/s offered, ${int(s.achievedRate)} achieved, p50 ${ms(s.p50Us)} ms, p99 ${ms(s.p99Us)} ms, p99.9 ${ms(s.p999Us)} ms, errors ${pct(s.errorShare)}${s.held ? '' : ` — broke: ${s.reasons.join(', ')}`}`,
  );
  const dots = [
    s.p50Us !== null
      ? `<circle cx="${f(x(s.rate))}" cy="${f(yl(s.p50Us / 1000))}" r="3" fill="#1f77b4"/>`
      : '',
    s.p99Us !== null
      ? `<circle cx="${f(x(s.rate))}" cy="${f(yl(s.p99Us / 1000))}" r="${s.held ? 3 : 5}" fill="${s.held ? '#ff7f0e' : '#d62728'}"/>`
      : '',
    `<circle cx="${f(x(s.rate))}" cy="${f(ye(s.errorShare))}" r="2" fill="#d62728"/>`,
  ].filter(Boolean);
  return `<g class="step" data-step="${s.index}" data-rate="${s.rate}" data-held="${s.held}"><title>${tip}</title>${dots.join('')}</g>`;
}
