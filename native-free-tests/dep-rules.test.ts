/**
 * The dependency-rule checker (scripts/check-deps.mjs) run on small trees: each broken fixture
 * must fail it with the rule it breaks, the clean fixture must pass (so a checker that always
 * fails is caught too), and so must this repository.
 *
 * The fixtures under native-free-tests/fixtures/dep-rules/ are source text, never compiled: the
 * checker reads them. The test runs from dist/, so paths are taken from the repository root.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHECKER = fileURLToPath(new URL('../../scripts/check-deps.mjs', import.meta.url));
const FIXTURES = fileURLToPath(new URL('../../native-free-tests/fixtures/dep-rules/', import.meta.url));

function checkDeps(root: string): { readonly status: number | null; readonly out: string } {
  const r = spawnSync(process.execPath, [CHECKER, '--root', root], { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test('the clean fixture keeps every rule (the checker can pass)', (t) => {
  const r = checkDeps(`${FIXTURES}clean`);
  t.is(r.status, 0, r.out);
  t.regex(r.out, /dependency rules hold/);
});

/** Each broken fixture, the rule it must be rejected by, and a fragment of the message. */
const BROKEN: readonly { readonly fixture: string; readonly rule: string; readonly names: RegExp }[] = [
  { fixture: 'cycle', rule: 'no-cycle', names: /src\/emulate\/messages\.ts -> src\/vm\.ts -> src\/emulate\/messages\.ts/ },
  { fixture: 'type-cycle', rule: 'no-cycle', names: /src\/vm\.ts/ },
  {
    fixture: 'lock-imports-emulator',
    rule: 'isolated-library',
    names: /packages\/atomics-lock\/src\/rwlock\.ts:2 imports '\.\.\/\.\.\/\.\.\/src\/emulate\/messages\.js'/,
  },
  { fixture: 'rcu-imports-package', rule: 'isolated-library', names: /packages\/epoch-rcu\/src\/index\.ts:1 imports 'tinybench'/ },
  { fixture: 'emulator-imports-package-path', rule: 'package-by-name', names: /src\/vm\.ts:1 imports '\.\.\/packages\/atomics-lock\/src\/index\.js' by path/ },
  { fixture: 'worker-reaches-main-thread', rule: 'worker-no-main-thread', names: /workers\/vcpu\.worker\.ts -> src\/vm\.ts -> src\/thread_pool\.ts/ },
  { fixture: 'main-imports-worker', rule: 'no-import-of-worker', names: /src\/emulate\/run\.ts:3 imports the worker file workers\/vcpu\.worker\.ts/ },
];

for (const { fixture, rule, names } of BROKEN) {
  test(`the ${fixture} fixture fails the ${rule} rule`, (t) => {
    const r = checkDeps(`${FIXTURES}${fixture}`);
    t.is(r.status, 1, r.out);
    t.regex(r.out, new RegExp(`^  ${rule}: `, 'm'));
    t.regex(r.out, names);
  });
}

test('this repository keeps every rule', (t) => {
  const r = checkDeps(ROOT);
  t.is(r.status, 0, r.out);
});
