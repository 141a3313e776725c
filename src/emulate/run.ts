/**
 * runEmulation(config) -> Report: one dirty_log_perf_test run on real threads.
 *
 * The main thread is the orchestrator and never blocks its event loop: it allocates the VM,
 * starts one long task per vCPU plus the splitter in a piscina pool sized to run them all at
 * once, and then drives the phases through the control block (control.ts), waiting with
 * Atomics.waitAsync. Every wait races the run's failure promise, which settles when a task
 * throws or its thread dies (TaskPool rejects at once and terminates the rest), when the
 * watchdog sees no progress, or when the caller's AbortSignal fires (Ctrl-C).
 *
 * Flow (reference §4.2), with the phase names the report uses:
 *   populate                       vCPUs write every page once (faults map at the backing size)
 *   enable                         splitter: enable dirty logging (eager split under the read
 *                                  lock unless manual-protect + initially-set defers it to CLEAR)
 *   iteration k dirty / get / clear  for k = 1..N: vCPUs dirty their regions, then the splitter
 *                                  runs GET_DIRTY_LOG and, with manual-protect, CLEAR_DIRTY_LOG
 *   disable                        splitter: disable dirty logging (-e: vCPUs keep running)
 * Steady mode adds "steady before", "steady after" and "steady after disable" windows and keeps
 * the vCPUs running through every phase.
 *
 * Callable repeatedly in one process (compare/sweeps): each call builds and tears down its own
 * VM, control block and pool.
 */
import v8 from 'node:v8';
import { attachVm, createVm } from '../vm.js';
import type { Vm, VmShared } from '../vm.js';
import { RcuDomain } from '../rcu/index.js';
import { EmulatorError } from '../errors.js';
import type { ErrorCode } from '../errors.js';
import { TaskPool } from '../thread_pool.js';
import type { RunConfig } from './config.js';
import {
  Control,
  createControl,
  CTL64_CMD_DIRTY,
  CTL64_CMD_NS,
  CTL64_CMD_START_NS,
  CTL64_PASS_END_NS,
  CTL64_PASS_START_NS,
  CTL_ABORT,
  CTL_CMD_DONE,
  CTL_CMD_OP,
  CTL_CMD_PHASE,
  CTL_CMD_SEQ,
  CTL_PASS_KIND,
  CTL_PHASE_ID,
  CTL_READY,
  CTL_VCPU_DONE,
  CTL_VCPU_EXITED,
  CTL_VCPU_GO,
  CTL_VCPU_MODE,
  MODE_FREE,
  MODE_PASS,
  MODE_STOP,
  nowNs,
  OP_CHECK,
  OP_CLEAR,
  OP_DISABLE,
  OP_ENABLE,
  OP_GET,
  OP_NAMES,
  OP_STOP,
  PASS_DIRTY,
  PASS_POPULATE,
  SLOT_PASSES_DONE,
  SLOT_PROGRESS,
  SLOT_STATE,
  VCPU_BATCH,
  WSTATE_NAMES,
  waitAsync,
} from './control.js';
import { codeFromWorkerMessage } from './messages.js';
import type { SplitterResult, SplitterTask, VcpuResult, VcpuTask, WorkerResult, WorkerTask } from './messages.js';
import type { Progress } from './progress.js';
import { buildReport } from './report_build.js';
import type { PhaseRecord } from './report_build.js';
import type { PhaseKind, Report } from './report_model.js';
import { Watchdog } from './watchdog.js';

/**
 * JIT: compile hot code on the thread that runs it. With dozens of busy vCPU threads on 2 cores,
 * V8's background optimizing compiler threads starve, and every vCPU keeps running unoptimized
 * code until its compile job gets CPU: measured with 96 vCPUs and 96 GiB, the first dirty pass
 * took 61 s at a 728 ns median fault, the next ones 5 s at 182 ns. A JIT warm-up artefact, not
 * something KVM has, so it must not show in the figures. V8 flags are process-wide and read when
 * an isolate starts, so this must run before the worker threads are created.
 */
v8.setFlagsFromString('--no-concurrent-recompilation');

/** Steady mode's warm-up: sample the vCPUs' access rate this often, and stop after this long at most. */
const WARMUP_SAMPLE_MS = 500;
const WARMUP_MAX_MS = 10_000;

const VCPU_WORKER = new URL('../../workers/vcpu.worker.js', import.meta.url);
const SPLITTER_WORKER = new URL('../../workers/splitter.worker.js', import.meta.url);

export interface RunHooks {
  /** Live progress line (main.ts passes one when stderr is a TTY). */
  readonly progress?: Progress;
  /** Abort the run (Ctrl-C): workers stop and the promise rejects with ERR_ABORTED. */
  readonly signal?: AbortSignal;
}

export async function runEmulation(config: RunConfig, hooks: RunHooks = {}): Promise<Report> {
  const run = new EmulationRun(config, hooks);
  try {
    return await run.execute();
  } finally {
    await run.teardown();
  }
}

/** A failed run's error: the cause, with a stable code. */
function toRunError(err: unknown): EmulatorError {
  if (err instanceof EmulatorError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  const code = codeFromWorkerMessage(msg);
  const stack = err instanceof Error ? err.stack : undefined;
  if (code !== undefined) {
    // A worker that saw ABORT only reflects someone else's failure; keep the code of real causes.
    const c = (code === 'ERR_ABORTED' ? 'ERR_WORKER' : code) as ErrorCode;
    return new EmulatorError(c, msg.slice(code.length + 2), { stack });
  }
  return new EmulatorError('ERR_WORKER', `a worker thread died: ${msg}`, { stack });
}

class EmulationRun {
  readonly #config: RunConfig;
  readonly #hooks: RunHooks;
  readonly #t0 = nowNs();
  readonly #startedAt = new Date().toISOString();
  readonly #phases: PhaseRecord[] = [];
  #shared: VmShared | undefined;
  #vm: Vm | undefined;
  #ctl: Control | undefined;
  #pool: TaskPool | undefined;
  #watchdog: Watchdog | undefined;
  #failure: EmulatorError | undefined;
  #rejectFailed: ((err: EmulatorError) => void) | undefined;
  readonly #failed: Promise<never>;
  #cmdSeq = 0;
  #phaseStart = 0n;
  #currentPhase = 'starting';
  #onAbortSignal: (() => void) | undefined;

  constructor(config: RunConfig, hooks: RunHooks) {
    this.#config = config;
    this.#hooks = hooks;
    this.#failed = new Promise<never>((_resolve, reject) => {
      this.#rejectFailed = reject;
    });
    this.#failed.catch(() => {}); // observed through races; never an unhandled rejection
  }

  get #c(): Control {
    return this.#ctl!;
  }

  /** Record the first failure, stop every worker, and settle #failed. Later failures are ignored. */
  fail(err: EmulatorError): void {
    if (this.#failure !== undefined) return;
    this.#failure = err;
    const ctl = this.#ctl;
    if (ctl !== undefined) {
      Atomics.store(ctl.i32, CTL_ABORT, 1);
      for (const idx of [CTL_VCPU_GO, CTL_CMD_SEQ]) Atomics.notify(ctl.i32, idx);
    }
    this.#watchdog?.stop();
    this.#rejectFailed?.(err);
    // Terminate the threads (even one parked in Atomics.wait or spinning on a lock).
    void this.#pool?.destroy();
  }

  async execute(): Promise<Report> {
    const cfg = this.#config;
    const o = cfg.options;
    const signal = this.#hooks.signal;
    if (signal?.aborted === true) throw new EmulatorError('ERR_ABORTED', 'interrupted');
    this.#onAbortSignal = () => this.fail(new EmulatorError('ERR_ABORTED', 'interrupted'));
    signal?.addEventListener('abort', this.#onAbortSignal, { once: true });

    this.#shared = createVm(cfg.vm);
    this.#vm = attachVm(this.#shared, 0);
    // The main thread never enters a read-side section; offline it never delays a grace period.
    this.#vm.rcu.offline();
    this.#ctl = new Control(createControl(o.vcpus));
    const splitterWorkerId = o.vcpus + 1;

    const tasks: WorkerTask[] = cfg.regions.map(
      (region, i): VcpuTask => ({
        type: 'vcpu-task',
        vcpuId: i,
        workerId: 1 + i,
        vm: this.#shared!,
        control: { sab: this.#c.i32.buffer as SharedArrayBuffer, vcpus: o.vcpus },
        region,
        workload: o.workload,
        writePercent: o.writePercent,
        randomAccess: o.randomAccess,
        seed: o.seed,
        faultInject: cfg.faultInject,
      }),
    );
    const splitterTask: SplitterTask = {
      type: 'splitter-task',
      workerId: splitterWorkerId,
      vm: this.#shared,
      control: { sab: this.#c.i32.buffer as SharedArrayBuffer, vcpus: o.vcpus },
      manualProtect: o.manualProtect,
      eagerSplit: o.eagerSplit,
      splitAlloc: o.splitAlloc,
      split: { cacheCapacity: o.cacheCapacity, chunkPages: o.chunkPages, reschedMs: o.reschedMs, yieldOnContention: o.yieldOnContention },
      faultInject: cfg.faultInject,
    };
    tasks.push(splitterTask);
    this.#pool = new TaskPool(VCPU_WORKER, tasks.length);
    const filenames = tasks.map((t) => (t.type === 'splitter-task' ? SPLITTER_WORKER : undefined));
    const all = this.#pool.runAll<WorkerResult>(tasks, { filenames });
    all.catch((err: unknown) => this.fail(toRunError(err)));

    this.#watchdog = new Watchdog({
      timeoutMs: o.watchdogSeconds * 1000,
      probe: () => this.#progressProbe(),
      onStuck: (idleMs) => this.fail(this.#stuckError(idleMs)),
    });
    this.#watchdog.start();
    this.#setProgress('starting worker threads');

    await this.#waitUntil(CTL_READY, (v) => v >= o.vcpus + 1);
    const baseline = this.#snapshot();

    await this.#pass('populate', 'populate', null, PASS_POPULATE);
    if (o.steady) {
      this.#startFree(this.#beginPhase('steady warm-up', 'steady', null));
      await this.#warmUp();
      this.#setPhaseId(this.#beginPhase('steady before', 'steady', null));
      await this.#window();
    }
    await this.#command(OP_ENABLE, 'enable', 'enable', null);
    for (let k = 1; k <= o.iterations; k++) {
      if (o.steady) await this.#steadyIteration(k);
      else await this.#pass(`iteration ${k} dirty`, 'dirty', k, PASS_DIRTY);
      await this.#command(OP_GET, `iteration ${k} get`, 'get', k);
      if (o.manualProtect) await this.#command(OP_CLEAR, `iteration ${k} clear`, 'clear', k);
    }
    if (o.steady) {
      this.#setPhaseId(this.#beginPhase('steady after', 'steady', null));
      await this.#window();
    } else if (o.vcpusRunDuringDisable) {
      // -e: the vCPUs keep dirtying memory while dirty logging is disabled. They must actually be
      // running when the op starts (a parked thread can take a while to wake on 2 cores).
      this.#startFree(this.#phases.length);
      await this.#waitVcpusRunning();
    }
    await this.#command(OP_DISABLE, 'disable', 'disable', null);
    if (o.steady) {
      this.#setPhaseId(this.#beginPhase('steady after disable', 'steady', null));
      await this.#window();
    }

    // Stop the vCPUs, check the invariants with everything quiescent, stop the splitter.
    this.#setProgress('stopping vCPUs');
    const i32 = this.#c.i32;
    Atomics.store(i32, CTL_VCPU_MODE, MODE_STOP);
    Atomics.add(i32, CTL_VCPU_GO, 1);
    Atomics.notify(i32, CTL_VCPU_GO); // pairs with the vCPUs' park
    await this.#waitUntil(CTL_VCPU_EXITED, (v) => v >= o.vcpus);
    this.#setProgress('checking invariants');
    await this.#sendCommand(OP_CHECK, this.#phases.length);
    await this.#sendCommand(OP_STOP, this.#phases.length);
    const results = await Promise.race([all, this.#failed]);
    this.#watchdog.stop();
    const finalStats = this.#vm.sumStats();
    const rcu = new RcuDomain(new Int32Array(this.#shared.control), this.#shared.layout.rcuBase, cfg.vm.workers).stats();
    return buildReport({
      config: cfg,
      startedAt: this.#startedAt,
      wallSeconds: Number(nowNs() - this.#t0) / 1e9,
      phases: this.#phases,
      baseline,
      vcpuResults: results.filter((r): r is VcpuResult => r.type === 'vcpu-result'),
      splitter: results.find((r): r is SplitterResult => r.type === 'splitter-result')!,
      finalStats,
      rcu,
      pool: this.#vm.poolAccounting() as unknown as Record<string, number>,
      pages: this.#vm.pageStats(),
      poolTables: this.#shared.poolTables,
    });
  }

  async teardown(): Promise<void> {
    this.#watchdog?.stop();
    this.#hooks.progress?.stop();
    if (this.#onAbortSignal !== undefined) this.#hooks.signal?.removeEventListener('abort', this.#onAbortSignal);
    if (this.#failure === undefined && this.#ctl !== undefined) Atomics.store(this.#ctl.i32, CTL_ABORT, 1);
    await this.#pool?.destroy();
  }

  // --- phases -------------------------------------------------------------------------------

  #beginPhase(name: string, kind: PhaseKind, iteration: number | null): number {
    this.#currentPhase = name;
    this.#watchdog?.kick();
    this.#setProgress(name);
    this.#phaseStart = nowNs();
    this.#phases.push({
      name,
      kind,
      iteration,
      seconds: 0,
      wallSeconds: 0,
      stats: {},
      splitterStats: {},
      pages: { pages4k: 0, pages2m: 0, pages1g: 0 },
      dirtyPages: null,
    });
    return this.#phases.length - 1;
  }

  #endPhase(id: number, seconds: number, dirtyPages: number | null = null): void {
    const p = this.#phases[id]!;
    const snap = this.#snapshot();
    // wallSeconds: as the main thread saw it, from setting PHASE_ID to now: the window in which
    // free-running vCPUs file their samples under this phase (their throughput's denominator).
    this.#phases[id] = { ...p, seconds, wallSeconds: Number(nowNs() - this.#phaseStart) / 1e9, dirtyPages, ...snap };
    this.#watchdog?.kick();
  }

  #snapshot(): Pick<PhaseRecord, 'stats' | 'splitterStats' | 'pages'> {
    const vm = this.#vm!;
    return { stats: vm.sumStats(), splitterStats: vm.workerStats(this.#config.options.vcpus + 1), pages: vm.pageStats() };
  }

  #setPhaseId(id: number): void {
    Atomics.store(this.#c.i32, CTL_PHASE_ID, id);
  }

  /** One synchronous vCPU pass (control.ts "A vCPU pass"); the phase time is the selftest's. */
  async #pass(name: string, kind: PhaseKind, iteration: number | null, passKind: number): Promise<void> {
    const id = this.#beginPhase(name, kind, iteration);
    const c = this.#c;
    const i32 = c.i32;
    Atomics.store(i32, CTL_PHASE_ID, id);
    Atomics.store(i32, CTL_PASS_KIND, passKind);
    Atomics.store(i32, CTL_VCPU_MODE, MODE_PASS);
    Atomics.store(i32, CTL_VCPU_DONE, 0);
    Atomics.store(c.i64, CTL64_PASS_START_NS, nowNs());
    Atomics.add(i32, CTL_VCPU_GO, 1);
    Atomics.notify(i32, CTL_VCPU_GO); // step 2: pairs with the vCPUs' Atomics.wait in their park
    await this.#waitUntil(CTL_VCPU_DONE, (v) => v >= c.vcpus);
    const ns = Atomics.load(c.i64, CTL64_PASS_END_NS) - Atomics.load(c.i64, CTL64_PASS_START_NS);
    this.#endPhase(id, Number(ns) / 1e9);
  }

  /** Free-running vCPUs from now on, their samples filed under phase `id`. */
  #startFree(id: number): void {
    const i32 = this.#c.i32;
    Atomics.store(i32, CTL_PHASE_ID, id);
    Atomics.store(i32, CTL_PASS_KIND, PASS_DIRTY);
    Atomics.store(i32, CTL_VCPU_MODE, MODE_FREE);
    Atomics.add(i32, CTL_VCPU_GO, 1);
    Atomics.notify(i32, CTL_VCPU_GO);
  }

  /** Until every vCPU has bumped its progress word since now: they are all running. */
  async #waitVcpusRunning(): Promise<void> {
    const c = this.#c;
    const start = Array.from({ length: c.vcpus }, (_, v) => Atomics.load(c.i32, c.slot(v, SLOT_PROGRESS)));
    for (let v = 0; v < c.vcpus; ) {
      if (Atomics.load(c.i32, c.slot(v, SLOT_PROGRESS)) !== start[v]) v++;
      else await this.#sleep(1);
    }
  }

  /**
   * Steady mode's untimed warm-up (the phase just begun): the vCPUs free-run until their aggregate
   * access rate stops climbing, i.e. two consecutive WARMUP_SAMPLE_MS samples within 5 % of each
   * other, for at most WARMUP_MAX_MS. V8 optimises each vCPU's loop on that vCPU's own thread
   * (concurrent recompilation is off, see above), so with 32 threads on 2 cores warm-up takes
   * seconds; a "before" window started right after populate would measure it, and every later
   * window would look faster than "before" (measured: 13 M/s in a 1 s warm-up, 18 M/s after).
   */
  async #warmUp(): Promise<void> {
    const id = this.#phases.length - 1;
    const t0 = nowNs();
    const accesses = (): number => this.#vm!.sumStats()['accesses'] ?? 0;
    const deadline = performance.now() + WARMUP_MAX_MS;
    let last = accesses();
    let prevRate = 0;
    while (performance.now() < deadline) {
      await this.#sleep(WARMUP_SAMPLE_MS);
      const now = accesses();
      const rate = now - last;
      last = now;
      if (prevRate > 0 && Math.abs(rate - prevRate) <= 0.05 * prevRate) break;
      prevRate = rate;
    }
    this.#endPhase(id, Number(nowNs() - t0) / 1e9);
  }

  /** A steady window (the phase just begun): the vCPUs run for --steady-seconds. */
  async #window(): Promise<void> {
    const id = this.#phases.length - 1;
    const t0 = nowNs();
    await this.#sleep(this.#config.options.steadySeconds * 1000);
    this.#endPhase(id, Number(nowNs() - t0) / 1e9);
  }

  /** Steady mode's dirty phase: until every vCPU has finished one more pass of its region. */
  async #steadyIteration(k: number): Promise<void> {
    const id = this.#beginPhase(`iteration ${k} dirty`, 'dirty', k);
    this.#setPhaseId(id);
    const c = this.#c;
    const t0 = nowNs();
    const start = Array.from({ length: c.vcpus }, (_, v) => Atomics.load(c.i32, c.slot(v, SLOT_PASSES_DONE)));
    for (;;) {
      let behind = false;
      for (let v = 0; v < c.vcpus && !behind; v++) behind = Atomics.load(c.i32, c.slot(v, SLOT_PASSES_DONE)) <= start[v]!;
      if (!behind) break;
      await this.#sleep(2);
    }
    this.#endPhase(id, Number(nowNs() - t0) / 1e9);
  }

  /** One splitter op as its own phase. */
  async #command(op: number, name: string, kind: PhaseKind, iteration: number | null): Promise<void> {
    const id = this.#beginPhase(name, kind, iteration);
    // Free-running vCPUs (steady, -e) file their samples under the op's phase.
    this.#setPhaseId(id);
    await this.#sendCommand(op, id);
    const c = this.#c;
    const ns = Number(Atomics.load(c.i64, CTL64_CMD_NS));
    const dirty = op === OP_GET ? Number(Atomics.load(c.i64, CTL64_CMD_DIRTY)) : null;
    this.#endPhase(id, ns / 1e9, dirty);
  }

  /** control.ts "A splitter command": post it and wait for CMD_DONE to reach its number. */
  async #sendCommand(op: number, phaseId: number): Promise<void> {
    const i32 = this.#c.i32;
    const seq = ++this.#cmdSeq;
    Atomics.store(i32, CTL_CMD_OP, op);
    Atomics.store(i32, CTL_CMD_PHASE, phaseId);
    Atomics.store(i32, CTL_CMD_SEQ, seq);
    Atomics.notify(i32, CTL_CMD_SEQ); // pairs with the splitter's Atomics.wait
    await this.#waitUntil(CTL_CMD_DONE, (v) => v >= seq);
  }

  // --- waiting without blocking -----------------------------------------------------------

  /** Resolve when cond(i32[idx]) holds; reject as soon as the run fails. */
  async #waitUntil(idx: number, cond: (v: number) => boolean): Promise<void> {
    const i32 = this.#c.i32;
    for (;;) {
      if (this.#failure !== undefined) throw this.#failure;
      const v = Atomics.load(i32, idx);
      if (cond(v)) return;
      // A bounded wait: a lost notify costs at most 250 ms, never a hang.
      await Promise.race([waitAsync(i32, idx, v, 250), this.#failed]);
    }
  }

  async #sleep(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([new Promise<void>((r) => (timer = setTimeout(r, ms))), this.#failed]);
    } finally {
      clearTimeout(timer);
    }
  }

  // --- progress and the watchdog ------------------------------------------------------------

  #setProgress(label: string): void {
    const p = this.#hooks.progress;
    if (p === undefined) return;
    const c = this.#ctl;
    const it = /^iteration (\d+) (\w+)$/.exec(label);
    const shown = it === null ? label : `iteration ${it[1]} of ${this.#config.options.iterations}: ${it[2]}`;
    // Work units of one pass over every region: each vCPU bumps its progress word per batch.
    const passUnits = c === undefined ? 0 : c.vcpus * (Math.floor(this.#config.pagesPerVcpu / VCPU_BATCH) + 1);
    const base = c === undefined ? 0 : this.#vcpuProgress();
    p.setPhase(shown, () => {
      if (c === undefined) return '';
      const cmdStart = Atomics.load(c.i64, CTL64_CMD_START_NS);
      if (Atomics.load(c.i32, CTL_CMD_DONE) < Atomics.load(c.i32, CTL_CMD_SEQ) && cmdStart > 0n) {
        return `${OP_NAMES[Atomics.load(c.i32, CTL_CMD_OP)] ?? 'op'} running ${(Number(nowNs() - cmdStart) / 1e9).toFixed(1)}s`;
      }
      if (Atomics.load(c.i32, CTL_VCPU_MODE) === MODE_PASS && Atomics.load(c.i32, CTL_VCPU_DONE) < c.vcpus && passUnits > 0) {
        const pct = Math.min(100, ((this.#vcpuProgress() - base) / passUnits) * 100);
        return `${pct.toFixed(0)}% of the pages, ${Atomics.load(c.i32, CTL_VCPU_DONE)}/${c.vcpus} vCPUs done`;
      }
      return '';
    });
  }

  #vcpuProgress(): number {
    const c = this.#c;
    let sum = 0;
    for (let v = 0; v < c.vcpus; v++) sum += Atomics.load(c.i32, c.slot(v, SLOT_PROGRESS));
    return sum;
  }


  /** Anything that moves when workers make progress: control counters and MMU work counters. */
  #progressProbe(): number {
    const c = this.#ctl;
    const vm = this.#vm;
    if (c === undefined || vm === undefined) return 0;
    const s = vm.sumStats();
    let work = c.totalProgress();
    for (const k of ['spteReads', 'accesses', 'hugePagesSplit', 'tablesAllocated', 'allocBlocking', 'allocNowait', 'lockDrops', 'yields']) work += s[k] ?? 0;
    return work;
  }

  #stuckError(idleMs: number): EmulatorError {
    const c = this.#c;
    const vm = this.#vm!;
    const workers = Array.from({ length: c.vcpus + 1 }, (_, w) => ({
      worker: w === c.vcpus ? 'splitter' : `vCPU ${w}`,
      state: WSTATE_NAMES[Atomics.load(c.i32, c.slot(w, SLOT_STATE))] ?? 'unknown',
      passes: Atomics.load(c.i32, c.slot(w, SLOT_PASSES_DONE)),
    }));
    const busy = workers.filter((w) => w.state === 'running').map((w) => w.worker);
    const lockBase = vm.layout.mmuLockBase;
    const lockWords = Array.from(vm.control.subarray(lockBase, lockBase + 8), (x) => `0x${(x >>> 0).toString(16)}`);
    const pendingOp = Atomics.load(c.i32, CTL_CMD_DONE) < Atomics.load(c.i32, CTL_CMD_SEQ) ? OP_NAMES[Atomics.load(c.i32, CTL_CMD_OP)] : 'none';
    const dump = { phase: this.#currentPhase, idleSeconds: idleMs / 1000, pendingOp, mmuLockWords: lockWords, busy, workers };
    return new EmulatorError(
      'ERR_STUCK',
      `watchdog: phase "${this.#currentPhase}" made no progress for ${(idleMs / 1000).toFixed(1)} s ` +
        `(splitter op: ${pendingOp}; running: ${busy.length === 0 ? 'none' : busy.join(', ')}; mmu_lock words [${lockWords.join(' ')}])`,
      dump,
    );
  }
}
