/**
 * Shared-memory layout of one RCU domain: a 128-byte header, then one 64-byte slot per reader.
 *
 * ```
 *  base (64-byte aligned)
 *  +-------------------------------------------------------------+
 *  | header: 32 Int32 (128 B; keeps the grace-period line away    |
 *  |         from slot 0 and its adjacent-line prefetch partner)  |
 *  |   H_MAGIC  H_MAX_READERS  H_GP_SEQ  H_GP_LOCK  (rest: 0)     |
 *  +-------------------------------------------------------------+
 *  | slot 0: 16 Int32 (64 B)                                      |
 *  |   S_STATE  S_OWNER  S_CB_QUEUED  S_CB_RUN  S_SYNC_CALLS       |
 *  |   S_SYNC_PARKS  (rest: padding)                              |
 *  +-------------------------------------------------------------+
 *  | slot 1 ... slot maxReaders-1                                 |
 *  +-------------------------------------------------------------+
 * ```
 *
 * Every field says who writes it and who reads it (liburcu's `struct urcu_gp` practice).
 */

/** Int32 slots in the domain header (128 bytes). */
export const HEADER_INT32S = 32;
/** Int32 slots per reader (64 bytes, one cache line: no two readers share a line). */
export const SLOT_INT32S = 16;
/** Upper bound on readers per domain; synchronize() scans every slot, so keep it modest. */
export const MAX_READERS = 4096;

// ---- header fields (offsets from base) ----

/** Written once by initialize(); read by every attach to check the region really is a domain. */
export const H_MAGIC = 0;
/** Written once by initialize(); read by attach (must match its maxReaders argument). */
export const H_MAX_READERS = 1;
/**
 * The grace-period sequence (Linux's rcu_seq): low bit set while a grace period is in progress,
 * +1 when one starts, +1 when it ends, so it advances by 2 per grace period.
 * Written only by the holder of H_GP_LOCK (synchronize); read by callRcu (snapshot) and
 * pollCallbacks (is a callback ripe?) and by stats().
 */
export const H_GP_SEQ = 2;
/**
 * Serialises grace periods (a small futex-style mutex): 0 free, 1 held, 2 held and someone is
 * parked in Atomics.wait on this word. Written and read by synchronize() callers only.
 */
export const H_GP_LOCK = 3;

/** The value initialize() stores in H_MAGIC ("RCU1"). */
export const RCU_MAGIC = 0x52435531;

// ---- per-reader slot fields (offsets from the slot's start) ----

/**
 * The reader's state word. Written by its reader (store on entry, exchange on exit), read by
 * synchronize() in any thread, which may also set the WAITER bit with a compareExchange.
 *
 *   bit 0 ACTIVE  the reader may hold references (inside readLock, or an online QSBR reader)
 *   bit 1 WAITER  a synchronize() is parked on this word: whoever clears ACTIVE must notify
 *   bits 2..31    the reader's private sequence, +1 (i.e. +SEQ_STEP) on every state change,
 *                 so "the value changed" means "the section a synchronizer saw has ended"
 */
export const S_STATE = 0;
/** 1 while a reader is registered on the slot (compareExchange 0 -> 1 by registerReader). */
export const S_OWNER = 1;
/** Callbacks this reader queued (written by the reader only; summed by stats()). */
export const S_CB_QUEUED = 2;
/** Callbacks this reader ran (written by the reader only; summed by stats()). */
export const S_CB_RUN = 3;
/** synchronize() calls by this reader (written by the reader only). */
export const S_SYNC_CALLS = 4;
/** Times this reader's synchronize() parked in Atomics.wait (written by the reader only). */
export const S_SYNC_PARKS = 5;

export const STATE_ACTIVE = 1;
export const STATE_WAITER = 2;
export const STATE_SEQ_STEP = 4;
/** The state bits that identify one section (everything but WAITER). */
export const STATE_ID_MASK = ~STATE_WAITER;

/** Int32 slots a domain with `maxReaders` readers needs (header + one padded slot per reader). */
export function rcuInt32s(maxReaders: number): number {
  return HEADER_INT32S + SLOT_INT32S * maxReaders;
}

/** Index of slot `slot`'s first Int32, relative to the view. */
export function slotIndex(base: number, slot: number): number {
  return base + HEADER_INT32S + SLOT_INT32S * slot;
}

// ---- grace-period sequence arithmetic (wrap-safe on Int32) ----

/**
 * The H_GP_SEQ value that proves a full grace period has run since `seq` was read: the end of
 * the next grace period to START after the read. If one is in progress (odd), it may already
 * have scanned past a reader, so wait for the one after it (Linux rcu_seq_snap()).
 */
export function gpSnap(seq: number): number {
  return ((seq + 3) & ~1) | 0;
}

/** Has the sequence reached `snap`? Wrap-safe: compares the signed 32-bit difference. */
export function gpDone(seq: number, snap: number): boolean {
  return ((seq - snap) | 0) >= 0;
}
