/**
 * The control for the dead-code check (`npm run check:dead`, knip): run on a fixture project with
 * one unused file, one unused export and one unused dependency, it must fail and name each of them.
 * Without this, a knip configuration that silently checks nothing (wrong entries, wrong project
 * globs) would pass forever.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const KNIP = fileURLToPath(new URL('../../node_modules/knip/bin/knip.js', import.meta.url));
const FIXTURE = fileURLToPath(new URL('../../native-free-tests/fixtures/dead-code/', import.meta.url));

test('knip reports the unused file, export and dependency of the fixture', (t) => {
  const r = spawnSync(process.execPath, [KNIP, '--directory', FIXTURE, '--no-progress', '--no-config-hints'], { encoding: 'utf8' });
  const out = `${r.stdout}${r.stderr}`;
  t.is(r.status, 1, out);
  t.regex(out, /Unused files[\s\S]*src\/orphan\.ts/);
  t.regex(out, /Unused exports[\s\S]*NOBODY_IMPORTS_THIS/);
  t.regex(out, /Unused dependencies[\s\S]*left-pad/);
  t.notRegex(out, /\bused\b.*src\/used\.ts:1/, 'the export main.ts imports is not reported');
});
