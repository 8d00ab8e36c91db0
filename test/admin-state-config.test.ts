// admin.state_file: where the admin API's overrides are persisted with the file source. A path
// (relative to the config file), default admin-state.json next to token_file (else
// .fiberlb/admin-state.json next to the config file); not with the
// Chainfire source (actions write the store there); not a directory, not another admin file.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatIssue, parseConfigText } from '../src/config/validate.ts';

const LB = 'load_balancers: []\n';

function parse(text: string) {
  return parseConfigText(text, '/srv/lb/t.yaml', { cpuCount: 2 });
}

function errors(text: string): string[] {
  const r = parse(text);
  assert.equal(r.ok, false, 'expected validation to fail');
  return r.ok ? [] : r.issues.map(formatIssue);
}

describe('admin.state_file', () => {
  test('default next to the token file, else next to the config file; relative paths resolve against it', () => {
    const d = parse(LB);
    assert.ok(d.ok);
    assert.equal(d.config.static.admin.stateFile, '/srv/lb/.fiberlb/admin-state.json');
    const t = parse(`admin: { token_file: /etc/fiberlb/admin.token }\n${LB}`);
    assert.ok(t.ok);
    assert.equal(t.config.static.admin.stateFile, '/etc/fiberlb/admin-state.json');
    const rel = parse(`admin: { state_file: state/overrides.json }\n${LB}`);
    assert.ok(rel.ok);
    assert.equal(rel.config.static.admin.stateFile, '/srv/lb/state/overrides.json');
    const abs = parse(`admin: { state_file: /var/lib/fiberlb/admin.json }\n${LB}`);
    assert.ok(abs.ok);
    assert.equal(abs.config.static.admin.stateFile, '/var/lib/fiberlb/admin.json');
  });

  test('errors name file:line:col and the field', () => {
    assert.deepEqual(errors(`admin: { state_file: 7 }\n${LB}`), [
      '/srv/lb/t.yaml:1:22: admin.state_file: expected a string, got number 7 (quote it: "7")',
    ]);
    assert.deepEqual(errors(`admin: { state_file: state/ }\n${LB}`), [
      '/srv/lb/t.yaml:1:22: admin.state_file: must name a file, not a directory',
    ]);
    assert.deepEqual(errors(`admin: { token_file: a.token, state_file: ./a.token }\n${LB}`), [
      '/srv/lb/t.yaml:1:43: admin.state_file: must not be the token_file or tenant_tokens file',
    ]);
    assert.deepEqual(
      errors(
        `admin: { state_file: s.json }\nsource: { type: chainfire, endpoints: [http://127.0.0.1:2379] }\n${LB}`,
      ),
      [
        '/srv/lb/t.yaml:1:10: admin.state_file: only allowed with source type file (with chainfire, admin actions write the store)',
      ],
    );
  });

  test('no state file with the Chainfire source', () => {
    const r = parse(`source: { type: chainfire, endpoints: [http://127.0.0.1:2379] }\n${LB}`);
    assert.ok(r.ok);
    assert.equal(r.config.static.admin.stateFile, undefined);
  });
});
