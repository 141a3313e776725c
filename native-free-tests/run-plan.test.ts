// The run plan (src/emulate/run_plan.ts): actor numbering and the flow as data, without threads.
import test from 'ava';
import { MAIN_WORKER_ID, planRoles, planRun } from '../src/emulate/run_plan.js';
import type { PlanOptions, Step } from '../src/emulate/run_plan.js';

const BASE: PlanOptions = { vcpus: 3, iterations: 2, steady: false, manualProtect: true, vcpusRunDuringDisable: false };
const names = (steps: readonly Step[]): string[] => steps.map((s) => (s.type === 'free-run' ? '(free-run)' : s.name));

test('roles: vCPUs then the splitter, worker ids after the main thread, control slots from 0, all distinct', (t) => {
  const r = planRoles(3);
  t.deepEqual(
    r.roles.map((x) => [x.kind, x.name, x.workerId, x.controlSlot, x.vcpuId]),
    [
      ['vcpu', 'vCPU 0', 1, 0, 0],
      ['vcpu', 'vCPU 1', 2, 1, 1],
      ['vcpu', 'vCPU 2', 3, 2, 2],
      ['splitter', 'splitter', 4, 3, null],
    ],
  );
  t.is(r.splitter, r.roles[3]!);
  t.is(r.vmWorkers, 5, 'the main thread plus every actor');
  t.false(r.roles.some((x) => x.workerId === MAIN_WORKER_ID));
  t.throws(() => planRoles(0), { instanceOf: RangeError });
});

test('steps: the dirty_log_perf_test flow with manual-protect, without it (-g), with -e and in steady mode', (t) => {
  t.deepEqual(names(planRun(BASE).steps), [
    'populate',
    'enable',
    'iteration 1 dirty',
    'iteration 1 get',
    'iteration 1 clear',
    'iteration 2 dirty',
    'iteration 2 get',
    'iteration 2 clear',
    'disable',
  ]);
  t.deepEqual(names(planRun({ ...BASE, manualProtect: false, iterations: 1 }).steps), [
    'populate',
    'enable',
    'iteration 1 dirty',
    'iteration 1 get',
    'disable',
  ]);
  t.deepEqual(names(planRun({ ...BASE, manualProtect: false, iterations: 1, vcpusRunDuringDisable: true }).steps), [
    'populate',
    'enable',
    'iteration 1 dirty',
    'iteration 1 get',
    '(free-run)',
    'disable',
  ]);
  const steady = planRun({ ...BASE, steady: true, iterations: 1 });
  t.deepEqual(names(steady.steps), [
    'populate',
    'steady warm-up',
    'steady before',
    'enable',
    'iteration 1 dirty',
    'iteration 1 get',
    'iteration 1 clear',
    'steady after',
    'disable',
    'steady after disable',
  ]);
  t.is(steady.steps.find((s) => s.type === 'steady-dirty')?.type, 'steady-dirty', 'steady dirties by free-running vCPUs');
});
