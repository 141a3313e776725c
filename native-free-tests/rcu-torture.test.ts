/**
 * rcutorture for packages/epoch-rcu/src/ (see fixtures/rcu-torture.worker.ts for the model). Prints an
 * rcutorture-style summary; fails on any Reader Pipe or Reader Batch bucket past 1, any poisoned
 * or torn read, or any lost callback. Each detector has its own control: the same harness and
 * configuration with one bug injected once, deterministically, through a handshake with a reader
 * that holds the current element (fixtures/rcu-torture.worker.ts): a callback run before its grace
 * period (Reader Pipe), a reader offline while it holds a reference (Reader Batch), an element
 * freed at unpublish (poison). Each control asserts that its detector fires and no other does.
 *
 * Tiers: STRESS_TIER=short (default) 1.5 s with 13 readers; ci 3 s / long 30 s with 29 readers
 * (32 workers in all). STRESS_SECONDS overrides the duration.
 */
import test from 'ava';
import { RcuDomain } from 'epoch-rcu';
import { runAllConcurrently } from '../src/thread_pool.js';
import { stressSeconds, stressTier } from './_tier.js';
import { PIPE_LEN, initTorture, tortureInt32s, type TortureInjection, type TortureResult, type TortureTask } from './fixtures/rcu-torture.worker.js';

const worker = new URL('./fixtures/rcu-torture.worker.js', import.meta.url);

interface Summary {
  readonly text: string;
  readonly pipe: number[];
  readonly batch: number[];
  readonly reads: number;
  readonly versions: number;
  readonly gracePeriods: number;
  readonly poisoned: number;
  readonly torn: number;
  readonly pipeViolations: number; // sections that saw pipe_count >= 2
  readonly batchViolations: number; // sections across which >= 2 grace periods completed
  readonly lostCallbacks: number;
  /** The injection took place (writer and reader both say so); false for the real test. */
  readonly injected: boolean;
  readonly ok: boolean;
}

async function runTorture(inject: TortureInjection, seconds: number, readers: number): Promise<Summary> {
  const fakeWriters = 2;
  const workers = 1 + fakeWriters + readers;
  const maxReaders = workers;
  const sab = new SharedArrayBuffer(tortureInt32s(maxReaders) * 4);
  initTorture(sab, maxReaders);
  // The first reader (a QSBR one, i = 0 below) takes part in a control's injection.
  const common = { sab, maxReaders, workers, seconds, inject, injectReader: 1 + fakeWriters };
  const tasks: TortureTask[] = [{ role: 'writer', id: 0, ...common }];
  for (let i = 0; i < fakeWriters; i++) tasks.push({ role: 'fakewriter', id: 1 + i, ...common });
  for (let i = 0; i < readers; i++) {
    tasks.push({
      role: 'reader',
      id: 1 + fakeWriters + i,
      ...common,
      mode: i % 3 === 0 ? 'qsbr' : 'epoch',
      offlineEvery: i % 2 === 0 ? 64 : 512, // park (offline + 1 ms sleep) every N sections
    });
  }
  const results = await runAllConcurrently<TortureResult>(worker, tasks, { timeoutMs: seconds * 1000 + 60_000 });
  const stats = new RcuDomain(new Int32Array(sab), 0, maxReaders).stats();

  const sum = (f: (r: TortureResult) => number): number => results.reduce((a, r) => a + f(r), 0);
  const hist = (f: (r: TortureResult) => number[]): number[] =>
    results.reduce((acc, r) => acc.map((x, i) => x + f(r)[i]!), new Array<number>(PIPE_LEN + 1).fill(0));
  const pipe = hist((r) => r.pipe);
  const batch = hist((r) => r.batch);
  const fbc = hist((r) => r.freeBlockCirculation);
  const w = results[0]!;
  const reads = sum((r) => r.reads);
  const poisoned = sum((r) => r.poisonedReads);
  const torn = sum((r) => r.tornReads);
  const pipeViolations = pipe.slice(2).reduce((a, b) => a + b, 0);
  const batchViolations = batch.slice(2).reduce((a, b) => a + b, 0);
  // Lost callbacks: each worker's own count of queued vs run, the domain's per-slot counters,
  // callbacks still pending after the final barrier, and ring elements that never came home.
  const lostCallbacks =
    Math.abs(sum((r) => r.callbacksQueued) - sum((r) => r.callbacksRun)) +
    Math.abs(stats.callbacksQueued - stats.callbacksRun) +
    sum((r) => r.pendingAfterBarrier) +
    (w.freeAtEnd === 9 ? 0 : 1); // NELEM - 1 free: all but the current element
  const ok = pipeViolations === 0 && batchViolations === 0 && poisoned === 0 && torn === 0 && lostCallbacks === 0;
  const bang = (h: number[]): string => (h.slice(2).some((x) => x !== 0) ? ' !!!' : '');
  const modes = results.filter((r) => r.role === 'reader');
  const text = [
    `rcu-torture${inject !== 'none' ? ` (CONTROL: ${inject})` : ''}: ${seconds}s, ${readers} readers ` +
      `(${modes.filter((r) => r.mode === 'qsbr').length} qsbr, ${modes.filter((r) => r.mode === 'epoch').length} epoch), 2 fake writers`,
    `rcu-torture: ver: ${w.versions} tfle: ${w.freeListEmpty} reads: ${reads} rtmbe(torn): ${torn} poisoned: ${poisoned} ` +
      `rtbe(lost callbacks): ${lostCallbacks} offlines: ${sum((r) => r.offlines)} qs: ${sum((r) => r.quiescentStates)}`,
    `rcu-torture: Reader Pipe: ${pipe.join(' ')}${bang(pipe)}`,
    `rcu-torture: Reader Batch: ${batch.join(' ')}${bang(batch)}`,
    `rcu-torture: Free-Block Circulation: ${fbc.join(' ')}`,
    `rcu-torture: grace periods: ${stats.gracePeriods} synchronize calls: ${stats.synchronizeCalls} parks: ${stats.synchronizeParks} ` +
      `barriers: ${sum((r) => r.barriers)} callbacks queued: ${stats.callbacksQueued} run: ${stats.callbacksRun}`,
    `rcu-torture: --- End of test: ${ok ? 'SUCCESS' : 'FAILURE'}`,
  ].join('\n');
  return {
    text,
    pipe,
    batch,
    reads,
    versions: w.versions,
    gracePeriods: stats.gracePeriods,
    poisoned,
    torn,
    pipeViolations,
    batchViolations,
    lostCallbacks,
    injected: results.filter((r) => r.injected).length === 2,
    ok,
  };
}

const readers = stressTier() === 'short' ? 13 : 29;

test.serial('rcu torture: no reader sees an element past one grace period, nothing poisoned, no callback lost', async (t) => {
  const s = await runTorture('none', stressSeconds(), readers);
  console.log(s.text);
  t.true(s.reads > 0, 'readers ran');
  t.is(s.pipeViolations, 0, 'Reader Pipe buckets past 1');
  t.is(s.batchViolations, 0, 'Reader Batch buckets past 1');
  t.is(s.poisoned, 0, 'poisoned reads');
  t.is(s.torn, 0, 'torn reads');
  t.is(s.lostCallbacks, 0, 'lost callbacks');
  t.true(s.versions > 1 && s.gracePeriods > 0, 'the writer published and grace periods completed');
  if (s.pipe[1] === 0) t.log('warning: no reader saw a retired element (Reader Pipe bucket 1 is 0): a weak run');
  t.true(s.ok);
});

/** One row per detector: the bug that only it can see, and which count must be non-zero. */
const CONTROLS: readonly { inject: TortureInjection; what: string; detector: 'pipeViolations' | 'batchViolations' | 'poisoned' }[] = [
  { inject: 'early-callback', what: 'a callback run before its grace period is caught by Reader Pipe', detector: 'pipeViolations' },
  { inject: 'offline-holding-ref', what: 'a reader offline while it holds a reference is caught by Reader Batch', detector: 'batchViolations' },
  { inject: 'free-without-gp', what: 'an element freed at unpublish is caught by the poison check', detector: 'poisoned' },
];

for (const c of CONTROLS) {
  test.serial(`rcu torture control (${c.inject}): ${c.what}, and by nothing else`, async (t) => {
    // The same harness and readers; the injection happens at the 32nd publish, within the first
    // milliseconds, and the rest of the run shows that nothing else fires: half a second suffices.
    const s = await runTorture(c.inject, Math.min(stressSeconds(), 0.5), readers);
    console.log(s.text);
    t.true(s.injected, 'the writer and the injection reader both applied the fault');
    t.false(s.ok, 'the broken variant must report FAILURE');
    const counts = { pipeViolations: s.pipeViolations, batchViolations: s.batchViolations, poisoned: s.poisoned };
    t.true(counts[c.detector] > 0, `${c.detector} must fire`);
    for (const [k, n] of Object.entries(counts)) if (k !== c.detector) t.is(n, 0, `${k} must not fire`);
    t.is(s.torn, 0, 'no torn read');
    t.is(s.lostCallbacks, 0, 'every callback still runs');
  });
}
