// The tests find the server binary where cargo put it: with
// CARGO_TARGET_DIR set, helpers.mjs and scripts/target-dir must both follow it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { ROOT, targetDir } from './helpers.mjs';

const env = (extra) => {
  const e = { ...process.env, ...extra };
  delete e.SYNCROOM_TARGET_DIR;
  return e;
};

test('targetDir follows CARGO_TARGET_DIR, absolute or relative to the workspace', () => {
  assert.equal(targetDir(env({ CARGO_TARGET_DIR: '/tmp/syncroom-elsewhere' })), '/tmp/syncroom-elsewhere');
  assert.equal(targetDir(env({ CARGO_TARGET_DIR: 'build-out' })), path.join(ROOT, 'build-out'));
});

test('targetDir defaults to the workspace target directory', () => {
  const e = env({});
  delete e.CARGO_TARGET_DIR;
  assert.equal(targetDir(e), path.join(ROOT, 'target'));
});

test('SYNCROOM_TARGET_DIR (set by run.sh) wins', () => {
  assert.equal(targetDir({ SYNCROOM_TARGET_DIR: '/tmp/from-run-sh', CARGO_TARGET_DIR: '/tmp/other' }), '/tmp/from-run-sh');
});

test('scripts/target-dir agrees with targetDir', () => {
  const run = (extra) => execFileSync(path.join(ROOT, 'scripts', 'target-dir'), { env: env(extra), encoding: 'utf8' }).trim();
  assert.equal(run({ CARGO_TARGET_DIR: '/tmp/syncroom-elsewhere' }), '/tmp/syncroom-elsewhere');
  assert.equal(run({ CARGO_TARGET_DIR: 'build-out' }), path.join(ROOT, 'build-out'));
});
