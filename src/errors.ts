/**
 * One error factory for the whole project (piscina's `Errors.*`, Node's `error.code`).
 *
 * Three tiers, as STYLE.md asks:
 *  - lost races are return values, never exceptions (see tdp_mmu's `try*` functions);
 *  - broken invariants throw `invariantViolation(...)` with a full state dump;
 *  - user and API errors carry a stable `code` so callers and tests match on it, not on wording.
 *
 * Errors cross threads as plain data (`toWire`/`fromWire`): custom classes and extra
 * properties do not survive `postMessage` (piscina#1143, node#37988).
 */

export type ErrorCode =
  | 'ERR_INVALID_OPTION' // a CLI or API option is malformed or out of range (exit code 2)
  | 'ERR_TOO_BIG' // the requested guest would not fit in memory (exit code 2)
  | 'ERR_INVALID_ARG' // an API argument is wrong (bad view, base, index)
  | 'ERR_LOCK_NOT_HELD' // a debug lock-context assertion failed
  | 'ERR_TIMEOUT' // a bounded wait ran out
  | 'ERR_ENOMEM' // the page-table pool is truly exhausted
  | 'ERR_INVARIANT' // a broken invariant: a bug in the emulator, not in the caller
  | 'ERR_WORKER' // a worker thread threw or died
  | 'ERR_STUCK' // the watchdog saw no progress
  | 'ERR_ABORTED'; // the run was stopped (Ctrl-C, or another worker failed)

export class EmulatorError extends Error {
  readonly code: ErrorCode;
  /** Optional machine-readable context (state dumps, the offending option). */
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'EmulatorError';
    this.code = code;
    this.details = details;
  }
}

/** A user error about one option; the message names the option. */
export function invalidOption(option: string, why: string): EmulatorError {
  return new EmulatorError('ERR_INVALID_OPTION', `${option}: ${why}`, { option });
}

/** An API argument error; `what` names the primitive or function. */
export function invalidArg(what: string, why: string): EmulatorError {
  return new EmulatorError('ERR_INVALID_ARG', `${what}: ${why}`);
}

/**
 * A broken invariant. `dump` should hold everything needed to debug it
 * (gfn, level, old/new spte, table index...); it is printed with the message.
 */
export function invariantViolation(what: string, dump: Record<string, unknown>): EmulatorError {
  return new EmulatorError('ERR_INVARIANT', `invariant violated: ${what} ${formatDump(dump)}`, dump);
}

export function formatDump(dump: Record<string, unknown>): string {
  return JSON.stringify(dump, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v));
}

/** Plain-data form of an error, safe to `postMessage`. */
export interface WireError {
  readonly name: string;
  readonly code: string | undefined;
  readonly message: string;
  readonly stack: string | undefined;
}

export function toWire(err: unknown): WireError {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return { name: err.name, code: typeof code === 'string' ? code : undefined, message: err.message, stack: err.stack };
  }
  return { name: 'Error', code: undefined, message: String(err), stack: undefined };
}

export function fromWire(w: WireError): Error {
  const err = new Error(w.message) as Error & { code?: string };
  err.name = w.name;
  if (w.code !== undefined) err.code = w.code;
  if (w.stack !== undefined) err.stack = w.stack;
  return err;
}

/** The `code` of any thrown value, if it has one. */
export function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}
