/**
 * The engine: executes a run plan (run_plan.ts) on real threads and returns the Report.
 *
 * The main thread is the orchestrator and never blocks its event loop: it allocates the VM,
 * starts one long task per actor of the plan (each vCPU, the splitter) in a pool sized to run
 * them all at once, and then drives the plan's steps through the run-control block
 * (control.ts), waiting with Atomics.waitAsync. Every wait races the run's failure promise,
 * which settles when a task throws or its thread dies (TaskPool rejects at once and terminates
 * the rest), when the watchdog sees no progress (watchdog.ts), or when the caller's AbortSignal
 * fires (Ctrl-C). While it runs, the sinks' tick feed gets a RunSample every TICK_MS
 * (report_sink.ts).
 *
 * One Engine per run: it builds and tears down its own VM, control block and pool, so runs can
 * follow each other in one process (compare, sweeps).
 */
import v8 from 'node:v8';
import { attachVm, createVm } from '../vm.js';
import type { Vm, VmShared } from '../vm.js';
import { RcuDomain } from 'epoch-rcu';
import { EmulatorError, errorFromWorker } from '../errors.js';
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
  CTL_HOST_STOP,
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
  WSTATE_EXITED,
  waitAsync,
} from './control.js';
import type { HostEventsResult, HostEventsTask, SplitterResult, SplitterTask, VcpuResult, VcpuTask, WorkerResult, WorkerTask } from './messages.js';
import { configureMmuNotifier } from '../mmu/mmu_notifier.js';
import { kernelBehaviour } from '../kernel_version.js';
import { hostEventLocks, NX_RECOVERY_PERIOD_MS } from './host_events.js';
import { buildReport } from './report_build.js';
import type { PhaseRecord } from './report_build.js';
import type { PhaseKind, Report } from './report_model.js';
import { TICK_MS } from './report_sink.js';
import type { ReportSink, RunSample } from './report_sink.js';
import { MAIN_WORKER_ID } from './run_plan.js';
import type { RoleKind, RunPlan, SplitterOp, Step } from './run_plan.js';
import { runProgress, stuckError, Watchdog } from './watchdog.js';
import { buildTimeline, TIMELINE_SAMPLE_MS, TimelineRecorder } from './timeline.js';
import { traceRingCapacity } from './trace_events.js';
import type { RunTrace } from './trace_events.js';

/**
 * JIT: compile hot code on the thread that runs it. With dozens of busy vCPU threads on 2 cores,
 * V8's background optimizing compiler threads starve, and every vCPU keeps running unoptimized
 * code until its compile job gets CPU: measured with 96 vCPUs and 96 GiB, the first dirty pass
 * took 61 s at a 728 ns median fault, the next ones 5 s at 182 ns. A JIT warm-up artefact, not
 * something KVM has, so it must not show in the figures. V8 flags are process-wide and read when
 * an isolate starts, so this must run before the worker threads are created.
 */
v8.setFlagsFromString('--no-concurrent-recompilation');

/**
 * Touch every 4 KiB page of a fresh SharedArrayBuffer once, before any worker starts and before
 * the run's clock. The OS backs a SharedArrayBuffer lazily, so without this the first split of
 * each page-table page took a host page fault (a zeroed page) inside the timed split walk: an
 * artefact, since the tables the kernel allocates are RAM already. bench/e2e-phases measured the
 * -g enable split at 75-123 ms per GiB on fresh memory and 22-66 ms pre-touched (noisy host).
 * Each word is written back with its own value (createVm has already initialised the pool's
 * metadata, and no worker runs yet): no value changes, the page becomes resident. Cost: the pool's pages are
 * resident from the start (they are sized for the guest's page tables, which the run fills).
 */
function prefaultSharedMemory(sab: SharedArrayBuffer): void {
  const words = new Int32Array(sab);
  for (let i = 0; i < words.length; i += 1024) words[i] = words[i]!;
}

/** Steady mode's warm-up: sample the vCPUs' access rate this often, and stop after this long at most. */
const WARMUP_SAMPLE_MS = 500;
const WARMUP_MAX_MS = 10_000;

/** The worker file each role kind runs (a new actor kind adds its file here). */
const WORKER_FILE: Readonly<Record<RoleKind, URL>> = {
  vcpu: new URL('../../workers/vcpu.worker.js', import.meta.url),
  splitter: new URL('../../workers/splitter.worker.js', import.meta.url),
  'host-events': new URL('../../workers/host_events.worker.js', import.meta.url),
};

/** The splitter command of each plan op. */
const OP_OF: Readonly<Record<SplitterOp, number>> = { enable: OP_ENABLE, get: OP_GET, clear: OP_CLEAR, disable: OP_DISABLE };

export interface EngineHooks {
  /** Outputs: their `tick` gets live samples, their `end` is called when the run stops. */
  readonly sinks?: readonly ReportSink[];
  /** Abort the run (Ctrl-C): workers stop and the promise rejects with ERR_ABORTED. */
  readonly signal?: AbortSignal;
}

export class Engine {
  readonly #plan: RunPlan;
  readonly #config: RunConfig;
  readonly #hooks: EngineHooks;
  readonly #t0 = nowNs();
  readonly #startedAt = new Date().toISOString();
  readonly #phases: PhaseRecord[] = [];
  #shared: VmShared | undefined;
  #vm: Vm | undefined;
  #ctl: Control | undefined;
  #pool: TaskPool | undefined;
  #watchdog: Watchdog | undefined;
  #ticker: NodeJS.Timeout | undefined;
  #failure: EmulatorError | undefined;
  #rejectFailed: ((err: EmulatorError) => void) | undefined;
  readonly #failed: Promise<never>;
  #cmdSeq = 0;
  #phaseStart = 0n;
  /** The phase the watchdog names (the last one begun). */
  #currentPhase = 'starting';
  #tickLabel = 'starting';
  #currentIteration: number | null = null;
  /** The vCPUs' progress words when the current phase began (for the progress detail). */
  #phaseProgressBase = 0;
  #onAbortSignal: (() => void) | undefined;
  /** The run's timeline (timeline.ts): sampled every TIMELINE_SAMPLE_MS while the run goes on. */
  readonly #timeline = new TimelineRecorder();
  #sampler: NodeJS.Timeout | undefined;
  /** When mmu_lock's queue last became non-empty (ms since the run started), or -1 while empty. */
  #lockQueuedSince = -1;

  constructor(plan: RunPlan, config: RunConfig, hooks: EngineHooks = {}) {
    this.#plan = plan;
    this.#config = config;
    this.#hooks = hooks;
    this.#failed = new Promise<never>((_resolve, reject) => {
      this.#rejectFailed = reject;
    });
    this.#failed.catch(() => {}); // observed through races; never an unhandled rejection
  }

  /** Execute the plan, then tear everything down (also on failure). */
  async run(): Promise<Report> {
    try {
      return await this.#execute();
    } finally {
      await this.#teardown();
    }
  }

  get #c(): Control {
    return this.#ctl!;
  }

  /** Record the first failure, stop every worker, and settle #failed. Later failures are ignored. */
  #fail(err: EmulatorError): void {
    if (this.#failure !== undefined) return;
    this.#failure = err;
    const ctl = this.#ctl;
    if (ctl !== undefined) {
      Atomics.store(ctl.i32, CTL_ABORT, 1);
      for (const idx of [CTL_VCPU_GO, CTL_CMD_SEQ, CTL_HOST_STOP]) Atomics.notify(ctl.i32, idx);
    }
    this.#watchdog?.stop();
    this.#stopTicks();
    this.#rejectFailed?.(err);
    // Terminate the threads (even one parked in Atomics.wait or spinning on a lock).
    void this.#pool?.destroy();
  }

  #tasks(): WorkerTask[] {
    const cfg = this.#config;
    const o = cfg.options;
    const control = { sab: this.#c.i32.buffer as SharedArrayBuffer, vcpus: this.#c.vcpus, slots: this.#c.slots };
    const split = { cacheCapacity: o.cacheCapacity, chunkPages: o.chunkPages, reschedMs: o.reschedMs, yieldOnContention: o.yieldOnContention };
    const jitWarmup = o.jitWarmup ? { manualProtect: o.manualProtect, eagerSplit: o.eagerSplit, splitAlloc: o.splitAlloc, split } : null;
    // --trace: a sink asked for the threads' records; each thread gets its share of the budget.
    const tracing = this.#tracing();
    return this.#plan.roles.map((role): WorkerTask => {
      const trace = tracing ? { trace: traceRingCapacity(role.kind === 'splitter' ? 'splitter' : 'other', this.#plan.roles.length) } : {};
      if (role.kind === 'vcpu') {
        const i = role.vcpuId!;
        const t: VcpuTask = {
          type: 'vcpu-task',
          vcpuId: i,
          workerId: role.workerId,
          controlSlot: role.controlSlot,
          vm: this.#shared!,
          control,
          region: cfg.regions[i]!,
          workload: o.workload,
          writePercent: o.writePercent,
          randomAccess: o.randomAccess,
          seed: o.seed,
          faultInject: cfg.faultInject,
          jitWarmup,
          ...trace,
        };
        return t;
      }
      if (role.kind === 'host-events') {
        const he = o.hostEvents;
        const h: HostEventsTask = {
          type: 'host-events-task',
          workerId: role.workerId,
          controlSlot: role.controlSlot,
          vm: this.#shared!,
          control,
          seed: o.seed,
          invalidatePerSec: he.invalidatePerSec,
          invalidatePages: he.invalidatePages,
          invalidateUs: he.invalidateUs,
          agePerSec: he.agePerSec,
          agePages: he.agePages,
          agingLock: hostEventLocks(he, kernelBehaviour(o.kernel)).agingLock === 'rcu' ? 'rcu' : 'write',
          nxRecoveryPeriodMs: NX_RECOVERY_PERIOD_MS,
          nxRecoveryLock: kernelBehaviour(o.kernel).nxRecoveryLock === 'read' ? 'read' : 'write',
          nxRecoverySkipsDirtyLogged: kernelBehaviour(o.kernel).nxRecoverySkipsDirtyLogged,
          firstGfn: cfg.regions[0]!.firstGfn,
          totalPages: cfg.totalPages,
          backingPages: cfg.backingPageBytes / 4096,
          ...trace,
        };
        return h;
      }
      const t: SplitterTask = {
        type: 'splitter-task',
        workerId: role.workerId,
        controlSlot: role.controlSlot,
        vm: this.#shared!,
        control,
        manualProtect: o.manualProtect,
        eagerSplit: o.eagerSplit,
        splitAlloc: o.splitAlloc,
        split,
        faultInject: cfg.faultInject,
        jitWarmup,
        clearChunkPages: o.clearChunkPages,
        clearDelayMs: o.clearDelayMs,
        clearLock: o.clearLock,
        ...trace,
      };
      return t;
    });
  }

  async #execute(): Promise<Report> {
    const cfg = this.#config;
    const o = cfg.options;
    const plan = this.#plan;
    const signal = this.#hooks.signal;
    if (signal?.aborted === true) throw new EmulatorError('ERR_ABORTED', 'interrupted');
    this.#onAbortSignal = () => this.#fail(new EmulatorError('ERR_ABORTED', 'interrupted'));
    signal?.addEventListener('abort', this.#onAbortSignal, { once: true });

    this.#shared = createVm(cfg.vm);
    prefaultSharedMemory(this.#shared.spt);
    prefaultSharedMemory(this.#shared.poolMeta);
    this.#vm = attachVm(this.#shared, MAIN_WORKER_ID);
    // The main thread never enters a read-side section; offline it never delays a grace period.
    this.#vm.rcu.offline();
    // Where vCPU faults check MMU-notifier invalidations (the release's point; the broken control in tests).
    configureMmuNotifier(this.#vm, cfg.faultInject === 'notifier-ignored' ? 'never' : hostEventLocks(o.hostEvents, kernelBehaviour(o.kernel)).retry);
    this.#ctl = new Control(createControl(plan.vcpus.length, plan.roles.length));

    const tasks = this.#tasks();
    this.#pool = new TaskPool(WORKER_FILE.vcpu, tasks.length);
    const filenames = plan.roles.map((r) => (r.kind === 'vcpu' ? undefined : WORKER_FILE[r.kind]));
    const all = this.#pool.runAll<WorkerResult>(tasks, { filenames, labels: plan.roles.map((r) => r.name) });
    all.catch((err: unknown) => this.#fail(errorFromWorker(err)));

    const ctl = this.#c;
    const vm = this.#vm;
    this.#watchdog = new Watchdog({
      timeoutMs: o.watchdogSeconds * 1000,
      probe: () => runProgress(ctl, vm),
      onStuck: (idleMs) => this.#fail(stuckError(this.#currentPhase, idleMs, ctl, vm, plan.roles)),
    });
    this.#watchdog.start();
    this.#startTicks();
    this.#startSampler();
    this.#setState('starting worker threads');

    await this.#waitUntil(CTL_READY, (v) => v >= plan.roles.length);
    const baseline = this.#snapshot();

    for (const step of plan.steps) await this.#step(step);

    // The host-events thread ends its event in hand and exits before anything is checked.
    const hostEvents = plan.hostEvents;
    if (hostEvents !== null) {
      this.#setState('stopping host events');
      Atomics.store(this.#c.i32, CTL_HOST_STOP, 1);
      Atomics.notify(this.#c.i32, CTL_HOST_STOP); // pairs with the thread's Atomics.wait between events
      await this.#waitUntil(this.#c.slot(hostEvents.controlSlot, SLOT_STATE), (v) => v === WSTATE_EXITED);
    }

    // Stop the vCPUs, check the invariants with everything quiescent, stop the splitter.
    this.#setState('stopping vCPUs');
    const i32 = this.#c.i32;
    Atomics.store(i32, CTL_VCPU_MODE, MODE_STOP);
    Atomics.add(i32, CTL_VCPU_GO, 1);
    Atomics.notify(i32, CTL_VCPU_GO); // pairs with the vCPUs' park
    await this.#waitUntil(CTL_VCPU_EXITED, (v) => v >= plan.vcpus.length);
    this.#setState('checking invariants');
    await this.#sendCommand(OP_CHECK, this.#phases.length);
    await this.#sendCommand(OP_STOP, this.#phases.length);
    const results = await Promise.race([all, this.#failed]);
    this.#watchdog.stop();
    this.#stopTicks();
    this.#stopSampler();
    if (this.#tracing()) this.#handOverTrace(results);
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
      hostEvents: results.find((r): r is HostEventsResult => r.type === 'host-events-result') ?? null,
      finalStats,
      rcu,
      pool: this.#vm.poolAccounting() as unknown as Record<string, number>,
      pages: this.#vm.pageStats(),
      poolTables: this.#shared.poolTables,
      timeline: buildTimeline(
        this.#timeline,
        this.#phases.map((p) => p.name),
      ),
    });
  }

  #tracing(): boolean {
    return (this.#hooks.sinks ?? []).some((s) => s.trace !== undefined);
  }

  /** Every thread's trace records, on the engine's clock (trace_events.ts), to the sinks that asked. */
  #handOverTrace(results: readonly WorkerResult[]): void {
    // Results come in role order (TaskPool.runAll keeps the task order).
    const run: RunTrace = {
      t0HrMs: Number(this.#t0) / 1e6,
      threads: this.#plan.roles.map((role, i) => ({ tid: role.workerId, name: role.name, data: results[i]?.trace })),
    };
    for (const s of this.#hooks.sinks ?? []) s.trace?.(run);
  }

  /** One step of the plan. */
  async #step(step: Step): Promise<void> {
    switch (step.type) {
      case 'pass':
        return this.#pass(step.name, step.kind, step.iteration, step.pass === 'populate' ? PASS_POPULATE : PASS_DIRTY);
      case 'op':
        return this.#command(OP_OF[step.op], step.name, step.kind, step.iteration);
      case 'warm-up':
        this.#startFree(this.#beginPhase(step.name, 'steady', null));
        return this.#warmUp();
      case 'window':
        this.#setPhaseId(this.#beginPhase(step.name, 'steady', null));
        return this.#window();
      case 'steady-dirty':
        return this.#steadyIteration(step.name, step.iteration);
      case 'free-run':
        // -e: the vCPUs keep dirtying memory while dirty logging is disabled. They must actually be
        // running when the next op starts (a parked thread can take a while to wake on 2 cores).
        this.#startFree(this.#phases.length);
        return this.#waitVcpusRunning();
    }
  }

  async #teardown(): Promise<void> {
    this.#watchdog?.stop();
    this.#stopTicks();
    this.#stopSampler();
    for (const s of this.#hooks.sinks ?? []) s.end?.();
    if (this.#onAbortSignal !== undefined) this.#hooks.signal?.removeEventListener('abort', this.#onAbortSignal);
    if (this.#failure === undefined && this.#ctl !== undefined) Atomics.store(this.#ctl.i32, CTL_ABORT, 1);
    await this.#pool?.destroy();
  }

  // --- phases -------------------------------------------------------------------------------

  #beginPhase(name: string, kind: PhaseKind, iteration: number | null): number {
    this.#currentPhase = name;
    this.#watchdog?.kick();
    this.#setState(name, iteration);
    this.#phaseStart = nowNs();
    this.#timeline.event({ tMs: this.#elapsedMs(), phase: this.#phases.length, name, edge: 'begin' });
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
    // A forced sample at the edge: the phase's last rate ends exactly at its end.
    this.#sample(true);
    this.#timeline.event({ tMs: this.#elapsedMs(), phase: id, name: p.name, edge: 'end' });
    this.#watchdog?.kick();
  }

  #snapshot(): Pick<PhaseRecord, 'stats' | 'splitterStats' | 'pages'> {
    const vm = this.#vm!;
    return { stats: vm.sumStats(), splitterStats: vm.workerStats(this.#plan.splitter.workerId), pages: vm.pageStats() };
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
    // Step 5: vcpus + 1 = every vCPU done AND the end time stored (control.ts "A vCPU pass").
    await this.#waitUntil(CTL_VCPU_DONE, (v) => v > c.vcpus);
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
    const slots = this.#plan.vcpus.map((r) => r.controlSlot);
    const start = slots.map((s) => Atomics.load(c.i32, c.slot(s, SLOT_PROGRESS)));
    for (let v = 0; v < slots.length; ) {
      if (Atomics.load(c.i32, c.slot(slots[v]!, SLOT_PROGRESS)) !== start[v]) v++;
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
  async #steadyIteration(name: string, k: number): Promise<void> {
    const id = this.#beginPhase(name, 'dirty', k);
    this.#setPhaseId(id);
    const c = this.#c;
    const t0 = nowNs();
    const slots = this.#plan.vcpus.map((r) => r.controlSlot);
    const start = slots.map((s) => Atomics.load(c.i32, c.slot(s, SLOT_PASSES_DONE)));
    for (;;) {
      let behind = false;
      for (let v = 0; v < slots.length && !behind; v++) behind = Atomics.load(c.i32, c.slot(slots[v]!, SLOT_PASSES_DONE)) <= start[v]!;
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

  // --- the timeline sampler (timeline.ts) ---------------------------------------------------

  #elapsedMs(): number {
    return Number(nowNs() - this.#t0) / 1e6;
  }

  #startSampler(): void {
    this.#sampler = setInterval(() => this.#sample(false), TIMELINE_SAMPLE_MS);
    this.#sampler.unref();
  }

  #stopSampler(): void {
    if (this.#sampler !== undefined) clearInterval(this.#sampler);
    this.#sampler = undefined;
  }

  /** One timeline point: racy reads of the counters and of the lock word (timeline.ts says why that is enough). */
  #sample(force: boolean): void {
    const vm = this.#vm;
    if (vm === undefined) return;
    const c = vm.sumStats();
    const lock = vm.mmuLock.rwlock.describe();
    const t = this.#elapsedMs();
    const waiters = Math.max(0, lock.queued);
    if (waiters === 0) this.#lockQueuedSince = -1;
    else if (this.#lockQueuedSince < 0) this.#lockQueuedSince = t;
    this.#timeline.offer(
      {
        tMs: t,
        phase: this.#phases.length - 1,
        accesses: c['accesses'] ?? 0,
        fastFaults: c['fastFaults'] ?? 0,
        slowFaults: c['slowFaults'] ?? 0,
        firstTouchFaults: c['firstTouchFaults'] ?? 0,
        hugePagesSplit: c['hugePagesSplit'] ?? 0,
        lockDrops: c['lockDrops'] ?? 0,
        restarts: c['restarts'] ?? 0,
        lockWaiters: waiters,
        lockWaitingMs: this.#lockQueuedSince < 0 ? 0 : t - this.#lockQueuedSince,
        writerHeld: lock.writerLocked,
      },
      force,
    );
  }

  // --- the tick feed ------------------------------------------------------------------------

  /** The phase (or state between phases) the tick samples report. */
  #setState(label: string, iteration: number | null = null): void {
    this.#tickLabel = label;
    this.#currentIteration = iteration;
    this.#phaseProgressBase = this.#ctl === undefined ? 0 : this.#vcpuProgress();
    this.#emitTick();
  }

  #startTicks(): void {
    if (!(this.#hooks.sinks ?? []).some((s) => s.tick !== undefined)) return;
    this.#ticker = setInterval(() => this.#emitTick(), TICK_MS);
    this.#ticker.unref();
  }

  #stopTicks(): void {
    if (this.#ticker !== undefined) clearInterval(this.#ticker);
    this.#ticker = undefined;
  }

  #emitTick(): void {
    if (this.#ticker === undefined) return;
    const counters = this.#vm?.sumStats() ?? {};
    const sample: RunSample = {
      elapsedMs: Number(nowNs() - this.#t0) / 1e6,
      phase: this.#tickLabel,
      iteration: this.#currentIteration,
      iterations: this.#plan.iterations,
      detail: this.#detail(),
      accesses: counters['accesses'] ?? 0,
      hugePagesSplit: counters['hugePagesSplit'] ?? 0,
      counters,
    };
    for (const s of this.#hooks.sinks ?? []) s.tick?.(sample);
  }

  /** What is going on inside the phase: the splitter op's time so far, or the vCPU pass's share done. */
  #detail(): string {
    const c = this.#ctl;
    if (c === undefined) return '';
    const cmdStart = Atomics.load(c.i64, CTL64_CMD_START_NS);
    if (Atomics.load(c.i32, CTL_CMD_DONE) < Atomics.load(c.i32, CTL_CMD_SEQ) && cmdStart > 0n) {
      return `${OP_NAMES[Atomics.load(c.i32, CTL_CMD_OP)] ?? 'op'} running ${(Number(nowNs() - cmdStart) / 1e9).toFixed(1)}s`;
    }
    // Work units of one pass over every region: each vCPU bumps its progress word per batch.
    const passUnits = c.vcpus * (Math.floor(this.#config.pagesPerVcpu / VCPU_BATCH) + 1);
    if (Atomics.load(c.i32, CTL_VCPU_MODE) === MODE_PASS && Atomics.load(c.i32, CTL_VCPU_DONE) < c.vcpus && passUnits > 0) {
      const pct = Math.min(100, ((this.#vcpuProgress() - this.#phaseProgressBase) / passUnits) * 100);
      return `${pct.toFixed(0)}% of the pages, ${Math.min(c.vcpus, Atomics.load(c.i32, CTL_VCPU_DONE))}/${c.vcpus} vCPUs done`;
    }
    return '';
  }

  #vcpuProgress(): number {
    const c = this.#c;
    let sum = 0;
    for (const r of this.#plan.vcpus) sum += Atomics.load(c.i32, c.slot(r.controlSlot, SLOT_PROGRESS));
    return sum;
  }
}
