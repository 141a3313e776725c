// The counter table (src/stats/worker_stats.ts) is the one place a worker counter is defined: a
// row added there (here through the test-only EMULATE_TEST_STAT_ROW hook, which appends one row
// in every thread) reaches the text report, the JSON, the CSV and the watchdog's stuck dump with
// no other change. Each check has its control: the same run without the row does not show it.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jsonKeyOf, snakeCase, SPLIT_ROWS, splitCounterDeltas, STAT_ROWS, WORKER_STAT_ROWS, WS } from '../src/stats/worker_stats.js';
import { runCli } from './_emulate.js';
import { assertReportValid, reportSchemaErrors } from './_report_schema.js';
import type { Json } from './_emulate.js';

const SMALL = ['-v', '2', '-b', '4M', '-q'];
const ROW = 'testDummyCounter';

async function runWithOutputs(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string; json: Json; csv: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'worker-stats-test-'));
  try {
    const r = await runCli([...SMALL, '--json', join(dir, 'r.json'), '--csv', join(dir, 'r.csv')], { env, timeoutMs: 30_000 });
    return { ...r, json: JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8')) as Json, csv: readFileSync(join(dir, 'r.csv'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('the table: split rows in report order, the allocFailed row keeps its JSON key allocFailures', (t) => {
  t.is(STAT_ROWS.length, WORKER_STAT_ROWS.length, 'no test row without the hook');
  t.deepEqual(SPLIT_ROWS.map(jsonKeyOf), [
    'hugePagesSplit',
    'tablesAllocated',
    'allocFromCache',
    'allocNowait',
    'allocBlocking',
    'allocFailures',
    'allocUnderLock',
    'leftoverFreed',
    'lockDrops',
    'restarts',
    'spteReads',
    'yields',
    'splitEnomem',
    'spHeaderAllocs',
    'reclaims',
    'rfcDropTlbFlushes',
  ]);
  const after: Record<string, number> = { allocFailed: 5, spteReads: 12 };
  const d = splitCounterDeltas(after, { spteReads: 2 }) as unknown as Record<string, number>;
  t.is(d['allocFailures'], 5);
  t.is(d['spteReads'], 10);
  t.false('allocFailed' in d);
  t.is(
    WS.allocFailed,
    WORKER_STAT_ROWS.findIndex((r) => r.key === 'allocFailed'),
  );
  t.is(snakeCase('allocFailures'), 'alloc_failures');
});

test.serial('a new counter row reaches the text report, the JSON and the CSV (and is absent without it)', async (t) => {
  const withRow = await runWithOutputs({ EMULATE_TEST_STAT_ROW: ROW });
  t.is(withRow.code, 0, withRow.stderr);
  t.regex(withRow.stdout, new RegExp(`^${ROW}\\s+0\\s+0$`, 'm'), 'a line of the text counter table');
  t.is(withRow.json.split[ROW], 0);
  t.is(withRow.json.split.splitter[ROW], 0);
  for (const p of withRow.json.phases as Json[]) t.is(p.counters[ROW], 0, p.name);
  const header = withRow.csv.split('\r\n')[0]!.split(',');
  const col = header.indexOf(`total_${snakeCase(ROW)}`);
  t.true(col >= 0, header.join(','));
  t.is(withRow.csv.split('\r\n')[1]!.split(',')[col], '0');

  const control = await runWithOutputs({});
  t.is(control.code, 0, control.stderr);
  t.false(control.stdout.includes(ROW));
  t.false(ROW in control.json.split);
  // The schema lists the split rows of the table (report-schema.test.ts): the control report validates,
  // the one with the unlisted test row does not, until report.schema.json's splitCounters gains it.
  assertReportValid(control.json);
  t.true(reportSchemaErrors(withRow.json).some((e) => e.includes(ROW)));
  t.false(control.csv.includes(snakeCase(ROW)));
});

test.serial("a new counter row reaches the watchdog's stuck dump (and is absent without it)", async (t) => {
  const args = [...SMALL, '--watchdog', '2'];
  const withRow = await runCli(args, { env: { EMULATE_FAULT_INJECT: 'vcpu-hang', EMULATE_TEST_STAT_ROW: ROW }, timeoutMs: 30_000 });
  t.is(withRow.code, 3, withRow.stderr);
  t.regex(withRow.stderr, new RegExp(`ERR_STUCK: .*counters .*\\b${ROW}=\\d+`));
  const control = await runCli(args, { env: { EMULATE_FAULT_INJECT: 'vcpu-hang' }, timeoutMs: 30_000 });
  t.is(control.code, 3, control.stderr);
  t.regex(control.stderr, /ERR_STUCK: .*counters .*spteReads=\d+/);
  t.false(control.stderr.includes(ROW));
});
