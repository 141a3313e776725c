// Report sinks (src/emulate/report_sink.ts): the engine feeds every sink's `tick` while the run
// goes on (one sample at each phase start at least, then every TICK_MS), calls `end` once when
// it stops, and main.ts hands the finished Report to the text, JSON and CSV sinks alike.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveRunConfig } from '../src/emulate/config.js';
import { parseCommandLine, resolveOptions } from '../src/emulate/options.js';
import { csvSink, emitReport, jsonSink, textSink } from '../src/emulate/report_sink.js';
import type { ReportSink, RunSample } from '../src/emulate/report_sink.js';
import { runEmulation } from '../src/emulate/run.js';
import { CSV_HEADER } from '../src/emulate/csv.js';

function config(argv: readonly string[]): ReturnType<typeof resolveRunConfig> {
  const cmd = parseCommandLine(argv);
  if (cmd.kind !== 'run') throw new Error('expected a run');
  return resolveRunConfig(resolveOptions(cmd.raw));
}

test.serial('the tick feed sees every phase of the run while it goes on, then end; every sink gets the report', async (t) => {
  const samples: RunSample[] = [];
  let ends = 0;
  const feed: ReportSink = { tick: (s) => samples.push(s), end: () => ends++ };
  const report = await runEmulation(config(['-v', '2', '-b', '4M', '-i', '2']), { sinks: [feed] });
  t.is(ends, 1);
  const seen = new Set(samples.map((s) => s.phase));
  for (const p of report.phases) t.true(seen.has(p.name), `a tick during ${p.name}`);
  t.true(samples.every((s) => s.iterations === 2));
  t.true(
    samples.every((s, i) => i === 0 || s.elapsedMs >= samples[i - 1]!.elapsedMs),
    'samples in time order',
  );
  const last = samples.at(-1)!;
  t.true(last.accesses > 0 && last.counters['accesses'] === last.accesses, 'live counters from the stat slots');
  t.true(samples.some((s) => s.hugePagesSplit > 0));

  // The three report sinks write the same report.
  const dir = mkdtempSync(join(tmpdir(), 'report-sink-test-'));
  try {
    const out: string[] = [];
    emitReport(
      [
        textSink({
          write: (s) => {
            out.push(s);
            return true;
          },
        }),
        jsonSink(join(dir, 'r.json')),
        csvSink(join(dir, 'r.csv')),
      ],
      report,
    );
    t.true(out.join('').includes('== Invariants =='));
    t.is(JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8')).split.hugePagesSplit, report.split.hugePagesSplit);
    t.is(readFileSync(join(dir, 'r.csv'), 'utf8').split('\r\n')[0], CSV_HEADER.join(','));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.serial('end is called when a run fails too (here: interrupted before it starts)', async (t) => {
  let ends = 0;
  const abort = new AbortController();
  abort.abort();
  await t.throwsAsync(runEmulation(config(['-v', '1', '-b', '4M']), { sinks: [{ end: () => ends++ }], signal: abort.signal }), { message: /interrupted/ });
  t.is(ends, 1);
});
