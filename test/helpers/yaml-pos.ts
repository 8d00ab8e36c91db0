// Where in a YAML document a config issue must point, computed from the document text itself
// (not from the validator), so a test can assert the exact file:line:col of an error.
import assert from 'node:assert/strict';

/** "line:col" (1-based) of `needle` in `text`; it must occur exactly once. */
export function where(text: string, needle: string): string {
  const i = text.indexOf(needle);
  assert.ok(i >= 0 && text.indexOf(needle, i + 1) < 0, `'${needle}' must occur exactly once`);
  const before = text.slice(0, i).split('\n');
  return `${before.length}:${before[before.length - 1]!.length + 1}`;
}

/** "line:col" just after `prefix` (it must occur exactly once): where the value after it starts. */
export function whereAfter(text: string, prefix: string): string {
  const [line, col] = where(text, prefix).split(':').map(Number);
  return `${line}:${col! + prefix.length}`;
}
