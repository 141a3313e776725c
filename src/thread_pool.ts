/**
 * Run a fixed set of long-lived tasks on worker threads, all at once, through piscina.
 *
 * Every task in the set must run concurrently (they meet on locks in shared memory; a task left
 * queued behind a busy thread would deadlock the others), so the pool has exactly one thread per
 * task, threads never idle out, and one task per thread.
 *
 * Failure: the first task that rejects fails the whole set. The remaining workers are
 * terminated (`pool.destroy()` interrupts even a worker parked in `Atomics.wait`) and the
 * returned promise rejects with the first error. A `timeoutMs` bound does the same with an
 * ERR_TIMEOUT error, so nothing built on this can hang.
 */
import { Piscina } from 'piscina';
import { EmulatorError } from './errors.js';

export interface RunAllOptions {
  /** Reject with ERR_TIMEOUT if the set has not finished by then. */
  readonly timeoutMs?: number;
  /** Called once, before the pool is destroyed, when a task fails or the timeout fires. */
  readonly onFailure?: (err: unknown) => void;
  /** Extra resourceLimits or env for the workers. */
  readonly env?: Record<string, string>;
  /**
   * Per-task worker file (added for the emulator: vCPU and splitter tasks run different
   * modules in one pool). Entry i overrides the pool's filename for task i; undefined keeps it.
   */
  readonly filenames?: readonly (URL | string | undefined)[];
  /**
   * Per-task name ("splitter", "vCPU 3"): a task whose thread died without an error of its own
   * (a crash, process.exit) rejects with the name in front of piscina's message, so the failure
   * says which thread it was. A task's own thrown errors carry their label already (workerError).
   */
  readonly labels?: readonly string[];
}

/** `err` with `label: ` in front when it is not a coded error from the task itself (a thread that died). */
function labelThreadDeath(label: string, err: unknown): unknown {
  if (!(err instanceof Error) || /^ERR_[A-Z_]+: /.test(err.message)) return err;
  const e = new Error(`${label}: ${err.message}`);
  if (err.stack !== undefined) e.stack = `${e.message}\n${err.stack.split('\n').slice(1).join('\n')}`;
  return e;
}

/** A pool that stays up for several rounds of tasks (the emulator's phases). */
export class TaskPool {
  readonly #pool: Piscina;
  #destroyed = false;

  constructor(filename: URL | string, threads: number, env?: Record<string, string>) {
    if (!Number.isInteger(threads) || threads < 1) {
      throw new EmulatorError('ERR_INVALID_ARG', `TaskPool: threads must be a positive integer, got ${threads}`);
    }
    this.#pool = new Piscina({
      filename: typeof filename === 'string' ? filename : filename.href,
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: Number.POSITIVE_INFINITY,
      concurrentTasksPerWorker: 1,
      maxQueue: 'auto',
      env: env !== undefined ? { ...process.env, ...env } : process.env,
      // piscina loads a task file with require() first and falls back to import(). Under Node 20's
      // require(esm) that occasionally trips "imported again after being required"
      // (ERR_INTERNAL_ASSERTION, nodejs/node#55500) when one worker loads several of our ESM task
      // files. With require(esm) off in the workers, require() fails fast (ERR_REQUIRE_ESM) and
      // every file is loaded by import() alone.
      execArgv: [...process.execArgv, '--no-experimental-require-module'],
    });
  }

  get threads(): number {
    return this.#pool.threads.length;
  }

  /**
   * Run `tasks` concurrently; resolve with their results in order, or reject with the first
   * failure (after destroying the pool: a failed set leaves other tasks blocked on shared state).
   */
  async runAll<R>(tasks: readonly unknown[], opts: RunAllOptions = {}): Promise<R[]> {
    if (this.#destroyed) throw new EmulatorError('ERR_ABORTED', 'TaskPool: pool already destroyed');
    let timer: NodeJS.Timeout | undefined;
    // The first failure wins: destroying the pool rejects every other task with piscina's
    // "Terminating worker thread", which must not mask the cause.
    let firstError: { err: unknown } | undefined;
    const fail = async (err: unknown): Promise<never> => {
      if (firstError === undefined) {
        firstError = { err };
        opts.onFailure?.(err);
        await this.destroy();
      }
      throw firstError.err;
    };
    const all = Promise.all(
      tasks.map((t, i) => {
        const f = opts.filenames?.[i];
        const run = (f === undefined ? this.#pool.run(t) : this.#pool.run(t, { filename: typeof f === 'string' ? f : f.href })) as Promise<R>;
        const label = opts.labels?.[i];
        return label === undefined ? run : run.catch((err: unknown) => Promise.reject(labelThreadDeath(label, err)));
      }),
    );
    const guarded: Promise<R[]>[] = [all.catch(fail)];
    if (opts.timeoutMs !== undefined) {
      guarded.push(
        new Promise<R[]>((_resolve, reject) => {
          timer = setTimeout(() => {
            fail(new EmulatorError('ERR_TIMEOUT', `tasks did not finish within ${opts.timeoutMs} ms`)).catch(reject);
          }, opts.timeoutMs);
        }),
      );
    }
    try {
      return await Promise.race(guarded);
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
  }

  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    await this.#pool.destroy();
  }
}

/** One-shot: a pool for exactly these tasks, destroyed afterwards. */
export async function runAllConcurrently<R>(filename: URL | string, tasks: readonly unknown[], opts: RunAllOptions = {}): Promise<R[]> {
  const pool = new TaskPool(filename, tasks.length, opts.env);
  try {
    return await pool.runAll<R>(tasks, opts);
  } finally {
    await pool.destroy();
  }
}
