/**
 * Errors raised by atomics-lock. The package imports nothing from its host project, so it has its
 * own small error class; `code` is the stable thing to match on (Node's convention), the message
 * is for humans and names the primitive and the argument.
 *
 * Lost races and timeouts are NOT errors: `try*` and timed acquires return `false`.
 */

export type AtomicsLockErrorCode =
  | 'ERR_INVALID_ARG' // a bad view, base, option or timeout
  | 'ERR_LOCK_NOT_HELD'; // unlock without a matching lock, or a failed debug holder assertion

export class AtomicsLockError extends Error {
  readonly code: AtomicsLockErrorCode;

  constructor(code: AtomicsLockErrorCode, message: string) {
    super(message);
    this.name = 'AtomicsLockError';
    this.code = code;
  }
}

export function invalidArg(what: string, why: string): AtomicsLockError {
  return new AtomicsLockError('ERR_INVALID_ARG', `${what}: ${why}`);
}

export function notHeld(what: string, why: string): AtomicsLockError {
  return new AtomicsLockError('ERR_LOCK_NOT_HELD', `${what}: ${why}`);
}
