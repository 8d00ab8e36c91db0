// The error catalog is the single source of truth: the README's table must list exactly its
// classes with the same status, side, retriable flag and meaning, in the same order.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ERROR_CATALOG, ERROR_CLASSES, statusForError } from '../src/shared/errors.ts';

function readmeRows(): string[][] {
  const text = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const start = text.indexOf('| class | HTTP | side | retriable | meaning |');
  assert.ok(start >= 0, 'README has the error class table');
  const rows: string[][] = [];
  for (const line of text.slice(start).split('\n').slice(2)) {
    if (!line.startsWith('|')) break;
    rows.push(
      line
        .slice(1, -1)
        .split(' | ')
        .map((c) => c.trim()),
    );
  }
  return rows;
}

test('README error table matches the catalog row for row', () => {
  const expected = Object.entries(ERROR_CATALOG).map(([cls, info]) => [
    `\`${cls}\``,
    info.status === undefined ? '–' : String(info.status),
    info.side,
    info.retriable ? 'yes' : 'no',
    info.meaning,
  ]);
  assert.deepEqual(readmeRows(), expected);
});

test('statusForError reads the catalog; classes without a status answer 502', () => {
  assert.equal(statusForError('no_route'), 404);
  assert.equal(statusForError('queue_timeout'), 503);
  assert.equal(statusForError('unsupported_request'), 501);
  assert.equal(statusForError('client_abort'), 502);
  for (const cls of ERROR_CLASSES) {
    const s = statusForError(cls);
    assert.ok(s >= 400 && s < 600, `${cls} → ${s}`);
  }
});

test('only failures where nothing reached a backend are retriable', () => {
  const retriable = ERROR_CLASSES.filter((c) => ERROR_CATALOG[c].retriable).sort();
  assert.deepEqual(retriable, [
    'no_healthy_backend',
    'queue_full',
    'queue_timeout',
    'upstream_connect_refused',
    'upstream_connect_timeout',
    // A failed handshake: the request never reached the backend's HTTP layer.
    'upstream_tls',
  ]);
  for (const c of ERROR_CLASSES)
    if (ERROR_CATALOG[c].side === 'client') assert.equal(ERROR_CATALOG[c].retriable, false);
});
