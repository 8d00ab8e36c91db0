// --baseline REV: build FiberLB at another commit into the run's temp dir, so the `fiberlb-base`
// target measures the same scenario before a change, interleaved with `fiberlb` in one run.
import { execFileSync } from 'node:child_process';
import { existsSync, symlinkSync } from 'node:fs';
import path from 'node:path';

export function buildBaseline(root, rev, tmp, log) {
  const git = (...args) => execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim();
  const short = git('rev-parse', '--short', rev);
  const dir = path.join(tmp, `baseline-${short}`);
  log(`baseline: building ${short} in ${dir}`);
  git('worktree', 'add', '--detach', dir, short);
  process.on('exit', () => {
    try {
      execFileSync('git', ['worktree', 'remove', '--force', dir], { cwd: root, stdio: 'ignore' });
    } catch {}
  });
  // Same dependencies as the checkout (a baseline that changed them needs its own npm ci).
  symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  execFileSync(path.join(root, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.build.json'], {
    cwd: dir,
    stdio: 'inherit',
  });
  const cli = path.join(dir, 'dist/cli.js');
  if (!existsSync(cli)) throw new Error(`baseline build of ${short} produced no dist/cli.js`);
  return { cli, rev: short };
}
