/**
 * The workspace packages as a user gets them: `npm pack` ships exactly the built library, its
 * sources (for the source maps) and the docs; publint and arethetypeswrong find nothing wrong; and
 * the tarball, installed into a scratch project in the OS temporary directory (outside this
 * repository, so nothing resolves through the workspace links), works from plain JavaScript ESM
 * in two worker threads: each package's own two-thread check (packages/<name>/test/two-threads.mjs)
 * runs there against the installed copy, and so does its control.
 *
 * Controls: publint and attw must reject a copy of the package whose `types` export names a file
 * that does not exist, and the two-thread check must fail with `--broken` in the scratch project.
 *
 * Needs no network: the packages have no dependencies, so `npm install <tarball> --offline` resolves
 * everything from the tarball, and attw runs with --no-definitely-typed. Packing uses
 * --ignore-scripts: the suite runs after `npm run build`, and a rebuild here would race nothing
 * but would cost seconds.
 */
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'node_modules', '.bin');
const PACKAGES = ['atomics-lock', 'epoch-rcu'] as const;

/** The environment for a child npm: without the npm_* variables of an enclosing `npm test`. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')));
}

type Ran = { readonly status: number | null; readonly out: string; readonly stdout: string };

/** Runs a command to completion without blocking the event loop (ava's timeout keeps working). */
function run(cmd: string, args: readonly string[], cwd: string): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, encoding: 'utf8', env: cleanEnv(), timeout: 90_000 }, (error, stdout, stderr) => {
      const status = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
      resolve({ status, out: `${stdout}${stderr}${error === null ? '' : `\n${error.message}`}`, stdout });
    });
  });
}

/** What `npm pack` must ship: package.json, README, CHANGELOG, each source and its four build outputs. */
function expectedFiles(dir: string): string[] {
  const sources = readdirSync(join(dir, 'src')).filter((f) => f.endsWith('.ts'));
  const built = sources.flatMap((f) => {
    const stem = f.replace(/\.ts$/, '');
    return [`dist/${stem}.js`, `dist/${stem}.js.map`, `dist/${stem}.d.ts`, `dist/${stem}.d.ts.map`];
  });
  return ['CHANGELOG.md', 'README.md', 'package.json', ...sources.map((f) => `src/${f}`), ...built].sort();
}

/** Packs the package into `dest`; returns the tarball's path and the listed files. */
async function pack(t: ExecutionContext, name: string, dest: string, dryRun: boolean): Promise<{ readonly tarball: string; readonly files: string[] }> {
  const args = ['pack', join(ROOT, 'packages', name), '--json', '--ignore-scripts', '--pack-destination', dest, ...(dryRun ? ['--dry-run'] : [])];
  const r = await run('npm', args, dest);
  t.is(r.status, 0, r.out);
  const [info] = JSON.parse(r.stdout) as { filename: string; files: { path: string }[] }[];
  if (info === undefined) throw new Error(`npm pack printed no package: ${r.out}`);
  return { tarball: join(dest, info.filename), files: info.files.map((f) => f.path).sort() };
}

function scratch(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

for (const name of PACKAGES) {
  test.serial(`${name}: npm pack --dry-run lists only the library, its sources and docs`, async (t) => {
    const dir = scratch(`${name}-dry-`);
    try {
      const { files } = await pack(t, name, dir, true);
      t.deepEqual(files, expectedFiles(join(ROOT, 'packages', name)));
      t.false(existsSync(join(dir, `${name}-0.1.0.tgz`)), 'a dry run writes no tarball');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test.serial(`${name}: publint and arethetypeswrong report nothing`, async (t) => {
    const dir = scratch(`${name}-lint-`);
    try {
      const { tarball } = await pack(t, name, dir, false);
      const lint = await run(join(BIN, 'publint'), ['run', '--strict', join(ROOT, 'packages', name)], ROOT);
      t.is(lint.status, 0, lint.out);
      t.regex(lint.out, /All good!/);
      const types = await run(join(BIN, 'attw'), [tarball, '--profile', 'esm-only', '--no-definitely-typed', '--format', 'ascii'], dir);
      t.is(types.status, 0, types.out);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test.serial(`${name}: the packed tarball installs into a scratch project and works from JavaScript in two worker threads`, async (t) => {
    const dir = scratch(`${name}-use-`);
    try {
      const { tarball } = await pack(t, name, dir, false);
      const project = join(dir, 'project');
      cpSync(join(ROOT, 'packages', name, 'test', 'two-threads.mjs'), join(project, 'two-threads.mjs'));
      writeFileSync(join(project, 'package.json'), `${JSON.stringify({ name: 'scratch', private: true, type: 'module' }, null, 2)}\n`);
      const install = await run('npm', ['install', tarball, '--offline', '--no-audit', '--no-fund', '--ignore-scripts'], project);
      t.is(install.status, 0, install.out);
      const installed = join(project, 'node_modules', name);
      t.false(lstatSync(installed).isSymbolicLink(), 'a copy from the tarball, not a link into the repository');
      t.is((JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as { name: string }).name, name);

      const ok = await run(process.execPath, ['two-threads.mjs'], project);
      t.is(ok.status, 0, ok.out);
      const control = await run(process.execPath, ['two-threads.mjs', '--broken'], project);
      t.is(control.status, 1, `the control must fail: ${control.out}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test.serial('control: publint and attw reject a package whose types export names a missing file', async (t) => {
  const dir = scratch('broken-package-');
  try {
    const copy = join(dir, 'atomics-lock');
    const src = join(ROOT, 'packages', 'atomics-lock');
    for (const f of ['package.json', 'README.md', 'CHANGELOG.md', 'dist', 'src']) cpSync(join(src, f), join(copy, f), { recursive: true });
    const manifest = JSON.parse(readFileSync(join(copy, 'package.json'), 'utf8')) as Record<string, unknown>;
    manifest['exports'] = { '.': { types: './dist/missing.d.ts', default: './dist/index.js' } };
    manifest['types'] = './dist/missing.d.ts';
    delete manifest['scripts'];
    writeFileSync(join(copy, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    const lint = await run(join(BIN, 'publint'), ['run', '--strict', copy], dir);
    t.not(lint.status, 0, lint.out);
    t.regex(lint.out, /missing\.d\.ts/);
    const types = await run(join(BIN, 'attw'), ['--pack', copy, '--profile', 'esm-only', '--no-definitely-typed', '--format', 'ascii'], dir);
    t.not(types.status, 0, types.out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
