/**
 * Shared bench plumbing: batched tinybench tasks for sub-microsecond operations, and the
 * "figure beside its floor" table every bench prints.
 *
 * Sub-microsecond operations are batched: one tinybench sample runs the body `inner` times and
 * reports the per-operation time through `overriddenDuration` (a naive one-call sample here is
 * about 75 % timer overhead; see machine-floors.md). Medians are quoted: the machine is noisy.
 */
import { Bench } from 'tinybench';

export interface BatchedTask {
  readonly name: string;
  /** Runs the operation `n` times. Setup belongs outside (in the closure or `beforeAll`). */
  readonly body: (n: number) => void;
  readonly beforeAll?: () => void | Promise<void>;
  readonly afterAll?: () => void | Promise<void>;
}

/** Median nanoseconds per operation for each task, measured in one tinybench run. */
export async function medianNsPerOp(tasks: readonly BatchedTask[], opts: { inner?: number; timeMs?: number } = {}): Promise<Map<string, number>> {
  const inner = opts.inner ?? 10_000;
  const bench = new Bench({ time: opts.timeMs ?? 500, warmupTime: 100 });
  for (const t of tasks) {
    bench.add(
      t.name,
      () => {
        const t0 = bench.now();
        t.body(inner);
        const ms = bench.now() - t0;
        return { overriddenDuration: ms / inner, overriddenIterationCost: ms };
      },
      {
        async: false,
        ...(t.beforeAll !== undefined ? { beforeAll: t.beforeAll } : {}),
        ...(t.afterAll !== undefined ? { afterAll: t.afterAll } : {}),
      },
    );
  }
  await bench.run();
  const out = new Map<string, number>();
  for (const task of bench.tasks) {
    const r = task.result;
    if (r.state !== 'completed') throw new Error(`bench task ${task.name} did not complete: ${r.state}`);
    out.set(task.name, r.latency.p50 * 1e6);
  }
  return out;
}

export interface RatioRow {
  readonly figure: string;
  /** The measured value (ns per op unless `unit` says otherwise). */
  readonly value: number;
  readonly floorName: string;
  readonly floor: number;
  /** The target ratio (value / floor) from the issue, if there is one. */
  readonly target?: number;
  readonly unit?: string;
}

/** Prints one table: figure, value, floor, ratio, target, verdict. */
export function printRatioTable(title: string, rows: readonly RatioRow[]): void {
  console.log(`\n## ${title}`);
  console.table(
    rows.map((r) => {
      const ratio = r.value / r.floor;
      return {
        figure: r.figure,
        [`value (${r.unit ?? 'ns/op'})`]: round(r.value),
        floor: r.floorName,
        [`floor (${r.unit ?? 'ns/op'})`]: round(r.floor),
        ratio: `${ratio.toFixed(2)}x`,
        target: r.target !== undefined ? `<= ${r.target}x` : '-',
        verdict: r.target === undefined ? '-' : ratio <= r.target ? 'met' : 'MISSED',
      };
    }),
  );
}

export function round(x: number): number {
  return x >= 100 ? Math.round(x) : Math.round(x * 100) / 100;
}

/** Median of a list of numbers (NaN for an empty list). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Two Atomics.add on one word: the floor for an uncontended lock+unlock. */
export function floorTwoAtomicAdds(): BatchedTask {
  const w = new Int32Array(new SharedArrayBuffer(128));
  return {
    name: 'floor: 2x Atomics.add',
    body: (n) => {
      for (let i = 0; i < n; i++) {
        Atomics.add(w, 0, 1);
        Atomics.add(w, 0, -1);
      }
    },
  };
}

/** Two Atomics.store: the floor for an epoch-RCU read-side critical section. */
export function floorTwoAtomicStores(): BatchedTask {
  const w = new Int32Array(new SharedArrayBuffer(128));
  return {
    name: 'floor: 2x Atomics.store',
    body: (n) => {
      for (let i = 0; i < n; i++) {
        Atomics.store(w, 0, i);
        Atomics.store(w, 0, 0);
      }
    },
  };
}
