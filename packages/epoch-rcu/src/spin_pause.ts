/**
 * One iteration of a spin-wait loop's back-off: `Atomics.pause()` where the runtime has it (V8
 * 13.3 and later: Node 24 and 26), else nothing (Node 20, where the loop polls as before).
 * The same helper as atomics-lock's; each package stands alone, so each has its copy.
 *
 * Atomics.pause hints the CPU that this thread is spinning (x86 PAUSE, arm64 YIELD): the sibling
 * hyperthread gets the core's resources. It never yields to the OS and has no memory effect, so
 * it changes no ordering argument of the grace period. Feature-detected once at load.
 */
type AtomicsWithPause = typeof Atomics & { pause?: (iterationNumber?: number) => void };

const pause = (Atomics as AtomicsWithPause).pause;

export const spinPause: () => void = typeof pause === 'function' ? () => (Atomics as Required<AtomicsWithPause>).pause() : () => {};
