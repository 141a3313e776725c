/** A timeline sample with the given time, phase and cumulative accesses; every other series zero unless `extra` sets it. */
import type { TimelinePoint } from '../src/emulate/timeline.js';

export function point(tMs: number, phase: number, accesses: number, extra: Partial<TimelinePoint> = {}): TimelinePoint {
  return {
    tMs,
    phase,
    accesses,
    fastFaults: 0,
    slowFaults: 0,
    firstTouchFaults: 0,
    hugePagesSplit: 0,
    lockDrops: 0,
    restarts: 0,
    lockWaiters: 0,
    lockWaitingMs: 0,
    writerHeld: false,
    ...extra,
  };
}
