// package.json and package-lock.json stay honest: `npm ci` installs nothing whose `engines`
// rejects the Node running the tests (or the oldest Node the project declares), and the
// runtime `dependencies` are exactly the packages the built code (dist/) imports.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, join } from 'node:path';
import { test } from 'node:test';
import { ROOT, tempDir } from './helpers/cluster-fiberlb.ts';

interface LockEntry {
  version?: string;
  engines?: { node?: string } | string[];
  optional?: boolean;
}

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  engines: { node: string };
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, LockEntry>;
};

/** npm's own CLI script (the `npm` on PATH, resolved), so it can run under process.execPath. */
function npmCli(): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(dir, 'npm');
    if (dir && existsSync(p)) return realpathSync(p);
  }
  throw new Error('npm is not on the PATH');
}

test('npm ci on this Node reports no unsupported engine (npm itself, --engine-strict)', () => {
  // A copy of the manifest and lock in an empty directory: --dry-run resolves the whole tree
  // from the lock and checks every package's engines without touching node_modules.
  const dir = tempDir('fiberlb-npmci-');
  try {
    copyFileSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
    copyFileSync(join(ROOT, 'package-lock.json'), join(dir, 'package-lock.json'));
    // Run npm's script with the Node under test (FIBERLB_TEST_NODE runs this file on 24 too).
    const r = spawnSync(
      process.execPath,
      [npmCli(), 'ci', '--dry-run', '--engine-strict', '--ignore-scripts', '--no-audit', '--no-fund'],
      { cwd: dir, encoding: 'utf8', timeout: 60_000 },
    );
    const out = `${r.stdout}${r.stderr}`;
    assert.doesNotMatch(out, /EBADENGINE|Unsupported engine|notsup/, out);
    assert.equal(r.status, 0, out);
    assert.match(out, /add undici /, 'the dry run listed the tree it would install');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("every locked package's engines accept the oldest Node package.json declares", () => {
  // npm checks only the running Node; this covers the declared floor (>=20.18.1) as well.
  const semver = createRequire(npmCli())('semver') as {
    minVersion(range: string): { version: string } | null;
    satisfies(v: string, range: string): boolean;
  };
  const floor = semver.minVersion(pkg.engines.node)?.version;
  assert.ok(floor, `package.json engines.node '${pkg.engines.node}' has a lower bound`);
  const rejected: string[] = [];
  let checked = 0;
  for (const [path, entry] of Object.entries(lock.packages)) {
    const range = Array.isArray(entry.engines) ? undefined : entry.engines?.node;
    if (!path || !range) continue;
    checked++;
    if (!semver.satisfies(floor, range)) rejected.push(`${path}@${entry.version}: node ${range}`);
  }
  assert.ok(checked > 10, `checked ${checked} packages with engines.node`);
  assert.deepEqual(rejected, [], `these do not run on Node ${floor}`);
});

function jsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...jsFiles(p));
    else if (name.endsWith('.js')) out.push(p);
  }
  return out;
}

test('runtime dependencies are exactly the packages dist/ imports', () => {
  const dist = join(ROOT, 'dist');
  assert.ok(existsSync(join(dist, 'cli.js')), 'dist/ is built (npm run build)');
  const imported = new Set<string>();
  // Static `from '…'`, side-effect `import '…'`, dynamic `import('…')` and a package loaded on
  // first use, `lazyRequire('…')` (src/shared/lazy-require.ts); relative paths and node:
  // builtins are not packages. A scoped name keeps its scope (@scope/name). The word inside a
  // string literal (`case 'import':`) is not an import.
  const spec = /(?:\bfrom\s*|(?<!['"])\bimport\s*\(?\s*|\blazyRequire\s*\(\s*)['"]([^'"]+)['"]/g;
  for (const file of jsFiles(dist)) {
    for (const m of readFileSync(file, 'utf8').matchAll(spec)) {
      const s = m[1]!;
      if (s.startsWith('.') || s.startsWith('node:') || s.startsWith('/')) continue;
      const parts = s.split('/');
      imported.add(s.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!);
    }
  }
  assert.deepEqual([...imported].sort(), Object.keys(pkg.dependencies).sort());
});
