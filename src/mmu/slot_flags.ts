/**
 * Per-memslot dirty-logging state in shared memory (layout.ts MEMSLOT_CTRL, one line per slot):
 * KVM's `slot->flags & KVM_MEM_LOG_DIRTY_PAGES` and the manual-protect/initially-set mode.
 *
 * Writers: dirty_log.ts (enable/disable).
 * Readers: the vCPU fault paths and guest_access.ts, with Atomics.load (the flag decides the
 * mapping level and whether a fault marks the page dirty, so it must not be a stale cached read).
 */
import type { Vm } from '../vm.js';
import { SLOT_FLAGS, SLOT_FLAG_INITIALLY_SET, SLOT_FLAG_LOG_DIRTY } from '../layout.js';

export { SLOT_FLAG_INITIALLY_SET, SLOT_FLAG_LOG_DIRTY };

export function slotFlags(vm: Vm, slot: number): number {
  return Atomics.load(vm.control, vm.layout.memslotCtrlBases[slot]! + SLOT_FLAGS);
}

/**
 * Publish new flags. Pairs with the Atomics.load in slotFlags(): a fault that reads LOG_DIRTY
 * after this store maps at 4K and marks pages dirty.
 */
export function setSlotFlags(vm: Vm, slot: number, flags: number): void {
  Atomics.store(vm.control, vm.layout.memslotCtrlBases[slot]! + SLOT_FLAGS, flags);
}

/** KVM_MEM_LOG_DIRTY_PAGES is set on the slot. */
export function slotLogsDirty(vm: Vm, slot: number): boolean {
  return (Atomics.load(vm.control, vm.layout.memslotCtrlBases[slot]! + SLOT_FLAGS) & SLOT_FLAG_LOG_DIRTY) !== 0;
}

/** mark_page_dirty_in_slot for `gfn` of `slot` (Atomics.or: many vCPUs share a bitmap word). */
export function markPageDirty(vm: Vm, slot: number, gfn: number): void {
  const p = gfn - vm.config.memslots[slot]!.baseGfn;
  Atomics.or(vm.dirtyBitmap(slot), p >>> 5, 1 << (p & 31));
}

/** Is `gfn`'s bit set in its slot's dirty bitmap? */
export function isPageDirty(vm: Vm, slot: number, gfn: number): boolean {
  const p = gfn - vm.config.memslots[slot]!.baseGfn;
  return (Atomics.load(vm.dirtyBitmap(slot), p >>> 5) & (1 << (p & 31))) !== 0;
}
