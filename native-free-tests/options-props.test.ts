/**
 * Option parsing (src/emulate/options.ts) over random inputs: sizes round-trip through
 * formatSize/parseSize and through the command line; every K/M/G/T spelling the help promises
 * (any case, optional "iB"/"B", a number of bytes without suffix) means its binary unit; integer
 * options accept exactly their documented range; and everything refused is an ERR_INVALID_OPTION
 * (main.ts turns it into exit 2) whose one-line message starts with the option's name.
 *
 * The control: the size round trip over a formatter that rounds down to the largest unit (1536K
 * printed as 1M: the whole-multiple test left out) must be refuted.
 */
import test from 'ava';
import fc from 'fast-check';
import { errorCode } from '../src/errors.js';
import { flagName, formatSize, OPTION_SPECS, parseCommandLine, parseSize, resolveOptions } from '../src/emulate/options.js';
import type { EmulateOptions } from '../src/emulate/options.js';
import { assertProperty, assertRefuted } from './_fc.js';

const RUNS = 300;
const PAGE = 4096;
const UNITS = { k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 } as const;

/** Resolve a command line; the thrown error, if any, is returned (not thrown). */
function resolve(argv: readonly string[]): EmulateOptions | Error {
  try {
    const cmd = parseCommandLine(argv);
    if (cmd.kind !== 'run') throw new Error('help');
    return resolveOptions(cmd.raw);
  } catch (err) {
    return err as Error;
  }
}

/** A refusal as the CLI prints it: ERR_INVALID_OPTION, one line, naming `flag` first. */
function refusedNaming(r: EmulateOptions | Error, flag: string): boolean {
  return r instanceof Error && errorCode(r) === 'ERR_INVALID_OPTION' && r.message.startsWith(`${flag}: `) && !r.message.includes('\n');
}

/** Guest sizes: whole 4K pages up to the 2^52-byte limit, biased toward round binary sizes. */
const sizeArb = fc.oneof(
  fc.integer({ min: 1, max: 2 ** 40 }).map((pages) => pages * PAGE),
  fc
    .tuple(fc.integer({ min: 1, max: 4096 }), fc.constantFrom(...Object.values(UNITS)))
    .map(([n, u]) => n * u)
    .filter((b) => b % PAGE === 0),
);

function sizeRoundTrips(format: (bytes: number) => string) {
  return fc.property(sizeArb, (bytes) => parseSize('-b/--memory-per-vcpu', format(bytes)) === bytes);
}

test('sizes round-trip: parseSize(formatSize(b)) === b, and -b formatSize(b) resolves to b', async (t) => {
  await assertProperty(t, sizeRoundTrips(formatSize), RUNS);
  const viaCli = fc.property(sizeArb, (bytes) => {
    const r = resolve(['-b', formatSize(bytes)]);
    return !(r instanceof Error) && r.memoryPerVcpuBytes === bytes;
  });
  await assertProperty(t, viaCli, RUNS);
});

test('control: a formatter that rounds down to the largest unit is refuted by the round trip', async (t) => {
  const roundingDown = (bytes: number): string => {
    for (const [suffix, unit] of [
      ['T', UNITS.t],
      ['G', UNITS.g],
      ['M', UNITS.m],
      ['K', UNITS.k],
    ] as const) {
      if (bytes >= unit) return `${Math.floor(bytes / unit)}${suffix}`;
    }
    return `${bytes}`;
  };
  await assertRefuted(t, sizeRoundTrips(roundingDown), RUNS);
});

test('every suffix spelling means its binary unit; sizes that are not whole 4K pages or too large are refused naming the option', async (t) => {
  const prop = fc.property(
    fc.integer({ min: 0, max: 2 ** 24 }),
    fc.constantFrom('', 'k', 'm', 'g', 't'),
    fc.constantFrom('', 'b', 'ib'),
    fc.boolean(),
    fc.constantFrom('', ' ', '  '),
    (n, unit, tail, upper, pad) => {
      const suffix = unit === '' && tail === 'ib' ? '' : unit + tail; // "iB" alone is not a unit
      const text = `${pad}${n}${upper ? suffix.toUpperCase() : suffix}${pad}`;
      const bytes = n * (unit === '' ? 1 : UNITS[unit as keyof typeof UNITS]);
      const valid = bytes >= PAGE && bytes % PAGE === 0 && bytes <= 2 ** 52;
      const r = resolve(['-b', text]);
      return valid ? !(r instanceof Error) && r.memoryPerVcpuBytes === bytes : refusedNaming(r, flagName('memory-per-vcpu'));
    },
  );
  await assertProperty(t, prop, RUNS);
});

test('anything that is not a size is refused with one line naming the option', async (t) => {
  const notASize = fc.string({ maxLength: 12 }).filter((s) => !/^\s*\d+\s*[kmgt]?(?:i?b)?\s*$/i.test(s));
  const prop = fc.property(notASize, (text) => refusedNaming(resolve([`--memory-per-vcpu=${text}`]), flagName('memory-per-vcpu')));
  await assertProperty(t, prop, RUNS);
});

/** Integer options with their documented ranges (--help) and where the value lands. */
const INTEGER_OPTIONS: readonly (readonly [long: string, min: number, max: number, key: keyof EmulateOptions])[] = [
  ['vcpus', 1, 512, 'vcpus'],
  ['iterations', 2, 100_000, 'iterations'],
  ['write-percent', 0, 100, 'writePercent'],
  ['memslots', 1, 32_768, 'memslots'],
  ['seed', 0, 0xffff_ffff, 'seed'],
  ['repeat', 1, 100, 'repeat'],
  ['cache-capacity', 1, 1026, 'cacheCapacity'],
  ['pool-tables', 1, 2 ** 31 - 2, 'poolTables'],
];

test('integer options accept exactly their range, in decimal or hex, and refuse the rest naming the option', async (t) => {
  const prop = fc.property(
    fc.constantFrom(...INTEGER_OPTIONS),
    fc.oneof(fc.integer({ min: -5, max: 2 ** 33 }), fc.constantFrom(0, 1, 2, 100, 101, 512, 513, 1026, 1027, 2 ** 31 - 2, 2 ** 32)),
    fc.boolean(),
    ([long, min, max, key], n, hex) => {
      const text = n < 0 ? `${n}` : hex ? `0x${n.toString(16)}` : `${n}`;
      const r = resolve([`--${long}=${text}`]);
      if (n >= min && n <= max) return !(r instanceof Error) && r[key] === n;
      return refusedNaming(r, flagName(long));
    },
  );
  await assertProperty(t, prop, RUNS);
});

test('an unknown option, or a known one without its value, is refused with one line naming it', async (t) => {
  const longs = new Set(OPTION_SPECS.map((o) => o.long));
  const unknown = fc.property(
    fc.stringMatching(/^[a-z][a-z-]{0,14}$/).filter((s) => !longs.has(s)),
    (name) => refusedNaming(resolve([`--${name}`]), `--${name}`),
  );
  await assertProperty(t, unknown, RUNS);
  const withValue = OPTION_SPECS.filter((o) => o.type === 'string').map((o) => o.long);
  const missing = fc.property(fc.constantFrom(...withValue), (long) => refusedNaming(resolve([`--${long}`]), flagName(long)));
  await assertProperty(t, missing, RUNS);
});
