/**
 * JIT warm-up: before a worker reports READY, it runs the emulated hardware and KVM paths it is
 * about to time on a private scratch VM, so that V8 has compiled them before the first timed phase.
 *
 * Why: V8 optimises a function only after it has run for a while, and with concurrent
 * recompilation off (engine.ts says why) each thread compiles its own hot code in line. Without a
 * warm-up the first dirty pass runs part of its accesses in the interpreter and baseline code:
 * measured here with 1 vCPU x 1 GiB of 1G pages, -g, PML, iteration 1 dirty memory time was
 * 0.114 s against 0.055 s and 0.050 s for iterations 2 and 3, the same work. The published
 * figures come from compiled kernel code, so a cold JIT would inflate exactly the first-pass
 * times the eager-versus-lazy comparisons divide by. Populate does not warm these paths: it only
 * maps huge pages; the dirty-logging paths (PML writes, write-protection fast faults, split or
 * zap on fault, the split walk, write protection and D-bit clearing) first run in iteration 1.
 *
 * What runs (one thread, a scratch VM of WARMUP_PAGES 4K pages with its own SharedArrayBuffers,
 * lock, RCU domain, pool and counters, so nothing of the real run is touched or counted):
 *   for each of three dirty-logging setups: -g without eager splitting (huge pages stay and the
 *   vCPU's write faults split or zap them: the VM's hugePageFault), -g with the run's eager
 *   setting, and manual-protect + initially-set with the run's eager setting (split in CLEAR):
 *     1. populate: write every page (first-touch faults map huge pages);
 *     2. enable dirty logging (the run's design, dirty tracking and host costs);
 *     3. with manual protect: GET and CLEAR every page;
 *     4. guest passes: write, read, write, then (as a vCPU exit) GET (and CLEAR), then write;
 *     5. disable dirty logging (recover huge pages).
 *   then SPLIT_WARMUP_ROUNDS rounds of the split in CLEAR alone (populate, enable with manual protect
 *   and initially-set, GET and CLEAR every page, disable). The setups above split only the scratch
 *   guest's 4 huge pages each, too few calls for V8 to compile the per-split path (a design's
 *   allocation, the lock drop and retake with their timing, the walk's restart): drop-always then
 *   ran its first CLEAR's 2,052 splits partly in the interpreter, about 15 ms of its 0.11 s split
 *   time (2 vCPUs x 2G of 1G pages; median split time 0.114 s with 4 splits of warm-up, 0.099 s
 *   with 240, 2,052-split allocations 4.5 us each cold and 0.6 us compiled).
 * It is the same code, on objects of the same classes, so the compiled code and type feedback
 * carry over to the real VM. Its cost is a few hundred thousand emulated accesses per worker,
 * before the run's clock starts; `--jit-warmup off` skips it (to measure what it changes).
 */
import { attachVm, createVm, DEFAULT_FIRST_GFN } from '../vm.js';
import type { Vm, VmConfig } from '../vm.js';
import type { AccessKind } from '../mmu/access_kind.js';
import { clearCall, disableAll, enableAll, getAll, newAccessResult, newDirtyBitmaps, vcpuAccess, vcpuRunBegin, vcpuRunEnd } from './mmu_ops.js';
import type { DirtyLogMode } from './mmu_ops.js';

/** Scratch guest size: 4 2M pages. Enough calls (tens of thousands per path) for V8 to optimise every path. */
export const WARMUP_PAGES = 2048;

/** Rounds of split-in-CLEAR: 4 splits each, 800 in all, enough for V8 to compile the per-split path. */
export const SPLIT_WARMUP_ROUNDS = 200;

/** What the warm-up did on its scratch VM (for tests: every path it claims to warm must have run). */
export interface JitWarmupCounts {
  readonly accesses: number;
  readonly slowFaults: number;
  readonly fastFaults: number;
  readonly pmlWrites: number;
  readonly hugePagesSplit: number;
}

/**
 * Run the warm-up for a worker (`role`) of a VM configured as `base`, whose splitter uses `mode`. Lock
 * context: none held; the caller's real VM is not touched. Returns the scratch VM's counters.
 */
export function warmUpJit(base: VmConfig, mode: DirtyLogMode, role: 'vcpu' | 'splitter'): JitWarmupCounts {
  const { unsafe: _controlsNeverWarmed, poolTables: _sizedForTheRealGuest, ...kept } = base;
  const config: VmConfig = {
    ...kept,
    // 4K backing stays 4K; larger backings warm at 2M (1G pages need a 1 GiB scratch guest, and
    // a 1G split runs the same walk, one level higher).
    backingLevel: base.backingLevel === 1 ? 1 : 2,
    memslots: [{ baseGfn: DEFAULT_FIRST_GFN, npages: WARMUP_PAGES }],
    workers: 1,
  };
  const vm = attachVm(createVm(config), 0);
  try {
    const bitmaps = newDirtyBitmaps(vm);
    const setups: readonly DirtyLogMode[] = [
      { ...mode, manualProtect: false, eagerSplit: false },
      { ...mode, manualProtect: false },
      { ...mode, manualProtect: true },
    ];
    for (const setup of setups) {
      guestPass(vm, 'write');
      enableAll(vm, setup);
      if (setup.manualProtect) harvest(vm, setup, bitmaps);
      guestPass(vm, 'write');
      guestPass(vm, 'read');
      guestPass(vm, 'write');
      harvest(vm, setup, bitmaps);
      guestPass(vm, 'write');
      disableAll(vm);
    }
    const splitSetup: DirtyLogMode = { ...mode, manualProtect: true };
    // Only the splitter runs the split walk in the real run; a vCPU thread's warm-up skips it.
    if (splitSetup.eagerSplit && role === 'splitter') {
      for (let r = 0; r < SPLIT_WARMUP_ROUNDS; r++) {
        guestPass(vm, 'write');
        enableAll(vm, splitSetup);
        harvest(vm, splitSetup, bitmaps);
        disableAll(vm);
      }
    }
    const s = vm.sumStats();
    return {
      accesses: s['accesses'] ?? 0,
      slowFaults: s['slowFaults'] ?? 0,
      fastFaults: s['fastFaults'] ?? 0,
      pmlWrites: s['pmlWrites'] ?? 0,
      hugePagesSplit: s['hugePagesSplit'] ?? 0,
    };
  } finally {
    vm.detach();
  }
}

/** One pass over the scratch guest as a vCPU: enter guest mode, touch every page, exit (flushes PML). */
function guestPass(vm: Vm, kind: AccessKind): void {
  const out = newAccessResult();
  const first = vm.config.memslots[0]!.baseGfn;
  vcpuRunBegin(vm);
  for (let p = 0; p < WARMUP_PAGES; p++) vcpuAccess(vm, first + p, kind, out);
  vcpuRunEnd(vm);
}

/** GET_DIRTY_LOG, then CLEAR_DIRTY_LOG of everything it returned when the mode has manual protect. */
function harvest(vm: Vm, mode: DirtyLogMode, bitmaps: readonly Int32Array[]): void {
  getAll(vm, mode, bitmaps);
  if (mode.manualProtect) clearCall(vm, mode, bitmaps, 0, 0, WARMUP_PAGES, 'whole');
}
