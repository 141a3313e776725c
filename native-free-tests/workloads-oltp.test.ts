/**
 * The guest workloads' access streams (src/workloads/), without an MMU: the oltp preset's mix
 * (fetches from the shared code area, sequential log appends, Zipf buffer-pool accesses with the
 * write share), its determinism from the seed, the hot-set share its solved Zipf skew produces
 * (with a uniform control that the same check must reject), the exec guest's passes, memstress
 * knobs against -w, and the spec parser's one-line refusals.
 */
import test from 'ava';
import { createOltpForTest, OLTP_PRESET, solveZipfSkew } from '../src/workloads/oltp.js';
import { createWorkload, parseWorkloadSpec, WorkloadSpecError } from '../src/workloads/registry.js';
import { createWorkloadAccess } from '../src/workloads/workload.js';
import type { Workload, WorkloadParams } from '../src/workloads/workload.js';
import { parseCommandLine, resolveOptions } from '../src/emulate/options.js';

const REGION_PAGES = 262_144; // 1 GiB
const FIRST = 2 ** 20;

function params(vcpuId: number, seed = 1, knobs: Record<string, number> = {}): WorkloadParams {
  return { vcpuId, region: { firstGfn: FIRST + vcpuId * REGION_PAGES, npages: REGION_PAGES }, writePercent: 100, randomAccess: false, seed, knobs };
}

function trace(w: Workload, n: number): { gfn: number[]; kind: string[] } {
  const out = createWorkloadAccess();
  w.beginPass('dirty');
  const gfn: number[] = [];
  const kind: string[] = [];
  for (let i = 0; i < n; i++) {
    w.next(i, out);
    gfn.push(out.gfn);
    kind.push(out.kind);
  }
  return { gfn, kind };
}

test('oltp preset: the mix of fetches, log appends and buffer-pool accesses, each in its area', (t) => {
  const w = createOltpForTest(params(1));
  const a = w.areas();
  t.deepEqual(a.code, [FIRST, OLTP_PRESET.code * 512], 'code: the first 256 2M regions of vCPU 0');
  t.is(a.log[1], 1024, 'log: 4 MiB');
  t.deepEqual(a.pool, [FIRST + REGION_PAGES, REGION_PAGES - 1024], 'vCPU 1 pool: its region minus the log');
  const n = 200_000;
  const { gfn, kind } = trace(w, n);
  let exec = 0;
  let log = 0;
  let pool = 0;
  let poolWrites = 0;
  let lastLog = -1;
  let sequential = true;
  for (let i = 0; i < n; i++) {
    const g = gfn[i]!;
    if (kind[i] === 'exec') {
      exec++;
      t.true(g >= a.code[0] && g < a.code[0] + a.code[1]);
    } else if (g >= a.log[0] && g < a.log[0] + a.log[1]) {
      log++;
      if (lastLog >= 0 && g !== lastLog + 1 && !(g === a.log[0] && lastLog === a.log[0] + a.log[1] - 1)) sequential = false;
      lastLog = g;
    } else {
      pool++;
      if (g < a.pool[0] || g >= a.pool[0] + a.pool[1]) t.fail(`gfn ${g} outside the pool`);
      if (kind[i] === 'write') poolWrites++;
    }
  }
  t.true(Math.abs(exec / n - 0.02) < 0.003, `exec share ${exec / n}`);
  t.true(Math.abs(log / n - 0.05) < 0.005, `log share ${log / n}`);
  t.true(sequential, 'log appends are sequential');
  t.true(Math.abs(poolWrites / pool - 0.3) < 0.01, `pool write share ${poolWrites / pool}`);
});

/** Share of pool accesses that land in the hottest `hot` fraction of buckets. */
function hotShare(w: ReturnType<typeof createOltpForTest>, n: number, hot: number): number {
  const a = w.areas();
  const span = a.pool[1] / a.buckets;
  const counts = new Float64Array(a.buckets);
  const { gfn, kind } = trace(w, n);
  let pool = 0;
  for (let i = 0; i < n; i++) {
    const g = gfn[i]!;
    if (kind[i] === 'exec' || g < a.pool[0] || g >= a.pool[0] + a.pool[1]) continue;
    counts[Math.min(a.buckets - 1, Math.floor((g - a.pool[0]) / span))]! += 1;
    pool++;
  }
  const sorted = [...counts].sort((x, y) => y - x);
  let top = 0;
  for (let i = 0; i < Math.round(hot * a.buckets); i++) top += sorted[i]!;
  return top / pool;
}

test('oltp: the hottest fifth of the pool takes about 80 % of its accesses; the uniform control does not pass', (t) => {
  const w = createOltpForTest(params(2));
  t.true(w.skew > 0.5 && w.skew < 2, `solved skew ${w.skew}`);
  const share = hotShare(w, 400_000, 0.2);
  t.true(Math.abs(share - 0.8) < 0.04, `hot share ${share}`);
  // Control: share=20 makes the law (about) uniform; the same check must reject it.
  const u = createOltpForTest(params(2, 1, { share: 20 }));
  t.true(u.skew < 0.01, `uniform skew ${u.skew}`);
  const ushare = hotShare(u, 400_000, 0.2);
  t.false(Math.abs(ushare - 0.8) < 0.04, `uniform hot share ${ushare}`);
});

test('solveZipfSkew: the top ranks take the asked share', (t) => {
  const s = solveZipfSkew(1000, 200, 0.8);
  let top = 0;
  let all = 0;
  for (let k = 1; k <= 1000; k++) {
    const p = k ** -s;
    all += p;
    if (k <= 200) top += p;
  }
  t.true(Math.abs(top / all - 0.8) < 1e-6);
  t.is(solveZipfSkew(1000, 200, 0.1), 0);
});

test('oltp is deterministic from the seed, and the seed matters', (t) => {
  const a = trace(createWorkload('oltp', params(3, 7)), 5000);
  const b = trace(createWorkload('oltp', params(3, 7)), 5000);
  const c = trace(createWorkload('oltp', params(3, 8)), 5000);
  t.deepEqual(a, b);
  t.notDeepEqual(a.gfn, c.gfn);
});

test('exec: populate writes every page once, then each pass executes from every page in order', (t) => {
  const p = { ...params(0), region: { firstGfn: FIRST, npages: 1024 } };
  const w = createWorkload('exec', p);
  const out = createWorkloadAccess();
  t.is(w.beginPass('populate'), 1024);
  for (let i = 0; i < 1024; i++) {
    w.next(i, out);
    t.is(out.gfn, FIRST + i);
    t.is(out.kind, 'write');
  }
  t.is(w.beginPass('dirty'), 1024);
  for (let i = 0; i < 1024; i++) {
    w.next(i, out);
    if (out.gfn !== FIRST + i || out.kind !== 'exec') t.fail(`access ${i}: ${out.kind} ${out.gfn}`);
  }
  t.pass();
});

test('memstress knobs override -w and -a; without them the flags apply', (t) => {
  const base = { ...params(0), region: { firstGfn: FIRST, npages: 4096 }, writePercent: 100, knobs: {} };
  const writes = (w: Workload): number => trace(w, 4096).kind.filter((k) => k === 'write').length;
  t.is(writes(createWorkload('memstress', base)), 4096, '-w 100');
  const w30 = writes(createWorkload('memstress:write=30', base));
  t.true(Math.abs(w30 / 4096 - 0.3) < 0.05, `write=30 gives ${w30}`);
  t.is(writes(createWorkload('memstress:write=0', { ...base, writePercent: 100 })), 0);
  const ordered = trace(createWorkload('memstress', base), 16).gfn;
  t.deepEqual(
    ordered,
    Array.from({ length: 16 }, (_, i) => FIRST + i),
  );
  t.notDeepEqual(trace(createWorkload('memstress:random=1', base), 16).gfn, ordered);
});

test('specs: unknown names, keys, values and combinations are refused with one line; --workload exits 2 on them', (t) => {
  t.deepEqual(parseWorkloadSpec('oltp:hot=0.3,write=40'), { name: 'oltp', knobs: { hot: 0.3, write: 40 } });
  t.deepEqual(parseWorkloadSpec('exec'), { name: 'exec', knobs: {} });
  for (const bad of ['nosuch', 'oltp:nosuch=1', 'oltp:write', 'oltp:write=101', 'oltp:write=2.5', 'oltp:exec=60,log=60', 'oltp:hot=0.2,hot=0.3', 'exec:x=1']) {
    const err = t.throws(() => parseWorkloadSpec(bad), { instanceOf: WorkloadSpecError }, bad);
    t.false(err!.message.includes('\n'), bad);
    const cl = parseCommandLine(['--workload', bad]);
    if (cl.kind !== 'run') throw new Error('help');
    const e2 = t.throws(() => resolveOptions(cl.raw), undefined, bad);
    t.is((e2 as { code?: string }).code, 'ERR_INVALID_OPTION', bad);
    t.regex(e2!.message, /--workload/);
  }
  const cl = parseCommandLine(['--workload', 'oltp:exec=5']);
  if (cl.kind !== 'run') throw new Error('help');
  t.is(resolveOptions(cl.raw).workload, 'oltp:exec=5');
});
