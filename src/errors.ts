/**
 * One error factory for the whole project (piscina's `Errors.*`, Node's `error.code`).
 *
 * Three tiers:
 *  - lost races are return values, never exceptions (see tdp_mmu's `try*` functions);
 *  - broken invariants throw `invariantViolation(...)` with a full state dump;
 *  - user and API errors carry a stable `code` so callers and tests match on it, not on wording.
 *
 * Errors cross threads in ONE format, the message: a structured clone of an Error keeps its
 * message and stack but not its class or extra properties such as `code`. So a worker throws
 * (or returns) `workerError(label, err)`, a plain Error whose message starts with the stable code
 * (`ERR_INVARIANT: vCPU 3: ...`), and the receiving thread gets an EmulatorError back with
 * `errorFromWorker(err)`.
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

function formatDump(dump: Record<string, unknown>): string {
  return JSON.stringify(dump, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v));
}

/** The Error a worker throws: its message carries the stable code, since properties are lost. */
export function workerError(label: string, err: unknown): Error {
  const code = errorCode(err) ?? 'ERR_WORKER';
  const message = err instanceof Error ? err.message : String(err);
  const e = new Error(`${code}: ${label}: ${message}`);
  if (err instanceof Error && err.stack !== undefined) e.stack = `${e.message}\n${err.stack.split('\n').slice(1).join('\n')}`;
  return e;
}

/**
 * The EmulatorError a worker's error stands for, on the receiving thread: the code from a
 * workerError message; ERR_WORKER for a thread that died without one. A worker that only saw the
 * run's ABORT reflects someone else's failure, so its ERR_ABORTED becomes ERR_WORKER: the code of
 * the real cause is kept by whoever failed first.
 */
export function errorFromWorker(err: unknown): EmulatorError {
  if (err instanceof EmulatorError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  const stack = err instanceof Error ? err.stack : undefined;
  const code = /^(ERR_[A-Z_]+): /.exec(msg)?.[1];
  if (code !== undefined) {
    // Codes of other modules (the lock's) pass through unchanged: callers match on the string.
    const c = (code === 'ERR_ABORTED' ? 'ERR_WORKER' : code) as ErrorCode;
    return new EmulatorError(c, msg.slice(code.length + 2), { stack });
  }
  return new EmulatorError('ERR_WORKER', `a worker thread died: ${msg}`, { stack });
}

/** The `code` of any thrown value, if it has one. */
export function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}
