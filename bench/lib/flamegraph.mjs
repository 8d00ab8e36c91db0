// A flame graph (SVG, no dependency) from a V8 .cpuprofile (node --cpu-prof): one box per
// function on a stack, as wide as the busy samples under it, callers below callees (the
// classic Brendan Gregg layout); idle samples are left out. Colours say whose code it is:
// FiberLB (orange), undici (purple), Node internals (blue), native/GC/program (grey). Hover a
// box for its function, file:line and share. Usage:
//   node bench/lib/flamegraph.mjs FILE.cpuprofile [OUT.svg]   (default: FILE with .svg)
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const esc = (s) =>
  String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Merged call tree: { name, url, line, value (samples), children: Map }. */
function callTree(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const hits = new Map();
  for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
  const root = { name: 'all', url: '', line: 0, value: 0, children: new Map() };
  for (const [id, h] of hits) {
    const leaf = byId.get(id);
    if (leaf.callFrame.functionName === '(idle)') continue;
    const stack = [];
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const f = byId.get(cur).callFrame;
      if (f.functionName === '(root)') break;
      stack.push(f);
    }
    root.value += h;
    let node = root;
    for (let i = stack.length - 1; i >= 0; i--) {
      const f = stack[i];
      const name = f.functionName || '(anonymous)';
      const key = `${name} ${f.url}:${f.lineNumber}`;
      let child = node.children.get(key);
      if (!child) {
        child = { name, url: f.url, line: f.lineNumber + 1, value: 0, children: new Map() };
        node.children.set(key, child);
      }
      child.value += h;
      node = child;
    }
  }
  return root;
}

function colour(url, name) {
  if (url.includes('/dist/') || url.includes('/src/')) return '#f28e2b';
  if (url.includes('/node_modules/undici/')) return '#b07aa1';
  if (url.includes('/node_modules/')) return '#9c755f';
  if (url.startsWith('node:')) return '#4e79a7';
  return name.startsWith('(') ? '#bab0ac' : '#a0cbe8';
}

function shortUrl(url) {
  if (!url) return '';
  if (url.includes('/node_modules/')) return url.split('/node_modules/').pop();
  if (url.includes('/dist/')) return `dist/${url.split('/dist/').pop()}`;
  return url.replace(/^file:\/\//, '');
}

/** The SVG text for `profile`, titled `title`. */
export function flameGraph(profile, title = 'CPU flame graph') {
  const root = callTree(profile);
  const W = 1200;
  const rowH = 17;
  const top = 40;
  let depth = 0;
  const boxes = [];
  const walk = (node, x, d) => {
    depth = Math.max(depth, d);
    const w = (node.value / root.value) * W;
    if (w < 0.3) return; // narrower than a pixel's third: invisible anyway
    boxes.push({ node, x, d, w });
    let cx = x;
    for (const c of [...node.children.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      walk(c, cx, d + 1);
      cx += (c.value / root.value) * W;
    }
  };
  walk(root, 0, 0);
  const H = top + (depth + 1) * rowH + 10;
  const y = (d) => H - 10 - (d + 1) * rowH;
  const o = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="monospace" font-size="11">`,
    `<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="8" y="18" font-family="sans-serif" font-size="14">${esc(title)}</text>`,
    `<text x="8" y="34" font-family="sans-serif" fill="#555555">${root.value} busy samples; width = share of busy CPU; callers below callees. Orange: FiberLB, purple: undici, blue: Node.</text>`,
  ];
  for (const { node, x, d, w } of boxes) {
    const share = ((node.value / root.value) * 100).toFixed(2);
    const where = shortUrl(node.url);
    o.push(
      `<g><title>${esc(node.name)}${where ? ` ${esc(where)}:${node.line}` : ''} (${share}%)</title>` +
        `<rect x="${x.toFixed(1)}" y="${y(d)}" width="${Math.max(0.3, w - 0.5).toFixed(1)}" height="${rowH - 1}" fill="${colour(node.url, node.name)}"/>` +
        (w > 40
          ? `<text x="${(x + 3).toFixed(1)}" y="${y(d) + 12}">${esc(node.name.slice(0, Math.floor((w - 6) / 6.6)))}</text>`
          : '') +
        '</g>',
    );
  }
  o.push('</svg>');
  return `${o.join('\n')}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [file, out = `${file.replace(/\.cpuprofile$/, '')}.svg`] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node bench/lib/flamegraph.mjs FILE.cpuprofile [OUT.svg]');
    process.exit(2);
  }
  writeFileSync(out, flameGraph(JSON.parse(readFileSync(file, 'utf8')), file.split('/').pop()));
  console.log(`wrote ${out}`);
}
