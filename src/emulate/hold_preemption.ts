/**
 * Lock-holder preemption, made visible: the splitter's mmu_lock holds carry their on-CPU time
 * beside their wall time (src/mmu/hold_cpu.ts), and a hold on a CPU for under half its wall time
 * was descheduled by the host. A kernel rwlock holder never is (preemption is off while it holds),
 * so such holds measure the host's scheduler (8 to 96 busy threads on 2 cores), not the design.
 * This file reduces the splitter's per-op figures to the report's: how many holds were preempted,
 * and the hold-time figures without them beside the figures with them (the report's existing
 * splitterReadHoldNs / splitterWriteHoldNs).
 */
import { Histogram } from '../stats/histogram.js';
import { HOLD_CLASSIFY_MIN_NS, PREEMPTED_CPU_FRACTION } from '../mmu/hold_cpu.js';
import { OP_CHECK } from './control.js';
import type { SplitterOpSample } from './messages.js';
import { summarize } from './report_model.js';
import type { HoldPreemption, LatencySummary } from './report_model.js';

/** Over the splitter's dirty-log ops (not the final invariant check); null if no op carried the figures. */
export function summarizeHoldPreemption(samples: readonly SplitterOpSample[]): HoldPreemption | null {
  const ops = samples.filter((s) => s.op !== OP_CHECK && s.holdCpu !== undefined && s.holdCpu !== null);
  if (ops.length === 0) return null;
  const read = new Histogram();
  const write = new Histogram();
  let classified = 0;
  let preempted = 0;
  let wallNs = 0;
  let cpuNs = 0;
  let cpuReads = 0;
  for (const s of ops) {
    const h = s.holdCpu!;
    classified += h.classified;
    preempted += h.preempted;
    wallNs += h.preemptedWallNs;
    cpuNs += h.preemptedCpuNs;
    cpuReads += h.cpuReads;
    read.merge(h.readHoldNotPreempted);
    write.merge(h.writeHoldNotPreempted);
  }
  return {
    classified,
    preempted,
    minClassifiedNs: HOLD_CLASSIFY_MIN_NS,
    preemptedCpuFraction: PREEMPTED_CPU_FRACTION,
    preemptedWallSeconds: wallNs / 1e9,
    preemptedCpuSeconds: cpuNs / 1e9,
    readHoldNotPreemptedNs: summarize(read),
    writeHoldNotPreemptedNs: summarize(write),
    cpuReads,
  };
}

/** One text line for the report: the preempted holds and the hold figures without them. */
export function holdPreemptionLine(h: HoldPreemption | null | undefined, formatNs: (ns: number) => string): string {
  if (h === null || h === undefined) return 'not measured (no per-thread CPU time on this OS)';
  const without = (s: LatencySummary): string => (s.count === 0 ? '-' : `p99 ${formatNs(s.p99)}, max ${formatNs(s.max)}`);
  return (
    `${h.preempted} of ${h.classified} holds over ${formatNs(h.minClassifiedNs)} were on a CPU < ${h.preemptedCpuFraction * 100} % of their wall time ` +
    `(${h.preemptedWallSeconds.toFixed(6)} s wall, ${h.preemptedCpuSeconds.toFixed(6)} s on CPU: host scheduling, not the design); ` +
    `without them: read holds ${without(h.readHoldNotPreemptedNs)}; write holds ${without(h.writeHoldNotPreemptedNs)}`
  );
}
