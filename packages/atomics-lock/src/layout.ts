/**
 * The shared-memory layout of one RwLock: RWLOCK_INT32S Int32 slots starting at `base` of an
 * Int32Array over a SharedArrayBuffer. All offsets below are relative to `base`.
 *
 * Hot and cold words live on separate lines, 128 bytes apart (adjacent-line prefetch pairs 64-byte
 * lines, so two words 64 bytes apart still false-share; machine-floors.md measured that as bad as
 * true sharing). The region itself must start on a 64-byte boundary; 128 is better.
 *
 *   line  Int32 offset   contents                                    written by / read by
 *   ----  ------------   -----------------------------------------   ----------------------------------
 *    0    0              CNTS: the qrwlock word (see bit layout)      every acquire/release (fast path)
 *    1    32..35         NEXT, SERVING, QPARKED, MAGIC                slow path (queue); isContended()
 *   2-5   64..191        WAKE[128]: futex word per queue slot          passTurn() bumps / waiters park
 *   6-9   192..319       STATE[128]: kind/abandoned/granted per ticket  waiters / heads (wait_queue.ts)
 *   10    320            DBG_WRITER: holder id + 1 of the writer       debug mode only
 *  11-14  352..479       DBG_READERS[128]: read holds per holder id    debug mode only
 *   15    480..495       STATS: 8 x BigInt64 published totals          publishStats() / sharedStats()
 *
 * CNTS bit layout (Linux qrwlock, plus one bit of ours):
 *
 *   31        30 ........................ 9    8          7 ...... 0
 *   PARKED  | reader count (QR_BIAS = 1<<9) | WAITING | LOCKED (0xff) |
 *
 *   LOCKED  (0xff)   a writer holds the lock (a whole byte, as in the kernel).
 *   WAITING (0x100)  the writer at the head of the queue waits for readers to drain; new readers
 *                    fail their fast path and queue behind it (no writer starvation).
 *   readers          one QR_BIAS per reader holding the lock, or transiently trying to.
 *   PARKED  (1<<31)  ours: the queue head sleeps in Atomics.wait on CNTS. Unlockers test it in the
 *                    value their fetch-sub returns, so unlock calls Atomics.notify only when
 *                    someone sleeps (notify with no waiter costs 33 ns) at no extra atomic.
 */

import { invalidArg } from './errors.js';

/** Int32 slots in a 128-byte line: the spacing between independently written words. */
export const LINE_INT32S = 32;
/** The region must start on this many bytes (a cache line). */
const REGION_ALIGN_BYTES = 64;

export const QW_LOCKED = 0xff;
export const QW_WAITING = 0x100;
export const QW_WMASK = 0x1ff;
export const QR_SHIFT = 9;
export const QR_BIAS = 1 << QR_SHIFT;
export const Q_PARKED = 1 << 31; // -2147483648 as an Int32: the word is negative while set
export const QR_MASK = ~(QW_WMASK | Q_PARKED); // 0x7ffffe00

// Load-time checks (spte.h style): the fields partition the word.
if ((QW_LOCKED & QW_WAITING) !== 0 || (QW_WMASK & QR_MASK) !== 0 || (QR_MASK & Q_PARKED) !== 0 || (QW_WMASK & Q_PARKED) !== 0) {
  throw new Error('atomics-lock: CNTS bit fields overlap');
}
if ((QW_WMASK | QR_MASK | Q_PARKED) !== -1) throw new Error('atomics-lock: CNTS bit fields leave holes');

/** Queue capacity: tickets not yet passed by SERVING, at most this many. Power of two, >= 8. */
export const QUEUE_SLOTS = 128;
export const QUEUE_MASK = QUEUE_SLOTS - 1;
/** Holder ids tracked by debug mode: 0..DEBUG_MAX_HOLDERS-1. */
export const DEBUG_MAX_HOLDERS = 128;

export const CNTS = 0;
export const NEXT = LINE_INT32S; // next ticket to hand out
export const SERVING = NEXT + 1; // ticket of the queue head (the one "holding wait_lock")
export const QPARKED = NEXT + 2; // threads asleep on WAKE slots (passTurn skips notify at 0)
export const MAGIC = NEXT + 3; // MAGIC_VALUE once initialize() has run
export const WAKE = 2 * LINE_INT32S;
export const STATE = WAKE + QUEUE_SLOTS;
export const DBG_WRITER = STATE + QUEUE_SLOTS;
export const DBG_READERS = DBG_WRITER + LINE_INT32S;
export const STATS = DBG_READERS + DEBUG_MAX_HOLDERS;
/** BigInt64 fields of the STATS line, in this order. */
export const STAT_FIELDS = [
  'readAcquisitions',
  'writeAcquisitions',
  'contendedReads',
  'contendedWrites',
  'readWaitNs',
  'writeWaitNs',
  'parks',
  'timeouts',
] as const;
export const RWLOCK_INT32S = STATS + LINE_INT32S;

export const MAGIC_VALUE = 0x52574c4b; // 'RWLK'

if (RWLOCK_INT32S % LINE_INT32S !== 0 || STAT_FIELDS.length * 2 > LINE_INT32S) {
  throw new Error('atomics-lock: layout is not a whole number of lines');
}
if ((QUEUE_SLOTS & QUEUE_MASK) !== 0 || QUEUE_SLOTS < 8) throw new Error('atomics-lock: QUEUE_SLOTS must be a power of two');

/**
 * Validates a (view, base) pair for a lock region. Throws ERR_INVALID_ARG naming `what`.
 * The view must be an Int32Array over a SharedArrayBuffer (a lock in private memory cannot be
 * shared, and Atomics.wait needs Int32Array); the region must fit and start on a cache line.
 */
export function checkRegion(what: string, view: unknown, base: unknown, int32s: number): asserts view is Int32Array {
  if (!(view instanceof Int32Array)) throw invalidArg(what, 'view must be an Int32Array');
  if (!(view.buffer instanceof SharedArrayBuffer)) throw invalidArg(what, 'view must be over a SharedArrayBuffer');
  if (typeof base !== 'number' || !Number.isInteger(base) || base < 0) {
    throw invalidArg(what, `base must be a non-negative integer, got ${String(base)}`);
  }
  if (base + int32s > view.length) {
    throw invalidArg(what, `region [${base}, ${base + int32s}) does not fit in a view of ${view.length} Int32s`);
  }
  const byteAddr = view.byteOffset + base * 4;
  if (byteAddr % REGION_ALIGN_BYTES !== 0) {
    throw invalidArg(what, `region must start on a ${REGION_ALIGN_BYTES}-byte boundary of the buffer, starts at byte ${byteAddr}`);
  }
}
