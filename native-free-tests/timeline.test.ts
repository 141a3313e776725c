/**
 * The run timeline (src/emulate/timeline.ts): bounded sampling by decimation that loses no work,
 * rates per sample, the dip summary per phase (with a flat control that must show no dip), the
 * CSV, and one short real run whose report carries a timeline and whose --timeline-csv has one
 * row per sample (with a bad path refused before the run: exit 2, one line).
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTimeline, DIP_THRESHOLD, phaseDips, TIMELINE_CSV_COLUMNS, timelineCsv, timelineRows, TimelineRecorder } from '../src/emulate/timeline.js';
import type { TimelinePoint } from '../src/emulate/timeline.js';
import { point } from './_timeline_point.js';
import { assertReportValid } from './_report_schema.js';

test('the recorder stays under its cap by decimation, keeps the newest point, and loses no work', (t) => {
  const rec = new TimelineRecorder(100);
  const n = 20_000;
  for (let i = 0; i < n; i++) rec.offer(point(i * 10, 0, i * 1000));
  t.true(rec.points.length < 100, `${rec.points.length} points`);
  t.true(rec.stride >= 128, `stride ${rec.stride}`);
  // Rates over the kept gaps integrate to the whole run's work (cumulative counters).
  const rows = timelineRows(rec.points);
  let work = 0;
  for (let i = 1; i < rows.length; i++) work += (rows[i]!.accessesPerSecond * (rows[i]!.tMs - rows[i - 1]!.tMs)) / 1000;
  const first = rec.points[0]!;
  const last = rec.points[rec.points.length - 1]!;
  t.is(Math.round(work), last.accesses - first.accesses);
  // Evenly thinned: every gap is a whole number of sampling periods, and 100 k accesses/s throughout.
  for (const r of rows.slice(1)) t.is(Math.round(r.accessesPerSecond), 100_000);
  // A forced point (a phase edge) is kept even off the stride.
  const before = rec.points.length;
  rec.offer(point(n * 10 + 1, 1, n * 1000), true);
  t.is(rec.points.length, before + 1);
  t.throws(() => new TimelineRecorder(2), { instanceOf: RangeError });
});

/** 100 samples 10 ms apart: phase 0 steady at 1M/s, phase 1 dips to 0.4M/s for 5 samples, phase 2 parked (0). */
function dipped(depth: number): TimelinePoint[] {
  const pts: TimelinePoint[] = [];
  let acc = 0;
  for (let i = 0; i <= 100; i++) {
    const phase = i <= 40 ? 0 : i <= 80 ? 1 : 2;
    const rate = phase === 2 ? 0 : phase === 1 && i >= 50 && i < 55 ? 1e6 * (1 - depth) : 1e6;
    if (i > 0) acc += rate * 0.01;
    pts.push(point(i * 10, phase, acc, phase === 1 && i >= 50 && i < 55 ? { lockWaiters: 2, lockWaitingMs: (i - 49) * 10 } : {}));
  }
  return pts;
}

test('the dip of a phase: depth against the steady-before level, time below it, lock waiters; a flat control shows none', (t) => {
  const names = ['steady before', 'iteration 1 clear', 'iteration 1 get'];
  const rows = timelineRows(dipped(0.6));
  const dips = phaseDips(rows, names);
  // The parked phase (throughput 0 by construction) is left out.
  t.deepEqual(
    dips.map((d) => d.name),
    ['steady before', 'iteration 1 clear'],
  );
  const clear = dips[1]!;
  t.is(Math.round(clear.baselinePerSecond), 1e6);
  t.is(clear.baselineFrom, 'steady before (mean)');
  t.is(Math.round(clear.depthPct), 60);
  t.is(Math.round(clear.belowMs), 50);
  t.is(Math.round(clear.longestBelowMs), 50);
  t.is(clear.maxLockWaiters, 2);
  t.is(Math.round(clear.maxLockWaitingMs), 50);
  // Control: the same run without the dip.
  const flat = phaseDips(timelineRows(dipped(0)), names)[1]!;
  t.is(Math.round(flat.depthPct), 0);
  t.is(flat.belowMs, 0);
  // A dip shallower than the threshold has a depth but no length.
  const shallow = phaseDips(timelineRows(dipped(DIP_THRESHOLD / 2)), names)[1]!;
  t.true(shallow.depthPct > 0 && shallow.belowMs === 0);
  // Without a steady-before window the baseline is the median of the running samples.
  const noBefore = phaseDips(rows, ['warm', 'iteration 1 clear', 'x'])[1]!;
  t.regex(noBefore.baselineFrom, /median/);
});

test('--timeline-csv rows: a header and one row per sample, the phase by name', (t) => {
  const names = ['steady before', 'iteration 1 clear', 'iteration 1 get'];
  const tl = buildTimeline({ points: dipped(0.5), events: [], stride: 1 }, names);
  const lines = timelineCsv(tl, names).trimEnd().split('\n');
  t.is(lines[0], TIMELINE_CSV_COLUMNS.join(','));
  t.is(lines.length, 1 + 101);
  t.regex(lines[55]!, /^540,iteration 1 clear,500000(\.000)?,/);
});

// ---- one real run --------------------------------------------------------------------------

const MAIN = fileURLToPath(new URL('../src/emulate/main.js', import.meta.url));

test('a run reports its timeline in the JSON and --timeline-csv; a bad path exits 2 before the run', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'timeline-test-'));
  try {
    const bad = spawnSync(process.execPath, [MAIN, '-q', '-b', '8M', '--timeline-csv', join(dir, 'no/such/dir/t.csv')], { encoding: 'utf8' });
    t.is(bad.status, 2);
    t.is(bad.stderr.trim().split('\n').length, 1);
    t.regex(bad.stderr, /--timeline-csv/);
    t.is(bad.stdout, '', 'nothing ran');

    const csv = join(dir, 't.csv');
    const json = join(dir, 'r.json');
    const r = spawnSync(process.execPath, [MAIN, '-q', '-v', '2', '-b', '64M', '--steady', '--steady-seconds', '0.2', '--timeline-csv', csv, '--json', json], {
      encoding: 'utf8',
    });
    t.is(r.status, 0, r.stderr);
    t.true(existsSync(csv));
    assertReportValid(JSON.parse(readFileSync(json, 'utf8')));
    const report = JSON.parse(readFileSync(json, 'utf8')) as {
      phases: { name: string }[];
      timeline: { rows: unknown[]; events: { edge: string; name: string }[]; dips: { name: string; depthPct: number }[] };
    };
    const tl = report.timeline;
    t.true(tl.rows.length > 5, `${tl.rows.length} samples`);
    t.is(readFileSync(csv, 'utf8').trimEnd().split('\n').length, tl.rows.length + 1);
    // Every phase has a begin and an end edge.
    for (const p of report.phases) {
      t.true(
        tl.events.some((e) => e.name === p.name && e.edge === 'begin'),
        p.name,
      );
      t.true(
        tl.events.some((e) => e.name === p.name && e.edge === 'end'),
        p.name,
      );
    }
    t.true(tl.dips.some((d) => d.name === 'steady before'));
    t.regex(r.stdout, /== Timeline: vCPU throughput dips by phase ==/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
