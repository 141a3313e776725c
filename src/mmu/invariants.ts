/**
 * The invariant checker: a full, independent walk of the tree (plain recursion, not TdpIter)
 * that checks everything the MMU promises, for tests and for the end of an emulation run.
 *
 * Run it only when the MMU is quiescent: no vCPU, splitter or zapper running, every vCPU out of
 * guest code (its PML buffer flushed), and every worker's RCU callbacks drained (Vm.detach() or
 * rcu.barrier() on each thread that freed tables), or the pool accounting check reports the
 * tables still waiting.
 *
 * Checked:
 *   - translation: every present leaf maps the pfn the backing gives its gfn (pfn aligned to the
 *     level), and lies entirely inside one memslot (split, zap and recover never change gfn->pfn);
 *   - lost mappings (only where the caller says what must be mapped, `mustMap`): a non-present
 *     SPTE at any level whose gfns overlap a must-map range. The tree alone cannot tell a lost
 *     mapping from a zapped one (a zap leaves the same non-present value), and page statistics
 *     adjusted by the same bug stay consistent, so the caller's knowledge is the only witness:
 *     after a populate, split, write-protect and CLEAR never unmap anything;
 *   - large bits only at legal levels: leaves at 2M and 1G carry it, 4K entries never, and nothing
 *     above 1G is a leaf;
 *   - no table reachable twice, every reachable table is IN_USE in the pool, child indices in range;
 *   - no FROZEN_SPTE or POISON_SPTE reachable, no other stray non-present value;
 *   - dirty logging: in a slot that logs dirty pages, a write that will not be seen must already
 *     be in the log. With write protection (dirtyTrack 'wrprot'): every page under a writable leaf
 *     has its dirty bit set (a write through that SPTE does not fault, so nothing else marks it).
 *     With PML: every page under a writable leaf whose D bit is set has its dirty bit set, once
 *     every vCPU's PML buffer is flushed (a write with D clear is logged by PML; a write-protected
 *     leaf, e.g. a huge page keeping a stale D, faults on its next write and is marked then);
 *   - pool accounting balances (reachable tables == in use; the pool's own audit);
 *   - page statistics (pages_4k/2m/1g) equal the leaves counted in the tree.
 * Violations carry gfn, level and SPTE values (hex); the list is capped (the count is not).
 */
import type { Vm } from '../vm.js';
import { TS_IN_USE } from './pt_pool.js';
import { readPageStats } from './page_stats.js';
import { isPageDirty, slotLogsDirty } from './slot_flags.js';
import {
  FROZEN_SPTE,
  MAX_HUGE_LEVEL,
  PG_LEVEL_4K,
  POISON_SPTE,
  PT_ENTRIES,
  SHADOW_NONPRESENT_VALUE,
  isDirty,
  isLargeSpte,
  isShadowPresent,
  isWritable,
  pagesPerHpage,
  spteHex,
  spteToChildTable,
  spteToPfn,
} from './spte.js';

export interface Violation {
  readonly kind:
    | 'translation'
    | 'lost-mapping'
    | 'outside-memslot'
    | 'large-bit'
    | 'table-twice'
    | 'table-state'
    | 'table-index'
    | 'frozen'
    | 'poison'
    | 'stray-value'
    | 'lost-dirty'
    | 'pool-accounting'
    | 'page-stats';
  readonly message: string;
  readonly gfn?: number;
  readonly level?: number;
  /** SPTE value in hex. */
  readonly spte?: string;
  readonly table?: number;
}

export interface InvariantReport {
  readonly ok: boolean;
  /** Total violations found (the list below is capped at maxViolations). */
  readonly count: number;
  readonly violations: Violation[];
  /** What the walk saw. */
  readonly tables: number;
  readonly leaves: { readonly pages4k: number; readonly pages2m: number; readonly pages1g: number };
}

/** Guest frames [start, end). */
export interface GfnRange {
  readonly start: number;
  readonly end: number;
}

export interface CheckOptions {
  /** Cap on listed violations (default 100). */
  readonly maxViolations?: number;
  /** Skip the dirty-bit check (e.g. while a harvest is known to be in progress). Default false. */
  readonly skipDirtyCheck?: boolean;
  /**
   * Ranges every gfn of which must be translated by a present leaf (e.g. memory populated and
   * since only split or write-protected). Default none: in general a gfn may legally be unmapped.
   */
  readonly mustMap?: readonly GfnRange[];
}

/** Check every invariant of `vm`'s MMU (quiescent). */
export function checkInvariants(vm: Vm, opts: CheckOptions = {}): InvariantReport {
  const max = opts.maxViolations ?? 100;
  const violations: Violation[] = [];
  let count = 0;
  const report = (v: Violation): void => {
    count++;
    if (violations.length < max) violations.push(v);
  };
  const spt = vm.spt;
  const pool = vm.pool;
  const seen = new Uint8Array(pool.capacity);
  const leaves = [0, 0, 0, 0];
  let tables = 0;
  const logging = vm.config.memslots.map((_s, i) => !opts.skipDirtyCheck && slotLogsDirty(vm, i));
  const pml = vm.config.dirtyTrack === 'pml';
  const mustMap = opts.mustMap ?? [];
  /** The first gfn of [gfn, gfn + span) inside a must-map range, or -1. */
  const firstMustMap = (gfn: number, span: number): number => {
    let first = -1;
    for (const r of mustMap) {
      const g = Math.max(gfn, r.start);
      if (g < Math.min(gfn + span, r.end) && (first < 0 || g < first)) first = g;
    }
    return first;
  };

  const visitTable = (table: number, level: number, baseGfn: number): void => {
    tables++;
    if (pool.stateOf(table) !== TS_IN_USE) {
      report({ kind: 'table-state', message: `reachable table ${table} is not IN_USE in the pool (state ${pool.stateOf(table)})`, table, level, gfn: baseGfn });
    }
    const span = pagesPerHpage(level);
    for (let i = 0; i < PT_ENTRIES; i++) {
      const spte = spt[table * PT_ENTRIES + i]!;
      const gfn = baseGfn + i * span;
      if (!isShadowPresent(spte)) {
        const lost = mustMap.length === 0 ? -1 : firstMustMap(gfn, span);
        if (lost >= 0) {
          report({
            kind: 'lost-mapping',
            message: `gfn 0x${lost.toString(16)} must be mapped, but its SPTE is not present`,
            gfn: lost,
            level,
            spte: spteHex(spte),
            table,
          });
        }
        if (spte === SHADOW_NONPRESENT_VALUE) continue;
        if (spte === FROZEN_SPTE) report({ kind: 'frozen', message: 'a FROZEN_SPTE is reachable at rest', gfn, level, spte: spteHex(spte), table });
        else if (spte === POISON_SPTE) report({ kind: 'poison', message: 'a POISON_SPTE (freed table) is reachable', gfn, level, spte: spteHex(spte), table });
        else report({ kind: 'stray-value', message: 'a non-present SPTE with an unexpected value', gfn, level, spte: spteHex(spte), table });
        continue;
      }
      const large = isLargeSpte(spte);
      if (level === PG_LEVEL_4K && large) {
        report({ kind: 'large-bit', message: 'large bit set on a 4K SPTE', gfn, level, spte: spteHex(spte), table });
      }
      if (level === PG_LEVEL_4K || large) {
        checkLeaf(spte, gfn, level, table);
        continue;
      }
      // A non-leaf: its child must be a valid table seen once.
      const child = spteToChildTable(spte);
      if (child < 0 || child >= pool.capacity) {
        report({ kind: 'table-index', message: `child table index ${child} out of range`, gfn, level, spte: spteHex(spte), table });
        continue;
      }
      if (seen[child] === 1) {
        report({ kind: 'table-twice', message: `table ${child} is reachable twice`, gfn, level, spte: spteHex(spte), table });
        continue;
      }
      seen[child] = 1;
      visitTable(child, level - 1, gfn);
    }
  };

  const checkLeaf = (spte: bigint, gfn: number, level: number, table: number): void => {
    if (level > MAX_HUGE_LEVEL) {
      report({ kind: 'large-bit', message: `a leaf above 1G (level ${level})`, gfn, level, spte: spteHex(spte), table });
      return;
    }
    leaves[level]!++;
    const span = pagesPerHpage(level);
    const pfn = spteToPfn(spte);
    const want = vm.backingPfn(gfn);
    if (pfn !== want) {
      report({ kind: 'translation', message: `maps pfn 0x${pfn.toString(16)}, backing says 0x${want.toString(16)}`, gfn, level, spte: spteHex(spte), table });
    }
    const slot = vm.slotOf(gfn);
    const s = vm.config.memslots[slot];
    if (s === undefined || gfn + span > s.baseGfn + s.npages) {
      report({ kind: 'outside-memslot', message: `leaf [0x${gfn.toString(16)}, +${span}) is not inside one memslot`, gfn, level, spte: spteHex(spte), table });
      return;
    }
    if (logging[slot] === true && isWritable(spte) && (!pml || isDirty(spte))) {
      for (let g = gfn; g < gfn + span; g++) {
        if (!isPageDirty(vm, slot, g)) {
          const what = pml ? 'a writable SPTE with D set' : 'a writable SPTE';
          report({
            kind: 'lost-dirty',
            message: `${what} in a dirty-logged slot maps a page whose dirty bit is clear`,
            gfn: g,
            level,
            spte: spteHex(spte),
            table,
          });
          break;
        }
      }
    }
  };

  seen[vm.root] = 1;
  visitTable(vm.root, vm.rootLevel, 0);

  // Pool accounting: every IN_USE table is reachable (the root included), nothing else is.
  const acct = pool.accounting();
  if (acct.inUse !== tables) {
    report({
      kind: 'pool-accounting',
      message: `pool says ${acct.inUse} tables in use, ${tables} are reachable (waiting for RCU: ${acct.rcuWaiting}, cached: ${acct.inCaches}; callbacks not drained?)`,
    });
  }
  if (tables + acct.rcuWaiting + acct.inCaches + acct.free !== acct.capacity) {
    report({
      kind: 'pool-accounting',
      message: `reachable ${tables} + waiting ${acct.rcuWaiting} + cached ${acct.inCaches} + free ${acct.free} != capacity ${acct.capacity}`,
    });
  }
  for (const p of pool.audit().problems) report({ kind: 'pool-accounting', message: p });

  const stats = readPageStats(vm);
  for (let level = 1; level <= MAX_HUGE_LEVEL; level++) {
    if (stats[level] !== leaves[level]) {
      report({ kind: 'page-stats', message: `page stats say ${stats[level]} leaves at level ${level}, the tree has ${leaves[level]}`, level });
    }
  }
  return {
    ok: count === 0,
    count,
    violations,
    tables,
    leaves: { pages4k: leaves[1]!, pages2m: leaves[2]!, pages1g: leaves[3]! },
  };
}

/** One line per violation, for test failure messages and the emulator's report. */
export function formatViolations(r: InvariantReport): string {
  return r.violations
    .map(
      (v) =>
        `${v.kind}: ${v.message}${v.gfn !== undefined ? ` gfn=0x${v.gfn.toString(16)}` : ''}${v.level !== undefined ? ` level=${v.level}` : ''}${v.spte !== undefined ? ` spte=${v.spte}` : ''}`,
    )
    .join('\n');
}
