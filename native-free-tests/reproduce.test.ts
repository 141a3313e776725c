/**
 * `npm run reproduce`: the verdict rule as a pure function (ordering + factor of 2, ordering
 * only, print only, calibration rows never counted, the run-to-run spread rule of the 6.11 row,
 * options the emulator lacks -> not runnable), the row table and run plan, and one end-to-end
 * smoke run of `--quick`. Every rule has a case that must come out "missed", so a verdict that
 * always passes fails here.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { judgeColumn, rankSlowestFirst, withinFactor } from '../src/emulate/reproduce_verdict.js';
import type { VariantOutcome, VerdictRow } from '../src/emulate/reproduce_verdict.js';
import { apr24GroupVerdict, COLUMNS, planRuns, REPRODUCE_ROWS, rowRepeats, selectRows } from '../src/emulate/reproduce_rows.js';
import { reproduceTableErrors } from './_report_schema.js';

const ok = (...samples: number[]): VariantOutcome => ({ kind: 'ok', samples });

/** The §3.3 8-vCPU 100 %-writes shape: lazy-zap > lazy > eager, ratios 6.39x and 4.92x. */
const SOF_ROW: VerdictRow = {
  variants: [
    { id: 'lazy-zap', published: 0.386025681 },
    { id: 'lazy', published: 0.29727446 },
    { id: 'eager', published: 0.060399702 },
  ],
  ratios: [
    { num: 'lazy-zap', den: 'eager' },
    { num: 'lazy', den: 'eager' },
  ],
  judgement: { kind: 'ordering-and-factor', factor: 2 },
  calibration: false,
};

test('withinFactor is inclusive at exactly 2x either way and rejects anything past it', (t) => {
  t.true(withinFactor(2, 1, 2));
  t.true(withinFactor(0.5, 1, 2));
  t.true(withinFactor(1, 1, 2));
  t.false(withinFactor(2.01, 1, 2));
  t.false(withinFactor(0.49, 1, 2));
  t.false(withinFactor(0, 1, 2));
  t.false(withinFactor(Number.POSITIVE_INFINITY, 1, 2));
});

test('rankSlowestFirst orders by value, ties in declared order', (t) => {
  t.deepEqual(
    rankSlowestFirst([
      { id: 'a', value: 1 },
      { id: 'b', value: 3 },
      { id: 'c', value: 2 },
    ]),
    ['b', 'c', 'a'],
  );
  t.deepEqual(
    rankSlowestFirst([
      { id: 'a', value: 1 },
      { id: 'b', value: 1 },
    ]),
    ['a', 'b'],
  );
});

test('ordering + factor of 2: same ordering and both ratios within 2x is reproduced', (t) => {
  // Seconds differ from the published ones by 10x; the ratios (4.0x and 3.0x) are within 2x of 6.39x and 4.92x.
  const v = judgeColumn(SOF_ROW, { 'lazy-zap': ok(4.0), lazy: ok(3.0), eager: ok(1.0) });
  t.is(v.status, 'reproduced');
  t.true(v.rulePassed);
  t.deepEqual(v.ordering?.ours, ['lazy-zap', 'lazy', 'eager']);
  t.true(v.ordering?.same);
  t.is(v.ratios.length, 2);
  t.is(v.ratios[0]!.label, 'lazy-zap/eager');
  t.true(Math.abs(v.ratios[0]!.published! - 0.386025681 / 0.060399702) < 1e-12);
  t.is(v.ratios[0]!.ours, 4);
  t.true(v.ratios.every((r) => r.within === true));
  t.regex(v.detail, /as published/);
});

test('ordering + factor of 2: a ratio more than 2x off is missed, and the detail names it', (t) => {
  // lazy-zap/eager = 20x against 6.39x published (3.1x off); the ordering is right.
  const v = judgeColumn(SOF_ROW, { 'lazy-zap': ok(20), lazy: ok(4), eager: ok(1) });
  t.is(v.status, 'missed');
  t.false(v.rulePassed);
  t.true(v.ordering?.same);
  t.false(v.ratios[0]!.within);
  t.true(v.ratios[1]!.within);
  t.regex(v.detail, /outside 2x: lazy-zap\/eager/);
});

test('ordering + factor of 2: a different ordering is missed even with ratios in range', (t) => {
  // lazy slower than lazy-zap: both ratios are within 2x (4.0 vs 6.39, 4.5 vs 4.92) but the ordering differs.
  const v = judgeColumn(SOF_ROW, { 'lazy-zap': ok(4.0), lazy: ok(4.5), eager: ok(1.0) });
  t.is(v.status, 'missed');
  t.false(v.ordering?.same);
  t.true(v.ratios.every((r) => r.within === true));
  t.regex(v.detail, /published lazy-zap > lazy > eager/);
});

test('medians of repeats decide, not the first run', (t) => {
  const v = judgeColumn(SOF_ROW, { 'lazy-zap': ok(9, 4, 4.2), lazy: ok(3, 3.1, 0.1), eager: ok(1, 1, 1) });
  t.is(v.medians['lazy-zap'], 4.2);
  t.is(v.medians['lazy'], 3);
  t.is(v.status, 'reproduced');
});

test('a calibration row is printed as a calibration point, never reproduced, even when the rule passes', (t) => {
  const row: VerdictRow = { ...SOF_ROW, calibration: true };
  const good = judgeColumn(row, { 'lazy-zap': ok(4.0), lazy: ok(3.0), eager: ok(1.0) });
  t.is(good.status, 'calibration');
  t.true(good.rulePassed);
  t.regex(good.detail, /not counted as reproduced: its figures fed the host-cost calibration \(the rule would say reproduced\)/);
  const bad = judgeColumn(row, { 'lazy-zap': ok(1), lazy: ok(3.0), eager: ok(4.0) });
  t.is(bad.status, 'calibration');
  t.false(bad.rulePassed);
  // Control: the same numbers on the non-calibration row are judged.
  t.is(judgeColumn(SOF_ROW, { 'lazy-zap': ok(4.0), lazy: ok(3.0), eager: ok(1.0) }).status, 'reproduced');
});

test('ordering only (v1 rows at 96 vCPUs): the ratio is printed, not judged', (t) => {
  const row: VerdictRow = {
    variants: [
      { id: 'before', published: 2.943733325 },
      { id: 'after', published: 0.145979748 },
    ],
    ratios: [{ num: 'before', den: 'after' }],
    judgement: { kind: 'ordering-only', why: 'published at 96 vCPUs only' },
    calibration: false,
  };
  // 1.5x against 20.2x published: far outside 2x, still reproduced on the ordering.
  const v = judgeColumn(row, { before: ok(1.5), after: ok(1.0) });
  t.is(v.status, 'reproduced');
  t.is(v.ratios[0]!.within, null);
  t.regex(v.detail, /published at 96 vCPUs only/);
  const reversed = judgeColumn(row, { before: ok(0.9), after: ok(1.0) });
  t.is(reversed.status, 'missed');
});

test('print only (scaled vCPU counts): no verdict either way', (t) => {
  const row: VerdictRow = { ...SOF_ROW, judgement: { kind: 'print-only', why: '32 vCPUs on 2 cores' } };
  const v = judgeColumn(row, { 'lazy-zap': ok(1), lazy: ok(3), eager: ok(4) });
  t.is(v.status, 'printed');
  t.is(v.rulePassed, null);
  t.false(v.ordering?.same);
});

const V3_ROW: VerdictRow = {
  variants: [
    { id: 'drop-always', published: null },
    { id: 'nowait-retry', published: null },
  ],
  ratios: [{ num: 'drop-always', den: 'nowait-retry', published: 1 }],
  judgement: { kind: 'within-spread' },
  calibration: false,
};

test('spread rule: a difference of medians inside the run-to-run spread is reproduced', (t) => {
  // nowait-retry spread (1.10 - 0.95) / 1.00 = 15 %; drop-always is 3 % slower.
  const v = judgeColumn(V3_ROW, {
    'drop-always': ok(1.03, 1.0, 1.06, 1.03, 1.04),
    'nowait-retry': ok(1.0, 0.95, 1.1, 1.0, 1.01),
  });
  t.is(v.status, 'reproduced');
  t.is(v.ordering, null);
  t.is(v.spread?.runs, 5);
  t.true(Math.abs(v.spread!.differencePct - 3) < 1e-9);
  t.true(Math.abs(v.spread!.spreadPct! - 15) < 1e-9);
  t.is(v.ratios[0]!.published, 1);
  t.regex(v.detail, /within the spread/);
});

test('spread rule: slower by more than the spread is missed (a regression), and so is faster by more', (t) => {
  const slower = judgeColumn(V3_ROW, { 'drop-always': ok(1.3, 1.31, 1.29), 'nowait-retry': ok(1.0, 1.01, 0.99) });
  t.is(slower.status, 'missed');
  t.regex(slower.detail, /slower by more than the spread/);
  const faster = judgeColumn(V3_ROW, { 'drop-always': ok(0.7, 0.71, 0.69), 'nowait-retry': ok(1.0, 1.01, 0.99) });
  t.is(faster.status, 'missed');
  t.regex(faster.detail, /faster by more than the spread/);
});

test('spread rule: one run each cannot be judged', (t) => {
  const v = judgeColumn(V3_ROW, { 'drop-always': ok(1.0), 'nowait-retry': ok(1.0) });
  t.is(v.status, 'printed');
  t.is(v.rulePassed, null);
  t.regex(v.detail, /fewer than two runs/);
});

test('an option the emulator lacks makes the row not runnable, with its message; a failed run outranks it', (t) => {
  const msg = '--split-alloc: unknown design "lazy-zap"; expected one of drop-always, lazy';
  const v = judgeColumn(SOF_ROW, { 'lazy-zap': { kind: 'not-runnable', message: msg }, lazy: ok(3), eager: ok(1) });
  t.is(v.status, 'not-runnable');
  t.is(v.rulePassed, null);
  t.is(v.detail, `lazy-zap: ${msg}`);
  t.is(v.medians['lazy-zap'], null);
  t.is(v.medians['lazy'], 3);
  const f = judgeColumn(SOF_ROW, {
    'lazy-zap': { kind: 'not-runnable', message: msg },
    lazy: { kind: 'failed', message: 'exit 1: invariant checker found 1 violation(s)' },
    eager: ok(1),
  });
  t.is(f.status, 'failed');
  t.regex(f.detail, /^lazy: exit 1/);
  // A variant with no outcome at all is a harness bug, never a silent pass.
  t.is(judgeColumn(SOF_ROW, { 'lazy-zap': ok(4), lazy: ok(3) }).status, 'failed');
});

// ---- the 2024 stall's excess rule and the April 2024 group verdict ----------------------------

const EXCESS_ROW = (expect: boolean): VerdictRow => ({
  variants: [
    { id: 'nowait-retry', published: null },
    { id: 'drop-always', published: null },
  ],
  ratios: [{ num: 'nowait-retry', den: 'drop-always' }],
  judgement: { kind: 'excess', expect },
  calibration: false,
});

test('excess rule: a lock-wait share above the other design by more than the spread is reproduced; inside it, missed', (t) => {
  const above = judgeColumn(EXCESS_ROW(true), { 'nowait-retry': ok(0.08, 0.1, 0.09), 'drop-always': ok(0.001, 0.002, 0) });
  t.is(above.status, 'reproduced', above.detail);
  t.regex(above.detail, /exceeds the spread/);
  // Control: the same difference, but the runs scatter more than it.
  const noisy = judgeColumn(EXCESS_ROW(true), { 'nowait-retry': ok(0.01, 0.1, 0.05), 'drop-always': ok(0.001, 0.002, 0) });
  t.is(noisy.status, 'missed', noisy.detail);
  // "Absent" (later passes, -g): reproduced when there is no excess, missed when there is one.
  t.is(judgeColumn(EXCESS_ROW(false), { 'nowait-retry': ok(0.001, 0.003, 0.002), 'drop-always': ok(0.001, 0.002, 0) }).status, 'reproduced');
  t.is(judgeColumn(EXCESS_ROW(false), { 'nowait-retry': ok(0.08, 0.1, 0.09), 'drop-always': ok(0.001, 0.002, 0) }).status, 'missed');
  // One run each has no spread: not judged.
  t.is(judgeColumn(EXCESS_ROW(true), { 'nowait-retry': ok(0.1), 'drop-always': ok(0) }).status, 'printed');
});

test('April 2024 group verdict: ordering small < large < huge and the same orders of magnitude', (t) => {
  t.true(apr24GroupVerdict({ 'apr24-tdp': 1.1, 'apr24-tdp-locked-fast': 3, 'apr24-shadow': 40 }).passed === true);
  // Controls: the ordering broken, and a ratio two orders of magnitude off.
  t.true(apr24GroupVerdict({ 'apr24-tdp': 3, 'apr24-tdp-locked-fast': 1.1, 'apr24-shadow': 40 }).passed === false);
  t.true(apr24GroupVerdict({ 'apr24-tdp': 1.1, 'apr24-tdp-locked-fast': 3, 'apr24-shadow': 4000 }).passed === false);
  t.is(apr24GroupVerdict({ 'apr24-tdp': 1.1, 'apr24-tdp-locked-fast': null, 'apr24-shadow': 40 }).passed, null);
});

test('the new row groups: stall, apr24 and exec rows, selectable by prefix, kept out of --quick', (t) => {
  const ids = (p: string): string[] => selectRows(REPRODUCE_ROWS, [p], false).map((r) => r.id);
  t.deepEqual(ids('stall'), ['stall-wait-pass1', 'stall-dip-pass1', 'stall-oncpu-pass1', 'stall-wait-pass2', 'stall-wait-g', 'stall-span']);
  t.deepEqual(ids('apr24'), ['apr24-tdp', 'apr24-tdp-locked-fast', 'apr24-shadow']);
  t.deepEqual(ids('exec'), ['exec-nx']);
  const byId = new Map(REPRODUCE_ROWS.map((r) => [r.id, r]));
  t.deepEqual(byId.get('stall-wait-pass1')!.judgement, { kind: 'excess', expect: true });
  t.deepEqual(byId.get('stall-wait-g')!.judgement, { kind: 'excess', expect: false });
  t.true(byId.get('stall-wait-g')!.args.includes('-g'));
  // The stall rows but -g share their runs: 3 repeats x 2 designs x 2 columns, plus 2 x 2 x 2 -g runs.
  t.is(planRuns(selectRows(REPRODUCE_ROWS, ['stall'], false), COLUMNS, false, 1).length, 12 + 8);
  const exec = judgeColumn(byId.get('exec-nx')!, {});
  t.is(exec.ratios[0]!.published!.toFixed(1), '25.9');
  for (const r of selectRows(REPRODUCE_ROWS, [], true)) t.false(/^(stall|apr24|exec)/.test(r.id), r.id);
});

// ---- the row table and the run plan ---------------------------------------------------------

test('the row table: the published ratios the issue quotes, judged at 2 and 8 vCPUs, one calibration row', (t) => {
  const byId = new Map(REPRODUCE_ROWS.map((r) => [r.id, r]));
  t.is(byId.size, REPRODUCE_ROWS.length, 'row ids are unique');
  const ratio = (id: string, i = 0): number => {
    const v = judgeColumn(byId.get(id)!, {});
    return v.ratios[i]!.published!;
  };
  t.is(ratio('v1-g-dirty1').toFixed(1), '20.2');
  t.is(ratio('v1-is-dirty2').toFixed(1), '21.7');
  t.is(ratio('v1-is-clear3').toFixed(4), '1.0349');
  t.is(ratio('sof-w100-v2').toFixed(1), '5.4');
  t.is(ratio('sof-w100-v8').toFixed(1), '6.4');
  const calibration = REPRODUCE_ROWS.filter((r) => r.calibration).map((r) => r.id);
  t.deepEqual(calibration, ['sof-w100-v2']);
  for (const r of REPRODUCE_ROWS.filter((x) => x.id.startsWith('sof-'))) {
    const judged = r.judgement.kind === 'ordering-and-factor';
    t.is(judged, r.publishedVcpus === 2 || r.publishedVcpus === 8, r.id);
    t.true(r.scale.vcpus === r.publishedVcpus, `${r.id} runs the published vCPU count`);
  }
  for (const r of REPRODUCE_ROWS.filter((x) => x.id.startsWith('v1-'))) t.is(r.judgement.kind, 'ordering-only', r.id);
  const v3 = byId.get('v3-drop-always')!;
  t.is(v3.judgement.kind, 'within-spread');
  t.true(v3.repeats >= 9, 'the 6.11 row needs 9 or more interleaved runs');
  // Every row is run in the calibrated column and with --host-costs none.
  t.deepEqual(
    COLUMNS.map((c) => c.args.join(' ')),
    ['', '--host-costs none'],
  );
});

test('the run plan shares identical runs between rows and interleaves repeats', (t) => {
  const rows = selectRows(REPRODUCE_ROWS, ['v1-g', 'v3'], false);
  t.deepEqual(
    rows.map((r) => r.id),
    ['v1-g-enable', 'v1-g-dirty1', 'v3-drop-always'],
  );
  const plan = planRuns(rows, COLUMNS, false, 1);
  // v1-g: 2 variants x 2 columns, shared by both rows; v3: 9 repeats x 2 variants x 2 columns.
  t.is(plan.length, 4 + 9 * 2 * 2);
  const first = plan[0]!;
  t.deepEqual([...new Set(first.uses.map((u) => u.rowId))], ['v1-g-enable', 'v1-g-dirty1']);
  const v3 = plan.filter((p) => p.uses[0]!.rowId === 'v3-drop-always' && p.uses[0]!.columnId === 'calibrated');
  t.deepEqual(
    v3.slice(0, 4).map((p) => `${p.repeat}:${p.uses[0]!.variantId}`),
    ['0:drop-always', '0:nowait-retry', '1:drop-always', '1:nowait-retry'],
  );
  // --repeat raises every row's count.
  t.is(rowRepeats(rows[0]!, false, 3), 3);
  t.is(planRuns(rows, COLUMNS, false, 3).length, 3 * 4 + 9 * 2 * 2);
});

test('--quick keeps a few rows at a tiny scale', (t) => {
  const rows = selectRows(REPRODUCE_ROWS, [], true);
  t.true(rows.length >= 3 && rows.length < REPRODUCE_ROWS.length);
  // --quick runs the default column only.
  const plan = planRuns(
    rows,
    COLUMNS.filter((c) => c.id === 'calibrated'),
    true,
    1,
  );
  t.true(plan.length <= 12, `${plan.length} runs`);
  for (const p of plan) {
    const v = Number(p.args[p.args.indexOf('-v') + 1]);
    t.true(v <= 2, p.args.join(' '));
    t.false(p.args.includes('anonymous_hugetlb_1gb'), p.args.join(' '));
  }
});

// ---- end to end -----------------------------------------------------------------------------

const REPRODUCE = fileURLToPath(new URL('../src/emulate/reproduce.js', import.meta.url));

function runReproduce(args: readonly string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [REPRODUCE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test('bad options exit 2 with one line', async (t) => {
  const bad = await runReproduce(['--bogus'], 20_000);
  t.is(bad.code, 2);
  t.is(bad.stderr.trim().split('\n').length, 1);
  const rows = await runReproduce(['--rows', 'nope'], 20_000);
  t.is(rows.code, 2);
  t.regex(rows.stderr, /--rows: no row id starts with "nope"/);
});

test('--quick runs end to end: every row gets a verdict, a command, and a JSON entry', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'reproduce-test-'));
  try {
    const file = join(dir, 'table.json');
    const r = await runReproduce(['--quick', '--json', file], 90_000);
    t.is(r.code, 0, r.stderr);
    const doc = JSON.parse(readFileSync(file, 'utf8')) as {
      quick: boolean;
      rows: { id: string; commands: Record<string, Record<string, string>>; columns: Record<string, { status: string; detail: string }> }[];
    };
    t.true(doc.quick);
    t.deepEqual(reproduceTableErrors(doc), [], 'the table validates against src/emulate/reproduce.schema.json');
    const expected = selectRows(REPRODUCE_ROWS, [], true).map((x) => x.id);
    t.deepEqual(
      doc.rows.map((x) => x.id),
      expected,
    );
    const allowed = new Set(['reproduced', 'missed', 'calibration', 'printed', 'not-runnable']);
    for (const row of doc.rows) {
      const c = row.columns['calibrated']!;
      t.true(allowed.has(c.status), `${row.id}: ${c.status} ${c.detail}`);
      for (const cmd of Object.values(row.commands['calibrated']!)) t.regex(cmd, /main\.js .* --json FILE -q$/);
      t.is(row.columns['bare'], undefined, '--quick skips the --host-costs none column');
      t.regex(r.stdout, new RegExp(`== ${row.id}: `));
    }
    // The 6.11 row uses options that exist before and after the merge: its default column runs.
    const v3 = doc.rows.find((x) => x.id === 'v3-drop-always')!;
    t.not(v3.columns['calibrated']!.status, 'not-runnable');
    t.regex(r.stdout, /== Summary/);
    t.regex(r.stderr, /reproduce \[1\/\d+\] v1-g-enable/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
