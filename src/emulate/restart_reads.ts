/**
 * The memory traffic of restarts, measured exactly (FINDINGS.md section 4; Sean, 2021-12-02:
 * "If every allocation is dropping mmu_lock, that adds up to a lot of extra memory accesses,
 * especially when using 5-level paging").
 *
 * For each design and root depth: build a guest whose memory is mapped with huge pages, split it
 * once with the design and once with a reference that never restarts (blocking-under-lock with
 * no pressure: it allocates in place), on identical trees, single-threaded, with cond_resched off
 * (reschedMs = Infinity) so that only the design's own lock drops restart the walk. The extra
 * SPTE reads are the difference of the walks' counts; the model compare.ts uses,
 * restarts x (1 + 2 x (levels - split level)), is printed beside it.
 *
 *   node dist/src/emulate/restart_reads.js [--levels 4,5] [--backing anonymous_thp|anonymous_hugetlb_1gb]
 *        [--memory 1G] [--designs drop-always,cache,...] [--cache-capacity 40] [--chunk-size 1G]
 */
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { attachVm, createVm, DEFAULT_FIRST_GFN } from '../vm.js';
import { PRESSURE_PROFILES } from '../mmu/allocator.js';
import { createAccessResult, guestAccess } from '../mmu/guest_access.js';
import { checkInvariants } from '../mmu/invariants.js';
import { splitHugePagesYieldSafe } from '../mmu/tdp_mmu_split.js';
import { createSplitAllocDesign } from '../mmu/split_alloc.js';
import { chunkSizeToPages, releaseSplitAllocDesign, SPLIT_ALLOC_DESIGN_ORDER, splitIsEager, splitLockShared } from '../mmu/split_alloc_designs.js';
import { pagesPerHpage } from '../mmu/spte.js';
import { errorCode, invalidOption } from '../errors.js';
import { restartRewalkReads } from './compare.js';
import { table, formatCount } from './report.js';
import { parseSize } from './options.js';

export interface RestartReadsCase {
  readonly design: string;
  readonly levels: 4 | 5;
  /** 2 (2M pages) or 3 (1G pages). */
  readonly backingLevel: 2 | 3;
  /** 4K pages of guest memory (a whole number of huge pages). */
  readonly pages: number;
  readonly cacheCapacity?: number;
  readonly chunkPages?: number;
}

export interface RestartReadsResult extends RestartReadsCase {
  readonly splits: number;
  readonly restarts: number;
  readonly lockDrops: number;
  readonly walks: number;
  readonly spteReads: number;
  readonly referenceReads: number;
  /** spteReads - referenceReads: what the design's restarts (and chunk walks) cost. */
  readonly extraReads: number;
  /** The compare table's model: restarts x re-walk depth. */
  readonly modelReads: number;
}

/** Split one freshly mapped guest with `design`; returns the walk's counts. */
function splitOnce(c: RestartReadsCase, design: string): { splits: number; restarts: number; lockDrops: number; spteReads: number; walks: number } {
  const span = pagesPerHpage(c.backingLevel);
  const shared = createVm({
    levels: c.levels,
    memslots: [{ baseGfn: DEFAULT_FIRST_GFN, npages: c.pages }],
    backingLevel: c.backingLevel,
    workers: 1,
    pressure: PRESSURE_PROFILES.none,
    seed: 1,
  });
  const vm = attachVm(shared, 0);
  try {
    const out = createAccessResult();
    for (let gfn = DEFAULT_FIRST_GFN; gfn < DEFAULT_FIRST_GFN + c.pages; gfn += span) guestAccess(vm, gfn, 'write', out);
    vm.vcpuCache.freeAll();
    const params = {
      ...(c.cacheCapacity !== undefined ? { cacheCapacity: c.cacheCapacity } : {}),
      ...(c.chunkPages !== undefined ? { chunkPages: c.chunkPages } : {}),
    };
    const d = createSplitAllocDesign(design, vm, params);
    if (d === undefined || !splitIsEager(d)) throw invalidOption('--designs', `${design} is not an eager split design`);
    const sh = splitLockShared(d, true);
    if (sh) vm.mmuLock.readLock();
    else vm.mmuLock.writeLock();
    const walks0 = vm.workerStats(0)['walks'] ?? 0;
    const r = splitHugePagesYieldSafe(vm, DEFAULT_FIRST_GFN, DEFAULT_FIRST_GFN + c.pages, { shared: sh, design: d, reschedMs: Infinity });
    if (sh) vm.mmuLock.readUnlock();
    else vm.mmuLock.writeUnlock();
    releaseSplitAllocDesign(d);
    const walks = (vm.workerStats(0)['walks'] ?? 0) - walks0;
    const inv = checkInvariants(vm);
    if (!r.ok || !inv.ok) throw new Error(`restart_reads: ${design} at ${c.levels} levels did not split cleanly (${r.code ?? 'invariants'})`);
    return { splits: r.hugePagesSplit, restarts: r.restarts, lockDrops: r.lockDrops, spteReads: r.spteReads, walks };
  } finally {
    vm.detach();
  }
}

/** Measure one case against the no-restart reference on an identical guest. */
export function measureRestartReads(c: RestartReadsCase): RestartReadsResult {
  const ref = splitOnce(c, 'blocking-under-lock');
  if (ref.restarts !== 0) throw new Error('restart_reads: the reference walk restarted');
  const m = splitOnce(c, c.design);
  // Splits per level: each huge page at the backing level, plus 512 2M children per 1G page.
  const hugePages = c.pages / pagesPerHpage(c.backingLevel);
  const at3 = c.backingLevel === 3 ? hugePages : 0;
  const at2 = m.splits - at3;
  const perRestart = (at2 * restartRewalkReads(c.levels, 2) + at3 * restartRewalkReads(c.levels, 3)) / m.splits;
  return {
    ...c,
    ...m,
    referenceReads: ref.spteReads,
    extraReads: m.spteReads - ref.spteReads,
    modelReads: m.restarts * perRestart,
  };
}

export function formatRestartReads(results: readonly RestartReadsResult[]): string[] {
  return table(
    [
      'design',
      'levels',
      'splits',
      'lock drops',
      'restarts',
      'walks',
      'SPTE reads',
      'no-restart reads',
      'extra reads',
      'extra/split',
      'model (restarts x depth)',
    ],
    results.map((r) => [
      r.design +
        (r.design === 'cache' ? ` (cap ${r.cacheCapacity ?? 40})` : r.design === 'chunked-cache' ? ` (${r.chunkPages === 512 ? '2M' : '1G'} chunks)` : ''),
      String(r.levels),
      formatCount(r.splits),
      formatCount(r.lockDrops),
      formatCount(r.restarts),
      formatCount(r.walks),
      formatCount(r.spteReads),
      formatCount(r.referenceReads),
      formatCount(r.extraReads),
      (r.extraReads / r.splits).toFixed(3),
      formatCount(r.modelReads),
    ]),
  );
}

function main(argv: readonly string[]): number {
  try {
    const { values } = parseArgs({
      args: [...argv],
      options: {
        levels: { type: 'string', default: '4,5' },
        backing: { type: 'string', default: 'anonymous_thp' },
        memory: { type: 'string', default: '1G' },
        designs: { type: 'string', default: SPLIT_ALLOC_DESIGN_ORDER.filter((d) => d !== 'lazy' && d !== 'lazy-zap').join(',') },
        'cache-capacity': { type: 'string', default: '40' },
        'chunk-size': { type: 'string', default: '1G' },
      },
      strict: true,
    });
    const levels = values.levels.split(',').map((s) => {
      if (s.trim() !== '4' && s.trim() !== '5') throw invalidOption('--levels', `expected 4 or 5, got ${s}`);
      return Number(s) as 4 | 5;
    });
    const backingLevel =
      values.backing === 'anonymous_hugetlb_1gb' ? 3 : values.backing === 'anonymous_thp' || values.backing === 'anonymous_hugetlb_2mb' ? 2 : undefined;
    if (backingLevel === undefined)
      throw invalidOption('--backing', `expected a huge backing (anonymous_thp, anonymous_hugetlb_2mb, anonymous_hugetlb_1gb), got ${values.backing}`);
    const pages = parseSize('--memory', values.memory) / 4096;
    if (pages % pagesPerHpage(backingLevel) !== 0) throw invalidOption('--memory', 'must be a whole number of backing pages');
    const chunkPages = chunkSizeToPages(parseSize('--chunk-size', values['chunk-size']));
    if (chunkPages === undefined) throw invalidOption('--chunk-size', 'must be 2M or 1G');
    const cacheCapacity = Number(values['cache-capacity']);
    if (!Number.isInteger(cacheCapacity) || cacheCapacity < 1) throw invalidOption('--cache-capacity', 'must be a positive integer');
    const results: RestartReadsResult[] = [];
    for (const lv of levels) {
      for (const design of values.designs.split(',').map((s) => s.trim())) {
        results.push(measureRestartReads({ design, levels: lv, backingLevel, pages, cacheCapacity, chunkPages }));
      }
    }
    process.stdout.write(`SPTE reads of one eager split of ${values.memory} of ${values.backing}, per design, against a walk that never restarts\n`);
    process.stdout.write(`${formatRestartReads(results).join('\n')}\n`);
    return 0;
  } catch (err) {
    const code = errorCode(err);
    process.stderr.write(`restart_reads: ${(err as Error).message}\n`);
    return code === 'ERR_INVALID_OPTION' || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true ? 2 : 1;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) process.exitCode = main(process.argv.slice(2));
