// Every example in README.md and docs/*.md that shows a command and its output is run here,
// and its output compared with what the docs show, so the docs cannot drift from the code.
//
// The format (readable as it is): a fenced block whose first line starts with `$ `. Each `$ `
// line is a command (run by sh in the repo root, stderr merged into stdout); the lines up to
// the next `$ ` line are its output. In the output, `…` stands for text that differs from run
// to run: inside a line it matches any characters, a line of its own matches any lines.
//
// `fiberlb` is the built CLI (dist/cli.js through a PATH entry, as `npm link` would give) and
// `node` is the Node running the tests. Commands against the demo's ports run against a real
// demo (dist/demo/start.js on config/fiberlb.yaml moved to free ports; see helpers/demo.ts),
// and must also be lines of the demo's banner, so README and banner cannot drift either.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CLI, ROOT, tempDir } from './helpers/cluster-fiberlb.ts';
import {
  type DemoConfig,
  demoConfig,
  movePorts,
  type RunningDemo,
  runDemo,
  waitGone,
} from './helpers/demo.ts';

interface Example {
  readonly where: string; // file:line
  readonly command: string; // the `$ ` line without `$ ` (with its # comment)
  readonly output: string[];
}

function examples(file: string): Example[] {
  const lines = readFileSync(file, 'utf8').split('\n');
  const out: Example[] = [];
  let inFence = false;
  let active = false; // inside a fence whose first line is a command
  let current: { where: string; command: string; output: string[] } | undefined;
  lines.forEach((line, i) => {
    if (/^\s*```/.test(line)) {
      inFence = !inFence;
      active = false;
      current = undefined;
      return;
    }
    if (!inFence) return;
    const first = lines[i - 1] !== undefined && /^\s*```/.test(lines[i - 1]!);
    if (first && line.startsWith('$ ')) active = true;
    if (!active) return;
    if (line.startsWith('$ ')) {
      current = { where: `${relative(ROOT, file)}:${i + 1}`, command: line.slice(2), output: [] };
      out.push(current);
    } else current!.output.push(line);
  });
  return out;
}

function docFiles(): string[] {
  const docs = join(ROOT, 'docs');
  return [
    join(ROOT, 'README.md'),
    ...readdirSync(docs)
      .filter((f) => f.endsWith('.md'))
      .map((f) => join(docs, f)),
  ];
}

/** The documented output as a regex: `…` within a line = any characters, alone = any lines. */
function outputPattern(expected: readonly string[]): RegExp {
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const parts = expected.map((l) =>
    l === '…' ? '(?:[^\\n]*\\n)*?' : `${l.split('…').map(esc).join('[^\\n]*?')}\\n`,
  );
  return new RegExp(`^${parts.join('')}$`);
}

const squash = (s: string) => s.trim().replace(/\s+/g, ' ');

const all = docFiles().flatMap(examples);

test('the docs hold runnable examples: README (CLI and demo) and docs/config.md', () => {
  const files = new Set(all.map((e) => e.where.split(':')[0]));
  assert.ok(files.has('README.md') && files.has('docs/config.md'), [...files].join(', '));
  assert.ok(all.some((e) => e.command.startsWith('fiberlb check')));
  assert.ok(all.some((e) => /^(npx )?fiberlb version/.test(e.command)));
  assert.ok(all.some((e) => e.command.startsWith('fiberlb --help')));
  assert.ok(all.some((e) => e.command.startsWith('curl ')));
});

test('the `…` wildcard matches only what it stands for', () => {
  assert.match('fiberlb 0.1.0 (node v20.20.2)\n', outputPattern(['fiberlb 0.1.0 (node v…)']));
  assert.doesNotMatch('fiberlb 0.2.0 (node v20.20.2)\n', outputPattern(['fiberlb 0.1.0 (node v…)']));
  assert.match('a\nb\nc\n', outputPattern(['a', '…']));
  assert.doesNotMatch('a\nb\n', outputPattern(['a']));
  assert.doesNotMatch('a x\n', outputPattern(['a…', 'b']));
});

describe('every documented command prints what the docs show', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let cfg: DemoConfig;
  let demo: RunningDemo | undefined;

  before(async () => {
    dir = tempDir('fiberlb-docs-');
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    // dist/cli.js itself, through its shebang: fails unless the build made it executable.
    symlinkSync(CLI, join(bin, 'fiberlb'));
    symlinkSync(process.execPath, join(bin, 'node'));
    env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
    cfg = await demoConfig(dir);
    demo = runDemo(cfg.file);
    assert.equal(await demo.up, true, `the demo did not come up:\n${demo.output()}`);
  });

  after(async () => {
    await demo?.stop();
    if (cfg) assert.deepEqual(await waitGone(cfg.file, 5_000), [], 'the demo left processes behind');
    rmSync(dir, { recursive: true, force: true });
  });

  for (const ex of all) {
    test(`${ex.where}: $ ${ex.command}`, () => {
      const command = movePorts(ex.command, cfg.ports);
      const onDemo = command !== ex.command;
      if (onDemo) {
        // The command is one the banner prints (ports moved like the demo's config).
        const banner = demo!.output().split('\n').map(squash);
        assert.ok(banner.includes(squash(command)), `not a line of the demo's banner:\n${demo!.output()}`);
      }
      const r = spawnSync('sh', ['-c', `exec 2>&1\n${command}`], {
        cwd: ROOT,
        env,
        encoding: 'utf8',
        timeout: 30_000,
      });
      assert.equal(r.error, undefined);
      const expected = ex.output.map((l) => movePorts(l, cfg.ports));
      assert.match(
        r.stdout,
        outputPattern(expected),
        `${ex.where} shows:\n${ex.output.join('\n')}\nreal:\n${r.stdout}`,
      );
    });
  }
});
