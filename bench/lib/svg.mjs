// A hand-written horizontal bar chart (no dependency): one bar per target, a min–max whisker
// when the value is a median over rounds.
const esc = (s) =>
  String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export function barChart({ title, metric, bars }) {
  const W = 760;
  const labelW = 260;
  const rowH = 28;
  const T = 50;
  const H = T + bars.length * rowH + 30;
  const pw = W - labelW - 90;
  const max = Math.max(1e-9, ...bars.map((b) => Math.max(b.value ?? 0, b.max ?? 0)));
  const x = (v) => labelW + (v / max) * pw;
  const fmt = (v) => (v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(v >= 10 ? 1 : 2));
  const o = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<title>${esc(title)}</title>`,
    `<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="10" y="20" font-size="14">${esc(title)}</text>`,
    `<text x="10" y="38" fill="#555555">${esc(metric)}</text>`,
  ];
  bars.forEach((b, i) => {
    const y = T + i * rowH;
    o.push(`<g class="bar" data-label="${esc(b.label)}" data-value="${b.value}">`);
    o.push(`<text x="${labelW - 8}" y="${y + 16}" text-anchor="end">${esc(b.label)}</text>`);
    o.push(
      `<rect x="${labelW}" y="${y + 4}" width="${(x(b.value) - labelW).toFixed(1)}" height="${rowH - 10}" fill="${/fiberlb/i.test(b.label) ? '#ff7f0e' : '#1f77b4'}"/>`,
    );
    if (b.min != null && b.max != null && b.max > b.min)
      o.push(
        `<line x1="${x(b.min).toFixed(1)}" y1="${y + rowH / 2}" x2="${x(b.max).toFixed(1)}" y2="${y + rowH / 2}" stroke="#000000"/>`,
      );
    o.push(
      `<text x="${(x(Math.max(b.value, b.max ?? 0)) + 6).toFixed(1)}" y="${y + 16}">${fmt(b.value)}</text>`,
    );
    o.push('</g>');
  });
  o.push('</svg>');
  return `${o.join('\n')}\n`;
}
