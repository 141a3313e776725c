/**
 * The RCU's own error class. The package stands alone (no imports from the rest of the project), so it
 * cannot use the emulator's src/errors.ts; the codes are the same strings, so callers match on `code` either way.
 *
 * Tiers (STYLE.md practice 9): API misuse and bad arguments throw an RcuError with a stable code;
 * a timed-out synchronize() is a return value (false), never an exception.
 */

export type RcuErrorCode =
  | 'ERR_INVALID_ARG' // bad view, base, range, slot, option or callback
  | 'ERR_LOCK_NOT_HELD' // debug: assertInReadSide() outside a read-side critical section
  | 'ERR_RCU_IN_READ_SIDE' // an operation that must not run inside readLock (synchronize, barrier, offline...)
  | 'ERR_RCU_OFFLINE' // a read-side operation on an offline (or unregistered) reader
  | 'ERR_RCU_UNBALANCED' // readUnlock without a matching readLock
  | 'ERR_RCU_SLOT_IN_USE'; // registerReader on a slot another reader holds

export class RcuError extends Error {
  readonly code: RcuErrorCode;

  constructor(code: RcuErrorCode, message: string) {
    super(message);
    this.name = 'RcuError';
    this.code = code;
  }
}

/** An argument error; `what` names the primitive and method ("RcuDomain.initialize"). */
export function rcuInvalidArg(what: string, why: string): RcuError {
  return new RcuError('ERR_INVALID_ARG', `${what}: ${why}`);
}
