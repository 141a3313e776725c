/**
 * The host-events actor (workers/host_events.worker.ts): its profiles and their tie to
 * --pressure, its place in the run plan, and end to end: MMU-notifier invalidations and aging
 * racing vCPU faults with the invariant checker on (no stale translation, no lost dirty page, no
 * freed table read) at both retry points (before 6.8: under the lock; 6.8+: before it), the
 * detector's control (faults that ignore the notifier), its lock holds in the report, and a clean
 * stop on Ctrl-C.
 */
import test from 'ava';
import { HOST_EVENT_PROFILES, hostEventsActive, hostEventsForPressure, parseHostEvents } from '../src/emulate/host_events.js';
import { parseCommandLine, resolveOptions } from '../src/emulate/options.js';
import { planRun } from '../src/emulate/run_plan.js';
import { errorCode } from '../src/errors.js';
import { runCli, runWithJson } from './_emulate.js';
import type { Json } from './_emulate.js';

function resolve(argv: string[]) {
  const c = parseCommandLine(argv);
  if (c.kind !== 'run') throw new Error('help');
  return resolveOptions(c.raw);
}

test('profiles: names, keys, and the default tied to --pressure', (t) => {
  t.deepEqual(resolve([]).hostEvents, HOST_EVENT_PROFILES.none);
  t.is(resolve(['--pressure', 'moderate']).hostEvents.name, 'light');
  t.is(resolve(['--pressure', 'heavy,hostFree=0.04']).hostEvents.name, 'heavy');
  t.is(resolve(['--pressure', 'heavy', '--host-events', 'none']).hostEvents.name, 'none', 'an explicit profile wins');
  t.is(hostEventsForPressure('none'), 'none');
  const p = parseHostEvents('--host-events', 'heavy,invalidate=7,aging-lock=rcu');
  t.is(p.invalidatePerSec, 7);
  t.is(p.agePerSec, HOST_EVENT_PROFILES.heavy.agePerSec);
  t.is(p.agingLock, 'rcu');
  t.false(hostEventsActive(parseHostEvents('--host-events', 'invalidate=0,age=0')));
  for (const bad of ['sometimes', 'invalidate=-1', 'heavy,colour=red', 'retry=never', 'invalidate-pages=0']) {
    t.is(errorCode(t.throws(() => resolve(['--host-events', bad]))), 'ERR_INVALID_OPTION', bad);
  }
});

test('run plan: the host-events role comes after the splitter, only when its profile has events', (t) => {
  const base = { vcpus: 2, iterations: 2, steady: false, manualProtect: true, vcpusRunDuringDisable: false };
  const none = planRun({ ...base, hostEvents: HOST_EVENT_PROFILES.none });
  t.is(none.hostEvents, null);
  t.is(none.vmWorkers, 4);
  const light = planRun({ ...base, hostEvents: HOST_EVENT_PROFILES.light });
  t.is(light.hostEvents?.kind, 'host-events');
  t.is(light.hostEvents?.controlSlot, 3);
  t.is(light.hostEvents?.workerId, 4);
  t.is(light.vmWorkers, 5);
  t.is(light.roles.at(-1), light.hostEvents!);
});

const RACE = ['-v', '2', '-b', '16M', '--host-events', 'invalidate=1000,invalidate-us=200,age=300'];

function checkClean(t: import('ava').ExecutionContext, report: Json, what: string): void {
  t.true(report.invariants.ok, `${what}: ${JSON.stringify(report.invariants.violations)}`);
  t.is(report.invariants.poisonReads, 0, `${what}: no freed table read`);
  t.is(report.invariants.xlateErrors, 0, `${what}: no stale translation`);
  t.is(report.dirtyLog.lostDirty, 0, `${what}: no lost dirty page`);
  t.is(report.hostEvents.staleLeaves, 0, what);
  t.true(report.hostEvents.invalidations > 0, `${what}: invalidations ran`);
  t.true(report.hostEvents.agings > 0, `${what}: aging ran`);
  // Its holds: every invalidation takes the write lock twice, write-lock aging once more.
  const minHolds = 2 * report.hostEvents.invalidations + (report.kernel.behaviour.agingLock === 'write' ? report.hostEvents.agings : 0);
  t.is(report.hostEvents.lock.writeHoldNs.count, minHolds, `${what}: the actor's write holds`);
  t.true(report.mmuLock.writeHoldNs.count >= minHolds, `${what}: and they show in the run's mmu_lock figures`);
}

for (const kernel of ['6.5', '6.12', '6.15']) {
  test.serial(`races with vCPU faults, Linux ${kernel}: dirty passes keep every dirty page, the checker finds nothing`, async (t) => {
    const r = await runWithJson([...RACE, '-i', '4', '--kernel', kernel], { timeoutMs: 120_000 });
    t.is(r.code, 0, r.stderr);
    t.true(r.report.dirtyLog.ok, 'every written page is in the log');
    checkClean(t, r.report, kernel);
  });
}

for (const [kernel, where] of [
  ['6.5', 'under the lock'],
  ['6.12', 'before the lock'],
] as const) {
  test.serial(`steady vCPUs under invalidations, Linux ${kernel}: faults in the range retry ${where}; the checker finds nothing`, async (t) => {
    const r = await runWithJson([...RACE, '--steady', '--steady-seconds', '0.5', '--kernel', kernel], { timeoutMs: 120_000 });
    t.is(r.code, 0, r.stderr);
    checkClean(t, r.report, `steady ${kernel}`);
    t.true(r.report.hostEvents.notifierRetries > 0, 'some fault met an invalidation in progress');
  });
}

test.serial('control: faults that ignore the notifier leave stale translations, and the run fails', async (t) => {
  const r = await runWithJson([...RACE, '--steady', '--steady-seconds', '0.5'], { timeoutMs: 120_000, env: { EMULATE_FAULT_INJECT: 'notifier-ignored' } });
  t.is(r.code, 1, r.stderr);
  t.true(r.report.hostEvents.staleLeaves > 0, 'the detector fired');
  t.true(r.report.invariants.xlateErrors > 0);
});

test.serial('Ctrl-C with the host-events thread running: every worker stops, no hang', async (t) => {
  const r = await runCli(['-v', '2', '-b', '64M', '-i', '1000', '--host-events', 'heavy'], {
    timeoutMs: 30_000,
    onOutput: { waitFor: /^emulate: /m, onMatch: (child) => setTimeout(() => child.kill('SIGINT'), 500) },
  });
  t.is(r.signal, null, 'exited by itself');
  t.is(r.code, 130, r.stderr);
});
