/**
 * The worker counters: ONE table, and everything else derived from it.
 *
 * Each row of WORKER_STAT_ROWS is one Float64 counter in every worker's stat slot (the
 * WORKER_STATS region of the control SAB, layout.ts). From the rows come:
 *   - the slot index of each counter: `WS.spteReads` (a frozen object of numbers, so a hot path
 *     pays one property load, the same as a module constant);
 *   - the names used by snapshots and sums (`vm.sumStats()['spteReads']`);
 *   - the report: rows of group 'split' are the fields of `SplitCounters` (report_model.ts), the
 *     JSON keys under `split`, `split.splitter` and `phases[].counters` (`jsonKey`, when the JSON
 *     spelling differs from the counter's), the lines of the text report's counter table
 *     (`label`) and the CSV's `total_*` columns (csv.ts); rows of group 'corruption' are the
 *     invariant channels that fail a run (report_build.ts, main.ts);
 *   - the watchdog's probe: the sum of every row with `progress: true` (engine.ts), and the
 *     counters its stuck dump prints.
 * Adding a counter is one row here (then `vm.stats.add(WS.newKey, n)` where it happens).
 *
 * Who writes, who reads, and why the reads are safe. Each slot has ONE writer, the worker that
 * owns it, which updates it with plain Float64 loads and stores (no atomics: the adds sit on
 * vCPU fault paths). The main thread reads every slot:
 *   (a) at the end of every phase (engine.ts), for the per-phase counter deltas;
 *   (b) every watchdog poll, for the progress probe;
 *   (c) once after every worker has finished, for the totals.
 * In (c), and in (a) for a vCPU pass or a splitter op, the writers have published everything
 * with an Atomics store the main thread then loaded (VCPU_DONE, CMD_DONE in control.ts; the
 * task result): a happens-before edge, so the values are exact. In (b), and in (a) when vCPUs
 * free-run through a phase (--steady, -e), the read races the owner's stores. The ECMAScript
 * memory model promises tear-free racy reads only for integer element types; Float64 is not
 * one of them. What makes the read sound here is the engine: V8 on x64 and arm64 (the targets this
 * project runs on; a report records its host.arch) compiles a Float64Array element
 * access to one naturally aligned 8-byte load or store, which both architectures make
 * single-copy atomic, and every slot is 8-byte aligned (layout.ts). So a racy read returns a
 * value the owner really stored, a little older or newer than the phase boundary. That is
 * enough for (b), which only asks whether anything changed (with no writer there is no race at
 * all), and for (a) in the free-running modes, where the boundary is not a barrier for the
 * vCPUs anyway: a counter lands in the phase whose end the main thread read it before.
 */
import { invalidArg } from '../errors.js';

/**
 * How the report uses a counter:
 *  - 'split': a SplitCounters field (split walk and allocation work), in the JSON, text and CSV;
 *  - 'corruption': evidence of a broken MMU; any non-zero value fails the run (exit 1);
 *  - 'lock': mmu_lock contention (Report.mmuLock);
 *  - 'fault' and 'walk': vCPU fault and walk bookkeeping, kept for tests and sums only.
 */
export type WorkerStatGroup = 'split' | 'corruption' | 'lock' | 'fault' | 'walk';

export interface WorkerStatRow {
  /** The counter's name in snapshots, sums and `WS`. */
  readonly key: string;
  /** What one unit of the counter is, and who counts it. */
  readonly doc: string;
  readonly unit: 'events' | 'tables' | 'SPTE loads' | 'huge pages' | 'guest accesses' | 'faults' | 'walks' | 'ns';
  readonly group: WorkerStatGroup;
  /** The text report's label (split counters). */
  readonly label: string;
  /** The JSON key, when it is not `key` (kept as the report has always spelt it). */
  readonly jsonKey?: string;
  /** Counts towards the watchdog's progress probe. */
  readonly progress: boolean;
}

/**
 * The table. Order = slot index, and the order of the text report's counter table and of the
 * split counters in the JSON. Capacity: WORKER_STAT_FIELDS (layout.ts).
 */
export const WORKER_STAT_ROWS = [
  {
    key: 'hugePagesSplit',
    doc: 'huge SPTEs split, eagerly or on a fault (tdp_mmu_split.ts)',
    unit: 'huge pages',
    group: 'split',
    label: 'huge pages split',
    progress: true,
  },
  { key: 'tablesAllocated', doc: 'page tables installed in the tree', unit: 'tables', group: 'split', label: 'tables installed', progress: true },
  {
    key: 'allocFromCache',
    doc: 'tables taken from an MmuMemoryCache (MmuMemoryCache.pop)',
    unit: 'tables',
    group: 'split',
    label: '  alloc from a cache',
    progress: false,
  },
  {
    key: 'allocNowait',
    doc: 'successful GFP_NOWAIT allocations (PageAllocator.allocNowait)',
    unit: 'tables',
    group: 'split',
    label: '  alloc nowait',
    progress: true,
  },
  {
    key: 'allocBlocking',
    doc: 'successful GFP_KERNEL allocations (PageAllocator.allocBlocking)',
    unit: 'tables',
    group: 'split',
    label: '  alloc blocking',
    progress: true,
  },
  {
    key: 'allocFailed',
    jsonKey: 'allocFailures',
    doc: 'failed allocations of either kind (PageAllocator)',
    unit: 'events',
    group: 'split',
    label: '  alloc failed',
    progress: false,
  },
  {
    key: 'allocUnderLock',
    doc: 'allocations made while holding mmu_lock (the split designs)',
    unit: 'tables',
    group: 'split',
    label: '  alloc under mmu_lock',
    progress: false,
  },
  {
    key: 'leftoverFreed',
    doc: 'cache leftovers freed unused (MmuMemoryCache.freeAll)',
    unit: 'tables',
    group: 'split',
    label: '  cache leftovers freed',
    progress: false,
  },
  {
    key: 'lockDrops',
    doc: 'mmu_lock drops to allocate (the 6.11 drop-always path)',
    unit: 'events',
    group: 'split',
    label: 'lock drops (to allocate)',
    progress: true,
  },
  {
    key: 'restarts',
    doc: 'walk restarts from the root (lost races, yields, frozen SPTEs)',
    unit: 'events',
    group: 'split',
    label: 'walk restarts',
    progress: false,
  },
  { key: 'spteReads', doc: 'SPTE loads made by walks (tdp_iter spteReads)', unit: 'SPTE loads', group: 'split', label: 'SPTE reads', progress: true },
  { key: 'yields', doc: 'tdp_mmu_iter_cond_resched yields', unit: 'events', group: 'split', label: 'yields (cond_resched)', progress: true },
  {
    key: 'splitEnomem',
    doc: 'splits that found no table and write-protected the huge SPTE instead',
    unit: 'events',
    group: 'split',
    label: 'split ENOMEM',
    progress: false,
  },
  { key: 'walks', doc: 'walks started (iterator starts)', unit: 'walks', group: 'walk', label: 'walks', progress: false },
  { key: 'fastFaults', doc: 'faults fixed on the lockless fast path', unit: 'faults', group: 'fault', label: 'fast faults', progress: false },
  { key: 'slowFaults', doc: 'faults taken under mmu_lock for read', unit: 'faults', group: 'fault', label: 'slow faults', progress: false },
  { key: 'faultRetries', doc: 'faults taken again for the same access (a lost race)', unit: 'faults', group: 'fault', label: 'fault retries', progress: false },
  { key: 'accesses', doc: 'guest accesses performed by vCPUs', unit: 'guest accesses', group: 'fault', label: 'guest accesses', progress: true },
  {
    key: 'poisonReads',
    doc: 'walker reads of POISON_SPTE: a use-after-free of a page table',
    unit: 'SPTE loads',
    group: 'corruption',
    label: 'poison reads',
    progress: false,
  },
  {
    key: 'xlateErrors',
    doc: 'translations that disagreed with the backing (backingPfn)',
    unit: 'events',
    group: 'corruption',
    label: 'translation errors',
    progress: false,
  },
  { key: 'zappedTables', doc: 'page tables unlinked by zaps', unit: 'tables', group: 'walk', label: 'zapped tables', progress: false },
  {
    key: 'lockReadContended',
    doc: 'mmu_lock read acquisitions that had to wait (MmuLock)',
    unit: 'events',
    group: 'lock',
    label: 'contended reads',
    progress: false,
  },
  {
    key: 'lockWriteContended',
    doc: 'mmu_lock write acquisitions that had to wait (MmuLock)',
    unit: 'events',
    group: 'lock',
    label: 'contended writes',
    progress: false,
  },
  {
    key: 'pmlFullExits',
    doc: "PML-full VM exits: a vCPU's 512-entry PML buffer filled (pml.ts)",
    unit: 'events',
    group: 'fault',
    label: 'PML-full exits',
    progress: false,
  },
  {
    key: 'pmlWrites',
    doc: 'guest writes the emulated hardware logged in the PML buffer (D set by the walk, no fault)',
    unit: 'guest accesses',
    group: 'fault',
    label: 'PML writes',
    progress: true,
  },
  {
    key: 'hostCostNs',
    doc: 'modelled host costs spent on this thread (host_costs.ts)',
    unit: 'ns',
    group: 'fault',
    label: 'host costs spent',
    progress: false,
  },
  { key: 'tlbFlushes', doc: 'remote TLB flushes this thread issued (host_costs.ts)', unit: 'events', group: 'walk', label: 'TLB flushes', progress: false },
  {
    key: 'firstTouchFaults',
    doc: 'EPT violations on a gfn with no translation (never mapped, or zapped)',
    unit: 'faults',
    group: 'fault',
    label: 'first-touch faults',
    progress: false,
  },
  {
    key: 'spHeaderAllocs',
    doc: 'kvm_mmu_page headers allocated, one per sp besides its page table (PageAllocator)',
    unit: 'events',
    group: 'split',
    label: '  sp headers allocated',
    progress: true,
  },
  {
    key: 'reclaims',
    doc: 'allocation draws whose fast path failed, so a GFP_KERNEL allocation reclaimed (PageAllocator)',
    unit: 'events',
    group: 'split',
    label: '  reclaims (GFP_KERNEL)',
    progress: false,
  },
  {
    key: 'rfcDropTlbFlushes',
    doc: "remote TLB flushes the RFC 'cache' design made on every lock drop, counted, not spent (split_alloc_cache.ts)",
    unit: 'events',
    group: 'split',
    label: 'RFC drop TLB flushes',
    progress: false,
  },
  // Per-kind fault counts, one per faulting access (guest_access.ts FaultKind; the first fault decides).
  {
    key: 'faultWpFast',
    doc: 'accesses whose write-protection fault the lockless fast path fixed (faultKind wp-fast)',
    unit: 'guest accesses',
    group: 'fault',
    label: 'wp-fast faults',
    progress: false,
  },
  {
    key: 'faultWpSlow',
    doc: 'accesses whose write fault needed mmu_lock: a write-protected huge page, or a fast fault that gave up (faultKind wp-slow)',
    unit: 'guest accesses',
    group: 'fault',
    label: 'wp-slow faults',
    progress: false,
  },
  {
    key: 'faultExec',
    doc: 'accesses whose instruction fetch met a leaf without X, e.g. a huge page with NX huge pages (faultKind exec)',
    unit: 'guest accesses',
    group: 'fault',
    label: 'exec faults',
    progress: false,
  },
  {
    key: 'faultFirstTouch',
    doc: 'accesses that met no translation (faultKind first-touch; firstTouchFaults counts the faults themselves)',
    unit: 'guest accesses',
    group: 'fault',
    label: 'first-touch accesses',
    progress: false,
  },
  {
    key: 'faultRead',
    doc: 'accesses with any other read fault, e.g. an SPTE frozen by a zap (faultKind read)',
    unit: 'guest accesses',
    group: 'fault',
    label: 'read faults',
    progress: false,
  },
  {
    key: 'nxHugePagesSplit',
    doc: 'huge pages an execute fault split or zapped because NX huge pages withhold X (tdp_mmu_fault.ts)',
    unit: 'huge pages',
    group: 'fault',
    label: 'NX huge pages split on exec',
    progress: false,
  },
  {
    key: 'nxRecoveryZaps',
    doc: 'possible NX huge pages the NX recovery worker zapped (nx_huge_pages.ts)',
    unit: 'tables',
    group: 'walk',
    label: 'NX recovery zaps',
    progress: false,
  },
  {
    key: 'clearLockHolds',
    doc: 'mmu_lock write acquisitions by CLEAR_DIRTY_LOG: one per call (whole), one per non-empty 64-page word (per-word); dirty_log.ts',
    unit: 'events',
    group: 'walk',
    label: 'CLEAR lock holds',
    progress: false,
  },
  {
    key: 'hostInvalidations',
    doc: 'MMU-notifier invalidate_range_start calls by the host-events thread (mmu_notifier.ts)',
    unit: 'events',
    group: 'walk',
    label: 'notifier invalidations',
    progress: true,
  },
  { key: 'hostZappedLeaves', doc: 'leaf SPTEs zapped by notifier invalidations', unit: 'events', group: 'walk', label: 'invalidated leaves', progress: false },
  {
    key: 'notifierRetries',
    doc: 'vCPU slow faults that found their gfn in an invalidation in progress (or the sequence moved) and retried',
    unit: 'faults',
    group: 'fault',
    label: 'notifier retries',
    progress: false,
  },
  {
    key: 'hostAgingRuns',
    doc: 'accessed-bit aging calls (kvm_age_gfn) by the host-events thread',
    unit: 'events',
    group: 'walk',
    label: 'aging runs',
    progress: true,
  },
  { key: 'hostAgedLeaves', doc: 'leaf SPTEs whose accessed bit aging cleared', unit: 'events', group: 'walk', label: 'aged leaves', progress: false },
  {
    key: 'staleTranslations',
    doc: 'present leaves found inside a range when its invalidation ended (a fault that ignored the notifier); also counted in xlateErrors',
    unit: 'events',
    group: 'walk',
    label: 'stale translations',
    progress: false,
  },
] as const satisfies readonly WorkerStatRow[];

type StaticRow = (typeof WORKER_STAT_ROWS)[number];
export type WorkerStatKey = StaticRow['key'];
type JsonKeyOf<R> = R extends { readonly jsonKey: infer J extends string } ? J : R extends { readonly key: infer K extends string } ? K : never;

/** The split counters of a report, one field per 'split' row, named by its JSON key. */
export type SplitCounters = { readonly [R in Extract<StaticRow, { readonly group: 'split' }> as JsonKeyOf<R>]: number };

/**
 * Test-only hook (env EMULATE_TEST_STAT_ROW=name, read when the module loads in each thread,
 * which inherits the environment): one extra 'split' row, so a test can show that a new row
 * reaches the text report, the JSON, the CSV and the watchdog's dump with no other change.
 */
function testRows(): WorkerStatRow[] {
  const name = typeof process === 'undefined' ? undefined : process.env['EMULATE_TEST_STAT_ROW'];
  if (name === undefined || name === '') return [];
  if (!/^[a-z][A-Za-z0-9]*$/.test(name)) throw invalidArg('EMULATE_TEST_STAT_ROW', `${JSON.stringify(name)} must be a camelCase identifier`);
  return [{ key: name, doc: 'test-only row', unit: 'events', group: 'split', label: name, progress: true }];
}

/** Every row in slot order: the static table, then a test row when the hook is set. */
export const STAT_ROWS: readonly WorkerStatRow[] = Object.freeze([...WORKER_STAT_ROWS, ...testRows()]);

/** Slot index of every static counter: `stats.add(WS.spteReads, n)`. */
export const WS: Readonly<Record<WorkerStatKey, number>> = Object.freeze(
  Object.fromEntries(WORKER_STAT_ROWS.map((r, i) => [r.key, i])) as Record<WorkerStatKey, number>,
);

/** Counter names by slot index. */
export const WORKER_STAT_NAMES: readonly string[] = Object.freeze(STAT_ROWS.map((r) => r.key));

/** A row's JSON key. */
export function jsonKeyOf(row: WorkerStatRow): string {
  return row.jsonKey ?? row.key;
}

/** The rows of one group, in slot order. */
function rowsOf(group: WorkerStatGroup): readonly WorkerStatRow[] {
  return STAT_ROWS.filter((r) => r.group === group);
}

/** The split rows (report_model's SplitCounters), in slot order. */
export const SPLIT_ROWS: readonly WorkerStatRow[] = rowsOf('split');

/** Keys counted by the watchdog's progress probe. */
export const PROGRESS_KEYS: readonly string[] = Object.freeze(STAT_ROWS.filter((r) => r.progress).map((r) => r.key));

/** SplitCounters from two name-keyed snapshots (after - before), by JSON key, in table order. */
export function splitCounterDeltas(after: Readonly<Record<string, number>>, before: Readonly<Record<string, number>>): SplitCounters {
  const out: Record<string, number> = {};
  for (const r of SPLIT_ROWS) out[jsonKeyOf(r)] = (after[r.key] ?? 0) - (before[r.key] ?? 0);
  return out as unknown as SplitCounters;
}

/** camelCase -> snake_case, for CSV column names. */
export function snakeCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}
