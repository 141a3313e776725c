// `npm run emulate` option parsing and validation: every option validated with a one-line error
// naming it (ERR_INVALID_OPTION, exit code 2 from the CLI), sizes, defaults, --help, geometry
// checks and the too-big refusal (with bytes needed and available), in-process and via the CLI.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { resolveRunConfig } from '../src/emulate/config.js';
import { DEFAULTS, helpText, OPTION_SPECS, parseCommandLine, parseSize, resolveOptions } from '../src/emulate/options.js';
import type { EmulateOptions } from '../src/emulate/options.js';
import { errorCode } from '../src/errors.js';

const MAIN = fileURLToPath(new URL('../src/emulate/main.js', import.meta.url));

function opts(...argv: string[]): EmulateOptions {
  const c = parseCommandLine(argv);
  if (c.kind !== 'run') throw new Error('expected a run');
  return resolveOptions(c.raw);
}

function optionError(argv: string[]): { code: string | undefined; message: string } {
  try {
    opts(...argv);
  } catch (err) {
    return { code: errorCode(err), message: (err as Error).message };
  }
  throw new Error(`expected ${argv.join(' ')} to be refused`);
}

test("defaults are the selftest's, except -s anonymous_thp and a modest -b", (t) => {
  const o = opts();
  t.is(o.vcpus, 1);
  t.is(o.iterations, 2);
  t.is(o.backing, 'anonymous_thp');
  t.is(o.writePercent, 100);
  t.is(o.memslots, 1);
  t.is(o.seed, 1);
  t.true(o.manualProtect);
  t.false(o.randomAccess);
  t.false(o.vcpusRunDuringDisable);
  t.is(o.levels, 4);
  t.true(o.eagerSplit);
  t.is(o.splitAlloc, 'drop-always');
  t.is(o.memoryPerVcpuBytes, DEFAULTS.memoryPerVcpuBytes);
  t.true(Object.isFrozen(DEFAULTS));
});

test('short and long flags set the same options', (t) => {
  const a = opts('-v', '3', '-b', '10M', '-i', '4', '-s', 'anonymous', '-w', '50', '-a', '-g', '-e', '-x', '2', '-r', '7');
  const b = opts(
    '--vcpus',
    '3',
    '--memory-per-vcpu',
    '10M',
    '--iterations',
    '4',
    '--backing',
    'anonymous',
    '--write-percent',
    '50',
    '--random-access',
    '--no-manual-protect',
    '--evil',
    '--memslots',
    '2',
    '--seed',
    '7',
  );
  t.deepEqual(a, b);
  t.is(a.vcpus, 3);
  t.is(a.memoryPerVcpuBytes, 10 * 2 ** 20);
  t.false(a.manualProtect);
  t.true(a.randomAccess);
  t.true(a.vcpusRunDuringDisable);
  const c = opts('--levels', '5', '--eager-split', 'off', '--pressure', 'heavy', '--json', 'x.json', '--quiet', '--steady', '--steady-seconds', '0.5');
  t.is(c.levels, 5);
  t.false(c.eagerSplit);
  t.is(c.pressure, 'heavy');
  t.is(c.json, 'x.json');
  t.true(c.quiet && c.steady);
  t.is(c.steadySeconds, 0.5);
});

test('sizes take K/M/G/T suffixes and must be whole 4K pages', (t) => {
  t.is(parseSize('-b', '10M'), 10 * 2 ** 20);
  t.is(parseSize('-b', '3G'), 3 * 2 ** 30);
  t.is(parseSize('-b', '3g'), 3 * 2 ** 30);
  t.is(parseSize('-b', '512KiB'), 512 * 1024);
  t.is(parseSize('-b', '8192'), 8192);
  t.is(parseSize('-b', '1T'), 2 ** 40);
  for (const bad of ['', '10X', '-1M', '1.5G', '100', '0', 'G']) {
    const err = t.throws(() => parseSize('-b', bad));
    t.is(errorCode(err), 'ERR_INVALID_OPTION', bad);
    t.regex(err?.message ?? '', /^-b: /, bad);
  }
});

test('every bad value is refused with one line naming the option', (t) => {
  const cases: [string[], RegExp][] = [
    [['-v', '0'], /^-v\/--vcpus: /],
    [['-v', 'many'], /^-v\/--vcpus: /],
    [['-v', '100000'], /^-v\/--vcpus: /],
    [['-b', '10X'], /^-b\/--memory-per-vcpu: /],
    [['-i', '1'], /^-i\/--iterations: must be between 2/],
    [['-s', 'shmem'], /^-s\/--backing: unknown backing "shmem"/],
    [['-w', '101'], /^-w\/--write-percent: /],
    [['-x', '0'], /^-x\/--memslots: /],
    [['-r', '-3'], /^-r: /],
    [['-r', 'abc'], /^-r\/--seed: /],
    [['--levels', '3'], /^--levels: expected 4 or 5/],
    [['--eager-split', 'yes'], /^--eager-split: expected on or off/],
    [['--split-alloc', 'nonsense'], /^--split-alloc: unknown design "nonsense"; expected one of .*drop-always/],
    [['--pressure', ''], /^--pressure: /],
    [['--json', ''], /^--json: /],
    [['--watchdog', 'soon'], /^--watchdog: /],
    [['--steady-seconds', '2'], /^--steady-seconds: only meaningful with --steady/],
    [['--bogus'], /^--bogus: unknown option/],
    [['-z'], /^-z: unknown option/],
    [['-v'], /^-v\/--vcpus: value missing/],
    [['--quiet=yes'], /^-q\/--quiet: takes no value/],
    [['stray'], /^stray: unexpected argument/],
  ];
  for (const [argv, re] of cases) {
    const e = optionError(argv);
    t.is(e.code, 'ERR_INVALID_OPTION', argv.join(' '));
    t.regex(e.message, re, argv.join(' '));
    t.false(e.message.includes('\n'), `one line: ${argv.join(' ')}`);
  }
});

test('--help lists every option with its default', (t) => {
  const h = helpText();
  for (const s of OPTION_SPECS) {
    if (s.hidden === true) continue;
    t.true(h.includes(`--${s.long}`), s.long);
    if (s.short !== undefined) t.true(h.includes(`-${s.short}, --${s.long}`), s.long);
    if (s.shownDefault !== undefined) t.true(h.includes(`[default: ${s.shownDefault}]`), `${s.long} default`);
  }
  t.regex(h, /drop-always/);
  t.regex(h, /Exit codes/);
  t.is(parseCommandLine(['--help']).kind, 'help');
  t.is(parseCommandLine(['-h', '-v', '3']).kind, 'help');
});

test('geometry: memslots must hold whole backing pages; the -x/-b named in the error', (t) => {
  const big = 2 ** 50;
  const ok = resolveRunConfig(opts('-v', '4', '-b', '6M', '-x', '3'), null, big);
  t.is(ok.totalPages, 4 * 1536);
  t.is(ok.vm.memslots.length, 3);
  t.deepEqual(
    ok.vm.memslots.map((s) => s.npages),
    [2048, 2048, 2048],
  );
  // Back to back, so vCPU regions are contiguous gfn ranges (memstress layout).
  t.is(ok.vm.memslots[1]!.baseGfn, ok.vm.memslots[0]!.baseGfn + 2048);
  t.deepEqual(ok.regions[2], { firstGfn: ok.vm.memslots[0]!.baseGfn + 2 * 1536, npages: 1536 });
  t.is(ok.vm.workers, 4 + 2);
  t.is(ok.backingLevel, 2);

  let err = t.throws(() => resolveRunConfig(opts('-b', '3M'), null, big));
  t.is(errorCode(err), 'ERR_INVALID_OPTION');
  t.regex(err?.message ?? '', /^-b\/--memory-per-vcpu: .*not a whole number of 2M anonymous_thp pages/);
  err = t.throws(() => resolveRunConfig(opts('-v', '2', '-b', '2M', '-x', '4'), null, big));
  t.regex(err?.message ?? '', /^-x\/--memslots: /);
  err = t.throws(() => resolveRunConfig(opts('-b', '512M', '-s', 'anonymous_hugetlb_1gb'), null, big));
  t.regex(err?.message ?? '', /1G anonymous_hugetlb_1gb pages/);
  err = t.throws(() => resolveRunConfig(opts('-b', '12K', '-x', '5', '-s', 'anonymous'), null, big));
  t.regex(err?.message ?? '', /^-x\/--memslots: .*5 equal memslots/);
  err = t.throws(() => resolveRunConfig(opts('--pressure', 'apocalyptic'), null, big));
  t.regex(err?.message ?? '', /^--pressure: unknown profile/);
  // 4K backing takes any whole number of pages.
  t.is(resolveRunConfig(opts('-b', '12K', '-s', 'anonymous'), null, big).totalPages, 3);
});

test('a guest whose page tables would not fit is refused with bytes needed and available', (t) => {
  const o = opts('-v', '4', '-b', '1G');
  const fits = resolveRunConfig(o, null, 2 ** 40);
  const err = t.throws(() => resolveRunConfig(o, null, fits.neededBytes - 1));
  t.is(errorCode(err), 'ERR_TOO_BIG');
  t.regex(err?.message ?? '', new RegExp(`needs .*\\(${fits.neededBytes} bytes.* only .*\\(${fits.neededBytes - 1} bytes\\) is available`));
  // The footprint follows the geometry: 4 GiB at 4K = 1,048,576 SPTEs = 2,048 leaf tables at least.
  t.true(fits.footprint.tables >= 2048 + 4 + 1);
});

test('CLI: bad options exit 2 with one line on stderr and no stack trace', (t) => {
  for (const argv of [['--vcpus', '0'], ['--bogus'], ['-s', 'nope'], ['-b', '16T', '-v', '8'], ['--json', '/nonexistent-dir/x.json']]) {
    const r = spawnSync(process.execPath, [MAIN, ...argv], { encoding: 'utf8', timeout: 20_000 });
    t.is(r.status, 2, `${argv.join(' ')}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    t.is(lines.length, 1, r.stderr);
    t.regex(lines[0]!, /^emulate: (-[a-z]\/)?--?[a-z-]+: /, r.stderr);
    t.false(/\n\s+at /.test(r.stderr), 'no stack trace');
    t.is(r.stdout, '');
  }
  const big = spawnSync(process.execPath, [MAIN, '-b', '16T', '-v', '8'], { encoding: 'utf8', timeout: 20_000 });
  t.regex(big.stderr, /needs .* bytes.* available/);
  const help = spawnSync(process.execPath, [MAIN, '--help'], { encoding: 'utf8', timeout: 20_000 });
  t.is(help.status, 0);
  t.regex(help.stdout, /--memory-per-vcpu SIZE/);
});
