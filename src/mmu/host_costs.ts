/**
 * Host costs the published hosts pay and this emulator does not: a VM exit with its re-entry, the
 * EPT-violation entry into KVM, a PML-full exit, a remote TLB flush. Our "guest" is a function
 * call, so without these a fault costs only the MMU work we emulate, and every ratio that weighs
 * faults against splitting (eager vs lazy, PML vs write protection) comes out skewed.
 *
 * Each cost is a named constant, spent as REAL time (a busy wait on performance.now) on the thread
 * that pays it in the kernel, so that it occupies a core and contention stays real: a vCPU that
 * spends its exit cost is not running guest code, and on 2 cores it also keeps another thread off
 * the CPU. The same values serve every experiment (`--host-costs` overrides them for all; `none`
 * is the bare emulator) and every report prints them.
 *
 * Who pays what (the kernel paths they stand for):
 *   wpfault    the vCPU, per EPT violation resolved by the lockless fast path (fast_page_fault):
 *              VM exit + EPT-violation decode + VM entry. Our own walk, cmpxchg and dirty mark
 *              are emulated, so only the exit/entry part is spent here.
 *   slowfault  the vCPU, per EPT violation that takes the slow path (kvm_tdp_mmu_page_fault):
 *              exit/entry and the fault-in work (kvm_faultin_pfn, cache top-up bookkeeping)
 *              that we do not emulate; the lock, walk and map are emulated.
 *   pmlfull    the vCPU, per PML-full exit (handle_pml_full: the exit alone; the flush of the
 *              512 entries into the bitmap is emulated).
 *   tlbflush   the thread that flushes: kvm_flush_remote_tlbs after a zap on the fault path (the
 *              pre-6.2 lazy path), after enabling dirty logging write-protects or clears D, after
 *              a GET (without manual protect) or CLEAR that changed SPTEs.
 *
 * Calibration, done ONCE (kvm-faults-and-dirty-tracking.md §8, the 6.2 split-on-fault patch's
 * 2-vCPU, 100 %-write row, 262,144 4K pages per vCPU): each host cost is the published per-page
 * cost of a path minus what the emulator itself spends on that path, so that at that point the
 * emulated page costs what the published one did.
 *   Published: no fault (eps=Y, PML) 0.0587 s -> 0.22 µs per page, the guest's own cost of writing
 *   a page (not a host cost: not modelled); lockless WP fault (eps=N after, 6.2) 0.296 s -> 0.91 µs
 *   per page MORE than no fault; uncontended slow 4K fault (eps=N before, the pre-6.2 zap path)
 *   0.318 s -> 1.21 µs per page in all, 0.99 µs of it the fault.
 *   Ours (measured 2026-12-02 on the project machine, Node 20, one vCPU so nothing contends, host
 *   costs off, JIT warm-up on; medians of 3 interleaved runs of
 *   `node dist/src/emulate/main.js -v 1 -b 1G -s anonymous_hugetlb_1gb -g -i 3 --host-costs none`
 *   with the options below; "Iteration 1 dirty memory time", the first pass, as published):
 *     --dirty-track pml --split-alloc nowait-retry     0.0872 s  0.333 µs/page  (no fault)
 *     --dirty-track wrprot --split-alloc nowait-retry  0.1645 s  0.628 µs/page  (one WP fast fault per page)
 *     --dirty-track pml --split-alloc lazy-zap         0.2847 s  1.086 µs/page  (one slow 4K fault per page)
 *   so our fast fault costs 0.628 - 0.333 = 0.295 µs and our slow fault 1.086 - 0.333 = 0.753 µs.
 *   WPFAULT_NS = 910 - 295 = 615 ns; SLOWFAULT_NS = 990 - 753 = 237 ns.
 *   Our page without a fault (0.333 µs) costs more than the published 0.22 µs: that is the
 *   emulator's own walk and bookkeeping, and no host cost can take it away; it compresses every
 *   ratio whose denominator is a fault-free pass (reported as such, never tuned).
 *   - PML-full exit: no published point isolates it; it is a VM exit and entry with no fault to
 *     decode, so it takes the exit/entry part of the WP fault: PMLFULL_NS = WPFAULT_NS (one per 512
 *     newly dirtied pages: about 1.2 ns per page).
 *   - remote TLB flush: no published point either; at 2 vCPUs it interrupts the other vCPU (an IPI,
 *     its exit and re-entry) while the flusher waits: one exit/entry round trip, TLBFLUSH_NS =
 *     WPFAULT_NS. An assumption, printed with the others.
 *   Re-measure (and change the constants, in one commit) only when the emulator's own fault paths
 *   change speed; never per experiment.
 * The 96-vCPU figures of the same table (1.94 µs per fast fault, 10.2 µs per slow fault) are
 * contention, which the emulator must produce itself: they are not used.
 */
import { invalidOption } from '../errors.js';
import type { WorkerStats } from '../stats/worker_slot.js';
import { WS } from '../stats/worker_stats.js';

export interface HostCosts {
  /** VM exit + entry of a lockless write-protection (fast) fault, ns. */
  readonly wpfaultNs: number;
  /** Exit/entry and fault-in part of a slow fault, ns. */
  readonly slowfaultNs: number;
  /** One PML-full VM exit, ns. */
  readonly pmlfullNs: number;
  /** One remote TLB flush, ns. */
  readonly tlbflushNs: number;
}

export const WPFAULT_NS = 615;
export const SLOWFAULT_NS = 237;
export const PMLFULL_NS = WPFAULT_NS;
export const TLBFLUSH_NS = WPFAULT_NS;

/** The calibrated defaults (see the header for the derivation). */
export const DEFAULT_HOST_COSTS: HostCosts = Object.freeze({
  wpfaultNs: WPFAULT_NS,
  slowfaultNs: SLOWFAULT_NS,
  pmlfullNs: PMLFULL_NS,
  tlbflushNs: TLBFLUSH_NS,
});

/** The bare emulator: no host cost at all. */
export const NO_HOST_COSTS: HostCosts = Object.freeze({ wpfaultNs: 0, slowfaultNs: 0, pmlfullNs: 0, tlbflushNs: 0 });

/** Where the defaults come from, one line (printed in every report). */
export const HOST_COSTS_CALIBRATION =
  'calibrated from the 6.2 split-on-fault 2-vCPU 100%-write row (+0.91 µs per WP fault, 0.99 µs per slow 4K fault) ' +
  'minus our own fast (0.295 µs) and slow (0.753 µs) fault paths measured at 1 vCPU; pmlfull and tlbflush = one exit/entry (assumed)';

const KEYS: Readonly<Record<string, keyof HostCosts>> = Object.freeze({
  wpfault: 'wpfaultNs',
  slowfault: 'slowfaultNs',
  pmlfull: 'pmlfullNs',
  tlbflush: 'tlbflushNs',
});

/** At most this per event (a typo such as 1000000 would otherwise stall a run). */
const MAX_COST_NS = 1_000_000;

/**
 * `--host-costs`: `none`, `default`, or `key=NS,...` over wpfault, slowfault, pmlfull, tlbflush
 * (keys left out keep their calibrated default). Throws ERR_INVALID_OPTION naming `label`.
 */
export function parseHostCosts(label: string, raw: string): HostCosts {
  const s = raw.trim();
  if (s === 'none') return NO_HOST_COSTS;
  if (s === 'default') return DEFAULT_HOST_COSTS;
  const out: Record<keyof HostCosts, number> = { ...DEFAULT_HOST_COSTS };
  for (const item of s.split(',')) {
    const m = /^\s*([a-z]+)\s*=\s*(\d+(?:\.\d+)?)\s*$/.exec(item);
    if (m === null) throw invalidOption(label, `expected none, default or key=NS,... (keys: ${Object.keys(KEYS).join(', ')}), got ${JSON.stringify(raw)}`);
    const key = KEYS[m[1]!];
    if (key === undefined) throw invalidOption(label, `unknown cost ${JSON.stringify(m[1])}; expected one of ${Object.keys(KEYS).join(', ')}`);
    const ns = Number(m[2]);
    if (ns > MAX_COST_NS) throw invalidOption(label, `${m[1]} must be at most ${MAX_COST_NS} ns, got ${m[2]}`);
    out[key] = ns;
  }
  return Object.freeze(out);
}

/** One line for reports: `wpfault=615ns slowfault=237ns pmlfull=615ns tlbflush=615ns`. */
export function formatHostCosts(c: HostCosts): string {
  return `wpfault=${c.wpfaultNs}ns slowfault=${c.slowfaultNs}ns pmlfull=${c.pmlfullNs}ns tlbflush=${c.tlbflushNs}ns`;
}

/**
 * Spend `ns` of real time on this thread, busy (the core stays occupied, as the host's exit
 * handling occupies the CPU). performance.now() resolves well below a microsecond in Node, and one
 * call costs a few tens of ns, so the wait overshoots by at most one call.
 */
export function spendNs(ns: number): void {
  if (ns <= 0) return;
  const end = performance.now() + ns / 1e6;
  while (performance.now() < end) {
    // busy: the cost is CPU time, not sleep
  }
}

/** What pays a cost: a thread's Vm handle (its stat slot and the VM's configured costs). */
export interface CostPayer {
  readonly stats: WorkerStats;
  readonly config: { readonly hostCosts?: HostCosts | undefined };
}

/** Spend `ns` on this thread and count it (WS.hostCostNs). */
export function payHostCost(vm: CostPayer, ns: number): void {
  if (ns <= 0) return;
  spendNs(ns);
  vm.stats.add(WS.hostCostNs, ns);
}

/**
 * kvm_flush_remote_tlbs (or its memslot/range variants): we model no TLB, so the flush itself is
 * nothing but its cost, paid by the flushing thread, and a count.
 */
export function flushRemoteTlbs(vm: CostPayer): void {
  vm.stats.add(WS.tlbFlushes, 1);
  payHostCost(vm, vm.config.hostCosts?.tlbflushNs ?? 0);
}
