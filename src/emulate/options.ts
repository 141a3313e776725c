/**
 * The `npm run emulate` command line: the kernel selftest's flags (`dirty_log_perf_test`,
 * reference §4.1) with their meanings, plus long options for what the emulator adds.
 *
 * Three layers, each usable on its own (sweeps build on the second):
 *  1. `parseCommandLine(argv)`: util.parseArgs, strict; unknown options and missing values become
 *     one-line ERR_INVALID_OPTION errors naming the option (never a stack trace).
 *  2. `OPTION_PARSERS`: one labelled parser per option, `(raw string) -> typed value`, each throwing
 *     `invalidOption(flag, why)`. A sweep splits a comma list and runs the parser on every item.
 *  3. `resolveOptions(raw)`: DEFAULTS overlaid with the parsed values, then cross-option checks.
 *
 * Geometry (memslots, backing level, pool size, the too-big refusal) is resolved later, in
 * config.ts, because it needs the VM's footprint function.
 */
import { parseArgs } from 'node:util';
import { EmulatorError, invalidOption } from '../errors.js';
import { splitAllocDesignInfo, splitAllocDesignNames } from './split_designs.js';
import { chunkSizeToPages } from '../mmu/split_alloc_designs.js';
import { CHUNK_PAGES_1G } from '../mmu/split_alloc_chunked.js';
import { DEFAULT_CACHE_CAPACITY } from '../mmu/mmu_cache.js';
import { DEFAULT_RESCHED_MS } from '../mmu/mmu_resched.js';
import { DEFAULT_HOST_COSTS, parseHostCosts } from '../mmu/host_costs.js';
import type { HostCosts } from '../mmu/host_costs.js';
import { DEFAULT_WORKLOAD, parseWorkloadSpec, workloadDefinition, workloadNames, WorkloadSpecError } from '../workloads/registry.js';
import { FAULT_MODELS } from '../vm.js';
import type { DirtyTrackMode, FaultModel } from '../vm.js';
import { DEFAULT_KERNEL, formatKernel, kernelBehaviour, KERNEL_MAX, KERNEL_MIN, compareVersions, parseKernelVersion } from '../kernel_version.js';
import type { KernelVersion } from '../kernel_version.js';
import type { ClearLockMode } from '../mmu/dirty_log.js';
import { hostEventsForPressure, parseHostEvents } from './host_events.js';
import type { HostEventsProfile } from './host_events.js';

export type BackingName = 'anonymous' | 'anonymous_thp' | 'anonymous_hugetlb_2mb' | 'anonymous_hugetlb_1gb';

/** Page size, in bytes, of each backing source (selftests' test_util.c names). */
export const BACKINGS: Readonly<Record<BackingName, { readonly level: 1 | 2 | 3; readonly pageBytes: number }>> = Object.freeze({
  anonymous: { level: 1, pageBytes: 4096 },
  anonymous_thp: { level: 2, pageBytes: 2 * 1024 * 1024 },
  anonymous_hugetlb_2mb: { level: 2, pageBytes: 2 * 1024 * 1024 },
  anonymous_hugetlb_1gb: { level: 3, pageBytes: 1024 * 1024 * 1024 },
});

/** The guest page size: memstress strides over guest pages, 4 KiB on x86. */
export const GUEST_PAGE_BYTES = 4096;

/** Upper bounds that keep a run meaningful on one machine; each error message says why. */
const LIMITS = Object.freeze({
  /** Worker threads are real OS threads with their own heaps (~10 MB each). */
  maxVcpus: 512,
  maxIterations: 100_000,
  maxMemslots: 32_768,
  /** 2^52 bytes (4 PiB) of guest memory: gfns stay exact doubles; the footprint check decides the real limit. */
  maxGuestBytes: 2 ** 52,
  maxWatchdogSeconds: 86_400,
  maxSteadySeconds: 3_600,
  /** A cache bigger than the pool's splitter slack (1026 tables) only fails its top-ups. */
  maxCacheCapacity: 1026,
  maxReschedMs: 60_000,
  maxRepeat: 100,
  /** The pool's free list links tables by Int32 index (vm.ts checkVmConfig). */
  maxPoolTables: 2 ** 31 - 2,
});

/** Everything one emulation run needs from the command line (single values; sweeps expand lists). */
export interface EmulateOptions {
  readonly vcpus: number;
  readonly memoryPerVcpuBytes: number;
  readonly iterations: number;
  readonly backing: BackingName;
  readonly writePercent: number;
  readonly randomAccess: boolean;
  /** KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 with KVM_DIRTY_LOG_INITIALLY_SET; -g turns it off. */
  readonly manualProtect: boolean;
  /** -e ("evil"): vCPUs keep running while dirty logging is disabled. */
  readonly vcpusRunDuringDisable: boolean;
  readonly memslots: number;
  readonly seed: number;
  readonly levels: 4 | 5;
  readonly eagerSplit: boolean;
  readonly splitAlloc: string;
  /** A pressure profile name or a custom spec; validated by the allocator's parser in config.ts. */
  readonly pressure: string;
  readonly json: string | undefined;
  readonly quiet: boolean;
  /** Steady-workload mode: vCPUs run the whole time (the 2024 CLEAR_DIRTY_LOG stall). */
  readonly steady: boolean;
  /** Length of the steady "before" and "after" windows, seconds. */
  readonly steadySeconds: number;
  /** Seconds without progress before the watchdog declares a phase stuck; 0 disables it. */
  readonly watchdogSeconds: number;
  // --- the split allocation designs' knobs, compare and sweeps ---
  /** Capacity of the `cache` design's kvm_mmu_memory_cache (tables). */
  readonly cacheCapacity: number;
  /** `chunked-cache`'s chunk, in 4K pages (2M = 512, 1G = 262144). */
  readonly chunkPages: number;
  /** need_resched(): the splitter yields mmu_lock after holding it this long (ms). */
  readonly reschedMs: number;
  /** rwlock_needbreak() (preemptible kernels): also yield when someone queues on mmu_lock. */
  readonly yieldOnContention: boolean;
  /** --compare: run every design (or the --split-alloc list) and print them side by side. */
  readonly compare: boolean;
  /** Also write one CSV row per run here. */
  readonly csv: string | undefined;
  /** Run each compare/sweep combination this many times; the table shows medians. */
  readonly repeat: number;
  /** The guest workload (src/workloads/). */
  readonly workload: string;
  /** Dirty tracking: Intel PML (D bits + per-vCPU log) or write protection. */
  readonly dirtyTrack: DirtyTrackMode;
  /** Warm the JIT on a scratch VM in every worker before the run starts (jit_warmup.ts). */
  readonly jitWarmup: boolean;
  /** Host costs spent as real time (host_costs.ts); all zero with `--host-costs none`. */
  readonly hostCosts: HostCosts;
  /** kvm.nx_huge_pages: huge leaves are not executable; execute faults split (or zap) them. */
  readonly nxHugePages: boolean;
  /** Which lock each fault kind takes (vm.ts FaultModel). */
  readonly faultModel: FaultModel;
  /** -k: CLEAR_DIRTY_LOG in calls of this many 4K pages (a multiple of 64); 0 = the whole memslot. */
  readonly clearChunkPages: number;
  /** -l: pause between CLEAR calls of one pass, ms (vCPUs run meanwhile). */
  readonly clearDelayMs: number;
  /** --clear-lock: mmu_lock across the whole CLEAR, or per non-empty 64-page word (the dropped 2023-24 change). */
  readonly clearLock: ClearLockMode;
  /** --kernel: the release whose version-dependent behaviours are modelled (kernel_version.ts). */
  readonly kernel: KernelVersion;
  /** --host-events: the host-events actor's rates (host_events.ts); default from --pressure. */
  readonly hostEvents: HostEventsProfile;
  /** Options that contradict the release without being impossible (printed in the banner). */
  readonly anachronisms: readonly string[];
  /** `--html FILE`: the self-contained HTML report with charts (html_report.ts). */
  readonly html: string | undefined;
  /** `--timeline-csv FILE`: the run's timeline (timeline.ts), one row per sample. */
  readonly timelineCsv: string | undefined;
  /** `--trace FILE`: a Chrome Trace Event file of the run (trace_events.ts). */
  readonly trace: string | undefined;
  /** `--pool-tables N`: the page-table pool's capacity in tables; undefined = sized for the worst case (vm.ts). */
  readonly poolTables: number | undefined;
}

/**
 * Defaults, in one frozen object (STYLE 14): the selftest's, except `backing` (anonymous_thp, 2M
 * pages, because splitting is the subject). `memoryPerVcpuBytes` stays the selftest's 1G: guest
 * data is not stored, only page tables, and every 4K access is emulated (measured on 2 cores:
 * 3-5 M fast faults/s, 12-17 M TLB-hit accesses/s), so `--vcpus 32` (32 GiB of guest, 8.4 M 4K
 * SPTEs after splitting, three passes over it) ran in 6 s: well under the one-minute goal.
 */
export const DEFAULTS: Readonly<EmulateOptions> = Object.freeze({
  vcpus: 1,
  memoryPerVcpuBytes: 1024 * 1024 * 1024,
  iterations: 2,
  backing: 'anonymous_thp',
  writePercent: 100,
  randomAccess: false,
  manualProtect: true,
  vcpusRunDuringDisable: false,
  memslots: 1,
  seed: 1,
  levels: 4,
  eagerSplit: true,
  splitAlloc: 'drop-always',
  pressure: 'none',
  json: undefined,
  quiet: false,
  steady: false,
  steadySeconds: 1,
  watchdogSeconds: 60,
  cacheCapacity: DEFAULT_CACHE_CAPACITY,
  chunkPages: CHUNK_PAGES_1G,
  reschedMs: DEFAULT_RESCHED_MS,
  yieldOnContention: false,
  compare: false,
  csv: undefined,
  repeat: 1,
  workload: DEFAULT_WORKLOAD,
  dirtyTrack: 'pml',
  jitWarmup: true,
  nxHugePages: false,
  faultModel: 'tdp',
  hostCosts: DEFAULT_HOST_COSTS,
  clearChunkPages: 0,
  clearDelayMs: 0,
  clearLock: 'whole',
  kernel: DEFAULT_KERNEL,
  hostEvents: parseHostEvents('--host-events', 'none'),
  anachronisms: [],
  html: undefined,
  timelineCsv: undefined,
  trace: undefined,
  poolTables: undefined,
});

// ---------------------------------------------------------------------------------------------
// Labelled parsers (KVM's atoi_positive("Number of vCPUs", optarg) style)

/** A decimal (or 0x hex) integer in [min, max]; `label` names the option in the error. */
function parseIntInRange(label: string, raw: string, min: number, max: number, why = ''): number {
  const s = raw.trim();
  if (!/^(?:0x[0-9a-f]+|\d+)$/i.test(s)) {
    throw invalidOption(label, `expected an integer, got ${JSON.stringify(raw)}`);
  }
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw invalidOption(label, `must be between ${min} and ${max}${why}, got ${raw}`);
  }
  return n;
}

export function parsePositiveInt(label: string, raw: string, max: number, why = ''): number {
  return parseIntInRange(label, raw, 1, max, why);
}

/** A non-negative decimal number of seconds. */
function parseSeconds(label: string, raw: string, max: number): number {
  const s = raw.trim();
  if (!/^\d+(?:\.\d+)?$/.test(s)) throw invalidOption(label, `expected a number of seconds, got ${JSON.stringify(raw)}`);
  const n = Number(s);
  if (n > max) throw invalidOption(label, `must be at most ${max} seconds, got ${raw}`);
  return n;
}

const SIZE_SUFFIX: Readonly<Record<string, number>> = { '': 1, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/**
 * A size like the selftests' parse_size(): digits with an optional K/M/G/T suffix (binary units,
 * case-insensitive, optional trailing "iB"/"B"); no suffix means bytes. Must be a whole number of
 * 4 KiB guest pages.
 */
export function parseSize(label: string, raw: string): number {
  const m = /^(\d+)\s*([kmgt]?)(?:i?b)?$/i.exec(raw.trim());
  if (m === null) throw invalidOption(label, `expected a size such as 64M, 10M or 3G, got ${JSON.stringify(raw)}`);
  const bytes = Number(m[1]) * SIZE_SUFFIX[m[2]!.toLowerCase()]!;
  if (!Number.isSafeInteger(bytes) || bytes > LIMITS.maxGuestBytes) {
    throw invalidOption(label, `${raw} is too large`);
  }
  if (bytes < GUEST_PAGE_BYTES || bytes % GUEST_PAGE_BYTES !== 0) {
    throw invalidOption(label, `must be a positive multiple of the 4K guest page size, got ${raw}`);
  }
  return bytes;
}

/** Bytes as the user would write them: 64M, 3G, 1536K. */
export function formatSize(bytes: number): string {
  for (const [suffix, unit] of [
    ['T', 2 ** 40],
    ['G', 2 ** 30],
    ['M', 2 ** 20],
    ['K', 2 ** 10],
  ] as const) {
    if (bytes >= unit && bytes % unit === 0) return `${bytes / unit}${suffix}`;
  }
  return `${bytes}`;
}

/** Bytes for humans: 1.50 GiB. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${bytes} B` : `${v.toFixed(2)} ${units[u]}`;
}

function parseOnOff(label: string, raw: string): boolean {
  const s = raw.trim().toLowerCase();
  if (s === 'on') return true;
  if (s === 'off') return false;
  throw invalidOption(label, `expected on or off, got ${JSON.stringify(raw)}`);
}

function parseBacking(label: string, raw: string): BackingName {
  const s = raw.trim();
  if (Object.hasOwn(BACKINGS, s)) return s as BackingName;
  throw invalidOption(label, `unknown backing ${JSON.stringify(raw)}; expected one of ${Object.keys(BACKINGS).join(', ')}`);
}

function parseLevels(label: string, raw: string): 4 | 5 {
  const s = raw.trim();
  if (s === '4') return 4;
  if (s === '5') return 5;
  throw invalidOption(label, `expected 4 or 5, got ${JSON.stringify(raw)}`);
}

function parseDesign(label: string, raw: string): string {
  const s = raw.trim();
  const names = splitAllocDesignNames();
  if (names.includes(s)) return s;
  throw invalidOption(label, `unknown design ${JSON.stringify(raw)}; expected one of ${names.join(', ')}`);
}

function parsePressureName(label: string, raw: string): string {
  const s = raw.trim();
  // The allocator owns the profile table and the custom-spec grammar; config.ts runs its parser.
  if (s === '') throw invalidOption(label, 'expected a profile name (none, moderate, heavy) or key=value list');
  return s;
}

/** --chunk-size: a size arm64 accepts as KVM_CAP_ARM_EAGER_SPLIT_CHUNK_SIZE above the page size (2M or 1G), in 4K pages. */
function parseChunkSize(label: string, raw: string): number {
  const pages = chunkSizeToPages(parseSize(label, raw));
  if (pages === undefined) throw invalidOption(label, `must be 2M or 1G (a block size), got ${raw}`);
  return pages;
}

/** A non-negative number of milliseconds (fractions allowed). */
function parseMs(label: string, raw: string, max: number): number {
  const s = raw.trim();
  if (!/^\d+(?:\.\d+)?$/.test(s)) throw invalidOption(label, `expected a number of milliseconds, got ${JSON.stringify(raw)}`);
  const n = Number(s);
  if (n > max) throw invalidOption(label, `must be at most ${max} ms, got ${raw}`);
  return n;
}

/** `NAME[:key=value,...]`: the spec string is kept as given (trimmed); each vCPU parses it again. */
function parseWorkload(label: string, raw: string): string {
  try {
    parseWorkloadSpec(raw);
  } catch (err) {
    if (err instanceof WorkloadSpecError) throw invalidOption(label, err.message);
    throw err;
  }
  return raw.trim();
}

function parseFaultModel(label: string, raw: string): FaultModel {
  const s = raw.trim();
  const m = FAULT_MODELS.find((f) => f === s);
  if (m !== undefined) return m;
  throw invalidOption(label, `expected one of ${FAULT_MODELS.join(', ')}, got ${JSON.stringify(raw)}`);
}

function parseDirtyTrack(label: string, raw: string): DirtyTrackMode {
  const s = raw.trim();
  if (s === 'pml' || s === 'wrprot') return s;
  throw invalidOption(label, `expected pml or wrprot, got ${JSON.stringify(raw)}`);
}

/** -k: a size that is a whole number of 64-page words (the ioctl's first_page/num_pages granularity). */
function parseClearChunk(label: string, raw: string): number {
  const pages = parseSize(label, raw) / GUEST_PAGE_BYTES;
  if (pages % 64 !== 0) throw invalidOption(label, `must be a multiple of 256K (64 pages, one bitmap word pair), got ${raw}`);
  return pages;
}

function parseClearLock(label: string, raw: string): ClearLockMode {
  const s = raw.trim();
  if (s === 'whole' || s === 'per-word') return s;
  throw invalidOption(label, `expected whole or per-word, got ${JSON.stringify(raw)}`);
}

function parseKernel(label: string, raw: string): KernelVersion {
  const v = parseKernelVersion(raw);
  if (v === null) throw invalidOption(label, `expected a release such as 6.12 or 5.18, got ${JSON.stringify(raw)}`);
  if (compareVersions(v, KERNEL_MIN) < 0 || compareVersions(v, KERNEL_MAX) > 0) {
    throw invalidOption(label, `must be between ${formatKernel(KERNEL_MIN)} and ${formatKernel(KERNEL_MAX)} (the TDP MMU's releases), got ${raw}`);
  }
  return v;
}

function parseJsonPath(label: string, raw: string): string {
  if (raw.trim() === '') throw invalidOption(label, 'expected a file name');
  return raw;
}

// ---------------------------------------------------------------------------------------------
// The option table: parseArgs spec, help text and parser in one place.

interface OptionSpec {
  /** The long name (`--vcpus`); the key in parseArgs' values. */
  readonly long: string;
  readonly short?: string;
  readonly type: 'string' | 'boolean';
  /** Placeholder shown in --help: `N`, `SIZE`... */
  readonly arg?: string;
  readonly help: string;
  /** What --help prints as the default (with units). */
  readonly shownDefault?: string;
  /** Hidden from --help (test and orchestration switches). */
  readonly hidden?: boolean;
}

const mib = (b: number): string => formatSize(b);

export const OPTION_SPECS: readonly OptionSpec[] = [
  { long: 'vcpus', short: 'v', type: 'string', arg: 'N', help: 'number of vCPUs (one worker thread each)', shownDefault: `${DEFAULTS.vcpus}` },
  {
    long: 'memory-per-vcpu',
    short: 'b',
    type: 'string',
    arg: 'SIZE',
    help:
      'guest memory each vCPU dirties, e.g. 10M, 3G (page tables are emulated, guest data is not stored; ' +
      'every 4K access is emulated, 3-17 M accesses/s on 2 cores: --vcpus 32 takes ~6 s)',
    shownDefault: mib(DEFAULTS.memoryPerVcpuBytes),
  },
  { long: 'iterations', short: 'i', type: 'string', arg: 'N', help: 'dirty-memory iterations, at least 2', shownDefault: `${DEFAULTS.iterations}` },
  {
    long: 'backing',
    short: 's',
    type: 'string',
    arg: 'SRC',
    help: 'backing source: anonymous (4K), anonymous_thp and anonymous_hugetlb_2mb (2M), anonymous_hugetlb_1gb (1G); ' + 'the selftest defaults to anonymous',
    shownDefault: DEFAULTS.backing,
  },
  {
    long: 'write-percent',
    short: 'w',
    type: 'string',
    arg: 'PCT',
    help: 'percentage of accesses that are writes, 0..100',
    shownDefault: `${DEFAULTS.writePercent}`,
  },
  { long: 'random-access', short: 'a', type: 'boolean', help: 'access pages in random order instead of sequentially', shownDefault: 'off' },
  {
    long: 'no-manual-protect',
    short: 'g',
    type: 'boolean',
    help:
      'do not use MANUAL_DIRTY_LOG_PROTECT2 + INITIALLY_SET: GET_DIRTY_LOG clears, and eager splitting ' +
      'happens when dirty logging is enabled (mmu_lock for read) instead of in each CLEAR (mmu_lock for write)',
    shownDefault: 'manual-protect on',
  },
  { long: 'evil', short: 'e', type: 'boolean', help: 'keep vCPUs running while dirty logging is disabled', shownDefault: 'off' },
  { long: 'memslots', short: 'x', type: 'string', arg: 'N', help: 'split the guest memory into N memslots', shownDefault: `${DEFAULTS.memslots}` },
  {
    long: 'seed',
    short: 'r',
    type: 'string',
    arg: 'N',
    help: 'random seed (access order, write choice, allocator pressure)',
    shownDefault: `${DEFAULTS.seed}`,
  },
  { long: 'levels', type: 'string', arg: '4|5', help: 'TDP paging levels (4-level or 5-level root)', shownDefault: `${DEFAULTS.levels}` },
  { long: 'eager-split', type: 'string', arg: 'on|off', help: 'eager page splitting (kvm.eager_page_split); off = split on write fault', shownDefault: 'on' },
  {
    long: 'split-alloc',
    type: 'string',
    arg: 'DESIGN',
    help: 'page-table allocation design of the split walk (listed below); lazy = --eager-split off',
    shownDefault: DEFAULTS.splitAlloc,
  },
  { long: 'pressure', type: 'string', arg: 'PROFILE', help: 'host memory pressure: none, moderate, heavy, or key=value,...', shownDefault: DEFAULTS.pressure },
  {
    long: 'cache-capacity',
    type: 'string',
    arg: 'N',
    help: "tables in the cache design's kvm_mmu_memory_cache (KVM_ARCH_NR_OBJS_PER_MEMORY_CACHE)",
    shownDefault: `${DEFAULTS.cacheCapacity}`,
  },
  {
    long: 'chunk-size',
    type: 'string',
    arg: 'SIZE',
    help: "chunked-cache's chunk (KVM_CAP_ARM_EAGER_SPLIT_CHUNK_SIZE): 2M or 1G; the cache holds ceil(chunk/1G)+ceil(chunk/2M) tables",
    shownDefault: formatSize(DEFAULTS.chunkPages * GUEST_PAGE_BYTES),
  },
  {
    long: 'resched-ms',
    type: 'string',
    arg: 'MS',
    help: 'need_resched(): when more threads are runnable than the host has cores, the splitter yields mmu_lock (tdp_mmu_iter_cond_resched) after holding it this long; on an idle host it never yields',
    shownDefault: `${DEFAULTS.reschedMs} ms`,
  },
  {
    long: 'yield-on-contention',
    type: 'boolean',
    help: 'rwlock_needbreak() as on preemptible kernels: the splitter also yields when someone waits for mmu_lock',
    shownDefault: 'off',
  },
  {
    long: 'compare',
    type: 'boolean',
    help:
      'run every design (or the --split-alloc list) one after another on the same configuration and seed, ' +
      'with the steady workload, and print them side by side with a verdict against drop-always',
    shownDefault: 'off',
  },
  { long: 'csv', type: 'string', arg: 'FILE', help: 'also write one CSV row per run (compare, sweeps, or a single run)', shownDefault: 'none' },
  {
    long: 'repeat',
    type: 'string',
    arg: 'N',
    help: 'run every compare/sweep combination N times (interleaved); the table and verdicts show medians and the run-to-run spread',
    shownDefault: '1',
  },
  {
    long: 'steady',
    type: 'boolean',
    help:
      'steady workload: vCPUs run the whole time; report their fault latency and throughput before, ' +
      'during and after splitting (with more vCPUs than cores they also take CPU time from the splitter)',
    shownDefault: 'off',
  },
  {
    long: 'steady-seconds',
    type: 'string',
    arg: 'S',
    help: 'length of the steady before/after windows, seconds',
    shownDefault: `${DEFAULTS.steadySeconds} s`,
  },
  { long: 'json', type: 'string', arg: 'FILE', help: 'also write the report as JSON (see src/emulate/REPORT_SCHEMA.md)', shownDefault: 'none' },
  { long: 'quiet', short: 'q', type: 'boolean', help: 'no start-up banner and no progress on stderr', shownDefault: 'off' },
  {
    long: 'watchdog',
    type: 'string',
    arg: 'S',
    help: 'seconds without any worker progress before a phase is declared stuck (0 = off)',
    shownDefault: `${DEFAULTS.watchdogSeconds} s`,
  },
  {
    long: 'workload',
    type: 'string',
    arg: 'NAME[:k=v,...]',
    help: `guest workload run by every vCPU: ${workloadNames().join(', ')} (src/workloads/), with knobs after a colon (listed below)`,
    shownDefault: DEFAULTS.workload,
  },
  {
    long: 'nx-huge-pages',
    type: 'string',
    arg: 'on|off',
    help:
      'kvm.nx_huge_pages (iTLB multihit mitigation): huge pages are never executable, so an execute access to one faults and ' +
      'splits it (zaps it with lazy-zap, before 6.2) under mmu_lock for read. The kernel default was on for affected Intel hosts',
    shownDefault: 'off',
  },
  {
    long: 'fault-model',
    type: 'string',
    arg: 'MODEL',
    help:
      'which lock each fault takes: tdp (lockless fast path, slow faults under mmu_lock for read), tdp-locked-fast ' +
      '(the fast path under the read lock too, emulates KVM/arm64) or shadow (the shadow MMU: slow faults under mmu_lock ' +
      'for write; eager splitting off, --eager-split on is refused)',
    shownDefault: DEFAULTS.faultModel,
  },
  {
    long: 'dirty-track',
    type: 'string',
    arg: 'pml|wrprot',
    help:
      'dirty tracking: pml (Intel PML: writes to writable 4K pages set D and are logged without a fault, ' +
      'huge pages write-protected) or wrprot (write protection: every first write per pass faults, as on AMD or with PML off)',
    shownDefault: DEFAULTS.dirtyTrack,
  },
  {
    long: 'jit-warmup',
    type: 'string',
    arg: 'on|off',
    help: 'each worker first runs the paths it will time on a scratch VM, so V8 has compiled them (a JIT artefact the kernel has not)',
    shownDefault: 'on',
  },
  {
    long: 'host-costs',
    type: 'string',
    arg: 'SPEC',
    help:
      'host costs spent as real time: none, or wpfault=NS,slowfault=NS,pmlfull=NS,tlbflush=NS ' +
      '(VM exit/entry of a lockless WP fault, of a slow fault, a PML-full exit, a remote TLB flush; see src/mmu/host_costs.ts)',
    shownDefault: `wpfault=${DEFAULT_HOST_COSTS.wpfaultNs},slowfault=${DEFAULT_HOST_COSTS.slowfaultNs},pmlfull=${DEFAULT_HOST_COSTS.pmlfullNs},tlbflush=${DEFAULT_HOST_COSTS.tlbflushNs}`,
  },
  {
    long: 'clear-chunk',
    short: 'k',
    type: 'string',
    arg: 'SIZE',
    help: 'CLEAR_DIRTY_LOG each memslot in calls of this size, as a migration does (a multiple of 256K); each call is its own ioctl',
    shownDefault: 'the whole memslot',
  },
  {
    long: 'clear-delay',
    short: 'l',
    type: 'string',
    arg: 'MS',
    help: 'pause between CLEAR_DIRTY_LOG calls of one pass, so vCPUs run between them (the unmerged selftest option)',
    shownDefault: '0 ms',
  },
  {
    long: 'clear-lock',
    type: 'string',
    arg: 'whole|per-word',
    help: 'CLEAR holds mmu_lock for the whole call (every release), or takes it per non-empty 64-page word (the 2023-24 change that was dropped); comma list sweeps',
    shownDefault: 'whole',
  },
  {
    long: 'kernel',
    type: 'string',
    arg: 'VERSION',
    help:
      'the Linux release modelled: sets the defaults of every version-dependent behaviour (eager split and its allocation design, ' +
      'split or zap on fault, notifier retry point, aging and NX recovery locks; src/kernel_version.ts); explicit options override',
    shownDefault: formatKernel(DEFAULT_KERNEL),
  },
  {
    long: 'host-events',
    type: 'string',
    arg: 'PROFILE',
    help: 'host mm events on the guest (MMU-notifier invalidations, accessed-bit aging): none, light, heavy or key=value,... (src/emulate/host_events.ts)',
    shownDefault: 'from --pressure: none->none, moderate->light, heavy->heavy',
  },
  {
    long: 'html',
    type: 'string',
    arg: 'FILE',
    help: 'also write a self-contained HTML report: throughput over time with the phases shaded, latency tails, mmu_lock, splitter progress, tables (overlays the designs with --compare)',
    shownDefault: 'none',
  },
  {
    long: 'timeline-csv',
    type: 'string',
    arg: 'FILE',
    help: "also write the run's timeline (vCPU throughput, faults by kind, mmu_lock waiters, splitter progress every few ms) as CSV",
    shownDefault: 'none',
  },
  {
    long: 'trace',
    type: 'string',
    arg: 'FILE',
    help: 'also write a Chrome Trace Event file of the run (threads, phases, ioctls, mmu_lock holds and waits, splits, counters) for ui.perfetto.dev',
    shownDefault: 'none',
  },
  {
    long: 'pool-tables',
    type: 'string',
    arg: 'N',
    help:
      'cap the page-table pool at N tables (4 KiB each), to run out of them on purpose: eager splitting then stops with ENOMEM and ' +
      'write-protects the huge pages it could not split, as KVM does; a pool too small for the faults ends the run with ERR_ENOMEM',
    shownDefault: 'the all-4K tree + caches + slack',
  },
  { long: 'help', short: 'h', type: 'boolean', help: 'print this help and exit' },
];

const SPECS_BY_LONG: ReadonlyMap<string, OptionSpec> = new Map(OPTION_SPECS.map((s) => [s.long, s]));

/** How an option is named in messages: `-v/--vcpus`. */
export function flagName(long: string): string {
  const spec = SPECS_BY_LONG.get(long);
  return spec?.short !== undefined ? `-${spec.short}/--${long}` : `--${long}`;
}

/** Per-option parsers from the raw string; a sweep runs them on each comma-separated item. */
const OPTION_PARSERS = {
  vcpus: (raw: string) => parsePositiveInt(flagName('vcpus'), raw, LIMITS.maxVcpus, ' (one thread per vCPU)'),
  memoryPerVcpuBytes: (raw: string) => parseSize(flagName('memory-per-vcpu'), raw),
  iterations: (raw: string) => parseIntInRange(flagName('iterations'), raw, 2, LIMITS.maxIterations),
  backing: (raw: string) => parseBacking(flagName('backing'), raw),
  writePercent: (raw: string) => parseIntInRange(flagName('write-percent'), raw, 0, 100),
  memslots: (raw: string) => parsePositiveInt(flagName('memslots'), raw, LIMITS.maxMemslots),
  seed: (raw: string) => parseIntInRange(flagName('seed'), raw, 0, 0xffff_ffff),
  levels: (raw: string) => parseLevels(flagName('levels'), raw),
  eagerSplit: (raw: string) => parseOnOff(flagName('eager-split'), raw),
  splitAlloc: (raw: string) => parseDesign(flagName('split-alloc'), raw),
  pressure: (raw: string) => parsePressureName(flagName('pressure'), raw),
  json: (raw: string) => parseJsonPath(flagName('json'), raw),
  steadySeconds: (raw: string) => parseSeconds(flagName('steady-seconds'), raw, LIMITS.maxSteadySeconds),
  watchdogSeconds: (raw: string) => parseSeconds(flagName('watchdog'), raw, LIMITS.maxWatchdogSeconds),
  cacheCapacity: (raw: string) => parsePositiveInt(flagName('cache-capacity'), raw, LIMITS.maxCacheCapacity),
  chunkPages: (raw: string) => parseChunkSize(flagName('chunk-size'), raw),
  reschedMs: (raw: string) => parseMs(flagName('resched-ms'), raw, LIMITS.maxReschedMs),
  csv: (raw: string) => parseJsonPath(flagName('csv'), raw),
  repeat: (raw: string) => parsePositiveInt(flagName('repeat'), raw, LIMITS.maxRepeat),
  workload: (raw: string) => parseWorkload(flagName('workload'), raw),
  dirtyTrack: (raw: string) => parseDirtyTrack(flagName('dirty-track'), raw),
  jitWarmup: (raw: string) => parseOnOff(flagName('jit-warmup'), raw),
  hostCosts: (raw: string) => parseHostCosts(flagName('host-costs'), raw),
  nxHugePages: (raw: string) => parseOnOff(flagName('nx-huge-pages'), raw),
  faultModel: (raw: string) => parseFaultModel(flagName('fault-model'), raw),
  clearChunkPages: (raw: string) => parseClearChunk(flagName('clear-chunk'), raw),
  clearDelayMs: (raw: string) => parseMs(flagName('clear-delay'), raw, LIMITS.maxReschedMs),
  clearLock: (raw: string) => parseClearLock(flagName('clear-lock'), raw),
  kernel: (raw: string) => parseKernel(flagName('kernel'), raw),
  hostEvents: (raw: string) => parseHostEvents(flagName('host-events'), raw),
  html: (raw: string) => parseJsonPath(flagName('html'), raw),
  timelineCsv: (raw: string) => parseJsonPath(flagName('timeline-csv'), raw),
  trace: (raw: string) => parseJsonPath(flagName('trace'), raw),
  poolTables: (raw: string) => parsePositiveInt(flagName('pool-tables'), raw, LIMITS.maxPoolTables),
} as const satisfies Partial<Record<keyof EmulateOptions, (raw: string) => unknown>>;

/** The raw parseArgs values, keyed by long option name. */
export type RawValues = Readonly<Record<string, string | boolean | undefined>>;

export type CommandLine = { readonly kind: 'help' } | { readonly kind: 'run'; readonly raw: RawValues };

/**
 * Parse argv strictly. Throws ERR_INVALID_OPTION with a one-line message naming the option for
 * unknown options, missing or unexpected values and stray positionals.
 */
export function parseCommandLine(argv: readonly string[]): CommandLine {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const s of OPTION_SPECS) options[s.long] = s.short !== undefined ? { type: s.type, short: s.short } : { type: s.type };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }) as {
      values: Record<string, string | boolean | undefined>;
    });
  } catch (err) {
    throw parseArgsError(err);
  }
  if (values['help'] === true) return { kind: 'help' };
  return { kind: 'run', raw: values };
}

/** util.parseArgs errors are multi-line and phrased for programmers; make them one line that names the option. */
function parseArgsError(err: unknown): EmulatorError {
  const msg = err instanceof Error ? err.message : String(err);
  const first = msg.split('\n')[0]!.trim();
  const opt = /Option '([^']+)'/.exec(first) ?? /option '([^']+)'/i.exec(first);
  const positional = /Unexpected argument '([^']*)'/.exec(first);
  if (positional !== null) {
    return invalidOption(positional[1]!, 'unexpected argument (options take the form --name value; see --help)');
  }
  if (opt !== null) {
    // parseArgs names options as "-v, --vcpus <value>"; use our "-v/--vcpus" everywhere.
    const long = /--([a-z-]+)/.exec(opt[1]!)?.[1];
    const name = long !== undefined && SPECS_BY_LONG.has(long) ? flagName(long) : opt[1]!.replace(/ <value>$/, '');
    if (/Unknown option/i.test(first)) return invalidOption(name, 'unknown option (see --help)');
    if (/ambiguous/i.test(first)) return invalidOption(name, 'value missing or starts with "-" (negative values are not allowed)');
    if (/argument missing/i.test(first)) return invalidOption(name, 'value missing');
    if (/does not take an argument/i.test(first)) return invalidOption(name, 'takes no value');
    return invalidOption(name, first);
  }
  return new EmulatorError('ERR_INVALID_OPTION', first);
}

/** DEFAULTS overlaid with the parsed command line, then cross-option checks. */
export function resolveOptions(raw: RawValues): EmulateOptions {
  const str = (k: string): string | undefined => {
    const v = raw[k];
    return typeof v === 'string' ? v : undefined;
  };
  const pick = <K extends keyof typeof OPTION_PARSERS>(key: K, long: string): ReturnType<(typeof OPTION_PARSERS)[K]> | undefined => {
    const v = str(long);
    return v === undefined ? undefined : (OPTION_PARSERS[key](v) as ReturnType<(typeof OPTION_PARSERS)[K]>);
  };
  const opts: EmulateOptions = {
    vcpus: pick('vcpus', 'vcpus') ?? DEFAULTS.vcpus,
    memoryPerVcpuBytes: pick('memoryPerVcpuBytes', 'memory-per-vcpu') ?? DEFAULTS.memoryPerVcpuBytes,
    iterations: pick('iterations', 'iterations') ?? DEFAULTS.iterations,
    backing: pick('backing', 'backing') ?? DEFAULTS.backing,
    writePercent: pick('writePercent', 'write-percent') ?? DEFAULTS.writePercent,
    randomAccess: raw['random-access'] === true,
    manualProtect: raw['no-manual-protect'] !== true,
    vcpusRunDuringDisable: raw['evil'] === true,
    memslots: pick('memslots', 'memslots') ?? DEFAULTS.memslots,
    seed: pick('seed', 'seed') ?? DEFAULTS.seed,
    levels: pick('levels', 'levels') ?? DEFAULTS.levels,
    eagerSplit: pick('eagerSplit', 'eager-split') ?? DEFAULTS.eagerSplit,
    splitAlloc: pick('splitAlloc', 'split-alloc') ?? DEFAULTS.splitAlloc,
    pressure: pick('pressure', 'pressure') ?? DEFAULTS.pressure,
    json: pick('json', 'json') ?? DEFAULTS.json,
    quiet: raw['quiet'] === true,
    steady: raw['steady'] === true,
    steadySeconds: pick('steadySeconds', 'steady-seconds') ?? DEFAULTS.steadySeconds,
    watchdogSeconds: pick('watchdogSeconds', 'watchdog') ?? DEFAULTS.watchdogSeconds,
    cacheCapacity: pick('cacheCapacity', 'cache-capacity') ?? DEFAULTS.cacheCapacity,
    chunkPages: pick('chunkPages', 'chunk-size') ?? DEFAULTS.chunkPages,
    reschedMs: pick('reschedMs', 'resched-ms') ?? DEFAULTS.reschedMs,
    yieldOnContention: raw['yield-on-contention'] === true,
    compare: raw['compare'] === true,
    csv: pick('csv', 'csv') ?? DEFAULTS.csv,
    repeat: pick('repeat', 'repeat') ?? DEFAULTS.repeat,
    workload: pick('workload', 'workload') ?? DEFAULTS.workload,
    dirtyTrack: pick('dirtyTrack', 'dirty-track') ?? DEFAULTS.dirtyTrack,
    jitWarmup: pick('jitWarmup', 'jit-warmup') ?? DEFAULTS.jitWarmup,
    hostCosts: pick('hostCosts', 'host-costs') ?? DEFAULTS.hostCosts,
    nxHugePages: pick('nxHugePages', 'nx-huge-pages') ?? DEFAULTS.nxHugePages,
    faultModel: pick('faultModel', 'fault-model') ?? DEFAULTS.faultModel,
    clearChunkPages: pick('clearChunkPages', 'clear-chunk') ?? DEFAULTS.clearChunkPages,
    clearDelayMs: pick('clearDelayMs', 'clear-delay') ?? DEFAULTS.clearDelayMs,
    clearLock: pick('clearLock', 'clear-lock') ?? DEFAULTS.clearLock,
    kernel: pick('kernel', 'kernel') ?? DEFAULTS.kernel,
    hostEvents:
      pick('hostEvents', 'host-events') ?? parseHostEvents(flagName('host-events'), hostEventsForPressure(pick('pressure', 'pressure') ?? DEFAULTS.pressure)),
    anachronisms: [],
    html: pick('html', 'html') ?? DEFAULTS.html,
    timelineCsv: pick('timelineCsv', 'timeline-csv') ?? DEFAULTS.timelineCsv,
    trace: pick('trace', 'trace') ?? DEFAULTS.trace,
    poolTables: pick('poolTables', 'pool-tables') ?? DEFAULTS.poolTables,
  };
  const applied = applyKernel(opts, str);
  // The shadow MMU of the April 2024 measurement ran without eager splitting (tdp_mmu=N): eager
  // splitting is forced off, and refused when asked for explicitly.
  if (applied.faultModel === 'shadow') {
    if (str('eager-split') !== undefined && opts.eagerSplit) {
      throw invalidOption(flagName('fault-model'), 'shadow models the shadow MMU without eager splitting; it contradicts --eager-split on');
    }
    return Object.freeze({ ...checkSteady(applied, str), eagerSplit: false });
  }
  return Object.freeze(checkSteady(applied, str));
}

/**
 * The --kernel release's defaults for what the command line left out, and the check of what it
 * set (kernel_version.ts says what is impossible and what is only anachronistic).
 */
function applyKernel(opts: EmulateOptions, str: (k: string) => string | undefined): EmulateOptions {
  const k = kernelBehaviour(opts.kernel);
  const kv = formatKernel(opts.kernel);
  const designGiven = str('split-alloc') !== undefined;
  const eagerGiven = str('eager-split') !== undefined;
  const lazyDesign = opts.splitAlloc === 'lazy' || opts.splitAlloc === 'lazy-zap';
  const notes: string[] = [];
  // `lazy` and `lazy-zap` are eager splitting off (the split walk never runs): lazy is the same
  // run as --eager-split off; lazy-zap also makes faults zap huge pages (the pre-6.2 path).
  if (lazyDesign && eagerGiven && opts.eagerSplit) {
    throw invalidOption(flagName('split-alloc'), `${opts.splitAlloc} means eager splitting off; it contradicts --eager-split on`);
  }
  // Eager splitting: off for the lazy designs; as given; on when an eager design is named; else the release's.
  const eagerSplit = lazyDesign ? false : eagerGiven ? opts.eagerSplit : designGiven || k.eagerSplitExists;
  if (eagerSplit && !k.eagerSplitExists) {
    throw invalidOption(
      designGiven ? flagName('split-alloc') : flagName('eager-split'),
      `Linux ${kv} has no eager page splitting (it arrived in 5.18): ${designGiven ? opts.splitAlloc : '--eager-split on'} is impossible there`,
    );
  }
  let splitAlloc = opts.splitAlloc;
  if (!designGiven && eagerSplit) splitAlloc = k.splitAlloc ?? opts.splitAlloc;
  // With eager splitting off only the fault path matters: before 6.2 it zaps.
  if (!eagerSplit && !lazyDesign && k.lazyPath === 'lazy-zap') splitAlloc = 'lazy-zap';
  if (splitAlloc === 'lazy' && k.lazyPath === 'lazy-zap') {
    throw invalidOption(flagName('split-alloc'), `Linux ${kv} zaps huge pages on write faults (split on fault arrived in 6.2): lazy is impossible there`);
  }
  if (designGiven && eagerSplit && k.splitAlloc !== null && splitAlloc !== k.splitAlloc) {
    notes.push(`--split-alloc ${splitAlloc} on Linux ${kv}, which ships ${k.splitAlloc}`);
  }
  if (designGiven && splitAlloc === 'lazy-zap' && k.lazyPath === 'lazy') notes.push(`lazy-zap on Linux ${kv}, which splits on fault (6.2+)`);
  if (opts.hostEvents.retry !== undefined && opts.hostEvents.retry !== k.notifierRetry) {
    notes.push(`notifier retry ${opts.hostEvents.retry} on Linux ${kv} (${k.notifierRetry})`);
  }
  if (opts.hostEvents.agingLock !== undefined && opts.hostEvents.agingLock !== k.agingLock) {
    notes.push(`aging under ${opts.hostEvents.agingLock} on Linux ${kv} (${k.agingLock})`);
  }
  return { ...opts, eagerSplit, splitAlloc, anachronisms: Object.freeze(notes) };
}

function checkSteady(opts: EmulateOptions, str: (k: string) => string | undefined): EmulateOptions {
  if (str('steady-seconds') !== undefined && !opts.steady) {
    throw invalidOption(flagName('steady-seconds'), 'only meaningful with --steady');
  }
  if (opts.steady && opts.steadySeconds <= 0) {
    throw invalidOption(flagName('steady-seconds'), 'must be greater than 0 with --steady');
  }
  return opts;
}

/** `--help`: every option with its default and units. */
export function helpText(): string {
  const lines: string[] = [
    'Usage: npm run emulate -- [options]',
    '',
    "Runs KVM's dirty_log_perf_test flow on an emulated TDP MMU: one worker thread per vCPU plus a",
    'splitter thread (the ioctls: enable/GET/CLEAR/disable dirty logging, with eager page splitting),',
    "all on one SharedArrayBuffer. Prints the selftest's timing lines, then fault latency, mmu_lock,",
    "splitter, RCU and page statistics, and the invariant checker's verdict.",
    '',
    'Options:',
  ];
  const rows = OPTION_SPECS.filter((s) => s.hidden !== true).map((s) => {
    const flag = `${s.short !== undefined ? `-${s.short}, ` : '    '}--${s.long}${s.arg !== undefined ? ` ${s.arg}` : ''}`;
    // U+00A0 keeps "[default: X]" on one line when wrapping; turned back into spaces below.
    const def = s.shownDefault !== undefined ? ` [default:\u00a0${s.shownDefault.replaceAll(' ', '\u00a0')}]` : '';
    return { flag, text: `${s.help}${def}` };
  });
  const width = Math.max(...rows.map((r) => r.flag.length)) + 2;
  for (const r of rows) lines.push(...wrap(`  ${r.flag.padEnd(width)}`, r.text, 100));
  lines.push(
    '',
    'Workloads:',
    ...workloadNames().flatMap((n) => {
      const def = workloadDefinition(n);
      return [
        `  ${n.padEnd(20)}${def?.summary ?? ''}`,
        ...(def?.knobs ?? []).map((k) => `    ${`${k.key}=`.padEnd(18)}${k.help} [default: ${k.shownDefault}]`),
      ];
    }),
    'A knob given in --workload overrides the flag it mirrors (memstress:write=N over -w N).',
    '',
    'Split allocation designs:',
    ...splitAllocDesignNames().map((n) => {
      const info = splitAllocDesignInfo(n);
      return `  ${n.padEnd(20)}${info === undefined ? '' : `${info.summary} (${info.origin})`}`;
    }),
    '',
    'Comma lists for --split-alloc, --cache-capacity, --levels, --vcpus and --pressure (";" between custom',
    'pressure specs) run one emulation per combination and print the compare table (--csv for one row each).',
    'Sizes take K, M, G or T suffixes (binary units); a plain number is bytes. Each memslot must be a',
    'whole number of backing pages (2M for THP/hugetlb_2mb, 1G for hugetlb_1gb).',
    'Guests whose page tables would not fit in free memory are refused before anything is allocated.',
    '',
    'Exit codes: 0 success; 1 a worker failed or an invariant was violated; 2 bad option or guest',
    'too big; 3 the watchdog saw a stuck phase; 130 interrupted (Ctrl-C).',
  );
  return lines.join('\n');
}

function wrap(prefix: string, text: string, width: number): string[] {
  const out: string[] = [];
  const indent = ' '.repeat(prefix.length);
  let line = prefix;
  for (const word of text.split(' ')) {
    if (line.length + word.length + 1 > width && line.trim() !== '' && line !== prefix) {
      out.push(line.trimEnd());
      line = indent;
    }
    line += (line === prefix || line === indent ? '' : ' ') + word;
  }
  out.push(line.trimEnd());
  return out.map((l) => l.replaceAll('\u00a0', ' '));
}
