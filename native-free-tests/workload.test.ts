/**
 * Guest workloads as a registered strategy (src/workloads/): the registry, memstress's access
 * stream (the same pages, kinds and random draws as dirty_log_perf_test's guest, pass after pass),
 * the hot-loop contract (one reusable out object), and --workload on the command line.
 */
import test from 'ava';
import { createWorkload, DEFAULT_WORKLOAD, workloadDefinition, workloadNames } from '../src/workloads/registry.js';
import { createWorkloadAccess } from '../src/workloads/workload.js';
import type { WorkloadParams } from '../src/workloads/workload.js';
import { Rng } from '../src/mmu/rng.js';
import { parseCommandLine, resolveOptions } from '../src/emulate/options.js';
import { errorCode } from '../src/errors.js';

const PARAMS: WorkloadParams = { vcpuId: 3, region: { firstGfn: 0x100000, npages: 1000 }, writePercent: 30, randomAccess: true, seed: 7 };

test('registry: memstress is registered and the default', (t) => {
  t.true(workloadNames().includes('memstress'));
  t.is(DEFAULT_WORKLOAD, 'memstress');
  t.truthy(workloadDefinition('memstress')?.summary);
  t.is(workloadDefinition('nope'), undefined);
  t.throws(() => createWorkload('nope', PARAMS), { message: /unknown workload "nope"; expected one of memstress/ });
});

test('memstress: populate writes every page once in order', (t) => {
  const w = createWorkload('memstress', PARAMS);
  const out = createWorkloadAccess();
  const n = w.beginPass('populate');
  t.is(n, 1000);
  for (let i = 0; i < n; i++) {
    w.next(i, out);
    if (out.gfn !== 0x100000 + i || out.kind !== 'write') return t.fail(`access ${i}: ${out.gfn} ${out.kind}`);
  }
  t.pass();
});

test('memstress: a dirty pass draws the page, then the write choice, from seed + vCPU id (the selftest guest)', (t) => {
  const w = createWorkload('memstress', PARAMS);
  const out = createWorkloadAccess();
  // The reference: memstress_guest_code's loop with the same generator.
  const rng = new Rng((PARAMS.seed + PARAMS.vcpuId) | 0);
  let writes = 0;
  for (let pass = 0; pass < 2; pass++) {
    const n = w.beginPass('dirty');
    for (let i = 0; i < n; i++) {
      w.next(i, out);
      const p = rng.nextU32() % 1000;
      const write = rng.nextU32() % 100 < 30;
      if (out.gfn !== 0x100000 + p || out.kind !== (write ? 'write' : 'read')) return t.fail(`pass ${pass} access ${i}`);
      if (write) writes++;
    }
  }
  t.true(writes > 400 && writes < 800, `about 30 % writes (${writes} of 2000)`);
});

test('memstress: sequential with -w 0 reads every page and draws nothing', (t) => {
  const w = createWorkload('memstress', { ...PARAMS, writePercent: 0, randomAccess: false });
  const out = createWorkloadAccess();
  const n = w.beginPass('dirty');
  for (let i = 0; i < n; i++) {
    w.next(i, out);
    if (out.gfn !== 0x100000 + i || out.kind !== 'read') return t.fail(`access ${i}`);
  }
  t.pass();
});

test('--workload: default memstress, a registered name accepted, an unknown one refused naming the option', (t) => {
  const parse = (...argv: string[]) => {
    const c = parseCommandLine(argv);
    if (c.kind !== 'run') throw new Error('expected a run');
    return resolveOptions(c.raw);
  };
  t.is(parse().workload, 'memstress');
  t.is(parse('--workload', 'memstress').workload, 'memstress');
  t.is(parse('--workload', 'oltp').workload, 'oltp');
  const err = t.throws(() => parse('--workload', 'nosuch'));
  t.is(errorCode(err), 'ERR_INVALID_OPTION');
  t.regex(err!.message, /--workload.*unknown workload "nosuch"; expected one of memstress, oltp, exec/);
  t.false(err!.message.includes('\n'));
});
