/**
 * Page statistics: KVM's pages_4k / pages_2m / pages_1g (kvm_update_page_stats), the number of
 * leaf SPTEs per level currently installed. dirty_log_page_splitting_test checks them through
 * splitting and recovery; the invariant checker checks them against the tree.
 *
 * Storage: the PAGE_STATS line of the control SAB (layout.ts), one Int32 per level, updated with
 * Atomics.add from any thread (faults, splits and zaps run concurrently under the read lock),
 * exactly like KVM's atomic64_add on kvm->stat.pages[level]. Int32 is enough: a 1 TiB guest at 4K
 * has 2^28 leaves.
 *
 * Who updates: handleChangedSpte (tdp_mmu.ts) for every leaf installed or removed, and the split
 * (tdp_mmu_split.ts) for the 512 children it creates (the huge leaf's -1 comes from handleChangedSpte).
 */
import type { Vm } from '../vm.js';
import { PAGE_STATS_4K } from '../layout.js';
import { MAX_HUGE_LEVEL, PG_LEVEL_4K } from './spte.js';

/** Add `delta` leaves at `level` (1..3). Levels above 1G never hold leaves; asking is a bug. */
export function updatePageStats(vm: Vm, level: number, delta: number): void {
  if (level < PG_LEVEL_4K || level > MAX_HUGE_LEVEL) return;
  Atomics.add(vm.control, vm.layout.pageStatsBase + PAGE_STATS_4K + level - 1, delta);
}

/** Current counters by level: [unused, 4k, 2m, 1g]. */
export function readPageStats(vm: Vm): [number, number, number, number] {
  const b = vm.layout.pageStatsBase + PAGE_STATS_4K;
  return [0, Atomics.load(vm.control, b), Atomics.load(vm.control, b + 1), Atomics.load(vm.control, b + 2)];
}
