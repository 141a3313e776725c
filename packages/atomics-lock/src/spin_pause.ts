/**
 * One iteration of a spin-wait loop's back-off: `Atomics.pause()` where the runtime has it (V8
 * 13.3 and later: Node 24 and 26), else nothing (Node 20, where the loop polls as before).
 *
 * Atomics.pause hints the CPU that this thread is spinning (x86 PAUSE, arm64 YIELD): the sibling
 * hyperthread gets the core's resources, and leaving the loop does not pay a memory-order
 * mis-speculation flush. It never yields to the OS and has no memory effect, so it changes no
 * ordering argument of the lock. Feature-detected once at load.
 */
type AtomicsWithPause = typeof Atomics & { pause?: (iterationNumber?: number) => void };

const pause = (Atomics as AtomicsWithPause).pause;

/** True when spin loops call Atomics.pause (printed by the benches beside their figures). */
export const HAS_ATOMICS_PAUSE = typeof pause === 'function';

export const spinPause: () => void = HAS_ATOMICS_PAUSE ? () => (Atomics as Required<AtomicsWithPause>).pause() : () => {};
