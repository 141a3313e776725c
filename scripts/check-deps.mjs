#!/usr/bin/env node
/**
 * The dependency rules of this repository, checked on the import graph of its TypeScript sources.
 *
 *   node scripts/check-deps.mjs [--root DIR]   exit 0: all rules hold; exit 1: each violation printed
 *
 * Rules (RULES below says why each exists):
 *  - no-cycle: no import cycle between project files (type-only imports count: a cycle of types is
 *    still two modules that cannot be understood, or moved, one without the other);
 *  - isolated-library: the sources of the workspace packages (packages/atomics-lock/src/,
 *    packages/epoch-rcu/src/) import only their own files and node: builtins, so each package
 *    ships with no dependencies;
 *  - package-by-name: nothing outside a workspace package reaches into it by a relative path; the
 *    emulator, its tests and benches import it by its package name (`'atomics-lock'`), through
 *    the `exports` map, as a user of the published package would;
 *  - worker-no-main-thread: no *.worker.ts file reaches, through runtime imports, a main-thread-only
 *    module (MAIN_THREAD_ONLY, plus any module that imports piscina or src/thread_pool.ts);
 *  - no-import-of-worker: nothing imports a *.worker.ts file at run time (a type-only import is
 *    fine); a worker is started from its URL
 *    (`new Worker(new URL('./x.worker.js', import.meta.url))`), never loaded into another thread.
 *
 * The graph comes from a small scanner, not the TypeScript compiler (the native TypeScript 7 has no
 * JavaScript API to parse with): comments are blanked out, then the static `import ... from '...'`,
 * `import '...'`, `export ... from '...'` and `import('...')` forms are read. That is every form this
 * codebase uses. `import type` and `export type` are type-only (erased from the emitted JavaScript);
 * `import { type A }` is not (verbatimModuleSyntax keeps the module load).
 *
 * A workspace package's name (and each subpath of its `exports` map) resolves to the TypeScript
 * source its export is compiled from, so a package import is an edge of the graph like any other.
 *
 * --root points the checker at another tree laid out the same way (the test fixtures under
 * native-free-tests/fixtures/dep-rules/, which must fail it).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The directories scanned, relative to the root. */
const SOURCE_DIRS = ['src', 'workers', 'bench', 'native-free-tests', 'packages'];

/**
 * Never scanned: the dependency-rule fixtures are deliberately broken trees, checked only with
 * --root, and the dead-code fixture is a separate little project of its own.
 */
const SKIP_DIRS = ['native-free-tests/fixtures/dep-rules', 'native-free-tests/fixtures/dead-code'];

/** The workspace packages, as directories relative to the root. */
const PACKAGES_DIR = 'packages';

/**
 * The shipped sources of each workspace package (`<package>/src/`): they import only themselves
 * and node: builtins. A package's tests (`<package>/test/`) may also import their test runner.
 */
const ISOLATED_SOURCE = 'src/';

/**
 * Modules that only make sense on the main thread: the CLI entry points (loading one in a worker
 * would run the CLI again), the run engine that starts workers, the comparison and report writers,
 * and option parsing. Any module that imports piscina or src/thread_pool.ts joins this set.
 */
const MAIN_THREAD_ONLY = [
  'src/emulate/main.ts',
  'src/emulate/run.ts',
  'src/emulate/compare.ts',
  'src/emulate/compare_main.ts',
  'src/emulate/report.ts',
  'src/emulate/report_build.ts',
  'src/emulate/report_json.ts',
  'src/emulate/options.ts',
  'src/emulate/sweep.ts',
  'src/emulate/watchdog.ts',
  'src/emulate/progress.ts',
  'src/emulate/output_file.ts',
  'src/emulate/csv.ts',
  'src/thread_pool.ts',
  'bench/run.ts',
];

/** Imports that put their importer in the main-thread-only set. */
const MAIN_THREAD_MARKERS = ['piscina', 'src/thread_pool.ts'];

/**
 * Deliberate exceptions, each with its reason: { rule, from, to, reason }. `from`/`to` are paths
 * relative to the root, where `*` stands for any run of characters other than '/'. Keep this short:
 * an entry here is a decision, not a way to silence a finding.
 */
const ALLOW = [
  {
    rule: 'no-import-of-worker',
    from: 'native-free-tests/*.test.ts',
    to: 'native-free-tests/fixtures/*.worker.ts',
    reason:
      "a test reads its fixture worker's shared-memory layout constants from the fixture itself; a fixture is a piscina task module whose work runs only when the pool calls its default export",
  },
  {
    rule: 'no-import-of-worker',
    from: 'bench/*.bench.ts',
    to: 'bench/_*.worker.ts',
    reason: "a bench reads its worker's control-word layout from the worker file, whose loop runs only under `!isMainThread`",
  },
];

const WORKER_FILE = /\.worker\.ts$/;

function parseArgs(argv) {
  let root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--root' && argv[i + 1] !== undefined) {
      root = resolve(argv[++i]);
    } else {
      process.stderr.write(`check-deps: unknown argument ${argv[i]} (usage: check-deps.mjs [--root DIR])\n`);
      process.exit(2);
    }
  }
  return { root };
}

/** Every .ts/.mts file under the source directories, as root-relative paths with '/' separators. */
function listSources(root) {
  const out = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const abs = join(dir, name);
      const rel = toRel(root, abs);
      if (SKIP_DIRS.some((s) => rel === s || rel.startsWith(`${s}/`))) continue;
      if (statSync(abs).isDirectory()) {
        if (name !== 'node_modules' && name !== 'dist') walk(abs);
      } else if (/\.m?ts$/.test(name) && !/\.d\.m?ts$/.test(name)) {
        out.push(rel);
      }
    }
  };
  for (const d of SOURCE_DIRS) {
    if (existsSync(join(root, d))) walk(join(root, d));
  }
  return out.sort();
}

function toRel(root, abs) {
  return relative(root, abs).split(sep).join('/');
}

/**
 * The source with comments, and the contents of string and template literals, replaced by spaces
 * (lengths and line breaks kept), so that an import written inside a comment or a string is not read
 * as one. A specifier's text is then read back from the original at the same offsets.
 */
function blankCommentsAndStrings(src) {
  const out = src.split('');
  const blank = (from, to) => {
    for (let k = from; k < to; k++) if (out[k] !== '\n') out[k] = ' ';
  };
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    const n = src[i + 1];
    if (c === '/' && n === '/') {
      const end = src.indexOf('\n', i);
      const stop = end < 0 ? src.length : end;
      blank(i, stop);
      i = stop;
    } else if (c === '/' && n === '*') {
      const end = src.indexOf('*/', i + 2);
      const stop = end < 0 ? src.length : end + 2;
      blank(i, stop);
      i = stop;
    } else if (c === "'" || c === '"' || c === '`') {
      let j = i + 1;
      while (j < src.length && src[j] !== c) {
        if (src[j] === '\\') j++;
        j++;
      }
      blank(i + 1, j);
      i = j + 1;
    } else {
      i++;
    }
  }
  return out.join('');
}

const STATIC_FORM = /(?:^|[;\n}])\s*(import|export)\s+(type\s+)?(?:([^'";]*?)\s*from\s*)?(['"])([^'"\n]+)\4/g;
const DYNAMIC_FORM = /\bimport\(\s*(['"])([^'"\n]+)\1\s*\)/g;

/** The module specifiers of one file: { spec, typeOnly, line }. */
function scanImports(text) {
  const code = blankCommentsAndStrings(text);
  // The match ran on the blanked code; the specifier is the original text between the quotes.
  const specAt = (m) => {
    const end = m.index + m[0].length - 1;
    return text.slice(end - m[m.length - 1].length, end);
  };
  const found = [];
  const lineOf = (index) => code.slice(0, index).split('\n').length;
  for (const m of code.matchAll(STATIC_FORM)) {
    const [, keyword, typeKw, clause] = m;
    const spec = specAt(m);
    // `export const x = 'a'` has no `from`; only `export ... from` and `export * from` re-export.
    if (keyword === 'export' && clause === undefined) continue;
    found.push({ spec, typeOnly: typeKw !== undefined, line: lineOf(m.index + m[0].indexOf(keyword)) });
  }
  for (const m of code.matchAll(DYNAMIC_FORM)) {
    const end = m.index + m[0].lastIndexOf(m[1]);
    found.push({ spec: text.slice(end - m[2].length, end), typeOnly: false, line: lineOf(m.index) });
  }
  return found;
}

const BUILTINS = new Set(builtinModules);

/**
 * The workspace packages under the root: { dir, name, exports: Map(specifier -> source file) }.
 * An export's target `./dist/x.js` is compiled from `src/x.ts` (each package's tsconfig.json).
 */
function workspacePackages(root) {
  const base = join(root, PACKAGES_DIR);
  if (!existsSync(base)) return [];
  const out = [];
  for (const d of readdirSync(base).sort()) {
    const manifest = join(base, d, 'package.json');
    if (!existsSync(manifest)) continue;
    const pkg = JSON.parse(readFileSync(manifest, 'utf8'));
    const dir = `${PACKAGES_DIR}/${d}/`;
    const exports = new Map();
    for (const [sub, target] of Object.entries(pkg.exports ?? {})) {
      const file = typeof target === 'string' ? target : target.default;
      if (typeof file !== 'string' || !file.endsWith('.js')) continue;
      const source = `${dir}${file
        .replace(/^\.\/dist\//, 'src/')
        .replace(/^\.\//, '')
        .replace(/\.js$/, '.ts')}`;
      exports.set(sub === '.' ? pkg.name : `${pkg.name}${sub.slice(1)}`, source);
    }
    out.push({ dir, name: pkg.name, exports });
  }
  return out;
}

/** What a specifier names: a project file, a node builtin, a package, or nothing (unresolved). */
function resolveSpec(root, fromRel, spec, files, packages) {
  if (spec.startsWith('node:') || BUILTINS.has(spec)) return { kind: 'builtin', name: spec };
  for (const p of packages) {
    const source = p.exports.get(spec);
    if (source !== undefined && files.has(source)) return { kind: 'file', name: source, viaPackage: p.name };
  }
  if (!spec.startsWith('.') && !spec.startsWith('/')) {
    const parts = spec.split('/');
    return { kind: 'package', name: spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0] };
  }
  const abs = resolve(root, dirname(fromRel), spec);
  const rel = toRel(root, abs);
  // nodenext: a TypeScript file is imported by the name of the JavaScript it compiles to.
  const candidates = [rel.replace(/\.js$/, '.ts').replace(/\.mjs$/, '.mts'), rel, `${rel}.ts`, `${rel}/index.ts`];
  for (const c of candidates) {
    if (files.has(c)) return { kind: 'file', name: c };
  }
  return { kind: 'unresolved', name: rel };
}

/** The import graph: file -> [{ to, kind, typeOnly, line, spec }]. */
export function buildGraph(root) {
  const list = listSources(root);
  const files = new Set(list);
  const packages = workspacePackages(root);
  const graph = new Map();
  for (const f of list) {
    const edges = scanImports(readFileSync(join(root, f), 'utf8')).map((imp) => {
      const r = resolveSpec(root, f, imp.spec, files, packages);
      return { to: r.name, kind: r.kind, viaPackage: r.viaPackage, typeOnly: imp.typeOnly, line: imp.line, spec: imp.spec };
    });
    graph.set(f, edges);
  }
  return { graph, packages };
}

function pathPattern(glob) {
  return new RegExp(`^${glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`);
}

const ALLOW_PATTERNS = ALLOW.map((a) => ({ rule: a.rule, from: pathPattern(a.from), to: pathPattern(a.to) }));

function allowed(rule, from, to) {
  return ALLOW_PATTERNS.some((a) => a.rule === rule && a.from.test(from) && a.to.test(to));
}

/** Strongly connected components of the project-file graph (Tarjan), those that form a cycle. */
function cycles(graph) {
  let index = 0;
  const idx = new Map();
  const low = new Map();
  const onStack = new Set();
  const stack = [];
  const out = [];
  const succ = (v) => (graph.get(v) ?? []).filter((e) => e.kind === 'file').map((e) => e.to);
  const strong = (v) => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of succ(v)) {
      if (!idx.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v), idx.get(w)));
      }
    }
    if (low.get(v) === idx.get(v)) {
      const comp = [];
      let w;
      do {
        w = stack.pop();
        onStack.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || succ(v).includes(v)) out.push(comp);
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) strong(v);
  return out;
}

/** One concrete cycle through the component, for the message: a -> b -> ... -> a. */
function cyclePath(graph, comp) {
  const inComp = new Set(comp);
  const start = [...comp].sort()[0];
  const prev = new Map([[start, null]]);
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift();
    for (const e of graph.get(v) ?? []) {
      if (e.kind !== 'file' || !inComp.has(e.to)) continue;
      if (e.to === start) {
        const path = [];
        for (let x = v; x !== null; x = prev.get(x)) path.unshift(x);
        return [...path, start];
      }
      if (!prev.has(e.to)) {
        prev.set(e.to, v);
        queue.push(e.to);
      }
    }
  }
  return [...comp, comp[0]];
}

/** Every violation of the rules on the tree at `root`, as one-line messages. */
export function checkTree(root) {
  const { graph, packages } = buildGraph(root);
  const problems = [];
  const report = (rule, from, to, message) => {
    if (!allowed(rule, from, to)) problems.push(`${rule}: ${message}`);
  };

  for (const [from, edges] of graph) {
    for (const e of edges) {
      if (e.kind === 'unresolved') report('unresolved', from, e.to, `${from}:${e.line} imports '${e.spec}', which is not a file of the tree`);
    }
  }

  for (const comp of cycles(graph)) {
    const path = cyclePath(graph, comp);
    const rest = comp.filter((f) => !path.includes(f)).sort();
    report('no-cycle', path[0], path[1], `${path.join(' -> ')}${rest.length > 0 ? ` (the same strongly connected set also holds ${rest.join(', ')})` : ''}`);
  }

  for (const { dir } of packages) {
    const lib = `${dir}${ISOLATED_SOURCE}`;
    for (const [from, edges] of graph) {
      if (!from.startsWith(lib)) continue;
      for (const e of edges) {
        if (e.kind === 'builtin' && e.to.startsWith('node:')) continue;
        if (e.kind === 'file' && e.to.startsWith(lib) && e.viaPackage === undefined) continue;
        report('isolated-library', from, e.to, `${from}:${e.line} imports '${e.spec}' (${e.kind}); ${lib} may import only its own files and node: builtins`);
      }
    }
  }

  for (const [from, edges] of graph) {
    for (const e of edges) {
      if (e.kind !== 'file' || e.viaPackage !== undefined) continue;
      const target = packages.find((p) => e.to.startsWith(p.dir));
      if (target === undefined || from.startsWith(target.dir)) continue;
      report('package-by-name', from, e.to, `${from}:${e.line} imports '${e.spec}' by path; import the package by its name ('${target.name}')`);
    }
  }

  const mainOnly = new Map(MAIN_THREAD_ONLY.filter((f) => graph.has(f)).map((f) => [f, 'listed in MAIN_THREAD_ONLY']));
  for (const [from, edges] of graph) {
    const marker = edges.find((e) => !e.typeOnly && MAIN_THREAD_MARKERS.includes(e.to));
    if (marker !== undefined && !mainOnly.has(from)) mainOnly.set(from, `imports ${marker.to}`);
  }
  for (const worker of [...graph.keys()].filter((f) => WORKER_FILE.test(f))) {
    // Breadth-first over runtime imports, so the reported chain is a shortest one.
    const prev = new Map([[worker, null]]);
    const queue = [worker];
    while (queue.length > 0) {
      const v = queue.shift();
      for (const e of graph.get(v) ?? []) {
        if (e.typeOnly || e.kind !== 'file' || prev.has(e.to)) continue;
        prev.set(e.to, v);
        queue.push(e.to);
      }
    }
    for (const [m, why] of mainOnly) {
      if (!prev.has(m) || m === worker) continue;
      const chain = [];
      for (let x = m; x !== null; x = prev.get(x)) chain.unshift(x);
      report('worker-no-main-thread', worker, m, `${chain.join(' -> ')}: ${m} is main-thread-only (${why})`);
    }
  }

  for (const [from, edges] of graph) {
    for (const e of edges) {
      // A type-only import loads nothing, so it may name a worker's task and result types.
      if (e.kind === 'file' && !e.typeOnly && WORKER_FILE.test(e.to)) {
        report(
          'no-import-of-worker',
          from,
          e.to,
          `${from}:${e.line} imports the worker file ${e.to}; start it from its URL instead (move what both threads need into a shared module)`,
        );
      }
    }
  }
  return { files: graph.size, problems };
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { root } = parseArgs(process.argv.slice(2));
  const { files, problems } = checkTree(root);
  if (problems.length === 0) {
    process.stdout.write(`check-deps: ${files} files, dependency rules hold\n`);
  } else {
    process.stdout.write(`check-deps: ${problems.length} violation(s) in ${files} files under ${root}\n`);
    for (const p of problems) process.stdout.write(`  ${p}\n`);
    process.exitCode = 1;
  }
}
