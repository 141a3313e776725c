/**
 * `--trace FILE` (src/emulate/trace_events.ts, src/stats/trace_ring.ts): the Chrome Trace Event
 * file's structural rules, checked by one checker (checkTrace) on a fixed short run and on
 * deliberately malformed traces (the controls, which it must reject); the tracks and slice
 * counts that run must have, derived from its own report; and the trace ring's bound (a full
 * ring keeps the longest records, and what it keeps still nests).
 */
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TK, TRACE_KINDS, TraceRing } from '../src/stats/trace_ring.js';
import { traceEvents } from '../src/emulate/trace_events.js';
import type { Report } from '../src/emulate/report_model.js';
import { runCli } from './_emulate.js';
import type { Json } from './_emulate.js';
import { assertReportValid } from './_report_schema.js';
import { checkTrace, EPS_US } from './_trace_check.js';

const ok = (ts: number, dur: number, tid = 1, name = 's'): Json => ({ name, ph: 'X', ts, dur, pid: 1, tid });
const meta = (tid: number): Json => ({ name: 'thread_name', ph: 'M', ts: 0, pid: 1, tid, args: { name: `t${tid}` } });

test('controls: the checker rejects overlapping slices, an unnamed tid, time going back, unpaired B/E, a negative dur', (t) => {
  const good = { traceEvents: [meta(1), ok(0, 10), ok(1, 2), ok(3, 7), ok(20, 1)] };
  t.deepEqual(checkTrace(good), []);
  const bad: Record<string, Json[]> = {
    overlap: [meta(1), ok(0, 10), ok(5, 10)],
    unnamed: [meta(1), ok(0, 1), ok(0, 1, 2)],
    backwards: [meta(1), ok(10, 1), ok(5, 1)],
    unpairedE: [meta(1), { name: 'x', ph: 'E', ts: 1, pid: 1, tid: 1 }],
    unclosedB: [meta(1), { name: 'x', ph: 'B', ts: 1, pid: 1, tid: 1 }],
    negativeDur: [meta(1), ok(0, -1)],
    counterBack: [
      meta(1),
      { name: 'c', ph: 'C', ts: 5, pid: 1, tid: 1, args: { value: 1 } },
      { name: 'c', ph: 'C', ts: 4, pid: 1, tid: 1, args: { value: 1 } },
    ],
  };
  for (const [what, events] of Object.entries(bad)) t.true(checkTrace({ traceEvents: events }).length > 0, `${what} accepted`);
});

test('a full trace ring keeps its capacity, drops the shortest first, never drops ioctls, and what it keeps still nests', (t) => {
  const ring = new TraceRing(64);
  // 200 outer write holds of growing length, each holding one split half its length; an ioctl around all.
  for (let i = 0; i < 200; i++) {
    const start = i * 1000;
    const len = 1 + i; // ms
    ring.span(TK.split, start + 0.1, start + 0.1 + len / 2);
    ring.span(TK.writeHold, start, start + len);
  }
  ring.span(TK.ioctl, 0, 300_000, 3);
  const d = ring.data();
  t.true(d.count <= 64, `${d.count} records`);
  t.true(d.dropped > 0 && d.floorUs > 0);
  t.is(d.count + d.dropped, 401);
  const kinds = Array.from({ length: d.count }, (_, i) => d.records[i * 4]!);
  t.true(kinds.includes(TK.ioctl), 'the ioctl was dropped');
  // The longest hold (the last one) survives.
  const durs = Array.from({ length: d.count }, (_, i) => d.records[i * 4 + 2]! - d.records[i * 4 + 1]!);
  t.true(durs.some((x) => Math.abs(x - 200) < 1e-9));
  // Kept records as a trace: still well formed (the ring's records need no order, the writer sorts them).
  const report = { config: { vcpus: 1 }, phases: [], startedAt: '', timeline: { rows: [], events: [] } } as unknown as Report;
  const events = traceEvents({ t0HrMs: d.hrOffsetMs - 1, threads: [{ tid: 1, name: 'splitter', data: d }] }, report);
  t.deepEqual(checkTrace({ traceEvents: events }), []);
  t.throws(() => new TraceRing(3), { instanceOf: RangeError });
  t.is(TRACE_KINDS.length, Object.keys(TK).length);
});

test.serial('a fixed short run: a well-formed trace with the expected tracks and slice counts', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'emulate-trace-'));
  try {
    const traceFile = join(dir, 'r.trace.json');
    const jsonFile = join(dir, 'r.json');
    const r = await runCli(['-v', '2', '-b', '16M', '-i', '2', '--host-events', 'light', '--trace', traceFile, '--json', jsonFile, '--quiet'], {
      timeoutMs: 90_000,
    });
    t.is(r.code, 0, r.stderr);
    const report = JSON.parse(readFileSync(jsonFile, 'utf8')) as Json;
    assertReportValid(report);
    const trace = JSON.parse(readFileSync(traceFile, 'utf8')) as Json;
    t.deepEqual(checkTrace(trace), []);
    const events = trace.traceEvents as Json[];
    const names = new Map<number, string>(events.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => [e.tid as number, e.args.name as string]));
    t.deepEqual([...names.values()].sort(), ['host events', 'main', 'splitter', 'vCPU 0', 'vCPU 1']);
    const tidOf = (n: string): number => [...names].find(([, v]) => v === n)![0];
    const on = (thread: string, ph: string, name?: string): Json[] =>
      events.filter((e) => e.tid === tidOf(thread) && e.ph === ph && (name === undefined || e.name === name));

    // main: one slice per phase, in the report's order.
    t.deepEqual(
      on('main', 'X').map((e) => e.name),
      report.phases.map((p: Json) => p.name),
    );
    // splitter: one ioctl slice per op phase, plus the invariant check.
    const ioctls = on('splitter', 'X').filter((e) => e.cat === 'ioctl');
    const opPhases = report.phases.filter((p: Json) => ['enable', 'get', 'clear', 'disable'].includes(p.kind));
    t.is(ioctls.length, opPhases.length + 1);
    t.is(on('splitter', 'X', 'GET_DIRTY_LOG').length, 2);
    // One clock: each op's ioctl (the splitter's own clock) lies inside its phase (the main thread's).
    const phases = on('main', 'X');
    ioctls
      .filter((io) => io.name !== 'invariant check')
      .forEach((io, i) => {
        const p = phases.find((x) => x.name === opPhases[i].name)!;
        t.true(p.ts <= io.ts && io.ts + io.dur <= p.ts + p.dur + EPS_US, `${io.name} [${io.ts}, +${io.dur}] outside ${p.name} [${p.ts}, +${p.dur}]`);
      });
    t.is(on('splitter', 'X', 'CLEAR_DIRTY_LOG').length, 2);
    // Splits, drops, restarts and write holds: what the splitter's own counters say (nothing was dropped at this size).
    const splitterRing = trace.otherData.threads.find((x: Json) => x.name === 'splitter');
    t.is(splitterRing.dropped, 0);
    const sp = report.split.splitter;
    t.true(sp.hugePagesSplit > 0);
    t.is(on('splitter', 'X', 'split').length, sp.hugePagesSplit);
    t.is(on('splitter', 'X', 'lock drop').length, sp.lockDrops);
    t.is(on('splitter', 'i', 'walk restart').length, sp.restarts);
    t.is(on('splitter', 'X', 'mmu_lock write hold').length, report.split.splitterWriteHoldNs.count);
    // Every split happened inside a CLEAR (manual protect: split in CLEAR, under the write lock).
    for (const s of on('splitter', 'X', 'split'))
      t.true(ioctls.some((io) => io.name === 'CLEAR_DIRTY_LOG' && io.ts <= s.ts && s.ts + s.dur <= io.ts + io.dur + EPS_US));
    // The host-events thread: one slice per event it counted, its mmu_lock holds inside them.
    t.true(report.hostEvents.invalidations + report.hostEvents.agings > 0);
    t.is(on('host events', 'X', 'invalidate').length, report.hostEvents.invalidations);
    t.is(on('host events', 'X', 'age').length, report.hostEvents.agings);
    // Counters: one sample per timeline row on every series.
    const rows = report.timeline.rows.length;
    t.true(rows > 0);
    for (const c of ['vCPU accesses/s', 'faults/s', 'huge pages split', 'lock drops', 'walk restarts', 'mmu_lock waiters']) {
      t.is(events.filter((e) => e.ph === 'C' && e.name === c).length, rows, c);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.serial('--trace: a bad path is refused before the run (exit 2, one line), and --compare refuses it', async (t) => {
  const r = await runCli(['-v', '1', '-b', '4M', '--trace', '/nonexistent-dir/x.json', '--quiet'], { timeoutMs: 30_000 });
  t.is(r.code, 2);
  t.regex(r.stderr, /^emulate: --trace: .*\n$/);
  const c = await runCli(['--compare', '-v', '1', '-b', '4M', '--trace', join(tmpdir(), 'never.json')], { timeoutMs: 30_000 });
  t.is(c.code, 2);
  t.regex(c.stderr, /--trace/);
});
