/**
 * From options to a runnable configuration: the guest geometry (memslots, per-vCPU regions,
 * backing level), the VmConfig, and the memory check that refuses guests whose page tables would
 * not fit, BEFORE anything is allocated.
 *
 * Geometry follows memstress: `vcpus x memory-per-vcpu` bytes of guest memory at a fixed guest
 * physical base, split into `-x` equal memslots laid back to back, vCPU i dirtying the i-th
 * contiguous `memory-per-vcpu` region (vCPU regions may straddle memslots, as in memstress).
 * Each memslot must hold whole backing pages, so every huge page lies inside one memslot and the
 * huge-page counts follow from the sizes alone.
 */
import { availableParallelism, constants as osConstants, freemem } from 'node:os';
import { EmulatorError, invalidOption } from '../errors.js';
import { parsePressure } from '../mmu/allocator.js';
import { hugePageFaultFor } from '../mmu/split_alloc_lazy.js';
import { DEFAULT_FIRST_GFN, vmFootprint } from '../vm.js';
import type { VmConfig, VmFootprint } from '../vm.js';
import type { FaultInjection, VcpuRegion } from './messages.js';
import { BACKINGS, flagName, formatBytes, formatSize, GUEST_PAGE_BYTES } from './options.js';
import type { EmulateOptions } from './options.js';
import { planRoles } from './run_plan.js';
import { hostEventsActive } from './host_events.js';

/** Host memory the run may use is what is free minus this reserve (the OS, Node's heaps). */
const MEMORY_RESERVE_BYTES = 1024 * 1024 * 1024;
/** Estimated per worker thread: V8 isolate, heap, stack, histograms. */
const PER_THREAD_BYTES = 24 * 1024 * 1024;

export interface RunConfig {
  readonly options: EmulateOptions;
  readonly vm: VmConfig;
  readonly footprint: VmFootprint;
  readonly backingLevel: 1 | 2 | 3;
  readonly backingPageBytes: number;
  readonly totalPages: number;
  readonly pagesPerVcpu: number;
  readonly regions: readonly VcpuRegion[];
  /** Bytes the run is expected to need in all, and what the host offers (for the banner). */
  readonly neededBytes: number;
  readonly availableBytes: number;
  readonly faultInject: FaultInjection | null;
}

/** Memory this process may use: free memory, or the cgroup limit when that is lower. */
function availableMemoryBytes(): number {
  let avail = freemem();
  const constrained = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory?.();
  // 0 or a huge value (2^64) means "no limit".
  if (constrained !== undefined && constrained > 0 && constrained < Number.MAX_SAFE_INTEGER) {
    avail = Math.min(avail, Math.max(0, constrained - process.memoryUsage.rss()));
  }
  return Math.max(0, avail - MEMORY_RESERVE_BYTES);
}

/**
 * Resolve the geometry and check the footprint. Throws ERR_INVALID_OPTION (naming the option)
 * for sizes that do not divide, ERR_TOO_BIG (bytes needed and available) for guests that would
 * not fit. `availableBytes` is injectable for tests.
 */
export function resolveRunConfig(
  options: EmulateOptions,
  faultInject: FaultInjection | null = null,
  availableBytes: number = availableMemoryBytes(),
): RunConfig {
  const backing = BACKINGS[options.backing];
  const totalBytes = options.vcpus * options.memoryPerVcpuBytes;
  if (!Number.isSafeInteger(totalBytes)) throw invalidOption(flagName('memory-per-vcpu'), 'guest memory size overflows');
  const totalPages = totalBytes / GUEST_PAGE_BYTES;
  const pagesPerVcpu = options.memoryPerVcpuBytes / GUEST_PAGE_BYTES;
  const guestDesc = `${options.vcpus} vCPU(s) x ${formatSize(options.memoryPerVcpuBytes)} = ${formatSize(totalBytes)}`;
  if (totalPages % options.memslots !== 0) {
    throw invalidOption(flagName('memslots'), `${guestDesc} of guest memory does not split into ${options.memslots} equal memslots of whole 4K pages`);
  }
  const slotPages = totalPages / options.memslots;
  const backingPages = backing.pageBytes / GUEST_PAGE_BYTES;
  if (slotPages % backingPages !== 0) {
    const which = options.memslots > 1 ? flagName('memslots') : flagName('memory-per-vcpu');
    throw invalidOption(
      which,
      `${guestDesc} in ${options.memslots} memslot(s) gives ${formatSize(slotPages * GUEST_PAGE_BYTES)} per memslot, ` +
        `not a whole number of ${formatSize(backing.pageBytes)} ${options.backing} pages`,
    );
  }
  // gfns above 2^36 are beyond a 4-level root; checkVmConfig would refuse them, but name the option here.
  if (DEFAULT_FIRST_GFN + totalPages > 2 ** 36) {
    throw invalidOption(flagName('memory-per-vcpu'), `${guestDesc} of guest memory is beyond what a 4-level TDP root maps (256 TiB)`);
  }
  const memslots = Array.from({ length: options.memslots }, (_, i) => ({ baseGfn: DEFAULT_FIRST_GFN + i * slotPages, npages: slotPages }));
  const roles = planRoles(options.vcpus, { hostEvents: hostEventsActive(options.hostEvents) });
  const vm: VmConfig = {
    levels: options.levels,
    memslots,
    backingLevel: backing.level,
    workers: roles.vmWorkers, // the main thread and every actor of the run plan
    pressure: parsePressure(options.pressure),
    seed: options.seed,
    dirtyTrack: options.dirtyTrack,
    hugePageFault: hugePageFaultFor(options.splitAlloc),
    nxHugePages: options.nxHugePages,
    faultModel: options.faultModel,
    hostCosts: options.hostCosts,
    hostCores: availableParallelism(),
    ...(options.poolTables !== undefined ? { poolTables: options.poolTables } : {}),
  };
  const footprint = vmFootprint(vm);
  // Besides the pool: one thread per worker, each vCPU's written-page bitset, the splitter's
  // GET bitmaps (one bit per page each).
  const neededBytes = footprint.bytes + roles.roles.length * PER_THREAD_BYTES + Math.ceil(totalPages / 8) * 2;
  if (neededBytes > availableBytes) {
    throw new EmulatorError(
      'ERR_TOO_BIG',
      `${flagName('memory-per-vcpu')}: a ${formatBytes(totalBytes)} guest (${guestDesc}) needs ${formatBytes(neededBytes)} ` +
        `(${neededBytes} bytes: ${footprint.tables} page tables and ${roles.roles.length} threads) but only ${formatBytes(availableBytes)} ` +
        `(${availableBytes} bytes) is available after a ${formatBytes(MEMORY_RESERVE_BYTES)} reserve`,
      { neededBytes, availableBytes, tables: footprint.tables },
    );
  }
  const regions = Array.from({ length: options.vcpus }, (_, i) => ({ firstGfn: DEFAULT_FIRST_GFN + i * pagesPerVcpu, npages: pagesPerVcpu }));
  return Object.freeze({
    options,
    vm,
    footprint,
    backingLevel: backing.level,
    backingPageBytes: backing.pageBytes,
    totalPages,
    pagesPerVcpu,
    regions,
    neededBytes,
    availableBytes,
    faultInject,
  });
}

/** Exit status for a signal, as shells report it (SIGINT = 130). */
export function signalExitCode(signal: 'SIGINT' | 'SIGTERM'): number {
  return 128 + osConstants.signals[signal];
}
