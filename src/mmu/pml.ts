/**
 * Intel PML (Page Modification Logging) as KVM uses it for dirty logging (vmx.c; reference
 * kvm-faults-and-dirty-tracking.md §1), with `--dirty-track pml`:
 *
 *   - A guest write through a writable 4K SPTE whose D bit is clear does NOT fault: the hardware
 *     walk sets D (a cmpxchg: the walk races with KVM clearing D and with other vCPUs) and appends
 *     the gfn to the vCPU's PML buffer, 512 entries (one 4 KiB page per vCPU).
 *   - The buffer is flushed into the dirty bitmap at the start of EVERY VM exit (vmx_handle_exit):
 *     a fault, a PML-full exit once the 512 entries are used, the vCPU leaving guest mode, and the
 *     kick that KVM_GET_DIRTY_LOG sends every vCPU first (kvm_arch_sync_dirty_log). Only a flush
 *     writes the bitmap, so a logged write is invisible to a GET that did not kick.
 *
 * The buffer is private to the vCPU thread (plain Float64Array: gfns can pass 2^32), one per Vm
 * handle (one handle per thread). We take the PML-full exit as the 512th entry is logged rather
 * than at the 513th write as the hardware does: the same number of exits per 512 pages, only the
 * flush point moves by one write.
 *
 * The kick (layout.ts PML_KICK; GET runs on another thread than the vCPUs):
 *   vCPU entering guest code:  IN_GUEST = 1; ACK = the current KICK_GEN (its buffer is empty).
 *   vCPU at a batch boundary:  KICK_GEN moved? flush, then ACK = KICK_GEN and notify ACK.
 *   vCPU leaving guest code:   flush, then IN_GUEST = 0 and notify ACK (parking, pass end, exit).
 *   GET (syncDirtyLogKick):    gen = ++KICK_GEN; for every other worker wait until IN_GUEST = 0
 *                              or ACK >= gen. Then every write a vCPU completed before its flush
 *                              is in the bitmap; writes after it belong to the next GET, which is
 *                              what KVM guarantees too (a kicked vCPU re-enters and keeps writing).
 * Each flush's Atomics.or on the bitmap precedes the vCPU's Atomics.store of ACK or IN_GUEST, and
 * GET reads those with Atomics.load before it reads the bitmap: the bitmap writes are visible.
 * With `wrprot` there is no PML and no kick (KVM kicks only when cpu_dirty_log_size is set).
 */
import type { Vm } from '../vm.js';
import { invariantViolation } from '../errors.js';
import { PML_KICK_GEN, PML_KICK_LINE, PML_VCPU_ACK, PML_VCPU_IN_GUEST, LINE_INT32S } from '../layout.js';
import { markPageDirty, slotLogsDirty } from './slot_flags.js';
import { payHostCost } from './host_costs.js';
import { WS } from '../stats/worker_stats.js';

/** PML_ENTITY_NUM / PML_LOG_NR_ENTRIES: entries in one vCPU's buffer. */
export const PML_ENTRIES = 512;

/** One vCPU's PML state: the buffer and its kick bookkeeping. Thread-private. */
class PmlBuffer {
  /** Logged gfns, [0, count). */
  readonly gfns = new Float64Array(PML_ENTRIES);
  count = 0;
  /** The KICK_GEN this vCPU last saw (acknowledged or found on entry). */
  seenGen = 0;
}

const buffers = new WeakMap<Vm, PmlBuffer>();
/** One-entry cache in front of the WeakMap: a thread has one Vm handle, and every fault flushes. */
let lastVm: Vm | undefined;
let lastBuffer: PmlBuffer | undefined;

/** This thread's PML buffer for `vm` (created on first use). */
function pmlBufferOf(vm: Vm): PmlBuffer {
  if (vm === lastVm) return lastBuffer!;
  let b = buffers.get(vm);
  if (b === undefined) {
    b = new PmlBuffer();
    buffers.set(vm, b);
  }
  lastVm = vm;
  lastBuffer = b;
  return b;
}

/** Does `vm` track dirty pages with PML? */
export function usesPml(vm: Vm): boolean {
  return vm.config.dirtyTrack === 'pml';
}

/**
 * The hardware logs a write that set D on `gfn` (inside a memslot that logs dirty pages). A full
 * buffer makes the PML-full exit at once: flush, count it, pay its host cost.
 */
export function pmlLogWrite(vm: Vm, gfn: number): void {
  const b = pmlBufferOf(vm);
  b.gfns[b.count++] = gfn;
  vm.stats.add(WS.pmlWrites, 1);
  if (b.count === PML_ENTRIES) {
    pmlFlush(vm);
    vm.stats.add(WS.pmlFullExits, 1);
    payHostCost(vm, vm.config.hostCosts?.pmlfullNs ?? 0);
  }
}

/**
 * The flush at a VM exit (vmx_flush_pml_buffer): mark every logged gfn in its slot's dirty bitmap
 * (kvm_vcpu_mark_page_dirty: only while the slot still logs dirty pages), then empty the buffer.
 * Returns the entries flushed. Lock context: none needed (Atomics.or on the bitmap).
 */
export function pmlFlush(vm: Vm): number {
  const b = vm === lastVm ? lastBuffer! : buffers.get(vm);
  if (b === undefined || b.count === 0) return 0;
  const n = b.count;
  b.count = 0;
  if (vm.config.unsafe?.pmlDropBuffer === true) return n; // CONTROL ONLY: the writes are lost
  for (let i = 0; i < n; i++) {
    const gfn = b.gfns[i]!;
    const slot = vm.slotOf(gfn);
    if (slot >= 0 && slotLogsDirty(vm, slot)) markPageDirty(vm, slot, gfn);
  }
  return n;
}

function lineOf(vm: Vm, workerId: number): number {
  return vm.layout.pmlKickBase + PML_KICK_LINE + workerId * LINE_INT32S;
}

/** The vCPU starts running guest code (VM entry after being outside: a pass begins). */
export function vcpuEnterGuest(vm: Vm): void {
  const b = pmlBufferOf(vm);
  const line = lineOf(vm, vm.workerId);
  // Publish IN_GUEST before reading the generation: a GET that bumps it after our load sees
  // IN_GUEST = 1 and waits for our ACK (pairs with the Atomics.load of IN_GUEST in syncDirtyLogKick).
  Atomics.store(vm.control, line + PML_VCPU_IN_GUEST, 1);
  b.seenGen = Atomics.load(vm.control, vm.layout.pmlKickBase + PML_KICK_GEN);
  // Nothing logged yet (the exit flushed): we are as good as acknowledged for that generation,
  // so a GET that kicked just before we entered does not wait for our next batch boundary.
  Atomics.store(vm.control, line + PML_VCPU_ACK, b.seenGen);
  Atomics.notify(vm.control, line + PML_VCPU_ACK);
}

/** The vCPU stops running guest code (pass end, parking, thread exit): flush, then leave. */
export function vcpuExitGuest(vm: Vm): void {
  pmlFlush(vm);
  const line = lineOf(vm, vm.workerId);
  // After the flush: a GET that reads IN_GUEST = 0 sees every bitmap bit we set (seq_cst).
  Atomics.store(vm.control, line + PML_VCPU_IN_GUEST, 0);
  Atomics.notify(vm.control, line + PML_VCPU_ACK); // pairs with the Atomics.wait in syncDirtyLogKick
}

/**
 * Checked by a running vCPU at batch boundaries: if GET kicked since we last looked, take the
 * exit (flush) and acknowledge. One Atomics.load when there is no kick.
 */
export function vcpuCheckKick(vm: Vm): void {
  const gen = Atomics.load(vm.control, vm.layout.pmlKickBase + PML_KICK_GEN);
  const b = pmlBufferOf(vm);
  if (gen === b.seenGen) return;
  pmlFlush(vm);
  b.seenGen = gen;
  const ackIdx = lineOf(vm, vm.workerId) + PML_VCPU_ACK;
  Atomics.store(vm.control, ackIdx, gen); // after the flush: pairs with GET's Atomics.load of ACK
  Atomics.notify(vm.control, ackIdx);
}

/** A kick waits at most this long for one vCPU (a vCPU that never reaches a batch boundary is a bug). */
const KICK_TIMEOUT_MS = 120_000;
/** Wait slice while a vCPU has not acknowledged (it notifies; the slice only bounds a lost wake-up). */
const KICK_WAIT_SLICE_MS = 1;

/**
 * kvm_arch_sync_dirty_log with PML: kick every vCPU and wait until each has flushed its buffer
 * (acknowledged this kick or left guest code). The caller's own buffer is flushed too (a test
 * that writes and harvests on one thread). No lock held (GET kicks before taking mmu_lock).
 * Returns the vCPUs that were in guest code and acknowledged.
 */
export function syncDirtyLogKick(vm: Vm): number {
  if (!usesPml(vm)) return 0;
  pmlFlush(vm);
  const i32 = vm.control;
  const gen = Atomics.add(i32, vm.layout.pmlKickBase + PML_KICK_GEN, 1) + 1;
  let kicked = 0;
  for (let w = 0; w < vm.layout.workers; w++) {
    if (w === vm.workerId) continue;
    const line = lineOf(vm, w);
    const t0 = performance.now();
    let waited = false;
    for (;;) {
      if (Atomics.load(i32, line + PML_VCPU_IN_GUEST) === 0) break;
      const ack = Atomics.load(i32, line + PML_VCPU_ACK);
      // Generations wrap at 2^32; compare by difference.
      if (((ack - gen) | 0) >= 0) break;
      waited = true;
      if (performance.now() - t0 > KICK_TIMEOUT_MS) {
        throw invariantViolation('GET_DIRTY_LOG: a vCPU never acknowledged the PML kick', { worker: w, gen, ack, inGuest: 1 });
      }
      Atomics.wait(i32, line + PML_VCPU_ACK, ack, KICK_WAIT_SLICE_MS);
    }
    if (waited) kicked++;
  }
  return kicked;
}
